//! The user's commands on a running node (`put`, `get`, `ls`, `mkdir`, `ln`, `mv`, `rm`,
//! `status`), each an HTTP request to the node's gateway.

use crate::api;
use crate::failure::{failure, Kind};
use crate::gateway_client::GatewayClient;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD: u64 = 16 << 20;

/// Upload a file to the grid and print its cap.
#[derive(clap::Args)]
pub struct PutArgs {
    /// The file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Also link the file at this vdrive path (replacing a file already there); a path
    /// ending in `/` is a directory to link it into, under the file's name.
    #[arg(value_name = "PATH")]
    path: Option<String>,
    /// Print the result as JSON: cap, size, happiness and which servers hold which share
    /// (errors too).
    #[arg(long)]
    pub json: bool,
    /// This upload's encoding, over the node's (`[client]` in its cairn.toml).
    #[command(flatten)]
    shares: crate::create::SharesArgs,
}

/// Download a file, by cap or vdrive path, to standard output or a file.
#[derive(clap::Args)]
pub struct GetArgs {
    /// A read cap (`URI:CHK:...`, `URI:LIT:...`) or a vdrive path.
    #[arg(value_name = "CAP|PATH")]
    source: String,
    /// Write the file here (all of it, or nothing: a failed download leaves no partial
    /// file). Default: standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
}

/// List a vdrive directory.
#[derive(clap::Args)]
pub struct LsArgs {
    /// The directory (default: the root).
    #[arg(value_name = "PATH", default_value = "/")]
    path: String,
    /// Show each entry's kind, size, modification time (UTC) and cap (a directory's write
    /// cap if held, else its read cap).
    #[arg(short = 'l', long)]
    long: bool,
    /// Print the listing as JSON (errors too).
    #[arg(long)]
    pub json: bool,
}

/// Make a vdrive directory (its parent must exist, unless -p).
#[derive(clap::Args)]
pub struct MkdirArgs {
    #[arg(value_name = "PATH")]
    path: String,
    /// Make missing parents too, and say nothing if the directory exists.
    #[arg(short = 'p', long)]
    parents: bool,
}

/// Link a cap at a vdrive path.
#[derive(clap::Args)]
pub struct LnArgs {
    #[arg(value_name = "CAP")]
    cap: String,
    #[arg(value_name = "PATH")]
    path: String,
    /// Replace a file already linked at PATH (never a directory).
    #[arg(long)]
    replace: bool,
}

/// Move or rename a vdrive entry (onto an existing directory: into it).
#[derive(clap::Args)]
pub struct MvArgs {
    #[arg(value_name = "FROM")]
    from: String,
    #[arg(value_name = "TO")]
    to: String,
}

/// Unlink a vdrive entry (the file's shares stay in the grid).
#[derive(clap::Args)]
pub struct RmArgs {
    #[arg(value_name = "PATH")]
    path: String,
    /// Unlink a directory and everything in it.
    #[arg(short = 'r', long)]
    recursive: bool,
}

/// What the node knows of the grid.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON (with `servers_connected` and each known server's id,
    /// address and connection state; errors too).
    #[arg(long)]
    pub json: bool,
}

/// Print a one-time URL that signs a browser in to the node's gateway.
///
/// The URL holds a code the node accepts once, within five minutes; the browser then
/// keeps a session cookie for the gateway's address (SameSite=Strict, HttpOnly). Anyone who
/// sees the URL before it is used can take the session: open it yourself, at once.
#[derive(clap::Args)]
pub struct WebopenArgs {
    /// Also open it in the desktop's browser (xdg-open).
    #[arg(long)]
    open: bool,
}

