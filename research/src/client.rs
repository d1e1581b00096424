//! The research client: one actor that uploads every file at the start, then, while the mesh
//! churns, downloads random files at random times and (with repair on) checks and repairs
//! every file once per repair interval.
//!
//! It speaks the real protocol to the real storage servers — `Allocate`, `Write`, `Close` to
//! place a share, `List` to find shares, `Read` to fetch one — and places shares as Tahoe's
//! uploader does: along the file's permuted ring, one share per server, until every share has
//! a server and the placement's servers-of-happiness ([`cairn_actors::placement`]) reaches
//! `happy`. What is synthetic is the payload: writes carry no bytes and reads return none;
//! the client counts each share as its size. So encoding, hashing and decoding are not
//! simulated (they cannot change whether a file is readable); everything that decides
//! readability and repair traffic is.
//!
//! Each operation is a [`task`]: a small state machine of phases (find shares, read k of
//! them, place shares), with one timer that gives up on servers that do not answer.

mod task;

use super::churn::NodeNum;
use super::ledger::{mix, node_id, storage_index, FileNum};
use super::ring::{self, RingCache, SharedMembership};
use super::scenario::Repair;
use cairn_actors::protocol::{LeaseSecret, Message, Request, RequestId, Response, UploadSecret};
use cairn_actors::{Actor, Addr, Context, Effect, Input, Service, Time, TimerId};
use cairn_sim::fingerprint::FastBuild;
use rand::{Rng, RngCore};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use task::{Kind, Stage, Task};

/// How long the client waits for a server's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Uploads run at once during the upload phase.
const UPLOAD_WINDOW: usize = 512;

const DOWNLOAD_TIMER: TimerId = TimerId(0);
const CHECK_TIMER: TimerId = TimerId(1);
/// Task `t`'s timer is `TASK_TIMERS + t`.
const TASK_TIMERS: u64 = 16;

/// What the client is to do.
#[derive(Clone, Debug)]
pub struct ClientPlan {
    pub seed: u64,
    pub files: u32,
    pub needed: u8,
    pub total: u8,
    pub happy: u8,
    pub share_size: u64,
    /// Servers asked at once when looking for shares.
    pub search_width: usize,
    /// Download attempts over the run.
    pub downloads: u64,
    /// How long the churn phase lasts.
    pub run: Duration,
    pub repair: Repair,
    pub repair_interval: Duration,
    /// Bytes per second each node gives repair traffic (0: unlimited).
    pub repair_bandwidth: u64,
}

impl ClientPlan {
    /// The longest ring prefix any task looks at: two search widths.
    fn ring_len(&self) -> usize {
        2 * self.search_width
    }
}

/// What the client did, in numbers (shared with the runner, which samples it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    pub uploads_ok: u64,
    pub uploads_failed: u64,
    /// When the last upload finished: the churn phase starts then.
    #[serde(skip)]
    pub uploads_done_at: Option<Time>,
    pub download_attempts: u64,
    pub download_successes: u64,
    pub checks: u64,
    pub repairs: u64,
    /// Checks that found fewer than k shares (nothing to repair from).
    pub unrepairable_checks: u64,
    /// Repairs that could not place every missing share.
    pub incomplete_repairs: u64,
    pub shares_regenerated: u64,
    pub repair_download_bytes: u64,
    pub repair_upload_bytes: u64,
}

/// The client's statistics, shared with the runner (see [`super::ledger::SharedLedger`]).
pub type SharedStats = Arc<Mutex<ClientStats>>;

/// Locks the statistics.
pub fn lock(stats: &SharedStats) -> MutexGuard<'_, ClientStats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a request went and what it was for.
#[derive(Clone, Copy, Debug)]
struct Sent {
    task: u64,
    node: NodeNum,
    share: u8,
    stage: Stage,
}

/// The research client actor. See the module docs.
pub struct ResearchClient {
    plan: ClientPlan,
    members: SharedMembership,
    stats: SharedStats,
    ring: RingCache,
    lease: LeaseSecret,
    next_request: u64,
    next_task: u64,
    // Boxed: a task is a few hundred bytes, moved out and back at every input.
    tasks: HashMap<u64, Box<Task>, FastBuild>,
    requests: HashMap<RequestId, Sent, FastBuild>,
    next_upload: FileNum,
    uploads_running: usize,
    uploads_finished: u32,
    end: Time,
    next_check: FileNum,
    /// When each node's repair bandwidth is free again.
    busy: Vec<Time>,
}

