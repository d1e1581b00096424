//! `cairn sim`: runs the deterministic simulator.

use anyhow::{bail, Context, Result};
use cairn_sim::chaos::{self, ChaosConfig, ChaosReport, Scenario};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Run simulations of a whole grid under faults (deterministic: a seed replays exactly).
#[derive(clap::Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(clap::Subcommand)]
enum SimCommand {
    Chaos(ChaosArgs),
    Research(crate::research::ResearchArgs),
}

/// Run the standard chaos scenario: an introducer with the vdrive, 20 storage servers and 3
/// clients uploading, downloading and using the vdrive, among 2 malicious servers and a
/// malicious client, while every kind of fault is injected
/// (crashes and restarts, partitions, loss, duplication, delay spikes, slow nodes, lost
/// unsynced writes, torn writes, bit rot, full disks, clock jumps); then heal and check the
/// invariants.
///
/// Prints one line (or JSON object) per seed with its trace digest. Exits non-zero if any
/// seed violated an invariant, printing the commands that replay and shrink it.
///
/// `--seed S --shrink` cuts a failing seed's run down to the fewest fault episodes (a fault
/// and what undoes it) and operations that still break the same invariant, prints them,
/// and writes the scenario to a file that `--replay FILE` runs again.
#[derive(clap::Args)]
struct ChaosArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run the seeds A..B (B excluded), in parallel on every core.
    #[arg(long, value_name = "A..B")]
    seeds: Option<String>,
    /// One JSON object per seed (seed, digest, violations, operations, faults, events, ...).
    #[arg(long)]
    json: bool,
    /// Print the full event trace of each seed (for replaying a failure).
    #[arg(long)]
    trace: bool,
    /// Run the same workload without faults.
    #[arg(long)]
    no_faults: bool,
    /// Shrink the failing run of --seed to a minimal one (see above).
    #[arg(long, requires = "seed", conflicts_with_all = ["no_faults", "replay"])]
    shrink: bool,
    /// Where --shrink writes the scenario [default: chaos-seed-SEED.json].
    #[arg(long, value_name = "FILE", requires = "shrink")]
    scenario_out: Option<PathBuf>,
    /// Append each seed's report (a JSON line) to FILE, and skip the seeds FILE has
    /// already: a long run stopped part-way goes on where it stopped when run again.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["shrink", "replay"])]
    log: Option<PathBuf>,
    /// Run the scenario in FILE, as --shrink wrote it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seed", "seeds", "no_faults"])]
    replay: Option<PathBuf>,
    /// Malicious storage servers among the 20 honest ones: they accept shares and keep none,
    /// lie about what they hold, serve garbage, and attack other servers' uploads and the
    /// introducer (see SECURITY.md).
    #[arg(long, value_name = "N", default_value_t = ChaosConfig::default().byzantine_servers)]
    byzantine_servers: usize,
    /// Malicious clients: they flood servers, the introducer and the vdrive.
    #[arg(long, value_name = "N", default_value_t = ChaosConfig::default().byzantine_clients)]
    byzantine_clients: usize,
}

