//! Mutation testing of the chaos scenario: each of the actors' planted bugs
//! (`cairn_actors::mutants`) must be caught by the chaos invariants within a stated number
//! of seeds — proof that a clean chaos run means something. The seeds that catch each are
//! facts of the deterministic simulator. How often each is caught over many seeds (the
//! README's table) is measured by hand:
//!
//! ```sh
//! CAIRN_MUTANT_SEEDS=100 cargo test --release --test mutants -- --ignored --nocapture
//! ```

use cairn::sim::chaos::{self, ChaosConfig, Mutant};

/// For each mutant, the most seeds (from seed 0) the invariants may need to catch it.
const BUDGET: [(Mutant, u64); 5] = [
    (Mutant::VdriveAcksBeforeJournal, 10),
    (Mutant::StorageAcksCloseBeforeCommit, 10),
    (Mutant::DownloaderSkipsBlockHash, 10),
    (Mutant::UploaderCountsSharesAsHappiness, 20),
    (Mutant::ReplyCacheReexecutesDuplicates, 10),
];

/// The first seed below `budget` whose run with `mutant` breaks an invariant, and the first
/// violation it reports.
fn first_catch(mutant: Mutant, budget: u64) -> Option<(u64, String)> {
    let config = ChaosConfig {
        mutant: Some(mutant),
        ..ChaosConfig::default()
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mut start = 0;
    while start < budget {
        let end = (start + workers).min(budget);
        let mut caught = None;
        chaos::run_seeds(start..end, &config, |report| {
            if caught.is_none() {
                if let Some(violation) = report.violations.first() {
                    caught = Some((report.seed, violation.clone()));
                }
            }
        });
        if caught.is_some() {
            return caught;
        }
        start = end;
    }
    None
}

#[test]
fn every_planted_bug_is_caught_by_the_chaos_invariants() {
    let mut missed = Vec::new();
    println!("| mutant | caught at seed (budget) | first violation |");
    println!("|---|---|---|");
    for (mutant, budget) in BUDGET {
        match first_catch(mutant, budget) {
            Some((seed, violation)) => {
                let shown: String = violation.chars().take(140).collect();
                println!("| {mutant:?} | {seed} ({budget}) | {shown} |");
            }
            None => {
                println!("| {mutant:?} | not caught ({budget}) | |");
                missed.push(mutant);
            }
        }
    }
    assert!(
        missed.is_empty(),
        "not caught within their budget: {missed:?}"
    );
    assert_eq!(BUDGET.len(), Mutant::ALL.len(), "every mutant has a budget");
}

#[test]
#[ignore = "by hand: runs every mutant over many seeds"]
fn catch_rates() {
    let seeds: u64 = std::env::var("CAIRN_MUTANT_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    println!("| mutant | seeds that caught it, of {seeds} | what caught it (first seed's) |");
    println!("|---|---|---|");
    for mutant in Mutant::ALL {
        let config = ChaosConfig {
            mutant: Some(mutant),
            ..ChaosConfig::default()
        };
        let (mut caught, mut first) = (0, None);
        chaos::run_seeds(0..seeds, &config, |report| {
            if let Some(violation) = report.violations.first() {
                caught += 1;
                first.get_or_insert_with(|| violation.chars().take(100).collect::<String>());
            }
        });
        println!("| {mutant:?} | {caught} | {} |", first.unwrap_or_default());
    }
}

#[test]
fn with_no_mutant_planted_the_switch_is_off() {
    // The same seed with and without an explicit `None` runs the same.
    let plain = chaos::run(3, &ChaosConfig::default());
    let none = chaos::run(
        3,
        &ChaosConfig {
            mutant: None,
            ..ChaosConfig::default()
        },
    );
    assert_eq!(plain.digest, none.digest);
    assert!(plain.violations.is_empty(), "{:?}", plain.violations);
}

#[test]
fn a_failing_run_shrinks_to_the_few_faults_that_matter_and_replays() {
    // Skipping block hashes shows only when bit rot hits a block a download uses.
    let config = ChaosConfig {
        mutant: Some(Mutant::DownloaderSkipsBlockHash),
        ..ChaosConfig::default()
    };
    let (seed, _) = first_catch(Mutant::DownloaderSkipsBlockHash, 10).expect("caught");
    let mut trials = 0;
    let scenario = chaos::shrink(seed, &config, |_| trials += 1).expect("the seed fails");
    println!(
        "seed {seed}: {} of {} fault episodes, {} operations a client, {trials} steps: {}",
        scenario.episodes.len(),
        scenario.episodes_drawn,
        scenario.ops_per_client,
        scenario.violation
    );
    assert_eq!(scenario.invariant, "recoverable", "{}", scenario.violation);
    assert!(
        !scenario.episodes.is_empty() && scenario.episodes.len() <= 3,
        "{} episodes left of {}",
        scenario.episodes.len(),
        scenario.episodes_drawn
    );
    assert!(scenario.ops_per_client < config.ops_per_client);

    // The scenario, written down and read back, replays the failure exactly.
    let text = serde_json::to_string(&scenario).expect("a scenario serialises");
    let read: chaos::Scenario = serde_json::from_str(&text).expect("and reads back");
    assert_eq!(read, scenario);
    let replay = chaos::run(seed, &read.config(&config));
    assert!(
        replay.violations.contains(&scenario.violation),
        "{:?}",
        replay.violations
    );
    assert!(
        replay
            .schedule
            .iter()
            .any(|(_, f)| matches!(f, cairn::sim::Fault::BitRot { .. })),
        "bit rot is what it takes: {:?}",
        replay.schedule
    );
    // Without the mutant, the same scenario is clean.
    let fixed = chaos::run(
        seed,
        &ChaosConfig {
            mutant: None,
            ..read.config(&config)
        },
    );
    assert!(fixed.violations.is_empty(), "{:?}", fixed.violations);
}
