//! The introducer, driven through its inputs and judged by its effects.

use super::*;
use crate::actor::{Effect, Service};
use crate::ids::NodeKey;
use crate::protocol::MAX_MESSAGE_SIZE;
use crate::testing::driven::wraps_driven;
use crate::testing::strategies::wire;
use crate::testing::Driven;
use proptest::prelude::*;
use std::time::Duration;

const T0: Time = Time(1_000_000_000);

fn client(n: u8) -> Addr {
    Addr::new(NodeId([n; 32]), Service::Client)
}

fn server(n: u8) -> Addr {
    Addr::new(NodeKey::from_seed([n; 32]).id(), Service::Storage)
}

fn announcement(n: u8, free_space: u64, seq: u64) -> Announcement {
    let key = NodeKey::from_seed([n; 32]);
    Announcement::new(&key, format!("10.0.0.{n}:4000"), free_space, seq)
}

/// The introducer, driven by hand.
struct Harness(Driven<Introducer>);

wraps_driven!(Harness, Introducer, 0);

impl Harness {
    fn new(introducer: Introducer) -> Self {
        let me = Addr::new(NodeId([0; 32]), Service::Introducer);
        let mut h = Harness(Driven::new(introducer, me, T0, 2));
        assert!(h.input(Input::Start).is_empty());
        h
    }

    fn announce(&mut self, a: Announcement) -> (Response, Vec<(Addr, Message)>) {
        let from = Addr::new(a.node, Service::Storage);
        self.request(from, Request::Announce(Box::new(a)))
    }

    /// Subscribes `who`; returns every announcement it was sent.
    fn subscribe(&mut self, who: Addr) -> Vec<Announcement> {
        let (answer, sends) = self.request(who, Request::Subscribe);
        assert_eq!(answer, Response::Ok);
        assert!(!sends.is_empty(), "a subscriber always hears back");
        sends
            .into_iter()
            .flat_map(|(to, msg)| {
                assert_eq!(to, who);
                match msg {
                    Message::Announcements(all) => all,
                    other => panic!("expected announcements, got {other:?}"),
                }
            })
            .collect()
    }
}

#[test]
fn subscribers_get_every_server_in_node_order_then_each_change() {
    let mut h = Harness::new(Introducer::new());
    assert_eq!(h.subscribe(client(1)), vec![]);
    let (a, b) = (announcement(1, 100, 1), announcement(2, 200, 1));
    let (answer, pushed) = h.announce(a.clone());
    assert_eq!(answer, Response::Ok);
    assert_eq!(
        pushed,
        vec![(client(1), Message::Announcements(vec![a.clone()]))]
    );
    h.announce(b.clone());
    let mut expected = vec![a, b];
    expected.sort_by_key(|a| a.node);
    assert_eq!(h.subscribe(client(2)), expected);
    let c = announcement(2, 150, 2);
    let (_, pushed) = h.announce(c.clone());
    let news = Message::Announcements(vec![c]);
    assert_eq!(pushed, vec![(client(1), news.clone()), (client(2), news)]);
}

#[test]
fn only_newer_announcements_replace_older_ones() {
    let mut h = Harness::new(Introducer::new());
    h.subscribe(client(1));
    h.announce(announcement(1, 100, 5));
    for stale in [announcement(1, 999, 5), announcement(1, 999, 4)] {
        assert_eq!(h.announce(stale), (Response::Ok, vec![]));
    }
    let known: Vec<_> = h.actor.servers().cloned().collect();
    assert_eq!(known, vec![announcement(1, 100, 5)]);
}

#[test]
fn a_re_announcement_with_nothing_new_is_kept_but_not_pushed() {
    let mut h = Harness::new(Introducer::new());
    h.subscribe(client(1));
    h.announce(announcement(1, 100, 5));
    assert_eq!(h.announce(announcement(1, 100, 6)), (Response::Ok, vec![]));
    assert_eq!(h.actor.servers().next().map(|a| a.seq), Some(6));
}

#[test]
fn a_restart_is_pushed_though_nothing_else_changed() {
    let mut h = Harness::new(Introducer::new());
    h.subscribe(client(1));
    let key = NodeKey::from_seed([1; 32]);
    let address = "10.0.0.1:4000".to_string();
    h.announce(Announcement::since(&key, address.clone(), 100, 5, 1000));
    assert_eq!(
        h.announce(Announcement::since(&key, address.clone(), 100, 6, 1000))
            .1,
        vec![],
        "a periodic re-announcement"
    );
    let restarted = Announcement::since(&key, address, 100, 7, 2000);
    let (_, pushed) = h.announce(restarted.clone());
    assert_eq!(
        pushed,
        vec![(client(1), Message::Announcements(vec![restarted]))]
    );
}

