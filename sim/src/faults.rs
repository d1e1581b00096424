//! Every fault the simulator can inject, as one explicit enum, and a [`FaultPlan`] that draws
//! a schedule of them from a run's random numbers.
//!
//! A fault is applied at a point in virtual time. Faults that last (a partition, extra loss,
//! a crashed or slow node, a full disk) are undone by another fault (`Heal`, `SetLoss { p:
//! 0.0 }`, `Restart`, ...); the plan schedules both ends.

use crate::host::index_below;
use cairn_actors::{NodeId, Time};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// One fault, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The node's process dies: its actors and timers vanish, messages to it are dropped.
    /// Its disk keeps everything it was given (incoming shares stay, as leftovers) unless a
    /// [`Fault::LoseUnsyncedWrites`] made this crash a power loss.
    Crash { node: NodeId },
    /// A crashed node comes back: its actors are rebuilt from its factory over its disk.
    Restart { node: NodeId },
    /// Messages from `a` to `b` (and `b` to `a` unless `one_way`) are dropped until `Heal`.
    Partition {
        a: Vec<NodeId>,
        b: Vec<NodeId>,
        one_way: bool,
    },
    /// Every partition is lifted.
    Heal,
    /// Every link also loses messages with probability `p` (0 ends the fault).
    SetLoss { p: f64 },
    /// Every link also duplicates messages with probability `p` (0 ends the fault).
    SetDuplication { p: f64 },
    /// Messages sent during the next `duration` take `extra` longer.
    DelaySpike { extra: Duration, duration: Duration },
    /// The node's messages take `factor` times longer and its uplink is `factor` times
    /// narrower (1 ends the fault).
    SlowNode { node: NodeId, factor: u32 },
    /// The node's next crash is a power loss: its disk loses what was never made durable
    /// (incoming shares vanish).
    LoseUnsyncedWrites { node: NodeId },
    /// The node loses power in the middle of a journal append: it crashes (losing unsynced
    /// writes), leaving a partial, never-acknowledged record at its journal's tail.
    TornWrite { node: NodeId },
    /// `count` random bits flip in the node's complete shares.
    BitRot { node: NodeId, count: u32 },
    /// The node's disk is full (every write fails) or no longer.
    DiskFull { node: NodeId, full: bool },
    /// The node's clock jumps to read `ahead` nanoseconds ahead of true time (behind, if
    /// negative; right again, if 0): what its actors see as now. Timers already set still
    /// fire after their durations, as a monotonic timer does.
    SetClock { node: NodeId, ahead: i64 },
    /// The link between `a` and `b` loses `loss` of its messages, both ways, and delays them
    /// by `extra` more (`loss` 0 and `extra` zero: whole again).
    DegradeLink {
        a: NodeId,
        b: NodeId,
        loss: f64,
        extra: Duration,
    },
}

/// A fault's kind, without its parameters (for counting and for rates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Crash,
    Restart,
    Partition,
    Heal,
    SetLoss,
    SetDuplication,
    DelaySpike,
    SlowNode,
    LoseUnsyncedWrites,
    TornWrite,
    BitRot,
    DiskFull,
    SetClock,
    DegradeLink,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::Partition,
        FaultKind::Heal,
        FaultKind::SetLoss,
        FaultKind::SetDuplication,
        FaultKind::DelaySpike,
        FaultKind::SlowNode,
        FaultKind::LoseUnsyncedWrites,
        FaultKind::TornWrite,
        FaultKind::BitRot,
        FaultKind::DiskFull,
        FaultKind::SetClock,
        FaultKind::DegradeLink,
    ];
}

