//! `cairn demo`, the README's main command: a whole grid in one process round-trips a file.

use std::process::Command;

#[test]
fn the_demo_round_trips_a_file_and_reports_where_its_shares_went() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["demo", "--size", "2 MiB"])
        .output()
        .expect("cairn demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cap: URI:CHK:"), "{stdout}");
    assert!(
        stdout.contains(":3:10:2097152"),
        "the cap names 3-of-10 and the size: {stdout}"
    );
    // Ten shares, each on a named storage node.
    let placed = stdout.lines().filter(|l| l.contains("-> storage-")).count();
    assert_eq!(placed, 10, "{stdout}");
    assert!(stdout.contains("the bytes match"), "{stdout}");
}