pub fn run(args: SimArgs) -> Result<bool> {
    let args = match args.command {
        SimCommand::Chaos(args) => args,
        SimCommand::Research(args) => return crate::research::run(args),
    };
    let seeds = match (&args.seed, &args.seeds) {
        (Some(seed), _) => *seed..seed.saturating_add(1),
        (None, Some(range)) => parse_range(range)?,
        (None, None) => 0..1,
    };
    let mut config = ChaosConfig {
        trace: args.trace,
        faults: !args.no_faults,
        byzantine_servers: args.byzantine_servers,
        byzantine_clients: args.byzantine_clients,
        ..ChaosConfig::default()
    };
    if let Some(file) = &args.replay {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the scenario {}", file.display()))?;
        let scenario: Scenario = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a chaos scenario", file.display()))?;
        config = scenario.config(&config);
        let report = chaos::run(scenario.seed, &config);
        print_report(&report, args.json, args.trace, false);
        if !report.violations.is_empty() {
            let file = file.display();
            eprintln!(
                "replay with: RUST_LOG=cairn_sim=debug cairn sim chaos --replay {file} --trace"
            );
        }
        return Ok(report.violations.is_empty());
    }
    if args.shrink {
        return shrink(seeds.start, &config, args.scenario_out);
    }
    let mut summary = Summary::default();
    let mut log = None;
    let mut done = BTreeSet::new();
    if let Some(path) = &args.log {
        let kept;
        (done, kept) = logged(path, &seeds, &mut summary)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open the log {}", path.display()))?;
        // Cut off a line a killed run left half-written, and go on after the rest.
        file.set_len(kept)?;
        file.seek(std::io::SeekFrom::End(0))?;
        log = Some(std::io::BufWriter::new(file));
    }
    let bar = progress_bar(seeds.end - seeds.start, done.len() as u64);
    for range in missing(&seeds, &done) {
        let mut failed: Option<std::io::Error> = None;
        chaos::run_seeds(range, &config, |report| {
            summary.add(&report);
            if let (Some(log), None) = (&mut log, &failed) {
                let line = serde_json::to_string(&report).expect("a report serialises");
                let written = writeln!(log, "{line}").and_then(|()| log.flush());
                failed = written.err();
            }
            bar.suspend(|| print_report(&report, args.json, args.trace, true));
            bar.inc(1);
        });
        if let Some(e) = failed {
            return Err(e).context("cannot write to the log");
        }
    }
    bar.finish_and_clear();
    if seeds.end - seeds.start > 1 {
        summary.print(&seeds);
    }
    Ok(summary.violated.is_empty())
}

/// What a range of seeds did, in all.
#[derive(Default)]
struct Summary {
    seeds: u64,
    violated: Vec<u64>,
    operations: BTreeMap<&'static str, (u64, u64)>,
    faults: BTreeMap<String, u64>,
    events: u64,
    started: Option<std::time::Instant>,
}

impl Summary {
    fn add(&mut self, report: &ChaosReport) {
        self.started.get_or_insert_with(std::time::Instant::now);
        self.seeds += 1;
        if !report.violations.is_empty() {
            self.violated.push(report.seed);
        }
        let o = &report.operations;
        for (kind, total, ok) in [
            ("uploads", o.uploads, o.uploads_ok),
            ("downloads", o.downloads, o.downloads_ok),
            ("directory operations", o.vdrive, o.vdrive_ok),
        ] {
            let entry = self.operations.entry(kind).or_default();
            entry.0 += total;
            entry.1 += ok;
        }
        for (kind, n) in &report.faults {
            *self.faults.entry(kind.clone()).or_default() += n;
        }
        self.events += report.events;
    }

    fn print(&self, seeds: &Range<u64>) {
        let ops: Vec<String> = (self.operations.iter())
            .map(|(kind, (total, ok))| format!("{kind} {ok}/{total} ok"))
            .collect();
        let faults: Vec<String> = (self.faults.iter())
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let violated = match self.violated.len() {
            0 => "none".to_owned(),
            n => {
                let shown: Vec<String> =
                    self.violated.iter().take(20).map(u64::to_string).collect();
                format!(
                    "{n} (seeds {}{})",
                    shown.join(", "),
                    if n > 20 { ", ..." } else { "" }
                )
            }
        };
        eprintln!(
            "seeds {}..{}: {} run, violated: {violated}\n  operations: {}\n  faults: {}\n  events: {}",
            seeds.start,
            seeds.end,
            self.seeds,
            ops.join(", "),
            faults.join(", "),
            self.events,
        );
    }
}

/// The seeds of `range` that the log at `path` has reports of (their reports counted into
/// `summary`; none if it does not exist yet), and how many of its bytes are whole lines.
fn logged(path: &Path, range: &Range<u64>, summary: &mut Summary) -> Result<(BTreeSet<u64>, u64)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((BTreeSet::new(), 0)),
        Err(e) => return Err(e).with_context(|| format!("cannot read the log {}", path.display())),
    };
    // A run killed mid-write leaves a partial last line: that seed runs again.
    let whole = text.rfind('\n').map_or(0, |end| end + 1);
    let mut done = BTreeSet::new();
    for (n, line) in text[..whole].lines().enumerate() {
        let report: LoggedReport = serde_json::from_str(line)
            .with_context(|| format!("{} line {} is not a chaos report", path.display(), n + 1))?;
        if range.contains(&report.seed) && done.insert(report.seed) {
            summary.add(&report.into());
        }
    }
    Ok((done, whole as u64))
}

