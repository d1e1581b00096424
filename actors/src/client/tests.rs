//! The client driven by hand: inputs in, effects checked.

use super::*;
use crate::local::UploadError;
use crate::protocol::RemoteError;
use crate::testing::grid::{plaintext, Grid};
use crate::testing::strategies::{server_key, signed_announcement};
use crate::vdrive::VdriveReply;
use cairn_codec::{EncodingParams, Key};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const INTERVAL: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);

fn introducer() -> Addr {
    Addr::new(NodeId([200; 32]), Service::Introducer)
}

fn vdrive() -> Addr {
    Addr::new(NodeId([201; 32]), Service::Vdrive)
}

fn me() -> Addr {
    Addr::new(NodeId([202; 32]), Service::Client)
}

fn at(secs: u64) -> Time {
    Time(0).after(Duration::from_secs(secs))
}

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: TIMEOUT,
        resubscribe_interval: INTERVAL,
        upload: UploadConfig::default(),
    }
}

fn client() -> Client {
    Client::new(Some(introducer()), Some(vdrive()), config())
}

fn step(client: &mut Client, now: Time, input: Input) -> Vec<Effect> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = Context::new(now, me(), &mut rng);
    client.handle(input, &mut ctx);
    ctx.into_effects()
}

/// The requests among `effects`: (to, id, body).
fn requests(effects: &[Effect]) -> Vec<(Addr, RequestId, Request)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Message::Request { id, body, .. },
            } => Some((*to, *id, body.clone())),
            _ => None,
        })
        .collect()
}

fn replies(effects: &[Effect]) -> Vec<LocalResponse> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { response, .. } => Some(response.clone()),
            _ => None,
        })
        .collect()
}

/// Hands the client announcements from its introducer; what it tells the host (addresses
/// to learn, nothing else).
fn announce(client: &mut Client, now: Time, list: Vec<Announcement>) -> Vec<(NodeId, String)> {
    let msg = Message::Announcements(list);
    let effects = step(
        client,
        now,
        Input::Message {
            from: introducer(),
            msg,
        },
    );
    effects
        .into_iter()
        .map(|e| match e {
            Effect::Learn { node, address } => (node, address),
            other => panic!("announcements made the client do {other:?}"),
        })
        .collect()
}

fn answer(
    client: &mut Client,
    now: Time,
    from: Addr,
    id: RequestId,
    body: Response,
) -> Vec<Effect> {
    let msg = Message::Response { id, body };
    step(client, now, Input::Message { from, msg })
}

fn local(client: &mut Client, now: Time, request: LocalRequest) -> Vec<Effect> {
    step(
        client,
        now,
        Input::Local {
            id: LocalId(5),
            request,
        },
    )
}

fn status(client: &mut Client, now: Time) -> StatusReport {
    match &replies(&local(client, now, LocalRequest::Status))[..] {
        [LocalResponse::Status(report)] => report.clone(),
        other => panic!("expected one status reply, got {other:?}"),
    }
}

#[test]
fn subscribes_on_start_and_again_every_interval() {
    let mut c = client();
    let effects = step(&mut c, at(0), Input::Start);
    let sent = requests(&effects);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0, &sent[0].2), (introducer(), &Request::Subscribe));
    assert!(effects.iter().any(|e| matches!(e,
        Effect::SetTimer { id, at: t } if *id == RESUBSCRIBE && *t == at(60))));
    let again = requests(&step(&mut c, at(60), Input::Timer(RESUBSCRIBE)));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].2, Request::Subscribe);
    assert_ne!(again[0].1, sent[0].1, "a fresh request id");
}

#[test]
fn with_several_introducers_any_one_up_keeps_the_client_learning() {
    let second = Addr::new(NodeId([210; 32]), Service::Introducer);
    let stranger = Addr::new(NodeId([211; 32]), Service::Introducer);
    let mut c = client().with_more_introducers([second, introducer()]);
    let sent = requests(&step(&mut c, at(0), Input::Start));
    let to: Vec<Addr> = sent.iter().map(|(to, _, _)| *to).collect();
    assert_eq!(to, vec![introducer(), second], "each subscribed to, once");
    // The first introducer is down; the second still tells of servers.
    let msg = Message::Announcements(vec![signed_announcement(1, 1)]);
    step(&mut c, at(1), Input::Message { from: second, msg });
    assert_eq!(c.servers().len(), 1);
    let msg = Message::Announcements(vec![signed_announcement(2, 1)]);
    step(
        &mut c,
        at(1),
        Input::Message {
            from: stranger,
            msg,
        },
    );
    assert_eq!(
        c.servers().len(),
        1,
        "not from an introducer of the client's"
    );
    let second_id = sent[1].1;
    answer(&mut c, at(2), second, second_id, Response::Ok);
    assert!(
        status(&mut c, at(3)).introducer_connected,
        "one introducer answers"
    );
}

#[test]
fn without_an_introducer_nothing_is_sent() {
    let mut c = Client::new(None, None, config());
    assert!(step(&mut c, at(0), Input::Start).is_empty());
    // Announcements can come only from an introducer.
    let msg = Message::Announcements(vec![signed_announcement(1, 1)]);
    step(
        &mut c,
        at(1),
        Input::Message {
            from: introducer(),
            msg,
        },
    );
    assert!(c.servers().is_empty());
}

