//! One operation of the research client on one file, as phases:
//!
//! - **find**: `List` the file's ring servers, a search width at a time, collecting who holds
//!   which share (a download moves on as soon as k distinct shares are known; a check waits
//!   for every answer, or the timeout, to count them all);
//! - **read**: `Read` k distinct shares, trying another holder when one fails;
//! - **wait**: (repair with limited bandwidth) until the shares' transfers are over;
//! - **place**: for each missing share, `Allocate`, `Write`, `Close` on the next ring server
//!   that holds nothing of the file, moving to the next server when one refuses or is silent.
//!
//! An upload is *place* for all N shares; a download is *find* then *read*; a check is *find*,
//! then, if fewer than R but at least k distinct shares were found, *read*, *wait* and *place*
//! (a repair).

use super::{ClientPlan, ClientStats, TaskIo};
use crate::churn::NodeNum;
use crate::ledger::{node_id, storage_index, FileNum, ShareSet};
use cairn_actors::checker::CheckReport;
use cairn_actors::placement::happiness;
use cairn_actors::protocol::{Request, RequestId, Response, MAX_DATA_PER_MESSAGE};
use cairn_actors::{NodeId, ShareNum, Time};
use std::collections::{BTreeMap, BTreeSet};

/// What a task is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Upload,
    Download,
    Check,
}

/// Which request of a task an answer is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    List,
    Read,
    Allocate,
    Write,
    Close,
}

enum Phase {
    Find,
    Read,
    Wait { until: Time },
    Place,
    Done { ok: bool },
}

/// One operation. See the module docs.
pub struct Task {
    file: FileNum,
    pub kind: Kind,
    /// The first servers of the file's ring.
    ring: Vec<NodeNum>,
    /// Requests in flight.
    pub pending: Vec<RequestId>,
    /// When the task gives up on the servers it waits for (or wakes from a wait), and
    /// whether its timer is set.
    pub deadline: Time,
    pub armed: bool,
    phase: Phase,
    /// Ring servers asked to list (a prefix of `ring`).
    asked: usize,
    answered: usize,
    /// Servers that answered a `List`.
    responders: Vec<NodeNum>,
    /// (share, server) found.
    holders: Vec<(u8, NodeNum)>,
    /// Reads: tried (share, server) pairs, and the shares read.
    tried: Vec<(u8, NodeNum)>,
    read: Vec<u8>,
    /// Shares being read.
    reading: Vec<u8>,
    /// Placing: shares still without a server, the next candidate in `candidates`, and what
    /// was placed.
    queue: Vec<u8>,
    candidates: Vec<NodeNum>,
    next_candidate: usize,
    placing: usize,
    /// Writes and closes to send next: (stage, server, share).
    follow_ups: Vec<(Stage, NodeNum, u8)>,
    placed: Vec<(u8, NodeNum)>,
    /// Shares this task created (not found already there).
    fresh: u64,
    repaired: bool,
}

impl Task {
    pub fn new(file: FileNum, kind: Kind, ring: Vec<NodeNum>, plan: &ClientPlan) -> Self {
        let mut task = Task {
            file,
            kind,
            ring,
            pending: Vec::new(),
            deadline: Time(0),
            armed: false,
            phase: Phase::Find,
            asked: 0,
            answered: 0,
            responders: Vec::new(),
            holders: Vec::new(),
            tried: Vec::new(),
            read: Vec::new(),
            reading: Vec::new(),
            queue: Vec::new(),
            candidates: Vec::new(),
            next_candidate: 0,
            placing: 0,
            follow_ups: Vec::new(),
            placed: Vec::new(),
            fresh: 0,
            repaired: false,
        };
        if kind == Kind::Upload {
            task.queue = (0..plan.total).rev().collect();
            task.candidates = task.ring.clone();
            task.phase = Phase::Place;
        } else {
            // Room for a search width of answers, at once rather than by doubling.
            task.pending.reserve(plan.search_width);
            task.responders.reserve(plan.search_width);
            task.holders.reserve(usize::from(plan.total));
        }
        task
    }

    /// Sends what the phase calls for; true when the task is over.
    pub fn advance(&mut self, io: &mut TaskIo<'_, '_>) -> bool {
        let plan = io.client.plan.clone();
        loop {
            let next = match self.phase {
                Phase::Find => self.find(io, &plan),
                Phase::Read => self.read(io, &plan),
                Phase::Wait { until } => (io.now() >= until).then_some(Phase::Place),
                Phase::Place => self.place(io, &plan),
                Phase::Done { .. } => return true,
            };
            match next {
                Some(phase) => self.phase = phase,
                None => return false,
            }
        }
    }

