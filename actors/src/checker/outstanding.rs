//! Requests to storage servers in flight, for the checker and the repairer: ids, deadlines,
//! one sweep timer at the earliest deadline, and answers taken only from the server asked.

use crate::actor::{Addr, Context, Effect, Service, Time, TimerId};
use crate::ids::NodeId;
use crate::protocol::{Message, Request, RequestId};
use std::collections::BTreeMap;
use std::time::Duration;

/// One request in flight and what it was for.
struct Sent<P> {
    server: NodeId,
    deadline: Time,
    purpose: P,
}

/// The requests an operation is waiting on. `P` says what each one is for.
pub(crate) struct Outstanding<P> {
    timeout: Duration,
    timer: TimerId,
    next_id: u64,
    pending: BTreeMap<RequestId, Sent<P>>,
    sweep_at: Option<Time>,
}

impl<P> Outstanding<P> {
    /// Requests that each wait `timeout` for an answer; `timer` is the actor's timer for the
    /// sweep (its other timers must differ).
    pub fn new(timeout: Duration, timer: TimerId) -> Self {
        Outstanding {
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

    /// Sends `body` to `server`'s storage service and waits for the answer.
    pub fn send(
        &mut self,
        ctx: &mut Context<'_>,
        server: NodeId,
        body: Request,
        purpose: P,
    ) -> RequestId {
        let (id, deadline) = self.send_only(ctx, server, body);
        self.pending.insert(
            id,
            Sent {
                server,
                deadline,
                purpose,
            },
        );
        if self.sweep_at.is_none_or(|at| deadline < at) {
            self.arm(ctx, deadline);
        }
        id
    }

    /// Sends `body` to `server` without waiting for an answer (an abort, an advisory).
    pub fn send_only(
        &mut self,
        ctx: &mut Context<'_>,
        server: NodeId,
        body: Request,
    ) -> (RequestId, Time) {
        let id = RequestId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let deadline = ctx.now().after(self.timeout);
        let msg = Message::Request { id, deadline, body };
        ctx.send(Addr::new(server, Service::Storage), msg);
        (id, deadline)
    }

    /// The request `id` answered by `from`: its server and purpose, now no longer pending.
    /// `None` for an id not pending, or an answer from anyone but the server asked.
    pub fn answer(&mut self, from: Addr, id: RequestId) -> Option<(NodeId, P)> {
        let sent = self.pending.get(&id)?;
        if from != Addr::new(sent.server, Service::Storage) {
            return None;
        }
        self.pending.remove(&id).map(|s| (s.server, s.purpose))
    }

    /// The sweep timer fired: the requests past their deadline, in id order, no longer
    /// pending; the timer is set again for the next deadline.
    pub fn expire(&mut self, ctx: &mut Context<'_>) -> Vec<(RequestId, NodeId, P)> {
        self.sweep_at = None;
        let now = ctx.now();
        let late: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        let expired = late
            .into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|s| (id, s.server, s.purpose)))
            .collect();
        if let Some(next) = self.pending.values().map(|s| s.deadline).min() {
            self.arm(ctx, next);
        }
        expired
    }

    /// Forgets every pending request whose purpose `matches` (their answers will be
    /// ignored); returns them.
    pub fn forget(&mut self, matches: impl Fn(NodeId, &P) -> bool) -> Vec<(NodeId, P)> {
        let ids: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, s)| matches(s.server, &s.purpose))
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|s| (s.server, s.purpose)))
            .collect()
    }

    /// Whether some pending request's purpose `matches`.
    pub fn any(&self, matches: impl Fn(NodeId, &P) -> bool) -> bool {
        self.pending.values().any(|s| matches(s.server, &s.purpose))
    }

    fn arm(&mut self, ctx: &mut Context<'_>, at: Time) {
        self.sweep_at = Some(at);
        ctx.push(Effect::SetTimer { id: self.timer, at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Time;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SWEEP: TimerId = TimerId(0);

    fn server(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    #[test]
    fn answers_count_only_from_the_server_asked_and_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let me = Addr::new(server(0), Service::Client);
        let mut ctx = Context::new(Time(0), me, &mut rng);
        let mut out: Outstanding<&str> = Outstanding::new(Duration::from_secs(1), SWEEP);
        out.start(&mut ctx);
        let id = out.send(&mut ctx, server(1), Request::Subscribe, "list");
        let stranger = Addr::new(server(2), Service::Storage);
        assert_eq!(out.answer(stranger, id), None);
        let wrong_service = Addr::new(server(1), Service::Client);
        assert_eq!(out.answer(wrong_service, id), None);
        let asked = Addr::new(server(1), Service::Storage);
        assert_eq!(out.answer(asked, id), Some((server(1), "list")));
        assert_eq!(
            out.answer(asked, id),
            None,
            "a duplicate answer is not taken"
        );
        assert!(!out.any(|_, _| true));
    }

    #[test]
    fn the_sweep_expires_only_late_requests_and_rearms() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let me = Addr::new(server(0), Service::Client);
        let mut out: Outstanding<u8> = Outstanding::new(Duration::from_secs(1), SWEEP);
        let mut ctx = Context::new(Time(0), me, &mut rng);
        out.start(&mut ctx);
        out.send(&mut ctx, server(1), Request::Subscribe, 1);
        let mut ctx = Context::new(Time(500_000_000), me, &mut rng);
        out.send(&mut ctx, server(2), Request::Subscribe, 2);
        let mut ctx = Context::new(Time(1_000_000_000), me, &mut rng);
        let late: Vec<u8> = out
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
        assert!(out.any(|s, p| s == server(2) && *p == 2));
        assert_eq!(out.forget(|_, p| *p == 2), vec![(server(2), 2)]);
        assert!(!out.any(|_, _| true));
    }
}
