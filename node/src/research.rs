//! `cairn sim research`: runs a large-mesh durability study (see `cairn_research`) from a
//! scenario file, flags, or both (flags override the file), with a progress bar on stderr,
//! and writes the summary, time series and plots into the output directory.

use anyhow::{Context, Result};
use cairn_research::{self as research, output, Churn, Departures, Progress, Repair, Scenario};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Simulate a large mesh under churn and failures for durability and repair studies.
///
/// Files are uploaded at the start (every node up); then nodes churn for the given days
/// while a client downloads random files at random times and, with repair on, checks and
/// repairs every file once per repair interval. Writes summary.json, timeseries.csv and
/// plots (PNG and SVG) into the output directory. The same seed gives the same results.
#[derive(clap::Args)]
pub struct ResearchArgs {
    /// A scenario file (TOML; every field optional): see docs/research.md.
    #[arg(value_name = "SCENARIO.toml")]
    scenario: Option<PathBuf>,
    /// Storage nodes at the start.
    #[arg(long)]
    nodes: Option<u32>,
    /// Files uploaded at the start.
    #[arg(long)]
    files: Option<u32>,
    /// k: shares needed to read a file.
    #[arg(long)]
    shares_needed: Option<u8>,
    /// N: shares made of each file.
    #[arg(long)]
    shares_total: Option<u8>,
    /// H: servers that must hold distinct shares for an upload to count.
    #[arg(long)]
    shares_happy: Option<u8>,
    /// Each node is up a fraction P of the time (exponential up/down periods, mean cycle of a
    /// day).
    #[arg(long, value_name = "P")]
    availability: Option<f64>,
    /// Mean node lifetime in days: nodes leave for good (with their shares) and are replaced
    /// by empty ones an hour later.
    #[arg(long, value_name = "DAYS")]
    lifetime_days: Option<f64>,
    /// Simulated days of churn.
    #[arg(long, value_name = "D")]
    days: Option<f64>,
    /// `none`; `threshold:R` to repair files found with fewer than R distinct shares;
    /// `unhealthy` to repair files whose servers-of-happiness fell below H.
    #[arg(long, value_name = "none|threshold:R|unhealthy")]
    repair: Option<Repair>,
    /// Hours between two checks of the same file (repair on).
    #[arg(long, value_name = "HOURS")]
    repair_interval: Option<f64>,
    /// Download attempts over the run (default: one per file).
    #[arg(long)]
    downloads: Option<u64>,
    /// File size in bytes.
    #[arg(long, value_name = "BYTES")]
    file_size: Option<u64>,
    /// The seed.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Where to write the results.
    #[arg(long, value_name = "DIR", default_value = "research-out")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl ResearchArgs {
    /// The scenario: the file's (or the defaults), with the flags given applied over it.
    fn scenario(&self) -> Result<Scenario> {
        let mut s = match &self.scenario {
            Some(path) => load(path)?,
            None => Scenario::default(),
        };
        set(&mut s.nodes, self.nodes);
        set(&mut s.files, self.files);
        set(&mut s.shares_needed, self.shares_needed);
        set(&mut s.shares_total, self.shares_total);
        set(&mut s.shares_happy, self.shares_happy);
        set(&mut s.days, self.days);
        set(&mut s.repair, self.repair);
        set(&mut s.repair_interval_hours, self.repair_interval);
        set(&mut s.downloads, self.downloads);
        set(&mut s.file_size, self.file_size);
        set(&mut s.seed, self.seed);
        if let Some(p) = self.availability {
            s.churn = Churn::Availability {
                p,
                cycle_hours: 24.0,
            };
        }
        if let Some(days) = self.lifetime_days {
            s.departures = Departures {
                mean_lifetime_days: days,
                ..Departures::default()
            };
        }
        s.validate()?;
        Ok(s)
    }
}

fn set<T>(field: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *field = value;
    }
}

fn load(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the scenario file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid scenario", path.display()))
}

pub fn run(args: ResearchArgs) -> Result<bool> {
    let scenario = args.scenario()?;
    let bar = progress_bar(scenario.days, args.quiet);
    let started = Instant::now();
    let files = scenario.files;
    let mut show = |p: Progress| {
        bar.set_position((p.day * 1000.0) as u64);
        let rate = p.events as f64 / started.elapsed().as_secs_f64().max(1e-9) / 1e6;
        bar.set_message(match p.uploaded {
            Some(n) => format!("uploading: {n}/{files} files | {rate:.2} M events/s"),
            None => format!("day {:.1}/{} | {rate:.2} M events/s", p.day, p.days),
        });
    };
    let outcome = research::run(&scenario, &mut show)?;
    bar.finish_and_clear();
    output::write(&args.out, &outcome)
        .with_context(|| format!("writing the results into {}", args.out.display()))?;
    let s = &outcome.summary;
    println!(
        "readable {:.6} ({} of {} downloads; binomial {:.6}) | files lost {} of {} | repair {} in {} repairs | {} events in {:.1} s ({:.2} M events/s) | results in {}",
        s.readable_fraction,
        s.download_successes,
        s.download_attempts,
        s.binomial_readable_fraction,
        s.files_lost,
        s.files,
        bytes(s.repair_bytes),
        s.repairs,
        s.events,
        s.wall_seconds,
        s.events as f64 / s.wall_seconds.max(1e-9) / 1e6,
        args.out.display(),
    );
    Ok(true)
}

fn progress_bar(days: f64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some((days * 1000.0) as u64),
        match quiet {
            true => ProgressDrawTarget::hidden(),
            false => ProgressDrawTarget::stderr(),
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("uploading");
    bar
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / f64::from(1u32 << 20)),
        n => format!("{n} B"),
    }
}
