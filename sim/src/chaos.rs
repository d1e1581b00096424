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

use crate::faults::{Fault, FaultKind, FaultPlan, FaultRates};
use crate::{World, WorldConfig};
pub use cairn_actors::mutants::Mutant;
use cairn_actors::Time;
use grid::Grid;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use workload::Workload;

/// The scenario's knobs; [`ChaosConfig::default`] is the standard scenario.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    pub storage_nodes: usize,
    pub clients: usize,
    /// Malicious storage servers and clients among them ([`crate::byzantine`]).
    pub byzantine_servers: usize,
    pub byzantine_clients: usize,
    /// Operations each client runs during the chaos phase.
    pub ops_per_client: usize,
    /// How long faults are injected.
    pub chaos: Duration,
    /// Whether faults are injected at all (off: a calm run of the same workload).
    pub faults: bool,
    /// Keep a readable trace (for replaying a failing seed).
    pub trace: bool,
    /// A bug to plant in the actors for the run (needs the `mutants` feature).
    pub mutant: Option<Mutant>,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            storage_nodes: 20,
            clients: 3,
            byzantine_servers: 2,
            byzantine_clients: 1,
            ops_per_client: 8,
            chaos: Duration::from_secs(300),
            faults: true,
            trace: false,
            mutant: None,
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
#[derive(Clone, Debug, Default, Serialize)]
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

    let chaos_start = Time(0).after(Duration::from_secs(5));
    let chaos_end = chaos_start.after(config.chaos);
    let mut schedule = Vec::new();
    if config.faults {
        let plan = fault_plan(&grid, chaos_start, chaos_end);
        match world.schedule_fault_plan(&plan) {
            Ok(drawn) => schedule = drawn,
            Err(e) => world
                .user_mut()
                .violation(format!("the fault plan could not be scheduled: {e}")),
        }
    }
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
        report.violations.push(format!("{incident:?}"));
    }
    {
        let ledger = grid
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        report.violations.extend(ledger.breaches.iter().cloned());
        report.attacks = ledger.attacks.values().sum();
    }
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
