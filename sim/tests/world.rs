//! The world's hosting of actors: determinism, timers, spawn and stop, panics, chaos mode's
//! wire round trip, and the local user hook.

mod common;

use cairn_sim::actors::local::{LocalId, LocalRequest, LocalResponse, StatusReport};
use cairn_sim::actors::protocol::Response;
use cairn_sim::actors::{
    Actor, Addr, Context, Effect, Input, Message, OpId, RequestId, Service, Time, TimerId,
};
use cairn_sim::{DropReason, IncidentKind, LocalUser, NoUser, SimDisk, UserIo, World, WorldConfig};
use common::*;
use std::time::Duration;

fn config(seed: u64) -> WorldConfig {
    WorldConfig {
        seed,
        ..WorldConfig::default()
    }
}

const MS: u64 = 1_000_000;

#[test]
fn same_seed_gives_the_same_digest() {
    let (mut one, pongs_one) = ping_pong(config(7), 200);
    let (mut two, pongs_two) = ping_pong(config(7), 200);
    one.run_until_idle();
    two.run_until_idle();
    assert_eq!(read(&pongs_one).len(), 200);
    assert_eq!(read(&pongs_one), read(&pongs_two));
    assert_eq!(one.digest(), two.digest());
    assert_eq!(one.counters(), two.counters());
    assert_eq!(one.digest().len(), 64);
}

#[test]
fn different_seeds_give_different_digests_under_jitter() {
    let (mut one, _) = ping_pong(config(1), 50);
    let (mut two, _) = ping_pong(config(2), 50);
    one.run_until_idle();
    two.run_until_idle();
    assert_ne!(one.digest(), two.digest());
    assert_ne!(one.now(), two.now(), "jitter moved the end of the rally");
}

#[test]
fn chaos_mode_round_trips_every_message_through_the_wire() {
    let (mut plain, _) = ping_pong(config(3), 100);
    let (mut chaos, pongs) = ping_pong(
        WorldConfig {
            chaos: true,
            ..config(3)
        },
        100,
    );
    plain.run_until_idle();
    chaos.run_until_idle();
    assert_eq!(read(&pongs).len(), 100);
    assert!(chaos.incidents().is_empty());
    // The fingerprint of a message is that of its wire bytes, however it travels.
    assert_eq!(plain.digest(), chaos.digest());
}

/// Sends its peer a message too large to decode.
struct Oversender(Addr);

impl Actor for Oversender {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if let Input::Start = input {
            let data = vec![0; cairn_sim::actors::protocol::MAX_MESSAGE_SIZE + 1];
            let body = Response::Data(data);
            ctx.send(
                self.0,
                Message::Response {
                    id: RequestId(1),
                    body,
                },
            );
        }
    }
}

#[test]
fn chaos_mode_records_a_message_that_does_not_decode() {
    let mut world = World::new(
        WorldConfig {
            chaos: true,
            ..config(0)
        },
        NoUser,
    );
    let to = Addr::new(node(1), Service::Storage);
    world
        .add_node(node(0), SimDisk::new(0), move |_| {
            vec![(Service::Client, Box::new(Oversender(to)))]
        })
        .unwrap();
    world
        .add_node(node(1), SimDisk::new(0), |_| pinger(None, 0, log()))
        .unwrap();
    world.run_until_idle();
    assert_eq!(world.counters().dropped(DropReason::DecodeFailed), 1);
    assert_eq!(world.counters().messages_delivered, 0);
    assert!(matches!(
        &world.incidents()[0].kind,
        IncidentKind::DecodeFailed { error, .. } if error.contains("limit")
    ));
}

/// Sets, cancels and replaces timers, logging which fire when.
struct Timers(Log<(Time, u64)>);

impl Actor for Timers {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        let ms = Duration::from_millis;
        match input {
            Input::Start => {
                ctx.set_timer(TimerId(1), ms(10));
                ctx.set_timer(TimerId(2), ms(5));
                ctx.cancel_timer(TimerId(2));
                ctx.set_timer(TimerId(3), ms(20));
                ctx.set_timer(TimerId(3), ms(30));
                ctx.set_timer(TimerId(4), ms(40));
            }
            Input::Timer(id) => {
                self.0.lock().unwrap().push((ctx.now(), id.0));
                if id.0 == 1 {
                    ctx.set_timer(TimerId(4), ms(15));
                }
            }
            _ => {}
        }
    }
}

