//! Answers already given, so that a request delivered twice (networks duplicate messages)
//! gets the same answer twice instead of being carried out twice. Without it, a duplicated
//! "unlink" is answered "done" and then "not found", and whichever answer arrives first is
//! the one the requester believes.

use crate::actor::{Addr, Context, Time};
use crate::protocol::{Message, RequestId, Response};
use rand::Rng;
use std::collections::{HashMap, VecDeque};

/// Where an actor starts numbering its requests: at random, so that an actor restarted at
/// the same address does not reuse the ids of its earlier life (and get their remembered
/// answers).
pub fn first_request_id(ctx: &mut Context<'_>) -> u64 {
    ctx.rng().gen_range(1..1 << 62)
}

/// The latest deadline a request may have, from its arrival: what a server remembers of a
/// request is kept until its deadline, so a peer must not choose it freely.
pub const MAX_REQUEST_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// A request as a server takes it in: who sent it, its id, its deadline (clamped to
/// [`MAX_REQUEST_LIFETIME`]), and whether carrying it out changes anything.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    pub from: Addr,
    pub id: RequestId,
    pub deadline: Time,
    pub changes: bool,
}

/// How many answers a server remembers at most (the oldest are forgotten first).
/// Duplicates arrive close together, so a few thousand cover far more than a duplication
/// window.
pub const REMEMBERED_ANSWERS: usize = 4096;

/// The latest answers, by requester and request id. Bounded: memory stays fixed.
///
/// An answer is also forgotten once its request's deadline has passed: a server ignores a
/// request past its deadline, so a duplicate arriving then is never answered, and keeping
/// the answer would only hold memory (a server that took part in a burst of uploads would
/// keep thousands of answers for as long as it ran).
///
/// A hash map with a fast hasher (a server looks every request up here; SipHash or a tree
/// of 48-byte keys cost measurably in the research simulator). Nothing iterates over it,
/// so its order cannot leak into what an actor does; `order` decides what is forgotten.
pub struct ReplyCache {
    answers: HashMap<(Addr, RequestId), Response, ahash::RandomState>,
    /// The remembered requests, oldest first, with their deadlines.
    order: VecDeque<(Addr, RequestId, Time)>,
    /// The deadline of the oldest (`None` when empty), kept here so that a server that
    /// remembers nothing new does not read `order` at every request.
    oldest_deadline: Option<Time>,
    capacity: usize,
}

impl Default for ReplyCache {
    fn default() -> Self {
        ReplyCache::new(REMEMBERED_ANSWERS)
    }
}

