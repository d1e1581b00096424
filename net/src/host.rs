//! The real-runtime actor host: runs a node's actors on tokio.
//!
//! Each actor lives in its own tokio task that owns its state and takes one [`Input`] at a
//! time from a bounded mailbox ([`MAILBOX_CAPACITY`] inputs; whoever delivers to a full
//! mailbox awaits room, so a slow actor slows its senders rather than growing a queue). The
//! host gives every input a [`Context`](cairn_actors::Context) whose time is the wall clock
//! ([`now`], nanoseconds since the Unix epoch) and whose RNG is the actor's own `ChaCha8Rng`,
//! seeded from the OS, then carries out the effects the actor recorded:
//!
//! - timers run on `tokio::time`; each set gets a new generation number, so a timer that was
//!   re-set, cancelled, or belongs to a stopped actor never fires (as in the simulator);
//! - sends to actors of this node go through their mailboxes; sends to other nodes go to the
//!   node's [`Outbound`] (a transport, or the in-process [`LocalNetwork`] for tests);
//! - addresses an actor learnt (`Effect::Learn`: the client's verified announcements) go to
//!   the node's [`Outbound`], which is how a transport comes to dial storage servers;
//! - replies, output and pulls go to the local user through per-request channels, read with
//!   a [`LocalHandle`] from [`Node::request`];
//! - spawned actors get their own task and `Input::Start`; a stopped actor's task ends. A
//!   spawn that names a local request (`Effect::Spawn { local: Some(id), .. }`) hands that
//!   request to the new actor: from then on it is the one whose end abandons the request.
//!
//! Inputs that may hold a thread for long — the codec work of uploads, downloads and
//! repairs, and the storage server's and vdrive's store calls, which wait on the disk — run
//! inside `tokio::task::block_in_place` on a multi-threaded runtime: the worker hands its
//! other tasks to another thread first, so the node's connections and other actors keep
//! running (see `task::blocking`). Elsewhere (a current-thread runtime, madsim) they run in
//! place.
//!
//! An actor that panics ends its task only: the panic is logged, the actor is removed, and
//! the local requests it was handling are dropped, so their callers get
//! [`HostError::Abandoned`] instead of waiting forever.

mod local;
mod network;
mod task;
#[cfg(test)]
mod tests;

pub use local::{FnSource, LocalEvent, LocalHandle, PlaintextSource, Pull, SeekSource};
pub use network::LocalNetwork;

use cairn_actors::local::{LocalId, LocalRequest, LocalResponse};
use cairn_actors::{Actor, Addr, Input, Message, NodeId, Service, Time};
use local::ToUser;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use task::Envelope;
use tokio::sync::mpsc;

/// How many inputs an actor's mailbox holds before senders have to wait.
pub const MAILBOX_CAPACITY: usize = 256;