impl ResearchClient {
    /// A client that carries out `plan` over the mesh `members`, counting into `stats`.
    pub fn new(plan: ClientPlan, members: SharedMembership, stats: SharedStats) -> Self {
        let keys = (0..plan.files)
            .map(|f| ring_key(&storage_index(plan.seed, f).0))
            .collect();
        let ring = RingCache::new(plan.ring_len(), keys);
        ResearchClient {
            plan,
            members,
            stats,
            ring,
            lease: LeaseSecret([7; 32]),
            next_request: 0,
            next_task: 0,
            tasks: HashMap::default(),
            requests: HashMap::default(),
            next_upload: 0,
            uploads_running: 0,
            uploads_finished: 0,
            end: Time(0),
            next_check: 0,
            busy: Vec::new(),
        }
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.next_request = ctx.rng().next_u64();
        self.start_uploads(ctx);
    }

    fn start_uploads(&mut self, ctx: &mut Context<'_>) {
        while self.uploads_running < UPLOAD_WINDOW && self.next_upload < self.plan.files {
            let file = self.next_upload;
            self.next_upload += 1;
            self.uploads_running += 1;
            self.begin(file, Kind::Upload, ctx);
        }
    }

    /// The uploads are done: the churn phase begins.
    fn begin_churn_phase(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        self.end = now.after(self.plan.run);
        lock(&self.stats).uploads_done_at = Some(now);
        if self.plan.downloads > 0 {
            self.schedule_download(ctx);
        }
        if self.plan.repair != Repair::None {
            ctx.set_timer(CHECK_TIMER, self.check_gap());
        }
    }

    fn check_gap(&self) -> Duration {
        self.plan.repair_interval / self.plan.files.max(1)
    }

    /// Download attempts come as a Poisson process over the run.
    fn schedule_download(&mut self, ctx: &mut Context<'_>) {
        let mean = self.plan.run.as_secs_f64() / self.plan.downloads as f64;
        let gap = -mean * (1.0 - ctx.rng().gen::<f64>()).ln();
        ctx.set_timer(DOWNLOAD_TIMER, Duration::from_secs_f64(gap));
    }

    fn on_timer(&mut self, id: TimerId, ctx: &mut Context<'_>) {
        match id {
            DOWNLOAD_TIMER if ctx.now() < self.end => {
                let file = ctx.rng().gen_range(0..self.plan.files);
                lock(&self.stats).download_attempts += 1;
                self.begin(file, Kind::Download, ctx);
                self.schedule_download(ctx);
            }
            CHECK_TIMER if ctx.now() < self.end => {
                let file = self.next_check;
                self.next_check = (self.next_check + 1) % self.plan.files;
                lock(&self.stats).checks += 1;
                self.begin(file, Kind::Check, ctx);
                ctx.set_timer(CHECK_TIMER, self.check_gap());
            }
            TimerId(t) if t >= TASK_TIMERS => self.on_task_timer(t - TASK_TIMERS, ctx),
            _ => {}
        }
    }

    fn begin(&mut self, file: FileNum, kind: Kind, ctx: &mut Context<'_>) {
        let ring = self.ring.prefix(file, &ring::lock(&self.members));
        let id = self.next_task;
        self.next_task += 1;
        let task = Box::new(Task::new(file, kind, ring, &self.plan));
        self.tasks.insert(id, task);
        self.run_task(id, ctx);
    }

    /// Lets task `id` send what it can; finishes it if it is done.
    fn run_task(&mut self, id: u64, ctx: &mut Context<'_>) {
        let Some(mut task) = self.tasks.remove(&id) else {
            return;
        };
        let mut io = TaskIo {
            client: self,
            task: id,
            ctx,
            sent: false,
            wake: None,
        };
        let done = task.advance(&mut io);
        let (sent, wake) = (io.sent, io.wake);
        if done {
            self.finish(id, task, ctx);
            return;
        }
        // One timer per task, moved only by re-arming when it fires early: a push onto the
        // event queue per send would cost more than the sends.
        let timer = TimerId(TASK_TIMERS + id);
        if let Some(at) = wake {
            task.deadline = at;
            task.armed = true;
            ctx.push(Effect::SetTimer { id: timer, at });
        } else if sent {
            task.deadline = ctx.now().after(REQUEST_TIMEOUT);
            if !task.armed {
                task.armed = true;
                ctx.set_timer(timer, REQUEST_TIMEOUT);
            }
        }
        self.tasks.insert(id, task);
    }

