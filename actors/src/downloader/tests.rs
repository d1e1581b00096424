//! The downloader against real storage servers (good, silent and corrupting ones), then
//! fuzzed inputs and fuzzed servers.

use super::*;
use crate::actor::{OpId, Service, Time};
use crate::local::LocalResponse;
use crate::protocol::MAX_DATA_PER_MESSAGE;
use crate::testing::grid::{node, plaintext, Fault, Grid, Server, TestFile};
use crate::testing::strategies::{
    announcement, any_message, any_request, chk_cap, damaged, response, Focus,
};
use crate::testing::Driven;
use cairn_codec::{EncodingParams, Key};

/// A `size`-byte file, 3-of-10.
fn file(size: usize) -> TestFile {
    let params = EncodingParams::new(3, 10, 1000).unwrap();
    TestFile::encode(Key([5; 16]), params, plaintext(size, 5))
}

/// Downloads a `size`-byte file from servers holding one share each (server `i + 1` holds
/// share `i`), each with its fault; returns the grid after, and the file.
fn download(faults: &[Fault], size: usize) -> (Grid, TestFile) {
    let mut grid = Grid::new(faults.len() as u8, 1 << 20);
    let f = file(size);
    for (i, fault) in faults.iter().enumerate() {
        let server = node(i as u8 + 1);
        f.place(&mut grid, &[(i, server)]);
        grid.fault(server, fault.clone());
    }
    grid.op = Addr::new(node(99), Service::Download(OpId(1)));
    let mut d = Downloader::new(
        LocalId(7),
        f.cap.clone(),
        grid.ids(),
        Duration::from_secs(5),
    );
    grid.run(&mut d);
    assert!(grid.stopped.is_some(), "a download always ends");
    let quiet = grid.user.pulls.is_empty() && grid.spawned.is_empty();
    assert!(quiet, "a download pulls no plaintext and spawns nothing");
    (grid, f)
}

#[test]
fn downloads_from_all_good_servers() {
    let (grid, f) = download(&vec![Fault::None; 10], 5000);
    let response = grid.reply();
    assert!(
        matches!(response, LocalResponse::Downloaded(Ok(ref r)) if r.bytes == 5000 && r.faults.is_empty()),
        "{response:?}"
    );
    assert_eq!(grid.user.output, f.data);
}

#[test]
fn survives_n_minus_k_silent_servers() {
    let mut faults = vec![Fault::Silent; 10];
    for good in [2, 5, 9] {
        faults[good] = Fault::None;
    }
    let (grid, f) = download(&faults, 3001);
    let response = grid.reply();
    assert!(
        matches!(response, LocalResponse::Downloaded(Ok(_))),
        "{response:?}"
    );
    assert_eq!(grid.user.output, f.data);
}

#[test]
fn fails_clearly_with_too_few_servers_and_outputs_nothing() {
    let mut faults = vec![Fault::Silent; 10];
    faults[0] = Fault::None;
    faults[1] = Fault::None;
    let (grid, _) = download(&faults, 3001);
    let response = grid.reply();
    let LocalResponse::Downloaded(Err(DownloadError::NotEnoughShares { needed: 3, .. })) = response
    else {
        panic!("{response:?}")
    };
    assert!(
        response_text(response).contains("2 distinct shares found on 10 servers"),
        "{response:?}"
    );
    assert!(grid.user.output.is_empty());
}

#[test]
fn routes_around_corrupt_blocks_and_advises_the_server() {
    // Seven servers corrupt a share's first block (its first read past the header, at this
    // size), so whichever shares the download starts with, some are corrupt.
    let mut faults = vec![Fault::CorruptsReadsAt(0x24); 10];
    for good in [3, 6, 9] {
        faults[good] = Fault::None;
    }
    let (grid, f) = download(&faults, 2500);
    let response = grid.reply();
    let LocalResponse::Downloaded(Ok(receipt)) = response else {
        panic!("{response:?}")
    };
    assert_eq!(grid.user.output, f.data);
    assert!(!receipt.faults.is_empty(), "corrupt shares were read");
    for fault in &receipt.faults {
        assert!(fault.contains("block hash of segment 0"), "{fault}");
    }
    let advised: u64 = grid
        .servers
        .values()
        .map(|s| s.status().advisories_received)
        .sum();
    assert_eq!(
        advised,
        receipt.faults.len() as u64,
        "each corrupt share advised"
    );
}

