//! The downloader against test servers: good, silent and corrupt ones, then fuzzed inputs
//! and fuzzed servers.

use super::*;
use crate::actor::{Service, Time};
use crate::local::LocalResponse;
use crate::protocol::testing::{damaged, remote_error};
use crate::protocol::MAX_DATA_PER_MESSAGE;
use cairn_codec::{encode_stream, EncodingParams, Key, ShareWriter};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// How a test server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Good,
    Silent,
    /// Flips a bit in every block it serves.
    CorruptBlocks,
}

struct Server {
    id: NodeId,
    shares: BTreeMap<usize, Vec<u8>>,
    behaviour: Behaviour,
    advisories: usize,
}

#[derive(Default)]
struct Shares(Vec<Vec<u8>>);

impl ShareWriter for Shares {
    fn write_at(&mut self, share: usize, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.resize(self.0.len().max(share + 1), Vec::new());
        let buf = &mut self.0[share];
        let end = offset as usize + data.len();
        buf.resize(buf.len().max(end), 0);
        buf[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

fn file(size: usize) -> (Vec<u8>, ChkCap, Vec<Vec<u8>>) {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let params = EncodingParams::new(3, 10, 1000).unwrap();
    let mut shares = Shares::default();
    let f = encode_stream(Key([5; 16]), params, size as u64, &data[..], &mut shares).unwrap();
    (data, f.cap, shares.0)
}

/// Runs a download against servers holding one share each (server i holds share i),
/// with virtual time; returns the output, the final response and the servers.
fn run(behaviours: &[Behaviour], size: usize) -> (Vec<u8>, Vec<u8>, LocalResponse, Vec<Server>) {
    let (data, cap, shares) = file(size);
    let mut servers: Vec<Server> = behaviours
        .iter()
        .enumerate()
        .map(|(i, &behaviour)| Server {
            id: crate::ids::NodeKey::from_seed([i as u8 + 1; 32]).id(),
            shares: BTreeMap::from([(i, shares[i].clone())]),
            behaviour,
            advisories: 0,
        })
        .collect();
    let client = Addr::new(
        crate::ids::NodeKey::from_seed([99; 32]).id(),
        Service::Download(crate::OpId(1)),
    );
    let ids = servers.iter().map(|s| s.id).collect();
    let mut d = Downloader::new(LocalId(7), cap.clone(), ids, Duration::from_secs(5));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut now = Time(0);
    let mut inbox: VecDeque<Input> = VecDeque::from([Input::Start]);
    let mut timers: BTreeMap<TimerId, Time> = BTreeMap::new();
    let (mut out, mut response) = (Vec::new(), None);
    for _ in 0..100_000 {
        let input = match inbox.pop_front() {
            Some(input) => input,
            None => match timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, at)| (*id, *at))
            {
                Some((id, at)) => {
                    timers.remove(&id);
                    now = at;
                    Input::Timer(id)
                }
                None => break,
            },
        };
        let mut ctx = Context::new(now, client, &mut rng);
        d.handle(input, &mut ctx);
        for effect in ctx.into_effects() {
            match effect {
                Effect::Send { to, msg } => {
                    let server = servers
                        .iter_mut()
                        .find(|s| s.id == to.node)
                        .expect("a known server");
                    if let Some(answer) = serve(server, &cap, msg) {
                        inbox.push_back(Input::Message {
                            from: to,
                            msg: answer,
                        });
                    }
                }
                Effect::SetTimer { id, at } => {
                    timers.insert(id, at);
                }
                Effect::CancelTimer { id } => {
                    timers.remove(&id);
                }
                Effect::Output { data, .. } => {
                    out.extend_from_slice(&data);
                    inbox.push_back(Input::OutputDrained);
                }
                Effect::Reply { response: r, .. } => response = Some(r),
                Effect::Stop => timers.clear(),
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }
    (data, out, response.expect("the download answered"), servers)
}

fn serve(server: &mut Server, cap: &ChkCap, msg: Message) -> Option<Message> {
    let Message::Request { id, body, .. } = msg else {
        return None;
    };
    if server.behaviour == Behaviour::Silent {
        return None;
    }
    let si = cap.key.storage_index();
    let body = match body {
        Request::List { si: asked } if asked == si => Response::Shares(
            server
                .shares
                .iter()
                .map(|(s, b)| (ShareNum(*s as u8), b.len() as u64))
                .collect(),
        ),
        Request::Read {
            share, offset, len, ..
        } => match server.shares.get(&share.index()) {
            Some(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let end = (start + len as usize).min(bytes.len());
                let mut data = bytes[start..end].to_vec();
                // Blocks are the only reads past the header at this size.
                if server.behaviour == Behaviour::CorruptBlocks && offset == 0x24 {
                    data[0] ^= 1;
                }
                Response::Data(data)
            }
            None => Response::Err(crate::protocol::RemoteError::NoSuchShare),
        },
        Request::AdviseCorrupt { .. } => {
            server.advisories += 1;
            Response::Ok
        }
        _ => Response::Err(crate::protocol::RemoteError::Unsupported),
    };
    Some(Message::Response { id, body })
}

use Behaviour::*;

#[test]
fn downloads_from_all_good_servers() {
    let (data, out, response, _) = run(&[Good; 10], 5000);
    assert!(
        matches!(response, LocalResponse::Downloaded(Ok(ref r)) if r.bytes == 5000 && r.faults.is_empty()),
        "{response:?}"
    );
    assert_eq!(out, data);
}

#[test]
fn survives_n_minus_k_silent_servers() {
    let mut b = [Silent; 10];
    b[2] = Good;
    b[5] = Good;
    b[9] = Good;
    let (data, out, response, _) = run(&b, 3001);
    assert!(
        matches!(response, LocalResponse::Downloaded(Ok(_))),
        "{response:?}"
    );
    assert_eq!(out, data);
}

#[test]
fn fails_clearly_with_too_few_servers_and_outputs_nothing() {
    let mut b = [Silent; 10];
    b[0] = Good;
    b[1] = Good;
    let (_, out, response, _) = run(&b, 3001);
    let LocalResponse::Downloaded(Err(DownloadError::NotEnoughShares { needed: 3, .. })) =
        &response
    else {
        panic!("{response:?}")
    };
    assert!(
        response_text(&response).contains("2 distinct shares found on 10 servers"),
        "{response:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn routes_around_corrupt_blocks_and_advises_the_server() {
    let mut b = [Good; 10];
    b[0] = CorruptBlocks;
    let (data, out, response, servers) = run(&b, 2500);
    let LocalResponse::Downloaded(Ok(receipt)) = &response else {
        panic!("{response:?}")
    };
    assert_eq!(out, data);
    assert_eq!(receipt.faults.len(), 1, "{:?}", receipt.faults);
    assert!(
        receipt.faults[0].contains("block hash of segment 0"),
        "{:?}",
        receipt.faults
    );
    assert_eq!(servers[0].advisories, 1);
}

#[test]
fn a_malformed_cap_is_refused_at_once() {
    let (_, mut cap, _) = file(100);
    cap.k = 0;
    let server = crate::ids::NodeKey::from_seed([1; 32]).id();
    let mut d = Downloader::new(LocalId(7), cap, vec![server], Duration::from_secs(5));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let me = Addr::new(server, Service::Download(crate::OpId(1)));
    let mut ctx = Context::new(Time(0), me, &mut rng);
    d.handle(Input::Start, &mut ctx);
    let effects = ctx.into_effects();
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

use crate::ids::NodeKey;
use crate::local::LocalRequest;
use crate::protocol::Announcement;
use proptest::prelude::*;
use proptest::sample::Index;

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

/// Any answer, of any kind: right or wrong for the request it claims to answer.
fn response() -> impl Strategy<Value = Response> {
    // Mostly share numbers the file has, so that they are tried.
    let share = prop_oneof![4 => 0u8..12, 1 => any::<u8>()].prop_map(ShareNum);
    let data = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => (0usize..5000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ];
    let vdrive = prop_oneof![
        Just(Ok(crate::vdrive::VdriveReply::Done)),
        ".{0,8}".prop_map(|p| Err(crate::vdrive::VdriveError::NotFound(p))),
    ];
    prop_oneof![
        1 => Just(Response::Ok),
        1 => proptest::collection::vec(share.clone(), 0..4).prop_map(|allocated| {
            Response::Allocated {
                already_have: vec![],
                allocated,
            }
        }),
        4 => data.prop_map(Response::Data),
        4 => proptest::collection::vec((share, any::<u64>()), 0..6).prop_map(Response::Shares),
        1 => vdrive.prop_map(Response::Vdrive),
        2 => remote_error().prop_map(Response::Err),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => response().prop_map(Body::Plain),
        1 => any::<u8>().prop_map(Body::Asked),
    ]
}

/// A request of any kind: a downloader serves none of them.
fn any_request() -> impl Strategy<Value = Request> {
    let si = any::<[u8; 16]>().prop_map(StorageIndex);
    let share = any::<u8>().prop_map(ShareNum);
    prop_oneof![
        Just(Request::Subscribe),
        (si.clone(), share.clone(), any::<u64>(), any::<u64>()).prop_map(
            |(si, share, offset, len)| Request::Read {
                si,
                share,
                offset,
                len
            }
        ),
        si.clone().prop_map(|si| Request::List { si }),
        (
            si.clone(),
            share.clone(),
            proptest::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(si, share, data)| Request::Write {
                si,
                share,
                offset: 0,
                data
            }),
        (si, share).prop_map(|(si, share)| Request::AdviseCorrupt {
            si,
            share,
            reason: "fuzz".into()
        }),
        Just(Request::Vdrive(crate::vdrive::VdriveOp::List {
            path: "/".into()
        })),
    ]
}

/// Announcements, signed or forged: a downloader listens to none.
fn announcements() -> impl Strategy<Value = Vec<Announcement>> {
    let one = (1u8..4, 0u64..3, any::<bool>()).prop_map(|(seed, seq, forge)| {
        let key = NodeKey::from_seed([seed; 32]);
        let mut a = Announcement::new(&key, format!("10.0.0.{seed}:1"), 100, seq);
        if forge {
            a.free_space += 1;
        }
        a
    });
    proptest::collection::vec(one, 0..3)
}

/// Bytes off the wire: noise, or the encoding of an answer with a few bytes flipped and
/// maybe cut short (which often still decodes, into something odd).
fn wire() -> impl Strategy<Value = Vec<u8>> {
    let msg = prop_oneof![
        (0u64..1 << 62, response()).prop_map(|(id, body)| Message::Response {
            id: RequestId(id),
            body
        }),
        any_request().prop_map(|body| Message::Request {
            id: RequestId(1),
            deadline: Time(u64::MAX),
            body
        }),
        announcements().prop_map(Message::Announcements),
    ];
    damaged(msg)
}

/// A cap: mostly one a parser accepts, sometimes one it would have refused.
fn chk_cap() -> impl Strategy<Value = ChkCap> {
    let shape = prop_oneof![
        8 => (1usize..12).prop_flat_map(|n| (1..=n, Just(n))),
        1 => prop_oneof![
            (0usize..300).prop_map(|n| (0, n)),
            (1usize..12).prop_map(|n| (n + 1, n)),
            (257usize..300).prop_map(|n| (3, n)),
        ],
    ];
    (any::<[u8; 16]>(), any::<[u8; 32]>(), shape, any::<u64>()).prop_map(
        |(key, ueb_hash, (k, n), size)| ChkCap {
            key: Key(key),
            ueb_hash,
            k,
            n,
            size,
        },
    )
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
        1 => (sender(), announcements()).prop_map(|(s, a)| Fuzz::Announcements(s, a)),
        2 => (sender(), wire()).prop_map(|(s, b)| Fuzz::Bytes(s, b)),
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
        prop_assert!(d.faults.len() <= n * servers.len());
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

fn file_with(size: usize, params: EncodingParams) -> (Vec<u8>, ChkCap, Vec<Vec<u8>>) {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let mut shares = Shares::default();
    let f = encode_stream(Key([6; 16]), params, size as u64, &data[..], &mut shares).unwrap();
    (data, f.cap, shares.0)
}

/// What a fuzzed server does to one answer.
#[derive(Clone, Debug)]
enum Fault {
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

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        12 => Just(Fault::Honest),
        1 => Just(Fault::Drop),
        1 => Just(Fault::Duplicate),
        1 => (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Fault::FlipBit(i, x)),
        1 => any::<Index>().prop_map(Fault::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..4).prop_map(Fault::Extend),
        1 => response().prop_map(Fault::Replace),
        1 => (1u64..4).prop_map(Fault::WrongId),
        1 => sender().prop_map(Fault::WrongSender),
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

/// Servers hold a real file's shares and answer through faults; garbage is mixed in.
struct Mixed {
    rig: Rig,
    cap: ChkCap,
    servers: Vec<Server>,
    inbox: Vec<Queued>,
    faults: Vec<Fault>,
    next_fault: usize,
}

impl Mixed {
    /// Queues the servers' answers to what the download sent, and the drain of its
    /// output (the local user drains at its own pace).
    fn carry_out(&mut self, effects: Vec<Effect>, honest: bool) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    let fault = match honest || self.faults.is_empty() {
                        true => Fault::Honest,
                        false => {
                            self.next_fault += 1;
                            self.faults[(self.next_fault - 1) % self.faults.len()].clone()
                        }
                    };
                    let server = self
                        .servers
                        .iter_mut()
                        .find(|s| s.id == to.node)
                        .expect("checked: a known server");
                    let Some(Message::Response { id, mut body }) = serve(server, &self.cap, msg)
                    else {
                        continue;
                    };
                    let mut from = to;
                    match (fault, &mut body) {
                        (Fault::Drop, _) => continue,
                        (Fault::Duplicate, _) => self.inbox.push(Queued::Message(
                            from,
                            Message::Response {
                                id,
                                body: body.clone(),
                            },
                        )),
                        (Fault::FlipBit(at, x), Response::Data(data)) if !data.is_empty() => {
                            let at = at.index(data.len());
                            data[at] ^= x;
                        }
                        (Fault::Truncate(at), Response::Data(data)) => {
                            data.truncate(at.index(data.len() + 1))
                        }
                        (Fault::Extend(more), Response::Data(data)) => data.extend(more),
                        (Fault::Replace(other), _) => body = other,
                        (Fault::WrongId(delta), _) => {
                            let id = RequestId(id.0.wrapping_add(delta));
                            let msg = Message::Response { id, body };
                            self.inbox.push(Queued::Message(from, msg));
                            continue;
                        }
                        (Fault::WrongSender(sender), _) => {
                            from = self.rig.addr(&sender, Some(to.node));
                        }
                        _ => {}
                    }
                    self.inbox
                        .push(Queued::Message(from, Message::Response { id, body }));
                }
                Effect::Output { .. } => self.inbox.push(Queued::Drained),
                _ => {}
            }
        }
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
        faults in proptest::collection::vec(fault(), 0..12),
        timeout_ms in 1u64..10_000,
        acts in proptest::collection::vec(act(), 1..100),
    ) {
        let params = EncodingParams::new(k, k + extra, segment).unwrap();
        let (data, cap, shares) = file_with(size, params);
        let mut servers: Vec<Server> = (0..server_count)
            .map(|i| Server {
                id: NodeId([i as u8 + 1; 32]),
                shares: BTreeMap::new(),
                behaviour: Good,
                advisories: 0,
            })
            .collect();
        // Each share on one server, some on a second too.
        for (share, bytes) in shares.iter().enumerate() {
            let (first, second) = &placement[share];
            servers[first.index(server_count)].shares.insert(share, bytes.clone());
            if let Some(second) = second {
                servers[second.index(server_count)].shares.insert(share, bytes.clone());
            }
        }
        let ids = servers.iter().map(|s| s.id).collect();
        let mut rig = Rig::new(cap.clone(), ids, Duration::from_millis(timeout_ms));
        rig.plaintext = Some(data.clone());
        let mut m = Mixed { rig, cap, servers, inbox: Vec::new(), faults, next_fault: 0 };
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
                prop_assert_eq!(receipt.bytes, data.len() as u64);
                prop_assert!(m.rig.out == data, "the output is not the file");
            }
            Some(LocalResponse::Downloaded(Err(_))) => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
