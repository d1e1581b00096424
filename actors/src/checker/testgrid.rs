//! A small grid for driving one check or repair by hand in unit tests: real storage servers
//! over in-memory stores, each with a fault on demand, a fixed latency, and the operation's
//! timers, all in virtual time. Not a simulator: no network model beyond what a fault does.

use crate::actor::{Actor, Addr, Context, Effect, Input, OpId, Service, Time, TimerId};
use crate::ids::{NodeId, NodeKey, ShareNum, StorageIndex};
use crate::local::LocalResponse;
use crate::memstore::{MemJournal, MemShareStore};
use crate::protocol::{Message, RemoteError, Request, Response};
use crate::storage::{StorageConfig, StorageServer};
use crate::store::ShareStore;
use crate::uploader::UEB_ALLOWANCE;
use cairn_codec::{ChkCap, EncodingParams, Key, ShareLayout, ShareWriter};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a server does wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// Never answers.
    Silent,
    /// Answers `List` claiming every share of the file, whatever it holds.
    ClaimsAll(u8),
    /// Flips a bit in every `Data` it sends.
    Corrupting,
    /// Answers everything with this instead.
    Answers(Response),
    /// Answers after two seconds (past any test's timeout).
    Late,
    /// Answers everything twice.
    Duplicating,
    /// Refuses every write with a disk error (and takes no write).
    RefusesWrites,
}

/// One server: a real storage server actor, its store, and its fault.
pub(crate) struct Server {
    actor: StorageServer,
    pub store: MemShareStore,
    pub fault: Fault,
    rng: ChaCha8Rng,
}

enum Event {
    ToServer(NodeId, Addr, Message),
    ToOp(Input),
    Timer(TimerId),
}

/// The grid. See the module docs.
pub(crate) struct Grid {
    pub now: Time,
    pub latency: Duration,
    pub servers: BTreeMap<NodeId, Server>,
    pub op: Addr,
    pub replies: Vec<LocalResponse>,
    pub stopped: bool,
    /// Every request the operation sent: (server, request).
    pub requests: Vec<(NodeId, Request)>,
    events: BTreeMap<(Time, u64), Event>,
    timers: BTreeMap<TimerId, (Time, u64)>,
    seq: u64,
    rng: ChaCha8Rng,
}

/// A test node id.
pub(crate) fn node(i: u8) -> NodeId {
    NodeKey::from_seed([i; 32]).id()
}

impl Grid {
    /// `count` servers (`node(1..=count)`), each with `capacity` bytes.
    pub fn new(count: u8, capacity: u64) -> Self {
        let servers = (1..=count)
            .map(|i| {
                let store = MemShareStore::new(capacity);
                let actor = StorageServer::new(
                    NodeKey::from_seed([i; 32]),
                    format!("test-{i}"),
                    None,
                    Box::new(store.clone()),
                    Box::new(MemJournal::new()),
                    StorageConfig::default(),
                );
                let rng = ChaCha8Rng::seed_from_u64(u64::from(i));
                let server = Server {
                    actor,
                    store,
                    fault: Fault::None,
                    rng,
                };
                (node(i), server)
            })
            .collect();
        let mut grid = Grid {
            now: Time(1_000_000_000),
            latency: Duration::from_millis(5),
            servers,
            op: Addr::new(NodeId([0; 32]), Service::Upload(OpId(1))),
            replies: Vec::new(),
            stopped: false,
            requests: Vec::new(),
            events: BTreeMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(99),
        };
        let ids: Vec<NodeId> = grid.servers.keys().copied().collect();
        for id in ids {
            grid.feed_server(id, Input::Start);
        }
        grid
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.servers.keys().copied().collect()
    }

    pub fn fault(&mut self, server: NodeId, fault: Fault) {
        if let Some(s) = self.servers.get_mut(&server) {
            s.fault = fault;
        }
    }

