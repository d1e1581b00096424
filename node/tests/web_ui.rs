//! The web UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
//! over WebDriver) against a real grid of `cairn run` processes: log in by the one-time URL,
//! browse, make a directory, upload through the form, download and compare bytes, rename,
//! check and verify, see the operations, remove — and on a phone-width screen. Then hostile
//! pages: one on a foreign name mapped to 127.0.0.1 and one on another 127.0.0.1 port (same
//! site, so the session cookie goes along) try to remove a file and read the tree; an HTML
//! file stored in the grid tries the same from the gateway's own origin. None of them may.
//!
//! Needs Chromium and ChromeDriver (`/usr/bin/chromium`, `/usr/bin/chromedriver`, or
//! `CAIRN_CHROMIUM` and `CAIRN_CHROMEDRIVER`): skipped with a loud message without them,
//! failed under CI (`CI` set). With `CAIRN_SCREENSHOTS=DIR`, each page is saved there as PNG
//! (`docs/screenshots` holds the README's).

mod support;

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{ok, wait_until, Running, PATIENCE};

/// Chromium and its driver, if this machine has them.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, default: &str| {
        let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
        path.exists().then_some(path)
    };
    let chromium = pick("CAIRN_CHROMIUM", "/usr/bin/chromium");
    let driver = pick("CAIRN_CHROMEDRIVER", "/usr/bin/chromedriver");
    chromium.zip(driver)
}

/// A running ChromeDriver; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(program: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        wait_until("chromedriver listens", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A page from elsewhere: serves `html` to every request, until the test ends. Each
/// connection has its own thread: a browser opens connections it sends nothing on.
fn serve_page(html: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let html = std::sync::Arc::new(html);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let html = html.clone();
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    html.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(html.as_bytes());
            });
        }
    });
    port
}

/// An introducer and two storage nodes, one of which is the client the browser uses (files
/// 1-of-2, on both); the client's directory.
fn grid(root: &Path) -> (Vec<Running>, String) {
    let intro = root.join("intro");
    ok(&["create-introducer", intro.to_str().expect("utf-8")]);
    let mut running = vec![Running::start(&intro)];
    let furl = fs::read_to_string(intro.join("introducer.furl")).expect("furl");
    let other = root.join("other");
    let node = root.join("node");
    for (dir, nickname) in [(&other, "north"), (&node, "home")] {
        ok(&[
            "create-node",
            dir.to_str().expect("utf-8"),
            "--introducer",
            furl.trim(),
            "--nickname",
            nickname,
            "--reserved-space",
            "0 B",
            "--shares-needed",
            "1",
            "--shares-happy",
            "2",
            "--shares-total",
            "2",
        ]);
        running.push(Running::start(dir));
    }
    let node = node.to_str().expect("utf-8").to_owned();
    ok(&["wait", &node, "--servers", "2"]);
    (running, node)
}

/// The UI in one browser, and where to save screenshots.
struct Ui {
    browser: Client,
    base: String,
    shots: Option<PathBuf>,
}

impl Ui {
    async fn go(&self, target: &str) {
        let url = format!("{}{target}", self.base);
        self.browser.goto(&url).await.expect("navigates");
    }

