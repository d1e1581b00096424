//! Server selection for one upload: which server to ask for which share next, what each
//! server answered, and why the placement fell short when it does.
//!
//! The strategy follows Tahoe-LAFS's: walk the file's permuted ring asking each server for one
//! share; if the ring runs out with shares left, hand those to the servers that accepted
//! (least loaded first); if every share has a home but too few servers hold distinct shares,
//! ask the servers left (unasked ones first) for shares that no server is matched with. A
//! (server, share) pair is never asked twice, so selection always ends.

use crate::ids::{NodeId, ShareNum};
use crate::local::UploadError;
use crate::placement::max_matching;
use std::collections::{BTreeMap, BTreeSet};

/// A placement: for each share, the servers holding it (or about to).
pub(super) type Placement = BTreeMap<ShareNum, BTreeSet<NodeId>>;

/// What one server has done for this upload so far.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ServerState {
    /// Not asked anything yet.
    Fresh,
    /// Its first Allocate is in flight.
    Asked,
    /// Answered an Allocate; `exhausted` once it said it is full (or failed a later ask), so
    /// it is not asked for more.
    Accepting { exhausted: bool },
    /// Refused its first Allocate.
    Refused(Refusal),
    /// Never answered.
    Unreachable,
    /// Answered at first, then failed (timed out or returned an error) during the upload.
    Failed,
}

/// Why a server refused to hold shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not enough space.
    Full,
    /// Any other error.
    Error,
}

/// One Allocate to send: ask `server` to hold `shares`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ask {
    pub server: NodeId,
    pub shares: Vec<ShareNum>,
}

/// The selection state of one upload.
pub(super) struct Selection {
    n: usize,
    /// The permuted ring: the order servers are asked in.
    ring: Vec<NodeId>,
    states: BTreeMap<NodeId, ServerState>,
    /// Every (server, share) pair ever asked.
    asked: BTreeSet<(NodeId, ShareNum)>,
}

impl Selection {
    /// Selection over `ring` (already permuted and deduplicated) for an `n`-share file.
    pub fn new(n: usize, ring: Vec<NodeId>) -> Self {
        let states = ring.iter().map(|&s| (s, ServerState::Fresh)).collect();
        Selection {
            n,
            ring,
            states,
            asked: BTreeSet::new(),
        }
    }

    /// The Allocates to send now, given the current `placement`, the shares of the Allocates
    /// still in flight (`asking`, with `in_flight` of them), and the `happy` target. Records
    /// them as asked. Empty with nothing in flight means selection cannot improve the
    /// placement any further.
    pub fn plan(
        &mut self,
        placement: &Placement,
        asking: &BTreeSet<ShareNum>,
        in_flight: usize,
        happy: usize,
    ) -> Vec<Ask> {
        let homeless: Vec<ShareNum> = (0..self.n)
            .map(|i| ShareNum(i as u8))
            .filter(|s| placement.get(s).is_none_or(BTreeSet::is_empty) && !asking.contains(s))
            .collect();
        let mut asks = self.first_pass(&homeless);
        // Later passes reuse servers that already answered: wait for every answer first, so
        // that they see the whole picture.
        if asks.is_empty() && in_flight == 0 {
            asks = self.second_pass(&homeless, placement);
            if asks.is_empty() {
                asks = self.happiness_pass(placement, happy);
            }
        }
        for ask in &asks {
            self.record(ask);
        }
        asks
    }

    /// One homeless share to each of the next unasked servers on the ring.
    fn first_pass(&self, homeless: &[ShareNum]) -> Vec<Ask> {
        let fresh = self.ring.iter().filter(|s| self.is(s, &ServerState::Fresh));
        fresh
            .zip(homeless)
            .map(|(&server, &share)| Ask {
                server,
                shares: vec![share],
            })
            .collect()
    }

    /// The ring is used up and shares are left: give them to the servers that accepted, the
    /// least loaded first, never a server already asked for (or holding) that share.
    fn second_pass(&self, homeless: &[ShareNum], placement: &Placement) -> Vec<Ask> {
        let mut load: BTreeMap<NodeId, usize> = self.willing().map(|s| (s, 0)).collect();
        for holders in placement.values() {
            for s in holders {
                if let Some(l) = load.get_mut(s) {
                    *l += 1;
                }
            }
        }
        let mut batches: BTreeMap<NodeId, Vec<ShareNum>> = BTreeMap::new();
        for &share in homeless {
            let candidate = self
                .willing()
                .filter(|&s| !self.asked.contains(&(s, share)))
                .min_by_key(|s| load.get(s).copied().unwrap_or(0));
            if let Some(server) = candidate {
                *load.entry(server).or_default() += 1;
                batches.entry(server).or_default().push(share);
            }
        }
        self.in_ring_order(batches)
    }

