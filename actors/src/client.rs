//! The client: one per node. It keeps the node's picture of the grid (the storage servers the
//! introducer announces) and serves the node's local user: it spawns an [`Uploader`] or a
//! [`Downloader`] per transfer, forwards vdrive operations to the vdrive, and reports status.
//!
//! The client does no transfer work itself: a spawned operation talks to the local user
//! directly (its pulls, plaintext and output are routed to it by the host), so a slow upload
//! never holds up the node's other requests.
//!
//! Grid knowledge is soft state. The client subscribes to each of its introducers on start
//! and again every `resubscribe_interval`, so a restarted introducer learns of it again;
//! servers already known are kept meanwhile, and while any one introducer is up the client
//! goes on learning of servers. A server counts as reachable while it has been heard of with a
//! newer announcement within [`FRESH_INTERVALS`] resubscribe intervals: storage servers
//! re-announce periodically with a rising `seq`, and each resubscription brings the newest.

use crate::actor::{Actor, Addr, Context, Effect, Input, OpId, Service, Time, TimerId};
use crate::checker::Checker;
use crate::downloader::Downloader;
use crate::ids::NodeId;
use crate::local::{LocalId, LocalRequest, LocalResponse, ServerStatus, StatusReport};
use crate::protocol::{Announcement, Message, Request, RequestId, Response};
use crate::repairer::Repairer;
use crate::requests::Requests;
use crate::uploader::{UploadConfig, Uploader};
use crate::vdrive::{VdriveError, VdriveOp};
use std::collections::BTreeMap;
use std::time::Duration;

/// The most storage servers a client remembers by default; when full, the one heard from
/// least recently makes room.
pub const MAX_KNOWN_SERVERS: usize = 100_000;
/// A server is reported reachable while its newest announcement arrived within this many
/// resubscribe intervals.
pub const FRESH_INTERVALS: u32 = 3;

/// The shortest resubscribe interval used, whatever the configuration says.
pub const MIN_RESUBSCRIBE_INTERVAL: Duration = Duration::from_secs(1);

/// Fires every `resubscribe_interval`.
const RESUBSCRIBE: TimerId = TimerId(0);
/// Fires at the earliest deadline among the requests in flight.
const SWEEP: TimerId = TimerId(1);

/// How a client talks to the grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long to wait for the introducer, the vdrive, or a storage server (downloads).
    pub request_timeout: Duration,
    /// How often to subscribe to the introducer again (at least
    /// [`MIN_RESUBSCRIBE_INTERVAL`]).
    pub resubscribe_interval: Duration,
    /// What every upload this client starts is given.
    pub upload: UploadConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            request_timeout: Duration::from_secs(60),
            resubscribe_interval: Duration::from_secs(60),
            upload: UploadConfig::default(),
        }
    }
}

/// What a request of the client is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// A subscription to the introducer.
    Subscribe,
    /// A vdrive operation for this local request.
    Vdrive(LocalId),
    /// A step of this directory operation.
    Dir(LocalId),
}

/// A storage server the client has heard of.
struct Known {
    announcement: Announcement,
    /// When its newest announcement arrived.
    heard: Time,
}

/// The node's client actor (`Service::Client`). See the module docs.
pub struct Client {
    /// The introducers to learn servers from (any one up is enough).
    introducers: Vec<Addr>,
    vdrive: Option<Addr>,
    config: ClientConfig,
    max_servers: usize,
    servers: BTreeMap<NodeId, Known>,
    /// Subscriptions and vdrive operations in flight.
    requests: Requests<Purpose>,
    /// When an introducer last answered a Subscribe.
    introducer_answered: Option<Time>,
    next_op: u64,
    dir_tasks: BTreeMap<LocalId, dirs::DirTask>,
    /// The latest version seen of each directory (a server must not roll one back).
    seen: dirs::Seen,
}