#[test]
fn keeps_the_newest_verified_announcement_of_each_server() {
    let mut c = client();
    let mut forged = signed_announcement(3, 1);
    forged.figures.free_space += 1;
    announce(
        &mut c,
        at(1),
        vec![signed_announcement(1, 1), signed_announcement(2, 5), forged],
    );
    assert_eq!(c.servers().len(), 2, "the forged one is dropped");
    let moved = Announcement::new(&server_key(2), "10.9.9.9:1".into(), 7, 6);
    announce(&mut c, at(2), vec![signed_announcement(1, 0), moved]);
    let report = status(&mut c, at(3));
    let by_id: BTreeMap<NodeId, &ServerStatus> = report.servers.iter().map(|s| (s.id, s)).collect();
    assert_eq!(
        by_id[&server_key(1).id()].address,
        "10.0.0.1:9000",
        "an older seq is ignored"
    );
    assert_eq!(
        by_id[&server_key(2).id()].address,
        "10.9.9.9:1",
        "a newer seq replaces"
    );
    assert_eq!(by_id[&server_key(2).id()].figures.free_space, 7);
    // Announcements from anyone but the introducer are not listened to.
    let from = Addr::new(server_key(4).id(), Service::Storage);
    let msg = Message::Announcements(vec![signed_announcement(4, 1)]);
    step(&mut c, at(4), Input::Message { from, msg });
    assert_eq!(c.servers().len(), 2);
}

#[test]
fn the_host_learns_the_address_of_each_newer_announcement() {
    let mut c = client();
    let learnt = announce(
        &mut c,
        at(1),
        vec![signed_announcement(1, 1), signed_announcement(2, 1)],
    );
    let address = |seed: u8| format!("10.0.0.{seed}:9000");
    assert_eq!(
        learnt,
        vec![
            (server_key(1).id(), address(1)),
            (server_key(2).id(), address(2))
        ]
    );
    // A newer announcement is passed on at the same address too (the host may have given up
    // on a server that restarted there), and at a new one; a repeat is not.
    let moved = Announcement::new(&server_key(2), "10.9.9.9:1".into(), 7, 2);
    let learnt = announce(&mut c, at(2), vec![signed_announcement(1, 2), moved]);
    assert_eq!(
        learnt,
        vec![
            (server_key(1).id(), address(1)),
            (server_key(2).id(), "10.9.9.9:1".to_string())
        ]
    );
    assert!(announce(&mut c, at(3), vec![signed_announcement(1, 2)]).is_empty());
}

#[test]
fn announcements_the_client_does_not_believe_teach_the_host_no_address() {
    let mut c = client();
    // From a storage server rather than the introducer: anyone could send these.
    let from = Addr::new(server_key(4).id(), Service::Storage);
    let msg = Message::Announcements(vec![signed_announcement(4, 1)]);
    let effects = step(&mut c, at(1), Input::Message { from, msg });
    assert!(effects.is_empty(), "{effects:?}");
    // From the introducer, but forged, or older than what is known.
    let mut forged = signed_announcement(3, 1);
    forged.address = "10.6.6.6:1".into();
    assert!(announce(&mut c, at(2), vec![forged]).is_empty());
    announce(&mut c, at(3), vec![signed_announcement(5, 9)]);
    let stale = Announcement::new(&server_key(5), "10.6.6.6:2".into(), 7, 8);
    assert!(announce(&mut c, at(4), vec![stale]).is_empty());
}

#[test]
fn a_server_is_reachable_while_its_announcements_are_fresh() {
    let mut c = client();
    announce(&mut c, at(0), vec![signed_announcement(1, 1)]);
    assert!(status(&mut c, at(180)).servers[0].reachable);
    assert!(
        !status(&mut c, at(181)).servers[0].reachable,
        "three intervals passed"
    );
    // The same announcement repeated (a dead server the introducer still lists) does not
    // count; a newer one does.
    announce(&mut c, at(200), vec![signed_announcement(1, 1)]);
    assert!(!status(&mut c, at(200)).servers[0].reachable);
    announce(&mut c, at(201), vec![signed_announcement(1, 2)]);
    assert!(status(&mut c, at(201)).servers[0].reachable);
}

#[test]
fn freshness_counts_the_intervals_the_client_really_resubscribes_at() {
    // A zero interval is raised to the minimum: servers stay reachable for three of those.
    let config = ClientConfig {
        resubscribe_interval: Duration::ZERO,
        ..config()
    };
    let mut c = Client::new(Some(introducer()), None, config);
    let sent = requests(&step(&mut c, at(0), Input::Start));
    answer(&mut c, at(0), introducer(), sent[0].1, Response::Ok);
    announce(&mut c, at(0), vec![signed_announcement(1, 1)]);
    let report = status(&mut c, at(3));
    assert!(report.servers[0].reachable);
    assert!(
        report.introducer_connected,
        "within an interval and a timeout"
    );
    assert!(!status(&mut c, at(4)).servers[0].reachable);
}

#[test]
fn the_introducer_is_connected_while_it_answers() {
    let mut c = client();
    let sent = requests(&step(&mut c, at(0), Input::Start));
    assert!(!status(&mut c, at(0)).introducer_connected);
    // An answer from someone else does not count.
    answer(&mut c, at(1), vdrive(), sent[0].1, Response::Ok);
    assert!(!status(&mut c, at(1)).introducer_connected);
    answer(&mut c, at(1), introducer(), sent[0].1, Response::Ok);
    assert!(status(&mut c, at(1)).introducer_connected);
    assert!(status(&mut c, at(71)).introducer_connected);
    assert!(
        !status(&mut c, at(72)).introducer_connected,
        "an interval and a timeout"
    );
}

#[test]
fn the_server_table_is_bounded_and_forgets_the_stalest() {
    let mut c = client().with_server_limit(2);
    announce(&mut c, at(0), vec![signed_announcement(1, 1)]);
    announce(&mut c, at(1), vec![signed_announcement(2, 1)]);
    announce(&mut c, at(2), vec![signed_announcement(1, 2)]);
    announce(&mut c, at(3), vec![signed_announcement(3, 1)]);
    let mut expected = vec![server_key(1).id(), server_key(3).id()];
    expected.sort();
    assert_eq!(c.servers(), expected);
}

