//! `cairn sim chaos` as a user runs it: one JSON object per seed, the same digest for the
//! same seed, and clear errors for a bad seed range.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

fn cairn(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("start cairn")
}

#[test]
fn json_lines_carry_the_digest_and_replay_exactly() {
    let out = cairn(&["sim", "chaos", "--seeds", "3..5", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let reports: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    for (report, seed) in reports.iter().zip([3, 4]) {
        assert_eq!(report["seed"], seed);
        assert_eq!(report["violations"], serde_json::json!([]));
        assert!(report["operations"]["uploads"].as_u64().unwrap() > 0);
        assert!(!report["faults"].as_object().unwrap().is_empty());
    }
    let again = cairn(&["sim", "chaos", "--seed", "4", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        again["digest"], reports[1]["digest"],
        "a seed replays to the same digest"
    );
    assert_ne!(reports[0]["digest"], reports[1]["digest"]);
}

#[test]
fn a_bad_seed_range_is_a_clear_error() {
    for (range, message) in [
        ("5..3", "the range is empty"),
        ("7", "takes a range A..B"),
        ("a..b", "is not a seed number"),
    ] {
        let out = cairn(&["sim", "chaos", "--seeds", range]);
        assert_eq!(out.status.code(), Some(1), "{range}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{range}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_clean_seed_has_nothing_to_shrink_and_a_scenario_file_replays() {
    let out = cairn(&["sim", "chaos", "--seed", "3", "--shrink"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("nothing to shrink"), "{said}");

    // A scenario keeps some of the seed's fault episodes: it runs them, and only them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.json");
    let scenario = serde_json::json!({
        "seed": 3, "byzantine_servers": 2, "byzantine_clients": 1, "ops_per_client": 3,
        "episodes": [0, 2], "episodes_drawn": 40,
        "invariant": "recoverable", "violation": "(written by hand)",
    });
    std::fs::write(&file, scenario.to_string()).unwrap();
    let path = file.to_str().unwrap();
    let out = cairn(&["sim", "chaos", "--replay", path, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seed"], 3);
    assert_eq!(report["violations"], serde_json::json!([]));
    let faults: u64 = report["faults"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    // Two episodes (a crash with its power loss and restart is the longest, three faults),
    // and the final checks' restart of the vdrive (two).
    assert!((3..=8).contains(&faults), "{report}");
    let uploads = report["operations"]["uploads"].as_u64().unwrap();
    assert!(
        (1..=9).contains(&uploads),
        "3 operations for each of 3 clients: {report}"
    );

    // A file that is not a scenario: a clear error.
    std::fs::write(&file, "{\"seed\": \"three\"}").unwrap();
    let out = cairn(&["sim", "chaos", "--replay", path]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not a chaos scenario"), "{said}");
}

#[test]
fn a_long_run_logs_each_seed_and_goes_on_where_it_was_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let log_arg = log.to_str().unwrap();
    let out = cairn(&["sim", "chaos", "--seeds", "10..13", "--log", log_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("seeds 10..13: 3 run, violated: none"),
        "{said}"
    );
    assert!(
        said.contains("uploads") && said.contains("faults: "),
        "{said}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 3);

    // Killed while writing seed 12's line: the half line is cut off and seed 12 runs again,
    // with the seeds after it; the seeds logged whole do not.
    let cut = text
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "{\"seed\": 12, \"dig";
    std::fs::write(&log, cut).unwrap();
    let out = cairn(&["sim", "chaos", "--seeds", "10..15", "--log", log_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split(':')
                .next()
                .unwrap()
                .trim_start_matches("seed ")
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(ran, [12, 13, 14]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("seeds 10..15: 5 run, violated: none"),
        "{said}"
    );
    let seeds: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seed"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seeds, [10, 11, 12, 13, 14]);
}