#[test]
fn rot_in_every_share_still_reads_where_each_segment_has_k_good_blocks() {
    // Four shares of a 3-of-10 file (k + 1), four segments of 1002 bytes (blocks of 334);
    // share i has one bad block, in segment i. Setting a share aside for good would leave
    // two by segment 1; a share with a bad block is good for the segments after it.
    let faults: Vec<Fault> = (0..4)
        .map(|i| Fault::CorruptsReadsAt(0x24 + 334 * i))
        .collect();
    let (grid, f) = download(&faults, 4 * 1002);
    let response = grid.reply();
    let LocalResponse::Downloaded(Ok(receipt)) = response else {
        panic!("{response:?}")
    };
    assert_eq!(grid.user.output, f.data);
    assert_eq!(receipt.faults.len(), 4, "{:?}", receipt.faults);
    for (segment, fault) in receipt.faults.iter().enumerate() {
        assert!(
            fault.contains(&format!("block hash of segment {segment} ")),
            "{fault}"
        );
    }
}

#[test]
fn a_malformed_cap_is_refused_at_once() {
    let mut cap = file(100).cap;
    cap.k = 0;
    let server = node(1);
    let d = Downloader::new(LocalId(7), cap, vec![server], Duration::from_secs(5));
    let me = Addr::new(server, Service::Download(OpId(1)));
    let effects = Driven::new(d, me, Time(0), 1).input(Input::Start);
    let [Effect::Reply {
        response: LocalResponse::Downloaded(Err(DownloadError::Corrupt(why))),
        ..
    }, Effect::Stop] = &effects[..]
    else {
        panic!("{effects:?}")
    };
    assert!(why.contains("k=0"), "{why}");
}

fn response_text(r: &LocalResponse) -> String {
    match r {
        LocalResponse::Downloaded(Err(e)) => e.to_string(),
        other => format!("{other:?}"),
    }
}

// ---- fuzzing: arbitrary and malformed inputs ----

use crate::local::LocalRequest;
use crate::protocol::Announcement;
use proptest::prelude::*;
use proptest::sample::Index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Who a fuzzed message claims to come from.
#[derive(Clone, Debug)]
enum Sender {
    /// The server the request it answers went to (any server, for a random id).
    Asked,
    /// One of the download's servers.
    Server(Index),
    /// One of the download's servers' nodes, but another of its services.
    WrongService(Index),
    /// A node the download does not know.
    Stranger(u8),
}

fn sender() -> impl Strategy<Value = Sender> {
    prop_oneof![
        6 => Just(Sender::Asked),
        2 => any::<Index>().prop_map(Sender::Server),
        1 => any::<Index>().prop_map(Sender::WrongService),
        1 => any::<u8>().prop_map(Sender::Stranger),
    ]
}

/// Which request a fuzzed answer (or timer) claims to be about.
#[derive(Clone, Debug)]
enum Answering {
    /// One the download really sent (picked among all it has sent).
    Sent(Index),
    /// The latest it sent.
    Latest,
    Random(u64),
}

fn answering() -> impl Strategy<Value = Answering> {
    prop_oneof![
        3 => any::<Index>().prop_map(Answering::Sent),
        3 => Just(Answering::Latest),
        1 => any::<u64>().prop_map(Answering::Random),
    ]
}

/// A fuzzed answer's body; `Asked` is garbage as long as the read it answers asked for.
#[derive(Clone, Debug)]
enum Body {
    Plain(Response),
    Asked(u8),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => response(Focus::Storage).prop_map(Body::Plain),
        1 => any::<u8>().prop_map(Body::Asked),
    ]
}

/// One input to a download in a fuzzed run.
#[derive(Clone, Debug)]
enum Fuzz {
    /// Let this many milliseconds pass, firing the timers that fall due.
    Wait(u32),
    Respond(Sender, Answering, Body),
    Request(Sender, Request),
    Announcements(Sender, Vec<Announcement>),
    /// Bytes off the wire: delivered only if they decode.
    Bytes(Sender, Vec<u8>),
    /// A timer: one for a request sent (fired early), or a stray.
    Timer(Answering),
    OutputDrained,
    Plaintext(u64, Vec<u8>),
    Local,
}