/// The current wall-clock time as an actor [`Time`]: nanoseconds since the Unix epoch (zero if
/// the clock is set before 1970).
pub fn now() -> Time {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Time(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// Where a node sends messages meant for other nodes: a transport, or [`LocalNetwork`].
pub trait Outbound: Send + Sync {
    /// Hands `msg` from the actor at `from` (on this node) to the actor at `to` (on another
    /// node). Must not block; delivery is best effort, as on any network. `Err` says the
    /// message was not even sent, and why (no address for the node, the node unreachable
    /// now): the host answers a request so refused at once, rather than let its sender wait
    /// out its timeout.
    fn send(&self, from: Addr, to: Addr, msg: Message) -> Result<(), Undelivered>;

    /// Node `node` is reachable at `address`: an actor of this node believed an announcement
    /// saying so (`Effect::Learn`). An outbound that dials nodes checks that the address is
    /// one it can use for `node`, and otherwise ignores it. Must not block.
    fn learn(&self, node: NodeId, address: &str);
}

/// Why a message was not sent (see [`Outbound::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered(pub String);

/// What can go wrong when using a [`Node`].
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No actor runs at that service (it never did, stopped, or panicked).
    #[error("no actor runs at {0:?} on this node")]
    NoActor(Service),
    /// An actor already runs at that service.
    #[error("an actor already runs at {0:?} on this node")]
    ServiceTaken(Service),
    /// The actor handling the request stopped or panicked without answering.
    #[error("local request {0:?} was abandoned: the actor handling it stopped or panicked")]
    Abandoned(LocalId),
    /// The OS gave no randomness to seed an actor's generator.
    #[error("could not seed an actor's random number generator: {0}")]
    Entropy(rand::Error),
    /// Reading an upload's plaintext failed.
    #[error("reading the upload's plaintext failed: {0}")]
    Source(std::io::Error),
    /// Writing a download's plaintext failed.
    #[error("writing the download's plaintext failed: {0}")]
    Sink(std::io::Error),
    /// A service's actor could not be made (its store would not open, say).
    #[error("could not start the service: {0}")]
    Factory(String),
}

/// A node's actors, running on tokio. Cheap to clone: clones share the node.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

struct Shared {
    id: NodeId,
    outbound: Arc<dyn Outbound>,
    actors: Mutex<HashMap<Service, Slot>>,
    locals: Mutex<HashMap<LocalId, LocalSlot>>,
    next_local: AtomicU64,
    next_incarnation: AtomicU64,
    /// Actors restarted after a panic, since the node started.
    restarts: AtomicU64,
    /// Set by [`Node::shutdown`]: nothing is restarted any more.
    stopped: std::sync::atomic::AtomicBool,
}

/// Makes a service's actor: when the node starts it, and again each time it panics.
pub type Factory = Arc<dyn Fn() -> Result<Box<dyn Actor>, String> + Send + Sync>;

/// A running actor: its mailbox, and which of the actors ever run at its service it is.
struct Slot {
    mailbox: mpsc::Sender<Envelope>,
    incarnation: u64,
}

/// A local request in progress: its user's channel, and the actor answering it now (the
/// service it was made of, until a spawn hands it over).
struct LocalSlot {
    user: mpsc::UnboundedSender<ToUser>,
    owner: Service,
}

impl Node {
    /// A node named `id` with no actors yet, sending to other nodes through `outbound`.
    pub fn new(id: NodeId, outbound: Arc<dyn Outbound>) -> Node {
        let shared = Shared {
            id,
            outbound,
            actors: Mutex::new(HashMap::new()),
            locals: Mutex::new(HashMap::new()),
            next_local: AtomicU64::new(1),
            next_incarnation: AtomicU64::new(1),
            restarts: AtomicU64::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
        };
        Node {
            shared: Arc::new(shared),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// Starts `actor` at `service` in a task of its own and gives it `Input::Start`. Must be
    /// called within a tokio runtime.
    pub fn spawn(&self, service: Service, actor: Box<dyn Actor>) -> Result<(), HostError> {
        task::start(self.clone(), service, actor, None)
    }

    /// Starts the long-lived service at `service` from `factory`, and starts it again from
    /// `factory` whenever it panics (after a backoff that grows while it keeps panicking):
    /// a panic a peer can trigger must not take the service down for good. Each restart is
    /// logged and counted ([`Node::restarts`]).
    pub fn spawn_service(&self, service: Service, factory: Factory) -> Result<(), HostError> {
        let actor = factory().map_err(HostError::Factory)?;
        task::start(
            self.clone(),
            service,
            actor,
            Some(task::Restart::new(factory)),
        )
    }

    /// Inputs waiting in the actors' mailboxes, by kind of service (the actors of one kind
    /// of operation added together): a service that falls behind shows here first.
    pub fn mailbox_depths(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut depths = std::collections::BTreeMap::new();
        for (service, slot) in lock(&self.shared.actors).iter() {
            let waiting = slot.mailbox.max_capacity() - slot.mailbox.capacity();
            *depths.entry(service.kind()).or_insert(0) += waiting;
        }
        depths
    }

    /// How many actors were restarted after a panic.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    fn count_restart(&self) {
        self.shared.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether [`Node::shutdown`] was called.
    fn stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// Starts `actor` at `service` and, if `local` names a request, hands that request to it
    /// first (so that the new actor's end, however soon, abandons it). A request whose new
    /// actor could not start is abandoned at once rather than left waiting for an answer
    /// nobody will give.
    fn spawn_answering(
        &self,
        service: Service,
        actor: Box<dyn Actor>,
        local: Option<LocalId>,
    ) -> Result<(), HostError> {
        if let Some(id) = local {
            self.set_owner(id, service);
        }
        let started = task::start(self.clone(), service, actor, None);
        if let (Err(_), Some(id)) = (&started, local) {
            lock(&self.shared.locals).remove(&id);
        }
        started
    }

    /// Whether an actor runs at `service`.
    pub fn is_running(&self, service: Service) -> bool {
        lock(&self.shared.actors).contains_key(&service)
    }

    /// Delivers `msg` from `from` (usually on another node: this is the transport's way in)
    /// to the actor at `service`, waiting while its mailbox is full.
    pub async fn deliver(
        &self,
        from: Addr,
        service: Service,
        msg: Message,
    ) -> Result<(), HostError> {
        self.input(service, Input::Message { from, msg }).await
    }

    /// Makes a local request of the actor at `service` (normally `Service::Client`); its
    /// output, pulls and final response come through the returned handle.
    pub async fn request(
        &self,
        service: Service,
        request: LocalRequest,
    ) -> Result<LocalHandle, HostError> {
        let id = LocalId(self.shared.next_local.fetch_add(1, Ordering::Relaxed));
        let (user, events) = mpsc::unbounded_channel();
        let slot = LocalSlot {
            user,
            owner: service,
        };
        lock(&self.shared.locals).insert(id, slot);
        let sent = self.input(service, Input::Local { id, request }).await;
        if let Err(error) = sent {
            lock(&self.shared.locals).remove(&id);
            return Err(error);
        }
        Ok(LocalHandle::new(id, self.clone(), events))
    }

    /// Cancels local request `id` (`Input::Cancel` to the actor answering it now); nothing
    /// if it has ended.
    pub async fn cancel(&self, id: LocalId) {
        let owner = lock(&self.shared.locals).get(&id).map(|slot| slot.owner);
        if let Some(owner) = owner {
            if let Err(error) = self.input(owner, Input::Cancel(id)).await {
                tracing::debug!(?id, "cancel undelivered: {error}");
            }
        }
    }

    /// Removes every actor: each task ends once it has finished its current input (queued
    /// inputs are dropped, timers with it). Pending local requests are abandoned.
    pub fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        lock(&self.shared.actors).clear();
        lock(&self.shared.locals).clear();
    }

    /// Hands `input` to the actor at `service`, waiting while its mailbox is full.
    async fn input(&self, service: Service, input: Input) -> Result<(), HostError> {
        let mailbox = self.mailbox(service).ok_or(HostError::NoActor(service))?;
        mailbox
            .send(Envelope::Input(input))
            .await
            .map_err(|_| HostError::NoActor(service))
    }

    fn mailbox(&self, service: Service) -> Option<mpsc::Sender<Envelope>> {
        lock(&self.shared.actors)
            .get(&service)
            .map(|slot| slot.mailbox.clone())
    }

    /// Registers a new actor's mailbox; its incarnation number, or `None` if the service is
    /// taken.
    fn register(&self, service: Service, mailbox: mpsc::Sender<Envelope>) -> Option<u64> {
        let mut actors = lock(&self.shared.actors);
        if actors.contains_key(&service) {
            return None;
        }
        let incarnation = self.shared.next_incarnation.fetch_add(1, Ordering::Relaxed);
        actors.insert(
            service,
            Slot {
                mailbox,
                incarnation,
            },
        );
        Some(incarnation)
    }

    /// Forgets an actor whose task has ended, and abandons the local requests it held.
    fn retire(&self, service: Service, incarnation: u64) {
        let mut actors = lock(&self.shared.actors);
        if actors.get(&service).map(|s| s.incarnation) != Some(incarnation) {
            return;
        }
        actors.remove(&service);
        drop(actors);
        lock(&self.shared.locals).retain(|_, slot| slot.owner != service);
    }

    /// Records that the actor at `owner` now answers local request `id` (a spawn handed it
    /// over).
    fn set_owner(&self, id: LocalId, owner: Service) {
        if let Some(slot) = lock(&self.shared.locals).get_mut(&id) {
            slot.owner = owner;
        }
    }

    /// Passes output or a pull from the actor at `from` to the user of request `id`.
    fn to_user(&self, id: LocalId, from: Service, event: ToUser) {
        let mut locals = lock(&self.shared.locals);
        let Some(slot) = locals.get_mut(&id) else {
            tracing::debug!(?id, ?from, "local user gone; dropping its output or pull");
            return;
        };
        if slot.owner != from {
            // Only a hand-over moves a request: an actor writing for one it was not handed
            // does not make it the owner.
            tracing::debug!(?id, ?from, owner = ?slot.owner, "output or pull from a non-owner");
        }
        if slot.user.send(event).is_err() {
            locals.remove(&id);
        }
    }

    /// Gives request `id` its final response; the request is finished.
    fn reply(&self, id: LocalId, response: LocalResponse) {
        let slot = lock(&self.shared.locals).remove(&id);
        match slot {
            Some(slot) => {
                let _ = slot.user.send(ToUser::Reply(response));
            }
            None => tracing::debug!(?id, "local user gone; dropping its reply"),
        }
    }
}

/// Locks `mutex`, ignoring poisoning: the host's maps stay consistent across a panic because
/// no code panics while holding them.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