#[test]
fn forged_announcements_are_refused_and_forgotten() {
    let mut h = Harness::new(Introducer::new());
    h.subscribe(client(1));
    let mut more_space = announcement(1, 100, 1);
    more_space.figures.free_space = 1 << 50;
    let mut other_node = announcement(1, 100, 1);
    other_node.node = NodeId([7; 32]);
    let mut no_signature = announcement(1, 100, 1);
    no_signature.signature.clear();
    let key = NodeKey::from_seed([3; 32]);
    let long_address = Announcement::new(&key, "x".repeat(300), 1, 1);
    for forged in [more_space, other_node, no_signature, long_address] {
        let (answer, pushed) = h.request(server(1), Request::Announce(Box::new(forged)));
        assert!(matches!(answer, Response::Err(RemoteError::Malformed(_))));
        assert!(pushed.is_empty());
    }
    assert_eq!(h.actor.servers().count(), 0);
}

#[test]
fn re_subscribing_is_idempotent() {
    let mut h = Harness::new(Introducer::new());
    h.announce(announcement(1, 100, 1));
    assert_eq!(h.subscribe(client(1)).len(), 1);
    h.now = h.now.after(FULL_SET_INTERVAL);
    assert_eq!(h.subscribe(client(1)).len(), 1);
    assert_eq!(h.actor.subscriber_count(), 1);
    let (_, pushed) = h.announce(announcement(2, 100, 1));
    assert_eq!(pushed.len(), 1);
}

#[test]
fn a_node_is_one_subscriber_and_gets_the_whole_set_at_most_so_often() {
    let mut h = Harness::new(Introducer::new());
    h.announce(announcement(1, 100, 1));
    assert_eq!(h.subscribe(client(1)).len(), 1);
    // Asked again at once (or by another of the node's actors, whose address it picks):
    // answered, but not sent everything again.
    let (answer, sent) = h.request(client(1), Request::Subscribe);
    assert_eq!((answer, sent.len()), (Response::Ok, 0));
    let other_service = Addr::new(client(1).node, Service::Upload(crate::OpId(9)));
    assert_eq!(
        h.subscribe(other_service).len(),
        1,
        "a new address gets the set"
    );
    for n in 0..50 {
        let made_up = Addr::new(client(1).node, Service::Download(crate::OpId(n)));
        h.request(made_up, Request::Subscribe);
    }
    assert_eq!(h.actor.subscriber_count(), 1, "one node, one subscription");
    h.now = h.now.after(FULL_SET_INTERVAL);
    let (_, sent) = h.request(client(1), Request::Subscribe);
    assert_eq!(sent.len(), 1, "after the interval, the set again");
}

#[test]
fn a_node_announces_only_itself() {
    let mut h = Harness::new(Introducer::new());
    let from = server(2);
    let (answer, pushed) = h.request(from, Request::Announce(Box::new(announcement(1, 100, 1))));
    assert!(
        matches!(answer, Response::Err(RemoteError::Malformed(_))),
        "{answer:?}"
    );
    assert!(pushed.is_empty());
    assert_eq!(h.actor.servers().count(), 0);
}

#[test]
fn full_tables_forget_whoever_was_heard_from_least_recently() {
    let mut h = Harness::new(Introducer::with_limits(2, 2));
    h.announce(announcement(1, 1, 1));
    h.announce(announcement(2, 1, 1));
    h.announce(announcement(1, 1, 2)); // 1 is fresh again; 2 is now the stalest
    h.announce(announcement(3, 1, 1));
    let mut nodes: Vec<_> = h.actor.servers().map(|a| a.node).collect();
    let mut expected = vec![server(1).node, server(3).node];
    nodes.sort();
    expected.sort();
    assert_eq!(nodes, expected);

    for c in [1, 2, 1, 3] {
        h.request(client(c), Request::Subscribe);
    }
    assert_eq!(h.actor.subscriber_count(), 2);
    let (_, pushed) = h.announce(announcement(4, 1, 1));
    let told: Vec<_> = pushed.into_iter().map(|(to, _)| to).collect();
    assert_eq!(told, vec![client(1), client(3)]);
}

