//! A small world for driving one actor by hand in unit tests: fake storage servers that
//! answer as the storage protocol says (with faults on demand), a local user that answers
//! pulls from a byte buffer, and timers, all in virtual time. Not a simulator: one actor, a
//! fixed latency, no network faults beyond what a fake server does.

use crate::actor::{Actor, Addr, Context, Effect, Input, Service, Time, TimerId};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::LocalResponse;
use crate::protocol::{Message, RemoteError, Request, RequestId, Response};
use cairn_codec::{ChkCap, EncodingParams, Key, ShareWriter};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// A test node id.
pub(crate) fn node(i: u8) -> NodeId {
    NodeId([i; 32])
}

/// What a fake server does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// Never answers anything.
    Silent,
    /// Stops answering anything once it has taken this many writes.
    SilentAfterWrites(usize),
    /// Answers writes with a disk error once it has taken this many.
    ErrorAfterWrites(usize),
    /// Answers every Allocate with an error other than Full.
    Broken,
    /// Answers everything, but only after two seconds (past any test's request timeout).
    Late,
    /// Answers everything twice.
    Duplicating,
}

/// A storage server that keeps shares in memory and answers at once.
pub(crate) struct FakeServer {
    pub capacity: u64,
    pub used: u64,
    pub incoming: BTreeMap<(StorageIndex, ShareNum), Vec<u8>>,
    pub complete: BTreeMap<(StorageIndex, ShareNum), Vec<u8>>,
    pub fault: Fault,
    pub writes: usize,
}

impl FakeServer {
    pub fn new(capacity: u64) -> Self {
        FakeServer {
            capacity,
            used: 0,
            incoming: BTreeMap::new(),
            complete: BTreeMap::new(),
            fault: Fault::None,
            writes: 0,
        }
    }

    fn silent(&self) -> bool {
        match self.fault {
            Fault::Silent => true,
            Fault::SilentAfterWrites(n) => self.writes >= n,
            _ => false,
        }
    }

    /// The answer to `body`, or `None` for no answer at all.
    fn handle(&mut self, body: Request) -> Option<Response> {
        if self.silent() {
            return None;
        }
        Some(match body {
            Request::Allocate {
                si,
                shares,
                share_size,
                ..
            } => self.allocate(si, shares, share_size),
            Request::Write {
                si,
                share,
                offset,
                data,
            } => self.write(si, share, offset, &data),
            Request::Close { si, share } => match self.incoming.remove(&(si, share)) {
                Some(bytes) => {
                    self.complete.insert((si, share), bytes);
                    Response::Ok
                }
                None => Response::Err(RemoteError::NotAllocated),
            },
            Request::Abort { si, share } => match self.incoming.remove(&(si, share)) {
                Some(bytes) => {
                    self.used -= bytes.len() as u64;
                    Response::Ok
                }
                None => Response::Err(RemoteError::NotAllocated),
            },
            _ => Response::Err(RemoteError::Unsupported),
        })
    }

    fn allocate(&mut self, si: StorageIndex, shares: Vec<ShareNum>, size: u64) -> Response {
        if self.fault == Fault::Broken {
            return Response::Err(RemoteError::Disk("simulated disk failure".into()));
        }
        let already_have: Vec<ShareNum> = self
            .complete
            .keys()
            .filter(|(s, _)| *s == si)
            .map(|&(_, share)| share)
            .collect();
        let new: Vec<ShareNum> = shares
            .into_iter()
            .filter(|&s| !self.complete.contains_key(&(si, s)))
            .filter(|&s| !self.incoming.contains_key(&(si, s)))
            .collect();
        let free = self.capacity - self.used;
        if new.len() as u64 * size > free {
            return Response::Err(RemoteError::Full { free });
        }
        for &share in &new {
            self.incoming.insert((si, share), vec![0; size as usize]);
            self.used += size;
        }
        Response::Allocated {
            already_have,
            allocated: new,
        }
    }

    fn write(&mut self, si: StorageIndex, share: ShareNum, offset: u64, data: &[u8]) -> Response {
        if matches!(self.fault, Fault::ErrorAfterWrites(n) if self.writes >= n) {
            return Response::Err(RemoteError::Disk("simulated write error".into()));
        }
        let Some(buf) = self.incoming.get_mut(&(si, share)) else {
            return Response::Err(RemoteError::NotAllocated);
        };
        let end = offset as usize + data.len();
        if end > buf.len() {
            return Response::Err(RemoteError::OutOfBounds {
                size: buf.len() as u64,
            });
        }
        buf[offset as usize..end].copy_from_slice(data);
        self.writes += 1;
        Response::Ok
    }
}