impl Fault {
    /// This fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Restart { .. } => FaultKind::Restart,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Heal => FaultKind::Heal,
            Fault::SetLoss { .. } => FaultKind::SetLoss,
            Fault::SetDuplication { .. } => FaultKind::SetDuplication,
            Fault::DelaySpike { .. } => FaultKind::DelaySpike,
            Fault::SlowNode { .. } => FaultKind::SlowNode,
            Fault::LoseUnsyncedWrites { .. } => FaultKind::LoseUnsyncedWrites,
            Fault::TornWrite { .. } => FaultKind::TornWrite,
            Fault::BitRot { .. } => FaultKind::BitRot,
            Fault::DiskFull { .. } => FaultKind::DiskFull,
            Fault::SetClock { .. } => FaultKind::SetClock,
            Fault::DegradeLink { .. } => FaultKind::DegradeLink,
        }
    }

    /// The nodes this fault names.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        let (a, b): (&[NodeId], &[NodeId]) = match self {
            Fault::DegradeLink { a, b, .. } => (std::slice::from_ref(a), std::slice::from_ref(b)),
            Fault::Crash { node }
            | Fault::Restart { node }
            | Fault::SlowNode { node, .. }
            | Fault::LoseUnsyncedWrites { node }
            | Fault::TornWrite { node }
            | Fault::BitRot { node, .. }
            | Fault::DiskFull { node, .. }
            | Fault::SetClock { node, .. } => (std::slice::from_ref(node), &[]),
            Fault::Partition { a, b, .. } => (a, b),
            Fault::Heal
            | Fault::SetLoss { .. }
            | Fault::SetDuplication { .. }
            | Fault::DelaySpike { .. } => (&[], &[]),
        };
        a.iter().chain(b).copied()
    }

    /// The probability this fault sets, if it sets one.
    pub(crate) fn probability(&self) -> Option<f64> {
        match self {
            Fault::SetLoss { p } | Fault::SetDuplication { p } => Some(*p),
            Fault::DegradeLink { loss, .. } => Some(*loss),
            _ => None,
        }
    }
}

/// How often a [`FaultPlan`] injects each kind of fault: mean occurrences per simulated
/// second (0: never). Kinds that only undo another (restart, heal) follow from their cause.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultRates {
    pub crash: f64,
    pub partition: f64,
    pub loss: f64,
    pub duplication: f64,
    pub delay_spike: f64,
    pub slow_node: f64,
    pub torn_write: f64,
    pub bit_rot: f64,
    pub disk_full: f64,
    /// A node's clock jumps ahead or behind, and is set right again after a while.
    pub clock_jump: f64,
    /// The link between two nodes (clients too) turns lossy and slow for a while.
    pub degraded_link: f64,
}

/// Draws a random fault schedule: which faults, when, on which nodes, with what parameters.
///
/// Gaps between faults are uniform with the configured mean (no logarithms: the schedule
/// must come out the same on every machine, and `f64::ln` is the platform's).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// No fault before this.
    pub start: Time,
    /// No fault starts at or after this; every lasting fault is undone by then.
    pub end: Time,
    /// The nodes that node faults may strike.
    pub nodes: Vec<NodeId>,
    /// The nodes partitions cut apart: `nodes`, and any others given (nodes that are never
    /// crashed, such as the clients that observe a run, can still be cut off).
    pub partitioned: Vec<NodeId>,
    /// How often each kind of fault strikes.
    pub rates: FaultRates,
    /// How long a crashed node stays down.
    pub downtime: (Duration, Duration),
    /// How long a partition, extra loss or duplication, slow node or full disk lasts.
    pub duration: (Duration, Duration),
    /// At most this many of `nodes` down at once.
    pub max_down: usize,
    /// The fraction of crashes that are power losses.
    pub power_loss: f64,
    /// The fraction of partitions that are one-way.
    pub one_way: f64,
    /// The largest loss or duplication probability drawn.
    pub max_probability: f64,
    /// The longest delay spike.
    pub max_spike: Duration,
    /// The largest slow-node factor.
    pub max_slow: u32,
    /// The most bits one bit-rot fault flips.
    pub max_bit_rot: u32,
    /// The farthest a clock jumps, ahead or behind.
    pub max_clock_jump: Duration,
}

impl FaultPlan {
    /// A plan with no faults over `start..end` on `nodes`; set `rates` to taste.
    pub fn new(start: Time, end: Time, nodes: Vec<NodeId>) -> Self {
        FaultPlan {
            start,
            end,
            partitioned: nodes.clone(),
            nodes,
            rates: FaultRates::default(),
            downtime: (Duration::from_secs(1), Duration::from_secs(30)),
            duration: (Duration::from_secs(1), Duration::from_secs(20)),
            max_down: 1,
            power_loss: 0.5,
            one_way: 0.25,
            max_probability: 0.2,
            max_spike: Duration::from_secs(2),
            max_slow: 10,
            max_bit_rot: 8,
            max_clock_jump: Duration::from_secs(120),
        }
    }

