//! The standard chaos scenario: a small grid (one introducer with the vdrive, about twenty
//! storage servers, a few clients) doing real uploads, downloads and directory operations
//! (each client in its own root, and all of them in one shared directory at once) while
//! every kind of fault is injected — then healed, settled and checked.
//!
//! Invariants checked (each breach is a [`ChaosReport::violations`] line):
//! - a download returns exactly the uploaded bytes or a typed error, never other bytes;
//! - every successfully uploaded file whose shares still suffice (an oracle decodes the
//!   shares sitting on the disks after the faults end) downloads correctly once the grid
//!   has healed;
//! - no acknowledged directory change is lost (to a concurrent writer, a crash, a power
//!   loss), no removed name comes back, and a definite refusal agrees with what was
//!   acknowledged — checked by every listing and by final listings after a crash and restart
//!   of the vdrive server; no directory record from it fails to verify or goes back a
//!   version;
//! - every operation ends within its deadline;
//! - no actor panics, and every message survives its wire encoding;
//! - no honest server accepts a write, close or abort from anyone but the upload's owner
//!   (the byzantine peers among the servers and clients try, all run long);
//! - every share an upload's receipt says was placed on an honest server is on that
//!   server's disk, complete, at the end; every receipt's happiness is what its placement
//!   shows, and at least what was asked;
//! - a storage or vdrive server answers a duplicate of a request that changes something
//!   exactly as it answered the request (unless it restarted in between, losing its reply
//!   cache).
//!
//! [`ChaosConfig::mutant`] plants one of [`Mutant`]'s bugs for the run (mutation testing:
//! `tests/mutants.rs` shows each is caught).

mod answers;
pub(crate) mod grid;
mod workload;

pub use grid::REQUEST_TIMEOUT;

use crate::faults::{self, Fault, FaultKind, FaultPlan, FaultRates};
use crate::{World, WorldConfig};
pub use cairn_actors::mutants::Mutant;
use cairn_actors::Time;
use grid::Grid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use workload::Workload;

/// The invariant a violation breaks. Each violation's line starts with its name in
/// brackets (`[recoverable] file 7 could be rebuilt ...`): shrinking keeps a run failing
/// the same way by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// A download returns exactly the uploaded bytes, or a typed error.
    ExactBytes,
    /// A file whose shares still decode downloads from the healed grid.
    Recoverable,
    /// Acknowledged directory changes hold; the vdrive's records verify and never go back.
    Directories,
    /// Every operation is answered as asked, within its deadline.
    Answered,
    /// An upload's receipt is true: its happiness, its shares on their disks, one cap a file.
    Receipts,
    /// A duplicate of a change gets the change's answer.
    SameAnswer,
    /// No actor panics, and every message survives its wire encoding.
    Incidents,
    /// No honest server takes a write, close or abort from anyone but the upload's owner.
    OwnersOnly,
    /// The scenario itself could be set up (its faults and operations scheduled).
    Harness,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::ExactBytes => "exact-bytes",
            Invariant::Recoverable => "recoverable",
            Invariant::Directories => "directories",
            Invariant::Answered => "answered",
            Invariant::Receipts => "receipts",
            Invariant::SameAnswer => "same-answer",
            Invariant::Incidents => "incidents",
            Invariant::OwnersOnly => "owners-only",
            Invariant::Harness => "harness",
        }
    }

    /// A violation's line: the invariant's name in brackets, then what happened.
    pub fn line(self, what: &str) -> String {
        format!("[{}] {what}", self.name())
    }
}

/// The name of the invariant a violation's line breaks.
pub fn invariant_of(violation: &str) -> Option<&str> {
    violation
        .strip_prefix('[')?
        .split_once(']')
        .map(|(name, _)| name)
}