#[test]
fn an_upload_runs_in_a_spawned_uploader() {
    let mut c = client();
    let keys: Vec<u8> = (1..=5).collect();
    announce(
        &mut c,
        at(0),
        keys.iter().map(|&k| signed_announcement(k, 1)).collect(),
    );
    let params = EncodingParams::new(2, 5, 1000).unwrap();
    let data = plaintext(3000, 1);
    let request = LocalRequest::Upload {
        key: Key([9; 16]),
        params,
        happy: 4,
        size: data.len() as u64,
    };
    let mut effects = local(&mut c, at(1), request);
    let Some(Effect::Spawn {
        service, mut actor, ..
    }) = effects.pop()
    else {
        panic!("expected a spawn, got {effects:?}");
    };
    assert_eq!(service, Service::Upload(OpId(1)));
    // The grid's servers are the ones announced: server i's key is seeded with i.
    let mut grid = Grid::new(5, 1 << 20);
    grid.user.input = data.clone();
    grid.op = Addr::new(me().node, service);
    grid.run(actor.as_mut());
    let LocalResponse::Uploaded(Ok(receipt)) = grid.reply() else {
        panic!("{:?}", grid.replies);
    };
    assert_eq!(receipt.happiness, 5);
    assert_eq!(grid.decode(&receipt.cap).unwrap(), data);
}

#[test]
fn an_upload_with_no_servers_known_fails_in_its_uploader() {
    let mut c = client();
    let request = LocalRequest::Upload {
        key: Key([9; 16]),
        params: EncodingParams::default(),
        happy: 7,
        size: 1000,
    };
    let Some(Effect::Spawn {
        mut actor, service, ..
    }) = local(&mut c, at(1), request).pop()
    else {
        panic!("expected a spawn");
    };
    let mut grid = Grid::new(0, 0);
    grid.op = Addr::new(me().node, service);
    grid.run(actor.as_mut());
    assert!(matches!(
        grid.reply(),
        LocalResponse::Uploaded(Err(UploadError::NotHappy { known: 0, .. }))
    ));
}

#[test]
fn each_transfer_gets_its_own_operation() {
    let mut c = client();
    let cap = cairn_codec::ChkCap {
        key: Key([1; 16]),
        ueb_hash: [2; 32],
        k: 3,
        n: 10,
        size: 1000,
    };
    let first = local(&mut c, at(1), LocalRequest::Download { cap: cap.clone() });
    let second = local(&mut c, at(1), LocalRequest::Download { cap });
    let services: Vec<Service> = first
        .iter()
        .chain(&second)
        .filter_map(|e| match e {
            Effect::Spawn { service, .. } => Some(*service),
            _ => None,
        })
        .collect();
    assert_eq!(
        services,
        vec![Service::Download(OpId(1)), Service::Download(OpId(2))]
    );
}

#[test]
fn each_operation_is_handed_the_local_request_it_was_spawned_for() {
    let mut c = client();
    let cap = cairn_codec::ChkCap {
        key: Key([1; 16]),
        ueb_hash: [2; 32],
        k: 3,
        n: 10,
        size: 1000,
    };
    let effects = local(&mut c, at(1), LocalRequest::Download { cap });
    let handed: Vec<Option<LocalId>> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { local, .. } => Some(*local),
            _ => None,
        })
        .collect();
    // `local` asks as request 5; the client does not answer it itself.
    assert_eq!(handed, vec![Some(LocalId(5))]);
    assert!(replies(&effects).is_empty(), "{effects:?}");
}

#[test]
fn vdrive_operations_are_forwarded_and_answered() {
    let mut c = client();
    let op = VdriveOp::Mkdir { path: "/a".into() };
    let sent = requests(&local(&mut c, at(1), LocalRequest::Vdrive(op.clone())));
    assert_eq!(sent.len(), 1);
    let (to, id, body) = sent[0].clone();
    assert_eq!((to, body), (vdrive(), Request::Vdrive(op)));
    // From the wrong address, or the wrong kind of answer: ignored.
    assert!(answer(&mut c, at(2), introducer(), id, Response::Ok).is_empty());
    assert!(answer(&mut c, at(2), vdrive(), id, Response::Data(vec![])).is_empty());
    let ok = Response::Vdrive(Ok(VdriveReply::Done));
    let effects = answer(&mut c, at(2), vdrive(), id, ok.clone());
    assert_eq!(
        replies(&effects),
        vec![LocalResponse::Vdrive(Ok(VdriveReply::Done))]
    );
    assert!(
        answer(&mut c, at(2), vdrive(), id, ok).is_empty(),
        "answered once"
    );
}

#[test]
fn a_vdrive_refusal_is_an_error() {
    let mut c = client();
    let op = VdriveOp::Lookup { path: "/a".into() };
    let sent = requests(&local(&mut c, at(1), LocalRequest::Vdrive(op)));
    let effects = answer(
        &mut c,
        at(2),
        vdrive(),
        sent[0].1,
        Response::Err(RemoteError::Unsupported),
    );
    let [LocalResponse::Vdrive(Err(VdriveError::Unreachable(msg)))] = &replies(&effects)[..] else {
        panic!("{effects:?}");
    };
    assert!(msg.contains("refused"), "{msg}");
}

