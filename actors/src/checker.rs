//! The checker: one actor per check of a file's health. Holding only the verify cap, it asks
//! storage servers which shares of the file they hold and answers with a [`CheckReport`]:
//! the distinct shares found, who holds them, and the servers-of-happiness of that
//! placement. With [`CheckOptions::verify`] it also reads every share it was told of and
//! proves it against the cap (header, UEB, hash trees, every block), counting only the
//! shares that pass; a share that fails a check is reported to its server.
//!
//! Which servers are asked: by default the first `N + extra` servers of the file's permuted
//! ring ([`ServerScope::Ring`]), where its uploader placed the shares and a repairer places
//! new ones; listing every server of a large grid for every file would be wasteful.
//! [`ServerScope::All`] asks every server given.
//!
//! A server that does not answer in time, or answers with anything but a share list, counts
//! as asked but not answered. The check itself always ends with a report (or, for a cap that
//! cannot name a file, an error): an unreachable grid is an unhealthy file, not a failure.

use crate::actor::{Actor, Addr, Context, Effect, Input, Time, TimerId};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::{LocalId, LocalResponse};
use crate::placement::{happiness, permuted_ring};
use crate::protocol::{LeaseSecret, Message, Request, RequestId, Response};
use crate::reader::{self, Progress, ShareReader};
use crate::requests::Requests;
use crate::survey::{listed, Placement, Survey};
use cairn_codec::VerifierCap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// How many servers past `N` a check asks by default, along the file's permuted ring.
pub const DEFAULT_RING_EXTRA: usize = 16;
/// How many shares a verifying check reads at once.
pub const VERIFY_PARALLELISM: usize = 4;

/// Fires at the earliest deadline among the requests in flight.
const SWEEP: TimerId = TimerId(0);

/// Which servers a check (or a repair's survey) asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerScope {
    /// Every server given.
    All,
    /// The first `N + extra` servers of the file's permuted ring.
    Ring { extra: usize },
}

impl Default for ServerScope {
    fn default() -> Self {
        ServerScope::Ring {
            extra: DEFAULT_RING_EXTRA,
        }
    }
}

impl ServerScope {
    /// The servers to ask about the `n`-share file `si`, in its permuted-ring order.
    pub fn select(self, si: StorageIndex, n: usize, servers: &[NodeId]) -> Vec<NodeId> {
        let mut ring = permuted_ring(si, servers);
        if let ServerScope::Ring { extra } = self {
            ring.truncate(n.saturating_add(extra));
        }
        ring
    }
}

/// How a check is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Which servers are asked.
    pub servers: ServerScope,
    /// Read and prove every share found (a full download of each), instead of believing
    /// the servers' lists.
    pub verify: bool,
    /// Renew the client's lease on the file at every server that holds shares of it.
    pub add_lease: bool,
}

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub storage_index: StorageIndex,
    /// Shares needed to read the file, and shares made.
    pub k: usize,
    pub n: usize,
    /// The servers-of-happiness the file should have.
    pub happy: usize,
    /// Each share found and the servers holding it (those that said so; when verifying,
    /// those whose copy passed every check).
    pub holders: BTreeMap<ShareNum, Vec<NodeId>>,
    /// How many of the `N` shares were found.
    pub distinct_shares: usize,
    /// The servers-of-happiness of `holders` (see [`crate::placement::happiness`]).
    pub happiness: usize,
    pub servers_asked: usize,
    /// Servers that answered the question (with a share list, maybe empty).
    pub servers_answered: usize,
    /// `happiness >= happy`: the file has the spread it was uploaded to have.
    pub healthy: bool,
    /// `distinct_shares >= k`: the file can be read (and repaired).
    pub recoverable: bool,
    /// Shares found bad when verifying, as readable lines.
    pub faults: Vec<String>,
    /// Those copies: which share, on which server (for a repair to replace).
    pub bad_copies: Vec<(ShareNum, NodeId)>,
    /// Servers that renewed the client's lease (with [`CheckOptions::add_lease`]).
    pub leases_renewed: usize,
}

/// Why a check could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("invalid check: {0}")]
    Invalid(String),
    #[error("the file cannot be read: {0}")]
    Corrupt(String),
}

/// Checks the arguments every check and repair takes.
pub(crate) fn validate(cap: &VerifierCap, happy: usize) -> Result<(), String> {
    let (k, n) = (cap.k, cap.n);
    if k == 0 || k > n || n > cairn_codec::params::MAX_SHARES || cap.size == 0 {
        return Err(format!(
            "the cap is malformed: it says k={k} of N={n} shares and {} bytes, but a cap \
             needs 1 <= k <= N <= {} and at least one byte",
            cap.size,
            cairn_codec::params::MAX_SHARES
        ));
    }
    if happy == 0 || happy > n {
        return Err(format!(
            "happy={happy} must be between 1 and the number of shares N={n}"
        ));
    }
    Ok(())
}