    async fn find(&self, css: &str) -> Element {
        self.browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    async fn run(&self, script: &str) -> Value {
        self.browser
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    async fn text(&self) -> String {
        let text = self.run("return document.body.innerText").await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until `script` returns true.
    async fn until(&self, what: &str, script: &str) {
        let started = Instant::now();
        while self.run(script).await != json!(true) {
            assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the directory listing to have (or not) a row named `name`.
    async fn listed(&self, name: &str, wanted: bool) {
        let script = format!(
            "return !!document.querySelector('tr[data-name=\"' + CSS.escape({}) + '\"]') == {wanted}",
            json!(name)
        );
        self.until(&format!("{name} listed: {wanted}"), &script)
            .await;
    }

    async fn screenshot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            let png = self.browser.screenshot().await.expect("a screenshot");
            fs::create_dir_all(dir).expect("screenshot directory");
            fs::write(dir.join(format!("{name}.png")), png).expect("save the screenshot");
        }
    }

    /// Submits the form `form` (CSS) after typing `value` into its field `field`.
    async fn submit(&self, form: &str, field: &str, value: &str) {
        let input = self.find(&format!("{form} input[name={field}]")).await;
        input.clear().await.expect("clear");
        input.send_keys(value).await.expect("type");
        let button = self.find(&format!("{form} button[type=submit]")).await;
        button.click().await.expect("click");
    }
}

/// The names at `path` in the node's tree, by the CLI.
fn names(node: &str, path: &str) -> Vec<String> {
    let listed = ok(&["-d", node, "ls", path]);
    listed.lines().map(str::to_owned).collect()
}

/// A page, of another origin, that tries everything the UI can do to the gateway at `port`
/// (remove, rename and make names under `target`, upload, check, read the tree, download),
/// and says in its title how each went.
fn hostile_page(port: u16, target: &str) -> String {
    let gateway = format!("http://127.0.0.1:{port}");
    let q = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let file = format!("{target}/keep.bin");
    let unlink = format!("{gateway}/vdrive/unlink?path={}", q(&file));
    let rename = format!(
        "{gateway}/vdrive/rename?from={}&to={}",
        q(&file),
        q(&format!("{target}/moved.bin"))
    );
    let mkdir = format!(
        "{gateway}/vdrive/mkdir?path={}",
        q(&format!("{target}/planted"))
    );
    let check = format!("{gateway}/check?cap=URI%3ALIT%3Anbswy3dp");
    format!(
        r#"<!doctype html><title>waiting</title>
<form id="f" method="POST" action="{unlink}" target="sink"></form>
<iframe name="sink"></iframe>
<script>
const results = [];
async function attempt(name, request) {{
  try {{
    const answer = await request();
    results.push(name + ":" + (answer.type === "opaque" ? "sent" : answer.status));
  }} catch (e) {{
    results.push(name + ":blocked");
  }}
}}
const blind = {{ method: "POST", mode: "no-cors", credentials: "include" }};
(async () => {{
  await attempt("unlink", () => fetch("{unlink}", blind));
  await attempt("rename", () => fetch("{rename}", blind));
  await attempt("mkdir", () => fetch("{mkdir}", blind));
  await attempt("check", () => fetch("{check}", blind));
  await attempt("upload", () => fetch("{gateway}/uri", {{ method: "PUT", body: "planted", credentials: "include" }}));
  await attempt("read", () => fetch("{gateway}/vdrive/list?path=%2F", {{ credentials: "include" }}));
  await attempt("download", () => fetch("{gateway}/uri/URI%3ALIT%3Anbswy3dp", {{ credentials: "include" }}));
  document.getElementById("f").submit();
  setTimeout(() => {{ document.title = "done " + results.join(" "); }}, 500);
}})();
</script>"#
    )
}

#[test]
fn the_web_ui_works_in_a_real_browser_and_hostile_pages_get_nothing() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        let why = "Chromium and ChromeDriver are not installed (apt-get install chromium \
                   chromium-driver, as .ci/run does)";
        assert!(std::env::var_os("CI").is_none(), "under CI: {why}");
        eprintln!("\n\n*** SKIPPED the web UI browser test: {why} ***\n\n");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (_grid, node) = grid(tmp.path());
    let base = fs::read_to_string(Path::new(&node).join("node.url")).expect("node.url");
    let base = base.trim().to_owned();
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // The file the hostile pages go after, put there by the CLI.
    let keep = tmp.path().join("keep.bin");
    fs::write(&keep, vec![7u8; 5000]).unwrap();
    ok(&["-d", &node, "mkdir", "/target"]);
    ok(&[
        "-d",
        &node,
        "put",
        keep.to_str().unwrap(),
        "/target/keep.bin",
    ]);

    let driver = Driver::start(&chromedriver);
    let profile = tmp.path().join("chromium-profile");
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-quic".to_owned(),
        "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable".to_owned(),
        "--window-size=1280,900".to_owned(),
        "--host-resolver-rules=MAP evil.test 127.0.0.1".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": chromium, "args": args }),
    );
    // The WebDriver client is built with rustls, and leaves the choice of crypto to us.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let browser = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a browser session");
        let ui = Ui {
            browser,
            base: base.clone(),
            shots: std::env::var_os("CAIRN_SCREENSHOTS").map(PathBuf::from),
        };
        browse(&ui, &node, tmp.path()).await;
        attack(&ui, &node, port).await;
        ui.browser.close().await.expect("the browser closes");
    });
}