impl Client {
    /// A client that learns of servers from `introducer` and sends vdrive operations to
    /// `vdrive` (either may be absent: a node with no grid, or no vdrive).
    pub fn new(introducer: Option<Addr>, vdrive: Option<Addr>, config: ClientConfig) -> Self {
        Client {
            introducers: introducer.into_iter().collect(),
            vdrive,
            requests: Requests::new(config.request_timeout, SWEEP),
            config,
            max_servers: MAX_KNOWN_SERVERS,
            servers: BTreeMap::new(),
            introducer_answered: None,
            next_op: 1,
            dir_tasks: BTreeMap::new(),
            seen: dirs::Seen::default(),
        }
    }

    /// The same client learning of servers from `more` introducers too.
    pub fn with_more_introducers(mut self, more: impl IntoIterator<Item = Addr>) -> Self {
        for introducer in more {
            if !self.introducers.contains(&introducer) {
                self.introducers.push(introducer);
            }
        }
        self
    }

    /// The same client remembering at most `max` servers (for tests and small simulations).
    pub fn with_server_limit(mut self, max: usize) -> Self {
        self.max_servers = max.max(1);
        self
    }

    /// The storage servers known, in node id order.
    pub fn servers(&self) -> Vec<NodeId> {
        self.servers.keys().copied().collect()
    }

    /// Subscribes to each introducer (on start, and every interval after).
    fn subscribe(&mut self, ctx: &mut Context<'_>) {
        if self.introducers.is_empty() {
            return;
        }
        for &introducer in &self.introducers {
            self.requests
                .send(ctx, introducer, Request::Subscribe, Purpose::Subscribe);
        }
        ctx.set_timer(RESUBSCRIBE, self.resubscribe_interval());
    }

    /// The interval the client really resubscribes at: the configured one, but at least
    /// [`MIN_RESUBSCRIBE_INTERVAL`] (a zero interval would resubscribe in a loop without time
    /// passing). Freshness is counted in these intervals too.
    fn resubscribe_interval(&self) -> Duration {
        self.config
            .resubscribe_interval
            .max(MIN_RESUBSCRIBE_INTERVAL)
    }

    // ---- the grid ----

    /// Keeps each announcement that is newer than what is known of its server and verifies,
    /// and tells the host where a server it keeps is reachable. Only the introducers are
    /// listened to: anyone else could replay old announcements, or point the node at any
    /// address it likes. (An introducer cannot forge an announcement, only withhold one.)
    fn on_announcements(&mut self, from: Addr, list: Vec<Announcement>, ctx: &mut Context<'_>) {
        if !self.introducers.contains(&from) {
            tracing::debug!(
                ?from,
                "client: announcements not from the introducer, ignored"
            );
            return;
        }
        for a in list {
            let newer = self
                .servers
                .get(&a.node)
                .is_none_or(|k| k.announcement.seq < a.seq);
            // Verify after the cheap check: a resubscription repeats what is known already.
            if !newer {
                continue;
            }
            if !a.verify() {
                tracing::debug!(node = ?a.node, "client: announcement does not verify, ignored");
                continue;
            }
            self.remember(a, ctx);
        }
    }

    /// Keeps a believed announcement and tells the host where its server is, so that the node
    /// can reach it. Every newer announcement is passed on, not only a moved address: a host
    /// forgets a peer that keeps failing until it is announced again, and a restarted server
    /// announces again on its old address.
    fn remember(&mut self, announcement: Announcement, ctx: &mut Context<'_>) {
        let node = announcement.node;
        if !self.servers.contains_key(&node) && self.servers.len() >= self.max_servers {
            self.forget_stalest();
        }
        let address = announcement.address.clone();
        ctx.push(Effect::Learn { node, address });
        let known = Known {
            announcement,
            heard: ctx.now(),
        };
        self.servers.insert(node, known);
        debug_assert!(self.servers.len() <= self.max_servers);
    }