    /// Every share has a home (or none can be had) but too few servers hold distinct shares:
    /// pair servers the best matching leaves out (unasked ones first) with shares it leaves
    /// out. Each such pair that is accepted raises happiness by one.
    fn happiness_pass(&self, placement: &Placement, happy: usize) -> Vec<Ask> {
        let matching = max_matching(placement);
        if matching.len() >= happy {
            return Vec::new();
        }
        let matched: BTreeSet<NodeId> = matching.values().copied().collect();
        let mut unmatched: Vec<ShareNum> = (0..self.n)
            .map(|i| ShareNum(i as u8))
            .filter(|s| !matching.contains_key(s))
            .collect();
        let fresh = self
            .ring
            .iter()
            .copied()
            .filter(|s| self.is(s, &ServerState::Fresh));
        let idle = self.willing().filter(|s| !matched.contains(s));
        let mut batches = BTreeMap::new();
        for server in fresh.chain(idle) {
            if batches.len() == happy - matching.len() {
                break;
            }
            let holds =
                |share: &ShareNum| placement.get(share).is_some_and(|h| h.contains(&server));
            let pick = unmatched
                .iter()
                .position(|share| !self.asked.contains(&(server, *share)) && !holds(share));
            if let Some(i) = pick {
                batches.insert(server, vec![unmatched.remove(i)]);
            }
        }
        self.in_ring_order(batches)
    }

    /// Servers that accepted and may take more, in ring order.
    fn willing(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.ring
            .iter()
            .copied()
            .filter(|s| self.is(s, &ServerState::Accepting { exhausted: false }))
    }

    fn in_ring_order(&self, mut batches: BTreeMap<NodeId, Vec<ShareNum>>) -> Vec<Ask> {
        self.ring
            .iter()
            .filter_map(|&server| batches.remove(&server).map(|shares| Ask { server, shares }))
            .collect()
    }

    fn is(&self, server: &NodeId, state: &ServerState) -> bool {
        self.states.get(server) == Some(state)
    }

    fn record(&mut self, ask: &Ask) {
        for &share in &ask.shares {
            self.asked.insert((ask.server, share));
        }
        if let Some(state) = self.states.get_mut(&ask.server) {
            if *state == ServerState::Fresh {
                *state = ServerState::Asked;
            }
        }
    }

    /// `server` answered an Allocate without an error.
    pub fn accepted(&mut self, server: NodeId) {
        if let Some(state) = self.states.get_mut(&server) {
            if *state == ServerState::Asked {
                *state = ServerState::Accepting { exhausted: false };
            }
        }
    }

    /// `server` answered an Allocate with an error.
    pub fn refused(&mut self, server: NodeId, why: Refusal) {
        if let Some(state) = self.states.get_mut(&server) {
            let next = match &*state {
                ServerState::Asked => ServerState::Refused(why),
                ServerState::Accepting { .. } => ServerState::Accepting { exhausted: true },
                other => other.clone(),
            };
            *state = next;
        }
    }

    /// `server` did not answer in time, or failed a write: it is out of this upload.
    pub fn lost(&mut self, server: NodeId) {
        if let Some(state) = self.states.get_mut(&server) {
            *state = match state {
                ServerState::Fresh | ServerState::Asked => ServerState::Unreachable,
                _ => ServerState::Failed,
            };
        }
    }