/// The scenario's knobs; [`ChaosConfig::default`] is the standard scenario.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    pub storage_nodes: usize,
    pub clients: usize,
    /// Malicious storage servers and clients among them ([`crate::byzantine`]).
    pub byzantine_servers: usize,
    pub byzantine_clients: usize,
    /// The most operations each client starts. Clients keep the grid busy: each starts its
    /// next operation a short pause after the last ends, for as long as faults are injected.
    pub ops_per_client: usize,
    /// How long faults are injected.
    pub chaos: Duration,
    /// Whether faults are injected at all (off: a calm run of the same workload).
    pub faults: bool,
    /// Keep a readable trace (for replaying a failing seed).
    pub trace: bool,
    /// A bug to plant in the actors for the run (needs the `mutants` feature).
    pub mutant: Option<Mutant>,
    /// Which of the seed's fault episodes happen, by their place in the order drawn
    /// ([`FaultPlan::draw_episodes`]); `None`: all. A shrunk run ([`shrink`]) keeps few.
    pub episodes: Option<Vec<usize>>,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            storage_nodes: 20,
            clients: 3,
            byzantine_servers: 2,
            byzantine_clients: 1,
            ops_per_client: 60,
            chaos: Duration::from_secs(300),
            faults: true,
            trace: false,
            mutant: None,
            episodes: None,
        }
    }
}

/// What one seed's run did and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    /// The trace digest: the same for the same seed, on any machine.
    pub digest: String,
    /// What broke; empty when nothing did.
    pub violations: Vec<String>,
    pub operations: OperationCounts,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Fault episodes the seed drew (each a fault and what undoes it), and the schedule of
    /// those that ran.
    pub fault_episodes: usize,
    #[serde(skip)]
    pub schedule: Vec<(Time, Fault)>,
    /// Attack messages the byzantine peers sent.
    pub attacks: u64,
    pub events: u64,
    pub virtual_seconds: f64,
    pub wall_seconds: f64,
    /// The readable trace, when asked for.
    #[serde(skip)]
    pub trace: Vec<String>,
    /// The command-line flags of the knobs this run changed from the standard scenario.
    #[serde(skip)]
    pub flags: String,
}

/// How many operations of each kind were attempted and succeeded.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OperationCounts {
    pub uploads: u64,
    pub uploads_ok: u64,
    pub downloads: u64,
    pub downloads_ok: u64,
    /// Directory operations (creates, listings and changes).
    pub vdrive: u64,
    pub vdrive_ok: u64,
}

impl ChaosReport {
    /// The command that replays this seed with full tracing.
    pub fn replay_command(&self) -> String {
        format!(
            "RUST_LOG=cairn_sim=debug cairn sim chaos --seed {}{} --trace",
            self.seed, self.flags
        )
    }

    /// The command that shrinks this seed's failing run to a minimal one.
    pub fn shrink_command(&self) -> String {
        format!(
            "cairn sim chaos --seed {}{} --shrink",
            self.seed, self.flags
        )
    }
}

/// A run of the chaos scenario, written down so that it can be run again: the seed, the
/// knobs, and which of its fault episodes happen. [`shrink`] makes one of a failing seed;
/// `cairn sim chaos --replay FILE` runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub seed: u64,
    pub byzantine_servers: usize,
    pub byzantine_clients: usize,
    pub ops_per_client: usize,
    /// The fault episodes that happen (their places in the order drawn), of how many the
    /// seed drew.
    pub episodes: Vec<usize>,
    pub episodes_drawn: usize,
    /// The invariant the run breaks, and how (its first violation of it).
    pub invariant: String,
    pub violation: String,
}

impl Scenario {
    /// The configuration that runs this scenario (the rest as in `base`).
    pub fn config(&self, base: &ChaosConfig) -> ChaosConfig {
        ChaosConfig {
            byzantine_servers: self.byzantine_servers,
            byzantine_clients: self.byzantine_clients,
            ops_per_client: self.ops_per_client,
            faults: true,
            episodes: Some(self.episodes.clone()),
            ..base.clone()
        }
    }
}

