//! The repairer: one actor per repair. Holding only the verify cap — it cannot decrypt — it
//! restores a file's servers-of-happiness by regenerating shares the grid lost and placing
//! them on servers that hold none of the file.
//!
//! The life of a repair:
//!
//! 1. **Survey.** `List` to the servers of the scope (as the [`crate::checker`] does). If
//!    the claimed placement is already happy (and no share's only copies are among those the
//!    caller distrusts), the repair is done without moving a byte; if
//!    fewer than `k` distinct shares are claimed, it fails with
//!    [`RepairError::NotEnoughShares`].
//! 2. **Sources.** `k` shares of distinct numbers are read and proved against the cap:
//!    header, UEB, hash trees and share hash chain (a share that fails is reported to its
//!    server and replaced by another holder or another share).
//! 3. **Homes.** The shares to make are those the best matching of the placement leaves out,
//!    missing ones first: every missing share, and at least enough to reach `happy`. Each is
//!    offered (`Allocate`) to the next server on the file's permuted ring that holds nothing
//!    of the file, one share per server.
//! 4. **Streaming.** Segment by segment: the `k` sources' blocks are fetched and checked,
//!    decoded into the segment's crypttext and encoded again into every share's block
//!    ([`Regenerator`]); each home gets its block (after the header, for the first). At most
//!    `window` segments may have unacknowledged writes.
//! 5. **Closing.** The rebuilt share hash tree must have the UEB's root — proof that the new
//!    shares are byte for byte those the original upload made. Then each home gets its
//!    trailer (hash trees, chain, UEB) and, once everything is written, a `Close`. If the
//!    root does not match, every home is aborted instead.
//!
//! A home whose server fails is aborted and not replaced (the next check finds the file
//! still short and repairs again). Memory: one segment's `k` blocks and its `N` regenerated
//! blocks, and each source's hash trees.

mod homes;
mod policy;
mod sources;
#[cfg(test)]
mod tests;

use crate::actor::{Actor, Addr, Context, Effect, Input, TimerId};
use crate::checker::{validate, CheckOptions};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::{LocalId, LocalResponse};
use crate::placement::{happiness, permuted_ring};
use crate::protocol::{Message, Request, RequestId, Response};
use crate::reader::ShareReader;
use crate::requests::Requests;
use crate::survey::{Placement, Survey};
use crate::uploader::UploadConfig;
use cairn_codec::reshare::{RegeneratedFile, Regenerator};
use cairn_codec::VerifierCap;
use std::collections::{BTreeMap, BTreeSet};

pub use policy::RepairPolicy;

/// Fires at the earliest deadline among the requests in flight.
const SWEEP: TimerId = TimerId(0);
/// The whole repair's deadline.
const DEADLINE: TimerId = TimerId(1);

/// Bytes a repair moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Share bytes read from servers (headers, UEBs, hash trees, blocks).
    pub bytes_downloaded: u64,
    /// Share bytes written to servers (including writes to homes that later failed).
    pub bytes_uploaded: u64,
}

/// What a repair did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    pub storage_index: StorageIndex,
    /// The shares placed, each on its new server (empty if the file needed no repair).
    pub repaired: Vec<(ShareNum, NodeId)>,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    /// The servers-of-happiness of the placement the survey found, and after the repair.
    pub happiness_before: usize,
    pub happiness_after: usize,
    /// Distinct shares found, and after the repair.
    pub distinct_before: usize,
    pub distinct_after: usize,
    /// Shares found bad on the way, as readable lines.
    pub faults: Vec<String>,
}

/// Why a repair failed. Shares it placed (and closed) before failing are listed: they are
/// good shares, and stay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepairError {
    #[error("invalid repair: {0}")]
    Invalid(String),
    #[error(
        "cannot repair: the file needs {needed} good shares to rebuild others but only \
         {found} could be had ({detail})"
    )]
    NotEnoughShares {
        needed: usize,
        found: usize,
        detail: String,
        traffic: Traffic,
    },
    #[error(
        "repair reached happiness {achieved} of {happy} after placing {} shares: {detail}",
        repaired.len()
    )]
    NotHappy {
        happy: usize,
        achieved: usize,
        repaired: Vec<(ShareNum, NodeId)>,
        detail: String,
        traffic: Traffic,
    },
    #[error("the file cannot be repaired: {detail}")]
    Corrupt { detail: String, traffic: Traffic },
    #[error("the repair did not finish before its deadline (placed {} shares)", repaired.len())]
    Deadline {
        repaired: Vec<(ShareNum, NodeId)>,
        traffic: Traffic,
    },
}

