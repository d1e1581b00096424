//! A node's life and the CLI's answers as a script sees them: the default node directory,
//! `wait` and `stop`, one node per directory, and an exit status per kind of failure (with
//! JSON errors under `--json`).

mod support;

use std::fs;
use std::path::Path;
use std::process::Output;
use support::{cairn, ok, Running};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cairn args` with the environment's node directory settings replaced by `env`.
fn run_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = cairn();
    command.env_remove("CAIRN_DIR").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("cairn runs")
}

fn run(args: &[&str]) -> Output {
    run_with(&[], args)
}

#[test]
fn without_a_running_node_each_command_says_which_node_and_exits_by_kind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().to_str().expect("utf-8");

    // No node directory: -d, then CAIRN_DIR, then ~/.cairn; each named in the message.
    let out = run_with(&[("HOME", home)], &["ls"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(".cairn") && stderr(&out).contains("CAIRN_DIR"));
    let out = run_with(&[("HOME", home), ("CAIRN_DIR", "/no/such/node")], &["ls"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("/no/such/node (CAIRN_DIR)"),
        "{}",
        stderr(&out)
    );
    let out = run(&["-d", "/no/such/node", "status"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not a node directory"),
        "{}",
        stderr(&out)
    );

    // A node directory whose node is not running: 5, from every command that needs it.
    let dir = tmp.path().join(".cairn");
    let dir_text = dir.to_str().expect("utf-8");
    ok(&["create-introducer", dir_text]);
    let out = run_with(&[("HOME", home)], &["ls"]);
    assert_eq!(
        code(&out),
        5,
        "the default ~/.cairn is used: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("is the node running?"),
        "{}",
        stderr(&out)
    );
    let out = run(&["-d", dir_text, "ls", "--json"]);
    assert_eq!(code(&out), 5);
    let error: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(error["kind"], "node_down");
    assert_eq!(error["exit_code"], 5);
    assert_eq!(code(&run(&["stop", dir_text])), 5);
    assert_eq!(code(&run(&["wait", dir_text, "--timeout", "1"])), 5);

    // A pid file left by a node that was killed is stale: stop says so and removes it.
    let finished = std::process::Command::new("true").spawn().expect("true");
    let dead = finished.id();
    let mut finished = finished;
    finished.wait().expect("wait");
    fs::write(dir.join("node.pid"), format!("{dead}\n")).expect("write");
    let out = run(&["stop", dir_text]);
    assert_eq!(code(&out), 5);
    assert!(stderr(&out).contains("stale"), "{}", stderr(&out));
    assert!(!dir.join("node.pid").exists());
}

#[test]
fn create_node_takes_any_consistent_subset_of_k_happy_and_n() {
    let tmp = tempfile::tempdir().expect("tmp");
    let furl = "pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@127.0.0.1:1/aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let cases: [(&[&str], [usize; 3]); 4] = [
        (&[], [3, 7, 10]),
        (&["--shares-total", "5"], [3, 5, 5]),
        (&["--shares-needed", "2", "--shares-total", "5"], [2, 5, 5]),
        (&["--shares-needed", "12"], [12, 12, 12]),
    ];
    for (i, (flags, [k, happy, n])) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("n{i}"));
        let mut args = vec![
            "create-node",
            dir.to_str().expect("utf-8"),
            "--introducer",
            furl,
        ];
        args.extend_from_slice(flags);
        let out = run(&args);
        assert_eq!(code(&out), 0, "{flags:?}: {}", stderr(&out));
        let config = fs::read_to_string(dir.join("cairn.toml")).expect("config");
        for line in [
            format!("shares_needed = {k}"),
            format!("shares_happy = {happy}"),
            format!("shares_total = {n}"),
        ] {
            assert!(
                config.contains(&line),
                "{flags:?}: no {line:?} in\n{config}"
            );
        }
    }
    let dir = tmp.path().join("bad");
    let out = run(&[
        "create-node",
        dir.to_str().expect("utf-8"),
        "--introducer",
        furl,
        "--shares-happy",
        "11",
        "--shares-total",
        "10",
    ]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("shares_happy = 11 must lie between"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_running_node_is_waited_for_refuses_a_second_run_and_stops_on_request() {
    let tmp = tempfile::tempdir().expect("tmp");
    let intro = tmp.path().join("intro");
    let intro_text = intro.to_str().expect("utf-8");
    ok(&["create-introducer", intro_text]);
    let mut introducer = Running::start(&intro);
    let furl = fs::read_to_string(intro.join("introducer.furl")).expect("furl");

    // One storage node and client: too few servers for the default happy=7.
    let node = tmp.path().join("node");
    let node_text = node.to_str().expect("utf-8");
    ok(&[
        "create-node",
        node_text,
        "--introducer",
        furl.trim(),
        "--reserved-space",
        "0 B",
    ]);
    let _node = Running::start(&node);
    ok(&["wait", node_text, "--servers", "1"]);
    let status = ok(&["-d", node_text, "status"]);
    assert!(
        status.contains("encoding:   3-of-10, happy at 7 servers"),
        "{status}"
    );
    assert!(
        status.contains("storage:    "),
        "its own storage server: {status}"
    );
    let out = run(&["wait", node_text, "--servers", "2", "--timeout", "1"]);
    assert_eq!(
        code(&out),
        4,
        "the node serves, the grid is short: {}",
        stderr(&out)
    );

    let out = run(&["run", node_text]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));

    // Each kind of failure, its own status.
    let file = tmp.path().join("file");
    fs::write(&file, vec![1u8; 10_000]).expect("write");
    let file_text = file.to_str().expect("utf-8");
    let out = run(&["-d", node_text, "put", file_text]);
    assert_eq!(code(&out), 4, "one server, happy=7: {}", stderr(&out));
    let out = run(&["-d", node_text, "put", "--json", file_text]);
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (error["kind"].as_str(), code(&out)),
        (Some("grid_short"), 4)
    );
    assert_eq!(code(&run(&["-d", node_text, "put", "/no/such/file"])), 3);
    assert_eq!(code(&run(&["-d", node_text, "ls", "/no/such/dir"])), 3);
    assert_eq!(code(&run(&["-d", node_text, "get", "URI:CHK:nonsense"])), 2);
    assert_eq!(code(&run(&["-d", node_text, "ls", "no-leading-slash"])), 2);
    let out = run(&[
        "-d",
        node_text,
        "put",
        "--json",
        &format!("{}/intro.log", tmp.path().display()),
    ]);
    assert_eq!(code(&out), 3);

    // An encoding for one upload, over the node's: one server can take a 1-of-1 file.
    let out = ok(&[
        "-d",
        node_text,
        "put",
        "--json",
        "--shares-needed",
        "1",
        "--shares-total",
        "1",
        file_text,
    ]);
    let uploaded: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(uploaded["happiness"], 1, "happy follows k and N: {out}");
    let out = run(&[
        "-d",
        node_text,
        "put",
        "--shares-needed",
        "5",
        "--shares-total",
        "3",
        file_text,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this upload's encoding"),
        "{}",
        stderr(&out)
    );

    // A literal file needs no servers: put --json says what it did.
    let small = tmp.path().join("small");
    fs::write(&small, b"tiny").expect("write");
    let out = ok(&[
        "-d",
        node_text,
        "put",
        "--json",
        small.to_str().expect("utf-8"),
    ]);
    let uploaded: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        uploaded["cap"]
            .as_str()
            .is_some_and(|c| c.starts_with("URI:LIT:")),
        "{out}"
    );

    // `stop` ends the node cleanly and says so; the introducer too.
    let url = fs::read_to_string(node.join("node.url")).expect("node.url");
    let out = run(&["stop", node_text]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!node.join("node.pid").exists() && !node.join("node.url").exists());
    assert_eq!(code(&run(&["stop", node_text])), 5, "stopped already");
    // Started again, the gateway is where it was; this time logging to daily files.
    let logs = tmp.path().join("logs");
    let mut command = cairn();
    command.arg("run").arg(&node).arg("--log-dir").arg(&logs);
    let again = Running::spawn(&node, command);
    assert_eq!(
        fs::read_to_string(node.join("node.url")).expect("node.url"),
        url
    );
    ok(&["stop", node_text]);
    drop(again);
    let files: Vec<_> = fs::read_dir(&logs)
        .expect("log dir")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("cairn.") && name.ends_with(".log"),
        "{name}"
    );
    let log = fs::read_to_string(&files[0]).expect("log");
    assert!(
        log.contains("node running") && !log.contains('\u{1b}'),
        "{log}"
    );
    ok(&["stop", intro_text]);
    introducer.kill(); // reaps it: stopped already
    let log = introducer.log();
    assert!(log.contains("node running"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no terminal colours in a log file: {log}"
    );
    assert!(!Path::new(&intro.join("node.pid")).exists());
}

#[test]
fn run_writes_json_logs_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let intro = tmp.path().join("intro");
    assert_eq!(
        code(&run(&["create-introducer", intro.to_str().unwrap()])),
        0
    );
    let mut command = support::cairn();
    command.args(["run", intro.to_str().unwrap(), "--log-format", "json"]);
    let mut node = Running::spawn(&intro, command);
    node.stop();
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the node logged something");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
    assert!(log.contains("\"node running\""), "{log}");
}
