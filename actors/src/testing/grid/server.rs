//! A grid's storage servers: the real [`StorageServer`] over a [`MemShareStore`], and the
//! [`Fault`] a test gives it — what it does wrong, for the whole run.

use super::START;
use crate::actor::{Actor, Addr, Context, Effect, Input, Time};
use crate::ids::{NodeId, NodeKey, ShareNum, StorageIndex};
use crate::memstore::{MemJournal, MemShareStore};
use crate::protocol::{Message, RemoteError, Request, RequestId, Response};
use crate::storage::{StorageConfig, StorageServer, StorageStatus};
use crate::store::ShareStore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// How long a [`Fault::Late`] server takes to answer: past any test's request timeout.
pub const LATE: Duration = Duration::from_secs(2);

/// Test server `i`'s node id (the id of the key seeded with `i`).
pub fn node(i: u8) -> NodeId {
    NodeKey::from_seed([i; 32]).id()
}

/// What a server does wrong: one per server, for the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Never answers (it is gone).
    Silent,
    /// Stops answering anything once it has taken this many writes (it dies mid-upload).
    SilentAfterWrites(usize),
    /// Answers every Allocate with a disk error (a refusal other than being full).
    RefusesAllocations,
    /// Answers writes with a disk error, taking none of them, once it has taken this many
    /// (0: refuses every write).
    RefusesWritesAfter(usize),
    /// Answers `List` claiming shares 0 to n-1 of the file, whatever it holds.
    ClaimsAll(u8),
    /// Flips a bit in the last byte of every `Data` it sends.
    CorruptsReads,
    /// Flips a bit in the first byte of the `Data` it sends for reads at this offset (a
    /// share's first block, say).
    CorruptsReadsAt(u64),
    /// Carries out every request but answers this instead.
    Answers(Response),
    /// Answers everything, [`LATE`].
    Late,
    /// Answers everything twice.
    Duplicating,
}

impl Fault {
    /// Whether a server with this fault, having taken `writes` writes, ignores what it is
    /// sent.
    fn ignores(&self, writes: usize) -> bool {
        match self {
            Fault::Silent => true,
            Fault::SilentAfterWrites(n) => writes >= *n,
            _ => false,
        }
    }

    /// The error a server with this fault answers `request` with, without carrying it out.
    fn refusal(&self, request: &Request, writes: usize) -> Option<RemoteError> {
        match (self, request) {
            (Fault::RefusesAllocations, Request::Allocate { .. }) => {
                Some(RemoteError::Disk("simulated disk failure".into()))
            }
            (Fault::RefusesWritesAfter(n), Request::Write { .. }) if writes >= *n => {
                Some(RemoteError::Disk("simulated write failure".into()))
            }
            _ => None,
        }
    }

    /// What a server with this fault answers instead of `body`, its answer to `request`.
    fn distort(&self, request: &Request, body: Response) -> Response {
        match (self, body, request) {
            (Fault::ClaimsAll(n), Response::Shares(_), _) => {
                Response::Shares((0..*n).map(|s| (ShareNum(s), 1000)).collect())
            }
            (Fault::CorruptsReads, Response::Data(mut data), _) => {
                if let Some(b) = data.last_mut() {
                    *b ^= 1;
                }
                Response::Data(data)
            }
            (
                Fault::CorruptsReadsAt(at),
                Response::Data(mut data),
                Request::Read { offset, .. },
            ) if offset == at => {
                if let Some(b) = data.first_mut() {
                    *b ^= 1;
                }
                Response::Data(data)
            }
            (Fault::Answers(other), _, _) => other.clone(),
            (_, body, _) => body,
        }
    }

    /// When each copy of an answer arrives, after the request arrived.
    fn delays(&self, latency: Duration) -> Vec<Duration> {
        match self {
            Fault::Late => vec![LATE],
            Fault::Duplicating => vec![latency, latency * 2],
            _ => vec![latency],
        }
    }
}

/// One server of a grid: the real storage server actor, a handle to its store, its fault.
pub struct Server {
    actor: StorageServer,
    /// The server's store, to place shares on and look into (or shrink: see
    /// [`MemShareStore::set_capacity`]).
    pub store: MemShareStore,
    /// What it does wrong.
    pub fault: Fault,
    rng: ChaCha8Rng,
    /// Writes it has taken (answered `Ok`).
    writes: usize,
}

