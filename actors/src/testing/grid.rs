//! One grid for driving one operation (an upload, a download, a check, a repair) by hand:
//! real storage servers over in-memory stores, each with a [`Fault`] on demand; a fixed
//! latency; the operation's timers; and a local user who answers pulls from a buffer and
//! drains output — all in virtual time, and everything the operation did recorded for the
//! test to check.
//!
//! Not a simulator (that is `sim`): one operation, no network model beyond what a fault does.
//! The servers ([`server`]) are the real `StorageServer`, never a fake, so that an operation
//! is tested against the protocol as the server really speaks it.

pub mod server;

pub use server::{node, Fault, Server, LATE};

use crate::actor::{Actor, Addr, Context, Effect, Input, OpId, Service, Time, TimerId};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::LocalResponse;
use crate::protocol::{Message, Request, RequestId};
use crate::uploader::UEB_ALLOWANCE;
use cairn_codec::{ChkCap, EncodingParams, Key, MemoryShares};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// When a grid's clock starts (not zero, as a real host's does not).
pub const START: Time = Time(1_000_000_000);

/// The operation's local user: the plaintext it uploads, and the output it downloads.
pub struct LocalUser {
    /// What the user uploads: pulls are answered from it.
    pub input: Vec<u8>,
    /// Whether pulls are answered at all (a user that never gives its input).
    pub answers_pulls: bool,
    /// `(n, bytes)`: from the `n+1`th pull on, the input is `bytes` (a file changing under
    /// the upload).
    pub changes_input: Option<(usize, Vec<u8>)>,
    /// Every pull, `(offset, max)`, in order.
    pub pulls: Vec<(u64, usize)>,
    /// Every byte output, in order (each output is drained after the latency).
    pub output: Vec<u8>,
}

enum Event {
    ToServer(NodeId, Message),
    ToOp(Input),
    Timer(TimerId),
}

/// The grid. See the module docs.
pub struct Grid {
    /// The time now (after a run: when the last message reached a server).
    pub now: Time,
    /// The one-way delay of every message, pull and drain.
    pub latency: Duration,
    /// The servers, by node id.
    pub servers: BTreeMap<NodeId, Server>,
    /// The operation's address, where the servers answer: an upload's unless a test sets
    /// another.
    pub op: Addr,
    /// The operation's local user.
    pub user: LocalUser,
    /// The operation's replies to its user (one, from a well-behaved operation).
    pub replies: Vec<LocalResponse>,
    /// When the operation stopped, once it has.
    pub stopped: Option<Time>,
    /// Every request the operation sent, to whom, in order.
    pub requests: Vec<(NodeId, Request)>,
    /// Every actor the operation spawned.
    pub spawned: Vec<(Service, Box<dyn Actor>)>,
    /// Writes sent whose answer has not reached the operation yet.
    pub writes_in_flight: usize,
    /// The most writes there ever were in flight.
    pub max_writes_in_flight: usize,
    write_ids: BTreeSet<RequestId>,
    events: BTreeMap<(Time, u64), Event>,
    timers: BTreeMap<TimerId, (Time, u64)>,
    seq: u64,
    rng: ChaCha8Rng,
}

impl Grid {
    /// `count` servers ([`node`]`(1..=count)`), each with `capacity` bytes.
    pub fn new(count: u8, capacity: u64) -> Self {
        Grid {
            now: START,
            latency: Duration::from_millis(5),
            servers: (1..=count)
                .map(|i| (node(i), Server::new(i, capacity)))
                .collect(),
            op: Addr::new(NodeId([0; 32]), Service::Upload(OpId(1))),
            user: LocalUser {
                input: Vec::new(),
                answers_pulls: true,
                changes_input: None,
                pulls: Vec::new(),
                output: Vec::new(),
            },
            replies: Vec::new(),
            stopped: None,
            requests: Vec::new(),
            spawned: Vec::new(),
            writes_in_flight: 0,
            max_writes_in_flight: 0,
            write_ids: BTreeSet::new(),
            events: BTreeMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(7),
        }
    }