/// A report as the log holds it.
#[derive(serde::Deserialize)]
struct LoggedReport {
    seed: u64,
    violations: Vec<String>,
    operations: chaos::OperationCounts,
    faults: BTreeMap<String, u64>,
    events: u64,
}

impl From<LoggedReport> for ChaosReport {
    fn from(logged: LoggedReport) -> Self {
        ChaosReport {
            seed: logged.seed,
            violations: logged.violations,
            operations: logged.operations,
            faults: logged.faults,
            events: logged.events,
            ..ChaosReport::default()
        }
    }
}

/// The runs of seeds in `range` not in `done`.
fn missing(range: &Range<u64>, done: &BTreeSet<u64>) -> Vec<Range<u64>> {
    let mut runs = Vec::new();
    let mut start = None;
    for seed in range.clone() {
        match (done.contains(&seed), start) {
            (false, None) => start = Some(seed),
            (true, Some(from)) => {
                runs.push(from..seed);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        runs.push(from..range.end);
    }
    runs
}

/// A bar over the seeds, on a terminal only.
fn progress_bar(total: u64, done: u64) -> ProgressBar {
    let target = match std::io::stderr().is_terminal() && total > 1 {
        true => ProgressDrawTarget::stderr(),
        false => ProgressDrawTarget::hidden(),
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {per_sec}, {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done);
    bar
}

/// `--shrink`: cuts `seed`'s failing run down, shows what is left and writes it to a file.
fn shrink(seed: u64, config: &ChaosConfig, out: Option<PathBuf>) -> Result<bool> {
    let Some(scenario) = chaos::shrink(seed, config, |step| eprintln!("shrinking: {step}")) else {
        println!("seed {seed} breaks no invariant: nothing to shrink");
        return Ok(true);
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("chaos-seed-{seed}.json")));
    let text = serde_json::to_string_pretty(&scenario)?;
    std::fs::write(&out, text + "\n")
        .with_context(|| format!("cannot write the scenario to {}", out.display()))?;
    let report = chaos::run(seed, &scenario.config(config));
    println!(
        "seed {seed} shrunk to {} of its {} fault episodes and {} operations a client; it \
         still breaks [{}]:\n  {}\nits faults:",
        scenario.episodes.len(),
        scenario.episodes_drawn,
        scenario.ops_per_client,
        scenario.invariant,
        scenario.violation
    );
    for (at, fault) in &report.schedule {
        println!("  at {:.3} s: {fault:?}", at.0 as f64 / 1e9);
    }
    println!(
        "written to {}; replay with: RUST_LOG=cairn_sim=debug cairn sim chaos --replay {} --trace",
        out.display(),
        out.display()
    );
    Ok(false)
}

fn parse_range(text: &str) -> Result<Range<u64>> {
    let (a, b) = text
        .split_once("..")
        .context("--seeds takes a range A..B, e.g. 0..200")?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .with_context(|| format!("{s:?} is not a seed number"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a >= b {
        bail!("--seeds {text}: the range is empty (B is excluded)");
    }
    Ok(a..b)
}

/// Prints a seed's report; with `commands`, and if it failed, how to replay and shrink it.
fn print_report(report: &ChaosReport, json: bool, trace: bool, commands: bool) {
    if trace {
        for line in &report.trace {
            println!("{line}");
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("a report serialises")
        );
    } else {
        let ops = &report.operations;
        let faults: u64 = report.faults.values().sum();
        println!(
            "seed {}: {} digest {} | {} events, {:.0} s simulated in {:.2} s | uploads {}/{}, downloads {}/{}, vdrive {}/{} ok | {} faults, {} attacks",
            report.seed,
            if report.violations.is_empty() { "ok" } else { "VIOLATED" },
            report.digest,
            report.events,
            report.virtual_seconds,
            report.wall_seconds,
            ops.uploads_ok,
            ops.uploads,
            ops.downloads_ok,
            ops.downloads,
            ops.vdrive_ok,
            ops.vdrive,
            faults,
            report.attacks,
        );
    }
    for v in &report.violations {
        eprintln!("seed {}: violation: {v}", report.seed);
    }
    if commands && !report.violations.is_empty() {
        eprintln!(
            "seed {}: replay with: {}",
            report.seed,
            report.replay_command()
        );
        eprintln!(
            "seed {}: shrink with: {}",
            report.seed,
            report.shrink_command()
        );
    }
}
