//! The client driven by hand: inputs in, effects checked.

use super::*;
use crate::ids::NodeKey;
use crate::local::UploadError;
use crate::protocol::RemoteError;
use crate::uploader::testkit::{plaintext, World};
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

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed([seed; 32])
}

fn announcement(seed: u8, seq: u64) -> Announcement {
    let address = format!("10.0.0.{seed}:9000");
    Announcement::new(&key(seed), address, 1000 * u64::from(seed), seq)
}

fn announce(client: &mut Client, now: Time, list: Vec<Announcement>) {
    let msg = Message::Announcements(list);
    let effects = step(
        client,
        now,
        Input::Message {
            from: introducer(),
            msg,
        },
    );
    assert!(effects.is_empty());
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
fn without_an_introducer_nothing_is_sent() {
    let mut c = Client::new(None, None, config());
    assert!(step(&mut c, at(0), Input::Start).is_empty());
    // Announcements can come only from an introducer.
    let msg = Message::Announcements(vec![announcement(1, 1)]);
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
    let mut forged = announcement(3, 1);
    forged.free_space += 1;
    announce(
        &mut c,
        at(1),
        vec![announcement(1, 1), announcement(2, 5), forged],
    );
    assert_eq!(c.servers().len(), 2, "the forged one is dropped");
    let moved = Announcement::new(&key(2), "10.9.9.9:1".into(), 7, 6);
    announce(&mut c, at(2), vec![announcement(1, 0), moved]);
    let report = status(&mut c, at(3));
    let by_id: BTreeMap<NodeId, &ServerStatus> = report.servers.iter().map(|s| (s.id, s)).collect();
    assert_eq!(
        by_id[&key(1).id()].address,
        "10.0.0.1:9000",
        "an older seq is ignored"
    );
    assert_eq!(
        by_id[&key(2).id()].address,
        "10.9.9.9:1",
        "a newer seq replaces"
    );
    assert_eq!(by_id[&key(2).id()].free_space, 7);
    // Announcements from anyone but the introducer are not listened to.
    let from = Addr::new(key(4).id(), Service::Storage);
    let msg = Message::Announcements(vec![announcement(4, 1)]);
    step(&mut c, at(4), Input::Message { from, msg });
    assert_eq!(c.servers().len(), 2);
}

#[test]
fn a_server_is_reachable_while_its_announcements_are_fresh() {
    let mut c = client();
    announce(&mut c, at(0), vec![announcement(1, 1)]);
    assert!(status(&mut c, at(180)).servers[0].reachable);
    assert!(
        !status(&mut c, at(181)).servers[0].reachable,
        "three intervals passed"
    );
    // The same announcement repeated (a dead server the introducer still lists) does not
    // count; a newer one does.
    announce(&mut c, at(200), vec![announcement(1, 1)]);
    assert!(!status(&mut c, at(200)).servers[0].reachable);
    announce(&mut c, at(201), vec![announcement(1, 2)]);
    assert!(status(&mut c, at(201)).servers[0].reachable);
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
    announce(&mut c, at(0), vec![announcement(1, 1)]);
    announce(&mut c, at(1), vec![announcement(2, 1)]);
    announce(&mut c, at(2), vec![announcement(1, 2)]);
    announce(&mut c, at(3), vec![announcement(3, 1)]);
    let mut expected = vec![key(1).id(), key(3).id()];
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
        keys.iter().map(|&k| announcement(k, 1)).collect(),
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
    let Some(Effect::Spawn { service, mut actor }) = effects.pop() else {
        panic!("expected a spawn, got {effects:?}");
    };
    assert_eq!(service, Service::Upload(OpId(1)));
    let ids: Vec<NodeId> = keys.iter().map(|&k| key(k).id()).collect();
    let mut world = World::new(0, 0).with_servers(&ids, 1 << 20);
    world.input = data.clone();
    world.run(actor.as_mut(), Addr::new(me().node, service));
    let LocalResponse::Uploaded(Ok(receipt)) = world.reply() else {
        panic!("{:?}", world.replies);
    };
    assert_eq!(receipt.happiness, 5);
    assert_eq!(world.download(&receipt.cap).unwrap(), data);
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
    let Some(Effect::Spawn { mut actor, service }) = local(&mut c, at(1), request).pop() else {
        panic!("expected a spawn");
    };
    let mut world = World::new(0, 0);
    world.run(actor.as_mut(), Addr::new(me().node, service));
    assert!(matches!(
        world.reply(),
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
    let [LocalResponse::Vdrive(Err(VdriveError::Storage(msg)))] = &replies(&effects)[..] else {
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
    let [LocalResponse::Vdrive(Err(VdriveError::Storage(msg)))] = &replies(&effects)[..] else {
        panic!("{effects:?}");
    };
    assert!(msg.contains("vdrive unreachable"), "{msg}");
}

#[test]
fn without_a_vdrive_operations_fail_at_once() {
    let mut c = Client::new(Some(introducer()), None, config());
    let op = VdriveOp::List { path: "/".into() };
    let effects = local(&mut c, at(1), LocalRequest::Vdrive(op));
    assert!(requests(&effects).is_empty());
    assert!(matches!(
        &replies(&effects)[..],
        [LocalResponse::Vdrive(Err(VdriveError::Storage(_)))]
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
