//! The actor model every part of cairn is written in: inputs in, effects out.
//!
//! An actor is a plain state machine. Its host (the simulator, or the tokio runtime in `net`)
//! hands it one [`Input`] at a time with a [`Context`]; the actor answers only by recording
//! [`Effect`]s in that context. Time and randomness come from the context too, so an actor run
//! is a pure function of its inputs and its seed: that is what makes the simulator
//! deterministic and a failing run replayable.

use crate::ids::NodeId;
use crate::local::{LocalId, LocalRequest, LocalResponse};
use crate::protocol::Message;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in time: nanoseconds since the host's epoch — the start of a simulation, or the
/// Unix epoch for the real runtime, so that times stay comparable across restarts and
/// between nodes (announcement sequence numbers and lease expiries rely on that).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Time(pub u64);

impl Time {
    /// `self + d`, saturating.
    pub fn after(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }

    /// How long after `earlier` this is (zero if it is not after).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.0 as f64 / 1e9)
    }
}

/// A long-running operation's number, unique within its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub u64);

/// Which actor of a node: the services a node may run, and the operations it spawns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Service {
    Introducer,
    Storage,
    Vdrive,
    /// The node's client: knows the grid, runs uploads and downloads for local users.
    Client,
    Upload(OpId),
    Download(OpId),
    /// A check of one file's shares (reads only what servers say they hold).
    Check(OpId),
    /// A repair of one file: reads shares, makes the missing ones, places them.
    Repair(OpId),
}

impl Service {
    /// What kind of service it is, in a word (the same for every operation of one kind).
    pub fn kind(self) -> &'static str {
        match self {
            Service::Introducer => "introducer",
            Service::Storage => "storage",
            Service::Vdrive => "vdrive",
            Service::Client => "client",
            Service::Upload(_) => "upload",
            Service::Download(_) => "download",
            Service::Check(_) => "check",
            Service::Repair(_) => "repair",
        }
    }
}

/// Where an actor lives: a node and one of its services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Addr {
    pub node: NodeId,
    pub service: Service,
}

impl Addr {
    pub fn new(node: NodeId, service: Service) -> Self {
        Addr { node, service }
    }

    /// The storage service of `node`.
    pub fn storage(node: NodeId) -> Self {
        Addr::new(node, Service::Storage)
    }
}

/// An actor's own name for one of its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// One thing that happens to an actor.
#[derive(Debug)]
pub enum Input {
    /// The actor has just been created (or re-created after a restart).
    Start,
    /// A message from another actor.
    Message { from: Addr, msg: Message },
    /// A timer the actor set has fired.
    Timer(TimerId),
    /// A request from this node's local user (the CLI, a test's workload).
    Local { id: LocalId, request: LocalRequest },
    /// Plaintext for an upload, answering [`Effect::Pull`]: the bytes at `offset` (fewer than
    /// asked only at the end of the input; none for a pull at or past the end, which is how
    /// an uploader checks that the input is not longer than promised).
    Plaintext { offset: u64, data: Vec<u8> },
    /// The local user has consumed an [`Effect::Output`]: more may follow.
    OutputDrained,
    /// The local user gave up on local request `id`, which this actor answers: end it, undo
    /// what can be undone (an upload aborts the shares it allocated), and reply.
    Cancel(LocalId),
}

/// One thing an actor asks its host to do.
pub enum Effect {
    /// Deliver `msg` to the actor at `to` (maybe: networks lose messages).
    Send { to: Addr, msg: Message },
    /// Fire `Input::Timer(id)` at `at` (replaces an earlier timer with the same id).
    SetTimer { id: TimerId, at: Time },
    /// Forget a timer.
    CancelTimer { id: TimerId },
    /// Answer a local request; the request is finished.
    Reply {
        to: LocalId,
        response: LocalResponse,
    },
    /// Verified plaintext for a local download, in order.
    Output { to: LocalId, data: Vec<u8> },
    /// Ask the local user for up to `max` bytes of an upload's plaintext at `offset` (an
    /// uploader re-reads earlier bytes only to rebuild a share whose server died).
    Pull {
        from: LocalId,
        offset: u64,
        max: usize,
    },
    /// Start another actor on this node (an upload or download, say).
    Spawn {
        service: Service,
        actor: Box<dyn Actor>,
        /// The local request this actor now answers, if the spawner hands one over (as the
        /// client does with each transfer, check and repair): from here on the new actor
        /// replies to it, outputs and pulls for it, and the host abandons the request if the
        /// new actor ends without replying. `None` leaves every local request where it was.
        local: Option<LocalId>,
    },
    /// Node `node` is reachable at `address`, per an announcement this actor believed (the
    /// client: one from its own introducer, newer than what it knew, whose signature
    /// verifies). A host that dials nodes (the real runtime's transport) dials it there from
    /// now on, if the address is one it can use for that node; a host whose network needs no
    /// addresses (the simulator) ignores it. This is the only way addresses reach a host from
    /// the grid: it never reads them out of messages in transit, which anyone could send.
    Learn { node: NodeId, address: String },
    /// This actor is finished: remove it.
    Stop,
}