    /// Draws the schedule, sorted by time.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<(Time, Fault)> {
        schedule(self.draw_episodes(rng))
    }

    /// Draws the schedule as episodes, in the order drawn: each is one fault and what
    /// undoes it (a crash and its restart, a partition and its heal, ...), so that any
    /// subset of them is a schedule that leaves the grid whole at its end (what shrinking
    /// a failing run removes).
    pub fn draw_episodes(&self, rng: &mut ChaCha8Rng) -> Vec<Episode> {
        let mut drawing = Drawing {
            plan: self,
            rng,
            out: Vec::new(),
            episodes: Vec::new(),
            down_until: BTreeMap::new(),
            busy_until: BTreeMap::new(),
        };
        drawing.run();
        drawing.episodes
    }
}

/// One fault and the faults that undo it, each at its time.
pub type Episode = Vec<(Time, Fault)>;

/// `episodes` as one schedule, sorted by time; faults drawn for the same instant keep their
/// order (a power loss before its crash).
pub fn schedule(episodes: impl IntoIterator<Item = Episode>) -> Vec<(Time, Fault)> {
    let mut out: Vec<(Time, Fault)> = episodes.into_iter().flatten().collect();
    out.sort_by_key(|(at, _)| *at); // stable
    out
}

/// What one lasting fault occupies, so that two of a kind never overlap (the second's
/// undoing would cut the first short).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Partition,
    Loss,
    Duplication,
    Spike,
    Slow(NodeId),
    Full(NodeId),
    Clock(NodeId),
    Link(NodeId, NodeId),
}

struct Drawing<'a> {
    plan: &'a FaultPlan,
    rng: &'a mut ChaCha8Rng,
    /// The faults of the episode being drawn.
    out: Vec<(Time, Fault)>,
    episodes: Vec<Episode>,
    down_until: BTreeMap<NodeId, Time>,
    busy_until: BTreeMap<Slot, Time>,
}