#[test]
fn a_silent_vdrive_times_out() {
    let mut c = client();
    let op = VdriveOp::List { path: "/".into() };
    let effects = local(&mut c, at(1), LocalRequest::Vdrive(op));
    let Some(&Effect::SetTimer { id, at: when }) = effects
        .iter()
        .find(|e| matches!(e, Effect::SetTimer { .. }))
    else {
        panic!("no timer");
    };
    assert_eq!((id, when), (SWEEP, at(11)));
    let effects = step(&mut c, when, Input::Timer(SWEEP));
    let [LocalResponse::Vdrive(Err(VdriveError::Unreachable(msg)))] = &replies(&effects)[..] else {
        panic!("{effects:?}");
    };
    assert!(msg.contains("no answer within"), "{msg}");
}

#[test]
fn without_a_vdrive_operations_fail_at_once() {
    let mut c = Client::new(Some(introducer()), None, config());
    let op = VdriveOp::List { path: "/".into() };
    let effects = local(&mut c, at(1), LocalRequest::Vdrive(op));
    assert!(requests(&effects).is_empty());
    assert!(matches!(
        &replies(&effects)[..],
        [LocalResponse::Vdrive(Err(VdriveError::Unreachable(_)))]
    ));
}

#[test]
fn stray_inputs_are_ignored() {
    let mut c = client();
    step(&mut c, at(0), Input::Start);
    let junk = [
        Input::Timer(TimerId(99)),
        Input::Plaintext {
            offset: 0,
            data: vec![1],
        },
        Input::OutputDrained,
        Input::Message {
            from: introducer(),
            msg: Message::Response {
                id: RequestId(12345),
                body: Response::Ok,
            },
        },
        Input::Message {
            from: vdrive(),
            msg: Message::Request {
                id: RequestId(1),
                deadline: at(5),
                body: Request::Subscribe,
            },
        },
    ];
    for input in junk {
        assert!(step(&mut c, at(1), input).is_empty());
    }
}

// ---- fuzzing: arbitrary and malformed inputs ----

use crate::testing::strategies::{
    announcement, any_message, any_request, chk_cap, damaged, response, vdrive_op, Focus,
};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeSet;

/// Who a fuzzed message claims to come from.
#[derive(Clone, Debug)]
enum Sender {
    Introducer,
    Vdrive,
    /// The introducer's node, but another of its services.
    IntroducerNodeStorage,
    /// Some storage server.
    Stranger(u8),
}

impl Sender {
    fn addr(&self) -> Addr {
        match self {
            Sender::Introducer => introducer(),
            Sender::Vdrive => vdrive(),
            Sender::IntroducerNodeStorage => Addr::new(introducer().node, Service::Storage),
            Sender::Stranger(n) => Addr::new(server_key(*n).id(), Service::Storage),
        }
    }
}

fn sender() -> impl Strategy<Value = Sender> {
    prop_oneof![
        4 => Just(Sender::Introducer),
        3 => Just(Sender::Vdrive),
        1 => Just(Sender::IntroducerNodeStorage),
        1 => (1u8..8).prop_map(Sender::Stranger),
    ]
}

/// A local request of the fuzzed kind (the local id is the step's number).
#[derive(Clone, Debug)]
enum LocalKind {
    Status,
    Vdrive(VdriveOp),
    Download(cairn_codec::ChkCap),
    Upload {
        params: EncodingParams,
        happy: usize,
        size: u64,
    },
}

impl LocalKind {
    fn request(self) -> LocalRequest {
        match self {
            LocalKind::Status => LocalRequest::Status,
            LocalKind::Vdrive(op) => LocalRequest::Vdrive(op),
            LocalKind::Download(cap) => LocalRequest::Download { cap },
            LocalKind::Upload {
                params,
                happy,
                size,
            } => LocalRequest::Upload {
                key: Key([9; 16]),
                params,
                happy,
                size,
            },
        }
    }
}

fn local_kind() -> impl Strategy<Value = LocalKind> {
    // Encoding parameters as given by a user: not necessarily valid.
    let params = (0usize..8, 0usize..8, prop_oneof![0u64..3, 100u64..2000]).prop_map(
        |(k, n, max_segment_size)| EncodingParams {
            k,
            n,
            max_segment_size,
        },
    );
    prop_oneof![
        3 => Just(LocalKind::Status),
        4 => vdrive_op().prop_map(LocalKind::Vdrive),
        1 => chk_cap().prop_map(LocalKind::Download),
        1 => (params, 0usize..8, 0u64..5000)
            .prop_map(|(params, happy, size)| LocalKind::Upload { params, happy, size }),
    ]
}

/// Which request a fuzzed answer claims to answer.
#[derive(Clone, Debug)]
enum Answering {
    /// One the client really sent (picked among all it has sent).
    Sent(Index),
    Random(u64),
}

/// One input to the client in a fuzzed run.
#[derive(Clone, Debug)]
enum Fuzz {
    /// Let this many milliseconds pass, firing the timers that fall due.
    Wait(u32),
    Start,
    /// A timer, whether or not the client set it.
    Timer(u64),
    Announcements(Sender, Vec<Announcement>),
    Respond(Sender, Answering, Response),
    Request(Sender, Request),
    /// Bytes off the wire: delivered only if they decode.
    Bytes(Sender, Vec<u8>),
    Plaintext(u64, Vec<u8>),
    OutputDrained,
    Local(LocalKind),
}

