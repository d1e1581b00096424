//! The `cairn` command: creates and runs nodes, moves files through a running node's
//! gateway, computes caps offline, and runs simulations.

mod aliases;
mod api;
mod backup;
mod cap;
mod commands;
mod copy;
mod create;
mod demo;
mod failure;
mod gateway;
mod gateway_client;
mod life;
mod nodedir;
mod research;
mod runtime;
mod serve;
mod signals;
mod simulate;
mod upkeep;

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

const AFTER_HELP: &str = "\
A grid by hand (or all in one process: `cairn demo --keep`):
  cairn create-introducer intro
  cairn run intro 2> intro.log &   # writes intro/introducer.furl once it listens
  cairn wait intro
  cairn create-node store1 --introducer \"$(cat intro/introducer.furl)\"
  cairn run store1 2> store1.log & # and store2..store10 alike: 3-of-10 needs 7 servers (happy)
  cairn wait store1 --servers 7
  cairn -d store1 mkdir /docs
  cairn -d store1 put FILE /docs/FILE
  cairn -d store1 get /docs/FILE -o copy
  cairn stop store1                # and the others alike";

fn after_help() -> String {
    format!("{}\n\n{AFTER_HELP}", failure::EXIT_CODES)
}

/// cairn: a decentralized, least-authority storage mesh, compatible with Tahoe-LAFS's
/// immutable files. Files are encrypted and erasure-coded on the client; a cap is all it
/// takes to read one back.
#[derive(Parser)]
#[command(name = "cairn", version, after_help = after_help())]
struct Cli {
    /// The node directory to act for: put/get/ls/... talk to this (running) node. Default:
    /// $CAIRN_DIR, then ~/.cairn (`cap` stays offline unless -d is given).
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
    Wait(life::WaitArgs),
    Stop(life::StopArgs),
    Put(commands::PutArgs),
    Get(commands::GetArgs),
    Ls(commands::LsArgs),
    Mkdir(commands::MkdirArgs),
    Ln(commands::LnArgs),
    Cp(copy::CpArgs),
    Backup(backup::BackupArgs),
    Check(upkeep::CheckArgs),
    DeepCheck(upkeep::DeepCheckArgs),
    Mv(commands::MvArgs),
    Rm(commands::RmArgs),
    Status(commands::StatusArgs),
    Webopen(commands::WebopenArgs),
    Metrics(commands::MetricsArgs),
    Alias(aliases::AliasArgs),
    ImportVdrive(aliases::ImportArgs),
    Cap(cap::CapArgs),
    Sim(simulate::SimArgs),
}

use tracing_subscriber::fmt::writer::BoxMakeWriter;

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
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let (log_files, json_logs) = match &cli.command {
        Command::Run(args) => (
            args.log_dir.as_ref().map(|dir| (dir, args.keep_logs)),
            args.log_format == serve::LogFormat::Json,
        ),
        _ => (None, false),
    };
    let (writer, ansi) = match log_files {
        Some((dir, keep)) => {
            let files = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("cairn")
                .filename_suffix("log")
                .max_log_files(keep.max(1))
                .build(dir);
            match files {
                Ok(files) => (BoxMakeWriter::new(files), false),
                Err(e) => {
                    eprintln!("cairn: error: cannot write logs in {}: {e}", dir.display());
                    return ExitCode::FAILURE;
                }
            }
        }
        // Colours for a person at a terminal; plain text for a log file or a pipe.
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match json_logs {
        // One JSON object per line, for a log collector.
        true => logs.json().init(),
        false => logs.with_ansi(ansi).init(),
    }
    let json = cli.command.prints_json();
    match execute(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            let kind = failure::kind_of(&e);
            let code = kind.map_or(1, failure::Kind::exit_code);
            if json {
                // On standard output, where the JSON a script reads would have been.
                let error = serde_json::json!({
                    "error": format!("{e:#}"),
                    "kind": kind.map_or("other", failure::Kind::name),
                    "exit_code": code,
                });
                println!("{error}");
            } else {
                eprintln!("cairn: error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}

impl Command {
    /// Whether the command was asked for JSON (its errors are JSON too).
    fn prints_json(&self) -> bool {
        match self {
            Command::Put(args) => args.json,
            Command::Ls(args) => args.json,
            Command::Status(args) => args.json,
            Command::Check(args) => args.json,
            Command::DeepCheck(args) => args.json,
            _ => false,
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
        Command::Wait(args) => life::wait(args)?,
        Command::Stop(args) => life::stop(args)?,
        Command::Put(args) => commands::put(&node_dir(dir, "put")?, args)?,
        Command::Get(args) => commands::get(&node_dir(dir, "get")?, args)?,
        Command::Ls(args) => commands::ls(&node_dir(dir, "ls")?, args)?,
        Command::Mkdir(args) => commands::mkdir(&node_dir(dir, "mkdir")?, args)?,
        Command::Ln(args) => commands::ln(&node_dir(dir, "ln")?, args)?,
        Command::Cp(args) => copy::cp(&node_dir(dir, "cp")?, args)?,
        Command::Backup(args) => backup::backup(&node_dir(dir, "backup")?, args)?,
        Command::Check(args) => upkeep::check(&node_dir(dir, "check")?, args)?,
        Command::DeepCheck(args) => upkeep::deep_check(&node_dir(dir, "deep-check")?, args)?,
        Command::Mv(args) => commands::mv(&node_dir(dir, "mv")?, args)?,
        Command::Rm(args) => commands::rm(&node_dir(dir, "rm")?, args)?,
        Command::Status(args) => return commands::status(&node_dir(dir, "status")?, args),
        Command::Webopen(args) => commands::webopen(&node_dir(dir, "webopen")?, args)?,
        Command::Metrics(args) => commands::metrics(&node_dir(dir, "metrics")?, args)?,
        Command::Alias(args) => aliases::alias(&node_dir(dir, "alias")?, args)?,
        Command::ImportVdrive(args) => {
            aliases::import_vdrive(&node_dir(dir, "import-vdrive")?, args)?
        }
        Command::Cap(args) => cap::run(args, dir)?,
        Command::Sim(args) => return simulate::run(args),
    }
    Ok(true)
}

/// The node a command acts through: `-d NODEDIR`, else `$CAIRN_DIR`, else `~/.cairn`.
fn node_dir(dir: Option<&Path>, command: &str) -> Result<PathBuf> {
    let (dir, given) = match (dir, std::env::var_os("CAIRN_DIR")) {
        (Some(dir), _) => (dir.to_owned(), "-d"),
        (None, Some(env)) if !env.is_empty() => (PathBuf::from(env), "CAIRN_DIR"),
        (None, _) => match std::env::var_os("HOME") {
            Some(home) => (Path::new(&home).join(".cairn"), "the default, ~/.cairn"),
            None => {
                return Err(failure::failure(
                    failure::Kind::BadInput,
                    format!(
                        "`cairn {command}` acts through a running node: give its directory \
                         with `cairn -d NODEDIR {command} ...` or CAIRN_DIR"
                    ),
                ))
            }
        },
    };
    if !dir.join(config::CONFIG_FILE).is_file() {
        return Err(failure::failure(
            failure::Kind::BadInput,
            format!(
                "{} ({given}) is not a node directory (it has no {}): make one with \
                 `cairn create-node`, or name an existing node with `cairn -d NODEDIR \
                 {command} ...` or CAIRN_DIR",
                dir.display(),
                config::CONFIG_FILE
            ),
        ));
    }
    Ok(dir)
}