enum Event {
    Input(Input),
    Timer(TimerId),
}

/// The world one actor runs in. See the module docs.
pub(crate) struct World {
    pub now: Time,
    /// One-way delay of every message and pull.
    pub latency: Duration,
    pub servers: BTreeMap<NodeId, FakeServer>,
    /// What the local user uploads: pulls are answered from it.
    pub input: Vec<u8>,
    pub answer_pulls: bool,
    /// `(n, bytes)`: from the `n`th pull on, the input is `bytes` (a file changing under
    /// the upload).
    pub changed_input: Option<(usize, Vec<u8>)>,
    pub replies: Vec<LocalResponse>,
    pub stopped: bool,
    /// Every request sent to a storage server, in order.
    pub requests: Vec<(NodeId, Request)>,
    /// Every message sent elsewhere.
    pub other_sends: Vec<(Addr, Message)>,
    pub pulls: Vec<(u64, usize)>,
    pub spawned: Vec<(Service, Box<dyn Actor>)>,
    /// Writes sent whose answer has not reached the actor yet, and the most there ever were.
    pub writes_in_flight: usize,
    pub max_writes_in_flight: usize,
    write_ids: BTreeMap<RequestId, ()>,
    events: BTreeMap<(Time, u64), Event>,
    timers: BTreeMap<TimerId, (Time, u64)>,
    seq: u64,
    rng: ChaCha8Rng,
}

impl World {
    /// `count` servers (ids 1..=count), each with `capacity` bytes.
    pub fn new(count: u8, capacity: u64) -> Self {
        World {
            now: Time(0),
            latency: Duration::from_millis(5),
            servers: (1..=count)
                .map(|i| (node(i), FakeServer::new(capacity)))
                .collect(),
            input: Vec::new(),
            answer_pulls: true,
            changed_input: None,
            replies: Vec::new(),
            stopped: false,
            requests: Vec::new(),
            other_sends: Vec::new(),
            pulls: Vec::new(),
            spawned: Vec::new(),
            writes_in_flight: 0,
            max_writes_in_flight: 0,
            write_ids: BTreeMap::new(),
            events: BTreeMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(7),
        }
    }

    /// Servers with these ids instead of the default ones.
    pub fn with_servers(mut self, ids: &[NodeId], capacity: u64) -> Self {
        self.servers = ids
            .iter()
            .map(|&id| (id, FakeServer::new(capacity)))
            .collect();
        self
    }

    pub fn server_ids(&self) -> Vec<NodeId> {
        self.servers.keys().copied().collect()
    }

    /// Delivers `input` to the actor at `at`.
    pub fn schedule(&mut self, at: Time, input: Input) {
        self.seq += 1;
        self.events.insert((at, self.seq), Event::Input(input));
    }

    /// Starts the actor and runs it until it stops or nothing is left to happen.
    pub fn run(&mut self, actor: &mut dyn Actor, me: Addr) {
        let now = self.now;
        self.schedule(now, Input::Start);
        self.resume(actor, me);
    }

    /// Runs the actor on the events already scheduled, until it stops or none are left.
    pub fn resume(&mut self, actor: &mut dyn Actor, me: Addr) {
        for _ in 0..1_000_000 {
            if self.stopped {
                return;
            }
            let Some(((at, seq), event)) = self.events.pop_first() else {
                return;
            };
            self.now = at;
            let input = match event {
                Event::Input(input) => input,
                Event::Timer(id) if self.timers.get(&id) == Some(&(at, seq)) => {
                    self.timers.remove(&id);
                    Input::Timer(id)
                }
                Event::Timer(_) => continue,
            };
            self.step(actor, me, input);
        }
        panic!("the actor never stopped");
    }

    /// Hands one input to the actor and carries out its effects.
    pub fn step(&mut self, actor: &mut dyn Actor, me: Addr, input: Input) {
        if let Input::Message {
            msg: Message::Response { id, .. },
            ..
        } = &input
        {
            if self.write_ids.remove(id).is_some() {
                self.writes_in_flight -= 1;
            }
        }
        if std::env::var_os("TESTKIT_TRACE").is_some() {
            eprintln!("{:?} {input:?}", self.now);
        }
        let mut rng = self.rng.clone();
        let mut ctx = Context::new(self.now, me, &mut rng);
        actor.handle(input, &mut ctx);
        let effects = ctx.into_effects();
        self.rng = rng;
        for effect in effects {
            if std::env::var_os("TESTKIT_TRACE").is_some() {
                eprintln!("    -> {effect:?}");
            }
            self.apply(effect);
        }
    }

