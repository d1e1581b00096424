//! The request table every actor that asks other actors for something keeps: it numbers
//! requests, stamps each with its deadline, keeps one sweep timer at the earliest deadline,
//! and takes an answer only from the actor that was asked, and only once.
//!
//! `P` says what each request is for (a share read, an allocation, a subscription...); the
//! owner matches answers and expiries against it. The table never answers for its owner:
//! what a late request means (a dead server, an error for the user, nothing) is the owner's
//! call.

use crate::actor::{Addr, Context, Effect, Time, TimerId};
use crate::protocol::{Message, Request, RequestId};
use std::collections::BTreeMap;
use std::time::Duration;

/// One request in flight and what it was for.
struct Sent<P> {
    to: Addr,
    deadline: Time,
    purpose: P,
}

/// The requests an actor is waiting on. See the module docs.
pub struct Requests<P> {
    timeout: Duration,
    timer: TimerId,
    next_id: u64,
    pending: BTreeMap<RequestId, Sent<P>>,
    /// When the sweep timer is set to fire (`None`: not set).
    sweep_at: Option<Time>,
}

impl<P> Requests<P> {
    /// Requests that each wait `timeout` for an answer; `timer` is the owner's timer for the
    /// sweep (its other timers must differ).
    pub fn new(timeout: Duration, timer: TimerId) -> Self {
        Requests {
            timeout,
            timer,
            next_id: 0,
            pending: BTreeMap::new(),
            sweep_at: None,
        }
    }

    /// Numbers requests from a random start (see [`crate::replies::first_request_id`]); call
    /// on `Input::Start`.
    pub fn start(&mut self, ctx: &mut Context<'_>) {
        self.next_id = crate::replies::first_request_id(ctx);
    }

    /// How long each request waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `body` to `to` and waits for the answer until the deadline.
    pub fn send(
        &mut self,
        ctx: &mut Context<'_>,
        to: Addr,
        body: Request,
        purpose: P,
    ) -> RequestId {
        let (id, deadline) = self.send_only(ctx, to, body);
        self.pending.insert(
            id,
            Sent {
                to,
                deadline,
                purpose,
            },
        );
        if self.sweep_at.is_none_or(|at| deadline < at) {
            self.arm(ctx, deadline);
        }
        debug_assert!(self.sweep_at.is_some_and(|at| at <= deadline));
        id
    }

    /// Sends `body` to `to` without waiting for an answer (an abort, an advisory): its id
    /// and deadline.
    pub fn send_only(
        &mut self,
        ctx: &mut Context<'_>,
        to: Addr,
        body: Request,
    ) -> (RequestId, Time) {
        let id = RequestId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let deadline = ctx.now().after(self.timeout);
        ctx.send(to, Message::Request { id, deadline, body });
        (id, deadline)
    }

    /// What request `id` is for, if it is pending and `from` is whom it asked (the answer
    /// is not taken: see [`Requests::take`]).
    pub fn get(&self, from: Addr, id: RequestId) -> Option<&P> {
        self.pending
            .get(&id)
            .filter(|sent| sent.to == from)
            .map(|sent| &sent.purpose)
    }

    /// Takes request `id` out of the table (its answer came): whom it asked and what for.
    pub fn take(&mut self, id: RequestId) -> Option<(Addr, P)> {
        self.pending.remove(&id).map(|s| (s.to, s.purpose))
    }

    /// The request `id` answered by `from`: whom it asked and what for, now no longer
    /// pending. `None` for an id not pending, or an answer from anyone but the one asked.
    pub fn answer(&mut self, from: Addr, id: RequestId) -> Option<(Addr, P)> {
        self.get(from, id)?;
        self.take(id)
    }

    /// The sweep timer fired: the requests past their deadline, in id order, no longer
    /// pending, and the timer set again for the next deadline.
    pub fn expire(&mut self, ctx: &mut Context<'_>) -> Vec<(RequestId, Addr, P)> {
        let late = self.take_late(ctx.now());
        self.rearm(ctx);
        late
    }

