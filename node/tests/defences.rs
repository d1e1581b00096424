//! A real `cairn run` process against hostile web pages and a damaged disk. Requests a
//! browser would send for a page of another origin, or for a page that rebound its own name
//! to 127.0.0.1, are refused; so is anything without the API token or a browser session; the
//! CLI, which shows the token, works; a one-time login URL gives a browser a session once.
//! Secrets stay out of status, and the node's files are its user's alone. A journal damaged
//! in the middle stops the node from starting, with a message, and is left as it was. A
//! storage node on a small disk fills to its reserve and no further, and keeps serving.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use support::{ok, run, wait_until, Running};

/// An HTTP answer: its status, headers (lower-cased names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

/// Sends one request by hand, with exactly the headers given (a browser's, an attacker's).
fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the gateway listens");
    let mut text = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        text += &format!("{name}: {value}\r\n");
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        text += "Content-Length: 0\r\n";
    }
    text += "\r\n";
    stream.write_all(text.as_bytes()).expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("an answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn port_of(dir: &Path) -> u16 {
    let url = fs::read_to_string(dir.join("node.url")).expect("node.url");
    url.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

fn secret(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join("private").join(name))
        .expect("a secret file")
        .trim()
        .to_owned()
}

#[test]
fn the_gateway_serves_its_cli_and_refuses_other_origins_and_strangers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("intro");
    let dir_arg = dir.to_str().expect("utf-8 path");
    ok(&["create-introducer", dir_arg]);
    let node = Running::start(&dir);
    let port = port_of(&dir);
    let host = format!("127.0.0.1:{port}");
    let token = secret(&dir, "api_auth_token");
    let bearer = format!("Bearer {token}");

    // The CLI shows the token and works; its status holds no secret.
    let status = ok(&["-d", dir_arg, "status", "--json"]);
    let furl_secret = secret(&dir, "furl.secret");
    assert!(
        !status.contains(&furl_secret),
        "status shows the FURL secret: {status}"
    );
    assert!(!status.contains(&token), "status shows the API token");
    let answer = request(
        port,
        "GET",
        "/status",
        &[("Host", &host), ("Authorization", &bearer)],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
    assert!(!answer.body.contains(&furl_secret));

    // No token, a wrong one: refused.
    let answer = request(port, "GET", "/status", &[("Host", &host)]);
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        answer.body.contains("api_auth_token"),
        "says what is needed: {}",
        answer.body
    );
    let wrong = format!("Bearer {}x", &token[1..]);
    let answer = request(
        port,
        "GET",
        "/status",
        &[("Host", &host), ("Authorization", &wrong)],
    );
    assert_eq!(answer.status, 401);

    // DNS rebinding: a page of evil.example, now resolving to 127.0.0.1. Even with the token
    // (which a page cannot have), the foreign Host is refused.
    for target in ["/status", "/vdrive/list?path=/", "/uri/URI:LIT:nbswy3dp"] {
        let headers = [("Host", "evil.example"), ("Authorization", bearer.as_str())];
        let answer = request(port, "GET", target, &headers);
        assert_eq!(answer.status, 403, "{target}: {}", answer.body);
        assert!(!answer.body.contains(&furl_secret));
    }

    // A cross-site form post, and pages of other origins on this very machine.
    let unlink = "/vdrive/unlink?path=/docs/s.txt";
    let cross = [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "http://127.0.0.1:1")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Origin", "null")],
    ];
    for extra in cross {
        let mut headers = vec![("Host", host.as_str())];
        headers.extend(extra.iter().copied());
        let answer = request(port, "POST", unlink, &headers);
        assert_eq!(answer.status, 403, "{extra:?}: {}", answer.body);
        headers.push(("Authorization", bearer.as_str()));
        let answer = request(port, "POST", unlink, &headers);
        assert_eq!(
            answer.status, 403,
            "{extra:?} with the token: {}",
            answer.body
        );
    }

    // A browser session: from a one-time URL, once.
    let url = ok(&["-d", dir_arg, "webopen"]);
    let target = url
        .trim()
        .split_once(&host)
        .map(|(_, t)| t.to_owned())
        .expect("our URL");
    assert!(target.starts_with("/login?code="), "{url}");
    let browser = [("Host", host.as_str()), ("Sec-Fetch-Site", "none")];
    let login = request(port, "GET", &target, &browser);
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let again = request(port, "GET", &target, &browser);
    assert_eq!(again.status, 403, "a login URL works once");
    let with_session = [
        ("Host", host.as_str()),
        ("Cookie", session.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let answer = request(port, "GET", "/status", &with_session);
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The cookie goes along with requests from a page on another port of 127.0.0.1 (same
    // site): the origin check is what stops them.
    let from_elsewhere = [
        ("Host", host.as_str()),
        ("Cookie", session.as_str()),
        ("Origin", "http://127.0.0.1:1"),
    ];
    assert_eq!(request(port, "POST", unlink, &from_elsewhere).status, 403);

    // The web UI's pages run only the gateway's own script, in no frame; a file's body runs
    // nothing at all. A page without a session says how to get one; a page it cannot show,
    // why.
    let page = request(port, "GET", "/", &with_session);
    assert_eq!(page.status, 200, "{}", page.body);
    let policy = page.header("content-security-policy").unwrap_or_default();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(rule), "{policy}");
    }
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let file = request(
        port,
        "GET",
        "/uri/URI:LIT:nbswy3dp?filename=a%22b.html",
        &with_session,
    );
    assert_eq!(file.status, 200, "{}", file.body);
    assert_eq!(file.header("content-security-policy"), Some("sandbox"));
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
    let saved_as = file.header("content-disposition").unwrap_or_default();
    assert!(
        saved_as.starts_with("attachment; filename=\"a_b.html\"; filename*=UTF-8''a%22b%2Ehtml"),
        "{saved_as}"
    );
    let login = request(port, "GET", "/files", &[("Host", &host)]);
    assert_eq!(login.status, 401);
    assert!(
        login.body.contains("webopen") && login.body.contains("<html"),
        "{}",
        login.body
    );
    let no_tree = request(port, "GET", "/files?path=%2Fdocs", &with_session);
    assert_eq!(no_tree.status, 400, "{}", no_tree.body);
    assert!(no_tree
        .body
        .contains("<p class=\"error\">this node runs no client"));

    // An upload over the node's largest is refused before a byte is spooled.
    let huge = [
        ("Host", host.as_str()),
        ("Authorization", bearer.as_str()),
        ("Content-Length", "2199023255552"),
    ];
    let answer = request(port, "PUT", "/uri", &huge);
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(answer.body.contains("max_upload_size"), "{}", answer.body);

    // Everything the node wrote is its user's alone.
    let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "introducer.furl",
        "node.url",
        "cairn.toml",
        "vdrive/journal",
    ] {
        assert_eq!(
            mode(&dir.join(file)) & 0o077,
            0,
            "{file} is readable by others"
        );
    }
    drop(node);

    // A node not running says so.
    let out = run(&["-d", dir_arg, "status"]);
    assert!(!out.status.success());
}