fn fuzz() -> impl Strategy<Value = Fuzz> {
    prop_oneof![
        3 => prop_oneof![3 => 0u32..2000, 1 => 0u32..30_000].prop_map(Fuzz::Wait),
        10 => (sender(), answering(), body()).prop_map(|(s, a, b)| Fuzz::Respond(s, a, b)),
        1 => (sender(), any_request()).prop_map(|(s, r)| Fuzz::Request(s, r)),
        1 => (sender(), proptest::collection::vec(announcement(), 0..3))
            .prop_map(|(s, a)| Fuzz::Announcements(s, a)),
        2 => (sender(), damaged(any_message(Focus::Storage))).prop_map(|(s, b)| Fuzz::Bytes(s, b)),
        2 => answering().prop_map(Fuzz::Timer),
        1 => Just(Fuzz::OutputDrained),
        1 => (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(o, d)| Fuzz::Plaintext(o, d)),
        1 => Just(Fuzz::Local),
    ]
}

fn fuzz_me() -> Addr {
    Addr::new(NodeId([99; 32]), Service::Download(crate::OpId(1)))
}

/// A download under fuzzing, with the host around it: a clock, the timers set, and what
/// was sent and output, to check every effect against.
struct Rig {
    d: Downloader,
    now: Time,
    rng: ChaCha8Rng,
    servers: Vec<NodeId>,
    timeout: Duration,
    timers: BTreeMap<TimerId, Time>,
    /// Every request sent, with its server and body.
    sent: Vec<(NodeId, RequestId, Request)>,
    sent_ids: BTreeSet<RequestId>,
    reply: Option<LocalResponse>,
    stopped: bool,
    /// The plaintext output so far, and the outputs not drained yet.
    out: Vec<u8>,
    undrained: usize,
    /// The file's plaintext, when the test knows it: all output must be a prefix of it.
    plaintext: Option<Vec<u8>>,
}

impl Rig {
    fn new(cap: ChkCap, servers: Vec<NodeId>, timeout: Duration) -> Self {
        let d = Downloader::new(LocalId(7), cap, servers.clone(), timeout);
        Rig {
            d,
            now: Time(0),
            rng: ChaCha8Rng::seed_from_u64(3),
            servers,
            timeout,
            timers: BTreeMap::new(),
            sent: Vec::new(),
            sent_ids: BTreeSet::new(),
            reply: None,
            stopped: false,
            out: Vec::new(),
            undrained: 0,
            plaintext: None,
        }
    }

    /// Hands the download one input; checks every effect and records it.
    fn input(&mut self, input: Input) -> Result<Vec<Effect>, TestCaseError> {
        // Only an answer to a request in flight, from the server asked, is heard.
        let heard = match &input {
            Input::Message {
                from,
                msg: Message::Response { id, .. },
            } => {
                self.d.requests.get(*from, *id).is_some()
                    && from.service == Service::Storage
                    && self.sent.iter().any(|s| s.1 == *id && s.0 == from.node)
            }
            _ => true,
        };
        let mut ctx = Context::new(self.now, fuzz_me(), &mut self.rng);
        self.d.handle(input, &mut ctx);
        let effects = ctx.into_effects();
        if self.stopped || !heard {
            prop_assert!(
                effects.is_empty(),
                "effects after Stop, or of a stray answer: {:?}",
                effects
            );
        }
        let (n, si) = (self.d.cap.n, self.d.si);
        for (i, effect) in effects.iter().enumerate() {
            match effect {
                Effect::Send {
                    to,
                    msg: Message::Request { id, deadline, body },
                } => {
                    prop_assert_eq!(to.service, Service::Storage);
                    prop_assert!(self.servers.contains(&to.node), "sent to a stranger");
                    prop_assert_eq!(*deadline, self.now.after(self.timeout));
                    prop_assert!(self.sent_ids.insert(*id), "request id {:?} reused", id);
                    match body {
                        Request::List { si: asked } => prop_assert_eq!(*asked, si),
                        Request::Read {
                            si: asked,
                            share,
                            len,
                            ..
                        } => {
                            prop_assert_eq!(*asked, si);
                            prop_assert!(share.index() < n);
                            prop_assert!(*len <= MAX_DATA_PER_MESSAGE);
                        }
                        Request::AdviseCorrupt {
                            si: asked, share, ..
                        } => {
                            prop_assert_eq!(*asked, si);
                            prop_assert!(share.index() < n);
                        }
                        other => prop_assert!(false, "a download sent {:?}", other),
                    }
                    self.sent.push((to.node, *id, body.clone()));
                }
                Effect::SetTimer { id, at } => {
                    prop_assert_eq!(*id, SWEEP, "the sweep is the download's one timer");
                    prop_assert!(self.now <= *at && *at <= self.now.after(self.timeout));
                    self.timers.insert(*id, *at);
                }
                Effect::CancelTimer { id } => {
                    prop_assert!(self.timers.remove(id).is_some(), "cancelled {:?}", id);
                }
                Effect::Output { to, data } => {
                    prop_assert_eq!(*to, LocalId(7));
                    prop_assert!(self.reply.is_none(), "output after the reply");
                    self.out.extend_from_slice(data);
                    self.undrained += 1;
                    match &self.plaintext {
                        None => prop_assert!(false, "output of unverifiable bytes"),
                        Some(p) => prop_assert!(
                            p.starts_with(&self.out),
                            "output is not the file's plaintext"
                        ),
                    }
                }
                Effect::Reply { to, response } => {
                    prop_assert_eq!(*to, LocalId(7));
                    prop_assert!(self.reply.is_none(), "answered twice");
                    prop_assert!(matches!(response, LocalResponse::Downloaded(_)));
                    self.reply = Some(response.clone());
                }
                Effect::Stop => {
                    prop_assert!(self.reply.is_some(), "stopped without answering");
                    prop_assert_eq!(i + 1, effects.len(), "Stop is the last effect");
                    self.stopped = true;
                }
                other => prop_assert!(false, "unexpected effect {:?}", other),
            }
        }
        self.check()?;
        Ok(effects)
    }