    /// The error for a placement that reached only `achieved` of `happy` (or fewer than the
    /// `k` distinct shares needed to read the file), saying what each server did.
    pub fn not_happy(
        &self,
        placement: &Placement,
        happy: usize,
        achieved: usize,
        k: usize,
    ) -> UploadError {
        let count =
            |f: &dyn Fn(&ServerState) -> bool| self.states.values().filter(|s| f(s)).count();
        let holding: BTreeSet<NodeId> = placement.values().flatten().copied().collect();
        let unreachable = count(&|s| *s == ServerState::Unreachable);
        let parts = [
            (
                count(&|s| *s == ServerState::Refused(Refusal::Full)),
                "refused (full)",
            ),
            (
                count(&|s| *s == ServerState::Refused(Refusal::Error)),
                "refused (error)",
            ),
            (unreachable, "unreachable"),
            (
                count(&|s| *s == ServerState::Failed),
                "failed during the upload",
            ),
            (count(&|s| *s == ServerState::Fresh), "not asked"),
        ];
        let mut detail: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if holding.len() > achieved {
            detail.push(format!(
                "the {} servers holding shares hold only {achieved} distinct shares between them",
                holding.len()
            ));
        }
        if placement.len() < k {
            detail.push(format!(
                "only {} distinct shares could be placed but reading the file needs {k}",
                placement.len()
            ));
        }
        if self.ring.len() < happy {
            detail.push(format!(
                "only {} storage servers are known",
                self.ring.len()
            ));
        }
        let detail = if detail.is_empty() {
            "no servers to ask".to_string()
        } else {
            detail.join(", ")
        };
        UploadError::NotHappy {
            happy,
            achieved,
            known: self.ring.len(),
            reachable: self.ring.len() - unreachable - count(&|s| *s == ServerState::Fresh),
            accepting: holding.len(),
            detail: format!("{detail}; add storage servers or free space on them, or lower happy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    fn ring(count: u8) -> Vec<NodeId> {
        (0..count).map(node).collect()
    }

    fn place(p: &mut Placement, ask: &Ask) {
        for &s in &ask.shares {
            p.entry(s).or_default().insert(ask.server);
        }
    }

    #[test]
    fn first_pass_asks_one_share_per_server_in_ring_order() {
        let mut sel = Selection::new(3, ring(5));
        let asks = sel.plan(&Placement::new(), &BTreeSet::new(), 0, 3);
        let expected: Vec<Ask> = (0..3)
            .map(|i| Ask {
                server: node(i),
                shares: vec![ShareNum(i)],
            })
            .collect();
        assert_eq!(asks, expected);
    }

    #[test]
    fn second_pass_spreads_leftover_shares_over_accepting_servers() {
        let mut sel = Selection::new(5, ring(2));
        let mut p = Placement::new();
        let asking: BTreeSet<ShareNum> = [ShareNum(0), ShareNum(1)].into();
        let first = sel.plan(&p, &BTreeSet::new(), 0, 2);
        assert_eq!(first.len(), 2);
        // Nothing more until both answer.
        assert!(sel.plan(&p, &asking, 2, 2).is_empty());
        for ask in &first {
            sel.accepted(ask.server);
            place(&mut p, ask);
        }
        let second = sel.plan(&p, &BTreeSet::new(), 0, 2);
        let shares: Vec<usize> = second.iter().map(|a| a.shares.len()).collect();
        assert_eq!(
            shares,
            vec![2, 1],
            "three shares over two servers, least loaded first"
        );
        for ask in &second {
            place(&mut p, ask);
        }
        assert!(sel.plan(&p, &BTreeSet::new(), 0, 2).is_empty(), "done");
    }

    #[test]
    fn happiness_pass_moves_unmatched_shares_to_idle_servers() {
        // Server 0 already holds every share; servers 1 and 2 are unasked.
        let mut sel = Selection::new(3, ring(3));
        let mut p = Placement::new();
        let first = sel.plan(&p, &BTreeSet::new(), 0, 3);
        assert_eq!(first.len(), 3);
        sel.accepted(node(0));
        for s in 0..3 {
            p.entry(ShareNum(s)).or_default().insert(node(0));
        }
        sel.refused(node(1), Refusal::Full);
        sel.accepted(node(2));
        // Server 2 was asked for share 2 but it was being uploaded elsewhere; it has nothing.
        let asks = sel.plan(&p, &BTreeSet::new(), 0, 2);
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].server, node(2));
        assert_ne!(
            asks[0].shares,
            vec![ShareNum(2)],
            "never the same pair twice"
        );
    }

    #[test]
    fn not_happy_says_what_each_server_did() {
        let mut sel = Selection::new(3, ring(5));
        sel.plan(&Placement::new(), &BTreeSet::new(), 0, 3);
        sel.accepted(node(0));
        sel.refused(node(1), Refusal::Full);
        sel.lost(node(2));
        let mut p = Placement::new();
        p.entry(ShareNum(0)).or_default().insert(node(0));
        let UploadError::NotHappy {
            achieved,
            known,
            reachable,
            accepting,
            detail,
            ..
        } = sel.not_happy(&p, 3, 1, 1)
        else {
            panic!("wrong variant");
        };
        assert_eq!((achieved, known, reachable, accepting), (1, 5, 2, 1));
        assert!(
            detail.starts_with("1 refused (full), 1 unreachable, 2 not asked"),
            "{detail}"
        );
    }
}