impl RepairError {
    /// The bytes the failed repair moved.
    pub fn traffic(&self) -> Traffic {
        match self {
            RepairError::Invalid(_) => Traffic::default(),
            RepairError::NotEnoughShares { traffic, .. }
            | RepairError::NotHappy { traffic, .. }
            | RepairError::Corrupt { traffic, .. }
            | RepairError::Deadline { traffic, .. } => *traffic,
        }
    }
}

/// What a request of the repairer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    List,
    Read {
        share: ShareNum,
    },
    Allocate {
        share: ShareNum,
    },
    Write {
        share: ShareNum,
        segment: Option<u64>,
    },
    Close {
        share: ShareNum,
    },
}

/// Where the repair is (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Survey,
    Sources,
    Homes,
    Streaming,
    Closing,
}

/// A new share's server, and how far its writing has come.
#[derive(Debug)]
struct Home {
    server: NodeId,
    /// Writes sent and not yet acknowledged.
    writes: usize,
    trailer_sent: bool,
    close: CloseState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseState {
    NotYet,
    Sent,
    Done,
}

/// One repair, run as an operation actor. See the module docs.
pub struct Repairer {
    local: LocalId,
    cap: VerifierCap,
    si: StorageIndex,
    happy: usize,
    options: CheckOptions,
    config: UploadConfig,
    /// Every server given, in the file's permuted-ring order.
    ring: Vec<NodeId>,
    requests: Requests<Purpose>,
    phase: Phase,
    survey: Survey,
    happiness_before: usize,
    distinct_before: usize,
    /// Holders of each share not yet tried as a source, in ring order.
    candidates: BTreeMap<ShareNum, Vec<NodeId>>,
    /// The sources: one reader per share number (being verified, or verified).
    sources: BTreeMap<ShareNum, ShareReader>,
    /// The UEB's exact bytes and parse, from the first source verified.
    ueb: Option<(cairn_codec::Ueb, Vec<u8>)>,
    regen: Option<Regenerator>,
    /// The current segment's verified blocks, by share.
    blocks: BTreeMap<ShareNum, Vec<u8>>,
    /// Shares still wanting a home, and servers already asked (or found holding shares).
    targets: Vec<ShareNum>,
    tried: BTreeSet<NodeId>,
    /// The secret that makes the new shares this repair's upload.
    upload: crate::protocol::UploadSecret,
    homes: BTreeMap<ShareNum, Home>,
    /// Segment -> its writes not yet acknowledged (only segments with some).
    unacked: BTreeMap<u64, usize>,
    file: Option<RegeneratedFile>,
    traffic: Traffic,
    faults: Vec<String>,
    /// Copies known bad before the repair began.
    distrusted: Vec<(ShareNum, NodeId)>,
    done: bool,
}

impl Repairer {
    /// A repair of the file `cap` names, for local request `local`, up to `happy`
    /// servers-of-happiness, surveying as `options` say (`options.verify` is not used: the
    /// sources are always proved, other holders believed). `servers` are the storage servers
    /// known; `config` gives the request timeout, the whole repair's deadline and the write
    /// window.
    pub fn new(
        local: LocalId,
        cap: VerifierCap,
        happy: usize,
        options: CheckOptions,
        servers: Vec<NodeId>,
        config: UploadConfig,
    ) -> Self {
        let si = cap.storage_index;
        Repairer {
            local,
            ring: permuted_ring(si, &servers),
            si,
            happy,
            options,
            requests: Requests::new(config.request_timeout, SWEEP),
            config,
            phase: Phase::Survey,
            survey: Survey::new(cap.n, Vec::new()),
            cap,
            happiness_before: 0,
            distinct_before: 0,
            candidates: BTreeMap::new(),
            sources: BTreeMap::new(),
            ueb: None,
            regen: None,
            blocks: BTreeMap::new(),
            targets: Vec::new(),
            tried: BTreeSet::new(),
            upload: crate::protocol::UploadSecret([0; 32]),
            homes: BTreeMap::new(),
            unacked: BTreeMap::new(),
            file: None,
            traffic: Traffic::default(),
            faults: Vec::new(),
            distrusted: Vec::new(),
            done: false,
        }
    }

