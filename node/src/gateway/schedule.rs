//! Upkeep on a schedule. A client node renews its leases on every file under the vdrive's
//! root (`deep-check --add-lease /`) every `[client] lease_renewal`, so that storage servers
//! that collect garbage keep them; with `[repair] interval` set it also repairs them
//! (`deep-check --repair --add-lease /`, which renews too), moving at most `[repair]
//! bandwidth` bytes a second on average.
//!
//! The last run of each kind is kept in `upkeep.json` in the node directory, so that a
//! restart neither forgets when the next is due nor starts one again at once; a node that
//! never ran one starts its first a short while after it starts (once it has found the
//! grid). A run that could not walk the tree is tried again sooner than its interval.
//! `status` shows the last runs, the one under way and when the next are due.

use super::upkeep::{check_file, Actions};
use super::Gateway;
use crate::api::{self, DeepCheckSummary};
use crate::commands::vdrive_join;
use crate::config::Plan;
use crate::nodedir;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The most a node waits after it starts before its first run of a kind it never ran.
const FIRST_RUN_DELAY: Duration = Duration::from_secs(60);
/// The most a node waits to try again after a run that could not walk the tree.
const RETRY_DELAY: Duration = Duration::from_secs(600);
/// The file in the node directory that keeps the last runs.
pub const UPKEEP_FILE: &str = "upkeep.json";

/// The last run of each kind, as kept in [`UPKEEP_FILE`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    renewal: Option<api::UpkeepRun>,
    repair: Option<api::UpkeepRun>,
}

/// A node's schedule: its plan, its record and the run under way.
pub struct Schedule {
    plan: Plan,
    path: PathBuf,
    /// When the node started, in Unix seconds.
    started: u64,
    state: Mutex<(Record, Option<api::UpkeepRun>)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Renewal,
    Repair,
}

impl Schedule {
    /// The schedule of the node in `dir`, with the runs recorded there (a record that does
    /// not read is replaced: the worst it costs is a run sooner than due).
    pub fn open(dir: &std::path::Path, plan: Plan) -> Schedule {
        let path = dir.join(UPKEEP_FILE);
        let record = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("{} does not read ({e}); starting afresh", path.display());
                Record::default()
            }),
            Err(_) => Record::default(),
        };
        Schedule {
            plan,
            path,
            started: unix_now(),
            state: Mutex::new((record, None)),
        }
    }

    /// What status shows.
    pub fn status(&self) -> api::Upkeep {
        let state = self.lock();
        let (record, running) = &*state;
        api::Upkeep {
            renewal_interval_secs: self.plan.renewal.map(|d| d.as_secs()),
            repair_interval_secs: self.plan.repair.map(|d| d.as_secs()),
            repair_bandwidth: self.plan.bandwidth,
            last_renewal: record.renewal.clone(),
            last_repair: record.repair.clone(),
            running: running.clone(),
            next_renewal: self.due(record, Kind::Renewal),
            next_repair: self.due(record, Kind::Repair),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Record, Option<api::UpkeepRun>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the next run of `kind` is due, in Unix seconds (`None`: it is off).
    fn due(&self, record: &Record, kind: Kind) -> Option<u64> {
        let interval = match kind {
            Kind::Renewal => self.plan.renewal?,
            Kind::Repair => self.plan.repair?,
        };
        // A repair renews leases too: whichever ran last counts for renewal.
        let last = match kind {
            Kind::Renewal => [&record.renewal, &record.repair]
                .into_iter()
                .flatten()
                .max_by_key(|run| run.started),
            Kind::Repair => record.repair.as_ref(),
        };
        Some(match last {
            None => self.started + interval.min(FIRST_RUN_DELAY).as_secs(),
            Some(run) if run.error.is_some() => {
                run.finished.unwrap_or(run.started) + interval.min(RETRY_DELAY).as_secs()
            }
            Some(run) => run.started + interval.as_secs(),
        })
    }

    /// The next run: its kind and when it is due (repair first: it renews too).
    fn next(&self) -> Option<(Kind, u64)> {
        let state = self.lock();
        let repair = self
            .due(&state.0, Kind::Repair)
            .map(|at| (Kind::Repair, at));
        let renewal = self
            .due(&state.0, Kind::Renewal)
            .map(|at| (Kind::Renewal, at));
        [repair, renewal]
            .into_iter()
            .flatten()
            .min_by_key(|&(_, at)| at)
    }

    fn update(&self, run: &api::UpkeepRun) {
        self.lock().1 = Some(run.clone());
    }

    /// Records a finished run, on disk too.
    fn finish(&self, kind: Kind, run: api::UpkeepRun) {
        let mut state = self.lock();
        state.1 = None;
        match kind {
            Kind::Renewal => state.0.renewal = Some(run),
            Kind::Repair => state.0.repair = Some(run),
        }
        let saved = serde_json::to_vec_pretty(&state.0)
            .map_err(anyhow::Error::from)
            .and_then(|json| nodedir::write_atomically(&self.path, &json));
        if let Err(e) = saved {
            tracing::warn!(
                "cannot record the upkeep run in {}: {e:#}",
                self.path.display()
            );
        }
    }
}

/// Runs the schedule of `g` until `stop` turns true.
pub async fn run(g: Arc<Gateway>, schedule: Arc<Schedule>, mut stop: watch::Receiver<bool>) {
    while let Some((kind, due)) = schedule.next() {
        let wait = Duration::from_secs(due.saturating_sub(unix_now()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let run = tokio::select! {
            run = deep_check(&g, &schedule, kind) => run,
            _ = stop.changed() => return,
        };
        tracing::info!(?kind, summary = ?run.summary, error = ?run.error, "upkeep run done");
        schedule.finish(kind, run);
    }
}

/// One run over every file under the root.
async fn deep_check(g: &Gateway, schedule: &Schedule, kind: Kind) -> api::UpkeepRun {
    let mut run = api::UpkeepRun {
        kind: match kind {
            Kind::Renewal => "renewal",
            Kind::Repair => "repair",
        }
        .to_owned(),
        started: unix_now(),
        finished: None,
        summary: DeepCheckSummary::default(),
        error: None,
    };
    schedule.update(&run);
    let actions = Actions {
        verify: false,
        repair: kind == Kind::Repair,
        add_lease: true,
    };
    let began = Instant::now();
    let mut dirs = vec!["/".to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = match super::tree::list(g, &dir).await {
            Ok(entries) => entries,
            // A directory removed since its parent was listed is simply gone.
            Err(e) if dir != "/" => {
                tracing::debug!(%dir, "upkeep: cannot list: {}", e.message);
                continue;
            }
            Err(e) => {
                run.error = Some(format!("cannot list the vdrive's root: {}", e.message));
                break;
            }
        };
        for entry in entries {
            let Some(cap) = entry.cap else {
                dirs.push(vdrive_join(&dir, &entry.name));
                continue;
            };
            match check_file(g, &cap, actions).await {
                Ok(checked) => {
                    run.summary.count(&checked);
                }
                Err(e) => {
                    let path = vdrive_join(&dir, &entry.name);
                    tracing::warn!(%path, "upkeep: cannot check: {}", e.message);
                    run.summary.failed();
                }
            }
            schedule.update(&run);
            if let Some(rate) = schedule.plan.bandwidth {
                // Ahead of the rate: wait until the bytes moved are due.
                let due = Duration::from_secs_f64(run.summary.bytes_moved as f64 / rate as f64);
                tokio::time::sleep(due.saturating_sub(began.elapsed())).await;
            }
        }
    }
    run.finished = Some(unix_now());
    run
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
