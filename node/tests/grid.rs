//! A real grid of `cairn` processes on 127.0.0.1, started through the CLI as a user would: an
//! introducer, ten storage nodes and a client. Files go up and come back through
//! `cairn put`/`cairn get`; storage nodes are stopped, killed and restarted under it.

use cairn_codec::verify::check_whole_share;
use cairn_codec::Cap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

use support::{cairn, ok, run, wait_until, Running};

const STORAGE_NODES: usize = 10;

struct Grid {
    root: tempfile::TempDir,
    introducer: Running,
    storage: Vec<Running>,
    client: Running,
}

impl Grid {
    fn client_dir(&self) -> String {
        self.client.dir.display().to_string()
    }

    fn status(&self) -> serde_json::Value {
        let text = ok(&["-d", &self.client_dir(), "status", "--json"]);
        serde_json::from_str(&text).expect("status is JSON")
    }

    fn put(&self, file: &Path) -> String {
        let cap = ok(&["-d", &self.client_dir(), "put", &file.display().to_string()]);
        cap.trim().to_owned()
    }

    /// Starts `cairn put` of `data` (written to `big` in the grid's directory) and returns at
    /// once, its output piped.
    fn start_put(&self, data: &[u8]) -> std::process::Child {
        let file = self.root.path().join("big");
        fs::write(&file, data).unwrap();
        cairn()
            .args(["-d", &self.client_dir(), "put", &file.display().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn get(&self, source: &str, out: &Path) -> Output {
        let out = out.display().to_string();
        run(&["-d", &self.client_dir(), "get", source, "-o", &out])
    }
}

fn furl_of(introducer: &Path) -> String {
    fs::read_to_string(introducer.join("introducer.furl"))
        .expect("introducer.furl")
        .trim()
        .to_owned()
}

/// Makes a node directory with `cairn create-node` and shortens its request timeout, so
/// that failures against stopped servers show within seconds.
fn create_node(dir: &Path, furl: &str, extra: &[&str]) {
    let dir_text = dir.display().to_string();
    let mut args = vec!["create-node", dir_text.as_str(), "--introducer", furl];
    args.extend_from_slice(extra);
    ok(&args);
    let config = dir.join("cairn.toml");
    let text = fs::read_to_string(&config).expect("cairn.toml");
    let text = text.replace("request_timeout_secs = 20", "request_timeout_secs = 3");
    fs::write(&config, text).expect("cairn.toml");
}

fn start_grid() -> Grid {
    let root = tempfile::tempdir().expect("tempdir");
    let intro = root.path().join("introducer");
    ok(&["create-introducer", &intro.display().to_string()]);
    let introducer = Running::start(&intro);
    let furl = furl_of(&intro);
    let storage = (0..STORAGE_NODES)
        .map(|i| {
            let dir = root.path().join(format!("storage-{i}"));
            create_node(&dir, &furl, &["--reserved-space", "0 B"]);
            Running::start(&dir)
        })
        .collect();
    let client_dir = root.path().join("client");
    create_node(&client_dir, &furl, &["--no-storage"]);
    let client = Running::start(&client_dir);
    let grid = Grid {
        root,
        introducer,
        storage,
        client,
    };
    wait_until("the client knows every storage server", || {
        grid.status()["servers"].as_array().map(Vec::len) == Some(STORAGE_NODES)
    });
    grid
}

fn sample(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn a_grid_of_processes_stores_files_and_survives_losing_servers() {
    let grid = start_grid();
    let files = grid.root.path().join("files");
    fs::create_dir(&files).unwrap();

    // Round trips: empty, the largest literal, the smallest CHK, several segments.
    let mut caps = Vec::new();
    for size in [0usize, 55, 56, 3 * (1 << 20) + 17] {
        let path = files.join(format!("in-{size}"));
        let data = sample(size, size as u8);
        fs::write(&path, &data).unwrap();
        let cap = grid.put(&path);
        let expected_kind = if size <= 55 { "URI:LIT:" } else { "URI:CHK:" };
        assert!(cap.starts_with(expected_kind), "{size} bytes gave {cap}");
        let out = files.join(format!("out-{size}"));
        let got = grid.get(&cap, &out);
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(fs::read(&out).unwrap(), data, "{size} bytes round trip");
        caps.push(cap);
    }
    let big_cap = caps.last().unwrap().clone();

    // From standard input (no length known up front: the node keys the spooled file), the
    // same bytes get the same cap.
    let big = files.join(format!("in-{}", 3 * (1 << 20) + 17));
    let piped = cairn()
        .args(["-d", &grid.client_dir(), "put", "-"])
        .stdin(fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&piped.stdout).trim(), big_cap);

    // The vdrive: put with a path, ls, get by path, mv, rm.
    let path = files.join("in-56");
    let dir = grid.client_dir();
    ok(&["-d", &dir, "mkdir", "/docs"]);
    let cap = ok(&[
        "-d",
        &dir,
        "put",
        &path.display().to_string(),
        "/docs/a.bin",
    ]);
    assert_eq!(ok(&["-d", &dir, "ls", "/docs"]), "a.bin\n");
    let by_path = files.join("by-path");
    assert!(grid.get("/docs/a.bin", &by_path).status.success());
    assert_eq!(fs::read(&by_path).unwrap(), fs::read(&path).unwrap());
    ok(&["-d", &dir, "mv", "/docs/a.bin", "/docs/b.bin"]);
    let long = ok(&["-d", &dir, "ls", "-l", "/docs"]);
    let size = fs::metadata(&path).unwrap().len().to_string();
    assert!(
        long.contains(cap.trim()) && long.contains("b.bin") && long.contains(&size),
        "{long}"
    );
    let json = ok(&["-d", &dir, "ls", "--json", "/docs"]);
    assert!(json.contains(&format!("\"size\": {size}")), "{json}");
    ok(&["-d", &dir, "rm", "/docs/b.bin"]);
    assert_eq!(ok(&["-d", &dir, "ls", "/docs"]), "");
    let missing = grid.get("/docs/b.bin", &files.join("never"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));

    // Bad requests get the node's reason, not a panic or a partial file.
    let garbage = grid.get("URI:CHK:not-a-cap", &files.join("never"));
    assert_eq!(garbage.status.code(), Some(2), "bad input");
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("is not a cap"));
    assert!(!files.join("never").exists());
    let intro = grid.introducer.dir.display().to_string();
    let no_client = run(&["-d", &intro, "put", &path.display().to_string()]);
    assert_eq!(
        no_client.status.code(),
        Some(2),
        "the wrong node for the command"
    );
    assert!(String::from_utf8_lossy(&no_client.stderr).contains("runs no client"));

    daily_use_edges(&grid, &files, &big_cap);

    // Status: every server known and, after the uploads, connected.
    let status = grid.status();
    assert_eq!(status["servers_connected"], STORAGE_NODES, "{status:#}");
    let server = &status["servers"][0];
    let address = server["address"].as_str().unwrap();
    assert!(
        server["id"].is_string() && address.starts_with("127.0.0.1:"),
        "{address}"
    );
    assert!(
        !status.to_string().contains("pb://"),
        "no FURL (with its secret) in status"
    );

    stop_and_restart_servers(grid, &big_cap);
}

/// What a user runs into in daily use: pipes that close early, paths the vdrive refuses,
/// `-o` given `-` or a directory, a node directory that is not one, Ctrl-C mid-download.
fn daily_use_edges(grid: &Grid, files: &Path, big_cap: &str) {
    let dir = grid.client_dir();
    // A reader that stops early ends the command quietly, as it ends `ls` (SIGPIPE).
    for command in ["ls / | true", "status | head -c 1 > /dev/null"] {
        let shell = format!(
            "{} -d {dir} {command}; echo \"${{PIPESTATUS[0]}}\"",
            env!("CARGO_BIN_EXE_cairn")
        );
        let out = Command::new("bash").args(["-c", &shell]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(status == "0" || status == "141", "{command}: exit {status}");
    }
    let get_head = format!(
        "{} -d {dir} get {big_cap} | head -c 10 > /dev/null; echo \"${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_cairn")
    );
    let out = Command::new("bash")
        .args(["-c", &get_head])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.is_empty(),
        "nothing blames the node for a closed pipe: {stderr}"
    );

    // Paths the vdrive would refuse are refused before any work: no upload happens.
    let small = files.join("in-56").display().to_string();
    let long_path = format!("/{}", "a".repeat(70_000));
    for (args, why) in [
        (vec!["put", &small, "/docs//x"], "empty component"),
        (vec!["put", &small, "docs/x"], "not absolute"),
        (vec!["put", &small, "/x/../y"], "are not allowed"),
        (vec!["put", &small, &long_path], "longer than"),
        (vec!["get", &long_path], "longer than"),
        (vec!["ls", &long_path], "longer than"),
    ] {
        let mut full = vec!["-d", &dir];
        full.extend(args.iter().copied());
        let out = run(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(why) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: no cap printed, nothing uploaded"
        );
    }

    // A trailing slash names a directory, as `ls` prints them: `put FILE /dir/` links the
    // file into it under its own name; `mv X /dir` moves X into an existing directory.
    ok(&["-d", &dir, "mkdir", "/into/"]);
    ok(&["-d", &dir, "put", &small, "/into/"]);
    assert_eq!(ok(&["-d", &dir, "ls", "/into/"]), "in-56\n");
    ok(&["-d", &dir, "mkdir", "/into/sub"]);
    ok(&["-d", &dir, "mv", "/into/in-56", "/into/sub"]);
    assert_eq!(ok(&["-d", &dir, "ls", "/into"]), "sub/\n");
    assert_eq!(ok(&["-d", &dir, "ls", "/into/sub/"]), "in-56\n");
    ok(&["-d", &dir, "mv", "/into/sub/in-56", "/into/renamed"]);
    assert_eq!(ok(&["-d", &dir, "ls", "/into"]), "renamed\nsub/\n");

    // `-o -` is standard output; `-o DIR` with a vdrive path writes DIR/NAME.
    ok(&["-d", &dir, "put", &small, "/edge.bin"]);
    let to_stdout = run(&["-d", &dir, "get", "/edge.bin", "-o", "-"]);
    assert_eq!(to_stdout.stdout, fs::read(&small).unwrap());
    assert!(!Path::new("-").exists());
    let into = files.join("into");
    fs::create_dir(&into).unwrap();
    ok(&["-d", &dir, "get", "/edge.bin", "-o", into.to_str().unwrap()]);
    assert_eq!(
        fs::read(into.join("edge.bin")).unwrap(),
        fs::read(&small).unwrap()
    );
    let out = run(&["-d", &dir, "get", big_cap, "-o", into.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a cap names no file"));
    ok(&["-d", &dir, "rm", "/edge.bin"]);

    // A directory that is no node says so (not "is the node running?").
    let out = run(&["-d", files.to_str().unwrap(), "ls"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a node directory"), "{stderr}");

    // Ctrl-C during `get -o` leaves no partial file behind (a file large enough that the
    // download is still running when the partial file appears).
    let large = files.join("large");
    fs::write(&large, sample(48 << 20, 9)).unwrap();
    let large_cap = grid.put(&large);
    let interrupted = files.join("interrupted");
    fs::create_dir(&interrupted).unwrap();
    let mut child = cairn()
        .args(["-d", &dir, "get", &large_cap, "-o"])
        .arg(interrupted.join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while fs::read_dir(&interrupted).unwrap().next().is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the download ended before it began"
        );
        assert!(
            started.elapsed() < support::PATIENCE,
            "no partial file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let left: Vec<_> = fs::read_dir(&interrupted)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if status.code() == Some(0) {
        // It won the race: then the file is whole.
        assert_eq!(fs::read(interrupted.join("out")).unwrap().len(), 48 << 20);
    } else {
        assert!(left.is_empty(), "Ctrl-C left {left:?}");
    }
}

fn stop_and_restart_servers(mut grid: Grid, cap: &str) {
    let expected = fs::read(grid.root.path().join("files/in-3145745")).unwrap();
    let out = grid.root.path().join("files/after-stops");
    for server in &mut grid.storage[..7] {
        server.stop();
    }
    let got = grid.get(cap, &out);
    assert!(
        got.status.success(),
        "3 of 10 servers left: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(fs::read(&out).unwrap(), expected);

    fs::remove_file(&out).unwrap();
    grid.storage[7].stop();
    let got = grid.get(cap, &out);
    assert_eq!(got.status.code(), Some(4), "the grid is short");
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(stderr.contains("not enough good shares"), "{stderr}");
    assert!(!out.exists(), "a failed get left {}", out.display());

    for server in &mut grid.storage[..8] {
        *server = Running::start(&server.dir.clone());
    }
    wait_until("the client reaches a restarted server", || {
        grid.get(cap, &out).status.success()
    });
    assert_eq!(fs::read(&out).unwrap(), expected);
    // Restarted servers announced what they hold: status shows each one's nickname, shares
    // and bytes.
    wait_until("every restarted server has announced its shares", || {
        let servers = grid.status()["servers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let restarted: Vec<&serde_json::Value> = servers
            .iter()
            .filter(|s| s["shares"].as_u64() > Some(0))
            .collect();
        restarted.len() >= 8
            && restarted
                .iter()
                .all(|s| s["used_bytes"].as_u64() > Some(0) && s["nickname"].as_str() != Some(""))
    });
    let human = ok(&["-d", &grid.client_dir(), "status"]);
    assert!(human.contains(" shares "), "{human}");
    grid.introducer.stop();
}

#[test]
fn nodes_with_the_wrong_key_or_secret_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let intro = root.path().join("introducer");
    ok(&["create-introducer", &intro.display().to_string()]);
    let introducer = Running::start(&intro);
    let furl = furl_of(&intro);

    // The right host and port, but another node's id: the introducer's key does not match.
    let (id, rest) = furl.trim_start_matches("pb://").split_once('@').unwrap();
    let mut wrong_id: Vec<char> = id.chars().collect();
    wrong_id[0] = if wrong_id[0] == 'a' { 'b' } else { 'a' };
    let wrong_key = format!("pb://{}@{rest}", wrong_id.iter().collect::<String>());
    // The right node, a wrong secret.
    let (address, _) = furl.rsplit_once('/').unwrap();
    let wrong_secret = format!("{address}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");

    // The node with the wrong key refuses the introducer it reached (its key does not hash
    // to the id it expected); the introducer refuses the node without its secret.
    let cases = [
        ("wrong-key", wrong_key, false),
        ("wrong-secret", wrong_secret, true),
    ];
    for (name, bad_furl, introducer_refuses) in cases {
        let dir = root.path().join(name);
        create_node(&dir, &bad_furl, &[]);
        let node = Running::start(&dir);
        // `status` exits 1 while the introducer is not connected, and still prints it.
        let status_json = || {
            let out = run(&["-d", &dir.display().to_string(), "status", "--json"]);
            assert_eq!(out.status.code(), Some(1), "{name}: not connected");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let status = status_json();
        // How the node's id shows in logs: its first five bytes, in base32.
        let short_id = status["node_id"].as_str().unwrap()[..8].to_owned();
        wait_until("the refusal is logged", || {
            if introducer_refuses {
                introducer
                    .log()
                    .lines()
                    .any(|l| l.contains("refusing an incoming connection") && l.contains(&short_id))
            } else {
                node.log().contains("refusing the connection")
            }
        });
        let status = status_json();
        assert_eq!(status["introducer_connected"], false, "{name}: {status:#}");
        assert_eq!(status["servers"].as_array().unwrap().len(), 0, "{name}");
        // The node says why, on its own side too.
        let why = status["introducer_error"].as_str().unwrap_or_default();
        let expected = match introducer_refuses {
            true => "refused our hello (wrong secret",
            false => "named in the FURL",
        };
        assert!(why.contains(expected), "{name}: {status:#}");
    }
}

#[test]
fn a_storage_node_killed_mid_upload_shows_no_partial_share_after_restart() {
    let mut grid = start_grid();
    let data = sample(48 << 20, 7);
    let upload = grid.start_put(&data);

    let victim = grid.storage[0].dir.clone();
    let incoming = victim.join("storage/shares/incoming");
    wait_until("a share is being written on the victim", || {
        count_files(&incoming) > 0
    });
    grid.storage[0].kill();
    grid.storage[0] = Running::start(&victim);

    let finished = upload.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let cap_text = String::from_utf8(finished.stdout).unwrap();
    let Ok(Cap::Chk(cap)) = cap_text.trim().parse::<Cap>() else {
        panic!("not a CHK cap: {cap_text}");
    };
    // Every share the restarted node shows is whole; none is left half-written.
    for (share, bytes) in visible_shares(&victim.join("storage/shares")) {
        check_whole_share(&cap.verifier(), share, &bytes).expect("a whole share");
    }
    assert_eq!(count_files(&incoming), 0, "stale incoming shares were kept");
    let out = grid.root.path().join("back");
    assert!(grid.get(cap_text.trim(), &out).status.success());
    assert!(fs::read(&out).unwrap() == data);
}

#[test]
fn an_interrupted_put_aborts_its_shares_and_the_next_put_is_whole() {
    let grid = start_grid();
    let upload = grid.start_put(&sample(48 << 20, 3));
    let (dir, file) = (grid.client_dir(), grid.root.path().join("big"));
    let incoming: Vec<PathBuf> = grid
        .storage
        .iter()
        .map(|s| s.dir.join("storage/shares/incoming"))
        .collect();
    let in_flight = || incoming.iter().map(|d| count_files(d)).sum::<usize>();
    wait_until("shares are being written", || in_flight() > 0);
    let _ = Command::new("kill")
        .args(["-INT", &upload.id().to_string()])
        .status();
    let interrupted = upload.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&interrupted.stderr);
    assert_eq!(interrupted.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert!(
        interrupted.stdout.is_empty(),
        "no cap for a cancelled upload"
    );
    // The node aborted what the upload had allocated, on every server, without waiting for
    // any server to time it out.
    wait_until("no incoming share is left", || in_flight() == 0);
    let complete: usize = grid
        .storage
        .iter()
        .map(|s| visible_shares(&s.dir.join("storage/shares")).len())
        .sum();
    assert_eq!(complete, 0, "aborted, not finished: no share was closed");

    let out = ok(&["-d", &dir, "put", "--json", &file.display().to_string()]);
    let uploaded: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(uploaded["happiness"], STORAGE_NODES, "{uploaded:#}");
    assert_eq!(in_flight(), 0);
}

fn count_files(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Complete shares: `shares/<prefix>/<si>/<n>`, not under `incoming/`.
fn visible_shares(shares: &Path) -> Vec<(usize, Vec<u8>)> {
    walk(shares)
        .into_iter()
        .filter(|p| !p.starts_with(shares.join("incoming")))
        .map(|p| {
            let share = p.file_name().unwrap().to_string_lossy().parse().unwrap();
            (share, fs::read(&p).unwrap())
        })
        .collect()
}

/// `check --json` of `source`, with `flags`.
fn check_json(grid: &Grid, source: &str, flags: &[&str]) -> serde_json::Value {
    let dir = grid.client_dir();
    let mut args = vec!["-d", dir.as_str(), "check", "--json"];
    args.extend_from_slice(flags);
    args.push(source);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check --json")
}

#[test]
fn check_finds_what_servers_lost_and_repair_brings_every_file_back() {
    let mut grid = start_grid();
    let dir = grid.client_dir();
    let files = grid.root.path().join("files");
    fs::create_dir(&files).unwrap();
    ok(&["-d", &dir, "mkdir", "-p", "/keep/sub"]);
    for (name, size) in [("a", 1_200_000usize), ("b", 10_000), ("sub/c", 100_000)] {
        let local = files.join(name.replace('/', "-"));
        fs::write(&local, sample(size, size as u8)).unwrap();
        ok(&[
            "-d",
            &dir,
            "put",
            local.to_str().unwrap(),
            &format!("/keep/{name}"),
        ]);
    }
    // A storage node's own status: what it holds.
    let server = grid.storage[0].dir.display().to_string();
    let own = ok(&["-d", &server, "status", "--json"]);
    let own: serde_json::Value = serde_json::from_str(&own).unwrap();
    assert!(own["storage"]["used_bytes"].as_u64() > Some(0), "{own:#}");
    assert!(
        own["storage"]["leases"].as_u64() >= Some(3),
        "a lease per file: {own:#}"
    );
    let fresh = check_json(&grid, "/keep/a", &[]);
    assert_eq!(
        (fresh["healthy"].as_bool(), fresh["happiness"].as_u64()),
        (Some(true), Some(10))
    );
    // --add-lease renews the node's lease at every server holding shares of the file; each
    // server writes the renewal to its lease journal.
    let journals = || -> u64 {
        grid.storage
            .iter()
            .map(|s| fs::metadata(s.dir.join("storage/leases")).map_or(0, |m| m.len()))
            .sum()
    };
    let before = journals();
    let renewed = check_json(&grid, "/keep/a", &["--add-lease"]);
    assert_eq!(renewed["leases_renewed"], 10, "{renewed:#}");
    assert!(
        journals() > before,
        "the renewals are on the servers' disks"
    );

    // Four servers leave for good; two new ones join.
    let furl = furl_of(&grid.introducer.dir);
    for server in &mut grid.storage[..4] {
        server.stop();
    }
    for i in 10..12 {
        let new = grid.root.path().join(format!("storage-{i}"));
        create_node(&new, &furl, &["--reserved-space", "0 B"]);
        grid.storage.push(Running::start(&new));
    }
    wait_until("the client is connected to the 8 servers up", || {
        grid.status()["servers_connected"].as_u64() >= Some(8)
    });
    let short = check_json(&grid, "/keep/a", &[]);
    assert_eq!(short["recoverable"], true, "{short:#}");
    assert_eq!(
        short["healthy"], false,
        "6 of 10 servers hold shares: {short:#}"
    );

    let out = run(&["-d", &dir, "deep-check", "--repair", "/keep"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("repaired")).count(),
        3,
        "{stdout}"
    );
    assert!(
        stderr.contains("3 files: 3 healthy, 0 unhealthy, 0 unrecoverable, 3 repaired"),
        "{stderr}"
    );
    for name in ["/keep/a", "/keep/b", "/keep/sub/c"] {
        let after = check_json(&grid, name, &[]);
        assert_eq!(after["healthy"], true, "{name}: {after:#}");
        assert!(after["happiness"].as_u64() >= Some(7), "{name}: {after:#}");
    }

    // A share rotted on disk: --verify finds it, --repair places a good copy on a server
    // that holds none of the file (one more joins for that).
    let new = grid.root.path().join("storage-12");
    create_node(&new, &furl, &["--reserved-space", "0 B"]);
    grid.storage.push(Running::start(&new));
    wait_until("the client is connected to the 9 servers up", || {
        grid.status()["servers_connected"].as_u64() >= Some(9)
    });
    let b = check_json(&grid, "/keep/b", &[]);
    let si = match b["cap"].as_str().unwrap().parse::<Cap>().unwrap() {
        Cap::ChkVerifier(v) => v.storage_index.to_string(),
        other => panic!("{other:?}"),
    };
    let rotted = grid.storage[4..]
        .iter()
        .flat_map(|s| walk(&s.dir.join("storage/shares")))
        .find(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == si.as_str())
        })
        .expect("a share of /keep/b on a server that is up");
    let mut bytes = fs::read(&rotted).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&rotted, bytes).unwrap();
    let verified = check_json(&grid, "/keep/b", &["--verify", "--repair"]);
    assert_eq!(
        verified["faults"].as_array().map(Vec::len),
        Some(1),
        "{verified:#}"
    );
    assert!(
        verified["repair"]["shares_placed"].as_u64() >= Some(1),
        "{verified:#}"
    );
    assert_eq!(verified["healthy"], true, "{verified:#}");

    // A file none of whose shares exist: unrecoverable, and the command says so in its status.
    let ghost = files.join("ghost");
    fs::write(&ghost, sample(20_000, 99)).unwrap();
    let ghost_cap = ok(&["-d", &dir, "cap", ghost.to_str().unwrap()]);
    ok(&["-d", &dir, "ln", ghost_cap.trim(), "/keep/ghost"]);
    let out = run(&["-d", &dir, "deep-check", "/keep"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("UNRECOVERABLE  /keep/ghost"), "{stdout}");
    let out = run(&["-d", &dir, "check", "/keep/ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be read back"));
}

/// Sets each `key = value` in a node's `cairn.toml` (each key where it first appears).
fn set_config(dir: &Path, settings: &[(&str, &str)]) {
    let config = dir.join("cairn.toml");
    let mut text = fs::read_to_string(&config).expect("cairn.toml");
    for (key, value) in settings {
        let start = text.find(&format!("\n{key} = ")).expect(key) + 1;
        let end = start + text[start..].find('\n').unwrap();
        text.replace_range(start..end, &format!("{key} = {value}"));
    }
    fs::write(&config, text).expect("cairn.toml");
}

fn own_storage(node: &Running) -> serde_json::Value {
    let text = ok(&["-d", &node.dir.display().to_string(), "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&text).expect("status is JSON");
    status["storage"].clone()
}

/// A small grid in `root`: the introducer made in `intro` (by `create-introducer`), then
/// `servers` storage nodes with `storage` set in their configs, all running.
fn small_grid(
    root: &Path,
    intro: &Path,
    servers: usize,
    storage: &[(&str, &str)],
) -> (Running, String, Vec<Running>) {
    let introducer = Running::start(intro);
    let furl = furl_of(intro);
    let servers = (0..servers)
        .map(|i| {
            let dir = root.join(format!("storage-{i}"));
            create_node(&dir, &furl, &[]);
            if !storage.is_empty() {
                set_config(&dir, storage);
            }
            Running::start(&dir)
        })
        .collect();
    (introducer, furl, servers)
}

/// Makes an introducer's directory in `root`.
fn introducer_dir(root: &Path) -> PathBuf {
    let intro = root.join("introducer");
    ok(&["create-introducer", &intro.display().to_string()]);
    intro
}

/// A client node `name` in `root` that stores files 2-of-3, with `config` set, running and
/// connected to `servers` servers; its directory.
fn small_client(
    root: &Path,
    furl: &str,
    name: &str,
    config: &[(&str, &str)],
    servers: u64,
) -> (Running, String) {
    let dir = root.join(name);
    let shares = [
        "--no-storage",
        "--shares-needed",
        "2",
        "--shares-total",
        "3",
    ];
    create_node(&dir, furl, &shares);
    if !config.is_empty() {
        set_config(&dir, config);
    }
    let running = Running::start(&dir);
    let text = dir.display().to_string();
    wait_until("the client is connected to its servers", || {
        let status = ok(&["-d", &text, "status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        status["servers_connected"].as_u64() == Some(servers)
    });
    (running, text)
}

#[test]
fn lapsed_leases_are_collected_renewed_ones_kept_and_a_restart_resumes_the_pass() {
    let root = tempfile::tempdir().expect("tempdir");
    let intro = introducer_dir(root.path());
    // Leases of 20 s, examined one file a second: a pass over the files below lasts long
    // enough to be cut by a restart.
    let storage = [
        ("lease_period", "\"20s\""),
        ("expire", "\"leases\""),
        ("crawl_rate", "1"),
        ("crawl_interval", "\"1s\""),
    ];
    let (_introducer, furl, mut servers) = small_grid(root.path(), &intro, 3, &storage);
    let (client, dir) = small_client(root.path(), &furl, "client", &[], 3);
    let local = root.path().join("file");
    let put = |name: &str, seed: u8| {
        fs::write(&local, sample(5_000, seed)).unwrap();
        let path = format!("/{name}");
        ok(&["-d", &dir, "put", local.to_str().unwrap(), &path]);
        path
    };
    let kept = put("kept", 0);
    let dropped: Vec<String> = (1..=10).map(|i| put(&format!("dropped-{i}"), i)).collect();
    let full = own_storage(&servers[0]);
    assert_eq!(full["shares"], 11, "a share of each file: {full:#}");
    assert_eq!(full["collector"]["expire"], "leases");

    // The client renews its lease on one file, over and over, as a scheduled
    // `deep-check --add-lease` would.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewer = {
        let (stop, dir, kept) = (stop.clone(), dir.clone(), kept.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ok(&["-d", &dir, "check", "--add-lease", &kept]);
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        })
    };

    // A pass under way when its server is killed goes on where it stopped.
    let mut under_way = serde_json::Value::Null;
    wait_until("a pass has examined a few files", || {
        under_way = own_storage(&servers[0])["collector"]["current"].clone();
        under_way["files_examined"].as_u64() >= Some(3)
    });
    servers[0].kill();
    servers[0] = Running::start(&servers[0].dir.clone());
    let collector = &own_storage(&servers[0])["collector"];
    let resumed = match collector["current"].is_null() {
        true => &collector["last"], // it has finished since
        false => &collector["current"],
    };
    // The same pass goes on, from where it last recorded itself (its first step, at worst).
    assert_eq!(resumed["started"], under_way["started"], "{collector:#}");
    assert!(
        resumed["files_examined"].as_u64() >= Some(1),
        "not started again: {collector:#}"
    );

    // The leases nobody renewed lapse, and every server collects those files.
    wait_until("every server holds only the renewed file", || {
        servers
            .iter()
            .all(|s| own_storage(s)["shares"].as_u64() == Some(1))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    renewer.join().expect("the renewer");
    for server in &servers {
        let after = own_storage(server);
        assert!(
            after["used_bytes"].as_u64() < full["used_bytes"].as_u64().map(|b| b / 5),
            "the space came back: {after:#}"
        );
    }
    let check = run(&["-d", &dir, "check", &dropped[0]]);
    assert_eq!(check.status.code(), Some(1), "collected everywhere");
    let out = root.path().join("back");
    let got = run(&["-d", &dir, "get", &kept, "-o", out.to_str().unwrap()]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(fs::read(&out).unwrap(), sample(5_000, 0));
    let human = ok(&["-d", &servers[1].dir.display().to_string(), "status"]);
    assert!(human.contains("collector:  expire = leases"), "{human}");
    drop(client);
}

#[test]
fn a_client_with_a_repair_interval_repairs_what_a_lost_server_held_by_itself() {
    let root = tempfile::tempdir().expect("tempdir");
    let intro = introducer_dir(root.path());
    let (_introducer, furl, mut servers) = small_grid(root.path(), &intro, 4, &[]);
    let repair = [("interval", "\"2s\"")];
    let (client, dir) = small_client(root.path(), &furl, "client", &repair, 4);
    let status = || -> serde_json::Value {
        serde_json::from_str(&ok(&["-d", &dir, "status", "--json"])).unwrap()
    };
    let local = root.path().join("file");
    fs::write(&local, sample(50_000, 7)).unwrap();
    ok(&["-d", &dir, "put", local.to_str().unwrap(), "/f"]);
    let before = check_json_in(&dir, "/f");
    assert_eq!(before["happiness"], 3, "{before:#}");
    let holder = before["holders"]["0"][0].as_str().unwrap().to_owned();
    let lost = servers
        .iter()
        .position(|s| {
            let own = ok(&["-d", &s.dir.display().to_string(), "status", "--json"]);
            let own: serde_json::Value = serde_json::from_str(&own).unwrap();
            own["node_id"] == holder.as_str()
        })
        .expect("the holder of share 0 is one of the servers");
    servers[lost].stop();

    wait_until("a scheduled run repairs the file", || {
        status()["upkeep"]["last_repair"]["summary"]["repaired"].as_u64() >= Some(1)
    });
    let after = check_json_in(&dir, "/f");
    assert_eq!(
        (after["healthy"].as_bool(), after["happiness"].as_u64()),
        (Some(true), Some(3)),
        "{after:#}"
    );
    assert!(
        !after.to_string().contains(&holder),
        "not on the lost server: {after:#}"
    );
    let upkeep = &status()["upkeep"];
    assert_eq!(upkeep["repair_interval_secs"], 2, "{upkeep:#}");
    assert!(upkeep["last_repair"]["error"].is_null(), "{upkeep:#}");
    let human = ok(&["-d", &dir, "status"]);
    assert!(human.contains("repair:     every 2s"), "{human}");
    assert!(human.contains("  last repair "), "{human}");
    // The record survives a restart: the schedule goes on from it.
    let mut client = client;
    client.stop();
    let record = fs::read_to_string(Path::new(&dir).join("upkeep.json")).expect("upkeep.json");
    assert!(record.contains("\"repaired\""), "{record}");
}

/// `check --json` of `source` on the client node in `dir`.
fn check_json_in(dir: &str, source: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["-d", dir, "check", "--json", source])).expect("check --json")
}

/// Runs `cairn` with `args` and expects it to fail; its stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "cairn {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_node_has_its_own_tree_shares_subtrees_by_cap_and_the_server_reads_none_of_it() {
    use cairn_actors::store::Journal;
    use cairn_actors::vdrive::VdriveOp;

    let root = tempfile::tempdir().expect("tempdir");
    let intro = introducer_dir(root.path());
    // The grid's old global tree, as an older vdrive left it.
    fs::create_dir_all(intro.join("vdrive")).unwrap();
    let mut old = cairn_net::FileJournal::open(intro.join("vdrive/journal")).unwrap();
    for op in [
        VdriveOp::Mkdir {
            path: "/legacy".into(),
        },
        VdriveOp::Link {
            path: "/legacy/old-note".into(),
            cap: "URI:LIT:nbswy3dp".into(),
            replace: false,
        },
    ] {
        old.append(&postcard::to_stdvec(&op).unwrap()).unwrap();
    }
    drop(old);
    let (_introducer, furl, _servers) = small_grid(root.path(), &intro, 3, &[]);
    let (_alice, a) = small_client(root.path(), &furl, "alice", &[], 3);
    let (_bob, b) = small_client(root.path(), &furl, "bob", &[], 3);

    let local = root.path().join("zebra.txt");
    fs::write(&local, sample(20_000, 3)).unwrap();
    ok(&["-d", &a, "mkdir", "/zebra-project"]);
    let file_cap = ok(&[
        "-d",
        &a,
        "put",
        local.to_str().unwrap(),
        "/zebra-project/zebra-notes",
    ]);
    assert_eq!(ok(&["-d", &b, "ls", "/"]), "", "bob's root is his own");

    // Alice shares the directory read-only: bob reads, and cannot write.
    let listing: serde_json::Value =
        serde_json::from_str(&ok(&["-d", &a, "ls", "--json", "/"])).unwrap();
    let shared = &listing[0];
    assert_eq!(shared["name"], "zebra-project");
    let read_cap = shared["read_cap"].as_str().unwrap().to_owned();
    let write_cap = shared["write_cap"].as_str().unwrap().to_owned();
    assert!(read_cap.starts_with("URI:CAIRN-DIR-RO:"), "{read_cap}");
    ok(&["-d", &b, "alias", "add", "from-alice", &read_cap]);
    let aliases = ok(&["-d", &b, "alias", "list"]);
    assert!(
        aliases.contains("from-alice:") && aliases.contains("cairn:"),
        "{aliases}"
    );
    assert_eq!(ok(&["-d", &b, "ls", "from-alice:/"]), "zebra-notes\n");
    let back = root.path().join("back");
    ok(&[
        "-d",
        &b,
        "get",
        "from-alice:/zebra-notes",
        "-o",
        back.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&back).unwrap(), sample(20_000, 3));
    let refused = fails(&["-d", &b, "put", local.to_str().unwrap(), "from-alice:/bobs"]);
    assert!(refused.contains("read-only"), "{refused}");
    let refused = fails(&["-d", &b, "rm", "from-alice:/zebra-notes"]);
    assert!(refused.contains("read-only"), "{refused}");
    // A holder of the write cap may change it, and alice sees the change.
    ok(&["-d", &b, "alias", "add", "alice-rw", &write_cap]);
    ok(&["-d", &b, "ln", file_cap.trim(), "alice-rw:/from-bob"]);
    assert_eq!(
        ok(&["-d", &a, "ls", "/zebra-project"]),
        "from-bob\nzebra-notes\n"
    );

    // The old global tree comes into a root once imported.
    let imported = ok(&["-d", &a, "import-vdrive", "--to", "/old"]);
    assert!(imported.contains("2 directories and 1 files"), "{imported}");
    assert_eq!(ok(&["-d", &a, "ls", "/old/legacy"]), "old-note\n");

    // The vdrive server's files hold no name and no cap in the clear.
    let secrets = [
        "zebra-project".to_owned(),
        "zebra-notes".to_owned(),
        "from-bob".to_owned(),
        file_cap.trim().to_owned(),
        read_cap.clone(),
        write_cap.clone(),
    ];
    for path in walk(&intro.join("vdrive")) {
        let bytes = fs::read(&path).unwrap();
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} is in the clear in {}", path.display());
        }
    }
}

#[test]
fn with_two_introducers_the_grid_goes_on_learning_servers_when_one_is_down() {
    let root = tempfile::tempdir().expect("tempdir");
    let intro_dirs = [root.path().join("intro-1"), root.path().join("intro-2")];
    let mut introducers: Vec<Running> = intro_dirs
        .iter()
        .map(|dir| {
            ok(&["create-introducer", &dir.display().to_string()]);
            Running::start(dir)
        })
        .collect();
    let furls: Vec<String> = intro_dirs.iter().map(|d| furl_of(d)).collect();
    let both = ["--introducer", furls[1].as_str()];
    let storage = |i: usize| {
        let dir = root.path().join(format!("storage-{i}"));
        create_node(&dir, &furls[0], &both);
        Running::start(&dir)
    };
    let mut servers: Vec<Running> = (0..3).map(storage).collect();
    let client_dir = root.path().join("client");
    let mut args = vec![
        "--no-storage",
        "--shares-needed",
        "2",
        "--shares-total",
        "3",
    ];
    args.extend_from_slice(&both);
    create_node(&client_dir, &furls[0], &args);
    let config = fs::read_to_string(client_dir.join("cairn.toml")).unwrap();
    assert!(
        config.contains(&format!("more_introducers = [\"{}\"]", furls[1])),
        "{config}"
    );
    let _client = Running::start(&client_dir);
    let dir = client_dir.display().to_string();
    let status = || -> serde_json::Value {
        serde_json::from_str(&ok(&["-d", &dir, "status", "--json"])).unwrap()
    };
    wait_until("the client knows the 3 servers", || {
        status()["servers"].as_array().map(Vec::len) == Some(3)
    });

    // The first introducer goes away for good; a server that joins now is still learnt of.
    introducers[0].stop();
    servers.push(storage(3));
    wait_until(
        "the client learns of the new server from the second introducer",
        || status()["servers"].as_array().map(Vec::len) == Some(4),
    );
    assert_eq!(
        status()["introducer_connected"],
        true,
        "one introducer is enough"
    );
    let local = root.path().join("file");
    fs::write(&local, sample(30_000, 9)).unwrap();
    let cap = ok(&["-d", &dir, "put", local.to_str().unwrap()]);
    let back = root.path().join("back");
    ok(&["-d", &dir, "get", cap.trim(), "-o", back.to_str().unwrap()]);
    assert_eq!(fs::read(&back).unwrap(), sample(30_000, 9));
}