/// What a request of the checker is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    List,
    Read { share: ShareNum },
    Renew,
}

/// One check, run as an operation actor. See the module docs.
pub struct Checker {
    local: LocalId,
    cap: VerifierCap,
    si: StorageIndex,
    happy: usize,
    options: CheckOptions,
    servers: Vec<NodeId>,
    requests: Requests<Purpose>,
    survey: Option<Survey>,
    /// Verifying: the claims still to read, the readers at work, what passed.
    queue: VecDeque<(ShareNum, NodeId)>,
    readers: BTreeMap<(ShareNum, NodeId), ShareReader>,
    verified: Placement,
    /// Whether the claims have been queued for verifying.
    queued: bool,
    faults: Vec<String>,
    bad_copies: Vec<(ShareNum, NodeId)>,
    /// The client's lease secret, to renew its leases with; renewals awaiting an answer, and
    /// those granted.
    lease_secret: Option<[u8; 32]>,
    renewing: usize,
    leases_renewed: usize,
    done: bool,
}

impl Checker {
    /// A check of the file `cap` names, for local request `local`, expecting `happy`
    /// servers-of-happiness; `servers` are the storage servers known (the scope picks among
    /// them). Each request waits `request_timeout` for its answer.
    pub fn new(
        local: LocalId,
        cap: VerifierCap,
        happy: usize,
        options: CheckOptions,
        servers: Vec<NodeId>,
        request_timeout: Duration,
    ) -> Self {
        Checker {
            local,
            si: cap.storage_index,
            cap,
            happy,
            options,
            servers,
            requests: Requests::new(request_timeout, SWEEP),
            survey: None,
            queue: VecDeque::new(),
            readers: BTreeMap::new(),
            verified: Placement::new(),
            queued: false,
            faults: Vec::new(),
            bad_copies: Vec::new(),
            lease_secret: None,
            renewing: 0,
            leases_renewed: 0,
            done: false,
        }
    }

    /// With [`CheckOptions::add_lease`]: the client's lease secret, from which the secret of
    /// its lease at each server is derived.
    pub fn renew_with(&mut self, lease_secret: [u8; 32]) {
        self.lease_secret = Some(lease_secret);
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.requests.start(ctx);
        if let Err(why) = validate(&self.cap, self.happy) {
            return self.finish(ctx, Err(CheckError::Invalid(why)));
        }
        let servers = self
            .options
            .servers
            .select(self.si, self.cap.n, &self.servers);
        self.servers = Vec::new();
        for &server in &servers {
            let body = Request::List { si: self.si };
            self.requests
                .send(ctx, Addr::storage(server), body, Purpose::List);
        }
        self.survey = Some(Survey::new(self.cap.n, servers));
        self.advance(ctx);
    }

    fn on_response(&mut self, ctx: &mut Context<'_>, from: Addr, id: RequestId, body: Response) {
        if let Some((server, purpose)) = self.requests.answer(from, id) {
            self.answered(ctx, id, server.node, purpose, Some(body));
        }
    }

    fn on_sweep(&mut self, ctx: &mut Context<'_>) {
        for (id, server, purpose) in self.requests.expire(ctx) {
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
            Purpose::List => {
                let holds = matches!(&answer, Some(Response::Shares(s)) if !s.is_empty());
                if let Some(survey) = self.survey.as_mut() {
                    survey.on_answer(server, answer);
                }
                if holds && self.options.add_lease {
                    self.renew(ctx, server);
                }
            }
            Purpose::Read { share } => self.on_read(ctx, id, (share, server), answer),
            Purpose::Renew => {
                self.renewing -= 1;
                if answer == Some(Response::Ok) {
                    self.leases_renewed += 1;
                }
            }
        }
        self.advance(ctx);
    }

    /// Renews the client's lease on the file at `server`, for a lease period from now (the
    /// server's own: the client asks for all it will grant).
    fn renew(&mut self, ctx: &mut Context<'_>, server: NodeId) {
        let Some(secret) = self.lease_secret else {
            return;
        };
        let body = Request::RenewLease {
            si: self.si,
            lease: LeaseSecret::derive(&secret, self.si, server),
            expires: Time(u64::MAX),
        };
        self.renewing += 1;
        self.requests
            .send(ctx, Addr::storage(server), body, Purpose::Renew);
    }

    /// Once the survey is in: the report, or (verifying) more reads, then the report.
    fn advance(&mut self, ctx: &mut Context<'_>) {
        let Some(survey) = &self.survey else {
            return;
        };
        if self.done || !survey.done() || self.renewing > 0 {
            return;
        }
        if !self.options.verify {
            let report = self.report(survey.claims().clone());
            return self.finish(ctx, Ok(report));
        }
        if !self.queued {
            self.queued = true;
            self.queue = claims_in_order(survey).into();
        }
        while self.readers.len() < VERIFY_PARALLELISM {
            let Some((share, server)) = self.queue.pop_front() else {
                break;
            };
            let reader = ShareReader::new(share, server);
            let (offset, len) = reader.next_read();
            self.readers.insert((share, server), reader);
            self.read((share, server), offset, len, ctx);
        }
        debug_assert!(self.readers.len() <= VERIFY_PARALLELISM);
        if self.readers.is_empty() && self.queue.is_empty() {
            let verified = std::mem::take(&mut self.verified);
            let report = self.report(verified);
            self.finish(ctx, Ok(report));
        }
    }

