//! The `cairn` command: computes caps today; runs nodes and grids as the project grows.

mod cap;
mod nodedir;
mod research;
mod simulate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command failed (the message on stderr says why), or a simulation found a
     violation
  2  the command line was not understood";

/// cairn: a decentralized, least-authority storage mesh, compatible with Tahoe-LAFS's
/// immutable files.
#[derive(Parser)]
#[command(name = "cairn", version, after_help = EXIT_CODES)]
struct Cli {
    /// The node directory to act for (its convergence secret, and later its gateway).
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
    Cap(cap::CapArgs),
    Sim(simulate::SimArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cap(args) => cap::run(args, cli.node_dir.as_deref()).map(|()| true),
        Command::Sim(args) => simulate::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cairn: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
