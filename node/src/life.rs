//! A node's life from the outside: `cairn wait` until it serves, `cairn stop` to end it.
//! `cairn run` keeps its process id in `DIR/node.pid` while it runs; running in the
//! background is the job of `&` or a service manager.

use crate::api;
use crate::failure::{failure, Kind};
use crate::gateway_client::GatewayClient;
use crate::nodedir::{NODE_PID_FILE, NODE_URL_FILE};
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);

/// Wait until the node in DIR serves: its gateway answers and, for a client, the introducer
/// is connected and at least --servers storage servers are. For scripts: `cairn run DIR &`
/// then `cairn wait DIR` before using it.
#[derive(clap::Args)]
pub struct WaitArgs {
    #[arg(value_name = "DIR")]
    dir: std::path::PathBuf,
    /// Also wait until this many storage servers are connected (a client's uploads need
    /// shares_happy of them).
    #[arg(long, value_name = "N", default_value_t = 0)]
    servers: usize,
    /// Give up after this many seconds (exit 5 if the node never served, 4 if the grid
    /// never came up around it).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
}

/// Stop the node running in DIR (SIGTERM, as Ctrl-C would) and wait until it has shut
/// down cleanly.
#[derive(clap::Args)]
pub struct StopArgs {
    #[arg(value_name = "DIR")]
    dir: std::path::PathBuf,
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

pub fn wait(args: WaitArgs) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut last = String::from("the node has not written node.url yet");
    let mut served = false;
    while Instant::now() < deadline {
        match status(&args.dir) {
            Ok(status) => {
                served = true;
                let introducer = status.introducer_connected.unwrap_or(true);
                if introducer && status.servers_connected >= args.servers {
                    return Ok(());
                }
                last = format!(
                    "introducer {}, {} of {} servers connected",
                    if introducer {
                        "connected"
                    } else {
                        "not connected"
                    },
                    status.servers_connected,
                    args.servers
                );
            }
            Err(e) => last = format!("{e:#}"),
        }
        sleep(POLL);
    }
    let kind = if served {
        Kind::GridShort
    } else {
        Kind::NodeDown
    };
    let dir = args.dir.display();
    Err(failure(
        kind,
        format!("{dir} was not ready after {} s: {last}", args.timeout),
    ))
}

fn status(dir: &Path) -> Result<api::Status> {
    if !dir.join(NODE_URL_FILE).exists() {
        anyhow::bail!("the node has not written node.url yet");
    }
    GatewayClient::for_node(dir)?.get("/status", &[])
}

/// The process id of the node running in `dir`, if one is.
pub fn running_pid(dir: &Path) -> Option<libc::pid_t> {
    let text = fs::read_to_string(dir.join(NODE_PID_FILE)).ok()?;
    let pid = text.trim().parse().ok()?;
    is_our_node(pid).then_some(pid)
}

pub fn stop(args: StopArgs) -> Result<()> {
    let dir = &args.dir;
    let pid_file = dir.join(NODE_PID_FILE);
    let text = match fs::read_to_string(&pid_file) {
        Ok(text) => text,
        Err(_) => {
            let message = format!("{} is not running (no {NODE_PID_FILE})", dir.display());
            return Err(failure(Kind::NodeDown, message));
        }
    };
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    if !is_our_node(pid) {
        // Killed without a chance to clean up: what it left says nothing now.
        let _ = fs::remove_file(&pid_file);
        let _ = fs::remove_file(dir.join(NODE_URL_FILE));
        let message = format!(
            "{} is not running (its process {pid} is gone; the stale {NODE_PID_FILE} was removed)",
            dir.display()
        );
        return Err(failure(Kind::NodeDown, message));
    }
    // SAFETY: sending a signal to a process id has no memory-safety preconditions.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(e).context(format!("cannot signal the node's process {pid}"));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while is_our_node(pid) {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the node (process {pid}) is still shutting down after {} s; \
                 `kill -9 {pid}` ends it at once",
                args.timeout
            );
        }
        sleep(POLL);
    }
    eprintln!("cairn: stopped {}", dir.display());
    Ok(())
}

/// Whether process `pid` is alive and is `cairn` (not a process that took over its id).
fn is_our_node(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    if !alive {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        // A zombie (exited, not yet reaped by its parent) has an empty command line.
        Ok(cmdline) => {
            let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
            !cmdline.is_empty() && program.ends_with(b"cairn")
        }
        // No /proc (not Linux): the signal check is all there is.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}