    fn on_response(&mut self, request: RequestId, body: Response, ctx: &mut Context<'_>) {
        let Some(sent) = self.requests.remove(&request) else {
            return; // late, or not ours
        };
        if let Some(task) = self.tasks.get_mut(&sent.task) {
            task.pending.retain(|r| *r != request);
            task.answer(sent.node, sent.share, sent.stage, Some(body), &self.plan);
            self.run_task(sent.task, ctx);
        }
    }

    /// The task's servers that have not answered by now never will, as far as it cares; a
    /// task waiting out a repair transfer moves on.
    fn on_task_timer(&mut self, id: u64, ctx: &mut Context<'_>) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.armed = false;
        if ctx.now() < task.deadline {
            task.armed = true;
            let at = task.deadline;
            ctx.push(Effect::SetTimer {
                id: TimerId(TASK_TIMERS + id),
                at,
            });
            return;
        }
        for request in std::mem::take(&mut task.pending) {
            if let Some(sent) = self.requests.remove(&request) {
                task.answer(sent.node, sent.share, sent.stage, None, &self.plan);
            }
        }
        self.run_task(id, ctx);
    }

    fn finish(&mut self, id: u64, task: Box<Task>, ctx: &mut Context<'_>) {
        ctx.cancel_timer(TimerId(TASK_TIMERS + id));
        for request in &task.pending {
            self.requests.remove(request);
        }
        let upload = task.kind == Kind::Upload;
        task.record(&self.plan, &mut lock(&self.stats));
        if upload {
            self.uploads_running -= 1;
            self.uploads_finished += 1;
            self.start_uploads(ctx);
            if self.uploads_finished == self.plan.files {
                self.begin_churn_phase(ctx);
            }
        }
    }

    /// Reserves `node`'s repair bandwidth for one share; returns when the transfer ends.
    fn reserve(&mut self, node: NodeNum, now: Time) -> Time {
        if self.plan.repair_bandwidth == 0 {
            return now;
        }
        let n = node as usize;
        if self.busy.len() <= n {
            self.busy.resize(n + 1, Time(0));
        }
        let secs = self.plan.share_size as f64 / self.plan.repair_bandwidth as f64;
        let done = self.busy[n].max(now).after(Duration::from_secs_f64(secs));
        self.busy[n] = done;
        done
    }
}

/// What a task may do while it advances: send requests and set its timer.
pub(super) struct TaskIo<'a, 'c> {
    client: &'a mut ResearchClient,
    task: u64,
    ctx: &'a mut Context<'c>,
    sent: bool,
    wake: Option<Time>,
}

impl TaskIo<'_, '_> {
    /// Sends `body` to node `node` for this task's `stage` of `share`; returns its id.
    pub fn send(&mut self, node: NodeNum, share: u8, stage: Stage, body: Request) -> RequestId {
        let c = &mut *self.client;
        c.next_request = c.next_request.wrapping_add(1);
        let id = RequestId(c.next_request);
        let sent = Sent {
            task: self.task,
            node,
            share,
            stage,
        };
        c.requests.insert(id, sent);
        let msg = Message::Request {
            id,
            deadline: self.ctx.now().after(REQUEST_TIMEOUT),
            body,
        };
        let to = Addr::new(node_id(c.plan.seed, node), Service::Storage);
        self.ctx.send(to, msg);
        self.sent = true;
        id
    }

    /// The lease secret of every share this client places.
    pub fn lease(&self) -> LeaseSecret {
        self.client.lease
    }

    /// The upload secret of every share this client places: one client, uploading each share
    /// once, has nothing to keep apart from itself.
    pub fn upload(&self) -> UploadSecret {
        UploadSecret(self.client.lease.0)
    }

    pub fn now(&self) -> Time {
        self.ctx.now()
    }

    /// Reserves repair bandwidth of `node` for one share; returns when the transfer ends.
    pub fn reserve(&mut self, node: NodeNum) -> Time {
        let now = self.ctx.now();
        self.client.reserve(node, now)
    }

    /// Wakes the task at `at` (it must not have requests in flight).
    pub fn wake_at(&mut self, at: Time) {
        self.wake = Some(at);
    }
}

impl Actor for ResearchClient {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => self.start(ctx),
            Input::Timer(id) => self.on_timer(id, ctx),
            Input::Message {
                msg: Message::Response { id, body },
                ..
            } => self.on_response(id, body, ctx),
            Input::Message { .. }
            | Input::Local { .. }
            | Input::Plaintext { .. }
            | Input::OutputDrained
            | Input::Cancel(_) => {}
        }
    }
}

/// A ring key from an id's or storage index's bytes.
pub fn ring_key(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[4..12]);
    mix(u64::from_le_bytes(word), 0x7269_6e67)
}
