//! One actor driven by hand, one input at a time: the test is the host. [`Driven`] keeps
//! the actor, its address, a clock the test moves, a seeded generator and request ids, and
//! hands back every effect of every input for the test to judge.
//!
//! For servers (storage, vdrive, introducer) whose every answer a test checks. An operation
//! that talks to many servers over time runs in the [`grid`](super::grid) instead.

use crate::actor::{Actor, Addr, Context, Effect, Input, Time, TimerId};
use crate::protocol::{Message, Request, RequestId, Response};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long after now the deadline of a request from [`Driven::request`] is: live for as
/// long as any test lets time pass between sending and checking.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// An actor and the host around it. See the module docs.
pub struct Driven<A> {
    /// The actor, to inspect between inputs.
    pub actor: A,
    /// Its address.
    pub me: Addr,
    /// The time of the next input; the test moves it.
    pub now: Time,
    rng: ChaCha8Rng,
    /// The timers the actor has set in answering requests, and when each fires.
    pub timers: BTreeMap<TimerId, Time>,
    next_id: u64,
}

impl<A: Actor> Driven<A> {
    /// `actor` at `me`, its clock at `now`, its generator seeded with `seed`. Not started:
    /// that is an input like any other.
    pub fn new(actor: A, me: Addr, now: Time, seed: u64) -> Self {
        Driven {
            actor,
            me,
            now,
            rng: ChaCha8Rng::seed_from_u64(seed),
            timers: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Hands the actor one input; returns its effects.
    pub fn input(&mut self, input: Input) -> Vec<Effect> {
        let mut ctx = Context::new(self.now, self.me, &mut self.rng);
        self.actor.handle(input, &mut ctx);
        ctx.into_effects()
    }

    /// Delivers `msg` from `from`; returns the effects.
    pub fn message(&mut self, from: Addr, msg: Message) -> Vec<Effect> {
        self.input(Input::Message { from, msg })
    }

    /// Sends `body` from `from` under request id `id` (a network duplicating a request sends
    /// one id twice), with a live deadline; returns the effects.
    pub fn send_as(&mut self, from: Addr, id: RequestId, body: Request) -> Vec<Effect> {
        let deadline = self.now.after(PATIENCE);
        self.message(from, Message::Request { id, deadline, body })
    }

    /// Sends `body` from `from` under a fresh id, with a live deadline; returns the answer,
    /// which must be the first send, and the messages sent after it. Timers set or cancelled
    /// on the way are kept in [`Driven::timers`]; any other effect panics: a server only
    /// answers and tells.
    pub fn request(&mut self, from: Addr, body: Request) -> (Response, Vec<(Addr, Message)>) {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        let mut sent = Vec::new();
        for effect in self.send_as(from, id, body) {
            match effect {
                Effect::Send { to, msg } => sent.push((to, msg)),
                Effect::SetTimer { id, at } => {
                    self.timers.insert(id, at);
                }
                Effect::CancelTimer { id } => {
                    self.timers.remove(&id);
                }
                other => panic!("a server only sends and sets timers, not {other:?}"),
            }
        }
        let mut sends = sent.into_iter();
        match sends.next() {
            Some((to, Message::Response { id: got, body })) if to == from && got == id => {
                (body, sends.collect())
            }
            other => panic!("expected the answer first, got {other:?}"),
        }
    }

    /// Like [`Driven::request`], for an answer that must be the only effect.
    pub fn only_answer(&mut self, from: Addr, body: Request) -> Response {
        let (answer, others) = self.request(from, body);
        assert!(others.is_empty(), "more than the answer: {others:?}");
        answer
    }
}

/// Makes a test file's thin wrapper around a [`Driven`] (`$wrapper`, whose field `$field`
/// drives an `$actor`, beside handles the wrapper keeps for its own helpers) read as the
/// `Driven` it wraps: `Deref` and `DerefMut` to it.
#[cfg(test)]
macro_rules! wraps_driven {
    ($wrapper:ty, $actor:ty, $field:tt) => {
        impl std::ops::Deref for $wrapper {
            type Target = $crate::testing::Driven<$actor>;
            fn deref(&self) -> &Self::Target {
                &self.$field
            }
        }

        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.$field
            }
        }
    };
}
#[cfg(test)]
pub(crate) use wraps_driven;
