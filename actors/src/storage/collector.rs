//! The garbage collector: a walk over the files the server holds leases on, which deletes
//! the shares of a file once every lease on it has lapsed under the server's [`Expiry`] rule.
//!
//! The walk goes in storage-index order, [`StorageConfig::crawl_rate`] files a second (each
//! examined file costs at most one listing and its deletions), and records where it is in
//! the lease journal when a pass starts, every [`CHECKPOINT_STEPS`] steps, after a step that
//! deleted something, and when it ends, so that a restart resumes it near where it stopped
//! (examining a few files again is harmless) while the journal grows by a record per ten
//! seconds of walking, not one a second. A pass starts at
//! most once per [`StorageConfig::crawl_interval`]. Nothing is deleted while expiry is off
//! (the default, as in Tahoe-LAFS), nor from a file with a live lease or a share being
//! uploaded. Each pass also counts the shares that will lapse within [`LAPSE_WARNING`], so
//! that an operator turning expiry on sees what it will take before it takes it.
//!
//! [`StorageConfig::crawl_rate`]: super::StorageConfig::crawl_rate
//! [`StorageConfig::crawl_interval`]: super::StorageConfig::crawl_interval

use super::{StorageServer, CRAWL_TIMER};
use crate::actor::{Context, Time};
use crate::ids::{ShareNum, StorageIndex};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How far ahead each pass counts the shares that will lapse.
pub const LAPSE_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the walk takes its next step of [`super::StorageConfig::crawl_rate`] files.
pub const CRAWL_STEP: Duration = Duration::from_secs(1);
/// The most steps the walk takes between two records of where it is.
pub const CHECKPOINT_STEPS: u32 = 10;

/// When the shares of a file may be collected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    /// Never.
    #[default]
    Off,
    /// Once every lease on it has ended.
    Leases,
    /// Once every lease on it was last renewed longer ago than this (whatever the leases
    /// themselves say, as Tahoe's `age` mode with `override_lease_duration`).
    Age(Duration),
    /// Once every lease on it was last renewed before this time.
    Cutoff(Time),
}

impl Expiry {
    /// When a lease that ends at `expires`, granted for `period`, lets go of its file under
    /// this rule; `None`: never. A lease was last renewed one period before it ends.
    pub fn lapse(self, expires: Time, period: Duration) -> Option<Time> {
        let period = period.as_nanos().min(u128::from(u64::MAX)) as u64;
        let renewed = Time(expires.0.saturating_sub(period));
        match self {
            Expiry::Off => None,
            Expiry::Leases => Some(expires),
            Expiry::Age(age) => Some(renewed.after(age)),
            Expiry::Cutoff(cutoff) => (renewed < cutoff).then_some(Time(0)),
        }
    }
}

/// One pass of the walk, as far as it went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    pub started: Time,
    /// When it reached the end.
    pub finished: Option<Time>,
    /// The last file examined (the walk goes in storage-index order).
    pub cursor: Option<StorageIndex>,
    pub files_examined: u64,
    pub shares_removed: u64,
    pub bytes_freed: u64,
    /// Shares of the files examined that will lapse within [`LAPSE_WARNING`] of when they
    /// were examined (and are not collected yet), and their bytes.
    pub shares_lapsing: u64,
    pub bytes_lapsing: u64,
    /// Shares that could not be listed or deleted (disk errors; tried again next pass).
    pub errors: u64,
}

/// What the collector did and does, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectorStatus {
    pub expiry: Expiry,
    /// The pass under way, if any.
    pub current: Option<Pass>,
    /// The last pass finished.
    pub last: Option<Pass>,
    /// When the next pass starts, if none is under way and expiry is on.
    pub next_pass: Option<Time>,
}

/// Where the collector is between steps.
#[derive(Default)]
pub(super) struct Collector {
    pub current: Option<Pass>,
    pub last: Option<Pass>,
    pub next_pass: Time,
    /// Steps taken since where the walk is was last recorded.
    pub unrecorded_steps: u32,
}

impl StorageServer {
    /// Picks the walk up where the journal says it stopped (at start, after the replay).
    pub(super) fn resume_collector(
        &mut self,
        current: Option<Pass>,
        last: Option<Pass>,
        now: Time,
    ) {
        self.collector.next_pass = match (&current, &last) {
            (Some(_), _) | (None, None) => now,
            (None, Some(last)) => last.started.after(self.config.crawl_interval),
        };
        self.collector.current = current;
        self.collector.last = last;
    }

