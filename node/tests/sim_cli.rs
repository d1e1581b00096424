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