/// Everything a user does, through the pages.
async fn browse(ui: &Ui, node: &str, tmp: &Path) {
    // Without a session, a page says how to get one.
    ui.go("/").await;
    let text = ui.text().await;
    assert!(text.contains("webopen"), "{text}");
    assert!(!text.contains("home"), "nothing of the node shows: {text}");

    // The one-time URL logs the browser in, and lands on the overview.
    let login = ok(&["-d", node, "webopen"]);
    ui.browser.goto(login.trim()).await.expect("logs in");
    let _ = ui.find("main section").await;
    assert_eq!(ui.browser.current_url().await.unwrap().path(), "/");
    let text = ui.text().await;
    for shown in [
        "home",
        "north",
        "storage, client",
        "connected",
        "Storage servers (2 of 2 connected)",
    ] {
        assert!(text.contains(shown), "{shown:?} on the overview: {text}");
    }
    ui.screenshot("overview").await;

    // A directory, and a name chosen to be markup: it shows as text, and runs nothing.
    ui.go("/files").await;
    ui.submit("form[data-action=mkdir]", "name", "docs").await;
    ui.listed("docs", true).await;
    let markup = "<img src=x onerror=document.title='owned'>";
    ui.submit("form[data-action=mkdir]", "name", markup).await;
    ui.listed(markup, true).await;
    assert_eq!(ui.run("return document.images.length").await, json!(0));
    assert_ne!(ui.browser.title().await.unwrap(), "owned");
    assert!(names(node, "/").contains(&format!("{markup}/")));

    // Upload through the form, with the browser's own file picker input.
    ui.find("a.dir[href*=docs]")
        .await
        .click()
        .await
        .expect("open docs");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = tmp.join("data.bin");
    fs::write(&local, &data).unwrap();
    let picker = ui.find("form[data-action=upload] input[type=file]").await;
    picker
        .send_keys(local.to_str().unwrap())
        .await
        .expect("pick the file");
    ui.find("form[data-action=upload] button")
        .await
        .click()
        .await
        .expect("upload");
    ui.listed("data.bin", true).await;
    assert_eq!(names(node, "/docs"), ["data.bin"]);
    ui.screenshot("files").await;

    // Download it as the browser would, and compare the bytes.
    let fetched = ui
        .browser
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
            const link = document.querySelector('tr[data-name="data.bin"] a.download');
            fetch(link.href).then(async (answer) => {
                const bytes = await answer.arrayBuffer();
                const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
                done([Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
                      answer.headers.get("content-disposition")]);
            }, (e) => done([String(e), null]));"#,
            vec![],
        )
        .await
        .expect("the download runs");
    let expected = format!("{:x}", Sha256::digest(&data));
    assert_eq!(fetched[0], json!(expected), "{fetched}");
    let disposition = fetched[1].as_str().unwrap_or_default();
    assert!(disposition.starts_with("attachment;"), "{disposition}");

    // Rename it.
    ui.find("tr[data-name='data.bin'] summary")
        .await
        .click()
        .await
        .expect("more");
    ui.submit(
        "tr[data-name='data.bin'] form[data-action=rename]",
        "to",
        "renamed.bin",
    )
    .await;
    ui.listed("renamed.bin", true).await;
    ui.listed("data.bin", false).await;
    assert_eq!(names(node, "/docs"), ["renamed.bin"]);

    // Its page: caps, and where the shares are (checked as the page loads); then verify.
    ui.find("a.file")
        .await
        .click()
        .await
        .expect("open the file");
    let _ = ui.find("#report .verdict").await;
    let text = ui.text().await;
    for shown in [
        "URI:CHK:",
        "URI:CHK-Verifier:",
        "1-of-2",
        "Where the shares are",
        "home",
        "north",
    ] {
        assert!(text.contains(shown), "{shown:?} on the file page: {text}");
    }
    ui.find("button[data-check=verify]")
        .await
        .click()
        .await
        .expect("verify");
    ui.until(
        "the verify report",
        "return !!document.querySelector('#report .verdict') && \
         !document.querySelector('button[data-check=verify]').disabled",
    )
    .await;
    assert_eq!(
        ui.run("return document.querySelector('#report .verdict').textContent")
            .await,
        json!("healthy")
    );
    assert_eq!(
        ui.run("return document.querySelectorAll('table.shares tr').length")
            .await,
        json!(3)
    );
    ui.screenshot("file").await;

    // The operations: the upload, the download and the checks, each succeeded.
    ui.go("/operations").await;
    let text = ui.text().await;
    for kind in ["upload", "download", "check"] {
        let rows = format!(
            "return Array.from(document.querySelectorAll('tr.operation[data-kind={kind}]')).\
             filter((r) => r.textContent.includes('succeeded')).length"
        );
        assert!(ui.run(&rows).await.as_u64() >= Some(1), "a {kind}: {text}");
    }
    assert!(text.contains("data.bin"), "the upload's name: {text}");
    ui.screenshot("operations").await;

    // A path that names nothing: the page says so.
    ui.go("/files?path=%2Fno%2Fsuch").await;
    let error = ui.find("p.error").await.text().await.unwrap();
    assert!(error.contains("no"), "{error}");

    // Remove it, on a phone-width screen: nothing wider than the screen.
    ui.browser.set_window_size(390, 844).await.expect("resize");
    ui.go("/files?path=%2Fdocs").await;
    ui.listed("renamed.bin", true).await;
    assert_eq!(
        ui.run("return document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        json!(true)
    );
    ui.screenshot("files-phone").await;
    ui.find("tr[data-name='renamed.bin'] summary")
        .await
        .click()
        .await
        .expect("more");
    ui.find("tr[data-name='renamed.bin'] form[data-action=unlink] button")
        .await
        .click()
        .await
        .expect("remove");
    ui.listed("renamed.bin", false).await;
    assert!(names(node, "/docs").is_empty());
    ui.browser.set_window_size(1280, 900).await.expect("resize");
}