#[test]
fn a_large_grid_is_sent_in_frames_that_fit() {
    let mut h = Harness::new(Introducer::new());
    let count = ANNOUNCEMENTS_PER_MESSAGE + 10;
    for i in 0..count {
        let mut seed = [0; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        h.announce(Announcement::new(
            &NodeKey::from_seed(seed),
            "a".into(),
            1,
            1,
        ));
    }
    let (_, sends) = h.request(client(1), Request::Subscribe);
    assert_eq!(sends.len(), 2);
    let sizes: Vec<usize> = sends
        .iter()
        .map(|(_, msg)| match msg {
            Message::Announcements(all) => all.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(sizes, vec![ANNOUNCEMENTS_PER_MESSAGE, 10]);
}

#[test]
fn a_full_message_of_the_largest_announcements_fits_a_frame() {
    let key = NodeKey::from_seed([1; 32]);
    let address = "x".repeat(Announcement::MAX_ADDRESS_LEN);
    let largest = Announcement::new(&key, address, u64::MAX, u64::MAX);
    assert!(largest.verify());
    let msg = Message::Announcements(vec![largest; ANNOUNCEMENTS_PER_MESSAGE]);
    assert!(msg.encode().len() <= MAX_MESSAGE_SIZE);
}

#[test]
fn expired_requests_and_stray_messages_get_no_answer() {
    let mut h = Harness::new(Introducer::new());
    let msg = Message::Request {
        id: RequestId(1),
        deadline: Time(T0.0 - 1),
        body: Request::Subscribe,
    };
    assert!(h
        .input(Input::Message {
            from: client(1),
            msg
        })
        .is_empty());
    assert_eq!(h.actor.subscriber_count(), 0);
    let stray = Message::Response {
        id: RequestId(1),
        body: Response::Ok,
    };
    assert!(h
        .input(Input::Message {
            from: client(1),
            msg: stray
        })
        .is_empty());
    assert!(h
        .input(Input::Message {
            from: client(1),
            msg: Message::Announcements(vec![announcement(1, 1, 1)])
        })
        .is_empty());
    assert_eq!(h.actor.servers().count(), 0);
}

#[test]
fn other_requests_are_unsupported() {
    let mut h = Harness::new(Introducer::new());
    let si = crate::ids::StorageIndex([0; 16]);
    for body in [
        Request::List { si },
        Request::Vdrive(crate::vdrive::VdriveOp::Lookup { path: "/".into() }),
    ] {
        assert_eq!(
            h.request(client(1), body),
            (Response::Err(RemoteError::Unsupported), vec![])
        );
    }
}

#[test]
fn a_restart_forgets_everything() {
    let mut h = Harness::new(Introducer::new());
    h.announce(announcement(1, 1, 1));
    h.subscribe(client(1));
    h.input(Input::Start);
    assert_eq!(h.actor.servers().count(), 0);
    assert_eq!(h.actor.subscriber_count(), 0);
}

/// One input to the introducer in a fuzzed run.
#[derive(Clone, Debug)]
enum Step {
    /// From one of a few servers, maybe tampered with, maybe expired.
    Announce {
        node: u8,
        free: u64,
        seq: u64,
        tamper: bool,
        expired: bool,
    },
    Subscribe {
        client: u8,
        expired: bool,
    },
    Other(Request),
    Bytes(Vec<u8>),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    let si = any::<[u8; 16]>().prop_map(crate::ids::StorageIndex);
    prop_oneof![
        4 => (0u8..6, 0u64..3, 0u64..5, any::<bool>(), any::<bool>()).prop_map(
            |(node, free, seq, tamper, expired)| Step::Announce { node, free, seq, tamper, expired }
        ),
        3 => (0u8..6, any::<bool>()).prop_map(|(client, expired)| Step::Subscribe { client, expired }),
        1 => si.prop_map(|si| Step::Other(Request::List { si })),
        2 => wire(prop_oneof![
            (0u8..6, 0u64..3, 0u64..5).prop_map(|(n, f, s)| Request::Announce(Box::new(announcement(n, f, s)))),
            Just(Request::Subscribe),
        ]).prop_map(Step::Bytes),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn fuzzed_requests_get_one_answer_each_and_tables_stay_bounded(
        steps in proptest::collection::vec(step(), 1..60),
        max_servers in 1usize..5,
        max_subscribers in 1usize..5,
    ) {
        let mut h = Harness::new(Introducer::with_limits(max_servers, max_subscribers));
        for step in steps {
            h.now = h.now.after(Duration::from_millis(10));
            let live = h.now.after(Duration::from_secs(1));
            let (from, msg) = match step {
                Step::Announce { node, free, seq, tamper, expired } => {
                    let mut a = announcement(node, free, seq);
                    a.seq += u64::from(tamper);
                    let deadline = if expired { Time(h.now.0 - 1) } else { live };
                    let body = Request::Announce(Box::new(a));
                    (server(node), Message::Request { id: RequestId(1), deadline, body })
                }
                Step::Subscribe { client: c, expired } => {
                    let deadline = if expired { Time(h.now.0 - 1) } else { live };
                    let body = Request::Subscribe;
                    (client(c), Message::Request { id: RequestId(2), deadline, body })
                }
                Step::Other(body) => {
                    (client(0), Message::Request { id: RequestId(3), deadline: live, body })
                }
                Step::Bytes(bytes) => match Message::decode(&bytes) {
                    Ok(msg) => (client(0), msg),
                    Err(_) => continue,
                },
                Step::Restart => {
                    h.input(Input::Start);
                    continue;
                }
            };
            let live_id = match &msg {
                Message::Request { id, deadline, .. } => (h.now <= *deadline).then_some(*id),
                _ => None,
            };
            let effects = h.input(Input::Message { from, msg });
            let answers: Vec<RequestId> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Send { to, msg: Message::Response { id, .. } } if *to == from => Some(*id),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(answers, live_id.into_iter().collect::<Vec<_>>());
            prop_assert!(h.actor.servers().count() <= max_servers);
            prop_assert!(h.actor.subscriber_count() <= max_subscribers);
            prop_assert!(h.actor.servers().all(Announcement::verify));
            prop_assert_eq!(h.actor.servers.by_age.len(), h.actor.servers.len());
            prop_assert_eq!(h.actor.subscribers.by_age.len(), h.actor.subscribers.len());
        }
    }
}
