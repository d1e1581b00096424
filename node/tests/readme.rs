//! The README's grid-by-hand block, run as written: a user copies it into a shell on a fresh
//! machine, with `cairn` on the PATH, and every line must work (`set -e`: a failing command
//! fails the test), leaving no node running.

use std::fs;
use std::path::Path;
use std::process::Command;

/// The shell block that follows `marker` in the README.
fn block_after(readme: &str, marker: &str) -> String {
    let from = readme.find(marker).expect("the README has the block");
    let start = from + readme[from..].find("```sh\n").expect("a shell block") + "```sh\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    readme[start..end].to_owned()
}

#[test]
fn the_readme_grid_by_hand_runs_as_written() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md");
    let block = block_after(&readme, "A real grid by hand");
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = Path::new(env!("CARGO_BIN_EXE_cairn"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\n{block}\nwait\n");
    let out = Command::new("timeout")
        .args(["300", "bash", "-c", &script])
        .current_dir(tmp.path())
        .env("PATH", path)
        .env_remove("CAIRN_DIR")
        .output()
        .expect("bash runs");
    let logs: String = ["intro", "store1", "me"]
        .iter()
        .map(|n| fs::read_to_string(tmp.path().join(format!("{n}.log"))).unwrap_or_default())
        .collect();
    assert!(
        out.status.success(),
        "the block failed ({}):\nstdout:\n{}\nstderr:\n{}\nlogs:\n{logs}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("URI:CHK:"), "{stdout}");
    for node in ["intro", "store1", "store5", "me"] {
        let dir = tmp.path().join(node);
        assert!(
            !dir.join("node.pid").exists(),
            "{node} was stopped and said so"
        );
        assert!(!dir.join("node.url").exists(), "{node} shut down cleanly");
    }
}