    /// Takes in an answer (`None`: the server was silent until the timeout).
    pub fn answer(
        &mut self,
        node: NodeNum,
        share: u8,
        stage: Stage,
        body: Option<Response>,
        plan: &ClientPlan,
    ) {
        match (stage, &self.phase) {
            (Stage::List, Phase::Find) => {
                self.answered += 1;
                if let Some(Response::Shares(shares)) = body {
                    self.responders.push(node);
                    let valid = shares.into_iter().filter(|(s, _)| s.0 < plan.total);
                    self.holders.extend(valid.map(|(s, _)| (s.0, node)));
                }
            }
            (Stage::Read, Phase::Read) => {
                self.reading.retain(|s| *s != share);
                if let Some(Response::Data(_)) = body {
                    if !self.read.contains(&share) {
                        self.read.push(share);
                    }
                }
            }
            (Stage::Allocate | Stage::Write | Stage::Close, Phase::Place) => {
                self.placing -= 1;
                self.on_placing(node, share, stage, body)
            }
            _ => {} // an answer the task no longer waits for
        }
    }

    fn find(&mut self, io: &mut TaskIo<'_, '_>, plan: &ClientPlan) -> Option<Phase> {
        let found = self.distinct();
        let k = usize::from(plan.needed);
        if self.kind == Kind::Download && found >= k {
            return Some(Phase::Read);
        }
        if self.answered < self.asked {
            return None;
        }
        let limit = self.ring.len().min(plan.search_width * 2);
        match self.kind {
            Kind::Download if self.asked < limit => {
                let end = (self.asked + plan.search_width).min(self.ring.len());
                self.list(io, self.asked..end, plan);
                None
            }
            Kind::Check if self.asked == 0 && !self.ring.is_empty() => {
                let end = plan.search_width.min(self.ring.len());
                self.list(io, 0..end, plan);
                None
            }
            Kind::Check => self.after_check(plan),
            _ => Some(Phase::Done { ok: false }),
        }
    }

    fn list(&mut self, io: &mut TaskIo<'_, '_>, range: std::ops::Range<usize>, plan: &ClientPlan) {
        let si = storage_index(plan.seed, self.file);
        for i in range {
            let id = io.send(self.ring[i], 0, Stage::List, Request::List { si });
            self.pending.push(id);
            self.asked += 1;
        }
    }

    /// What a complete check found: the actors' repair policy decides, as a node's would.
    fn after_check(&mut self, plan: &ClientPlan) -> Option<Phase> {
        let report = self.report(plan);
        if plan.repair.policy().repair_target(&report).is_none() {
            return Some(Phase::Done { ok: true });
        }
        if !report.recoverable {
            return Some(Phase::Done { ok: false });
        }
        self.repaired = true;
        Some(Phase::Read)
    }

    /// The check's findings as the checker actor reports them.
    fn report(&self, plan: &ClientPlan) -> CheckReport {
        let holders = by_share(&self.holders, plan);
        let (k, n, happy) = (plan.needed, plan.total, plan.happy);
        let happiness = happiness(&holders);
        let distinct_shares = holders.len();
        CheckReport {
            storage_index: storage_index(plan.seed, self.file),
            k: usize::from(k),
            n: usize::from(n),
            happy: usize::from(happy),
            holders,
            distinct_shares,
            happiness,
            servers_asked: self.asked,
            servers_answered: self.responders.len(),
            healthy: happiness >= usize::from(happy),
            recoverable: distinct_shares >= usize::from(k),
            faults: Vec::new(),
            bad_copies: Vec::new(),
            leases_renewed: 0,
        }
    }

    fn read(&mut self, io: &mut TaskIo<'_, '_>, plan: &ClientPlan) -> Option<Phase> {
        let k = usize::from(plan.needed);
        while self.read.len() + self.reading.len() < k {
            let Some((share, node)) = self.untried_holder() else {
                break;
            };
            self.tried.push((share, node));
            let si = storage_index(plan.seed, self.file);
            let len = plan.share_size.min(MAX_DATA_PER_MESSAGE);
            let request = Request::Read {
                si,
                share: ShareNum(share),
                offset: 0,
                len,
            };
            let id = io.send(node, share, Stage::Read, request);
            self.pending.push(id);
            self.reading.push(share);
        }
        if self.read.len() >= k {
            return Some(self.after_read(io, plan));
        }
        self.reading.is_empty().then_some(Phase::Done { ok: false })
    }

    /// A holder of a share not yet read nor being read, not tried before.
    fn untried_holder(&self) -> Option<(u8, NodeNum)> {
        let busy = |s: &u8| self.read.contains(s) || self.reading.contains(s);
        self.holders
            .iter()
            .copied()
            .find(|h| !self.tried.contains(h) && !busy(&h.0))
    }