/// Pages of other origins, and a stored page in the gateway's own, go after
/// `/target/keep.bin`.
async fn attack(ui: &Ui, node: &str, port: u16) {
    let page_port = serve_page(hostile_page(port, "/target"));
    let started = |text: &str| {
        let series = "cairn_operations_total{kind=\"check\",outcome=\"started\"} ";
        let line = text.lines().find_map(|l| l.strip_prefix(series));
        line.map(str::to_owned).unwrap_or_default()
    };
    let checks_before = started(&ok(&["-d", node, "metrics"]));
    // A foreign name (another site), and another port of 127.0.0.1 (the same site: the
    // session's cookie goes along).
    for origin in [
        format!("http://evil.test:{page_port}/"),
        format!("http://127.0.0.1:{page_port}/"),
    ] {
        ui.browser
            .goto(&origin)
            .await
            .expect("the hostile page loads");
        ui.until(
            "the hostile page is done",
            "return document.title.startsWith('done')",
        )
        .await;
        let title = ui.browser.title().await.unwrap();
        for read in ["upload:blocked", "read:blocked", "download:blocked"] {
            assert!(title.contains(read), "{origin}: {title}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // the form's POST lands
        assert_eq!(names(node, "/target"), ["keep.bin"], "{origin}: {title}");
    }
    let checks_after = started(&ok(&["-d", node, "metrics"]));
    assert_eq!(
        checks_before, checks_after,
        "no check ran for a hostile page"
    );
    assert!(!ok(&["-d", node, "ls", "/"]).contains("planted"));

    // A stored HTML file with a script, opened from the gateway: it never runs.
    let evil = r#"<!doctype html><title>stored</title><script>
        document.title = "ran";
        fetch("/vdrive/unlink?path=%2Ftarget%2Fkeep.bin", { method: "POST" });
        </script>"#;
    let evil_file = Path::new(node).join("evil.html");
    fs::write(&evil_file, evil).unwrap();
    let cap = ok(&["-d", node, "put", evil_file.to_str().unwrap()]);
    ui.go(&format!("/uri/{}", cap.trim())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(ui.browser.title().await.unwrap(), "ran");
    assert_eq!(names(node, "/target"), ["keep.bin"]);
}
