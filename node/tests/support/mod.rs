//! What the node's process tests share: running the `cairn` binary, and nodes run by
//! `cairn run` that stop when dropped.

#![allow(dead_code)] // each test file uses its own part of the kit

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Generous: only there so that a bug fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn cairn() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.env("RUST_LOG", "info");
    command
}

/// Runs a `cairn` command to its end.
pub fn run(args: &[&str]) -> Output {
    cairn().args(args).output().expect("cairn runs")
}

/// Runs a `cairn` command that must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
        sleep(Duration::from_millis(50));
    }
}

/// A `cairn run` process; stopped (SIGTERM) when dropped.
pub struct Running {
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Running {
    pub fn start(dir: &Path) -> Running {
        let mut command = cairn();
        command.arg("run").arg(dir);
        Running::spawn(dir, command)
    }

    /// Starts `command`, which must end up running `cairn run DIR` in its own process (an
    /// `exec`), and waits for the node to serve.
    pub fn spawn(dir: &Path, mut command: Command) -> Running {
        let _ = fs::remove_file(dir.join("node.url"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cairn run starts");
        wait_until("the node writes node.url", || dir.join("node.url").exists());
        Running {
            dir: dir.to_owned(),
            child: Some(child),
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "{} did not stop cleanly: {status}",
            self.dir.display()
        );
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
