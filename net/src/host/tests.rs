//! Tests of the host with tiny actors: timers, stopping, panics.

use super::*;
use crate::host::LocalEvent;
use cairn_actors::local::StatusReport;
use cairn_actors::{Context, Effect, OpId, TimerId};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// Generous: only there so that a bug hangs no test.
const PATIENCE: Duration = Duration::from_secs(5);

fn lone_node() -> Node {
    LocalNetwork::new().add_node(NodeId([1; 32]))
}

fn status() -> LocalResponse {
    LocalResponse::Status(StatusReport::default())
}

/// Sets timers on start, reports each firing, and stops on any local request (with a timer
/// still set).
struct Clock {
    fired: mpsc::UnboundedSender<TimerId>,
}

impl Actor for Clock {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => {
                ctx.set_timer(TimerId(1), Duration::from_millis(10));
                ctx.set_timer(TimerId(2), Duration::from_millis(10));
                ctx.cancel_timer(TimerId(2));
                ctx.set_timer(TimerId(3), Duration::from_secs(3600));
                ctx.set_timer(TimerId(3), Duration::from_millis(20));
                ctx.set_timer(TimerId(4), Duration::from_millis(300));
            }
            Input::Timer(id) => {
                let _ = self.fired.send(id);
            }
            Input::Local { id, .. } => {
                ctx.set_timer(TimerId(5), Duration::from_millis(10));
                ctx.reply(id, status());
                ctx.push(Effect::Stop);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn timers_fire_once_unless_cancelled_or_replaced() {
    let node = lone_node();
    let (fired, mut firings) = mpsc::unbounded_channel();
    node.spawn(Service::Client, Box::new(Clock { fired }))
        .expect("spawn");
    let mut seen = Vec::new();
    while seen.last() != Some(&TimerId(4)) {
        let id = timeout(PATIENCE, firings.recv())
            .await
            .expect("timer fires");
        seen.push(id.expect("the actor lives"));
    }
    seen.sort();
    assert_eq!(seen, [TimerId(1), TimerId(3), TimerId(4)]);

    let handle = node.request(Service::Client, LocalRequest::Status).await;
    let response = handle.expect("request").response().await.expect("reply");
    assert_eq!(response, status());
    // The actor stopped with timer 5 set: it is dropped, and the timer never fires.
    let after = timeout(PATIENCE, firings.recv())
        .await
        .expect("channel closes");
    assert_eq!(after, None);
    assert!(!node.is_running(Service::Client));
}

/// Panics on any local request; answers nothing else.
struct Bomb;

impl Actor for Bomb {
    fn handle(&mut self, input: Input, _ctx: &mut Context<'_>) {
        if let Input::Local { .. } = input {
            panic!("boom (a test's deliberate panic)");
        }
    }
}

/// Answers every status request.
struct Echo;

impl Actor for Echo {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if let Input::Local { id, .. } = input {
            ctx.reply(id, status());
        }
    }
}

async fn ask(node: &Node, service: Service) -> Result<LocalResponse, HostError> {
    let handle = node.request(service, LocalRequest::Status).await?;
    timeout(PATIENCE, handle.response())
        .await
        .expect("an answer or an error, not a hang")
}

#[tokio::test]
async fn a_panicking_actor_does_not_take_the_node_down() {
    let node = lone_node();
    let bomb = Service::Upload(OpId(1));
    node.spawn(bomb, Box::new(Bomb)).expect("spawn bomb");
    node.spawn(Service::Client, Box::new(Echo))
        .expect("spawn echo");

    let error = ask(&node, bomb).await.expect_err("the bomb never answers");
    assert!(matches!(error, HostError::Abandoned(_)), "{error}");
    assert_eq!(ask(&node, Service::Client).await.expect("echo"), status());

    // Once its supervisor has cleaned up, the service is free again.
    timeout(PATIENCE, async {
        while node.is_running(bomb) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the bomb is removed");
    assert!(matches!(
        node.request(bomb, LocalRequest::Status).await,
        Err(HostError::NoActor(_))
    ));
    node.spawn(bomb, Box::new(Echo)).expect("respawn");
    assert_eq!(ask(&node, bomb).await.expect("respawned"), status());
}

/// Panics at its first request, answers the ones after.
struct PanicsOnce(Arc<std::sync::atomic::AtomicBool>);

impl Actor for PanicsOnce {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if let Input::Local { id, .. } = input {
            if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                panic!("boom once (a test's deliberate panic)");
            }
            ctx.reply(id, status());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_panics_is_made_again_and_counted() {
    let node = lone_node();
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let made = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (flag, count) = (panicked.clone(), made.clone());
    let factory: Factory = Arc::new(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Box::new(PanicsOnce(flag.clone())) as Box<dyn Actor>)
    });
    node.spawn_service(Service::Storage, factory)
        .expect("starts");
    let error = ask(&node, Service::Storage)
        .await
        .expect_err("the first request panics it");
    assert!(matches!(error, HostError::Abandoned(_)), "{error}");
    let answered = async {
        loop {
            if let Ok(answer) = ask(&node, Service::Storage).await {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert_eq!(
        timeout(PATIENCE, answered).await.expect("restarted"),
        status()
    );
    assert_eq!(node.restarts(), 1);
    assert_eq!(
        made.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "made twice"
    );
    // After shutdown nothing is restarted.
    node.shutdown();
    assert!(!node.is_running(Service::Storage));
}

/// Spawns a [`Streamer`] for each local request and hands it the request.
struct Spawner;

impl Actor for Spawner {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if let Input::Local { id, .. } = input {
            let actor = Box::new(Streamer {
                id,
                got: Vec::new(),
            });
            ctx.push(Effect::Spawn {
                service: Service::Download(OpId(id.0)),
                actor,
                local: Some(id),
            });
        }
    }
}

/// Pulls 4 bytes, outputs them back reversed in two chunks (waiting for each to drain),
/// then replies and stops.
struct Streamer {
    id: LocalId,
    got: Vec<u8>,
}

impl Actor for Streamer {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        let to = self.id;
        match input {
            Input::Start => ctx.push(Effect::Pull {
                from: to,
                offset: 0,
                max: 4,
            }),
            Input::Plaintext { data, .. } => {
                self.got = data;
                self.got.reverse();
                let rest = self.got.split_off(2);
                let data = std::mem::replace(&mut self.got, rest);
                ctx.push(Effect::Output { to, data });
            }
            Input::OutputDrained if self.got.is_empty() => {
                ctx.reply(to, status());
                ctx.push(Effect::Stop);
            }
            Input::OutputDrained => {
                let data = std::mem::take(&mut self.got);
                ctx.push(Effect::Output { to, data });
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_handle_answers_pulls_and_takes_output_from_a_spawned_actor() {
    let node = lone_node();
    node.spawn(Service::Client, Box::new(Spawner))
        .expect("spawn");
    let mut handle = node
        .request(Service::Client, LocalRequest::Status)
        .await
        .expect("request");
    let mut output = Vec::new();
    let response = loop {
        let event = timeout(PATIENCE, handle.next_event())
            .await
            .expect("no hang");
        match event.expect("an event") {
            LocalEvent::Pull(pull) => {
                let data = b"abcdef".as_slice().read_at(pull.offset, pull.max);
                handle.answer(&pull, data.expect("in memory")).await;
            }
            LocalEvent::Output(data) => output.extend(data),
            LocalEvent::Reply(response) => break response,
        }
    };
    assert_eq!(response, status());
    assert_eq!(output, b"dcba");
}

/// Spawns `child()` at `at` for its local request, handing the request over if `hand_over`;
/// answers the request itself when any message comes (from a child that did not take it).
struct Handing {
    at: Service,
    child: fn() -> Box<dyn Actor>,
    hand_over: bool,
    waiting: Option<LocalId>,
}

impl Handing {
    fn new(at: Service, child: fn() -> Box<dyn Actor>, hand_over: bool) -> Self {
        Handing {
            at,
            child,
            hand_over,
            waiting: None,
        }
    }
}

impl Actor for Handing {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Local { id, .. } => {
                self.waiting = Some(id);
                ctx.push(Effect::Spawn {
                    service: self.at,
                    actor: (self.child)(),
                    local: self.hand_over.then_some(id),
                });
            }
            Input::Message { .. } => {
                if let Some(id) = self.waiting.take() {
                    ctx.reply(id, status());
                }
            }
            _ => {}
        }
    }
}

/// Tells the client it has started, then stops without answering anything.
struct Quitter;

impl Actor for Quitter {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if let Input::Start = input {
            let client = Addr::new(ctx.me().node, Service::Client);
            ctx.send(client, Message::Announcements(Vec::new()));
            ctx.push(Effect::Stop);
        }
    }
}

fn quitter() -> Box<dyn Actor> {
    Box::new(Quitter)
}

#[tokio::test]
async fn a_request_handed_to_an_actor_that_stops_unanswered_is_abandoned() {
    let node = lone_node();
    let spawner = Handing::new(Service::Upload(OpId(1)), quitter, true);
    node.spawn(Service::Client, Box::new(spawner))
        .expect("spawn");
    let error = ask(&node, Service::Client)
        .await
        .expect_err("the quitter never answers");
    assert!(matches!(error, HostError::Abandoned(_)), "{error}");
}

#[tokio::test]
async fn a_spawn_that_hands_nothing_over_leaves_the_request_with_its_spawner() {
    let node = lone_node();
    // The quitter stops unanswered, but the request is still the spawner's, which answers
    // it when the quitter's message comes.
    let spawner = Handing::new(Service::Upload(OpId(1)), quitter, false);
    node.spawn(Service::Client, Box::new(spawner))
        .expect("spawn");
    assert_eq!(
        ask(&node, Service::Client).await.expect("answered"),
        status()
    );
}

#[tokio::test]
async fn a_request_handed_to_an_actor_that_cannot_start_is_abandoned() {
    let node = lone_node();
    // The service is taken (by the spawner itself): the spawn fails, and the request must
    // not wait for an actor that never ran.
    let spawner = Handing::new(Service::Client, quitter, true);
    node.spawn(Service::Client, Box::new(spawner))
        .expect("spawn");
    let error = ask(&node, Service::Client)
        .await
        .expect_err("no actor took the request");
    assert!(matches!(error, HostError::Abandoned(_)), "{error}");
}

/// Stands in for a store's slow disk: on a local request it blocks its thread until the disk
/// is released (or gives up after [`PATIENCE`]), then replies whether it was released.
struct SlowDisk {
    release: std::sync::mpsc::Receiver<()>,
}

impl Actor for SlowDisk {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if let Input::Local { id, .. } = input {
            let released = self.release.recv_timeout(PATIENCE).is_ok();
            let report = StatusReport {
                introducer_connected: released,
                ..StatusReport::default()
            };
            ctx.reply(id, LocalResponse::Status(report));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_store_waiting_on_its_disk_does_not_hold_up_the_nodes_other_actors() {
    for service in [Service::Storage, Service::Vdrive] {
        let node = lone_node();
        let (release, disk) = std::sync::mpsc::channel();
        node.spawn(service, Box::new(SlowDisk { release: disk }))
            .expect("spawn the slow disk");
        node.spawn(Service::Client, Box::new(Echo))
            .expect("spawn echo");
        let waiting = node
            .request(service, LocalRequest::Status)
            .await
            .expect("request");
        // The runtime's only worker is the one blocked in the disk: the client answers only
        // if that worker handed its other tasks on first.
        assert_eq!(ask(&node, Service::Client).await.expect("echo"), status());
        release.send(()).expect("the disk waits");
        let response = timeout(PATIENCE * 2, waiting.response())
            .await
            .expect("no hang")
            .expect("a reply");
        let LocalResponse::Status(report) = response else {
            panic!("not a status: {response:?}");
        };
        assert!(
            report.introducer_connected,
            "{service:?}: the client answered only after the disk gave up"
        );
    }
}
