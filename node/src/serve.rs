//! `cairn run DIR`: runs a node in the foreground until SIGINT or SIGTERM.

use crate::nodedir::{self, NODE_PID_FILE};
use crate::{life, runtime};
use anyhow::Result;
use std::path::PathBuf;

/// Run the node in DIR in the foreground until Ctrl-C (SIGINT) or SIGTERM, then shut down
/// cleanly. Once listening it writes DIR/node.url (its gateway) and, for an introducer,
/// DIR/introducer.furl, and keeps its process id in DIR/node.pid (`cairn stop DIR`). Logs go
/// to stderr, or with --log-dir to daily files; set RUST_LOG (e.g. RUST_LOG=cairn_net=debug)
/// for more.
#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Write the log to files in this directory instead of stderr: one per day
    /// (`cairn.YYYY-MM-DD.log`), the oldest deleted past --keep-logs.
    #[arg(long, value_name = "LOGDIR")]
    pub log_dir: Option<PathBuf>,
    /// How many daily log files --log-dir keeps.
    #[arg(long, value_name = "N", default_value_t = 7, requires = "log_dir")]
    pub keep_logs: usize,
    /// text (for people) or json (one object per line, for a log collector).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How `cairn run` writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(args: RunArgs) -> Result<()> {
    let pid_file = args.dir.join(NODE_PID_FILE);
    if let Some(pid) = life::running_pid(&args.dir) {
        anyhow::bail!(
            "{} is already running (process {pid}); stop it with `cairn stop {}`",
            args.dir.display(),
            args.dir.display()
        );
    }
    tokio_runtime()?.block_on(async {
        let node = runtime::start(&args.dir).await?;
        nodedir::write_atomically(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
        // A person at the console gets a line; a log collector gets the log alone (the node
        // logs that it runs, and stops, either way).
        let plain = args.log_format == LogFormat::Text;
        if plain {
            eprintln!(
                "cairn: {} running as {} (gateway {}); stop with Ctrl-C",
                node.config.node.nickname,
                node.node.id(),
                node.gateway_url
            );
        }
        until_stopped().await?;
        match plain {
            true => eprintln!("cairn: stopping"),
            false => tracing::info!("node stopping"),
        }
        node.stop().await;
        let _ = std::fs::remove_file(&pid_file);
        Ok(())
    })
}

/// The multi-threaded runtime nodes run on: network I/O on its workers, which hand their other
/// tasks on before codec work or a store's disk I/O blocks them (`block_in_place`).
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Waits for SIGINT or SIGTERM.
pub async fn until_stopped() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