    fn after_read(&mut self, io: &mut TaskIo<'_, '_>, plan: &ClientPlan) -> Phase {
        if self.kind == Kind::Download {
            return Phase::Done { ok: true };
        }
        let have: BTreeSet<u8> = self.holders.iter().map(|h| h.0).collect();
        self.queue = (0..plan.total)
            .rev()
            .filter(|s| !have.contains(s))
            .collect();
        let holding: BTreeSet<NodeNum> = self.holders.iter().map(|h| h.1).collect();
        let asked = &self.ring[..self.asked];
        // Responders holding nothing first, then servers past the ones asked; silent servers
        // were down at the check.
        self.candidates = asked
            .iter()
            .filter(|n| self.responders.contains(n) && !holding.contains(n))
            .chain(&self.ring[self.asked..])
            .copied()
            .collect();
        let mut until = io.now();
        let sources: Vec<NodeNum> = self
            .tried
            .iter()
            .filter(|t| self.read.contains(&t.0))
            .map(|t| t.1)
            .collect();
        for node in sources {
            until = until.max(io.reserve(node));
        }
        if until > io.now() {
            io.wake_at(until);
        }
        Phase::Wait { until }
    }

    fn place(&mut self, io: &mut TaskIo<'_, '_>, plan: &ClientPlan) -> Option<Phase> {
        let si = storage_index(plan.seed, self.file);
        while let Some(&share) = self.queue.last() {
            let Some(&node) = self.candidates.get(self.next_candidate) else {
                break;
            };
            self.queue.pop();
            self.next_candidate += 1;
            let request = Request::Allocate {
                si,
                shares: vec![ShareNum(share)],
                share_size: plan.share_size,
                lease: io.lease(),
                upload: io.upload(),
            };
            self.send_place(io, node, share, Stage::Allocate, request);
        }
        for (stage, node, share) in std::mem::take(&mut self.follow_ups) {
            let request = match stage {
                Stage::Write => Request::Write {
                    si,
                    share: ShareNum(share),
                    offset: 0,
                    data: Vec::new(),
                    upload: io.upload(),
                },
                _ => Request::Close {
                    si,
                    share: ShareNum(share),
                    upload: io.upload(),
                },
            };
            self.send_place(io, node, share, stage, request);
        }
        if self.placing > 0 {
            return None;
        }
        if self.repaired {
            for &(_, node) in &self.placed {
                io.reserve(node);
            }
        }
        Some(Phase::Done {
            ok: self.happiness(plan) >= usize::from(plan.happy) || self.kind != Kind::Upload,
        })
    }

    fn send_place(
        &mut self,
        io: &mut TaskIo<'_, '_>,
        node: NodeNum,
        share: u8,
        stage: Stage,
        request: Request,
    ) {
        let id = io.send(node, share, stage, request);
        self.pending.push(id);
        self.placing += 1;
    }

    fn on_placing(&mut self, node: NodeNum, share: u8, stage: Stage, body: Option<Response>) {
        let next = match (stage, body) {
            (
                Stage::Allocate,
                Some(Response::Allocated {
                    allocated,
                    already_have,
                }),
            ) => {
                if allocated.contains(&ShareNum(share)) {
                    Some(Stage::Write)
                } else if already_have.contains(&ShareNum(share)) {
                    self.placed.push((share, node));
                    None
                } else {
                    self.queue.push(share);
                    None
                }
            }
            (Stage::Write, Some(Response::Ok)) => Some(Stage::Close),
            (Stage::Close, Some(Response::Ok)) => {
                self.placed.push((share, node));
                self.fresh += 1;
                None
            }
            _ => {
                self.queue.push(share);
                None
            }
        };
        if let Some(stage) = next {
            self.follow_ups.push((stage, node, share));
        }
    }

    fn distinct(&self) -> usize {
        self.holders.iter().map(|h| h.0).collect::<ShareSet>().len()
    }

    /// The servers-of-happiness of what this task placed.
    fn happiness(&self, plan: &ClientPlan) -> usize {
        happiness(&by_share(&self.placed, plan))
    }

    /// Adds what the finished task did to the statistics.
    pub fn record(&self, plan: &ClientPlan, stats: &mut ClientStats) {
        let ok = matches!(self.phase, Phase::Done { ok: true });
        match self.kind {
            Kind::Upload if ok => stats.uploads_ok += 1,
            Kind::Upload => stats.uploads_failed += 1,
            Kind::Download if ok => stats.download_successes += 1,
            Kind::Download => {}
            Kind::Check if self.repaired => {
                stats.repairs += 1;
                let read = self.read.len() as u64;
                stats.repair_download_bytes += read * plan.share_size;
                stats.shares_regenerated += self.fresh;
                stats.repair_upload_bytes += self.fresh * plan.share_size;
                if !self.queue.is_empty() {
                    stats.incomplete_repairs += 1;
                }
            }
            Kind::Check if !ok => stats.unrepairable_checks += 1,
            Kind::Check => {}
        }
    }
}

/// (share, server) pairs as each share's servers, by id.
fn by_share(pairs: &[(u8, NodeNum)], plan: &ClientPlan) -> BTreeMap<ShareNum, Vec<NodeId>> {
    let mut map: BTreeMap<ShareNum, Vec<NodeId>> = BTreeMap::new();
    for &(share, node) in pairs {
        map.entry(ShareNum(share))
            .or_default()
            .push(node_id(plan.seed, node));
    }
    map
}