    /// The sweep timer fired: the requests past their deadline, in id order, no longer
    /// pending. The timer is not set again until [`Requests::rearm`], so that an owner that
    /// forgets more requests first (all those of a server found dead) does not wake for them.
    pub fn take_late(&mut self, now: Time) -> Vec<(RequestId, Addr, P)> {
        self.sweep_at = None;
        let late: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        late.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|s| (id, s.to, s.purpose)))
            .collect()
    }

    /// Sets the sweep timer for the earliest deadline pending, if it is not set already.
    pub fn rearm(&mut self, ctx: &mut Context<'_>) {
        if self.sweep_at.is_some() {
            return;
        }
        if let Some(next) = self.pending.values().map(|s| s.deadline).min() {
            self.arm(ctx, next);
        }
    }

    /// Forgets every pending request that `matches` (their answers will be ignored);
    /// returns them in id order.
    pub fn forget(&mut self, matches: impl Fn(Addr, &P) -> bool) -> Vec<(Addr, P)> {
        let ids: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, s)| matches(s.to, &s.purpose))
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|s| (s.to, s.purpose)))
            .collect()
    }

    /// Forgets every pending request and cancels the sweep timer: the owner is done.
    pub fn close(&mut self, ctx: &mut Context<'_>) {
        self.pending.clear();
        if self.sweep_at.take().is_some() {
            ctx.cancel_timer(self.timer);
        }
    }

    /// Whether some pending request `matches`.
    pub fn any(&self, matches: impl Fn(Addr, &P) -> bool) -> bool {
        self.pending.values().any(|s| matches(s.to, &s.purpose))
    }

    /// The pending requests, in id order: whom each asked and what for.
    pub fn iter(&self) -> impl Iterator<Item = (RequestId, Addr, &P)> {
        self.pending.iter().map(|(&id, s)| (id, s.to, &s.purpose))
    }

    /// The pending requests' ids and deadlines, in id order.
    pub fn deadlines(&self) -> impl Iterator<Item = (RequestId, Time)> + '_ {
        self.pending.iter().map(|(&id, s)| (id, s.deadline))
    }

    /// How many requests are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no request is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn arm(&mut self, ctx: &mut Context<'_>, at: Time) {
        self.sweep_at = Some(at);
        ctx.push(Effect::SetTimer { id: self.timer, at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{Service, Time};
    use crate::ids::NodeId;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SWEEP: TimerId = TimerId(0);

    fn storage(i: u8) -> Addr {
        Addr::new(NodeId([i; 32]), Service::Storage)
    }

    #[test]
    fn answers_count_only_from_the_actor_asked_and_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let me = Addr::new(NodeId([0; 32]), Service::Client);
        let mut ctx = Context::new(Time(0), me, &mut rng);
        let mut table: Requests<&str> = Requests::new(Duration::from_secs(1), SWEEP);
        table.start(&mut ctx);
        let id = table.send(&mut ctx, storage(1), Request::Subscribe, "list");
        assert_eq!(table.answer(storage(2), id), None, "a stranger");
        let wrong_service = Addr::new(NodeId([1; 32]), Service::Client);
        assert_eq!(table.answer(wrong_service, id), None, "another service");
        assert_eq!(
            table.get(storage(1), id),
            Some(&"list"),
            "peeking takes nothing"
        );
        assert_eq!(table.answer(storage(1), id), Some((storage(1), "list")));
        assert_eq!(
            table.answer(storage(1), id),
            None,
            "a duplicate answer is not taken"
        );
        assert!(table.is_empty());
    }

    #[test]
    fn the_sweep_expires_only_late_requests_and_rearms() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let me = Addr::new(NodeId([0; 32]), Service::Client);
        let mut table: Requests<u8> = Requests::new(Duration::from_secs(1), SWEEP);
        let mut ctx = Context::new(Time(0), me, &mut rng);
        table.start(&mut ctx);
        table.send(&mut ctx, storage(1), Request::Subscribe, 1);
        assert!(
            matches!(
                ctx.effects(),
                [
                    Effect::Send { .. },
                    Effect::SetTimer {
                        id: SWEEP,
                        at: Time(1_000_000_000)
                    }
                ]
            ),
            "the first request sets the sweep"
        );
        let mut ctx = Context::new(Time(500_000_000), me, &mut rng);
        table.send(&mut ctx, storage(2), Request::Subscribe, 2);
        assert!(
            matches!(ctx.effects(), [Effect::Send { .. }]),
            "a later deadline does not move the sweep"
        );
        let mut ctx = Context::new(Time(1_000_000_000), me, &mut rng);
        let late: Vec<u8> = table
            .expire(&mut ctx)
            .into_iter()
            .map(|(_, _, p)| p)
            .collect();
        assert_eq!(late, vec![1]);
        assert!(matches!(
            ctx.effects(),
            [Effect::SetTimer {
                id: SWEEP,
                at: Time(1_500_000_000)
            }]
        ));
        assert!(table.any(|to, p| to == storage(2) && *p == 2));
        assert_eq!(table.forget(|_, p| *p == 2), vec![(storage(2), 2)]);
        assert!(table.is_empty());
    }

    #[test]
    fn taking_late_requests_leaves_the_timer_to_the_owner() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let me = Addr::new(NodeId([0; 32]), Service::Client);
        let mut table: Requests<u8> = Requests::new(Duration::from_secs(1), SWEEP);
        let mut ctx = Context::new(Time(0), me, &mut rng);
        table.start(&mut ctx);
        table.send(&mut ctx, storage(1), Request::Subscribe, 1);
        table.send(&mut ctx, storage(1), Request::Subscribe, 2);
        let mut ctx = Context::new(Time(2_000_000_000), me, &mut rng);
        assert_eq!(table.take_late(ctx.now()).len(), 2);
        table.rearm(&mut ctx);
        assert!(ctx.effects().is_empty(), "nothing pending, no timer");
        table.send(&mut ctx, storage(1), Request::Subscribe, 3);
        assert_eq!(table.len(), 1);
        assert!(matches!(
            ctx.effects().last(),
            Some(Effect::SetTimer { .. })
        ));
    }
}