/// Cuts a failing run of `seed` down to a minimal one that breaks the same invariant: drops
/// fault episodes (halves, then quarters, ..., then one at a time, while the run still
/// fails; a greedy delta debugging), then makes each client do as few operations as still
/// fails. Every trial is a full deterministic run; `progress` hears of each. `None` if the
/// seed does not fail.
pub fn shrink(seed: u64, config: &ChaosConfig, mut progress: impl FnMut(&str)) -> Option<Scenario> {
    let config = ChaosConfig {
        trace: false,
        ..config.clone()
    };
    let first = run(seed, &config);
    let violation = first.violations.first()?.clone();
    let invariant = invariant_of(&violation).unwrap_or_default().to_owned();
    let mut scenario = Scenario {
        seed,
        byzantine_servers: config.byzantine_servers,
        byzantine_clients: config.byzantine_clients,
        ops_per_client: config.ops_per_client,
        episodes: match &config.episodes {
            Some(kept) => kept.clone(),
            None => (0..first.fault_episodes).collect(),
        },
        episodes_drawn: first.fault_episodes,
        invariant,
        violation,
    };
    progress(&format!(
        "seed {seed} breaks [{}] with {} fault episodes and {} operations a client",
        scenario.invariant,
        scenario.episodes.len(),
        scenario.ops_per_client
    ));
    // The first violation of the same invariant, if the candidate still fails so.
    let broken = scenario.invariant.clone();
    let fails = |candidate: &Scenario| {
        let report = run(seed, &candidate.config(&config));
        let violation = report
            .violations
            .into_iter()
            .find(|v| invariant_of(v) == Some(broken.as_str()));
        violation
    };
    let mut chunk = scenario.episodes.len().div_ceil(2).max(1);
    loop {
        let mut at = 0;
        while at < scenario.episodes.len() {
            let mut candidate = scenario.clone();
            let end = (at + chunk).min(candidate.episodes.len());
            candidate.episodes.drain(at..end);
            match fails(&candidate) {
                Some(violation) => {
                    scenario = Scenario {
                        violation,
                        ..candidate
                    };
                    progress(&format!(
                        "{} fault episodes still fail",
                        scenario.episodes.len()
                    ));
                }
                None => at += chunk,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    // Fewer operations, from one up in steps of half again.
    let mut ops = 1;
    while ops < scenario.ops_per_client {
        let candidate = Scenario {
            ops_per_client: ops,
            ..scenario.clone()
        };
        if let Some(violation) = fails(&candidate) {
            scenario = Scenario {
                violation,
                ..candidate
            };
            progress(&format!("{ops} operations a client still fail"));
            break;
        }
        ops = (ops * 3 / 2).max(ops + 1);
    }
    Some(scenario)
}

impl ChaosConfig {
    /// `cairn sim chaos`'s flags for the knobs that differ from the standard scenario (those
    /// the command line can set), each with a leading space.
    fn flags(&self) -> String {
        let standard = ChaosConfig::default();
        let mut flags = String::new();
        if !self.faults {
            flags.push_str(" --no-faults");
        }
        if self.byzantine_servers != standard.byzantine_servers {
            flags.push_str(&format!(" --byzantine-servers {}", self.byzantine_servers));
        }
        if self.byzantine_clients != standard.byzantine_clients {
            flags.push_str(&format!(" --byzantine-clients {}", self.byzantine_clients));
        }
        flags
    }
}

/// When faults start (the grid has formed by then).
pub(crate) const CHAOS_START: Duration = Duration::from_secs(5);

/// Runs the chaos scenario for `seed`.
pub fn run(seed: u64, config: &ChaosConfig) -> ChaosReport {
    let wall = Instant::now();
    let _mutant = cairn_actors::mutants::activate(config.mutant);
    let world_config = WorldConfig {
        seed,
        chaos: true,
        trace_lines: config.trace,
        user_delay: Duration::from_millis(1),
        ..WorldConfig::default()
    };
    let grid = Grid::new(seed, config);
    let workload = Workload::new(seed, &grid, config);
    let mut world = World::new(world_config, workload);
    grid.populate(&mut world);
    // The servers faults strike are the honest ones: their answers are held to the rule.
    let answers = answers::Answers::tap(&mut world, grid.faultable_nodes());

    let chaos_start = Time(0).after(CHAOS_START);
    let chaos_end = chaos_start.after(config.chaos);
    let (mut schedule, mut fault_episodes) = (Vec::new(), 0);
    if config.faults {
        let plan = fault_plan(&grid, chaos_start, chaos_end);
        let episodes = world.draw_fault_episodes(&plan);
        fault_episodes = episodes.len();
        let kept = |i: &usize| config.episodes.as_ref().is_none_or(|kept| kept.contains(i));
        schedule = faults::schedule(
            episodes
                .into_iter()
                .enumerate()
                .filter(|(i, _)| kept(i))
                .map(|(_, episode)| episode),
        );
        if let Err(e) = world.schedule_faults(&schedule) {
            schedule.clear();
            world.user_mut().violation(
                Invariant::Harness,
                format!("the fault plan could not be scheduled: {e}"),
            );
        }
    }
    let planned = schedule.clone();
    Workload::schedule_start(&mut world, chaos_start);
    world.run_until(chaos_end);
    // Heal: the plan undoes every lasting fault by its end. Let servers re-announce and
    // in-flight operations finish, then check what must hold on a calm grid.
    world.run_for(Duration::from_secs(120));
    schedule.extend(Workload::final_checks(&mut world, &grid));

    let mut report = world.user_mut().report(seed);
    let crashes = schedule.iter().filter_map(|(at, fault)| match fault {
        Fault::Crash { node } | Fault::TornWrite { node } => Some((*node, *at)),
        _ => None,
    });
    report.violations.extend(answers.differing(crashes));
    for incident in world.incidents() {
        report
            .violations
            .push(Invariant::Incidents.line(&format!("{incident:?}")));
    }
    {
        let ledger = grid
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let breaches = ledger.breaches.iter();
        report
            .violations
            .extend(breaches.map(|b| Invariant::OwnersOnly.line(b)));
        report.attacks = ledger.attacks.values().sum();
    }
    report.fault_episodes = fault_episodes;
    report.schedule = planned;
    report.digest = world.digest();
    report.events = world.counters().events;
    report.faults = fault_counts(&world);
    report.virtual_seconds = world.now().0 as f64 / 1e9;
    report.wall_seconds = wall.elapsed().as_secs_f64();
    report.trace = world.trace_lines().to_vec();
    report.flags = config.flags();
    report
}

/// Every fault kind on, at rates that keep a file's shares mostly reachable.
fn fault_plan(grid: &Grid, start: Time, end: Time) -> FaultPlan {
    let mut plan = FaultPlan::new(start, end, grid.faultable_nodes());
    // Partitions reach every link: clients from servers and from the vdrive too.
    plan.partitioned.extend(&grid.clients);
    plan.rates = FaultRates {
        crash: 0.05,
        partition: 0.02,
        loss: 0.02,
        duplication: 0.02,
        delay_spike: 0.02,
        slow_node: 0.02,
        torn_write: 0.01,
        bit_rot: 0.02,
        disk_full: 0.01,
        clock_jump: 0.01,
        degraded_link: 0.02,
    };
    plan.max_down = 4;
    plan.max_probability = 0.2;
    plan
}

fn fault_counts<U: crate::LocalUser>(world: &World<U>) -> BTreeMap<String, u64> {
    FaultKind::ALL
        .into_iter()
        .map(|k| (format!("{k:?}"), world.counters().faults_of(k)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Runs `seeds`, each single-threaded, as many at once as the machine has cores; hands each
/// report to `on_report` in seed order.
pub fn run_seeds(
    seeds: std::ops::Range<u64>,
    config: &ChaosConfig,
    mut on_report: impl FnMut(ChaosReport),
) {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min((seeds.end - seeds.start) as usize);
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let (tx, next, end) = (tx.clone(), &next, seeds.end);
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed >= end || tx.send(run(seed, config)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        // Reports arrive in any order; hand them on in seed order.
        let mut waiting = BTreeMap::new();
        let mut expected = seeds.start;
        for report in rx {
            waiting.insert(report.seed, report);
            while let Some(report) = waiting.remove(&expected) {
                on_report(report);
                expected += 1;
            }
        }
    });
}
