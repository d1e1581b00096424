//! `cairn cp`: files and whole trees between this machine and the vdrive. A vdrive path is
//! written with the alias `cairn:` (`cairn:/docs/a.txt`), as Tahoe-LAFS writes `tahoe:`, so
//! that it never reads as a local path. Symbolic links, special files and names the vdrive
//! cannot hold are reported and skipped; a file that cannot be read or written is reported,
//! the copy goes on, and the command exits 1 at the end.

use crate::api;
use crate::commands::{
    download_to, ensure_dir, ensure_dirs, finish_overall_progress, overall_progress,
    start_overall_progress, undo_on_interrupt, upload_file, vdrive_join, vdrive_kind, vdrive_path,
};
use crate::create::SharesArgs;
use crate::failure::{failure, Kind};
use crate::gateway_client::GatewayClient;
use anyhow::{bail, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The alias that marks a vdrive path.
const ALIAS: &str = "cairn:";

/// Copy files, or with -r whole directories, between this machine and the vdrive.
///
/// Vdrive paths start with `cairn:` (`cairn:/docs/report.pdf`). The last argument is the
/// destination; onto an existing directory (or a path ending in `/`) each source goes inside
/// it under its own name. Files already in the vdrive are replaced.
#[derive(clap::Args)]
pub struct CpArgs {
    /// Copy directories and everything in them.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// The sources, then the destination.
    #[arg(value_name = "SOURCE... DEST", num_args = 2.., required = true)]
    paths: Vec<String>,
    /// Uploads' encoding, over the node's.
    #[command(flatten)]
    shares: SharesArgs,
    #[command(flatten)]
    exclude: ExcludeArgs,
}

/// Names to leave out of a tree.
#[derive(clap::Args, Default)]
pub struct ExcludeArgs {
    /// Leave out files and directories whose name matches PATTERN (a glob: `*.tmp`,
    /// `.git`, `cache?`); may be given more than once.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
}

impl ExcludeArgs {
    pub(crate) fn patterns(&self) -> Result<Vec<glob::Pattern>> {
        self.exclude
            .iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| {
                    failure(
                        Kind::BadInput,
                        format!("--exclude {p:?} is not a pattern: {e}"),
                    )
                })
            })
            .collect()
    }
}

/// One end of a copy.
#[derive(Clone, Debug)]
enum Place {
    Local(PathBuf),
    Vdrive(String),
}

impl Place {
    fn parse(text: &str) -> Result<Place> {
        match text.strip_prefix(ALIAS) {
            Some(path) => Ok(Place::Vdrive(vdrive_path(path)?.to_owned())),
            None => Ok(Place::Local(PathBuf::from(text))),
        }
    }
}

/// What a copy did.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) files: u64,
    /// Of those, files a backup found unchanged, linked without uploading.
    pub(crate) unchanged: u64,
    pub(crate) bytes: u64,
    pub(crate) dirs: u64,
    /// Names left out by --exclude.
    pub(crate) excluded: u64,
    pub(crate) skipped: u64,
    pub(crate) failed: u64,
}

pub(crate) struct Copier {
    pub(crate) client: GatewayClient,
    shares: Vec<(&'static str, String)>,
    pub(crate) tally: Tally,
    /// For a backup: the caps of files already uploaded, by path, size and modification time.
    pub(crate) known: Option<crate::backup::BackupDb>,
    /// Names to leave out.
    pub(crate) exclude: Vec<glob::Pattern>,
}

pub fn cp(dir: &Path, args: CpArgs) -> Result<()> {
    let Some((dest_text, sources)) = args.paths.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(failure(
            Kind::BadInput,
            "cp takes one or more sources, then a destination",
        ));
    };
    let dest = Place::parse(dest_text)?;
    let sources = sources
        .iter()
        .map(|s| Place::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let mut copier = Copier::new(dir, &args.shares)?;
    copier.exclude = args.exclude.patterns()?;
    undo_on_interrupt(dir)?;
    let into_dir = dest_text.ends_with('/') || sources.len() > 1;
    if args.recursive || sources.len() > 1 {
        let uploads = sources.iter().all(|s| matches!(s, Place::Local(_)));
        let total = uploads.then(|| {
            let local = sources.iter().filter_map(|s| match s {
                Place::Local(path) => Some(path.as_path()),
                Place::Vdrive(_) => None,
            });
            local.map(|p| local_bytes(p, &copier.exclude)).sum()
        });
        start_overall_progress(total, "copying");
    }
    let copied = copier.copy_all(&sources, &dest, into_dir, args.recursive);
    finish_overall_progress();
    copied?;
    let t = &copier.tally;
    eprintln!(
        "cairn: copied {} files ({}) and {} directories{}",
        t.files,
        bytesize::ByteSize(t.bytes),
        t.dirs,
        t.skipped_note()
    );
    t.ended("copied")
}

/// The bytes of the regular files under `path` (or of `path`), without the names `exclude`
/// leaves out: what a copy of it will upload, for its progress bar.
pub(crate) fn local_bytes(path: &Path, exclude: &[glob::Pattern]) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !exclude.iter().any(|p| p.matches(&name))
        })
        .map(|e| local_bytes(&e.path(), exclude))
        .sum()
}

