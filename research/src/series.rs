//! The run's time series: at evenly spaced instants, the mesh's availability, how many files
//! are lost or unreadable, how many shares files keep, repair traffic so far, and how evenly
//! shares spread over the nodes.

use super::churn::ChurnDriver;
use super::client::{self, SharedStats};
use super::ledger::{self, SharedLedger};
use super::ring::{self, SharedMembership};
use super::scenario::DAY;
use cairn_actors::Time;
use serde::Serialize;

/// The mesh at one instant. Counts of operations and bytes are cumulative since the start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Days since the churn began.
    pub day: f64,
    /// Nodes that are members (not departed).
    pub members: u32,
    /// Members that are up.
    pub up: u32,
    /// `up / members`.
    pub availability: f64,
    /// Files with fewer than k distinct shares left on members: gone for good.
    pub files_lost: u32,
    /// Files with fewer than k distinct shares on nodes up now: unreadable at this instant.
    pub files_unavailable: u32,
    /// Files below the repair threshold (R, or N without repair), counting members' shares.
    pub files_below_threshold: u32,
    /// Distinct shares per file on members: mean and least.
    pub shares_mean: f64,
    pub shares_min: u32,
    /// Distinct shares per file on nodes up now: mean and least.
    pub shares_up_mean: f64,
    pub shares_up_min: u32,
    /// Shares stored per file, copies included (repairs of shares on nodes that were only
    /// down make copies).
    pub copies_mean: f64,
    /// Repair traffic so far (bytes read plus bytes written), and repairs so far.
    pub repair_bytes: u64,
    pub repairs: u64,
    pub download_attempts: u64,
    pub download_successes: u64,
    /// Shares per member node: mean, most, and coefficient of variation (placement evenness).
    pub load_mean: f64,
    pub load_max: u64,
    pub load_cv: f64,
}

/// Takes the samples. See the module docs.
pub struct Sampler {
    start: Time,
    step_ns: f64,
    count: u32,
    taken: u32,
    needed: u8,
    threshold: u8,
    samples: Vec<Sample>,
}

impl Sampler {
    /// `count` samples from `start` to `end`, both included; `(k, R)` as the needed shares
    /// and the threshold that counts files below it.
    pub fn new(start: Time, end: Time, count: u32, (needed, threshold): (u8, u8)) -> Self {
        let span = end.0.saturating_sub(start.0) as f64;
        Sampler {
            start,
            step_ns: span / f64::from(count.max(2) - 1),
            count: count.max(2),
            taken: 0,
            needed,
            threshold,
            samples: Vec::new(),
        }
    }

    /// When the next sample is due (`None` once all are taken).
    pub fn next_time(&self) -> Option<Time> {
        (self.taken < self.count)
            .then(|| Time(self.start.0 + (self.step_ns * f64::from(self.taken)).round() as u64))
    }

    /// Takes a sample now.
    pub fn take(
        &mut self,
        now: Time,
        ledger: &SharedLedger,
        members: &SharedMembership,
        churn: &ChurnDriver,
        stats: &SharedStats,
    ) {
        self.taken += 1;
        let members = ring::lock(members);
        let ledger = ledger::lock(ledger);
        let stats = client::lock(stats).clone();
        let member_list: Vec<u32> = members.members().collect();
        let up = member_list.iter().filter(|n| churn.is_up(**n)).count() as u32;
        let (k, r) = (usize::from(self.needed), usize::from(self.threshold));
        let (mut lost, mut unavailable, mut below) = (0, 0, 0);
        let (mut sum, mut min, mut up_sum, mut up_min, mut copies) =
            (0u64, usize::MAX, 0u64, usize::MAX, 0u64);
        // Departed nodes hold nothing in the ledger, so every holder is a member.
        let up_now: Vec<bool> = (0..churn.node_count()).map(|n| churn.is_up(n)).collect();
        let state = |n: u32| (true, up_now.get(n as usize).copied().unwrap_or(false));
        for f in 0..ledger.file_count() {
            let (on_members, on_up) = ledger.distinct_two(f, state);
            lost += u32::from(on_members < k);
            unavailable += u32::from(on_up < k);
            below += u32::from(on_members < r);
            sum += on_members as u64;
            min = min.min(on_members);
            up_sum += on_up as u64;
            up_min = up_min.min(on_up);
            copies += ledger.copies(f) as u64;
        }
        let files = f64::from(ledger.file_count().max(1));
        let load = ledger.load(member_list.iter().copied());
        let (load_mean, load_max, load_cv) = spread(&load);
        self.samples.push(Sample {
            day: now.since(self.start).as_secs_f64() / DAY,
            members: member_list.len() as u32,
            up,
            availability: f64::from(up) / (member_list.len().max(1) as f64),
            files_lost: lost,
            files_unavailable: unavailable,
            files_below_threshold: below,
            shares_mean: sum as f64 / files,
            shares_min: least(min),
            shares_up_mean: up_sum as f64 / files,
            shares_up_min: least(up_min),
            copies_mean: copies as f64 / files,
            repair_bytes: stats.repair_download_bytes + stats.repair_upload_bytes,
            repairs: stats.repairs,
            download_attempts: stats.download_attempts,
            download_successes: stats.download_successes,
            load_mean,
            load_max,
            load_cv,
        });
    }

    /// Every sample taken, in time order.
    pub fn into_samples(self) -> Vec<Sample> {
        self.samples
    }
}

/// The least of a count that may have seen nothing.
fn least(min: usize) -> u32 {
    if min == usize::MAX {
        0
    } else {
        min as u32
    }
}

/// Mean, maximum and coefficient of variation of a load vector.
fn spread(load: &[usize]) -> (f64, u64, f64) {
    if load.is_empty() {
        return (0.0, 0, 0.0);
    }
    let n = load.len() as f64;
    let mean = load.iter().sum::<usize>() as f64 / n;
    let var = load.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let max = load.iter().copied().max().unwrap_or(0) as u64;
    let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    (mean, max, cv)
}

/// The samples as CSV, one row per sample, with a header.
pub fn to_csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "day,members,up,availability,files_lost,files_unavailable,files_below_threshold,\
         shares_mean,shares_min,shares_up_mean,shares_up_min,copies_mean,repair_bytes,repairs,download_attempts,download_successes,\
         load_mean,load_max,load_cv\n",
    );
    for s in samples {
        out.push_str(&format!(
            "{:.6},{},{},{:.6},{},{},{},{:.6},{},{:.6},{},{:.6},{},{},{},{},{:.6},{},{:.6}\n",
            s.day,
            s.members,
            s.up,
            s.availability,
            s.files_lost,
            s.files_unavailable,
            s.files_below_threshold,
            s.shares_mean,
            s.shares_min,
            s.shares_up_mean,
            s.shares_up_min,
            s.copies_mean,
            s.repair_bytes,
            s.repairs,
            s.download_attempts,
            s.download_successes,
            s.load_mean,
            s.load_max,
            s.load_cv,
        ));
    }
    out
}