    fn forget_stalest(&mut self) {
        let stalest = self
            .servers
            .iter()
            .min_by_key(|(node, k)| (k.heard, **node))
            .map(|(node, _)| *node);
        if let Some(node) = stalest {
            tracing::info!(?node, "client: server table full, forgot the stalest");
            self.servers.remove(&node);
        }
    }

    fn status(&self, now: Time) -> StatusReport {
        let fresh = self.resubscribe_interval().saturating_mul(FRESH_INTERVALS);
        let servers = self
            .servers
            .iter()
            .map(|(&id, k)| ServerStatus {
                id,
                address: k.announcement.address.clone(),
                nickname: k.announcement.nickname.clone(),
                figures: k.announcement.figures,
                reachable: now.since(k.heard) <= fresh,
                heard_ago: now.since(k.heard),
            })
            .collect();
        // The introducer is answered once per interval: allow one interval and a timeout.
        let patience = self
            .resubscribe_interval()
            .saturating_add(self.config.request_timeout);
        StatusReport {
            introducer_connected: self
                .introducer_answered
                .is_some_and(|at| now.since(at) <= patience),
            servers,
        }
    }

    // ---- local requests ----

    fn on_local(&mut self, id: LocalId, request: LocalRequest, ctx: &mut Context<'_>) {
        match request {
            LocalRequest::Upload {
                key,
                params,
                happy,
                size,
            } => {
                let servers = self.servers();
                let upload = self.config.upload.clone();
                let actor = Uploader::new(id, key, params, happy, size, servers, upload);
                self.spawn(id, Service::Upload, Box::new(actor), ctx);
            }
            LocalRequest::Download { cap } => {
                let timeout = self.config.request_timeout;
                let actor = Downloader::new(id, cap, self.servers(), timeout);
                self.spawn(id, Service::Download, Box::new(actor), ctx);
            }
            LocalRequest::Vdrive(op) => self.vdrive_request(id, op, ctx),
            LocalRequest::Dir(request) => self.dir_request(id, request, ctx),
            LocalRequest::Status => {
                let report = self.status(ctx.now());
                ctx.reply(id, LocalResponse::Status(report));
            }
            LocalRequest::Check {
                cap,
                happy,
                options,
            } => {
                let servers = self.live_servers(ctx.now());
                let timeout = self.config.request_timeout;
                let mut actor = Checker::new(id, cap, happy, options, servers, timeout);
                actor.renew_with(self.config.upload.lease_secret);
                self.spawn(id, Service::Check, Box::new(actor), ctx);
            }
            LocalRequest::Repair {
                cap,
                happy,
                options,
                distrusted,
            } => {
                let servers = self.live_servers(ctx.now());
                let config = self.config.upload.clone();
                let mut actor = Repairer::new(id, cap, happy, options, servers, config);
                actor.distrust(distrusted);
                self.spawn(id, Service::Repair, Box::new(actor), ctx);
            }
        }
    }

    /// The servers believed up, for checks and repairs: those announced recently (a server
    /// that left the grid stops announcing, and a repair must not count on it nor place
    /// shares on it), or every server known if none is fresh (no introducer).
    fn live_servers(&self, now: Time) -> Vec<NodeId> {
        let fresh = self.resubscribe_interval().saturating_mul(FRESH_INTERVALS);
        let live: Vec<NodeId> = self
            .servers
            .iter()
            .filter(|(_, k)| now.since(k.heard) <= fresh)
            .map(|(&id, _)| id)
            .collect();
        match live.is_empty() {
            true => self.servers(),
            false => live,
        }
    }

    /// Starts `actor` as a new operation and hands it local request `local`: the operation
    /// answers it, and the client is done with it.
    fn spawn(
        &mut self,
        local: LocalId,
        service: fn(OpId) -> Service,
        actor: Box<dyn Actor>,
        ctx: &mut Context<'_>,
    ) {
        let op = OpId(self.next_op);
        self.next_op += 1;
        ctx.push(Effect::Spawn {
            service: service(op),
            actor,
            local: Some(local),
        });
    }

