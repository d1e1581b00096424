//! The chaos scenario in CI: determinism, and hundreds of seeds with every fault on, clean.

use cairn::sim::chaos::{self, ChaosConfig};
use cairn::sim::faults::FaultKind;
use std::collections::BTreeMap;
use std::time::Instant;

/// How many seeds every test run checks.
const SEEDS: u64 = 200;
/// The least fraction of uploads, downloads and directory operations that succeed over the
/// seeds, faults and all (the clients busy through the whole fault window; 200 seeds give
/// 0.996, 0.987, 0.929).
const SUCCESS_FLOORS: (f64, f64, f64) = (0.95, 0.93, 0.85);
/// The least times each kind of fault fires over the seeds (the rarest, torn writes, fires
/// about 600 times in 200 seeds).
const FAULTS_FIRED: u64 = 400;

#[test]
fn the_same_seed_gives_the_same_digest_and_neighbours_differ() {
    let config = ChaosConfig::default();
    let a = chaos::run(7, &config);
    let b = chaos::run(7, &config);
    let c = chaos::run(8, &config);
    assert_eq!(a.digest, b.digest, "seed 7 twice");
    assert_eq!(a.events, b.events);
    assert_ne!(a.digest, c.digest, "seeds 7 and 8");
    assert!(
        a.events > 1000 && !a.faults.is_empty(),
        "the run did something: {a:?}"
    );
}

#[test]
fn chaos_seeds_are_clean() {
    let config = ChaosConfig::default();
    let started = Instant::now();
    let (mut events, mut faults, mut violated) = (0u64, BTreeMap::<String, u64>::new(), Vec::new());
    let (mut ops, mut attacks) = ([0u64; 6], 0);
    chaos::run_seeds(0..SEEDS, &config, |report| {
        events += report.events;
        attacks += report.attacks;
        for (kind, n) in &report.faults {
            *faults.entry(kind.clone()).or_default() += n;
        }
        let o = &report.operations;
        for (total, n) in ops.iter_mut().zip([
            o.uploads,
            o.uploads_ok,
            o.downloads,
            o.downloads_ok,
            o.vdrive,
            o.vdrive_ok,
        ]) {
            *total += n;
        }
        if !report.violations.is_empty() {
            violated.push(format!(
                "seed {}: {:?}\n  replay: {}",
                report.seed,
                report.violations,
                report.replay_command()
            ));
        }
    });
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{SEEDS} chaos seeds: {events} events in {secs:.1} s ({:.0} events/s); uploads {}/{} ok, downloads {}/{} ok, vdrive {}/{} ok; faults {faults:?}; {attacks} attack messages",
        events as f64 / secs, ops[1], ops[0], ops[3], ops[2], ops[5], ops[4]
    );
    assert!(
        violated.is_empty(),
        "{} seeds violated invariants:\n{}",
        violated.len(),
        violated.join("\n")
    );
    assert!(ops[0] > SEEDS && ops[2] > SEEDS, "the workload ran");
    // Faults excuse failures, up to a point: most operations still succeed.
    for (kind, (total, ok), floor) in [
        ("uploads", (ops[0], ops[1]), SUCCESS_FLOORS.0),
        ("downloads", (ops[2], ops[3]), SUCCESS_FLOORS.1),
        ("directory operations", (ops[4], ops[5]), SUCCESS_FLOORS.2),
    ] {
        let fraction = ok as f64 / total as f64;
        assert!(
            fraction >= floor,
            "{kind}: {ok} of {total} succeeded ({fraction:.3}), under the floor of {floor}"
        );
    }
    for kind in FaultKind::ALL {
        let fired = faults.get(&format!("{kind:?}")).copied().unwrap_or(0);
        assert!(
            fired >= FAULTS_FIRED,
            "{kind:?} fired {fired} times in {SEEDS} seeds, under {FAULTS_FIRED}: {faults:?}"
        );
    }
    assert!(
        attacks > 1000 * SEEDS,
        "the byzantine peers attacked: {attacks}"
    );
}

/// Without faults and without attackers, nothing has an excuse: every upload, download and
/// directory operation of the same workload succeeds.
#[test]
fn without_faults_every_operation_succeeds() {
    let config = ChaosConfig {
        faults: false,
        byzantine_servers: 0,
        byzantine_clients: 0,
        ..ChaosConfig::default()
    };
    chaos::run_seeds(0..50, &config, |report| {
        let o = &report.operations;
        assert!(report.violations.is_empty(), "{report:?}");
        assert!(
            o.uploads > 0 && o.downloads > 0 && o.vdrive > 0,
            "{report:?}"
        );
        assert_eq!(
            (o.uploads_ok, o.downloads_ok, o.vdrive_ok),
            (o.uploads, o.downloads, o.vdrive),
            "seed {}: {o:?}",
            report.seed
        );
    });
}
