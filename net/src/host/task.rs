//! One actor's task: its mailbox loop, its timers, and the effects it records.

use super::local::ToUser;
use super::Undelivered;
use super::{now, Factory, HostError, Node, MAILBOX_CAPACITY};
use cairn_actors::local::LocalId;
use cairn_actors::protocol::{RemoteError, Response};
use cairn_actors::{Actor, Addr, Context, Effect, Input, Message, Service, Time, TimerId};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What an actor's mailbox carries.
pub(super) enum Envelope {
    /// An input for the actor.
    Input(Input),
    /// A timer went off; it fires only if `generation` is still the timer's current one.
    Timer { id: TimerId, generation: u64 },
}

/// How a panicked service is made again: its factory, and how it has fared so far.
pub(super) struct Restart {
    factory: Factory,
    /// Restarts in a row (each within [`STEADY`] of the last), which lengthen the wait.
    attempts: u32,
    started: Instant,
}

/// The first wait before restarting a panicked service; it doubles with each restart in a
/// row, up to [`MAX_RESTART_WAIT`].
const FIRST_RESTART_WAIT: Duration = Duration::from_millis(100);
const MAX_RESTART_WAIT: Duration = Duration::from_secs(60);
/// A service that ran this long before panicking starts again from the first wait.
const STEADY: Duration = Duration::from_secs(300);

impl Restart {
    pub(super) fn new(factory: Factory) -> Self {
        Restart {
            factory,
            attempts: 0,
            started: Instant::now(),
        }
    }

    /// The restart after a panic now: its wait, and the state it starts with.
    fn next(self) -> (Duration, Restart) {
        let attempts = match self.started.elapsed() >= STEADY {
            true => 0,
            false => self.attempts.saturating_add(1),
        };
        let wait = FIRST_RESTART_WAIT
            .saturating_mul(1 << attempts.min(16))
            .min(MAX_RESTART_WAIT);
        let restart = Restart {
            factory: self.factory,
            attempts,
            started: Instant::now() + wait,
        };
        (wait, restart)
    }
}

/// Starts `actor` at `service` on `node`: registers its mailbox, queues `Input::Start`, and
/// spawns its task and a supervisor that cleans up when the task ends (or panics) and, for a
/// service with a `restart`, makes it again after a panic.
pub(super) fn start(
    node: Node,
    service: Service,
    actor: Box<dyn Actor>,
    restart: Option<Restart>,
) -> Result<(), HostError> {
    let rng = seeded_rng()?;
    let (mailbox, inbox) = mpsc::channel(MAILBOX_CAPACITY);
    // A fresh channel has room for `Start`: this cannot fail.
    let _ = mailbox.try_send(Envelope::Input(Input::Start));
    let timers = Timers::new(mailbox.downgrade());
    let incarnation = node
        .register(service, mailbox)
        .ok_or(HostError::ServiceTaken(service))?;
    let runner = Runner {
        me: Addr::new(node.id(), service),
        node: node.clone(),
        actor,
        rng,
        timers,
    };
    let task = tokio::spawn(runner.run(inbox));
    tokio::spawn(async move {
        let panicked = match task.await {
            Err(error) if error.is_panic() => {
                let message = panic_message(error);
                tracing::error!(node = ?node.id(), ?service, "actor panicked: {message}");
                true
            }
            Err(_) => {
                tracing::debug!(node = ?node.id(), ?service, "actor task cancelled");
                false
            }
            Ok(()) => false,
        };
        node.retire(service, incarnation);
        if let (true, Some(restart)) = (panicked, restart) {
            restart_later(node, service, restart).await;
        }
    });
    Ok(())
}