fn fuzz() -> impl Strategy<Value = Fuzz> {
    let answering = prop_oneof![
        4 => any::<Index>().prop_map(Answering::Sent),
        1 => any::<u64>().prop_map(Answering::Random),
    ];
    let wait = prop_oneof![3 => 0u32..2000, 1 => 0u32..120_000];
    prop_oneof![
        4 => wait.prop_map(Fuzz::Wait),
        1 => Just(Fuzz::Start),
        1 => prop_oneof![0u64..3, any::<u64>()].prop_map(Fuzz::Timer),
        3 => (sender(), proptest::collection::vec(announcement(), 0..4))
            .prop_map(|(from, list)| Fuzz::Announcements(from, list)),
        5 => (sender(), answering, response(Focus::Vdrive)).prop_map(|(from, id, body)| Fuzz::Respond(from, id, body)),
        1 => (sender(), any_request()).prop_map(|(from, body)| Fuzz::Request(from, body)),
        2 => (sender(), damaged(any_message(Focus::Vdrive))).prop_map(|(from, bytes)| Fuzz::Bytes(from, bytes)),
        1 => (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(offset, data)| Fuzz::Plaintext(offset, data)),
        1 => Just(Fuzz::OutputDrained),
        4 => local_kind().prop_map(Fuzz::Local),
    ]
}

/// A client under fuzzing, with the host around it: a clock, the timers the client set, and
/// what it has sent and been asked, to check every effect against.
struct Rig {
    client: Client,
    now: Time,
    rng: ChaCha8Rng,
    started: bool,
    /// The timers the client has set and that have not fired.
    timers: BTreeMap<TimerId, Time>,
    /// Every request the client sent: to, id, deadline.
    sent: Vec<(Addr, RequestId, Time)>,
    sent_ids: BTreeSet<RequestId>,
    /// Local vdrive requests not answered yet.
    waiting: BTreeSet<LocalId>,
    answered: BTreeSet<LocalId>,
    /// Operations spawned so far.
    ops: BTreeSet<OpId>,
    /// Servers the introducer has sent verifying announcements of.
    announced: BTreeSet<NodeId>,
    /// The seq known of each server, to check it never goes back while the server is known.
    seqs: BTreeMap<NodeId, u64>,
}

impl Rig {
    fn new(client: Client) -> Self {
        Rig {
            client,
            now: at(0),
            rng: ChaCha8Rng::seed_from_u64(7),
            started: false,
            timers: BTreeMap::new(),
            sent: Vec::new(),
            sent_ids: BTreeSet::new(),
            waiting: BTreeSet::new(),
            answered: BTreeSet::new(),
            ops: BTreeSet::new(),
            announced: BTreeSet::new(),
            seqs: BTreeMap::new(),
        }
    }

    /// Hands the client one input; checks every effect and carries it out. `local` is the
    /// local request this input is, if any: the only one it may be answered at once.
    fn input(
        &mut self,
        input: Input,
        local: Option<LocalId>,
    ) -> Result<Vec<Effect>, TestCaseError> {
        let mut ctx = Context::new(self.now, me(), &mut self.rng);
        self.client.handle(input, &mut ctx);
        let effects = ctx.into_effects();
        let timeout = self.client.config.request_timeout;
        for effect in &effects {
            match effect {
                Effect::Send {
                    to,
                    msg: Message::Request { id, deadline, body },
                } => {
                    match body {
                        Request::Subscribe => prop_assert!(self.client.introducers.contains(to)),
                        Request::Vdrive(_) => prop_assert_eq!(Some(*to), self.client.vdrive),
                        other => prop_assert!(false, "the client sent {:?}", other),
                    }
                    prop_assert_eq!(*deadline, self.now.after(timeout));
                    prop_assert!(self.sent_ids.insert(*id), "request id {:?} reused", id);
                    self.sent.push((*to, *id, *deadline));
                }
                Effect::SetTimer { id, at } => {
                    prop_assert!(*id == RESUBSCRIBE || *id == SWEEP, "timer {:?}", id);
                    prop_assert!(*at >= self.now);
                    self.timers.insert(*id, *at);
                }
                Effect::CancelTimer { id } => {
                    self.timers.remove(id);
                }
                Effect::Reply { to, response } => {
                    prop_assert!(self.answered.insert(*to), "{:?} answered twice", to);
                    let was_waiting = self.waiting.remove(to);
                    prop_assert!(
                        was_waiting || Some(*to) == local,
                        "a reply to {:?}, which is not waiting",
                        to
                    );
                    if was_waiting {
                        prop_assert!(matches!(response, LocalResponse::Vdrive(_)));
                    }
                }
                Effect::Spawn {
                    service,
                    local: handed,
                    ..
                } => {
                    let op = match service {
                        Service::Upload(op)
                        | Service::Download(op)
                        | Service::Check(op)
                        | Service::Repair(op) => *op,
                        other => return Err(TestCaseError::fail(format!("spawned {other:?}"))),
                    };
                    prop_assert!(self.ops.insert(op), "operation {:?} spawned twice", op);
                    // An operation is spawned only for the local request being handled, and
                    // takes it over: the client must not answer it as well.
                    prop_assert!(
                        handed.is_some() && *handed == local,
                        "{:?} for {:?}",
                        service,
                        handed
                    );
                    if let Some(id) = handed {
                        prop_assert!(
                            self.answered.insert(*id),
                            "{:?} answered and handed over",
                            id
                        );
                    }
                }
                Effect::Learn { node, .. } => {
                    prop_assert!(
                        self.announced.contains(node),
                        "learnt {:?}, never announced",
                        node
                    )
                }
                other => prop_assert!(false, "unexpected effect {:?}", other),
            }
        }
        Ok(effects)
    }

    /// Moves the clock on, firing the timers that fall due, in order.
    fn wait(&mut self, d: Duration) -> Result<(), TestCaseError> {
        self.now = self.now.after(d);
        self.fire_due()
    }

