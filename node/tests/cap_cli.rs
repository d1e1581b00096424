//! `cairn cap` as a user runs it: from a file and from standard input, with each source of the
//! convergence secret, and with bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
/// base32 of "aaaaaaaaaaaaaaaa", the convergence secret of half of Tahoe's vectors.
const SECRET: &str = "mfqwcylbmfqwcylbmfqwcylbme";
/// Tahoe's vector for 56 bytes of "a", 3-of-10, 128 KiB segments, that secret.
const CAP_56_A: &str = "URI:CHK:hah7mxwfpqemm7icdh3hwsa5fa:6epvxt2uxh42obpnfn4wkrplqml7voh7aqpnqnapu7ffcyn2hk3q:3:10:56";

fn cairn(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cairn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn file_and_stdin_give_tahoes_cap() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "a56", &[b'a'; 56]);
    let args = [
        "cap",
        "--max-segment-size",
        "131072",
        "--convergence-secret",
        SECRET,
    ];
    let from_file = cairn(&[&args[..], &[&file]].concat(), b"");
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(stdout(&from_file), CAP_56_A);
    let from_stdin = cairn(&[&args[..], &["-"]].concat(), &[b'a'; 56]);
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert_eq!(stdout(&from_stdin), CAP_56_A);
    assert!(!stderr(&from_file).contains("warning"));
}

#[test]
fn small_files_get_literal_caps() {
    let out = cairn(&["cap", "--convergence-secret", SECRET, "-"], b"hello");
    assert!(out.status.success());
    assert_eq!(stdout(&out), "URI:LIT:nbswy3dp");
    let out = cairn(&["cap", "--convergence-secret", SECRET, "-"], &[b'x'; 55]);
    assert!(stdout(&out).starts_with("URI:LIT:"));
    let out = cairn(&["cap", "--convergence-secret", SECRET, "-"], b"");
    assert_eq!(stdout(&out), "URI:LIT:");
}

#[test]
fn default_secret_warns_and_node_secret_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "f", &[7u8; 5000]);
    let zero = cairn(&["cap", &file], b"");
    assert!(zero.status.success());
    assert!(
        stderr(&zero).contains("warning: no convergence secret"),
        "{}",
        stderr(&zero)
    );
    assert!(stdout(&zero).starts_with("URI:CHK:") && stdout(&zero).ends_with(":3:10:5000"));

    let node = dir.path().join("node");
    std::fs::create_dir_all(node.join("private")).unwrap();
    std::fs::write(node.join("private/convergence"), format!("{SECRET}\n")).unwrap();
    let with_node = cairn(&["-d", node.to_str().unwrap(), "cap", &file], b"");
    assert!(with_node.status.success(), "{}", stderr(&with_node));
    let explicit = cairn(&["cap", "--convergence-secret", SECRET, &file], b"");
    assert_eq!(stdout(&with_node), stdout(&explicit));
    assert_ne!(stdout(&with_node), stdout(&zero));
}

#[test]
fn with_a_node_the_cap_is_the_one_its_put_would_give() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "f", &[7u8; 5000]);
    let node = dir.path().join("node");
    let furl = "pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@127.0.0.1:1/abcdefghijklmnopqrstuvwxyz";
    let node_arg = node.to_str().unwrap();
    let encoding = [
        "--shares-needed",
        "2",
        "--shares-happy",
        "4",
        "--shares-total",
        "5",
    ];
    let mut create = vec!["create-node", node_arg, "--introducer", furl];
    create.extend(encoding);
    let created = cairn(&create, b"");
    assert!(created.status.success(), "{}", stderr(&created));
    let cap = stdout(&cairn(&["-d", node_arg, "cap", &file], b""));
    assert!(cap.ends_with(":2:5:5000"), "the node's 2-of-5: {cap}");
    let cap = stdout(&cairn(
        &["-d", node_arg, "cap", "--shares-total", "6", &file],
        b"",
    ));
    assert!(cap.ends_with(":2:6:5000"), "an explicit N wins: {cap}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "f", &[1u8; 100]);
    let cases: [(&[&str], &str); 6] = [
        (&["cap", "/no/such/file"], "cannot open /no/such/file"),
        (
            &["cap", "--shares-needed", "11", &file],
            "1 <= k <= N <= 256",
        ),
        (
            &["cap", "--shares-total", "300", &file],
            "1 <= k <= N <= 256",
        ),
        (
            &["cap", "--max-segment-size", "0", &file],
            "at least 1 byte",
        ),
        (
            &["cap", "--convergence-secret", "NOT-BASE32", &file],
            "--convergence-secret must be",
        ),
        (
            &["-d", "/no/such/node", "cap", &file],
            "convergence secret at /no/such/node/private/convergence",
        ),
    ];
    for (args, message) in cases {
        let out = cairn(args, b"");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    let dir_arg = cairn(&["cap", dir.path().to_str().unwrap()], b"");
    assert!(stderr(&dir_arg).contains("is a directory"));
    let usage = cairn(&["cap"], b"");
    assert_eq!(usage.status.code(), Some(2));
}