/// A journal frame: length, checksum (the payload's SHA-256, first four bytes), payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let sum = Sha256::digest(payload);
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&sum[..4]);
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_node_refuses_to_start_over_a_damaged_journal_and_leaves_it_be() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("intro");
    let dir_arg = dir.to_str().expect("utf-8 path");
    ok(&["create-introducer", dir_arg]);
    fs::create_dir_all(dir.join("vdrive")).expect("vdrive dir");
    let journal = dir.join("vdrive/journal");
    let mut bytes = [frame(b"one"), frame(b"two"), frame(b"three")].concat();
    bytes[11 + 8] ^= 1; // the second record's payload: bit rot, with a record after it
    fs::write(&journal, &bytes).expect("write");
    let out = run(&["run", dir_arg]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged at byte 11") && stderr.contains("vdrive/journal"),
        "{stderr}"
    );
    assert_eq!(fs::read(&journal).expect("read"), bytes, "left as it was");
    assert!(!dir.join("node.url").exists(), "the node did not start");
}

/// Whether this machine lets an unprivileged test make a mount namespace with its own tmpfs
/// (`unshare -rm`): the only way to give a node a small disk of its own.
fn can_mount_a_private_tmpfs() -> bool {
    Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn a_storage_node_on_a_small_disk_fills_to_its_reserve_and_keeps_serving() {
    if !can_mount_a_private_tmpfs() {
        // Not an installed extra but a kernel permission: skipped loudly everywhere.
        eprintln!("SKIPPED: this machine does not allow `unshare -rm` (a private tmpfs)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let path = |name: &str| tmp.path().join(name);
    let text = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    ok(&["create-introducer", &text(&path("intro"))]);
    let introducer = Running::start(&path("intro"));
    let furl = fs::read_to_string(path("intro/introducer.furl")).expect("furl");
    let furl = furl.trim();

    // The storage node's shares and lease journal on a 24 MiB disk, 8 MiB of it reserved.
    let storage = path("storage");
    ok(&[
        "create-node",
        &text(&storage),
        "--introducer",
        furl,
        "--reserved-space",
        "8 MiB",
    ]);
    fs::create_dir_all(storage.join("storage")).expect("storage dir");
    let mut command = Command::new("unshare");
    command.args([
        "-rm",
        "sh",
        "-c",
        "mount -t tmpfs -o size=24m tmpfs \"$1\" && exec \"$2\" run \"$3\"",
        "sh",
    ]);
    command
        .arg(storage.join("storage"))
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg(&storage);
    command.env("RUST_LOG", "info");
    let storage_node = Running::spawn(&storage, command);

    let client = path("client");
    let one_share = [
        "--shares-needed",
        "1",
        "--shares-happy",
        "1",
        "--shares-total",
        "1",
    ];
    let mut args = vec![
        "create-node",
        client.to_str().expect("utf-8"),
        "--introducer",
        furl,
        "--no-storage",
    ];
    args.extend(one_share);
    ok(&args);
    let _client = Running::start(&client);
    let client = text(&client);
    wait_until("the client knows the storage server", || {
        let status = ok(&["-d", &client, "status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
        status["servers"].as_array().is_some_and(|s| s.len() == 1)
    });

    // 4 MiB files, one after another, until the server refuses one.
    let mut stored = Vec::new();
    let refusal = loop {
        assert!(
            stored.len() < 6,
            "24 MiB with 8 reserved took {} files of 4 MiB",
            stored.len()
        );
        let n = stored.len() as u8;
        let data: Vec<u8> = (0..4 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ n)
            .collect();
        let file = path(&format!("file-{n}"));
        fs::write(&file, &data).expect("write");
        let out = run(&["-d", &client, "put", &text(&file)]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        stored.push((String::from_utf8_lossy(&out.stdout).trim().to_owned(), data));
    };
    eprintln!("{} files of 4 MiB stored, then: {refusal}", stored.len());
    // 16 MiB above the reserve: three shares of a little over 4 MiB, not four (which would
    // eat into the reserve), nor five (which would fill the disk).
    assert_eq!(stored.len(), 3, "16 MiB above the reserve, 4 MiB files");
    assert!(
        refusal.contains("free space") || refusal.contains("not enough space"),
        "the refusal says why: {refusal}"
    );

    // The server kept its reserve and its wits: it still answers, holds every file it
    // accepted, and takes a file that fits.
    for (cap, data) in &stored {
        let out_file = path("back");
        let out = run(&["-d", &client, "get", cap, "-o", &text(&out_file)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            fs::read(&out_file).expect("read") == *data,
            "a stored file came back changed"
        );
        fs::remove_file(&out_file).expect("remove");
    }
    let small = path("small");
    fs::write(&small, vec![7u8; 100_000]).expect("write");
    ok(&["-d", &client, "put", &text(&small)]);
    let log = storage_node.log();
    assert!(
        !log.contains("panicked") && !log.contains("journal failed"),
        "{log}"
    );
    drop(storage_node);
    drop(introducer);
}