    fn fire_due(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..100 {
            let due = self
                .timers
                .iter()
                .filter(|(_, at)| **at <= self.now)
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| *id);
            let Some(id) = due else {
                return Ok(());
            };
            self.timers.remove(&id);
            self.input(Input::Timer(id), None)?;
        }
        Err(TestCaseError::fail(
            "timers keep falling due without time passing",
        ))
    }

    /// What must hold between inputs.
    fn check(&mut self, max_servers: usize) -> Result<(), TestCaseError> {
        let c = &self.client;
        // The grid picture: bounded, verified, only from the introducer, never going back.
        prop_assert!(c.servers.len() <= max_servers);
        self.seqs.retain(|node, _| c.servers.contains_key(node));
        // A full table may have forgotten a server and heard of it again, older, within one
        // input: its seq is free to go back then (forgetting is what bounds the table).
        let full = c.servers.len() == max_servers;
        for (node, known) in &c.servers {
            prop_assert_eq!(*node, known.announcement.node);
            prop_assert!(known.announcement.verify());
            prop_assert!(known.heard <= self.now);
            prop_assert!(self.announced.contains(node));
            let seq = self.seqs.entry(*node).or_insert(known.announcement.seq);
            prop_assert!(
                full || *seq <= known.announcement.seq,
                "a server's seq went back"
            );
            *seq = known.announcement.seq;
        }
        // Requests in flight: only ones really sent, none past its deadline (the sweep timer
        // has fired), and the sweep timer set for the earliest.
        let in_flight: Vec<(RequestId, Time)> = c.requests.deadlines().collect();
        for (id, deadline) in &in_flight {
            prop_assert!(self.sent_ids.contains(id));
            prop_assert!(*deadline > self.now, "{:?} is past its deadline", id);
        }
        if let Some(earliest) = in_flight.iter().map(|(_, d)| *d).min() {
            let sweep = self.timers.get(&SWEEP).copied();
            prop_assert!(
                sweep.is_some_and(|at| at <= earliest),
                "no sweep before {:?} (sweep {:?})",
                earliest,
                sweep
            );
        }
        let vdrive_ops: Vec<LocalId> = c
            .requests
            .iter()
            .filter_map(|(_, _, p)| match p {
                Purpose::Vdrive(local) => Some(*local),
                Purpose::Subscribe | Purpose::Dir(_) => None,
            })
            .collect();
        for local in &vdrive_ops {
            prop_assert!(self.waiting.contains(local));
        }
        prop_assert_eq!(vdrive_ops.len(), self.waiting.len());
        // Once started with an introducer, a resubscription is always ahead.
        if self.started && !c.introducers.is_empty() {
            prop_assert!(self.timers.contains_key(&RESUBSCRIBE));
        }
        prop_assert!(self.timers.len() <= 2);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn fuzzed_inputs_leave_the_client_sane_and_bounded(
        steps in proptest::collection::vec(fuzz(), 1..60),
        has_introducer in prop::bool::weighted(0.8),
        has_vdrive in prop::bool::weighted(0.8),
        max_servers in 1usize..6,
        timeout_ms in prop_oneof![1 => Just(0u64), 6 => 1u64..20_000],
        interval_ms in prop_oneof![1 => 0u64..1000, 3 => 0u64..90_000],
    ) {
        let config = ClientConfig {
            request_timeout: Duration::from_millis(timeout_ms),
            resubscribe_interval: Duration::from_millis(interval_ms),
            upload: UploadConfig::default(),
        };
        let client = Client::new(
            has_introducer.then(introducer),
            has_vdrive.then(vdrive),
            config,
        )
        .with_server_limit(max_servers);
        let mut rig = Rig::new(client);
        // The host starts every actor first.
        rig.input(Input::Start, None)?;
        rig.started = true;
        rig.fire_due()?;
        rig.check(max_servers)?;
        for (n, step) in steps.into_iter().enumerate() {
            let local_id = LocalId(n as u64);
            match step {
                Fuzz::Wait(ms) => rig.wait(Duration::from_millis(ms.into()))?,
                Fuzz::Start => {
                    rig.input(Input::Start, None)?;
                }
                Fuzz::Timer(t) => {
                    // A timer the client set fires early; any other is a stray.
                    rig.timers.remove(&TimerId(t));
                    let effects = rig.input(Input::Timer(TimerId(t)), None)?;
                    if t > 1 {
                        prop_assert!(effects.is_empty(), "{:?}", effects);
                    }
                }
                Fuzz::Announcements(from, list) => {
                    let believed = from.addr() == introducer() && has_introducer;
                    if believed {
                        rig.announced.extend(list.iter().filter(|a| a.verify()).map(|a| a.node));
                    }
                    let msg = Message::Announcements(list);
                    let effects = rig.input(Input::Message { from: from.addr(), msg }, None)?;
                    // Only the introducer's announcements teach the host addresses.
                    prop_assert!(
                        effects.iter().all(|e| believed && matches!(e, Effect::Learn { .. })),
                        "{:?}",
                        effects
                    );
                }
                Fuzz::Respond(from, answering, body) => {
                    let id = match answering {
                        Answering::Sent(i) if !rig.sent.is_empty() => rig.sent[i.index(rig.sent.len())].1,
                        Answering::Sent(i) => RequestId(i.index(1000) as u64),
                        Answering::Random(id) => RequestId(id),
                    };
                    let msg = Message::Response { id, body };
                    let effects = rig.input(Input::Message { from: from.addr(), msg }, None)?;
                    prop_assert!(
                        effects.iter().all(|e| matches!(e, Effect::Reply { .. })),
                        "{:?}",
                        effects
                    );
                }
                Fuzz::Request(from, body) => {
                    let msg = Message::Request { id: RequestId(n as u64), deadline: rig.now.after(TIMEOUT), body };
                    let effects = rig.input(Input::Message { from: from.addr(), msg }, None)?;
                    prop_assert!(effects.is_empty(), "a client serves nothing: {:?}", effects);
                }
                Fuzz::Bytes(from, bytes) => {
                    let Ok(msg) = Message::decode(&bytes) else { continue };
                    let believed = from.addr() == introducer() && has_introducer;
                    let announcements = matches!(msg, Message::Announcements(_));
                    if let Message::Announcements(list) = &msg {
                        if believed {
                            rig.announced.extend(list.iter().filter(|a| a.verify()).map(|a| a.node));
                        }
                    }
                    let quiet = !matches!(msg, Message::Response { .. });
                    let effects = rig.input(Input::Message { from: from.addr(), msg }, None)?;
                    if quiet {
                        let learns = believed && announcements;
                        prop_assert!(
                            effects.iter().all(|e| learns && matches!(e, Effect::Learn { .. })),
                            "{:?}",
                            effects
                        );
                    }
                }
                Fuzz::Plaintext(offset, data) => {
                    let effects = rig.input(Input::Plaintext { offset, data }, None)?;
                    prop_assert!(effects.is_empty(), "{:?}", effects);
                }
                Fuzz::OutputDrained => {
                    let effects = rig.input(Input::OutputDrained, None)?;
                    prop_assert!(effects.is_empty(), "{:?}", effects);
                }
                Fuzz::Local(kind) => {
                    let is_vdrive = matches!(kind, LocalKind::Vdrive(_));
                    let is_status = matches!(kind, LocalKind::Status);
                    if is_vdrive && has_vdrive {
                        rig.waiting.insert(local_id);
                    }
                    let request = kind.request();
                    let effects = rig.input(Input::Local { id: local_id, request }, Some(local_id))?;
                    if is_status {
                        let [Effect::Reply { response: LocalResponse::Status(report), .. }] = &effects[..] else {
                            return Err(TestCaseError::fail(format!("status answered {effects:?}")));
                        };
                        let ids: Vec<NodeId> = report.servers.iter().map(|s| s.id).collect();
                        prop_assert_eq!(ids, rig.client.servers());
                        // Freshness is counted in the intervals the client really resubscribes
                        // at, whatever the configuration asked for.
                        let interval = Duration::from_millis(interval_ms).max(MIN_RESUBSCRIBE_INTERVAL);
                        for server in &report.servers {
                            let heard = rig.client.servers[&server.id].heard;
                            let fresh = rig.now.since(heard) <= interval * FRESH_INTERVALS;
                            prop_assert_eq!(server.reachable, fresh, "{:?}", server);
                        }
                        let patience = interval + Duration::from_millis(timeout_ms);
                        let connected = rig.client.introducer_answered
                            .is_some_and(|at| rig.now.since(at) <= patience);
                        prop_assert_eq!(report.introducer_connected, connected);
                    } else if is_vdrive && has_vdrive {
                        prop_assert!(matches!(
                            &requests(&effects)[..],
                            [(to, _, Request::Vdrive(_))] if *to == vdrive()
                        ), "{:?}", effects);
                        prop_assert!(replies(&effects).is_empty());
                    } else if is_vdrive {
                        prop_assert!(matches!(
                            &effects[..],
                            [Effect::Reply { response: LocalResponse::Vdrive(Err(_)), .. }]
                        ), "{:?}", effects);
                    } else {
                        // A transfer: one operation spawned, nothing else. It must start
                        // (and refuse nonsense) without panicking.
                        let mut effects = effects;
                        prop_assert_eq!(effects.len(), 1, "{:?}", effects);
                        let Some(Effect::Spawn { service, mut actor, .. }) = effects.pop() else {
                            return Err(TestCaseError::fail("no spawn"));
                        };
                        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
                        let mut ctx = Context::new(rig.now, Addr::new(me().node, service), &mut rng);
                        actor.handle(Input::Start, &mut ctx);
                    }
                }
            }
            rig.fire_due()?;
            rig.check(max_servers)?;
        }
        // Given time, every vdrive request is answered, and nothing stays in flight.
        rig.wait(Duration::from_millis(timeout_ms + 1))?;
        rig.check(max_servers)?;
        prop_assert!(rig.waiting.is_empty(), "unanswered: {:?}", rig.waiting);
        prop_assert!(!rig
            .client
            .requests
            .any(|_, p| matches!(p, Purpose::Vdrive(_))));
    }
}