    /// What must hold between inputs: every wait is timed, and state is bounded by the
    /// servers and the file's k and N.
    fn check(&self) -> Result<(), TestCaseError> {
        let d = &self.d;
        let (k, n) = (d.cap.k, d.cap.n.min(256));
        if let Some(earliest) = d.requests.deadlines().map(|(_, at)| at).min() {
            let sweep = self.timers.get(&SWEEP).copied();
            prop_assert!(
                sweep.is_some_and(|at| at <= earliest),
                "a request in flight is not timed: sweep {:?}, earliest deadline {:?}",
                sweep,
                earliest
            );
        }
        if self.stopped {
            prop_assert!(d.requests.is_empty());
            prop_assert!(self.timers.is_empty());
        }
        let servers: BTreeSet<NodeId> = self.servers.iter().copied().collect();
        prop_assert!(d.listing.is_subset(&servers));
        prop_assert!(d.requests.len() <= servers.len() + k);
        prop_assert!(d.readers.len() <= k);
        if let Phase::Streaming(stream) = &d.phase {
            prop_assert!(stream.blocks.keys().all(|s| d.readers.contains_key(s)));
        }
        for (share, holders) in &d.candidates {
            prop_assert!(share.index() < n);
            let distinct: BTreeSet<&NodeId> = holders.iter().collect();
            prop_assert_eq!(distinct.len(), holders.len());
            prop_assert!(holders.iter().all(|h| servers.contains(h)));
        }
        // A copy fails once, or (bad blocks) once a segment it is used for.
        let segments = usize::try_from(d.cap.size).unwrap_or(usize::MAX).max(1);
        let bound = (n * servers.len()).saturating_mul(segments.saturating_add(1));
        prop_assert!(d.faults.len() <= bound);
        let damaged: BTreeSet<_> = d.damaged.iter().collect();
        prop_assert_eq!(damaged.len(), d.damaged.len());
        prop_assert!(self.undrained <= 1 || self.plaintext.is_none());
        Ok(())
    }

    fn answering(&self, a: &Answering) -> (RequestId, Option<NodeId>) {
        match a {
            Answering::Sent(i) if !self.sent.is_empty() => {
                let (node, id, _) = &self.sent[i.index(self.sent.len())];
                (*id, Some(*node))
            }
            Answering::Latest if !self.sent.is_empty() => {
                let (node, id, _) = self.sent.last().expect("not empty");
                (*id, Some(*node))
            }
            Answering::Sent(i) => (RequestId(i.index(100) as u64), None),
            Answering::Latest => (RequestId(0), None),
            Answering::Random(id) => (RequestId(*id), None),
        }
    }