impl Server {
    /// Test server `i` (node id [`node`]`(i)`), with `capacity` bytes for shares, started.
    pub fn new(i: u8, capacity: u64) -> Self {
        let store = MemShareStore::new(capacity);
        let actor = StorageServer::new(
            NodeKey::from_seed([i; 32]),
            format!("test-{i}"),
            None,
            Box::new(store.clone()),
            Box::new(MemJournal::new()),
            StorageConfig::default(),
        );
        let mut server = Server {
            actor,
            store,
            fault: Fault::None,
            rng: ChaCha8Rng::seed_from_u64(u64::from(i)),
            writes: 0,
        };
        server.serve(START, Addr::storage(node(i)), Input::Start);
        server
    }

    /// What the server holds in memory: its incoming shares, leases, advisories.
    pub fn status(&self) -> StorageStatus {
        self.actor.status()
    }

    /// Hands the server `input` at `now`; returns its answers (its fault aside).
    pub fn serve(&mut self, now: Time, me: Addr, input: Input) -> Vec<(RequestId, Response)> {
        let mut ctx = Context::new(now, me, &mut self.rng);
        self.actor.handle(input, &mut ctx);
        let answers = ctx.into_effects().into_iter().filter_map(|e| match e {
            Effect::Send {
                msg: Message::Response { id, body },
                ..
            } => Some((id, body)),
            _ => None,
        });
        answers.collect()
    }

    /// The server's answers to `msg` from `from`, as its fault makes them: each with how
    /// long after now it arrives.
    pub(super) fn answer(
        &mut self,
        now: Time,
        me: Addr,
        from: Addr,
        msg: Message,
        latency: Duration,
    ) -> Vec<(Duration, Message)> {
        let Message::Request { body, .. } = &msg else {
            return Vec::new();
        };
        let request = body.clone();
        let mut out = Vec::new();
        for (id, body) in self.take(now, me, from, msg, &request) {
            let body = self.fault.distort(&request, body);
            for delay in self.fault.delays(latency) {
                let body = body.clone();
                out.push((delay, Message::Response { id, body }));
            }
        }
        out
    }

    /// What the server makes of `msg` (which asks `request`) before its fault distorts the
    /// answer: nothing if it ignores it, a refusal without carrying it out, or what the real
    /// server answers.
    fn take(
        &mut self,
        now: Time,
        me: Addr,
        from: Addr,
        msg: Message,
        request: &Request,
    ) -> Vec<(RequestId, Response)> {
        let Message::Request { id, .. } = msg else {
            return Vec::new();
        };
        if self.fault.ignores(self.writes) {
            return Vec::new();
        }
        if let Some(refusal) = self.fault.refusal(request, self.writes) {
            return vec![(id, Response::Err(refusal))];
        }
        let answers = self.serve(now, me, Input::Message { from, msg });
        if matches!(request, Request::Write { .. }) {
            self.writes += answers.iter().filter(|(_, a)| *a == Response::Ok).count();
        }
        answers
    }

    /// Puts `bytes` as share `share` of `si`, complete, in a share of `size` bytes (as an
    /// upload leaves it: the rest zeros).
    pub fn put(&mut self, si: StorageIndex, share: ShareNum, bytes: &[u8], size: u64) {
        let store = &mut self.store;
        store.create(si, share, size).expect("room for the share");
        store.write(si, share, 0, bytes).expect("the share fits");
        store.commit(si, share).expect("commit");
    }

    /// The complete share `share` of `si`, if the server holds it.
    pub fn share(&self, si: StorageIndex, share: ShareNum) -> Option<Vec<u8>> {
        let mut store = self.store.clone();
        let size = store
            .list(si)
            .ok()?
            .into_iter()
            .find(|(s, _)| *s == share)?
            .1;
        store.read(si, share, 0, size).ok()
    }

    /// Every complete share of `si` the server holds, with its bytes.
    pub fn shares(&self, si: StorageIndex) -> Vec<(ShareNum, Vec<u8>)> {
        let listed = self.store.clone().list(si).unwrap_or_default();
        let share = |(n, _)| Some((n, self.share(si, n)?));
        listed.into_iter().filter_map(share).collect()
    }
}
