//! Tiny actors and helpers for the simulator's tests: a ping-pong pair, a journaling actor
//! that keeps a log on its node's disk, and shared logs the test reads back.

#![allow(dead_code)]

use cairn_sim::actors::memstore::MemShareStore;
use cairn_sim::actors::protocol::{Request, Response};
use cairn_sim::actors::store::{FramedJournal, Journal, ShareStore};
use cairn_sim::actors::{
    Actor, Addr, Context, Input, Message, NodeId, RequestId, Service, ShareNum, StorageIndex, Time,
    TimerId,
};
use cairn_sim::disk::DiskJournal;
use cairn_sim::{ActorSet, NoUser, SimDisk, World, WorldConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A list the actors append to and the test reads.
pub type Log<T> = Arc<Mutex<Vec<T>>>;

pub fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn read<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}

/// A node id for test node `i`.
pub fn node(i: u32) -> NodeId {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&i.to_le_bytes());
    NodeId::of_public_key(&key)
}

pub fn ping(n: u64) -> Message {
    Message::Request {
        id: RequestId(n),
        deadline: Time(0),
        body: Request::Subscribe,
    }
}

pub fn pong(n: u64) -> Message {
    Message::Response {
        id: RequestId(n),
        body: Response::Ok,
    }
}

/// Answers every ping with a pong; if it has a peer, starts a rally of `limit` pings with
/// it and logs each pong's arrival.
pub struct Pinger {
    pub peer: Option<Addr>,
    pub limit: u64,
    pub log: Option<Log<(Time, u64)>>,
}

impl Actor for Pinger {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => {
                if let Some(peer) = self.peer {
                    ctx.send(peer, ping(0));
                }
            }
            Input::Message {
                from,
                msg: Message::Request { id, .. },
            } => ctx.send(from, pong(id.0)),
            Input::Message {
                from,
                msg: Message::Response { id, .. },
            } => {
                if let Some(log) = &self.log {
                    log.lock().unwrap().push((ctx.now(), id.0));
                }
                if id.0 + 1 < self.limit {
                    ctx.send(from, ping(id.0 + 1));
                }
            }
            _ => {}
        }
    }
}

/// A world of two nodes, 0 rallying `limit` pings with 1; returns the world and node 0's
/// pong log.
pub fn ping_pong(config: WorldConfig, limit: u64) -> (World, Log<(Time, u64)>) {
    let mut world = World::new(config, NoUser);
    let pongs = log();
    let peer = Addr::new(node(1), Service::Storage);
    let log0 = pongs.clone();
    world
        .add_node(node(0), SimDisk::new(0), move |_| {
            pinger(Some(peer), limit, log0.clone())
        })
        .unwrap();
    world
        .add_node(node(1), SimDisk::new(0), move |_| pinger(None, 0, log()))
        .unwrap();
    (world, pongs)
}

pub fn pinger(peer: Option<Addr>, limit: u64, log: Log<(Time, u64)>) -> ActorSet {
    let log = Some(log);
    vec![(Service::Storage, Box::new(Pinger { peer, limit, log }))]
}

/// A pinger that logs nothing (for measuring the engine, not the test's bookkeeping).
pub fn quiet_pinger(peer: Option<Addr>, limit: u64) -> ActorSet {
    vec![(
        Service::Storage,
        Box::new(Pinger {
            peer,
            limit,
            log: None,
        }),
    )]
}

/// Pings its peer every 10 ms (one ping per timer, so duplicated pongs do not multiply).
pub struct Ticker {
    pub peer: Addr,
    pub pongs: Log<(Time, u64)>,
    pub n: u64,
}

impl Actor for Ticker {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start | Input::Timer(_) => {
                ctx.send(self.peer, ping(self.n));
                self.n += 1;
                ctx.set_timer(TimerId(0), Duration::from_millis(10));
            }
            Input::Message {
                msg: Message::Response { id, .. },
                ..
            } => {
                self.pongs.lock().unwrap().push((ctx.now(), id.0));
            }
            _ => {}
        }
    }
}

/// What a [`Journaler`] saw when it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    pub at: Time,
    pub records: Vec<Vec<u8>>,
    pub incoming: Vec<(StorageIndex, ShareNum)>,
    pub complete: Vec<(ShareNum, u64)>,
}

pub const SI: StorageIndex = StorageIndex([5; 16]);

/// Every `period`, appends a record to its journal and starts an incoming share; commits
/// every other share. Logs what it finds on its disk at each start.
pub struct Journaler {
    pub shares: MemShareStore,
    pub journal: FramedJournal<DiskJournal>,
    pub period: Duration,
    pub boots: Log<Boot>,
    pub ticks: u64,
}

impl Journaler {
    pub fn set(disk: &SimDisk, period: Duration, boots: Log<Boot>) -> ActorSet {
        let actor = Journaler {
            shares: disk.shares(),
            journal: disk.journal(),
            period,
            boots,
            ticks: 0,
        };
        vec![(Service::Vdrive, Box::new(actor))]
    }
}

impl Actor for Journaler {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => {
                let boot = Boot {
                    at: ctx.now(),
                    records: self.journal.records().unwrap_or_default(),
                    incoming: self.shares.incoming().unwrap_or_default(),
                    complete: self.shares.list(SI).unwrap_or_default(),
                };
                self.ticks = boot.records.len() as u64;
                self.boots.lock().unwrap().push(boot);
                ctx.set_timer(TimerId(0), self.period);
            }
            Input::Timer(_) => {
                let n = self.ticks;
                self.ticks += 1;
                // Errors (a full disk, share numbers wrapping in long runs) are the test's to
                // check on the disk afterwards, not this actor's.
                let _ = self.journal.append(format!("tick {n}").as_bytes());
                let share = ShareNum(n as u8);
                let _ = self.shares.create(SI, share, 16);
                let _ = self.shares.write(SI, share, 0, &[n as u8; 16]);
                if n.is_multiple_of(2) {
                    let _ = self.shares.commit(SI, share);
                }
                ctx.set_timer(TimerId(0), self.period);
            }
            _ => {}
        }
    }
}
