//! The `cairn` command: creates and runs nodes, moves files through a running node's
//! gateway, computes caps offline, and runs simulations.

mod api;
mod cap;
mod commands;
mod create;
mod demo;
mod gateway;
mod gateway_client;
mod nodedir;
mod research;
mod runtime;
mod serve;
mod signals;
mod simulate;

use anyhow::Result;
use cairn_node::config;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// jemalloc (its default configuration) instead of glibc malloc, for the whole binary.
///
/// The research simulator allocates and frees a message or two per event: with jemalloc
/// `benches/research.sh` ran 34.0 s instead of 40.5 s (best of 8 runs each; same digest, peak
/// RSS 1.18 vs 1.17 GiB). A real node keeps to its memory: `benches/grid.sh`'s client node
/// peaked at 53-72 MiB over 24 runs, against 50-102 MiB (5 runs of 28 over 100) with glibc;
/// put as fast or faster (median 104 vs 87 MB/s), get as fast (266 vs 260 MB/s). mimalloc
/// v3 was tried first (and reverted once): with its defaults the client peaked at 101-158
/// MiB (transparent huge pages on its arenas, a 1 s purge delay); built without huge pages
/// and with a 20 ms purge delay for nodes it kept to 51-86 MiB at the same research speed,
/// but only through per-command tuning by mimalloc's option numbers.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command failed (the message on stderr says why: a node not running, a file not
     found, not enough shares, ...), or a simulation found a violation
  2  the command line was not understood

A grid by hand (or all in one process: `cairn demo --keep`):
  cairn create-introducer intro
  cairn run intro &          # writes intro/introducer.furl once it listens
  cairn create-node store1 --introducer \"$(cat intro/introducer.furl)\"
  cairn run store1 &         # and store2..store10 alike: 3-of-10 needs 7 servers (happy)
  cairn -d store1 mkdir /docs
  cairn -d store1 put FILE /docs/FILE
  cairn -d store1 get /docs/FILE -o copy";

/// cairn: a decentralized, least-authority storage mesh, compatible with Tahoe-LAFS's
/// immutable files. Files are encrypted and erasure-coded on the client; a cap is all it
/// takes to read one back.
#[derive(Parser)]
#[command(name = "cairn", version, after_help = EXIT_CODES)]
struct Cli {
    /// The node directory to act for: put/get/ls/... talk to this (running) node.
    #[arg(
        short = 'd',
        long = "node-directory",
        global = true,
        value_name = "NODEDIR"
    )]
    node_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(demo::DemoArgs),
    CreateIntroducer(create::CreateIntroducerArgs),
    CreateNode(create::CreateNodeArgs),
    Run(serve::RunArgs),
    Put(commands::PutArgs),
    Get(commands::GetArgs),
    Ls(commands::LsArgs),
    Mkdir(commands::MkdirArgs),
    Ln(commands::LnArgs),
    Mv(commands::MvArgs),
    Rm(commands::RmArgs),
    Status(commands::StatusArgs),
    Webopen(commands::WebopenArgs),
    Cap(cap::CapArgs),
    Sim(simulate::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The commands that print for a pipe end quietly when it closes; a node keeps running.
    if !matches!(cli.command, Command::Run(_) | Command::Demo(_)) {
        signals::die_on_broken_pipe();
    }
    // A running node reports what it does; other commands speak only of trouble.
    let level = match cli.command {
        Command::Run(_) => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        )
        .with_writer(std::io::stderr)
        .init();
    match execute(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cairn: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when it ran but found something wrong (a simulation).
fn execute(cli: Cli) -> Result<bool> {
    let dir = cli.node_dir.as_deref();
    match cli.command {
        Command::Demo(args) => demo::run(args)?,
        Command::CreateIntroducer(args) => create::create_introducer(args)?,
        Command::CreateNode(args) => create::create_node(args)?,
        Command::Run(args) => serve::run(args)?,
        Command::Put(args) => commands::put(node_dir(dir, "put")?, args)?,
        Command::Get(args) => commands::get(node_dir(dir, "get")?, args)?,
        Command::Ls(args) => commands::ls(node_dir(dir, "ls")?, args)?,
        Command::Mkdir(args) => commands::mkdir(node_dir(dir, "mkdir")?, args)?,
        Command::Ln(args) => commands::ln(node_dir(dir, "ln")?, args)?,
        Command::Mv(args) => commands::mv(node_dir(dir, "mv")?, args)?,
        Command::Rm(args) => commands::rm(node_dir(dir, "rm")?, args)?,
        Command::Status(args) => commands::status(node_dir(dir, "status")?, args)?,
        Command::Webopen(args) => commands::webopen(node_dir(dir, "webopen")?, args)?,
        Command::Cap(args) => cap::run(args, dir)?,
        Command::Sim(args) => return simulate::run(args),
    }
    Ok(true)
}

fn node_dir<'a>(dir: Option<&'a Path>, command: &str) -> Result<&'a Path> {
    let dir = dir.ok_or_else(|| {
        anyhow::anyhow!(
            "`cairn {command}` acts through a running node: give its directory with \
             `cairn -d NODEDIR {command} ...`"
        )
    })?;
    if !dir.join(config::CONFIG_FILE).is_file() {
        anyhow::bail!(
            "{} is not a node directory (it has no {}): make one with `cairn create-node`, \
             or give the directory of an existing node",
            dir.display(),
            config::CONFIG_FILE
        );
    }
    Ok(dir)
}
