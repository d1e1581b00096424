//! What the gateway did lately: every upload, download and check it served, running or
//! finished, with how far it got, how fast, and how it ended. The web UI's operations page
//! shows it; [`super::metrics`] counts the same operations.

use super::metrics::Kind;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Finished operations kept (the oldest go first), and the most tracked while running.
const FINISHED_KEPT: usize = 100;
const MAX_RUNNING: usize = 1024;

/// The log of one gateway.
#[derive(Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    made: u64,
    running: BTreeMap<u64, Record>,
    finished: VecDeque<Record>,
}

/// One operation, as far as it went.
#[derive(Clone, Debug)]
pub struct Record {
    pub kind: Kind,
    /// What it works on, for a person (a cap's short form, say).
    pub what: String,
    /// When it started (wall clock, for display) and how long it ran (monotonic).
    pub started: SystemTime,
    since: Instant,
    pub took: Option<Duration>,
    /// What it is doing now ("receiving", "placing shares", "sending", ...).
    pub phase: &'static str,
    /// Bytes done of the phase, and of how many, if known.
    pub done: u64,
    pub total: Option<u64>,
    /// Unset while running; then success, or what went wrong.
    pub outcome: Option<Result<(), String>>,
}

impl Record {
    /// How long it ran, or has run so far.
    pub fn elapsed(&self) -> Duration {
        self.took.unwrap_or_else(|| self.since.elapsed())
    }

    /// Bytes a second over its run so far, once it has moved any.
    pub fn rate(&self) -> Option<f64> {
        let secs = self.elapsed().as_secs_f64();
        (self.done > 0 && secs > 0.0).then(|| self.done as f64 / secs)
    }
}

/// What the operations page shows.
pub struct Snapshot {
    /// Oldest first.
    pub running: Vec<Record>,
    /// Newest first.
    pub finished: Vec<Record>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a start; its id, unless too many are running to track another.
    pub fn start(&self, kind: Kind, what: String) -> Option<u64> {
        let mut inner = self.lock();
        if inner.running.len() >= MAX_RUNNING {
            return None;
        }
        inner.made += 1;
        let id = inner.made;
        let record = Record {
            kind,
            what,
            started: SystemTime::now(),
            since: Instant::now(),
            took: None,
            phase: "starting",
            done: 0,
            total: None,
            outcome: None,
        };
        inner.running.insert(id, record);
        Some(id)
    }

    pub fn progress(&self, id: u64, phase: &'static str, done: u64, total: Option<u64>) {
        if let Some(record) = self.lock().running.get_mut(&id) {
            record.phase = phase;
            record.done = done;
            record.total = total;
        }
    }

    pub fn end(&self, id: u64, outcome: Result<(), String>) {
        let mut inner = self.lock();
        let Some(mut record) = inner.running.remove(&id) else {
            return;
        };
        record.took = Some(record.since.elapsed());
        record.phase = "ended";
        record.outcome = Some(outcome);
        if inner.finished.len() >= FINISHED_KEPT {
            inner.finished.pop_back();
        }
        inner.finished.push_front(record);
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            running: inner.running.values().cloned().collect(),
            finished: inner.finished.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_move_from_running_to_finished_newest_first_and_the_log_is_bounded() {
        let log = Activity::default();
        let first = log.start(Kind::Upload, "a".into()).unwrap();
        let second = log.start(Kind::Download, "b".into()).unwrap();
        log.progress(first, "receiving", 10, Some(20));
        let shot = log.snapshot();
        assert_eq!(shot.running.len(), 2);
        assert_eq!(
            (shot.running[0].done, shot.running[0].total),
            (10, Some(20))
        );
        log.end(second, Err("gone".into()));
        log.end(first, Ok(()));
        log.end(first, Err("a second end is ignored".into()));
        let shot = log.snapshot();
        assert!(shot.running.is_empty());
        let whats: Vec<_> = shot.finished.iter().map(|r| r.what.as_str()).collect();
        assert_eq!(whats, ["a", "b"]);
        assert_eq!(shot.finished[0].outcome, Some(Ok(())));
        assert_eq!(shot.finished[1].outcome, Some(Err("gone".into())));

        for n in 0..FINISHED_KEPT + 10 {
            let id = log.start(Kind::Check, n.to_string()).unwrap();
            log.end(id, Ok(()));
        }
        let shot = log.snapshot();
        assert_eq!(shot.finished.len(), FINISHED_KEPT);
        assert_eq!(shot.finished[0].what, (FINISHED_KEPT + 9).to_string());
        for _ in 0..MAX_RUNNING {
            log.start(Kind::Check, String::new());
        }
        assert!(log.start(Kind::Check, String::new()).is_none());
    }
}