    fn vdrive_request(&mut self, local: LocalId, op: VdriveOp, ctx: &mut Context<'_>) {
        let Some(vdrive) = self.vdrive else {
            let why = "no vdrive is configured for this node: set the vdrive's address in its \
                       configuration";
            return vdrive_reply(ctx, local, Err(VdriveError::Unreachable(why.into())));
        };
        self.requests
            .send(ctx, vdrive, Request::Vdrive(op), Purpose::Vdrive(local));
    }

    // ---- answers ----

    fn on_response(&mut self, from: Addr, id: RequestId, body: Response, ctx: &mut Context<'_>) {
        match self.requests.get(from, id).copied() {
            Some(Purpose::Subscribe) => {
                self.requests.take(id);
                self.on_subscribed(body, ctx.now());
            }
            Some(Purpose::Vdrive(local)) => self.on_vdrive_answer(id, local, body, ctx),
            Some(Purpose::Dir(local)) => {
                if !matches!(
                    body,
                    Response::DirRecord(_) | Response::Ok | Response::Err(_)
                ) {
                    return; // not an answer to a directory request
                }
                self.requests.take(id);
                self.on_dir_answer(local, body, ctx);
            }
            None => {}
        }
    }

    fn on_subscribed(&mut self, body: Response, now: Time) {
        match body {
            Response::Ok => self.introducer_answered = Some(now),
            other => {
                tracing::info!(answer = ?other, "client: the introducer refused to subscribe us")
            }
        }
    }

    fn on_vdrive_answer(
        &mut self,
        id: RequestId,
        local: LocalId,
        body: Response,
        ctx: &mut Context<'_>,
    ) {
        let result = match body {
            Response::Vdrive(result) => result,
            Response::Err(e) => Err(VdriveError::Unreachable(format!(
                "the vdrive's node refused the request: {e}"
            ))),
            // Not an answer to a vdrive request: ignore it; the request times out if nothing
            // better comes.
            _ => return,
        };
        self.requests.take(id);
        vdrive_reply(ctx, local, result);
    }

    /// Requests past their deadline: a vdrive request is answered with an error; a
    /// Subscribe is simply forgotten (the next interval tries again).
    fn on_sweep(&mut self, ctx: &mut Context<'_>) {
        for (_, _, purpose) in self.requests.take_late(ctx.now()) {
            match purpose {
                Purpose::Vdrive(local) => {
                    let why = format!(
                        "no answer within {:?}; check that the vdrive's node is up and \
                         reachable (it may have applied the change)",
                        self.config.request_timeout
                    );
                    vdrive_reply(ctx, local, Err(VdriveError::Unreachable(why)));
                }
                Purpose::Dir(local) => self.dir_timed_out(local, ctx),
                Purpose::Subscribe => {}
            }
        }
        self.requests.rearm(ctx);
    }
}

fn vdrive_reply(
    ctx: &mut Context<'_>,
    to: LocalId,
    result: Result<crate::vdrive::VdriveReply, VdriveError>,
) {
    ctx.reply(to, LocalResponse::Vdrive(result));
}

impl Actor for Client {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => {
                self.requests.start(ctx);
                self.subscribe(ctx)
            }
            Input::Timer(RESUBSCRIBE) => self.subscribe(ctx),
            Input::Timer(SWEEP) => self.on_sweep(ctx),
            Input::Message {
                from,
                msg: Message::Announcements(list),
            } => self.on_announcements(from, list, ctx),
            Input::Message {
                from,
                msg: Message::Response { id, body },
            } => self.on_response(from, id, body, ctx),
            Input::Local { id, request } => self.on_local(id, request, ctx),
            // Requests to a client, stray timers, plaintext and drained output (routed to
            // the operations, not here): nothing to do.
            _ => {}
        }
    }
}

mod dirs;

#[cfg(test)]
mod tests;