#[test]
fn timers_fire_once_and_cancelled_or_replaced_ones_never() {
    let mut world = World::new(config(0), NoUser);
    let fired = log();
    let sink = fired.clone();
    world
        .add_node(node(0), SimDisk::new(0), move |_| {
            vec![(Service::Client, Box::new(Timers(sink.clone())))]
        })
        .unwrap();
    world.run_until_idle();
    assert_eq!(
        read(&fired),
        vec![(Time(10 * MS), 1), (Time(25 * MS), 4), (Time(30 * MS), 3)]
    );
    assert_eq!(world.counters().timers_fired, 3);
    assert_eq!(world.counters().timers_stale, 3);
}

/// Spawns a child (twice, at the same service: the second is refused), and logs what its
/// children send it.
struct Parent(Log<(Time, u64)>);

/// Sends its parent a ping, sets a timer and stops: the timer must never fire.
struct Child(Addr, Log<(Time, u64)>);

impl Actor for Parent {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => {
                for _ in 0..2 {
                    let child = Child(ctx.me(), self.0.clone());
                    let service = Service::Upload(OpId(7));
                    ctx.push(Effect::Spawn {
                        service,
                        actor: Box::new(child),
                        local: None,
                    });
                }
            }
            Input::Message {
                msg: Message::Request { id, .. },
                ..
            } => {
                self.0.lock().unwrap().push((ctx.now(), id.0));
            }
            _ => {}
        }
    }
}

impl Actor for Child {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => {
                ctx.send(self.0, ping(42));
                ctx.set_timer(TimerId(0), Duration::from_millis(1));
                ctx.push(Effect::Stop);
            }
            Input::Timer(_) => self.1.lock().unwrap().push((ctx.now(), 999)),
            _ => {}
        }
    }
}

#[test]
fn spawned_actors_start_and_stopped_ones_take_their_timers_along() {
    let mut world = World::new(config(0), NoUser);
    let got = log();
    let sink = got.clone();
    world
        .add_node(node(0), SimDisk::new(0), move |_| {
            vec![(Service::Client, Box::new(Parent(sink.clone())))]
        })
        .unwrap();
    world.run_until_idle();
    assert_eq!(
        read(&got),
        vec![(Time(1_000), 42)],
        "one local ping, ~0 delay"
    );
    assert_eq!(world.services(node(0)), vec![Service::Client]);
    assert_eq!(world.counters().timers_stale, 1);
    assert!(matches!(
        world.incidents(),
        [i] if matches!(i.kind, IncidentKind::SpawnCollision { .. })
    ));
}

/// Panics on any message.
struct Panicker;

impl Actor for Panicker {
    fn handle(&mut self, input: Input, _ctx: &mut Context<'_>) {
        if let Input::Message { .. } = input {
            panic!("the test actor panics on purpose");
        }
    }
}

#[test]
fn a_panicking_actor_is_recorded_and_removed_not_propagated() {
    let mut world = World::new(config(0), NoUser);
    let pongs = log();
    let p = pongs.clone();
    let panicker = Addr::new(node(1), Service::Storage);
    let healthy = Addr::new(node(2), Service::Storage);
    world
        .add_node(node(0), SimDisk::new(0), move |_| {
            let mut set = pinger(Some(panicker), 5, p.clone());
            let other: Box<dyn Actor> = Box::new(Pinger {
                peer: Some(healthy),
                limit: 5,
                log: Some(p.clone()),
            });
            set.push((Service::Client, other));
            set
        })
        .unwrap();
    world
        .add_node(node(1), SimDisk::new(0), |_| {
            vec![(Service::Storage, Box::new(Panicker))]
        })
        .unwrap();
    world
        .add_node(node(2), SimDisk::new(0), |_| pinger(None, 0, log()))
        .unwrap();
    world.run_until_idle();
    assert_eq!(world.counters().panics, 1);
    assert_eq!(read(&pongs).len(), 5, "the healthy rally went on");
    match world.incidents() {
        [incident] => match &incident.kind {
            IncidentKind::ActorPanicked { addr, message } => {
                assert_eq!(*addr, panicker);
                assert!(message.contains("on purpose"));
            }
            other => panic!("unexpected incident {other:?}"),
        },
        other => panic!("expected one incident, got {other:?}"),
    }
    assert!(world.services(node(1)).is_empty());
}