#[test]
fn checks_and_repairs_run_as_operations_over_the_servers_heard_from_lately() {
    use crate::checker::{CheckOptions, ServerScope};
    let mut c = client();
    step(&mut c, at(0), Input::Start);
    announce(
        &mut c,
        at(1),
        vec![signed_announcement(1, 1), signed_announcement(2, 1)],
    );
    // Server 2 falls silent (it left the grid); server 1 keeps announcing.
    announce(&mut c, at(200), vec![signed_announcement(1, 2)]);
    let cap = cairn_codec::VerifierCap {
        storage_index: cairn_codec::StorageIndex([1; 16]),
        ueb_hash: [2; 32],
        k: 1,
        n: 2,
        size: 100,
    };
    let options = CheckOptions {
        servers: ServerScope::All,
        verify: false,
        add_lease: false,
    };
    let check = LocalRequest::Check {
        cap: cap.clone(),
        happy: 1,
        options,
    };
    let repair = LocalRequest::Repair {
        cap,
        happy: 1,
        options,
        distrusted: Vec::new(),
    };
    let mut ops = Vec::new();
    for request in [check, repair] {
        let mut effects = local(&mut c, at(200), request);
        assert_eq!(effects.len(), 1, "{effects:?}");
        let Some(Effect::Spawn { service, actor, .. }) = effects.pop() else {
            panic!("not a spawn")
        };
        ops.push(service);
        // The operation asks only the server heard from lately.
        let mut actor = actor;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut ctx = Context::new(at(200), Addr::new(me().node, service), &mut rng);
        actor.handle(Input::Start, &mut ctx);
        let asked: Vec<NodeId> = requests(ctx.effects())
            .iter()
            .map(|(to, _, _)| to.node)
            .collect();
        assert_eq!(asked, vec![server_key(1).id()]);
    }
    assert!(matches!(ops[..], [Service::Check(a), Service::Repair(b)] if a != b));
}

