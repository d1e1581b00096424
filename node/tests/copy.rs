//! `cairn cp -r`, `mkdir -p` and `rm -r` through a real node: a tree with unicode names,
//! empty files and nested directories goes into the vdrive and comes back the same; what a
//! vdrive cannot hold (a symbolic link) is reported and skipped.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use support::{ok, run, Running};

/// Every file under `root` (relative path -> bytes), and every directory (bytes `None`).
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().to_owned();
            if meta.is_dir() {
                out.insert(relative, None);
                stack.push(path);
            } else if meta.is_file() {
                out.insert(relative, Some(fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// An introducer and one storage node whose client stores files 1-of-1, running in `root`;
/// the node's directory.
fn one_server_grid(root: &Path) -> ([Running; 2], String) {
    let intro = root.join("intro");
    ok(&["create-introducer", intro.to_str().expect("utf-8")]);
    let introducer = Running::start(&intro);
    let furl = fs::read_to_string(intro.join("introducer.furl")).expect("furl");
    let node = root.join("node");
    let node_text = node.to_str().expect("utf-8").to_owned();
    ok(&[
        "create-node",
        &node_text,
        "--introducer",
        furl.trim(),
        "--reserved-space",
        "0 B",
        "--shares-needed",
        "1",
        "--shares-total",
        "1",
    ]);
    let running = Running::start(&node);
    ok(&["wait", &node_text, "--servers", "1"]);
    ([introducer, running], node_text)
}

#[test]
fn a_tree_goes_into_the_vdrive_and_comes_back_the_same() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = |p: &str| tmp.path().join(p);
    let text = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (_grid, node) = one_server_grid(tmp.path());

    // The tree: unicode names, an empty file, a literal-sized file, a larger one, nesting,
    // an empty directory, and a symbolic link (skipped).
    let src = path("src");
    fs::create_dir_all(src.join("naïve dir/深い/deeper")).unwrap();
    fs::create_dir_all(src.join("empty dir")).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("tiny.txt"), b"hello").unwrap();
    fs::write(src.join("naïve dir/résumé.pdf"), vec![7u8; 70_000]).unwrap();
    fs::write(
        src.join("naïve dir/深い/deeper/ファイル"),
        (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    std::os::unix::fs::symlink("tiny.txt", src.join("link")).unwrap();
    // A modification time long past, kept through the vdrive both ways.
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    let resume = src.join("naïve dir/résumé.pdf");
    fs::File::options()
        .write(true)
        .open(&resume)
        .unwrap()
        .set_modified(past)
        .unwrap();

    ok(&["-d", &node, "mkdir", "-p", "/backups/today"]);
    ok(&["-d", &node, "mkdir", "-p", "/backups/today"]); // exists: nothing to do
    let out = run(&["-d", &node, "cp", "-r", &text(&src), "cairn:/backups/today"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped") && stderr.contains("link: a symbolic link"),
        "{stderr}"
    );
    assert!(
        stderr.contains("copied 4 files") && stderr.contains("and 5 directories"),
        "{stderr}"
    );
    // Onto an existing directory: inside it, under the source's name.
    assert_eq!(ok(&["-d", &node, "ls", "/backups/today"]), "src/\n");
    let listing = ok(&["-d", &node, "ls", "/backups/today/src"]);
    assert_eq!(
        listing, "empty\nempty dir/\nnaïve dir/\ntiny.txt\n",
        "sorted, link skipped"
    );

    let back = path("back");
    ok(&[
        "-d",
        &node,
        "cp",
        "-r",
        "cairn:/backups/today/src",
        &text(&back),
    ]);
    let mut expected = tree(&src);
    expected.remove(Path::new("link"));
    assert_eq!(tree(&back), expected, "the same tree came back");
    let back_resume = back.join("naïve dir/résumé.pdf");
    assert_eq!(
        fs::metadata(&back_resume).unwrap().modified().unwrap(),
        past
    );
    let long = ok(&["-d", &node, "ls", "-l", "/backups/today/src/naïve dir"]);
    assert!(
        long.contains("2009-02-13 23:31") && long.contains("70000"),
        "{long}"
    );

    // Single files both ways, into directories.
    ok(&[
        "-d",
        &node,
        "cp",
        &text(&src.join("tiny.txt")),
        "cairn:/backups/",
    ]);
    assert_eq!(ok(&["-d", &node, "ls", "/backups"]), "tiny.txt\ntoday/\n");
    let through_a_file = run(&["-d", &node, "mkdir", "-p", "/backups/tiny.txt/x"]);
    assert_eq!(through_a_file.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&through_a_file.stderr).contains("is a file, not a directory"));
    fs::create_dir(path("one")).unwrap();
    ok(&[
        "-d",
        &node,
        "cp",
        "cairn:/backups/tiny.txt",
        &text(&path("one")),
    ]);
    assert_eq!(fs::read(path("one/tiny.txt")).unwrap(), b"hello");

    // Mistakes are refused before anything is copied.
    let both_local = run(&[
        "-d",
        &node,
        "cp",
        &text(&src.join("tiny.txt")),
        &text(&path("x")),
    ]);
    assert_eq!(both_local.status.code(), Some(2));
    let no_r = run(&["-d", &node, "cp", &text(&src), "cairn:/elsewhere"]);
    assert_eq!(no_r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_r.stderr).contains("copy it with -r"));

    // rm -r takes the whole tree.
    ok(&["-d", &node, "rm", "-r", "/backups/today"]);
    assert_eq!(ok(&["-d", &node, "ls", "/backups"]), "tiny.txt\n");
}

#[test]
fn a_second_backup_of_an_unchanged_tree_uploads_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = |p: &str| tmp.path().join(p);
    let text = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (_grid, node) = one_server_grid(tmp.path());

    let src = path("home");
    fs::create_dir_all(src.join("notes/été")).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("notes/a.txt"), vec![1u8; 30_000]).unwrap();
    fs::write(src.join("notes/été/b.bin"), vec![2u8; 90_000]).unwrap();
    // Left out by --exclude: a scratch file and a cache directory.
    fs::write(src.join("notes/scratch.tmp"), b"scratch").unwrap();
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::write(src.join("cache/blob"), vec![5u8; 10_000]).unwrap();
    let backup = |expect: &str| {
        let out = run(&[
            "-d",
            &node,
            "backup",
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache",
            &text(&src),
            "cairn:/backups/home",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(expect), "{expect:?} in {stderr}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let first = backup("3 uploaded");
    assert!(backup("2 excluded").contains("cairn:/backups/home/Archives/"));
    let second = backup("0 uploaded (0 B), 3 unchanged");
    assert_ne!(first, second, "each backup is a snapshot of its own");
    fs::write(src.join("notes/a.txt"), vec![3u8; 31_000]).unwrap();
    let third = backup("1 uploaded");

    // Every snapshot holds the tree as it was.
    let snapshots = ok(&["-d", &node, "ls", "/backups/home/Archives"]);
    assert_eq!(snapshots.lines().count(), 4, "{snapshots}");
    let restored = path("restored");
    ok(&["-d", &node, "cp", "-r", &third, &text(&restored)]);
    let mut expected = tree(&src);
    expected.retain(|p, _| !p.starts_with("cache") && !p.ends_with("scratch.tmp"));
    assert_eq!(tree(&restored), expected);
    let old = path("old");
    ok(&["-d", &node, "cp", "-r", &first, &text(&old)]);
    assert_eq!(
        fs::read(old.join("notes/a.txt")).unwrap(),
        vec![1u8; 30_000]
    );
}

#[test]
fn a_copy_of_many_files_shows_one_bar_on_a_terminal_and_none_otherwise() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_grid, node) = one_server_grid(tmp.path());
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/big"), vec![5u8; 3_000_000]).unwrap();
    fs::write(src.join("small"), b"hi").unwrap();
    let src_text = src.to_str().unwrap();

    // Not a terminal: the summary line only.
    let out = run(&["-d", &node, "cp", "-r", src_text, "cairn:/quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("copying") && !stderr.contains("uploading"),
        "{stderr}"
    );

    // A terminal (util-linux's `script` gives the command one): one bar for all the bytes,
    // and no bar per file.
    let command = format!(
        "{} -d {node} cp -r {src_text} cairn:/loud",
        env!("CARGO_BIN_EXE_cairn")
    );
    let shown = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("copying"), "{shown}");
    assert!(
        shown.contains("2.86 MiB"),
        "the total of every file: {shown}"
    );
    assert!(!shown.contains("uploading"), "{shown}");
    assert_eq!(ok(&["-d", &node, "ls", "/loud/sub"]), "big\n");
}

/// The value of the metric line `name{labels}` in an OpenMetrics text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn the_metrics_count_exactly_the_operations_done() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_grid, node) = one_server_grid(tmp.path());
    let file = tmp.path().join("f");
    fs::write(&file, vec![3u8; 50_000]).unwrap();
    let before = ok(&["-d", &node, "metrics"]);
    let cap = ok(&["-d", &node, "put", file.to_str().unwrap()]);
    let out = tmp.path().join("back");
    ok(&["-d", &node, "get", cap.trim(), "-o", out.to_str().unwrap()]);
    let missing = run(&["-d", &node, "get", "URI:CHK:aaaaaaaaaaaaaaaaaaaaaaaaaa:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1:1:100"]);
    assert!(!missing.status.success());
    let text = ok(&["-d", &node, "metrics"]);

    // The format: comments, samples, and the end marker last.
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
        assert!(line.starts_with("cairn_"), "{line}");
    }
    let moved = |series: &str| metric(&text, series) - metric(&before, series);
    let op = |kind: &str, outcome: &str| {
        moved(&format!(
            "cairn_operations_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(op("upload", "started"), 1.0, "{text}");
    assert_eq!(op("upload", "succeeded"), 1.0);
    assert_eq!(op("download", "started"), 2.0);
    assert_eq!(op("download", "succeeded"), 1.0);
    assert_eq!(op("download", "failed"), 1.0);
    let failed_for = |kind: &str, reason: &str| {
        moved(&format!(
            "cairn_operation_failures_total{{kind=\"{kind}\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(failed_for("download", "not_enough_shares"), 1.0, "{text}");
    assert_eq!(failed_for("upload", "not_enough_shares"), 0.0);
    assert_eq!(
        moved("cairn_plaintext_bytes_total{direction=\"in\"}"),
        50_000.0
    );
    assert_eq!(
        moved("cairn_plaintext_bytes_total{direction=\"out\"}"),
        50_000.0
    );
    assert_eq!(metric(&text, "cairn_servers_known"), 1.0);
    assert_eq!(
        metric(&text, "cairn_peers{state=\"connected\"}"),
        1.0,
        "{text}"
    );
    assert!(metric(&text, "cairn_resident_memory_bytes") > 1e6);
    // Per peer, and per kind of actor: the introducer is a peer, connected and dialled.
    let peer_lines = |name: &str| text.lines().filter(|l| l.starts_with(name)).count();
    assert!(peer_lines("cairn_peer_connected{peer=") >= 1, "{text}");
    assert!(peer_lines("cairn_peer_dials{peer=") >= 1, "{text}");
    assert_eq!(
        metric(&text, "cairn_actor_mailbox_depth{service=\"client\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        peer_lines("cairn_actor_mailbox_depth{service=\"storage\"}"),
        1
    );
    assert!(metric(&text, "cairn_storage_used_bytes") >= 50_000.0);
    // Every series the operator's Grafana dashboard draws is one the node serves.
    let dashboard = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/grafana-dashboard.json"),
    )
    .expect("the dashboard");
    // (A family yet to have a sample, such as the last upkeep run's, is declared all the same.)
    let served = |name: &str| {
        let declared = format!("# TYPE {name} ");
        text.lines()
            .any(|l| l.starts_with(name) || l.starts_with(&declared))
    };
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("cairn_") {
            assert!(
                served(word),
                "the dashboard draws {word}, which is not served"
            );
        }
    }
    // Without credentials: refused (unless [gateway] metrics_public = true).
    let url = fs::read_to_string(Path::new(&node).join("node.url")).unwrap();
    let refused = std::net::TcpStream::connect(url.trim().trim_start_matches("http://"))
        .and_then(|mut s| {
            use std::io::{Read, Write};
            write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                url.trim().trim_start_matches("http://")
            )?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}