pub fn put(dir: &Path, args: PutArgs) -> Result<()> {
    // A path the vdrive would refuse is refused before a byte is uploaded.
    let link = match &args.path {
        Some(path) => Some(link_path(path, &args.file)?),
        None => None,
    };
    let client = GatewayClient::for_node(dir)?;
    undo_on_interrupt(dir)?;
    let shares = args.shares.query();
    let uploaded = match args.file.as_os_str() == "-" {
        true => upload(&client, &mut io::stdin().lock(), None, &shares)?,
        false => upload_file(&client, &args.file, &shares)?,
    };
    if let Some(path) = &link {
        let mtime = match args.file.as_os_str() == "-" {
            true => None,
            false => std::fs::metadata(&args.file)
                .ok()
                .and_then(|m| mtime_secs(&m)),
        };
        let mtime = mtime.map(|t| t.to_string()).unwrap_or_default();
        let mut query = vec![
            ("path", path.as_str()),
            ("cap", &uploaded.cap),
            ("replace", "true"),
        ];
        if !mtime.is_empty() {
            query.push(("mtime", &mtime));
        }
        client.post("/vdrive/link", &query).with_context(|| {
            format!(
                "the file is uploaded ({}) but linking it at {path} failed",
                uploaded.cap
            )
        })?;
    }
    match args.json {
        true => println!("{}", serde_json::to_string(&uploaded)?),
        false => println!("{}", uploaded.cap),
    }
    Ok(())
}

/// Uploads the file at `path` (with a progress bar for a person watching).
pub(crate) fn upload_file(
    client: &GatewayClient,
    path: &Path,
    shares: &[(&'static str, String)],
) -> Result<api::Uploaded> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => failure(
            Kind::NotFound,
            format!("cannot open {}: no such file", path.display()),
        ),
        _ => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
    })?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(failure(
            Kind::BadInput,
            format!("{} is a directory, not a file", path.display()),
        ));
    }
    // The node's operations page shows what it uploads by name.
    let mut query = shares.to_vec();
    if let Some(name) = path.file_name() {
        query.push(("name", name.to_string_lossy().into_owned()));
    }
    upload(client, &mut &file, Some(meta.len()), &query)
}

/// Uploads `input`, named so that an interrupt cancels it on the node.
fn upload(
    client: &GatewayClient,
    input: &mut dyn Read,
    size: Option<u64>,
    shares: &[(&'static str, String)],
) -> Result<api::Uploaded> {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let upload = crate::gateway_client::Upload {
        operation: data_encoding::HEXLOWER.encode(&id),
        shares: shares.to_vec(),
    };
    crate::signals::uploading(Some(upload.operation.clone()));
    let uploaded = with_progress(input, size, "uploading", |input| {
        client.upload(input, size, &upload)
    });
    crate::signals::uploading(None);
    uploaded
}

/// From now on Ctrl-C (or SIGTERM) cancels the upload under way on the node (which aborts
/// its shares on every server) and deletes a partial download, then exits 130.
pub(crate) fn undo_on_interrupt(dir: &Path) -> Result<()> {
    let canceller = GatewayClient::for_node(dir)?;
    crate::signals::on_interrupt(move |operation| match canceller.cancel(operation) {
        Ok(_) => eprintln!("cairn: interrupted: the upload is cancelled, its shares aborted"),
        Err(e) => eprintln!("cairn: interrupted; cancelling the upload failed: {e:#}"),
    });
    Ok(())
}

/// Downloads `cap` into the file `out`: all of it, or nothing (the bytes go to a partial
/// file beside it, renamed into place once complete). Its size.
pub(crate) fn download_to(client: &GatewayClient, cap: &str, out: &Path) -> Result<u64> {
    let (size, body) = client.download(cap)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut partial = tempfile::Builder::new()
        .prefix(".cairn-partial-")
        .tempfile_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    crate::signals::writing(Some(partial.path().to_owned()));
    let written = copy_exactly(&mut body.into_reader(), partial.as_file_mut(), size)
        .and_then(|()| Ok(partial.as_file().sync_all()?));
    crate::signals::writing(None);
    written?;
    partial
        .persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(size)
}

pub fn get(dir: &Path, args: GetArgs) -> Result<()> {
    let output = match &args.output {
        Some(out) if out.as_os_str() == "-" => None,
        Some(out) => Some(output_file(out, &args.source)?),
        None => None,
    };
    let client = GatewayClient::for_node(dir)?;
    let cap = resolve(&client, &args.source)?;
    match &output {
        Some(out) => {
            undo_on_interrupt(dir)?;
            download_to(&client, &cap, out)?;
        }
        None => {
            let (size, body) = client.download(&cap)?;
            copy_exactly(&mut body.into_reader(), &mut io::stdout().lock(), size)?;
        }
    }
    Ok(())
}

/// Where `get -o OUT` writes: OUT, or for a directory, the vdrive name inside it.
fn output_file(out: &Path, source: &str) -> Result<PathBuf> {
    if !out.is_dir() {
        return Ok(out.to_owned());
    }
    let name = match source.starts_with("URI:") {
        true => None,
        false => source.rsplit('/').next().filter(|n| !n.is_empty()),
    };
    match name {
        Some(name) => Ok(out.join(name)),
        None => bail!(
            "{} is a directory, and a cap names no file: give the file to write, \
             `-o {}/NAME`",
            out.display(),
            out.display()
        ),
    }
}

/// Checks a vdrive path as the vdrive will, before any request is made for it; a trailing
/// `/` (as `ls` prints directories) is allowed, and dropped.
pub(crate) fn vdrive_path(path: &str) -> Result<&str> {
    let (alias, rest) = match path.split_once(':') {
        Some((alias, rest)) if !alias.contains('/') => {
            crate::nodedir::check_alias(alias)
                .map_err(|e| failure(Kind::BadInput, format!("{e:#}")))?;
            (alias.len() + 1, rest)
        }
        _ => (0, path),
    };
    let rest = match rest.strip_suffix('/') {
        Some(dir) if !dir.is_empty() => dir,
        _ => rest,
    };
    cairn_actors::vdrive::check_path(rest).map_err(|e| failure(Kind::BadInput, e.to_string()))?;
    Ok(&path[..alias + rest.len()])
}

/// A file's modification time in Unix seconds (none before 1970, or where the system keeps
/// none).
pub(crate) fn mtime_secs(meta: &std::fs::Metadata) -> Option<u64> {
    let modified = meta.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    )
}

/// A Unix time for a listing: `2026-12-03 16:04` (UTC).
pub(crate) fn listing_time(secs: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| "-".to_owned())
}