    /// Puts share `share` (its bytes `bytes`) on `server`, complete, as an upload leaves it.
    pub fn put(&mut self, server: NodeId, si: StorageIndex, share: usize, bytes: &[u8], size: u64) {
        let store = &mut self.servers.get_mut(&server).expect("a test server").store;
        let n = ShareNum(share as u8);
        store.create(si, n, size).expect("room for the share");
        store.write(si, n, 0, bytes).expect("the share fits");
        store.commit(si, n).expect("commit");
    }

    /// The complete share `share` of `si` on `server`, if it holds it.
    pub fn share(&self, server: NodeId, si: StorageIndex, share: ShareNum) -> Option<Vec<u8>> {
        let mut store = self.servers.get(&server)?.store.clone();
        let size = store
            .list(si)
            .ok()?
            .into_iter()
            .find(|(s, _)| *s == share)?
            .1;
        store.read(si, share, 0, size).ok()
    }

    /// Shares being written (allocated, not closed) over all servers.
    pub fn incoming(&self) -> usize {
        self.servers.values().map(|s| s.store.counts().0).sum()
    }

    /// Starts the operation and runs until it stops or nothing is left to happen.
    pub fn run(&mut self, op: &mut dyn Actor) {
        self.schedule(self.now, Event::ToOp(Input::Start));
        for _ in 0..10_000_000 {
            if self.stopped {
                // Let the servers take what is still on its way (aborts, say).
                self.drain_servers();
                return;
            }
            let Some(((at, seq), event)) = self.events.pop_first() else {
                return;
            };
            self.now = at;
            match event {
                Event::ToServer(id, from, msg) => {
                    self.feed_server(id, Input::Message { from, msg })
                }
                Event::ToOp(input) => self.feed_op(op, input),
                Event::Timer(id) if self.timers.get(&id) == Some(&(at, seq)) => {
                    self.timers.remove(&id);
                    self.feed_op(op, Input::Timer(id));
                }
                Event::Timer(_) => {}
            }
        }
        panic!("the operation never stopped");
    }

    fn drain_servers(&mut self) {
        while let Some((_, event)) = self.events.pop_first() {
            if let Event::ToServer(id, from, msg) = event {
                self.feed_server(id, Input::Message { from, msg });
            }
        }
    }

    /// The only reply the operation gave.
    pub fn reply(&self) -> &LocalResponse {
        assert_eq!(
            self.replies.len(),
            1,
            "exactly one reply: {:?}",
            self.replies
        );
        &self.replies[0]
    }

    fn schedule(&mut self, at: Time, event: Event) -> (Time, u64) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
        (at, self.seq)
    }

    fn feed_op(&mut self, op: &mut dyn Actor, input: Input) {
        let mut rng = self.rng.clone();
        let mut ctx = Context::new(self.now, self.op, &mut rng);
        op.handle(input, &mut ctx);
        let effects = ctx.into_effects();
        self.rng = rng;
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    if let Message::Request { body, .. } = &msg {
                        self.requests.push((to.node, body.clone()));
                    }
                    let at = self.now.after(self.latency);
                    self.schedule(at, Event::ToServer(to.node, self.op, msg));
                }
                Effect::SetTimer { id, at } => {
                    let key = self.schedule(at, Event::Timer(id));
                    self.timers.insert(id, key);
                }
                Effect::CancelTimer { id } => {
                    self.timers.remove(&id);
                }
                Effect::Reply { response, .. } => self.replies.push(response),
                Effect::Stop => self.stopped = true,
                Effect::Output { .. }
                | Effect::Pull { .. }
                | Effect::Spawn { .. }
                | Effect::Learn { .. } => {
                    panic!("a check or repair has no plaintext, spawns nothing, learns nothing")
                }
            }
        }
    }

    fn feed_server(&mut self, id: NodeId, input: Input) {
        let Some(server) = self.servers.get_mut(&id) else {
            return;
        };
        let me = Addr::new(id, Service::Storage);
        if let (
            Fault::RefusesWrites,
            Input::Message {
                msg:
                    Message::Request {
                        id: rid,
                        body: Request::Write { .. },
                        ..
                    },
                ..
            },
        ) = (&server.fault, &input)
        {
            let body = Response::Err(RemoteError::Disk("simulated write failure".into()));
            let msg = Message::Response { id: *rid, body };
            let at = self.now.after(self.latency);
            self.schedule(at, Event::ToOp(Input::Message { from: me, msg }));
            return;
        }
        let mut ctx = Context::new(self.now, me, &mut server.rng);
        server.actor.handle(input, &mut ctx);
        let fault = server.fault.clone();
        let mut answers = Vec::new();
        for effect in ctx.into_effects() {
            if let Effect::Send {
                msg: Message::Response { id: rid, body },
                ..
            } = effect
            {
                answers.push((rid, body));
            }
        }
        for (rid, body) in answers {
            let Some((body, delay, copies)) = faulty(&fault, body, self.latency) else {
                continue;
            };
            for _ in 0..copies {
                let msg = Message::Response {
                    id: rid,
                    body: body.clone(),
                };
                let at = self.now.after(delay);
                self.schedule(at, Event::ToOp(Input::Message { from: me, msg }));
            }
        }
    }
}