mod directories {
    //! The client against a vdrive server that lies: it never accepts a record that is not
    //! the directory's, nor an older version than it has seen.

    use super::*;
    use crate::local::{DirOpError, DirReply, DirRequest};
    use cairn_codec::dirnode::{ChildKind, DirCap, DirWriteCap, Entry, Record};

    fn record(cap: &DirWriteCap, version: u64, name: &str) -> Vec<u8> {
        let entry = Entry {
            name: name.into(),
            kind: ChildKind::File,
            read_cap: "URI:LIT:nbswy3dp".into(),
            write_cap: None,
            size: None,
            mtime: None,
        };
        let mut ivs = || [version as u8; 16];
        Record::seal(cap, version, &[entry], &mut ivs)
            .unwrap()
            .encode()
    }

    /// Lists `cap` on a server that answers `answer`; the client's reply.
    fn list_answered(client: &mut Client, cap: &DirWriteCap, body: Response) -> LocalResponse {
        let request = LocalRequest::Dir(DirRequest::List {
            cap: DirCap::Read(cap.read_cap()),
        });
        let sent = requests(&local(client, at(1), request));
        let [(to, id, Request::DirRead { si })] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!((*to, *si), (vdrive(), cap.verify_cap().storage_index));
        let replies = replies(&answer(client, at(1), vdrive(), *id, body));
        let [reply] = &replies[..] else {
            panic!("{replies:?}")
        };
        reply.clone()
    }

    #[test]
    fn forged_spliced_and_rolled_back_records_are_refused() {
        let mut client = client();
        let cap = DirWriteCap::from_write_key([1; 16]);
        let other = DirWriteCap::from_write_key([2; 16]);
        let got = list_answered(
            &mut client,
            &cap,
            Response::DirRecord(Some(record(&cap, 5, "a"))),
        );
        let LocalResponse::Dir(Ok(DirReply::Entries {
            version: 5,
            entries,
        })) = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(entries[0].name, "a");
        // Another directory's record, served for this one.
        let spliced = Response::DirRecord(Some(record(&other, 9, "evil")));
        let got = list_answered(&mut client, &cap, spliced);
        assert!(
            matches!(got, LocalResponse::Dir(Err(DirOpError::Forged(_)))),
            "{got:?}"
        );
        // A genuine but older version: a server hiding changes.
        let old = Response::DirRecord(Some(record(&cap, 4, "old")));
        let got = list_answered(&mut client, &cap, old);
        assert_eq!(
            got,
            LocalResponse::Dir(Err(DirOpError::Rollback { seen: 5, got: 4 }))
        );
        // The directory made to vanish.
        let got = list_answered(&mut client, &cap, Response::DirRecord(None));
        assert_eq!(
            got,
            LocalResponse::Dir(Err(DirOpError::Rollback { seen: 5, got: 0 }))
        );
        let got = list_answered(&mut client, &cap, Response::DirRecord(Some(vec![0xff; 40])));
        assert!(
            matches!(got, LocalResponse::Dir(Err(DirOpError::Forged(_)))),
            "{got:?}"
        );
        // The same version again is fine.
        let again = Response::DirRecord(Some(record(&cap, 5, "a")));
        let got = list_answered(&mut client, &cap, again);
        assert!(matches!(got, LocalResponse::Dir(Ok(_))), "{got:?}");
    }

    #[test]
    fn a_change_retries_on_conflict_and_gives_up_after_its_attempts() {
        let mut client = client();
        let cap = DirWriteCap::from_write_key([1; 16]);
        let change = LocalRequest::Dir(DirRequest::Change {
            cap: cap.clone(),
            change: crate::local::DirChange::Remove { name: "a".into() },
        });
        let mut sent = requests(&local(&mut client, at(1), change));
        for attempt in 1..=crate::client::dirs::MAX_ATTEMPTS {
            let [(_, read_id, Request::DirRead { .. })] = &sent[..] else {
                panic!("{sent:?}")
            };
            let version = u64::from(attempt);
            let record = Response::DirRecord(Some(record(&cap, version, "a")));
            let writes = requests(&answer(&mut client, at(1), vdrive(), *read_id, record));
            let [(_, write_id, Request::DirWrite { expected, .. })] = &writes[..] else {
                panic!("{writes:?}")
            };
            assert_eq!(
                *expected,
                Some(version),
                "a compare-and-swap on the version read"
            );
            let conflict = Response::Err(RemoteError::Conflict {
                current: Some(version + 1),
            });
            let effects = answer(&mut client, at(1), vdrive(), *write_id, conflict);
            sent = requests(&effects);
            if attempt == crate::client::dirs::MAX_ATTEMPTS {
                let replies = replies(&effects);
                assert!(
                    matches!(&replies[..], [LocalResponse::Dir(Err(DirOpError::Busy(_)))]),
                    "{replies:?}"
                );
                assert!(sent.is_empty());
            }
        }
    }
}