    fn apply(&mut self, effect: Effect) {
        let later = self.now.after(self.latency);
        match effect {
            Effect::Send { to, msg } => self.deliver(to, msg),
            Effect::SetTimer { id, at } => {
                self.seq += 1;
                self.timers.insert(id, (at, self.seq));
                self.events.insert((at, self.seq), Event::Timer(id));
            }
            Effect::CancelTimer { id } => {
                self.timers.remove(&id);
            }
            Effect::Reply { response, .. } => self.replies.push(response),
            Effect::Output { .. } => {}
            Effect::Pull { offset, max, .. } => {
                self.pulls.push((offset, max));
                if self
                    .changed_input
                    .as_ref()
                    .is_some_and(|(n, _)| self.pulls.len() > *n)
                {
                    if let Some((_, bytes)) = self.changed_input.take() {
                        self.input = bytes;
                    }
                }
                if self.answer_pulls {
                    let start = (offset as usize).min(self.input.len());
                    let end = (start + max).min(self.input.len());
                    let data = self.input[start..end].to_vec();
                    self.schedule(later, Input::Plaintext { offset, data });
                }
            }
            Effect::Spawn { service, actor, .. } => self.spawned.push((service, actor)),
            Effect::Stop => self.stopped = true,
            Effect::Learn { .. } => panic!("an upload learns no addresses"),
        }
    }

    /// A message to a fake storage server is answered after a round trip (if at all).
    fn deliver(&mut self, to: Addr, msg: Message) {
        let server = self.servers.get_mut(&to.node);
        let (Some(server), Service::Storage) = (server, to.service) else {
            self.other_sends.push((to, msg));
            return;
        };
        let Message::Request { id, deadline, body } = msg else {
            return;
        };
        self.requests.push((to.node, body.clone()));
        if matches!(body, Request::Write { .. }) {
            self.write_ids.insert(id, ());
            self.writes_in_flight += 1;
            self.max_writes_in_flight = self.max_writes_in_flight.max(self.writes_in_flight);
        }
        let arrival = self.now.after(self.latency);
        if arrival > deadline {
            return;
        }
        let fault = server.fault;
        let Some(body) = server.handle(body) else {
            return;
        };
        let from = Addr::new(to.node, Service::Storage);
        let msg = Message::Response { id, body };
        let back = match fault {
            Fault::Late => Duration::from_secs(2),
            _ => self.latency,
        };
        let at = arrival.after(back);
        if fault == Fault::Duplicating {
            let msg = msg.clone();
            self.schedule(at.after(self.latency), Input::Message { from, msg });
        }
        self.schedule(at, Input::Message { from, msg });
    }

    /// The only reply the actor gave.
    pub fn reply(&self) -> &LocalResponse {
        assert_eq!(
            self.replies.len(),
            1,
            "exactly one reply: {:?}",
            self.replies
        );
        &self.replies[0]
    }

    /// The complete shares of `cap`'s file on the fake servers: (share, server, bytes).
    pub fn shares(&self, cap: &ChkCap) -> Vec<(ShareNum, NodeId, Vec<u8>)> {
        let si = cap.key.storage_index();
        let mut out = Vec::new();
        for (&id, server) in &self.servers {
            for (&(s, share), bytes) in &server.complete {
                if s == si {
                    out.push((share, id, bytes.clone()));
                }
            }
        }
        out
    }

    /// Decodes `cap`'s file from the complete shares on the fake servers.
    pub fn download(&self, cap: &ChkCap) -> Result<Vec<u8>, cairn_codec::Error> {
        let mut seen = std::collections::BTreeSet::new();
        let sources: Vec<(usize, Vec<u8>)> = self
            .shares(cap)
            .into_iter()
            .filter(|(share, _, _)| seen.insert(*share))
            .map(|(share, _, bytes)| (share.index(), bytes))
            .collect();
        let mut out = Vec::new();
        cairn_codec::decode(cap, sources, &mut out)?;
        Ok(out)
    }

    /// Bytes the fake servers hold for uploads still in progress.
    pub fn incoming_bytes(&self) -> u64 {
        let incoming = self.servers.values().flat_map(|s| s.incoming.values());
        incoming.map(|b| b.len() as u64).sum()
    }
}

/// Test plaintext: `len` bytes of a simple pattern, different per `seed`.
pub(crate) fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// Every share of `data` as `codec::encode_stream` writes it, and the cap.
pub(crate) fn reference(key: Key, params: EncodingParams, data: &[u8]) -> (ChkCap, Vec<Vec<u8>>) {
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
    let mut shares = Shares(vec![Vec::new(); params.n]);
    let file = cairn_codec::encode_stream(key, params, data.len() as u64, data, &mut shares)
        .expect("test data encodes");
    (file.cap, shares.0)
}