    /// Copies not to believe or use (a verifying check found them bad): the repair replaces
    /// them as if they were missing.
    pub fn distrust(&mut self, copies: Vec<(ShareNum, NodeId)>) {
        self.distrusted = copies;
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.requests.start(ctx);
        if let Err(why) = validate(&self.cap, self.happy) {
            return self.finish(ctx, Err(RepairError::Invalid(why)));
        }
        ctx.set_timer(DEADLINE, self.config.deadline);
        let servers = self.options.servers.select(self.si, self.cap.n, &self.ring);
        for &server in &servers {
            let body = Request::List { si: self.si };
            self.requests
                .send(ctx, Addr::storage(server), body, Purpose::List);
        }
        self.survey = Survey::new(self.cap.n, servers);
        for &(share, server) in &self.distrusted {
            self.survey.disown(share, server);
        }
        self.progress(ctx);
    }

    fn on_response(&mut self, ctx: &mut Context<'_>, from: Addr, id: RequestId, body: Response) {
        if let Some((server, purpose)) = self.requests.answer(from, id) {
            if let Response::Data(data) = &body {
                self.traffic.bytes_downloaded += data.len() as u64;
            }
            self.answered(ctx, id, server.node, purpose, Some(body));
        }
    }

    fn on_sweep(&mut self, ctx: &mut Context<'_>) {
        for (id, server, purpose) in self.requests.expire(ctx) {
            if self.done {
                return;
            }
            self.answered(ctx, id, server.node, purpose, None);
        }
    }

    fn answered(
        &mut self,
        ctx: &mut Context<'_>,
        id: RequestId,
        server: NodeId,
        purpose: Purpose,
        answer: Option<Response>,
    ) {
        match purpose {
            Purpose::List => self.survey.on_answer(server, answer),
            Purpose::Read { share } => self.on_read(ctx, id, share, server, answer),
            Purpose::Allocate { share } => self.on_allocated(ctx, share, server, answer),
            Purpose::Write { share, segment } => {
                self.on_written(ctx, share, server, segment, answer)
            }
            Purpose::Close { share } => self.on_closed(ctx, share, server, answer),
        }
    }

    /// Does whatever the state now allows, moving from phase to phase.
    fn progress(&mut self, ctx: &mut Context<'_>) {
        if self.done {
            return;
        }
        if self.phase == Phase::Survey && self.survey.done() {
            self.surveyed(ctx);
        }
        if self.phase == Phase::Sources {
            self.fill_sources(ctx);
        }
        if self.phase == Phase::Homes
            && !self
                .requests
                .any(|_, p| matches!(p, Purpose::Allocate { .. }))
        {
            self.homes_settled(ctx);
        }
        if self.phase == Phase::Streaming {
            self.stream(ctx);
        }
        if self.phase == Phase::Closing {
            self.close_homes(ctx);
        }
    }

    /// The survey is in: nothing to do, nothing possible, or on to the sources.
    fn surveyed(&mut self, ctx: &mut Context<'_>) {
        self.happiness_before = self.survey.happiness();
        self.distinct_before = self.survey.claims().len();
        // A share whose only copies were found bad is restored even on a happy file.
        let lost_to_rot = self
            .distrusted
            .iter()
            .any(|(share, _)| !self.survey.claims().contains_key(share));
        if self.happiness_before >= self.happy && !lost_to_rot {
            tracing::debug!(si = %self.si, happiness = self.happiness_before, "repair not needed");
            let report = self.report(Vec::new());
            return self.finish(ctx, Ok(report));
        }
        if self.distinct_before < self.cap.k {
            let why = format!(
                "{} distinct shares found on {} of {} servers asked",
                self.distinct_before,
                self.survey.answered_count(),
                self.survey.servers().len()
            );
            let err = self.not_enough(self.distinct_before, why);
            return self.finish(ctx, Err(err));
        }
        let order: BTreeMap<NodeId, usize> =
            self.ring.iter().enumerate().map(|(i, &s)| (s, i)).collect();
        for (&share, holders) in self.survey.claims() {
            let mut holders: Vec<NodeId> = holders.iter().copied().collect();
            holders.sort_by_key(|h| order.get(h).copied());
            self.candidates.insert(share, holders);
        }
        self.phase = Phase::Sources;
    }