/// Makes a panicked service again after its wait, unless the node has stopped meanwhile.
async fn restart_later(node: Node, service: Service, restart: Restart) {
    let (wait, restart) = restart.next();
    tracing::warn!(node = ?node.id(), ?service, ?wait, "restarting the service after its panic");
    tokio::time::sleep(wait).await;
    if node.stopped() {
        return;
    }
    node.count_restart();
    let started = (restart.factory)()
        .map_err(HostError::Factory)
        .and_then(|actor| start(node.clone(), service, actor, Some(restart)));
    if let Err(error) = started {
        tracing::error!(node = ?node.id(), ?service, "the service could not be restarted: {error}");
    }
}

/// A generator seeded from the OS (or the simulation).
fn seeded_rng() -> Result<ChaCha8Rng, HostError> {
    let seed = crate::entropy::seed().map_err(HostError::Entropy)?;
    Ok(ChaCha8Rng::from_seed(seed))
}

/// An actor and what its host keeps for it.
struct Runner {
    me: Addr,
    node: Node,
    actor: Box<dyn Actor>,
    rng: ChaCha8Rng,
    timers: Timers,
}

impl Runner {
    /// Handles inputs one at a time until the actor stops or its mailbox is closed.
    async fn run(mut self, mut inbox: mpsc::Receiver<Envelope>) {
        while let Some(envelope) = inbox.recv().await {
            let input = match envelope {
                Envelope::Input(input) => input,
                Envelope::Timer { id, generation } if self.timers.take(id, generation) => {
                    Input::Timer(id)
                }
                Envelope::Timer { .. } => continue,
            };
            let effects = self.handle(input);
            if !self.carry_out(effects).await {
                break;
            }
        }
    }

    fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut ctx = Context::new(now(), self.me, &mut self.rng);
        if blocks_its_thread(self.me.service) {
            blocking(|| self.actor.handle(input, &mut ctx));
        } else {
            self.actor.handle(input, &mut ctx);
        }
        ctx.into_effects()
    }

    /// Carries out `effects` in order; false if the actor stopped.
    async fn carry_out(&mut self, effects: Vec<Effect>) -> bool {
        let mut running = true;
        let me = self.me.service;
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => send(&self.node, self.me, to, msg).await,
                Effect::SetTimer { id, at } => self.timers.set(id, at),
                Effect::CancelTimer { id } => self.timers.cancel(id),
                Effect::Reply { to, response } => self.node.reply(to, response),
                Effect::Output { to, data } => {
                    self.node.to_user(to, me, ToUser::Output { from: me, data })
                }
                Effect::Pull { from, offset, max } => {
                    let pull = ToUser::Pull {
                        from: me,
                        offset,
                        max,
                    };
                    self.node.to_user(from, me, pull)
                }
                Effect::Spawn {
                    service,
                    actor,
                    local,
                } => self.spawn(service, actor, local),
                Effect::Learn { node, address } => self.node.shared.outbound.learn(node, &address),
                Effect::Stop => running = false,
            }
        }
        running
    }

    fn spawn(&self, service: Service, actor: Box<dyn Actor>, local: Option<LocalId>) {
        if let Err(error) = self.node.spawn_answering(service, actor, local) {
            tracing::warn!(by = ?self.me, ?service, ?local, "spawn failed: {error}");
        }
    }
}

/// Sends `msg` from the actor at `me`: through the mailbox of an actor of this node, or to
/// the node's [`Outbound`](super::Outbound).
async fn send(node: &Node, me: Addr, to: Addr, msg: Message) {
    if to.node != me.node {
        let id = match &msg {
            Message::Request { id, .. } => Some(*id),
            _ => None,
        };
        if let (Err(Undelivered(why)), Some(id)) = (node.shared.outbound.send(me, to, msg), id) {
            // Answered at once, as the node would have been had it been reached.
            let body = Response::Err(RemoteError::Unreachable(why));
            let answer = Input::Message {
                from: to,
                msg: Message::Response { id, body },
            };
            if let Some(mailbox) = node.mailbox(me.service) {
                let _ = mailbox.try_send(Envelope::Input(answer));
            }
        }
        return;
    }
    let Some(mailbox) = node.mailbox(to.service) else {
        return tracing::debug!(from = ?me, ?to, "no such actor; message dropped");
    };
    let envelope = Envelope::Input(Input::Message { from: me, msg });
    // Waiting for room in its own mailbox would wait forever.
    let sent = if to.service == me.service {
        mailbox.try_send(envelope).is_ok()
    } else {
        mailbox.send(envelope).await.is_ok()
    };
    if !sent {
        tracing::debug!(from = ?me, ?to, "mailbox closed or full; message dropped");
    }
}