    /// The servers' ids, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.servers.keys().copied().collect()
    }

    /// Gives `server` a fault.
    pub fn fault(&mut self, server: NodeId, fault: Fault) {
        self.server(server).fault = fault;
    }

    /// A server of the grid.
    pub fn server(&mut self, id: NodeId) -> &mut Server {
        self.servers.get_mut(&id).expect("a server of the grid")
    }

    /// Delivers `input` to the operation at `at` (after whatever is already due then).
    pub fn schedule(&mut self, at: Time, input: Input) {
        self.push(at, Event::ToOp(input));
    }

    /// Starts the operation and runs it until it stops or nothing is left to happen; then
    /// lets the servers take what is still on its way to them (the aborts it sent last).
    pub fn run(&mut self, op: &mut dyn Actor) {
        self.schedule(self.now, Input::Start);
        for _ in 0..10_000_000 {
            if self.stopped.is_some() {
                return self.drain_servers();
            }
            let Some(((at, seq), event)) = self.events.pop_first() else {
                return;
            };
            self.now = at;
            match event {
                Event::ToServer(id, msg) => self.feed_server(id, msg),
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

    /// The complete share `share` of `si` on `server`, if it holds it.
    pub fn share(&self, server: NodeId, si: StorageIndex, share: ShareNum) -> Option<Vec<u8>> {
        self.servers.get(&server)?.share(si, share)
    }

    /// Shares being written (allocated, neither closed nor aborted), over all servers.
    pub fn incoming(&self) -> usize {
        self.servers.values().map(|s| s.store.counts().0).sum()
    }

    /// Complete shares, of any file, over all servers.
    pub fn complete(&self) -> usize {
        self.servers.values().map(|s| s.store.counts().1).sum()
    }

    /// `cap`'s file read back from the complete shares on all servers.
    pub fn decode(&self, cap: &ChkCap) -> Result<Vec<u8>, cairn_codec::Error> {
        self.decode_from(cap, &self.ids())
    }

    /// `cap`'s file read back from the complete shares on the servers `from` only (each
    /// share once).
    pub fn decode_from(
        &self,
        cap: &ChkCap,
        from: &[NodeId],
    ) -> Result<Vec<u8>, cairn_codec::Error> {
        let si = cap.key.storage_index();
        let mut seen = BTreeSet::new();
        let sources: Vec<(usize, Vec<u8>)> = from
            .iter()
            .filter_map(|id| self.servers.get(id))
            .flat_map(|server| server.shares(si))
            .filter(|(share, _)| seen.insert(*share))
            .map(|(share, bytes)| (share.index(), bytes))
            .collect();
        let mut out = Vec::new();
        cairn_codec::decode(cap, sources, &mut out)?;
        Ok(out)
    }

    fn push(&mut self, at: Time, event: Event) -> (Time, u64) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
        (at, self.seq)
    }

    fn drain_servers(&mut self) {
        while let Some(((at, _), event)) = self.events.pop_first() {
            if let Event::ToServer(id, msg) = event {
                self.now = at;
                self.feed_server(id, msg);
            }
        }
    }

    fn feed_op(&mut self, op: &mut dyn Actor, input: Input) {
        if let Input::Message {
            msg: Message::Response { id, .. },
            ..
        } = &input
        {
            if self.write_ids.remove(id) {
                self.writes_in_flight -= 1;
            }
        }
        let mut rng = self.rng.clone();
        let mut ctx = Context::new(self.now, self.op, &mut rng);
        op.handle(input, &mut ctx);
        let effects = ctx.into_effects();
        self.rng = rng;
        for effect in effects {
            self.carry_out(effect);
        }
    }

    fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Send { to, msg } => self.send(to, msg),
            Effect::SetTimer { id, at } => {
                let key = self.push(at, Event::Timer(id));
                self.timers.insert(id, key);
            }
            Effect::CancelTimer { id } => {
                self.timers.remove(&id);
            }
            Effect::Reply { response, .. } => self.replies.push(response),
            Effect::Output { data, .. } => {
                self.user.output.extend_from_slice(&data);
                self.schedule(self.now.after(self.latency), Input::OutputDrained);
            }
            Effect::Pull { offset, max, .. } => self.pull(offset, max),
            Effect::Spawn { service, actor, .. } => self.spawned.push((service, actor)),
            Effect::Stop => self.stopped = Some(self.now),
            Effect::Learn { .. } => panic!("an operation learns no addresses"),
        }
    }

    /// Records a request and sends it on its way; anything sent to a node that is not a
    /// server of the grid is lost.
    fn send(&mut self, to: Addr, msg: Message) {
        if let Message::Request { id, body, .. } = &msg {
            self.requests.push((to.node, body.clone()));
            if matches!(body, Request::Write { .. }) {
                self.write_ids.insert(*id);
                self.writes_in_flight += 1;
                self.max_writes_in_flight = self.max_writes_in_flight.max(self.writes_in_flight);
            }
        }
        if to.service == Service::Storage {
            self.push(self.now.after(self.latency), Event::ToServer(to.node, msg));
        }
    }

    /// The local user answers a pull from its input, as it is by then.
    fn pull(&mut self, offset: u64, max: usize) {
        let user = &mut self.user;
        user.pulls.push((offset, max));
        if user
            .changes_input
            .as_ref()
            .is_some_and(|(n, _)| user.pulls.len() > *n)
        {
            if let Some((_, bytes)) = user.changes_input.take() {
                user.input = bytes;
            }
        }
        if user.answers_pulls {
            let start =
                usize::try_from(offset).map_or(user.input.len(), |o| o.min(user.input.len()));
            let end = start.saturating_add(max).min(user.input.len());
            let data = user.input[start..end].to_vec();
            self.schedule(
                self.now.after(self.latency),
                Input::Plaintext { offset, data },
            );
        }
    }

    fn feed_server(&mut self, id: NodeId, msg: Message) {
        let (now, latency, from) = (self.now, self.latency, self.op);
        let Some(server) = self.servers.get_mut(&id) else {
            return;
        };
        let me = Addr::storage(id);
        for (delay, msg) in server.answer(now, me, from, msg, latency) {
            self.schedule(now.after(delay), Input::Message { from: me, msg });
        }
    }
}