    fn not_enough(&self, found: usize, detail: String) -> RepairError {
        RepairError::NotEnoughShares {
            needed: self.cap.k,
            found,
            detail,
            traffic: self.traffic,
        }
    }

    /// The placement after the repair: the survey's (less what failed) and the closed homes.
    fn placement_after(&self) -> Placement {
        let mut placement = self.survey.claims().clone();
        for (&share, home) in &self.homes {
            if home.close == CloseState::Done {
                placement.entry(share).or_default().insert(home.server);
            }
        }
        placement
    }

    /// The homes closed so far.
    fn repaired(&self) -> Vec<(ShareNum, NodeId)> {
        self.homes
            .iter()
            .filter(|(_, h)| h.close == CloseState::Done)
            .map(|(&share, h)| (share, h.server))
            .collect()
    }

    fn report(&self, repaired: Vec<(ShareNum, NodeId)>) -> RepairReport {
        let after = self.placement_after();
        RepairReport {
            storage_index: self.si,
            repaired,
            bytes_downloaded: self.traffic.bytes_downloaded,
            bytes_uploaded: self.traffic.bytes_uploaded,
            happiness_before: self.happiness_before,
            happiness_after: happiness(&after),
            distinct_before: self.distinct_before,
            distinct_after: after.len(),
            faults: self.faults.clone(),
        }
    }

    /// Every home closed (or lost): the answer.
    fn conclude(&mut self, ctx: &mut Context<'_>) {
        let repaired = self.repaired();
        let report = self.report(repaired.clone());
        if report.happiness_after >= self.happy {
            tracing::info!(si = %self.si, before = report.happiness_before, after = report.happiness_after, "repair done");
            return self.finish(ctx, Ok(report));
        }
        let detail = format!(
            "{} servers on the ring, {} asked to hold a share; add storage servers or free space \
             on them, or lower happy",
            self.ring.len(),
            self.tried.len()
        );
        let err = RepairError::NotHappy {
            happy: self.happy,
            achieved: report.happiness_after,
            repaired,
            detail,
            traffic: self.traffic,
        };
        self.finish(ctx, Err(err));
    }

    /// Gives up: frees every share not yet closed, answers, stops.
    fn fail(&mut self, ctx: &mut Context<'_>, err: RepairError) {
        self.abort_open_homes(ctx);
        self.finish(ctx, Err(err));
    }

    fn finish(&mut self, ctx: &mut Context<'_>, result: Result<RepairReport, RepairError>) {
        if self.done {
            return;
        }
        self.done = true;
        if let Err(e) = &result {
            tracing::info!(si = %self.si, error = %e, "repair failed");
        }
        ctx.reply(self.local, LocalResponse::Repaired(result));
        ctx.cancel_timer(SWEEP);
        ctx.cancel_timer(DEADLINE);
        ctx.push(Effect::Stop);
    }

    fn on_deadline(&mut self, ctx: &mut Context<'_>) {
        let err = RepairError::Deadline {
            repaired: self.repaired(),
            traffic: self.traffic,
        };
        self.fail(ctx, err);
    }
}

impl Actor for Repairer {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if self.done {
            return;
        }
        match input {
            Input::Start => return self.start(ctx),
            Input::Message {
                from,
                msg: Message::Response { id, body },
            } => self.on_response(ctx, from, id, body),
            Input::Timer(SWEEP) => self.on_sweep(ctx),
            Input::Timer(DEADLINE) => self.on_deadline(ctx),
            // Requests, announcements, local input, stray timers: not for a repair.
            _ => {}
        }
        self.progress(ctx);
    }
}
