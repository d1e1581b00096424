//! Asking servers which shares of a file they hold (`List`), and what the answers add up
//! to: which servers claim which shares, how many distinct shares that is, and the
//! servers-of-happiness of that placement. Claims are believed here; reading a share is what
//! proves it (see the repairer, and the checker's `verify`).

use crate::ids::{NodeId, ShareNum};
use crate::placement::happiness;
use crate::protocol::Response;
use std::collections::{BTreeMap, BTreeSet};

/// Which servers hold which shares.
pub(crate) type Placement = BTreeMap<ShareNum, BTreeSet<NodeId>>;

/// One file's survey: the servers asked and what they answered.
pub(crate) struct Survey {
    n: usize,
    asked: Vec<NodeId>,
    waiting: BTreeSet<NodeId>,
    answered: BTreeSet<NodeId>,
    claims: Placement,
    /// Claims found false: never believed again.
    disowned: BTreeSet<(ShareNum, NodeId)>,
}

impl Survey {
    /// A survey of an `n`-share file that asks `servers` (in the order given).
    pub fn new(n: usize, servers: Vec<NodeId>) -> Self {
        Survey {
            n,
            waiting: servers.iter().copied().collect(),
            asked: servers,
            answered: BTreeSet::new(),
            claims: Placement::new(),
            disowned: BTreeSet::new(),
        }
    }

    /// The servers to ask, in order.
    pub fn servers(&self) -> &[NodeId] {
        &self.asked
    }

    /// `server`'s answer to `List` (`None`: none came in time). Shares outside the file are
    /// ignored; an answer that is not a share list counts as no answer.
    pub fn on_answer(&mut self, server: NodeId, answer: Option<Response>) {
        if !self.waiting.remove(&server) {
            return;
        }
        let Some(Response::Shares(shares)) = answer else {
            return;
        };
        self.answered.insert(server);
        for (share, _size) in shares {
            if share.index() < self.n && !self.disowned.contains(&(share, server)) {
                self.claims.entry(share).or_default().insert(server);
            }
        }
    }

    /// Whether every server asked has answered or timed out.
    pub fn done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether `server` answered its `List`.
    pub fn answered(&self, server: NodeId) -> bool {
        self.answered.contains(&server)
    }

    /// How many servers answered.
    pub fn answered_count(&self) -> usize {
        self.answered.len()
    }

    /// Which servers claim which shares.
    pub fn claims(&self) -> &Placement {
        &self.claims
    }

    /// Forgets `server`'s claim to `share` (it could not back it up), for good.
    pub fn disown(&mut self, share: ShareNum, server: NodeId) {
        self.disowned.insert((share, server));
        if let Some(holders) = self.claims.get_mut(&share) {
            holders.remove(&server);
            if holders.is_empty() {
                self.claims.remove(&share);
            }
        }
    }

    /// Records that `server` holds `share` (learnt other than by `List`); false, and nothing
    /// recorded, if that claim was found false before or the share is not of the file.
    pub fn learn(&mut self, share: ShareNum, server: NodeId) -> bool {
        let believed = share.index() < self.n && !self.disowned.contains(&(share, server));
        if believed {
            self.claims.entry(share).or_default().insert(server);
        }
        believed
    }

    /// The servers-of-happiness of the claims.
    pub fn happiness(&self) -> usize {
        happiness(&self.claims)
    }
}

/// A placement as the reports give it: each share's holders, in node id order.
pub(crate) fn listed(placement: &Placement) -> BTreeMap<ShareNum, Vec<NodeId>> {
    placement
        .iter()
        .map(|(&share, holders)| (share, holders.iter().copied().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RemoteError;

    fn node(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    #[test]
    fn answers_are_filtered_and_counted_once() {
        let mut s = Survey::new(3, vec![node(1), node(2), node(3), node(4)]);
        let shares =
            |list: &[u8]| Response::Shares(list.iter().map(|&i| (ShareNum(i), 10)).collect());
        s.on_answer(node(1), Some(shares(&[0, 1, 7, 255])));
        s.on_answer(node(1), Some(shares(&[2])));
        s.on_answer(
            node(2),
            Some(Response::Err(RemoteError::Disk("gone".into()))),
        );
        s.on_answer(node(3), Some(Response::Ok));
        s.on_answer(node(9), Some(shares(&[2])));
        assert!(!s.done());
        s.on_answer(node(4), None);
        assert!(s.done());
        assert_eq!(
            s.answered_count(),
            1,
            "errors, other answers and silence are not answers"
        );
        let expected: Placement = [
            (ShareNum(0), [node(1)].into()),
            (ShareNum(1), [node(1)].into()),
        ]
        .into();
        assert_eq!(
            s.claims(),
            &expected,
            "shares past N and late repeats are ignored"
        );
        assert_eq!(
            s.happiness(),
            1,
            "one server holding two shares counts once"
        );
        s.disown(ShareNum(0), node(1));
        assert_eq!(listed(s.claims()), [(ShareNum(1), vec![node(1)])].into());
        assert!(
            !s.learn(ShareNum(0), node(1)),
            "a claim found false is not believed again"
        );
        assert!(!s.learn(ShareNum(3), node(1)), "nor a share past N");
        assert!(s.learn(ShareNum(2), node(2)));
        assert_eq!(s.happiness(), 2);
    }
}