impl Copier {
    /// Copies each source to `dest`.
    fn copy_all(
        &mut self,
        sources: &[Place],
        dest: &Place,
        into_dir: bool,
        recursive: bool,
    ) -> Result<()> {
        let copier = self;
        for source in sources {
            match (source, &dest) {
                (Place::Local(from), Place::Vdrive(to)) => {
                    let to = copier.vdrive_target(to, from.file_name(), into_dir)?;
                    copier.upload(from, &to, recursive)?;
                }
                (Place::Vdrive(from), Place::Local(to)) => {
                    let name = from.rsplit('/').next().filter(|n| !n.is_empty());
                    let to = local_target(to, name, into_dir)?;
                    copier.download(from, &to, recursive)?;
                }
                _ => {
                    return Err(failure(
                        Kind::BadInput,
                        format!(
                            "cp copies between this machine and the vdrive, and one side must be \
                         a vdrive path ({ALIAS}/PATH): use `cp` for local copies, `cairn mv` \
                         or `cairn ln` within the vdrive"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

impl Tally {
    /// "; N excluded; skipped M (see above)", for what was.
    pub(crate) fn skipped_note(&self) -> String {
        let mut note = String::new();
        if self.excluded > 0 {
            note += &format!("; {} excluded", self.excluded);
        }
        if self.skipped > 0 {
            note += &format!("; skipped {} (see above)", self.skipped);
        }
        note
    }

    /// Fails if anything could not be `done` (each was reported as it happened).
    pub(crate) fn ended(&self, done: &str) -> Result<()> {
        if self.failed > 0 {
            bail!("{} could not be {done} (see above)", self.failed);
        }
        Ok(())
    }
}

impl Copier {
    pub(crate) fn new(dir: &Path, shares: &SharesArgs) -> Result<Copier> {
        Ok(Copier {
            client: GatewayClient::for_node(dir)?,
            shares: shares.query(),
            tally: Tally::default(),
            known: None,
            exclude: Vec::new(),
        })
    }

    /// Where a local source goes in the vdrive: `to`, or inside it if it is a directory.
    fn vdrive_target(
        &self,
        to: &str,
        name: Option<&std::ffi::OsStr>,
        into_dir: bool,
    ) -> Result<String> {
        let into = into_dir || vdrive_kind(&self.client, to)?.as_deref() == Some("dir");
        if !into {
            return Ok(to.to_owned());
        }
        let Some(name) = name.and_then(|n| n.to_str()) else {
            bail!("cannot tell what to name the copy in {ALIAS}{to}: give the full path");
        };
        Ok(vdrive_path(&vdrive_join(to, name))?.to_owned())
    }

    /// Makes the vdrive directory `path` and any missing parents.
    pub(crate) fn vdrive_mkdir_all(&mut self, path: &str) -> Result<()> {
        self.tally.dirs += ensure_dirs(&self.client, path)?;
        Ok(())
    }

    fn upload(&mut self, from: &Path, to: &str, recursive: bool) -> Result<()> {
        let meta = match fs::symlink_metadata(from) {
            Ok(meta) => meta,
            Err(e) => {
                let message = format!("cannot read {}: {e}", from.display());
                return Err(failure(Kind::NotFound, message));
            }
        };
        if meta.is_dir() {
            if !recursive {
                let message = format!("{} is a directory: copy it with -r", from.display());
                return Err(failure(Kind::BadInput, message));
            }
            return self.upload_tree(from, to);
        }
        self.upload_one(from, to, &meta);
        Ok(())
    }

    /// Copies the local directory `from` to the vdrive directory `to`, made if missing.
    pub(crate) fn upload_tree(&mut self, from: &Path, to: &str) -> Result<()> {
        self.tally.dirs += u64::from(ensure_dir(&self.client, to)?);
        let mut entries: Vec<fs::DirEntry> = match fs::read_dir(from) {
            Ok(entries) => entries.filter_map(|e| self.note(e, from)).collect(),
            Err(e) => {
                self.fail(&format!("cannot list {}: {e}", from.display()));
                return Ok(());
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                self.skip(&format!("{}: the name is not UTF-8", path.display()));
                continue;
            };
            if self.excluded(&name) {
                continue;
            }
            let target = match vdrive_path(&vdrive_join(to, &name)) {
                Ok(target) => target.to_owned(),
                Err(e) => {
                    self.skip(&format!("{}: {e:#}", path.display()));
                    continue;
                }
            };
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => self.upload_tree(&path, &target)?,
                Ok(meta) => self.upload_one(&path, &target, &meta),
                Err(e) => self.fail(&format!("cannot read {}: {e}", path.display())),
            }
        }
        Ok(())
    }

    /// Uploads one file and links it at `to`; reports and skips what is not a regular file.
    fn upload_one(&mut self, from: &Path, to: &str, meta: &fs::Metadata) {
        if !meta.is_file() {
            let what = match meta.file_type().is_symlink() {
                true => "a symbolic link",
                false => "not a regular file",
            };
            return self.skip(&format!("{}: {what}", from.display()));
        }
        // A backup knows files by their canonical path.
        let canonical = self
            .known
            .as_ref()
            .and_then(|_| fs::canonicalize(from).ok());
        let unchanged = match (&self.known, &canonical) {
            (Some(db), Some(path)) => db.cap_of(path, meta),
            _ => None,
        };
        let reused = unchanged.is_some();
        if let (true, Some(bar)) = (reused, overall_progress()) {
            bar.inc(meta.len()); // counted as done, though nothing moves
        }
        let copied = match unchanged {
            Some(cap) => Ok((cap, 0)),
            None => upload_file(&self.client, from, &self.shares).map(|u| (u.cap, u.size)),
        }
        .and_then(|(cap, size)| {
            let mtime = crate::commands::mtime_secs(meta).unwrap_or(0).to_string();
            let query = [
                ("path", to),
                ("cap", &cap),
                ("replace", "true"),
                ("mtime", &mtime),
            ];
            self.client.post("/vdrive/link", &query)?;
            Ok((cap, size))
        });
        match copied {
            Ok((cap, size)) => {
                self.tally.files += 1;
                self.tally.bytes += size;
                match (&mut self.known, canonical) {
                    _ if reused => self.tally.unchanged += 1,
                    (Some(db), Some(path)) => db.remember(path, meta, cap),
                    _ => {}
                }
            }
            Err(e) => self.fail(&format!("{} -> {ALIAS}{to}: {e:#}", from.display())),
        }
    }

    fn download(&mut self, from: &str, to: &Path, recursive: bool) -> Result<()> {
        let entry: api::Entry = self.client.get("/vdrive/lookup", &[("path", from)])?;
        match entry.cap {
            Some(cap) => {
                self.download_one(&cap, from, to, entry.mtime);
                Ok(())
            }
            None if recursive => self.download_tree(from, to),
            None => Err(failure(
                Kind::BadInput,
                format!("{ALIAS}{from} is a directory: copy it with -r"),
            )),
        }
    }

    /// Copies the vdrive directory `from` to the local directory `to`, made if missing.
    fn download_tree(&mut self, from: &str, to: &Path) -> Result<()> {
        if !to.is_dir() {
            fs::create_dir(to)
                .map_err(|e| anyhow::anyhow!("cannot make the directory {}: {e}", to.display()))?;
            self.tally.dirs += 1;
        }
        let entries: Vec<api::Entry> = self.client.get("/vdrive/list", &[("path", from)])?;
        for entry in entries {
            if self.excluded(&entry.name) {
                continue;
            }
            let source = vdrive_join(from, &entry.name);
            // A name that would leave the directory is not taken from the vdrive.
            if entry.name.is_empty() || entry.name == "." || entry.name == ".." {
                self.skip(&format!("{ALIAS}{source}: not a name for a local file"));
                continue;
            }
            let target = to.join(&entry.name);
            match entry.cap {
                Some(cap) => self.download_one(&cap, &source, &target, entry.mtime),
                None => self.download_tree(&source, &target)?,
            }
        }
        Ok(())
    }

    fn download_one(&mut self, cap: &str, from: &str, to: &Path, mtime: Option<u64>) {
        match download_to(&self.client, cap, to) {
            Ok(size) => {
                self.tally.files += 1;
                self.tally.bytes += size;
                if let Some(secs) = mtime {
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
                    let set = fs::File::options()
                        .write(true)
                        .open(to)
                        .and_then(|f| f.set_modified(when));
                    if let Err(e) = set {
                        eprintln!("cairn: cannot set the time of {}: {e}", to.display());
                    }
                }
            }
            Err(e) => self.fail(&format!("{ALIAS}{from} -> {}: {e:#}", to.display())),
        }
    }

    /// A directory entry, or a report of why it cannot be read.
    fn note(&mut self, entry: std::io::Result<fs::DirEntry>, dir: &Path) -> Option<fs::DirEntry> {
        entry
            .map_err(|e| self.fail(&format!("cannot list {}: {e}", dir.display())))
            .ok()
    }

    /// Whether --exclude leaves `name` out (counted if so).
    fn excluded(&mut self, name: &str) -> bool {
        let out = self.exclude.iter().any(|p| p.matches(name));
        self.tally.excluded += u64::from(out);
        out
    }

    fn skip(&mut self, why: &str) {
        eprintln!("cairn: skipped {why}");
        self.tally.skipped += 1;
    }

    fn fail(&mut self, why: &str) {
        eprintln!("cairn: error: {why}");
        self.tally.failed += 1;
    }
}

/// Where a vdrive source goes on this machine: `to`, or inside it if it is a directory.
fn local_target(to: &Path, name: Option<&str>, into_dir: bool) -> Result<PathBuf> {
    if !(into_dir || to.is_dir()) {
        return Ok(to.to_owned());
    }
    match name {
        Some(name) => Ok(to.join(name)),
        None => bail!("cannot tell what to name the copy in {}", to.display()),
    }
}