impl Drawing<'_> {
    fn run(&mut self) {
        let rates = &self.plan.rates;
        let weights = [
            rates.crash,
            rates.partition,
            rates.loss,
            rates.duplication,
            rates.delay_spike,
            rates.slow_node,
            rates.torn_write,
            rates.bit_rot,
            rates.disk_full,
            rates.clock_jump,
            rates.degraded_link,
        ]
        .map(|r| r.max(0.0));
        let total: f64 = weights.iter().sum();
        if total <= 0.0 || self.plan.end <= self.plan.start {
            return;
        }
        let mean_gap = (1e9 / total) as u64;
        let mut now = self.plan.start;
        loop {
            now = Time(
                now.0
                    .saturating_add(self.rng.gen_range(0..=2 * mean_gap.max(1))),
            );
            if now >= self.plan.end {
                break;
            }
            let pick = self.rng.gen::<f64>() * total;
            let kind = pick_weighted(&weights, pick);
            self.draw_one(kind, now);
            if !self.out.is_empty() {
                self.episodes.push(std::mem::take(&mut self.out));
            }
        }
    }

    fn draw_one(&mut self, kind: usize, now: Time) {
        match kind {
            0 => self.crash(now, false),
            1 => self.partition(now),
            2 => self.probability(now, Slot::Loss),
            3 => self.probability(now, Slot::Duplication),
            4 => self.spike(now),
            5 => self.slow(now),
            6 => self.crash(now, true),
            7 => self.bit_rot(now),
            8 => self.disk_full(now),
            9 => self.clock_jump(now),
            _ => self.degrade_link(now),
        }
    }

    fn between(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        let (lo, hi) = (lo.as_nanos() as u64, hi.as_nanos() as u64);
        Duration::from_nanos(self.rng.gen_range(lo.min(hi)..=hi.max(lo)))
    }

    /// When a fault starting `now` and lasting `duration` ends (before the plan's end).
    fn until(&self, now: Time, duration: Duration) -> Time {
        let end = Time(self.plan.end.0.saturating_sub(1));
        now.after(duration).min(end).max(now)
    }

    fn random_node(&mut self) -> Option<NodeId> {
        self.plan.nodes.choose(self.rng).copied()
    }

    fn free(&self, slot: Slot, now: Time) -> bool {
        self.busy_until.get(&slot).is_none_or(|until| *until < now)
    }

    fn crash(&mut self, now: Time, torn: bool) {
        let down = self.down_until.values().filter(|t| **t >= now).count();
        if down >= self.plan.max_down {
            return;
        }
        let Some(node) = self.random_node() else {
            return;
        };
        if self.down_until.get(&node).is_some_and(|t| *t >= now) {
            return;
        }
        let downtime = self.between(self.plan.downtime);
        let back = self.until(now, downtime);
        if torn {
            self.out.push((now, Fault::TornWrite { node }));
        } else {
            if self.rng.gen::<f64>() < self.plan.power_loss {
                self.out.push((now, Fault::LoseUnsyncedWrites { node }));
            }
            self.out.push((now, Fault::Crash { node }));
        }
        self.out.push((back, Fault::Restart { node }));
        self.down_until.insert(node, back);
    }

    fn partition(&mut self, now: Time) {
        if !self.free(Slot::Partition, now) || self.plan.partitioned.len() < 2 {
            return;
        }
        let mut nodes = self.plan.partitioned.clone();
        nodes.shuffle(self.rng);
        let cut = index_below(self.rng, nodes.len() / 2) + 1;
        let b = nodes.split_off(cut);
        let one_way = self.rng.gen::<f64>() < self.plan.one_way;
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        self.out.push((
            now,
            Fault::Partition {
                a: nodes,
                b,
                one_way,
            },
        ));
        self.out.push((until, Fault::Heal));
        self.busy_until.insert(Slot::Partition, until);
    }

    fn probability(&mut self, now: Time, slot: Slot) {
        if !self.free(slot, now) {
            return;
        }
        let p = self.rng.gen::<f64>() * self.plan.max_probability.clamp(0.0, 1.0);
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        let (on, off) = if slot == Slot::Loss {
            (Fault::SetLoss { p }, Fault::SetLoss { p: 0.0 })
        } else {
            (
                Fault::SetDuplication { p },
                Fault::SetDuplication { p: 0.0 },
            )
        };
        self.out.push((now, on));
        self.out.push((until, off));
        self.busy_until.insert(slot, until);
    }

    fn clock_jump(&mut self, now: Time) {
        let Some(node) = self.random_node() else {
            return;
        };
        if !self.free(Slot::Clock(node), now) {
            return;
        }
        let span = self.plan.max_clock_jump.as_nanos().min(i64::MAX as u128) as i64;
        let ahead = self.rng.gen_range(-span..=span);
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        self.out.push((now, Fault::SetClock { node, ahead }));
        self.out.push((until, Fault::SetClock { node, ahead: 0 }));
        self.busy_until.insert(Slot::Clock(node), until);
    }

    /// Two nodes of `partitioned` (clients included) and the link between them.
    fn degrade_link(&mut self, now: Time) {
        let nodes = &self.plan.partitioned;
        if nodes.len() < 2 {
            return;
        }
        let a = nodes[index_below(self.rng, nodes.len())];
        let mut b = nodes[index_below(self.rng, nodes.len() - 1)];
        if b == a {
            b = nodes[nodes.len() - 1];
        }
        let slot = Slot::Link(a.min(b), a.max(b));
        if !self.free(slot, now) {
            return;
        }
        let loss = self.rng.gen::<f64>() * self.plan.max_probability.clamp(0.0, 1.0);
        let extra = self.between((Duration::ZERO, self.plan.max_spike));
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        self.out
            .push((now, Fault::DegradeLink { a, b, loss, extra }));
        let whole = Fault::DegradeLink {
            a,
            b,
            loss: 0.0,
            extra: Duration::ZERO,
        };
        self.out.push((until, whole));
        self.busy_until.insert(slot, until);
    }

    fn spike(&mut self, now: Time) {
        if !self.free(Slot::Spike, now) {
            return;
        }
        let extra = self.between((Duration::ZERO, self.plan.max_spike));
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        self.out.push((
            now,
            Fault::DelaySpike {
                extra,
                duration: until.since(now),
            },
        ));
        self.busy_until.insert(Slot::Spike, until);
    }

    fn slow(&mut self, now: Time) {
        let Some(node) = self.random_node() else {
            return;
        };
        if !self.free(Slot::Slow(node), now) {
            return;
        }
        let factor = self.rng.gen_range(2..=self.plan.max_slow.max(2));
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        self.out.push((now, Fault::SlowNode { node, factor }));
        self.out.push((until, Fault::SlowNode { node, factor: 1 }));
        self.busy_until.insert(Slot::Slow(node), until);
    }

    fn bit_rot(&mut self, now: Time) {
        let Some(node) = self.random_node() else {
            return;
        };
        let count = self.rng.gen_range(1..=self.plan.max_bit_rot.max(1));
        self.out.push((now, Fault::BitRot { node, count }));
    }

    fn disk_full(&mut self, now: Time) {
        let Some(node) = self.random_node() else {
            return;
        };
        if !self.free(Slot::Full(node), now) {
            return;
        }
        let duration = self.between(self.plan.duration);
        let until = self.until(now, duration);
        self.out.push((now, Fault::DiskFull { node, full: true }));
        self.out
            .push((until, Fault::DiskFull { node, full: false }));
        self.busy_until.insert(Slot::Full(node), until);
    }
}

