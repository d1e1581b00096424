//! `cairn sim research` as a researcher runs it: flags or a scenario file, every output file
//! written, the same seed giving the same summary, and clear errors for bad parameters.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

fn cairn(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("start cairn")
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

const SMALL: [&str; 16] = [
    "--nodes",
    "30",
    "--files",
    "60",
    "--shares-needed",
    "2",
    "--shares-total",
    "5",
    "--shares-happy",
    "4",
    "--availability",
    "0.8",
    "--days",
    "3",
    "--repair",
    "threshold:4",
];

#[test]
fn flags_run_a_study_and_write_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let mut args = vec![
        "sim",
        "research",
        "--seed",
        "9",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SMALL);
    let run = cairn(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("readable"));
    for name in cairn_research::output::FILES {
        let len = std::fs::metadata(out.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 100, "{name} missing or empty");
    }
    let png = std::fs::read(out.join("availability.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let s = summary(&out);
    for key in [
        "readable_fraction",
        "download_attempts",
        "files_lost",
        "repair_bytes",
        "events",
        "wall_seconds",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}");
    }
    assert_eq!(s["parameters"]["nodes"], 30);
    assert_eq!(s["parameters"]["repair"], "threshold:4");
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(csv.starts_with("day,members,up,availability,files_lost"));
    assert!(csv.lines().count() > 10);

    // The same seed again, through a scenario file: the same summary but for the wall time.
    let toml = dir.path().join("s.toml");
    std::fs::write(
        &toml,
        "nodes = 30\nfiles = 60\nshares_needed = 2\nshares_total = 5\nshares_happy = 4\n\
         days = 3.0\nseed = 9\nrepair = \"threshold:4\"\n\
         [churn]\nmodel = \"availability\"\np = 0.8\ncycle_hours = 24.0\n",
    )
    .unwrap();
    let again = dir.path().join("b");
    let run = cairn(&[
        "sim",
        "research",
        toml.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (mut a, mut b) = (s, summary(&again));
    a["wall_seconds"] = 0.into();
    b["wall_seconds"] = 0.into();
    assert_eq!(a, b);
}

#[test]
fn bad_parameters_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--repair", "sometimes"], "threshold:R"),
        (&["--nodes", "3"], "--nodes"),
        (&["--availability", "1.5"], "availability"),
    ];
    for (flags, says) in cases {
        let mut args = vec!["sim", "research", "--out", out];
        args.extend(flags);
        let run = cairn(&args);
        assert!(!run.status.success(), "{flags:?} accepted");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(says), "{flags:?}: {err}");
    }
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "nodes = 10\ncolour = \"blue\"\n").unwrap();
    let run = cairn(&["sim", "research", toml.to_str().unwrap(), "--out", out]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("colour"));
}