    /// Sets the collector's timer for its next step (nothing while expiry is off).
    pub(super) fn schedule_collector(&mut self, ctx: &mut Context<'_>) {
        if self.config.expiry == Expiry::Off {
            return;
        }
        let wait = match self.collector.current {
            Some(_) => CRAWL_STEP,
            None => self.collector.next_pass.since(ctx.now()).max(CRAWL_STEP),
        };
        ctx.set_timer(CRAWL_TIMER, wait);
    }

    pub(super) fn collector_status(&self) -> CollectorStatus {
        let on = self.config.expiry != Expiry::Off;
        CollectorStatus {
            expiry: self.config.expiry,
            current: self.collector.current.clone(),
            last: self.collector.last.clone(),
            next_pass: (on && self.collector.current.is_none()).then_some(self.collector.next_pass),
        }
    }

    /// One step of the walk: the next [`super::StorageConfig::crawl_rate`] files.
    pub(super) fn crawl(&mut self, ctx: &mut Context<'_>) {
        if self.config.expiry == Expiry::Off {
            return;
        }
        let now = ctx.now();
        let mut pass = match self.collector.current.take() {
            Some(pass) => pass,
            None if now < self.collector.next_pass => return self.schedule_collector(ctx),
            None => Pass {
                started: now,
                ..Pass::default()
            },
        };
        let starting = pass.files_examined == 0;
        let removed_before = pass.shares_removed;
        let mut finished = false;
        for _ in 0..self.config.crawl_rate.max(1) {
            let Some((si, lapse)) = self.next_file(pass.cursor) else {
                finished = true;
                break;
            };
            pass.cursor = Some(si);
            pass.files_examined += 1;
            if let Some(lapse) = lapse {
                self.examine(si, lapse, now, &mut pass);
            }
        }
        if finished {
            pass.finished = Some(now);
            pass.cursor = None;
            tracing::info!(
                files = pass.files_examined,
                shares_removed = pass.shares_removed,
                bytes_freed = pass.bytes_freed,
                shares_lapsing = pass.shares_lapsing,
                errors = pass.errors,
                "storage: garbage collection pass done"
            );
            self.collector.next_pass = pass.started.after(self.config.crawl_interval);
            self.collector.last = Some(pass);
        } else {
            let removed = pass.shares_removed > removed_before;
            self.collector.current = Some(pass);
            self.collector.unrecorded_steps += 1;
            let due = self.collector.unrecorded_steps >= CHECKPOINT_STEPS;
            if !(starting || removed || due) {
                return self.schedule_collector(ctx);
            }
        }
        self.collector.unrecorded_steps = 0;
        let (current, last) = (self.collector.current.clone(), self.collector.last.clone());
        if let Err(e) = self.leases.checkpoint(current, last) {
            // The walk goes on; a restart would only examine some files again.
            tracing::warn!("storage: cannot record where garbage collection is: {e}");
        }
        self.schedule_collector(ctx);
    }

    /// The file after `cursor`, and when it lapses (`None`: not under this rule).
    fn next_file(&self, cursor: Option<StorageIndex>) -> Option<(StorageIndex, Option<Time>)> {
        let (si, ends) = self.leases.file_after(cursor)?;
        let (expiry, period) = (self.config.expiry, self.config.lease_period);
        let mut lapse = Some(Time(0));
        for end in ends {
            lapse = lapse.zip(expiry.lapse(end, period)).map(|(a, b)| a.max(b));
        }
        Some((si, lapse))
    }

    /// Collects `si` if it has lapsed, or counts its shares if it will within the warning.
    fn examine(&mut self, si: StorageIndex, lapse: Time, now: Time, pass: &mut Pass) {
        if lapse > now.after(LAPSE_WARNING) || self.uploading(si) {
            return;
        }
        let shares = match self.store.list(si) {
            Ok(shares) => shares,
            Err(e) => {
                tracing::warn!(?si, "storage: garbage collection cannot list a file: {e}");
                pass.errors += 1;
                return;
            }
        };
        if lapse > now {
            pass.shares_lapsing += shares.len() as u64;
            pass.bytes_lapsing += shares.iter().map(|&(_, size)| size).sum::<u64>();
            return;
        }
        for (share, size) in shares {
            match self.store.delete(si, share) {
                Ok(()) => {
                    pass.shares_removed += 1;
                    pass.bytes_freed += size;
                }
                Err(e) => {
                    tracing::warn!(?si, share = share.0, "storage: cannot collect a share: {e}");
                    pass.errors += 1;
                }
            }
        }
        tracing::debug!(?si, "storage: collected a file whose leases lapsed");
        self.forget_leases_if_empty(si);
    }

    /// Whether a share of `si` is being uploaded.
    pub(super) fn uploading(&self, si: StorageIndex) -> bool {
        self.incoming
            .range((si, ShareNum(0))..=(si, ShareNum(u8::MAX)))
            .next()
            .is_some()
    }
}