/// The index whose cumulative weight first exceeds `pick`.
fn pick_weighted(weights: &[f64], pick: f64) -> usize {
    let mut sum = 0.0;
    for (i, w) in weights.iter().enumerate() {
        sum += w;
        if pick < sum {
            return i;
        }
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn plan() -> FaultPlan {
        let nodes = (0..5u8).map(|i| NodeId([i; 32])).collect();
        let mut plan = FaultPlan::new(Time(0), Time(600_000_000_000), nodes);
        plan.rates = FaultRates {
            crash: 0.1,
            partition: 0.05,
            loss: 0.05,
            duplication: 0.05,
            delay_spike: 0.05,
            slow_node: 0.05,
            torn_write: 0.02,
            bit_rot: 0.05,
            disk_full: 0.05,
            clock_jump: 0.05,
            degraded_link: 0.05,
        };
        plan
    }

    #[test]
    fn a_plan_is_deterministic_sorted_and_undoes_what_it_does() {
        let plan = plan();
        let one = plan.draw(&mut ChaCha8Rng::seed_from_u64(9));
        let two = plan.draw(&mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(one, two);
        assert_ne!(one, plan.draw(&mut ChaCha8Rng::seed_from_u64(10)));
        assert!(one.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(one.iter().all(|(t, _)| *t >= plan.start && *t < plan.end));
        let count = |kind: FaultKind| one.iter().filter(|(_, f)| f.kind() == kind).count();
        assert!(count(FaultKind::Crash) > 5, "{one:?}");
        assert_eq!(
            count(FaultKind::Crash) + count(FaultKind::TornWrite),
            count(FaultKind::Restart)
        );
        assert_eq!(count(FaultKind::Partition), count(FaultKind::Heal));
        let mut down = BTreeMap::new();
        for (_, fault) in &one {
            match fault {
                Fault::Crash { node } | Fault::TornWrite { node } => {
                    assert!(down.insert(*node, ()).is_none(), "crashed twice");
                    assert!(down.len() <= plan.max_down);
                }
                Fault::Restart { node } => assert!(down.remove(node).is_some()),
                _ => {}
            }
        }
        assert!(down.is_empty());
        // Every clock that jumps is set right again, within the plan.
        let mut off = BTreeMap::new();
        for (_, fault) in &one {
            if let Fault::SetClock { node, ahead } = fault {
                assert!(ahead.unsigned_abs() <= plan.max_clock_jump.as_nanos() as u64);
                match *ahead {
                    0 => assert!(off.remove(node).is_some(), "set right, not wrong"),
                    _ => assert!(off.insert(*node, ()).is_none(), "one jump at a time"),
                }
            }
        }
        assert!(count(FaultKind::SetClock) > 5 && off.is_empty(), "{one:?}");
    }

    #[test]
    fn episodes_are_the_schedule_in_parts_each_undoing_itself() {
        let plan = plan();
        let episodes = plan.draw_episodes(&mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(
            schedule(episodes.clone()),
            plan.draw(&mut ChaCha8Rng::seed_from_u64(9))
        );
        for episode in &episodes {
            let count = |kind: FaultKind| episode.iter().filter(|(_, f)| f.kind() == kind).count();
            let starts = count(FaultKind::Crash) + count(FaultKind::TornWrite);
            assert_eq!(starts, count(FaultKind::Restart), "{episode:?}");
            assert_eq!(count(FaultKind::Partition), count(FaultKind::Heal));
            assert_eq!(count(FaultKind::SetClock) % 2, 0, "{episode:?}");
            assert_eq!(count(FaultKind::DegradeLink) % 2, 0, "{episode:?}");
        }
    }
}
