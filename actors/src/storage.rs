//! The storage server: holds shares for the grid.
//!
//! Clients allocate space for shares of a file, write them in pieces, and close them (which
//! makes them visible, atomically) or abort them; anyone may list and read complete shares.
//! A share being uploaded belongs to the upload that allocated it: writes, closes and aborts
//! must show its [`UploadSecret`], so no other peer can spoil or cancel it. The server
//! enforces the limits a peer cannot be trusted with — space (keeping
//! [`StorageConfig::reserved_space`] free, every share charged at least
//! [`MIN_SHARE_CHARGE`]), shares being uploaded per peer ([`MAX_INCOMING_PER_NODE`]), uploads
//! left idle (dropped after [`INCOMING_IDLE_LIMIT`]), share and message sizes, bounds, lease
//! lengths, how long an answer is remembered ([`crate::replies::MAX_REQUEST_LIFETIME`]) — and
//! announces itself to the introducer periodically. Shares live in a [`ShareStore`], leases in a
//! [`Journal`]; in memory the server keeps only what those bound: the sizes of incoming
//! shares, the leases of files it holds, and a short log of corruption advisories.

mod collector;
mod leases;
mod uploads;

use crate::actor::{Actor, Addr, Context, Input, Time, TimerId};
use crate::ids::NodeId;
use crate::ids::{NodeKey, ShareNum, StorageIndex};
use crate::local::{LocalRequest, LocalResponse};
use crate::protocol::{
    Announced, Announcement, LeaseSecret, Message, RemoteError, Request, RequestId, Response,
    StorageFigures, UploadSecret, MAX_DATA_PER_MESSAGE,
};
use crate::replies::ReplyCache;
use crate::store::{Journal, ShareStore};
use collector::Collector;
use leases::Leases;
use rand::RngCore;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use uploads::Ask;

pub use collector::{CollectorStatus, Expiry, Pass, CHECKPOINT_STEPS, CRAWL_STEP, LAPSE_WARNING};
pub use leases::MAX_LEASES_PER_FILE;

/// The largest share accepted (a segment count times a block size can be large, but not
/// this large); anything bigger is a malformed request.
pub const MAX_SHARE_SIZE: u64 = 1 << 40;
/// How long a lease lasts unless the server is configured otherwise (Tahoe's: 31 days).
pub const DEFAULT_LEASE_PERIOD: Duration = Duration::from_secs(31 * 24 * 3600);
/// How many corruption advisories are kept for the operator (the oldest go first).
pub const MAX_CORRUPTION_ADVISORIES: usize = 32;
/// The longest advisory reason kept, in bytes (longer ones are cut).
pub const MAX_ADVISORY_REASON: usize = 256;
/// The shortest announcement interval used, whatever the configuration says: a zero interval
/// would make the server announce in a loop without time passing.
pub const MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);

/// Space charged for a share however small, by default: a peer cannot fill the server's
/// tables with allocations of one byte.
pub const MIN_SHARE_CHARGE: u64 = 4096;
/// The most shares one node may be uploading to this server at once.
pub const MAX_INCOMING_PER_NODE: usize = 1024;
/// A share being uploaded that nobody has written to for this long is dropped (Tahoe drops
/// idle uploads after the same 30 minutes): its uploader is gone.
pub const INCOMING_IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
const ANNOUNCE_TIMER: TimerId = TimerId(0);
/// Fires when the oldest share being uploaded would be idle too long.
const IDLE_TIMER: TimerId = TimerId(1);
/// The garbage collector's next step.
const CRAWL_TIMER: TimerId = TimerId(2);

/// A share being uploaded: its size, what it is charged beyond it, whose upload it is,
/// when it was last written.
#[derive(Clone, Copy, Debug)]
struct Incoming {
    size: u64,
    overcharge: u64,
    upload: UploadSecret,
    uploader: NodeId,
    touched: Time,
}

/// How a storage server behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    /// Space the server leaves free: new shares are refused rather than go below it.
    pub reserved_space: u64,
    /// How often the server announces itself to the introducer.
    pub announce_interval: Duration,
    /// The least space a share is charged, however small ([`MIN_SHARE_CHARGE`]).
    pub min_share_charge: u64,
    /// The name the server announces (see [`Announcement::nickname`]).
    pub nickname: String,
    /// How long a lease lasts: an allocation's, and the longest a renewal may ask for.
    pub lease_period: Duration,
    /// When the garbage collector may delete a file's shares.
    pub expiry: Expiry,
    /// Files the garbage collector examines per [`CRAWL_STEP`].
    pub crawl_rate: u32,
    /// The least time between the starts of two garbage collection passes.
    pub crawl_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            reserved_space: 0,
            announce_interval: Duration::from_secs(60),
            min_share_charge: MIN_SHARE_CHARGE,
            nickname: String::new(),
            lease_period: DEFAULT_LEASE_PERIOD,
            expiry: Expiry::Off,
            crawl_rate: 100,
            crawl_interval: Duration::from_secs(3600),
        }
    }
}