impl ReplyCache {
    /// A cache of at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        ReplyCache {
            answers: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            order: VecDeque::new(),
            oldest_deadline: None,
            capacity: capacity.max(1),
        }
    }

    /// Takes in a request that arrived now: `None` if it is past its deadline (nobody waits
    /// for it) or is a duplicate of a request that changes something (answered again, as
    /// before: it must not be carried out twice). Queries, which change nothing, are neither
    /// looked up nor remembered: a duplicate is answered afresh, and no peer can make the
    /// server hold large answers.
    pub fn admit(
        &mut self,
        ctx: &mut Context<'_>,
        from: Addr,
        id: RequestId,
        deadline: Time,
        changes: bool,
    ) -> Option<Admitted> {
        let now = ctx.now();
        if now > deadline {
            tracing::trace!(?from, ?id, "request past its deadline, ignored");
            return None;
        }
        self.forget_expired(now);
        let forgets =
            crate::mutants::active(crate::mutants::Mutant::ReplyCacheReexecutesDuplicates);
        if changes && !forgets && self.resend(ctx, from, id) {
            return None;
        }
        Some(Admitted {
            from,
            id,
            deadline: deadline.min(now.after(MAX_REQUEST_LIFETIME)),
            changes,
        })
    }

    /// Sends the answer to an admitted request, remembering it if the request changed
    /// something.
    pub fn answer(&mut self, ctx: &mut Context<'_>, request: Admitted, body: Response) {
        if request.changes {
            self.remember(request.from, request.id, request.deadline, &body);
        }
        ctx.send(
            request.from,
            Message::Response {
                id: request.id,
                body,
            },
        );
    }

    /// The answer already given to request `id` from `from`, if it is remembered.
    pub fn get(&self, from: Addr, id: RequestId) -> Option<&Response> {
        self.answers.get(&(from, id))
    }

    /// Forgets the answers to requests whose deadline was before `now`, oldest first (an
    /// answer behind a later deadline waits for it: forgetting late is safe, early is not).
    pub fn forget_expired(&mut self, now: Time) {
        if self.oldest_deadline.is_none_or(|deadline| deadline >= now) {
            return;
        }
        while let Some(&(from, id, deadline)) = self.order.front() {
            if deadline >= now {
                break;
            }
            self.order.pop_front();
            self.answers.remove(&(from, id));
        }
        self.oldest_deadline = self.order.front().map(|&(_, _, deadline)| deadline);
        debug_assert_eq!(
            self.order.len(),
            self.answers.len(),
            "one order entry per answer"
        );
        // A burst of requests leaves large tables behind: give the room back once they
        // are mostly empty (each shrink halves at least, so its cost is amortised).
        if self.answers.capacity() > 64 && self.answers.len() * 4 < self.answers.capacity() {
            self.answers.shrink_to(self.answers.len() * 2);
            self.order.shrink_to(self.order.len() * 2);
        }
    }

    /// If request `id` from `from` was answered before, answers it the same way again (the
    /// request is a duplicate: it must not be carried out twice) and returns true.
    pub fn resend(&self, ctx: &mut Context<'_>, from: Addr, id: RequestId) -> bool {
        let Some(earlier) = self.get(from, id) else {
            return false;
        };
        ctx.send(
            from,
            Message::Response {
                id,
                body: earlier.clone(),
            },
        );
        true
    }

    /// Remembers the answer to a request that is due by `deadline`.
    pub fn remember(&mut self, from: Addr, id: RequestId, deadline: Time, response: &Response) {
        if self.answers.insert((from, id), response.clone()).is_none() {
            self.order.push_back((from, id, deadline));
        }
        while self.order.len() > self.capacity {
            if let Some((from, id, _)) = self.order.pop_front() {
                self.answers.remove(&(from, id));
            }
        }
        self.oldest_deadline = self.order.front().map(|&(_, _, deadline)| deadline);
        debug_assert_eq!(
            self.order.len(),
            self.answers.len(),
            "one order entry per answer"
        );
        debug_assert!(self.order.len() <= self.capacity);
    }

    /// How many answers are remembered.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Service;
    use crate::ids::NodeId;

    #[test]
    fn remembers_the_latest_answers_and_forgets_the_oldest() {
        let from = Addr::new(NodeId([1; 32]), Service::Client);
        let mut cache = ReplyCache::new(2);
        cache.remember(from, RequestId(1), Time(100), &Response::Ok);
        cache.remember(from, RequestId(2), Time(100), &Response::Shares(vec![]));
        assert_eq!(cache.get(from, RequestId(1)), Some(&Response::Ok));
        cache.remember(from, RequestId(3), Time(100), &Response::Ok);
        assert_eq!(cache.get(from, RequestId(1)), None);
        assert_eq!(cache.len(), 2);
        let other = Addr::new(NodeId([2; 32]), Service::Client);
        assert_eq!(cache.get(other, RequestId(2)), None);
    }

    #[test]
    fn forgets_an_answer_once_its_request_is_past_its_deadline() {
        let from = Addr::new(NodeId([1; 32]), Service::Client);
        let mut cache = ReplyCache::new(10);
        cache.remember(from, RequestId(1), Time(100), &Response::Ok);
        cache.remember(from, RequestId(2), Time(300), &Response::Ok);
        cache.remember(from, RequestId(3), Time(200), &Response::Ok);
        // At its deadline a request is still served, so its answer is still needed.
        cache.forget_expired(Time(100));
        assert_eq!(cache.get(from, RequestId(1)), Some(&Response::Ok));
        cache.forget_expired(Time(101));
        assert_eq!(cache.get(from, RequestId(1)), None);
        assert_eq!(cache.len(), 2);
        // Request 3 waits behind request 2's later deadline: kept longer, never forgotten early.
        cache.forget_expired(Time(250));
        assert_eq!(cache.len(), 2);
        cache.forget_expired(Time(301));
        assert!(cache.is_empty());
    }

    #[test]
    fn gives_the_room_back_after_a_burst() {
        let from = Addr::new(NodeId([1; 32]), Service::Client);
        let mut cache = ReplyCache::new(REMEMBERED_ANSWERS);
        for id in 0..2000 {
            cache.remember(from, RequestId(id), Time(100), &Response::Ok);
        }
        let burst = cache.answers.capacity();
        cache.remember(from, RequestId(5000), Time(900), &Response::Ok);
        cache.forget_expired(Time(101));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(from, RequestId(5000)), Some(&Response::Ok));
        assert!(cache.answers.capacity() * 16 < burst, "{burst} slots kept");
        assert!(cache.order.capacity() < 64);
    }
}