    fn addr(&self, sender: &Sender, asked: Option<NodeId>) -> Addr {
        let pick = |i: &Index| match self.servers.len() {
            0 => NodeId([1; 32]),
            len => self.servers[i.index(len)],
        };
        match (sender, asked) {
            (Sender::Asked, Some(node)) => Addr::new(node, Service::Storage),
            (Sender::Asked, None) => Addr::new(NodeId([1; 32]), Service::Storage),
            (Sender::Server(i), _) => Addr::new(pick(i), Service::Storage),
            (Sender::WrongService(i), _) => Addr::new(pick(i), Service::Client),
            (Sender::Stranger(b), _) => Addr::new(NodeId([*b; 32]), Service::Storage),
        }
    }

    /// Moves the clock on, firing the timers that fall due, in order.
    fn wait(&mut self, d: Duration) -> Result<(), TestCaseError> {
        let until = self.now.after(d);
        while let Some((id, at)) = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= until)
            .min_by_key(|(_, at)| **at)
            .map(|(id, at)| (*id, *at))
        {
            self.timers.remove(&id);
            self.now = self.now.max(at);
            self.input(Input::Timer(id))?;
        }
        self.now = until;
        Ok(())
    }

    /// One fuzzed input; what it makes the download send is returned for a test's
    /// servers to answer.
    fn fuzz(&mut self, step: Fuzz) -> Result<Vec<Effect>, TestCaseError> {
        match step {
            Fuzz::Wait(ms) => {
                self.wait(Duration::from_millis(ms.into()))?;
                Ok(Vec::new())
            }
            Fuzz::Respond(sender, answering, body) => {
                let (id, asked) = self.answering(&answering);
                let from = self.addr(&sender, asked);
                let body = match body {
                    Body::Plain(r) => r,
                    Body::Asked(b) => {
                        let len = self
                            .sent
                            .iter()
                            .find_map(|(_, sent, body)| match body {
                                Request::Read { len, .. } if *sent == id => Some(*len),
                                _ => None,
                            })
                            .unwrap_or(10);
                        Response::Data(vec![b; len.min(5000) as usize])
                    }
                };
                self.input(Input::Message {
                    from,
                    msg: Message::Response { id, body },
                })
            }
            Fuzz::Request(sender, body) => {
                let from = self.addr(&sender, None);
                let (id, deadline) = (RequestId(5), self.now.after(self.timeout));
                let msg = Message::Request { id, deadline, body };
                let effects = self.input(Input::Message { from, msg })?;
                prop_assert!(effects.is_empty(), "a download serves nothing");
                Ok(effects)
            }
            Fuzz::Announcements(sender, list) => {
                let from = self.addr(&sender, None);
                let msg = Message::Announcements(list);
                let effects = self.input(Input::Message { from, msg })?;
                prop_assert!(effects.is_empty(), "a download listens to no announcement");
                Ok(effects)
            }
            Fuzz::Bytes(sender, bytes) => {
                let Ok(msg) = Message::decode(&bytes) else {
                    return Ok(Vec::new());
                };
                let asked = match &msg {
                    Message::Response { id, .. } => {
                        self.sent.iter().find(|s| s.1 == *id).map(|s| s.0)
                    }
                    _ => None,
                };
                let from = self.addr(&sender, asked);
                self.input(Input::Message { from, msg })
            }
            Fuzz::Timer(answering) => {
                // The sweep fires early, or a stray timer.
                let id = match self.answering(&answering) {
                    (id, Some(_)) if id.0 % 2 == 0 => SWEEP,
                    (id, _) => TimerId(id.0),
                };
                self.timers.remove(&id);
                self.input(Input::Timer(id))
            }
            Fuzz::OutputDrained => {
                self.undrained = self.undrained.saturating_sub(1);
                self.input(Input::OutputDrained)
            }
            Fuzz::Plaintext(offset, data) => {
                let effects = self.input(Input::Plaintext { offset, data })?;
                prop_assert!(effects.is_empty());
                Ok(effects)
            }
            Fuzz::Local => {
                let request = LocalRequest::Status;
                let effects = self.input(Input::Local {
                    id: LocalId(8),
                    request,
                })?;
                prop_assert!(effects.is_empty());
                Ok(effects)
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Only garbage comes back: nothing is ever output, and the download ends with one
    /// error (at the latest once every request has timed out).
    #[test]
    fn fuzzed_garbage_is_never_output_and_ends_in_one_error(
        cap in chk_cap(),
        server_count in 0u8..6,
        timeout_ms in 1u64..10_000,
        steps in proptest::collection::vec(fuzz(), 1..80),
    ) {
        let servers = (1..=server_count).map(|b| NodeId([b; 32])).collect();
        let mut rig = Rig::new(cap, servers, Duration::from_millis(timeout_ms));
        rig.input(Input::Start)?;
        for step in steps {
            rig.fuzz(step)?;
        }
        // Every request in flight times out, and those it leads to; then the download
        // must have given up.
        for _ in 0..10_000 {
            let Some(&at) = rig.timers.values().min() else { break };
            rig.wait(at.since(rig.now))?;
        }
        prop_assert!(rig.timers.is_empty());
        prop_assert!(rig.out.is_empty());
        prop_assert!(
            matches!(rig.reply, Some(LocalResponse::Downloaded(Err(_)))),
            "{:?}",
            rig.reply
        );
        prop_assert!(rig.stopped);
    }
}

/// What a fuzzed server does to one answer: faults of single answers, drawn in turn, where
/// the grid's `Fault` is one server's behaviour for a whole run.
#[derive(Clone, Debug)]
enum Mangling {
    Honest,
    Drop,
    Duplicate,
    FlipBit(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    /// Answers with something else altogether.
    Replace(Response),
    /// Answers under another request's id.
    WrongId(u64),
    /// The answer comes from another address.
    WrongSender(Sender),
}

fn mangling() -> impl Strategy<Value = Mangling> {
    prop_oneof![
        12 => Just(Mangling::Honest),
        1 => Just(Mangling::Drop),
        1 => Just(Mangling::Duplicate),
        1 => (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Mangling::FlipBit(i, x)),
        1 => any::<Index>().prop_map(Mangling::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..4).prop_map(Mangling::Extend),
        1 => response(Focus::Storage).prop_map(Mangling::Replace),
        1 => (1u64..4).prop_map(Mangling::WrongId),
        1 => sender().prop_map(Mangling::WrongSender),
    ]
}

/// What a step of the mixed run does.
#[derive(Clone, Debug)]
enum Act {
    /// Delivers one queued answer (or drain), not necessarily the oldest.
    Deliver(Index),
    Fuzz(Fuzz),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => any::<Index>().prop_map(Act::Deliver),
        2 => fuzz().prop_map(Act::Fuzz),
    ]
}

enum Queued {
    Message(Addr, Message),
    Drained,
}

/// Real servers hold a file's shares and answer through manglings; garbage is mixed in.
struct Mixed {
    rig: Rig,
    servers: BTreeMap<NodeId, Server>,
    inbox: Vec<Queued>,
    manglings: Vec<Mangling>,
    next_mangling: usize,
}

impl Mixed {
    /// Queues the servers' answers to what the download sent, and the drain of its
    /// output (the local user drains at its own pace).
    fn carry_out(&mut self, effects: Vec<Effect>, honest: bool) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    let mangling = self.next_mangling(honest);
                    let server = self
                        .servers
                        .get_mut(&to.node)
                        .expect("checked: a known server");
                    let input = Input::Message {
                        from: fuzz_me(),
                        msg,
                    };
                    for (id, body) in server.serve(self.rig.now, to, input) {
                        self.mangle(to, id, body, mangling.clone());
                    }
                }
                Effect::Output { .. } => self.inbox.push(Queued::Drained),
                _ => {}
            }
        }
    }

    /// What happens to the next answer: the manglings in turn, until the servers turn honest.
    fn next_mangling(&mut self, honest: bool) -> Mangling {
        if honest || self.manglings.is_empty() {
            return Mangling::Honest;
        }
        self.next_mangling += 1;
        self.manglings[(self.next_mangling - 1) % self.manglings.len()].clone()
    }

    /// Queues a server's answer, mangled.
    fn mangle(&mut self, to: Addr, id: RequestId, mut body: Response, mangling: Mangling) {
        let mut from = to;
        match (mangling, &mut body) {
            (Mangling::Drop, _) => return,
            (Mangling::Duplicate, _) => self.inbox.push(Queued::Message(
                from,
                Message::Response {
                    id,
                    body: body.clone(),
                },
            )),
            (Mangling::FlipBit(at, x), Response::Data(data)) if !data.is_empty() => {
                let at = at.index(data.len());
                data[at] ^= x;
            }
            (Mangling::Truncate(at), Response::Data(data)) => {
                data.truncate(at.index(data.len() + 1))
            }
            (Mangling::Extend(more), Response::Data(data)) => data.extend(more),
            (Mangling::Replace(other), _) => body = other,
            (Mangling::WrongId(delta), _) => {
                let id = RequestId(id.0.wrapping_add(delta));
                let msg = Message::Response { id, body };
                self.inbox.push(Queued::Message(from, msg));
                return;
            }
            (Mangling::WrongSender(sender), _) => {
                from = self.rig.addr(&sender, Some(to.node));
            }
            _ => {}
        }
        self.inbox
            .push(Queued::Message(from, Message::Response { id, body }));
    }

    fn deliver(&mut self, at: usize, honest: bool) -> Result<(), TestCaseError> {
        let effects = match self.inbox.remove(at) {
            Queued::Message(from, msg) => self.rig.input(Input::Message { from, msg })?,
            Queued::Drained => {
                self.rig.undrained -= 1;
                self.rig.input(Input::OutputDrained)?
            }
        };
        self.carry_out(effects, honest);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Servers hold a real file but answer through faults (lost, duplicated, damaged,
    /// misaddressed, reordered), with garbage mixed in: whatever is output is the file's
    /// plaintext, never more than one segment waits undrained, and once the servers turn
    /// honest the download ends with one answer — the whole file if it says so.
    #[test]
    fn fuzzed_servers_never_get_unverified_bytes_output(
        size in 1usize..3000,
        k in 1usize..4,
        extra in 0usize..3,
        segment in 200u64..1200,
        server_count in 1usize..5,
        placement in proptest::collection::vec((any::<Index>(), any::<Option<Index>>()), 6),
        manglings in proptest::collection::vec(mangling(), 0..12),
        timeout_ms in 1u64..10_000,
        acts in proptest::collection::vec(act(), 1..100),
    ) {
        let params = EncodingParams::new(k, k + extra, segment).unwrap();
        let f = TestFile::encode(Key([6; 16]), params, plaintext(size, 6));
        let mut servers: Vec<Server> = (1..=server_count as u8)
            .map(|i| Server::new(i, u64::MAX))
            .collect();
        // Each share on one server, some on a second too.
        for (share, (first, second)) in placement.iter().enumerate().take(params.n) {
            let first = first.index(server_count);
            f.place_on(&mut servers[first], share);
            match second.map(|second| second.index(server_count)) {
                Some(second) if second != first => f.place_on(&mut servers[second], share),
                _ => {}
            }
        }
        let servers: BTreeMap<NodeId, Server> =
            (1..).map(node).zip(servers).collect();
        let ids = servers.keys().copied().collect();
        let mut rig = Rig::new(f.cap.clone(), ids, Duration::from_millis(timeout_ms));
        rig.plaintext = Some(f.data.clone());
        let mut m = Mixed { rig, servers, inbox: Vec::new(), manglings, next_mangling: 0 };
        let effects = m.rig.input(Input::Start)?;
        m.carry_out(effects, false);
        for act in acts {
            match act {
                Act::Deliver(_) if m.inbox.is_empty() => {}
                Act::Deliver(i) => {
                    let at = i.index(m.inbox.len());
                    m.deliver(at, false)?;
                }
                // The local user drains only what was output (see `Queued::Drained`).
                Act::Fuzz(Fuzz::OutputDrained) => {}
                Act::Fuzz(step) => {
                    let effects = m.rig.fuzz(step)?;
                    m.carry_out(effects, false);
                }
            }
        }
        // The servers turn honest: everything queued arrives, then the timers fire.
        for _ in 0..100_000 {
            if m.rig.stopped {
                break;
            }
            if !m.inbox.is_empty() {
                m.deliver(0, true)?;
                continue;
            }
            let Some((id, at)) = m
                .rig
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, at)| (*id, *at))
            else {
                break;
            };
            m.rig.timers.remove(&id);
            m.rig.now = m.rig.now.max(at);
            let effects = m.rig.input(Input::Timer(id))?;
            m.carry_out(effects, true);
        }
        prop_assert!(m.rig.stopped, "the download neither finished nor failed");
        match &m.rig.reply {
            Some(LocalResponse::Downloaded(Ok(receipt))) => {
                prop_assert_eq!(receipt.bytes, f.data.len() as u64);
                prop_assert!(m.rig.out == f.data, "the output is not the file");
            }
            Some(LocalResponse::Downloaded(Err(_))) => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