/// A client's report that a share failed a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptionAdvisory {
    /// The file.
    pub si: StorageIndex,
    /// The share the client found bad.
    pub share: ShareNum,
    /// The client's reason, cut to [`MAX_ADVISORY_REASON`] bytes.
    pub reason: String,
}

/// What a storage server holds in memory, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageStatus {
    /// Shares being uploaded.
    pub incoming_shares: usize,
    /// Files with at least one lease.
    pub leased_files: usize,
    /// Leases, over all files.
    pub leases: usize,
    /// Corruption advisories received since start.
    pub advisories_received: u64,
    /// The latest advisories, oldest first.
    pub recent_advisories: Vec<CorruptionAdvisory>,
}

/// A storage server's status for its operator (its node's `status`): what it holds in
/// memory and on disk, and what its garbage collector does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageReport {
    pub status: StorageStatus,
    /// As announced (zero where the store cannot tell).
    pub figures: StorageFigures,
    pub collector: CollectorStatus,
}

/// The storage server actor. See the module docs.
pub struct StorageServer {
    /// Shared, so that a host restarting the server often (a simulation) can hand the same
    /// key back instead of deriving it again from its seed, which costs a scalar multiplication.
    key: Arc<NodeKey>,
    address: String,
    /// The introducers it announces itself to.
    introducers: Vec<Addr>,
    store: Box<dyn ShareStore>,
    leases: Leases,
    config: StorageConfig,
    /// Every share being uploaded: the store's incoming shares, exactly.
    incoming: BTreeMap<(StorageIndex, ShareNum), Incoming>,
    /// The incoming shares' charges beyond their sizes, summed.
    overcharge: u64,
    /// When the idle timer is set to fire.
    idle_check: Option<Time>,
    advisories: VecDeque<CorruptionAdvisory>,
    advisories_received: u64,
    next_request: u64,
    last_seq: u64,
    /// When this incarnation started (announced: a new value tells clients it restarted).
    started: u64,
    answered: ReplyCache,
    collector: Collector,
}

impl StorageServer {
    /// A server for node `key`, reachable at `address`, announcing itself to `introducer`
    /// (if any), keeping shares in `store` and leases in the journal `leases`. The key may be
    /// given as a `NodeKey` or an `Arc<NodeKey>` already shared.
    pub fn new(
        key: impl Into<Arc<NodeKey>>,
        address: String,
        introducer: Option<Addr>,
        store: Box<dyn ShareStore>,
        leases: Box<dyn Journal>,
        config: StorageConfig,
    ) -> Self {
        StorageServer {
            key: key.into(),
            address,
            introducers: introducer.into_iter().collect(),
            store,
            leases: Leases::new(leases),
            config,
            incoming: BTreeMap::new(),
            overcharge: 0,
            idle_check: None,
            advisories: VecDeque::new(),
            advisories_received: 0,
            next_request: 0,
            last_seq: 0,
            started: 0,
            answered: ReplyCache::default(),
            collector: Collector::default(),
        }
    }

    /// The same server announcing itself to `more` introducers too.
    pub fn with_more_introducers(mut self, more: impl IntoIterator<Item = Addr>) -> Self {
        for introducer in more {
            if !self.introducers.contains(&introducer) {
                self.introducers.push(introducer);
            }
        }
        self
    }

    /// What the server holds in memory.
    pub fn status(&self) -> StorageStatus {
        let (leased_files, leases) = self.leases.counts();
        StorageStatus {
            incoming_shares: self.incoming.len(),
            leased_files,
            leases,
            advisories_received: self.advisories_received,
            recent_advisories: self.advisories.iter().cloned().collect(),
        }
    }

    /// The status, with what the store says of the disk (zero where it cannot tell).
    pub fn report(&mut self) -> StorageReport {
        StorageReport {
            status: self.status(),
            figures: self.figures(),
            collector: self.collector_status(),
        }
    }

