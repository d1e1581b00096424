//! Answers already given, so that a request delivered twice (networks duplicate messages)
//! gets the same answer twice instead of being carried out twice. Without it, a duplicated
//! "unlink" is answered "done" and then "not found", and whichever answer arrives first is
//! the one the requester believes.

use crate::actor::{Addr, Context};
use crate::protocol::{Message, RequestId, Response};
use rand::Rng;
use std::collections::{HashMap, VecDeque};

/// Where an actor starts numbering its requests: at random, so that an actor restarted at
/// the same address does not reuse the ids of its earlier life (and get their remembered
/// answers).
pub fn first_request_id(ctx: &mut Context<'_>) -> u64 {
    ctx.rng().gen_range(1..1 << 62)
}

/// How many answers a server remembers (the oldest are forgotten first). Duplicates arrive
/// close together, so a few thousand cover far more than a duplication window.
pub const REMEMBERED_ANSWERS: usize = 4096;

/// The latest answers, by requester and request id. Bounded: memory stays fixed.
///
/// A hash map with a fast hasher (a server looks every request up here; SipHash or a tree
/// of 48-byte keys cost measurably in the research simulator). Nothing iterates over it,
/// so its order cannot leak into what an actor does; `order` decides what is forgotten.
pub struct ReplyCache {
    answers: HashMap<(Addr, RequestId), Response, ahash::RandomState>,
    order: VecDeque<(Addr, RequestId)>,
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
            capacity: capacity.max(1),
        }
    }

    /// The answer already given to request `id` from `from`, if it is remembered.
    pub fn get(&self, from: Addr, id: RequestId) -> Option<&Response> {
        self.answers.get(&(from, id))
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

    /// Remembers an answer.
    pub fn remember(&mut self, from: Addr, id: RequestId, response: &Response) {
        if self.answers.insert((from, id), response.clone()).is_none() {
            self.order.push_back((from, id));
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
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
        cache.remember(from, RequestId(1), &Response::Ok);
        cache.remember(from, RequestId(2), &Response::Shares(vec![]));
        assert_eq!(cache.get(from, RequestId(1)), Some(&Response::Ok));
        cache.remember(from, RequestId(3), &Response::Ok);
        assert_eq!(cache.get(from, RequestId(1)), None);
        assert_eq!(cache.len(), 2);
        let other = Addr::new(NodeId([2; 32]), Service::Client);
        assert_eq!(cache.get(other, RequestId(2)), None);
    }
}
