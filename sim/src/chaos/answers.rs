//! One of the chaos invariants, kept by watching the wire: a server answers every duplicate
//! of a request that changes something exactly as it answered the request itself (its reply
//! cache's promise, which is what makes retries and duplicated messages safe). Only a
//! restart of the server, which empties the cache, excuses a different answer.

use super::Invariant;
use crate::{LocalUser, World};
use cairn_actors::protocol::{Message, RequestId, Response};
use cairn_actors::{Addr, NodeId, Service, Time};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// What the honest servers answered to requests that change something.
#[derive(Default)]
pub struct Answers {
    servers: BTreeSet<NodeId>,
    /// Requests that change something, by (requester, server, id).
    changing: BTreeSet<(Addr, Addr, RequestId)>,
    /// The first answer to each, and when it was delivered.
    first: BTreeMap<(Addr, Addr, RequestId), (Time, Response)>,
    /// Later answers that differed: the key, both times, and both answers.
    differing: Vec<Differing>,
}

struct Differing {
    requester: Addr,
    server: Addr,
    id: RequestId,
    first: (Time, Response),
    later: (Time, Response),
}

/// The log of what was answered, shared with the world's tap.
pub struct Watch(Rc<RefCell<Answers>>);

impl Answers {
    /// Starts watching the answers of `servers` (their storage and vdrive services) in `world`.
    pub fn tap<U: LocalUser>(world: &mut World<U>, servers: Vec<NodeId>) -> Watch {
        let answers = Rc::new(RefCell::new(Answers {
            servers: servers.into_iter().collect(),
            ..Answers::default()
        }));
        let log = answers.clone();
        world.set_tap(move |now, from, to, msg| log.borrow_mut().saw(now, from, to, msg));
        Watch(answers)
    }

    fn watched(&self, server: Addr) -> bool {
        matches!(server.service, Service::Storage | Service::Vdrive)
            && self.servers.contains(&server.node)
    }

    fn saw(&mut self, now: Time, from: Addr, to: Addr, msg: &Message) {
        match msg {
            Message::Request { id, body, .. } if self.watched(to) && body.changes() => {
                self.changing.insert((from, to, *id));
            }
            Message::Response { id, body } if self.watched(from) => {
                let key = (to, from, *id);
                if !self.changing.contains(&key) {
                    return;
                }
                match self.first.get(&key) {
                    None => {
                        self.first.insert(key, (now, body.clone()));
                    }
                    Some((_, first)) if first == body => {}
                    Some(first) => self.differing.push(Differing {
                        requester: to,
                        server: from,
                        id: *id,
                        first: first.clone(),
                        later: (now, body.clone()),
                    }),
                }
            }
            _ => {}
        }
    }
}

impl Watch {
    /// The violations: answers that differed from the first, unless the server crashed
    /// (`crashes`: node and when) between the two.
    pub fn differing(&self, crashes: impl Iterator<Item = (NodeId, Time)>) -> Vec<String> {
        let crashes: Vec<(NodeId, Time)> = crashes.collect();
        let answers = self.0.borrow();
        answers
            .differing
            .iter()
            .filter(|d| {
                let (start, end) = (d.first.0, d.later.0);
                !crashes
                    .iter()
                    .any(|&(node, at)| node == d.server.node && start <= at && at <= end)
            })
            .map(|d| {
                let what = format!(
                    "{:?} answered request {:?} from {:?} with {:?} at {:?}, then its duplicate \
                     with {:?} at {:?}",
                    d.server, d.id, d.requester, d.first.1, d.first.0, d.later.1, d.later.0
                );
                Invariant::SameAnswer.line(&what)
            })
            .collect()
    }
}