/// Answers a status request by pulling 10 bytes of "plaintext" 4 at a time, outputting
/// them, and replying once the output is drained.
struct Puller {
    id: Option<LocalId>,
    got: Vec<u8>,
}

impl Actor for Puller {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Local { id, .. } => {
                self.id = Some(id);
                ctx.push(Effect::Pull {
                    from: id,
                    offset: 0,
                    max: 4,
                });
            }
            Input::Plaintext { offset, data } => {
                let Some(id) = self.id else { return };
                let more = data.len() == 4;
                self.got.extend(data);
                if more {
                    ctx.push(Effect::Pull {
                        from: id,
                        offset: offset + 4,
                        max: 4,
                    });
                } else {
                    let data = std::mem::take(&mut self.got);
                    ctx.push(Effect::Output { to: id, data });
                }
            }
            Input::OutputDrained => {
                if let Some(id) = self.id {
                    ctx.reply(id, LocalResponse::Status(StatusReport::default()));
                }
            }
            _ => {}
        }
    }
}

/// Serves plaintext from `source`, collects output and replies.
#[derive(Default)]
struct Workload {
    source: Vec<u8>,
    pulls: Vec<(Time, u64)>,
    output: Vec<u8>,
    replies: Vec<(Time, LocalId, LocalResponse)>,
}

impl LocalUser for Workload {
    fn on_pull(&mut self, from: Addr, _id: LocalId, offset: u64, max: usize, io: &mut UserIo<'_>) {
        self.pulls.push((io.now(), offset));
        let start = (offset as usize).min(self.source.len());
        let end = (start + max).min(self.source.len());
        io.plaintext(from, offset, self.source[start..end].to_vec());
    }

    fn on_output(&mut self, from: Addr, _to: LocalId, data: Vec<u8>, io: &mut UserIo<'_>) {
        self.output.extend(data);
        io.drained(from);
    }

    fn on_reply(&mut self, _from: Addr, to: LocalId, response: LocalResponse, io: &mut UserIo<'_>) {
        self.replies.push((io.now(), to, response));
    }
}

#[test]
fn the_local_user_serves_pulls_drains_output_and_gets_the_reply() {
    let user = Workload {
        source: b"0123456789".to_vec(),
        ..Workload::default()
    };
    let config = WorldConfig {
        user_delay: Duration::from_millis(1),
        trace_lines: true,
        ..config(0)
    };
    let mut world = World::new(config, user);
    world
        .add_node(node(0), SimDisk::new(0), |_| {
            vec![(
                Service::Client,
                Box::new(Puller {
                    id: None,
                    got: Vec::new(),
                }),
            )]
        })
        .unwrap();
    let client = Addr::new(node(0), Service::Client);
    world
        .schedule_local(Time(5 * MS), client, LocalId(3), LocalRequest::Status)
        .unwrap();
    world.run_until_idle();
    let user = world.user();
    assert_eq!(
        user.pulls,
        vec![(Time(5 * MS), 0), (Time(6 * MS), 4), (Time(7 * MS), 8)]
    );
    assert_eq!(user.output, b"0123456789");
    assert_eq!(
        user.replies,
        vec![(
            Time(9 * MS),
            LocalId(3),
            LocalResponse::Status(StatusReport::default())
        )]
    );
    let lines = world.trace_lines();
    assert!(
        lines.iter().any(|l| l.contains("Local { id: 3 }")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("Drained")));
}

#[test]
fn scheduling_mistakes_are_typed_errors() {
    let (mut world, _) = ping_pong(config(0), 1);
    world.run_until(Time(10));
    let stranger = Addr::new(node(99), Service::Client);
    assert!(world
        .schedule_local(Time(20), stranger, LocalId(1), LocalRequest::Status)
        .is_err());
    let here = Addr::new(node(0), Service::Client);
    let err = world
        .schedule_local(Time(5), here, LocalId(1), LocalRequest::Status)
        .unwrap_err();
    assert!(err.to_string().contains("already at"), "{err}");
    assert!(world
        .add_node(node(0), SimDisk::new(0), |_| Vec::new())
        .is_err());
}