    /// What the server holds and has room for (zero where the store cannot tell).
    fn figures(&mut self) -> StorageFigures {
        let warn = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!("storage: cannot tell {what}, counting none: {e}");
        };
        StorageFigures {
            shares: self.store.share_count().unwrap_or_else(|e| {
                warn("the shares held", &e);
                0
            }),
            used_bytes: self.store.used_bytes().unwrap_or_else(|e| {
                warn("the space used", &e);
                0
            }),
            free_space: self.free_space().unwrap_or_else(|e| {
                warn("free space", &e);
                0
            }),
        }
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.next_request = ctx.rng().next_u64();
        self.started = ctx.now().0;
        self.abort_leftovers();
        let store = &mut self.store;
        let holds = |si| store.list(si).is_ok_and(|shares| !shares.is_empty());
        match self.leases.replay(holds) {
            Ok(replayed) => {
                let (current, last) = (replayed.current.clone(), replayed.last.clone());
                self.resume_collector(current, last, ctx.now());
            }
            Err(e) => {
                // Without leases the collector would take every file for unleased: it stays
                // off until the journal reads again.
                tracing::error!(
                    "storage: cannot read the lease journal, starting without leases and \
                     without garbage collection: {e}"
                );
                self.config.expiry = Expiry::Off;
            }
        }
        if !Announcement::nickname_ok(&self.config.nickname) {
            tracing::error!(
                "storage: the nickname is over {} bytes or has control characters; the \
                 introducer will refuse it",
                Announcement::MAX_NICKNAME_LEN
            );
        }
        if self.address.len() > Announcement::MAX_ADDRESS_LEN {
            tracing::error!(
                "storage: address is over {} bytes; the introducer will refuse it",
                Announcement::MAX_ADDRESS_LEN
            );
        }
        self.announce(ctx);
        self.schedule_collector(ctx);
    }

    /// Shares left incoming by a crash can never be finished (their uploader has given up
    /// on this server), so they only hold space.
    fn abort_leftovers(&mut self) {
        self.incoming.clear();
        self.overcharge = 0;
        self.idle_check = None;
        let leftovers = match self.store.incoming() {
            Ok(leftovers) => leftovers,
            Err(e) => {
                tracing::error!("storage: cannot list leftover incoming shares: {e}");
                return;
            }
        };
        for (si, share) in leftovers {
            if let Err(e) = self.store.abort(si, share) {
                tracing::warn!(?si, share = share.0, "storage: cannot abort leftover: {e}");
            }
        }
    }

    fn announce(&mut self, ctx: &mut Context<'_>) {
        if self.introducers.is_empty() {
            return;
        }
        // The time makes the seq grow across restarts too (a real host's clock counts from
        // the Unix epoch; a simulation's keeps running through crashes); the max only
        // matters if two announcements fall on the same instant.
        let seq = ctx.now().0.max(self.last_seq.saturating_add(1));
        debug_assert!(
            seq > self.last_seq || seq == u64::MAX,
            "announcements only go forward"
        );
        self.last_seq = seq;
        let announced = Announced {
            address: self.address.clone(),
            nickname: self.config.nickname.clone(),
            figures: self.figures(),
            seq,
            started: self.started,
        };
        let announcement = Announcement::sign(&self.key, announced);
        let interval = self.config.announce_interval.max(MIN_ANNOUNCE_INTERVAL);
        for introducer in self.introducers.clone() {
            let message = Message::Request {
                id: self.fresh_request_id(),
                deadline: ctx.now().after(interval),
                body: Request::Announce(Box::new(announcement.clone())),
            };
            ctx.send(introducer, message);
        }
        ctx.set_timer(ANNOUNCE_TIMER, interval);
    }

    fn fresh_request_id(&mut self) -> RequestId {
        self.next_request = self.next_request.wrapping_add(1);
        RequestId(self.next_request)
    }

    fn on_request(
        &mut self,
        from: Addr,
        id: RequestId,
        deadline: Time,
        body: Request,
        ctx: &mut Context<'_>,
    ) {
        let changes = body.changes();
        let Some(request) = self.answered.admit(ctx, from, id, deadline, changes) else {
            return;
        };
        let body = self
            .serve(body, from.node, ctx.now())
            .unwrap_or_else(Response::Err);
        self.answered.answer(ctx, request, body);
        self.arm_idle_check(ctx);
    }

    fn serve(
        &mut self,
        request: Request,
        from: NodeId,
        now: Time,
    ) -> Result<Response, RemoteError> {
        match request {
            Request::Allocate {
                si,
                shares,
                share_size,
                lease,
                upload,
            } => {
                let ask = Ask {
                    si,
                    share_size,
                    upload,
                    uploader: from,
                    now,
                };
                self.allocate(ask, &shares, lease)
            }
            Request::Write {
                si,
                share,
                offset,
                data,
                upload,
            } => self.write(si, share, offset, &data, upload, now),
            Request::Close { si, share, upload } => self.close(si, share, upload),
            Request::Abort { si, share, upload } => self.abort(si, share, upload),
            Request::Read {
                si,
                share,
                offset,
                len,
            } => self.read(si, share, offset, len),
            Request::List { si } => Ok(Response::Shares(self.complete_shares(si)?)),
            Request::RenewLease { si, lease, expires } => self.renew_lease(si, lease, expires, now),
            Request::AdviseCorrupt { si, share, reason } => {
                Ok(self.advise_corrupt(si, share, &reason))
            }
            Request::Announce(_)
            | Request::Subscribe
            | Request::Vdrive(_)
            | Request::DirRead { .. }
            | Request::DirWrite { .. } => Err(RemoteError::Unsupported),
        }
    }

    fn read(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Response, RemoteError> {
        if len > MAX_DATA_PER_MESSAGE {
            return Err(RemoteError::Malformed(format!(
                "a read of {len} bytes is over the {MAX_DATA_PER_MESSAGE}-byte limit"
            )));
        }
        let size = self
            .complete_shares(si)?
            .into_iter()
            .find_map(|(n, size)| (n == share).then_some(size))
            .ok_or(RemoteError::NoSuchShare)?;
        if offset > size {
            return Err(RemoteError::OutOfBounds { size });
        }
        let len = len.min(size - offset);
        let mut data = self.store.read(si, share, offset, len).map_err(disk)?;
        // A store returning more than asked must not make the answer overflow its frame.
        data.truncate(len as usize);
        Ok(Response::Data(data))
    }

    fn renew_lease(
        &mut self,
        si: StorageIndex,
        lease: LeaseSecret,
        expires: Time,
        now: Time,
    ) -> Result<Response, RemoteError> {
        // Leases are kept only for files held here, so that they cannot fill memory.
        if !self.holds(si)? {
            return Err(RemoteError::NoSuchShare);
        }
        // A lease runs at most one lease period from now, whatever the peer asks.
        let expires = expires.min(now.after(self.config.lease_period));
        if expires > now {
            self.leases.grant(si, lease, expires).map_err(disk)?;
        }
        Ok(Response::Ok)
    }

    fn advise_corrupt(&mut self, si: StorageIndex, share: ShareNum, reason: &str) -> Response {
        let reason = truncate(reason, MAX_ADVISORY_REASON).to_string();
        tracing::warn!(?si, share = share.0, %reason, "storage: a client reports a corrupt share");
        self.advisories_received = self.advisories_received.saturating_add(1);
        if self.advisories.len() == MAX_CORRUPTION_ADVISORIES {
            self.advisories.pop_front();
        }
        self.advisories
            .push_back(CorruptionAdvisory { si, share, reason });
        debug_assert!(self.advisories.len() <= MAX_CORRUPTION_ADVISORIES);
        Response::Ok
    }

    /// The complete shares of `si`, in share order.
    fn complete_shares(&mut self, si: StorageIndex) -> Result<Vec<(ShareNum, u64)>, RemoteError> {
        let mut shares = self.store.list(si).map_err(disk)?;
        shares.sort_unstable();
        Ok(shares)
    }

    /// Whether any share of `si` is here, complete or incoming.
    fn holds(&mut self, si: StorageIndex) -> Result<bool, RemoteError> {
        Ok(self.uploading(si) || !self.store.list(si).map_err(disk)?.is_empty())
    }

    fn forget_leases_if_empty(&mut self, si: StorageIndex) {
        if !self.holds(si).unwrap_or(true) {
            self.leases.forget(si);
        }
    }

    /// Space for new shares: what the store can take, less the reserve and what small
    /// shares being uploaded are charged beyond their size.
    fn free_space(&mut self) -> Result<u64, RemoteError> {
        let available = self.store.available_bytes().map_err(disk)?;
        let reserved = self.config.reserved_space.saturating_add(self.overcharge);
        Ok(available.saturating_sub(reserved))
    }
}

impl Actor for StorageServer {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => self.start(ctx),
            Input::Timer(ANNOUNCE_TIMER) => self.announce(ctx),
            Input::Timer(IDLE_TIMER) => self.drop_idle_uploads(ctx),
            Input::Timer(CRAWL_TIMER) => self.crawl(ctx),
            Input::Message {
                from,
                msg: Message::Request { id, deadline, body },
            } => self.on_request(from, id, deadline, body, ctx),
            Input::Local {
                id,
                request: LocalRequest::Status,
            } => {
                let report = self.report();
                ctx.reply(id, LocalResponse::Storage(Box::new(report)));
            }
            // Answers to our announcements need nothing done; the rest is not for us.
            Input::Message { .. }
            | Input::Timer(_)
            | Input::Local { .. }
            | Input::Plaintext { .. }
            | Input::OutputDrained
            | Input::Cancel(_) => {}
        }
    }
}

pub(super) fn disk(e: io::Error) -> RemoteError {
    RemoteError::Disk(e.to_string())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