/// What a faulty server answers instead of `body`: the answer, its delay, its copies.
fn faulty(fault: &Fault, body: Response, latency: Duration) -> Option<(Response, Duration, usize)> {
    Some(match (fault, body) {
        (Fault::Silent, _) => return None,
        (Fault::ClaimsAll(n), Response::Shares(_)) => {
            let all = (0..*n).map(|s| (ShareNum(s), 1000)).collect();
            (Response::Shares(all), latency, 1)
        }
        (Fault::Corrupting, Response::Data(mut data)) => {
            if let Some(b) = data.last_mut() {
                *b ^= 1;
            }
            (Response::Data(data), latency, 1)
        }
        (Fault::Answers(other), _) => (other.clone(), latency, 1),
        (Fault::Late, body) => (body, Duration::from_secs(2), 1),
        (Fault::Duplicating, body) => (body, latency, 2),
        (_, body) => (body, latency, 1),
    })
}

/// A test file: its cap, every share's bytes, and the size each was allocated with.
pub(crate) struct TestFile {
    pub cap: ChkCap,
    pub data: Vec<u8>,
    pub shares: Vec<Vec<u8>>,
    pub allocated: u64,
    pub si: StorageIndex,
}

/// Encodes `len` bytes `k`-of-`n` with `segment`-byte segments.
pub(crate) fn file(len: usize, k: usize, n: usize, segment: u64) -> TestFile {
    struct Shares(Vec<Vec<u8>>);
    impl ShareWriter for Shares {
        fn write_at(&mut self, share: usize, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let buf = &mut self.0[share];
            let end = offset as usize + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
    }
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ (i >> 7) as u8)
        .collect();
    let params = EncodingParams::new(k, n, segment).expect("test parameters");
    let mut shares = Shares(vec![Vec::new(); n]);
    let f = cairn_codec::encode_stream(Key([9; 16]), params, len as u64, &data[..], &mut shares)
        .expect("test data encodes");
    let layout: ShareLayout = f.layout;
    TestFile {
        si: f.cap.key.storage_index(),
        cap: f.cap,
        data,
        shares: shares.0,
        allocated: layout.share_size(UEB_ALLOWANCE),
    }
}

impl TestFile {
    /// Puts each `(share, server)` of `placement` on the grid.
    pub fn place(&self, grid: &mut Grid, placement: &[(usize, NodeId)]) {
        for &(share, server) in placement {
            grid.put(server, self.si, share, &self.shares[share], self.allocated);
        }
    }

    /// The share as a server stores it: its bytes, then zeros to the allocated size.
    pub fn stored(&self, share: usize) -> Vec<u8> {
        let mut bytes = self.shares[share].clone();
        bytes.resize(self.allocated as usize, 0);
        bytes
    }
}