/// An actor's timers: each has a generation (the latest set wins) and a sleeping task that
/// posts it to the actor's mailbox. Dropping the timers aborts their tasks.
struct Timers {
    mailbox: mpsc::WeakSender<Envelope>,
    armed: HashMap<TimerId, (u64, AbortHandle)>,
    generation: u64,
}

impl Timers {
    fn new(mailbox: mpsc::WeakSender<Envelope>) -> Self {
        Timers {
            mailbox,
            armed: HashMap::new(),
            generation: 0,
        }
    }

    /// Sets timer `id` to fire at `at`, replacing any earlier setting.
    fn set(&mut self, id: TimerId, at: Time) {
        self.generation += 1;
        let generation = self.generation;
        let deadline = Instant::now() + Duration::from_nanos(at.0.saturating_sub(now().0));
        let mailbox = self.mailbox.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(mailbox) = mailbox.upgrade() {
                let _ = mailbox.send(Envelope::Timer { id, generation }).await;
            }
        });
        if let Some((_, old)) = self.armed.insert(id, (generation, task.abort_handle())) {
            old.abort();
        }
    }

    fn cancel(&mut self, id: TimerId) {
        if let Some((_, task)) = self.armed.remove(&id) {
            task.abort();
        }
    }

    /// Whether `generation` is timer `id`'s current one; if so, the timer is spent.
    fn take(&mut self, id: TimerId, generation: u64) -> bool {
        let current = self.armed.get(&id).is_some_and(|(g, _)| *g == generation);
        if current {
            self.armed.remove(&id);
        }
        current
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        for (_, task) in self.armed.values() {
            task.abort();
        }
    }
}

/// What a panicked task's error says about the panic.
#[cfg(not(madsim))]
fn panic_message(error: tokio::task::JoinError) -> String {
    cairn_actors::actor::panic_message(&*error.into_panic())
}

/// Whether an actor at `service` may hold its thread for long within one input, so that its
/// inputs are handled through [`blocking`]: uploads, downloads and repairs do seconds of
/// codec work per file, a segment per input; the storage server and the vdrive call their
/// stores synchronously, and a store's writes, renames and fsyncs wait on the disk.
fn blocks_its_thread(service: Service) -> bool {
    matches!(
        service,
        Service::Upload(_)
            | Service::Download(_)
            | Service::Repair(_)
            | Service::Storage
            | Service::Vdrive
    )
}

/// madsim's join errors do not carry the panic's payload.
#[cfg(madsim)]
fn panic_message(error: tokio::task::JoinError) -> String {
    error.to_string()
}

/// Runs `work`, which may block its thread for long: encrypting, hashing and erasure coding
/// a segment, or waiting for a store's disk writes and fsyncs.
///
/// On a multi-threaded runtime (the one nodes run on) this is `block_in_place`: the worker
/// thread first hands its queue of other tasks (connections, other actors, timers) to
/// another thread, then runs `work` in place, so the node's network I/O and its other actors
/// keep going meanwhile. The actor's own task stays where it is: it still handles one input
/// at a time, and nothing is copied or moved to another thread. A current-thread runtime
/// (tokio's default in `#[tokio::test]`) has nowhere to move the other tasks, and there
/// `block_in_place` panics: `work` just runs, holding the only thread.
#[cfg(not(madsim))]
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    if flavor.is_ok_and(|f| f == tokio::runtime::RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Under madsim there is one simulated thread and no `block_in_place`: `work` just runs (its
/// time does not count on madsim's clock).
#[cfg(madsim)]
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    work()
}