impl fmt::Debug for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Send { to, msg } => write!(f, "Send({to:?}, {msg:?})"),
            Effect::SetTimer { id, at } => write!(f, "SetTimer({id:?}, {at:?})"),
            Effect::CancelTimer { id } => write!(f, "CancelTimer({id:?})"),
            Effect::Reply { to, response } => write!(f, "Reply({to:?}, {response:?})"),
            Effect::Output { to, data } => write!(f, "Output({to:?}, {} bytes)", data.len()),
            Effect::Pull { from, offset, max } => write!(f, "Pull({from:?}, {offset}, {max})"),
            Effect::Spawn { service, local, .. } => write!(f, "Spawn({service:?}, {local:?})"),
            Effect::Learn { node, address } => write!(f, "Learn({node:?}, {address})"),
            Effect::Stop => write!(f, "Stop"),
        }
    }
}

/// What a panic's payload says, for a host that caught an actor's panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// A message-driven state machine. See the module docs.
pub trait Actor: Send {
    /// Handles one input, recording what to do in `ctx`.
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>);
}

/// What an actor sees of the world while it handles one input, and where it writes its
/// effects.
pub struct Context<'a> {
    now: Time,
    me: Addr,
    rng: &'a mut ChaCha8Rng,
    effects: Vec<Effect>,
}

impl<'a> Context<'a> {
    /// A context for one input to the actor at `me`; `rng` is that actor's seeded generator.
    pub fn new(now: Time, me: Addr, rng: &'a mut ChaCha8Rng) -> Self {
        Context {
            now,
            me,
            rng,
            effects: Vec::new(),
        }
    }

    /// Like [`Context::new`], but records effects into `buffer` (emptied first), so that a
    /// host handling many inputs can reuse one allocation: it gets the buffer back from
    /// [`Context::into_effects`].
    pub fn with_buffer(
        now: Time,
        me: Addr,
        rng: &'a mut ChaCha8Rng,
        mut buffer: Vec<Effect>,
    ) -> Self {
        buffer.clear();
        Context {
            now,
            me,
            rng,
            effects: buffer,
        }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// This actor's address.
    pub fn me(&self) -> Addr {
        self.me
    }

    /// This actor's random number generator (seeded by the host).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Records an effect.
    pub fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Sends a message.
    pub fn send(&mut self, to: Addr, msg: Message) {
        self.push(Effect::Send { to, msg });
    }

    /// Sets (or moves) a timer to fire `after` from now.
    pub fn set_timer(&mut self, id: TimerId, after: Duration) {
        let at = self.now.after(after);
        self.push(Effect::SetTimer { id, at });
    }

    /// Cancels a timer.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.push(Effect::CancelTimer { id });
    }

    /// Answers a local request.
    pub fn reply(&mut self, to: LocalId, response: LocalResponse) {
        self.push(Effect::Reply { to, response });
    }

    /// The effects recorded so far, in order.
    pub fn effects(&self) -> &[Effect] {
        &self.effects
    }

    /// Takes the recorded effects, for the host to carry out.
    pub fn into_effects(self) -> Vec<Effect> {
        self.effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;
    use rand::SeedableRng;

    #[test]
    fn a_reused_buffer_starts_empty_and_comes_back_with_the_new_effects() {
        let me = Addr::new(NodeId([7; 32]), Service::Client);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let stale = vec![Effect::Stop, Effect::Stop];
        let mut ctx = Context::with_buffer(Time(5), me, &mut rng, stale);
        assert!(ctx.effects().is_empty());
        ctx.cancel_timer(TimerId(3));
        let effects = ctx.into_effects();
        assert_eq!(effects.len(), 1);
        assert!(matches!(effects[0], Effect::CancelTimer { id: TimerId(3) }));
    }
}