    fn read(&mut self, key: (ShareNum, NodeId), offset: u64, len: u64, ctx: &mut Context<'_>) {
        if let Some(reader) = self.readers.get_mut(&key) {
            let purpose = Purpose::Read { share: key.0 };
            reader.send(ctx, &mut self.requests, self.si, (offset, len), purpose);
        }
    }

    fn on_read(
        &mut self,
        ctx: &mut Context<'_>,
        id: RequestId,
        key: (ShareNum, NodeId),
        answer: Option<Response>,
    ) {
        let Some(reader) = self.readers.get_mut(&key) else {
            return;
        };
        if reader.request != Some(id) {
            return;
        }
        match reader.on_answer(&self.cap, answer) {
            Progress::Read(offset, len) => self.read(key, offset, len, ctx),
            Progress::Verified(_) => self.next_block(ctx, key, 0),
            Progress::Block(segment, _) => self.next_block(ctx, key, segment + 1),
            Progress::Rejected(rejection) => {
                self.readers.remove(&key);
                self.faults
                    .push(reader::fault_line(key.0, key.1, &rejection));
                self.bad_copies.push(key);
                if let Some(body) = reader::advisory(self.si, key.0, &rejection) {
                    self.requests.send_only(ctx, Addr::storage(key.1), body);
                }
            }
            Progress::Fatal(e) => {
                self.finish(ctx, Err(CheckError::Corrupt(e.to_string())));
            }
        }
    }

    /// Reads block `segment` of a verified share, or records the share as good after its
    /// last block.
    fn next_block(&mut self, ctx: &mut Context<'_>, key: (ShareNum, NodeId), segment: u64) {
        let Some(reader) = self.readers.get_mut(&key) else {
            return;
        };
        match reader.read_block(segment) {
            Some((offset, len)) => self.read(key, offset, len, ctx),
            None => {
                self.readers.remove(&key);
                self.verified.entry(key.0).or_default().insert(key.1);
            }
        }
    }

    fn report(&self, holders: Placement) -> CheckReport {
        let (asked, answered) = self
            .survey
            .as_ref()
            .map_or((0, 0), |s| (s.servers().len(), s.answered_count()));
        let distinct = holders.len();
        let happiness = happiness(&holders);
        CheckReport {
            storage_index: self.si,
            k: self.cap.k,
            n: self.cap.n,
            happy: self.happy,
            holders: listed(&holders),
            distinct_shares: distinct,
            happiness,
            servers_asked: asked,
            servers_answered: answered,
            healthy: happiness >= self.happy,
            recoverable: distinct >= self.cap.k,
            faults: self.faults.clone(),
            bad_copies: self.bad_copies.clone(),
            leases_renewed: self.leases_renewed,
        }
    }

    fn finish(&mut self, ctx: &mut Context<'_>, result: Result<CheckReport, CheckError>) {
        if self.done {
            return;
        }
        self.done = true;
        match &result {
            Ok(r) => {
                tracing::debug!(si = %self.si, distinct = r.distinct_shares, happiness = r.happiness, "check done")
            }
            Err(e) => tracing::info!(si = %self.si, error = %e, "check failed"),
        }
        ctx.reply(self.local, LocalResponse::Checked(result));
        ctx.cancel_timer(SWEEP);
        ctx.push(Effect::Stop);
    }
}

/// Every (share, server) claim of a survey, servers in the order they were asked.
fn claims_in_order(survey: &Survey) -> Vec<(ShareNum, NodeId)> {
    let order: BTreeMap<NodeId, usize> = survey
        .servers()
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i))
        .collect();
    let mut claims: Vec<(ShareNum, NodeId)> = survey
        .claims()
        .iter()
        .flat_map(|(&share, holders)| holders.iter().map(move |&h| (share, h)))
        .collect();
    claims.sort_by_key(|&(share, server)| (order.get(&server).copied(), share));
    let mut seen = BTreeSet::new();
    claims.retain(|c| seen.insert(*c));
    claims
}

impl Actor for Checker {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if self.done {
            return;
        }
        match input {
            Input::Start => self.start(ctx),
            Input::Message {
                from,
                msg: Message::Response { id, body },
            } => self.on_response(ctx, from, id, body),
            Input::Timer(SWEEP) => self.on_sweep(ctx),
            // Requests, announcements, local input, stray timers: not for a check.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