/// Where `put FILE PATH` links the file: PATH, or with a trailing `/`, FILE's name in the
/// directory PATH (as `cp FILE DIR/` does).
fn link_path(path: &str, file: &Path) -> Result<String> {
    let dir = match path.strip_suffix('/') {
        None => return Ok(vdrive_path(path)?.to_owned()),
        Some(dir) => vdrive_path(if dir.is_empty() { "/" } else { path })?,
    };
    let name = match file.file_name().and_then(|n| n.to_str()) {
        Some(name) if file.as_os_str() != "-" => name,
        _ => {
            return Err(failure(
                Kind::BadInput,
                format!("{path} is a directory, and standard input has no name: give the path to link, {path}NAME"),
            ))
        }
    };
    Ok(vdrive_path(&vdrive_join(dir, name))?.to_owned())
}

/// `name` inside the vdrive directory `dir`.
pub(crate) fn vdrive_join(dir: &str, name: &str) -> String {
    match dir.trim_end_matches('/') {
        "" => format!("/{name}"),
        dir => format!("{dir}/{name}"),
    }
}

/// What the vdrive holds at `path`: "dir", "file", or nothing.
pub(crate) fn vdrive_kind(client: &GatewayClient, path: &str) -> Result<Option<String>> {
    match client.get::<api::Entry>("/vdrive/lookup", &[("path", path)]) {
        Ok(entry) => Ok(Some(entry.kind)),
        Err(e) if crate::failure::kind_of(&e) == Some(Kind::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the vdrive directory `path` unless it is one already; whether it made it.
pub(crate) fn ensure_dir(client: &GatewayClient, path: &str) -> Result<bool> {
    match vdrive_kind(client, path)?.as_deref() {
        Some("dir") => Ok(false),
        Some(_) => Err(failure(
            Kind::BadInput,
            format!("{path} is a file, not a directory"),
        )),
        None => client
            .post("/vdrive/mkdir", &[("path", path)])
            .map(|()| true),
    }
}

/// Makes the vdrive directory `path` and any missing parents; how many it made.
pub(crate) fn ensure_dirs(client: &GatewayClient, path: &str) -> Result<u64> {
    let mut at = String::from("/");
    let mut made = 0;
    for name in path.split('/').filter(|n| !n.is_empty()) {
        at = vdrive_join(&at, name);
        made += u64::from(ensure_dir(client, &at)?);
    }
    Ok(made)
}

/// A cap as given, or the cap of the file at a vdrive path.
pub(crate) fn resolve(client: &GatewayClient, source: &str) -> Result<String> {
    if source.starts_with("URI:") {
        return Ok(source.to_owned());
    }
    vdrive_path(source)?;
    let entry: api::Entry = client.get("/vdrive/lookup", &[("path", source)])?;
    match entry.cap {
        Some(cap) => Ok(cap),
        None => bail!("{source} is a directory; list it with `cairn ls {source}`"),
    }
}

/// Copies the whole download to `out`, failing unless exactly `size` bytes came.
fn copy_exactly(reader: &mut dyn Read, out: &mut dyn Write, size: u64) -> Result<()> {
    let copied = with_progress(reader, Some(size), "downloading", |reader| {
        io::copy(reader, out)
    });
    let copied = copied
        .map_err(|e| anyhow::anyhow!("the download broke off: {e} (the node's log says why)"))?;
    if copied != size {
        bail!("the download broke off after {copied} of {size} bytes (the node's log says why)");
    }
    out.flush()?;
    Ok(())
}

/// The bar of a copy of many files (`cp -r`, `backup`), while one runs: each transfer adds
/// its bytes to it instead of drawing a bar of its own.
static OVERALL: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);

/// Starts the one bar of a copy of many files, when a person is watching: `total` bytes
/// (if known beforehand) of `what`. [`finish_overall_progress`] ends it.
pub(crate) fn start_overall_progress(total: Option<u64>, what: &str) {
    if !io::stderr().is_terminal() {
        return;
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {msg} {bytes} {binary_bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    *lock_overall() = Some(bar);
}

/// The bar of the copy under way, if any (to count files that need no transfer).
pub(crate) fn overall_progress() -> Option<ProgressBar> {
    lock_overall().clone()
}

pub(crate) fn finish_overall_progress() {
    if let Some(bar) = lock_overall().take() {
        bar.finish_and_clear();
    }
}

fn lock_overall() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    OVERALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads `input` through the copy's overall bar, or a bar of its own for `size` bytes, or
/// no bar (nobody watching, or a small transfer).
fn with_progress<T>(
    input: &mut dyn Read,
    size: Option<u64>,
    what: &str,
    transfer: impl FnOnce(&mut dyn Read) -> T,
) -> T {
    if let Some(bar) = overall_progress() {
        return transfer(&mut bar.wrap_read(input));
    }
    match progress_bar(size, what) {
        Some(bar) => {
            let done = transfer(&mut bar.wrap_read(input));
            bar.finish_and_clear();
            done
        }
        None => transfer(input),
    }
}

/// A progress bar on stderr for transfers of `size` bytes, when a person is watching.
fn progress_bar(size: Option<u64>, what: &str) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() || size.is_some_and(|s| s < PROGRESS_THRESHOLD) {
        return None;
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .ok()?;
    bar.set_style(style);
    bar.set_message(what.to_owned());
    Some(bar)
}

pub fn ls(dir: &Path, args: LsArgs) -> Result<()> {
    let client = GatewayClient::for_node(dir)?;
    let path = vdrive_path(&args.path)?;
    let entries: Vec<api::Entry> = client.get("/vdrive/list", &[("path", path)])?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for entry in entries {
        let name = if entry.kind == "dir" {
            format!("{}/", entry.name)
        } else {
            entry.name
        };
        if args.long {
            let size = entry.size.map_or("-".to_owned(), |s| s.to_string());
            let when = entry.mtime.map_or("-".to_owned(), listing_time);
            let cap = entry.cap.as_deref().or(entry.write_cap.as_deref());
            let cap = cap.or(entry.read_cap.as_deref()).unwrap_or("-");
            println!("{:<4}  {size:>12}  {when:>16}  {cap}  {name}", entry.kind);
        } else {
            println!("{name}");
        }
    }
    Ok(())
}

pub fn mkdir(dir: &Path, args: MkdirArgs) -> Result<()> {
    let path = vdrive_path(&args.path)?;
    let client = GatewayClient::for_node(dir)?;
    if !args.parents {
        return client.post("/vdrive/mkdir", &[("path", path)]);
    }
    ensure_dirs(&client, path).map(drop)
}

pub fn ln(dir: &Path, args: LnArgs) -> Result<()> {
    let path = vdrive_path(&args.path)?;
    let replace = if args.replace { "true" } else { "false" };
    let query = [("path", path), ("cap", &args.cap), ("replace", replace)];
    GatewayClient::for_node(dir)?.post("/vdrive/link", &query)
}

pub fn mv(dir: &Path, args: MvArgs) -> Result<()> {
    let from = vdrive_path(&args.from)?;
    let to = vdrive_path(&args.to)?;
    let client = GatewayClient::for_node(dir)?;
    // Onto an existing directory: into it, under the same name (as `mv FILE DIR` does).
    let into = match vdrive_kind(&client, to)?.as_deref() {
        Some("dir") => {
            let name = from.rsplit('/').next().unwrap_or_default();
            Some(vdrive_path(&vdrive_join(to, name))?.to_owned())
        }
        _ => None,
    };
    let to = into.as_deref().unwrap_or(to);
    client.post("/vdrive/rename", &[("from", from), ("to", to)])
}

pub fn rm(dir: &Path, args: RmArgs) -> Result<()> {
    let path = vdrive_path(&args.path)?;
    let client = GatewayClient::for_node(dir)?;
    if args.recursive {
        let entry: api::Entry = client.get("/vdrive/lookup", &[("path", path)])?;
        if entry.kind == "dir" {
            return unlink_tree(&client, path);
        }
    }
    client.post("/vdrive/unlink", &[("path", path)])
}

/// Unlinks everything under the vdrive directory `path`, then the directory.
fn unlink_tree(client: &GatewayClient, path: &str) -> Result<()> {
    let entries: Vec<api::Entry> = client.get("/vdrive/list", &[("path", path)])?;
    for entry in entries {
        let child = vdrive_join(path, &entry.name);
        match entry.kind.as_str() {
            "dir" => unlink_tree(client, &child)?,
            _ => client.post("/vdrive/unlink", &[("path", &child)])?,
        }
    }
    if path == "/" {
        return Ok(()); // the root itself stays
    }
    client.post("/vdrive/unlink", &[("path", path)])
}

/// Print the node's metrics (what `GET /metrics` serves Prometheus), in the
/// Prometheus/OpenMetrics text format.
#[derive(clap::Args)]
pub struct MetricsArgs {}

pub fn metrics(dir: &Path, _args: MetricsArgs) -> Result<()> {
    print!("{}", GatewayClient::for_node(dir)?.get_text("/metrics")?);
    Ok(())
}

pub fn webopen(dir: &Path, args: WebopenArgs) -> Result<()> {
    let login: api::LoginUrl = GatewayClient::for_node(dir)?.post_json("/login-url", &[])?;
    println!("{}", login.url);
    if args.open {
        let opened = std::process::Command::new("xdg-open")
            .arg(&login.url)
            .status()
            .context("cannot run xdg-open: open the URL above by hand")?;
        if !opened.success() {
            bail!("xdg-open failed: open the URL above by hand");
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long ago `secs` (Unix seconds) was, or how long until it is, for a person.
pub(crate) fn relative(secs: u64) -> String {
    let now = unix_now();
    let span = |d: u64| humantime::format_duration(std::time::Duration::from_secs(d)).to_string();
    match secs <= now {
        true => format!("{} ago", span(now - secs)),
        false => format!("in {}", span(secs - now)),
    }
}

/// The scheduled renewal and repair lines of `status`.
/// How often a scheduled run happens: "every 1day", or "off".
pub(crate) fn every(secs: Option<u64>) -> String {
    match secs {
        Some(s) => format!(
            "every {}",
            humantime::format_duration(std::time::Duration::from_secs(s))
        ),
        None => "off".to_owned(),
    }
}

/// A scheduled run, for a person: when it ended (or started), and what it found.
pub(crate) fn describe_run(r: &api::UpkeepRun) -> String {
    let s = &r.summary;
    let when = relative(r.finished.unwrap_or(r.started));
    match &r.error {
        Some(e) => format!("{when}: failed: {e}"),
        None => format!(
            "{when}: {} files, {} healthy, {} unhealthy, {} unrecoverable, {} repaired, {} \
             errors; {} leases renewed",
            s.objects,
            s.healthy,
            s.unhealthy,
            s.unrecoverable,
            s.repaired,
            s.errors,
            s.leases_renewed
        ),
    }
}

fn print_upkeep(u: &api::Upkeep) {
    let run = describe_run;
    println!("leases:     renewed {}", every(u.renewal_interval_secs));
    if let Some(r) = &u.last_renewal {
        println!("  last renewal {}", run(r));
    }
    if let Some(at) = u.next_renewal {
        println!("  next renewal {}", relative(at));
    }
    let bandwidth = match u.repair_bandwidth {
        Some(rate) => format!(", at most {}/s", bytesize::ByteSize(rate)),
        None => String::new(),
    };
    println!("repair:     {}{bandwidth}", every(u.repair_interval_secs));
    if let Some(r) = &u.last_repair {
        println!("  last repair {}", run(r));
    }
    if let Some(at) = u.next_repair {
        println!("  next repair {}", relative(at));
    }
    if let Some(r) = &u.running {
        println!(
            "  running now ({}): {} files so far",
            r.kind, r.summary.objects
        );
    }
}

/// The garbage collector's lines of `status`.
fn print_collector(c: &api::Collector) {
    if c.expire == "off" {
        println!("collector:  off ([storage] expire): nothing is ever deleted");
        return;
    }
    println!("collector:  expire = {}", c.expire);
    if let Some(p) = &c.current {
        println!(
            "  this pass (started {}): {} files examined, {} shares removed ({} freed)",
            relative(p.started),
            p.files_examined,
            p.shares_removed,
            bytesize::ByteSize(p.bytes_freed)
        );
    }
    match &c.last {
        Some(p) => {
            println!(
                "  last pass (finished {}): {} files examined, {} shares removed ({} \
                 freed), {} errors",
                relative(p.finished.unwrap_or(p.started)),
                p.files_examined,
                p.shares_removed,
                bytesize::ByteSize(p.bytes_freed),
                p.errors
            );
            println!(
                "  will lapse within a week: {} shares ({}), unless their leases are renewed",
                p.shares_lapsing,
                bytesize::ByteSize(p.bytes_lapsing)
            );
        }
        None => println!("  will lapse within a week: counted when the first pass ends"),
    }
}

/// Prints the status; `Ok(false)` (exit 1) if a client's introducer is not connected.
pub fn status(dir: &Path, args: StatusArgs) -> Result<bool> {
    let status: api::Status = GatewayClient::for_node(dir)?.get("/status", &[])?;
    let healthy = status.introducer_connected != Some(false);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(healthy);
    }
    println!("node:       {} ({})", status.nickname, status.node_id);
    println!("runs:       {}", status.roles.join(", "));
    println!("address:    {}", status.address);
    if let Some(connected) = status.introducer_connected {
        match (connected, &status.introducer_error) {
            (true, _) => println!("introducer: connected"),
            (false, None) => println!("introducer: NOT connected"),
            (false, Some(why)) => println!("introducer: NOT connected (last try: {why})"),
        }
        println!(
            "servers:    {} known, {} connected",
            status.servers.len(),
            status.servers_connected
        );
    }
    if let Some(e) = &status.encoding {
        println!(
            "encoding:   {}-of-{}, happy at {} servers",
            e.shares_needed, e.shares_total, e.shares_happy
        );
    }
    if let Some(s) = &status.storage {
        println!(
            "storage:    {} shares, {} used, {} free; {} leases on {} files; {} shares being \
             uploaded; {} corruption reports",
            s.figures.shares,
            bytesize::ByteSize(s.figures.used_bytes),
            bytesize::ByteSize(s.figures.free_space),
            s.leases,
            s.leased_files,
            s.incoming_shares,
            s.advisories_received
        );
        print_collector(&s.collector);
    }
    if let Some(u) = &status.upkeep {
        print_upkeep(u);
    }
    for server in &status.servers {
        println!(
            "  {}  {:<16}  {:<10}  {:>6} shares  {:>10} used  {:>10} free  {}",
            &server.id[..12.min(server.id.len())],
            server.nickname,
            server.connection,
            server.figures.shares,
            bytesize::ByteSize(server.figures.used_bytes).to_string(),
            bytesize::ByteSize(server.figures.free_space).to_string(),
            server.address
        );
        if let Some(why) = server
            .last_error
            .as_deref()
            .filter(|_| server.connection != "connected")
        {
            println!("      last try: {why}");
        }
    }
    Ok(healthy)
}