/// Test plaintext: `len` bytes of a simple pattern, different per `seed`.
pub fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// A file as an upload makes it: its plaintext, cap, every share's bytes, and the size each
/// share is allocated with.
pub struct TestFile {
    pub cap: ChkCap,
    pub si: StorageIndex,
    pub data: Vec<u8>,
    /// Every share, by number, as the codec writes it.
    pub shares: Vec<Vec<u8>>,
    /// The size an uploader allocates each share with (room for the UEB included).
    pub allocated: u64,
}

impl TestFile {
    /// `data` encoded under `key` with `params`.
    pub fn encode(key: Key, params: EncodingParams, data: Vec<u8>) -> Self {
        let mut shares = MemoryShares::default();
        let file =
            cairn_codec::encode_stream(key, params, data.len() as u64, &data[..], &mut shares)
                .expect("test data encodes");
        TestFile {
            si: file.cap.key.storage_index(),
            cap: file.cap,
            data,
            shares: shares.into_shares(),
            allocated: file.layout.share_size(UEB_ALLOWANCE),
        }
    }

    /// Puts each `(share, server)` of `placement` on the grid, as an upload leaves it.
    pub fn place(&self, grid: &mut Grid, placement: &[(usize, NodeId)]) {
        for &(share, server) in placement {
            self.place_on(grid.server(server), share);
        }
    }

    /// Puts share `share` on `server`, as an upload leaves it.
    pub fn place_on(&self, server: &mut Server, share: usize) {
        let n = ShareNum(share as u8);
        server.put(self.si, n, &self.shares[share], self.allocated);
    }

    /// Share `share` as a server stores it: its bytes, then zeros to the allocated size.
    pub fn stored(&self, share: usize) -> Vec<u8> {
        let mut bytes = self.shares[share].clone();
        bytes.resize(self.allocated as usize, 0);
        bytes
    }
}

/// A test file of `len` bytes ([`plaintext`] seed 0), encoded `k`-of-`n` with `segment`-byte
/// segments.
pub fn file(len: usize, k: usize, n: usize, segment: u64) -> TestFile {
    let params = EncodingParams::new(k, n, segment).expect("test parameters");
    TestFile::encode(Key([9; 16]), params, plaintext(len, 0))
}
