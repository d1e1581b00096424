//! Where a file's shares go: the permuted ring that orders servers for a storage index, and
//! the servers-of-happiness measure that says how well a placement spreads the shares.
//!
//! Both are pure functions, shared by the uploader (which places shares) and by anything that
//! judges a placement (checker, simulator statistics). As in Tahoe-LAFS, every client orders
//! the servers the same way for a given file, so a downloader asks the servers an uploader
//! most likely used first.

use crate::ids::{NodeId, ShareNum, StorageIndex};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// The servers in the order an uploader asks them (and a downloader looks) for the file with
/// storage index `si`: sorted by `SHA-256(si || node id)`. Duplicates are dropped.
///
/// Each file gets its own pseudo-random order, so that load spreads over the grid, while every
/// client computes the same order for the same file without talking to anyone.
pub fn permuted_ring(si: StorageIndex, servers: &[NodeId]) -> Vec<NodeId> {
    let mut keyed: Vec<([u8; 32], NodeId)> = servers
        .iter()
        .map(|&node| (ring_position(si, node), node))
        .collect();
    // Ties in the hash are impossible in practice; sorting the pair keeps even those ordered.
    keyed.sort_unstable();
    keyed.dedup_by_key(|(_, node)| *node);
    keyed.into_iter().map(|(_, node)| node).collect()
}

/// A server's position on `si`'s ring.
fn ring_position(si: StorageIndex, node: NodeId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(si.0);
    h.update(node.0);
    h.finalize().into()
}

/// The servers-of-happiness measure of a placement (share -> servers holding it): the largest
/// number of servers that can each be paired with a different share they hold, i.e. the size
/// of a maximum bipartite matching between servers and shares.
///
/// If it is `h`, then any `k <= h` of those servers together hold `k` distinct shares, so the
/// file survives the loss of any `h - k` of them. The servers of a share may come as a set or
/// as a list (a server named twice counts once).
pub fn happiness<S>(placement: &BTreeMap<ShareNum, S>) -> usize
where
    for<'a> &'a S: IntoIterator<Item = &'a NodeId>,
{
    Matching::find(placement).size()
}

/// A maximum matching between shares and the servers holding them: each share in the result
/// is paired with a different server. Its size is [`happiness`].
pub fn max_matching<S>(placement: &BTreeMap<ShareNum, S>) -> BTreeMap<ShareNum, NodeId>
where
    for<'a> &'a S: IntoIterator<Item = &'a NodeId>,
{
    let shares: Vec<ShareNum> = placement.keys().copied().collect();
    let matching = Matching::find(placement);
    matching
        .owner
        .iter()
        .zip(&matching.servers)
        .filter(|(&share, _)| share != UNMATCHED)
        .map(|(&share, &server)| (shares[share as usize], server))
        .collect()
}

const UNMATCHED: u32 = u32::MAX;

/// A matching over the placement in dense form: shares and servers numbered, the edges of
/// share `i` at `edges[offsets[i]..offsets[i + 1]]`.
///
/// Augmenting paths (Kuhn's algorithm): one search per share, in share order, each trying a
/// share's servers in the order given, O(edges); with at most 256 shares that is cheap, and
/// it is simple enough to trust. A checker and the simulator run it for every file they
/// look at, so it keeps to a few flat arrays, on the stack for the usual dozen shares.
struct Matching {
    /// Every server named, sorted.
    servers: SmallVec<[NodeId; 16]>,
    edges: SmallVec<[u32; 32]>,
    offsets: SmallVec<[usize; 17]>,
    /// The share each server is matched with, or `UNMATCHED`.
    owner: SmallVec<[u32; 16]>,
}

impl Matching {
    fn find<S>(placement: &BTreeMap<ShareNum, S>) -> Self
    where
        for<'a> &'a S: IntoIterator<Item = &'a NodeId>,
    {
        let mut servers: SmallVec<[NodeId; 16]> = placement.values().flatten().copied().collect();
        servers.sort_unstable();
        servers.dedup();
        let mut edges = SmallVec::new();
        let mut offsets = SmallVec::with_capacity(placement.len() + 1);
        offsets.push(0);
        for holders in placement.values() {
            for node in holders {
                if let Ok(ix) = servers.binary_search(node) {
                    edges.push(ix as u32);
                }
            }
            offsets.push(edges.len());
        }
        let mut matching = Matching {
            owner: SmallVec::from_elem(UNMATCHED, servers.len()),
            servers,
            edges,
            offsets,
        };
        let mut visited: SmallVec<[bool; 16]> = SmallVec::from_elem(false, matching.servers.len());
        for share in 0..placement.len() as u32 {
            visited.fill(false);
            matching.augment(share, &mut visited);
        }
        matching
    }

    /// Tries to match `share`, re-matching already matched shares along an augmenting path;
    /// `visited` marks the servers this search saw.
    fn augment(&mut self, share: u32, visited: &mut [bool]) -> bool {
        let (from, to) = (
            self.offsets[share as usize],
            self.offsets[share as usize + 1],
        );
        for e in from..to {
            let server = self.edges[e] as usize;
            if std::mem::replace(&mut visited[server], true) {
                continue;
            }
            let other = self.owner[server];
            if other == UNMATCHED || self.augment(other, visited) {
                self.owner[server] = share;
                return true;
            }
        }
        false
    }

    fn size(&self) -> usize {
        self.owner.iter().filter(|&&s| s != UNMATCHED).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn node(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    /// A placement from (share, server) pairs.
    fn placement(edges: &[(u8, u8)]) -> BTreeMap<ShareNum, BTreeSet<NodeId>> {
        let mut p: BTreeMap<ShareNum, BTreeSet<NodeId>> = BTreeMap::new();
        for &(share, server) in edges {
            p.entry(ShareNum(share)).or_default().insert(node(server));
        }
        p
    }

    /// The largest matching, by trying every choice of server (or none) for every share.
    fn brute_force(p: &BTreeMap<ShareNum, BTreeSet<NodeId>>) -> usize {
        fn go(rest: &[Vec<NodeId>], used: &mut BTreeSet<NodeId>) -> usize {
            let Some((first, rest)) = rest.split_first() else {
                return 0;
            };
            let mut best = go(rest, used);
            for &n in first {
                if used.insert(n) {
                    best = best.max(1 + go(rest, used));
                    used.remove(&n);
                }
            }
            best
        }
        let lists: Vec<Vec<NodeId>> = p.values().map(|s| s.iter().copied().collect()).collect();
        go(&lists, &mut BTreeSet::new())
    }

    #[test]
    fn ring_is_a_deduplicated_permutation_that_depends_on_the_file() {
        let servers: Vec<NodeId> = (0..20).map(node).collect();
        let a = permuted_ring(StorageIndex([1; 16]), &servers);
        let b = permuted_ring(StorageIndex([2; 16]), &servers);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, servers);
        assert_ne!(a, b, "different files get different orders");
        let mut doubled = servers.clone();
        doubled.extend(servers.iter().rev());
        assert_eq!(permuted_ring(StorageIndex([1; 16]), &doubled), a);
        let reversed: Vec<NodeId> = servers.iter().rev().copied().collect();
        assert_eq!(permuted_ring(StorageIndex([1; 16]), &reversed), a);
    }

    #[test]
    fn happiness_of_known_placements() {
        assert_eq!(happiness(&BTreeMap::<ShareNum, Vec<NodeId>>::new()), 0);
        // One server holding every share: losing it loses the file.
        assert_eq!(happiness(&placement(&[(0, 1), (1, 1), (2, 1)])), 1);
        assert_eq!(happiness(&placement(&[(0, 1), (1, 2), (2, 3)])), 3);
        // Greedy would match share 0 to server 1 and strand share 1; the augmenting path
        // moves share 0 to server 2.
        assert_eq!(happiness(&placement(&[(0, 1), (0, 2), (1, 1)])), 2);
        // Two servers holding the same single share count once.
        assert_eq!(happiness(&placement(&[(0, 1), (0, 2)])), 1);
    }

    #[test]
    fn matching_pairs_are_edges_of_the_placement() {
        let p = placement(&[(0, 1), (0, 2), (1, 1), (2, 2), (2, 3)]);
        let m = max_matching(&p);
        assert_eq!(m.len(), 3);
        let servers: BTreeSet<NodeId> = m.values().copied().collect();
        assert_eq!(servers.len(), 3, "each server matched once");
        for (share, server) in &m {
            assert!(p[share].contains(server));
        }
    }

    fn edges() -> impl Strategy<Value = Vec<(u8, u8)>> {
        proptest::collection::vec((0u8..6, 0u8..6), 0..20)
    }

    proptest! {
        #[test]
        fn happiness_is_bounded_by_servers_and_shares(e in edges()) {
            let p = placement(&e);
            let servers: BTreeSet<NodeId> = p.values().flatten().copied().collect();
            prop_assert!(happiness(&p) <= servers.len().min(p.len()));
        }

        #[test]
        fn happiness_equals_brute_force(e in edges()) {
            let p = placement(&e);
            prop_assert_eq!(happiness(&p), brute_force(&p));
        }

        #[test]
        fn lists_of_servers_count_as_sets(e in edges()) {
            // The edges as given, repeats and all: a server named twice counts once.
            let mut lists: BTreeMap<ShareNum, Vec<NodeId>> = BTreeMap::new();
            for &(share, server) in &e {
                lists.entry(ShareNum(share)).or_default().push(node(server));
            }
            prop_assert_eq!(happiness(&lists), happiness(&placement(&e)));
        }

        #[test]
        fn adding_an_edge_never_lowers_happiness(e in edges(), share in 0u8..6, server in 0u8..6) {
            let before = happiness(&placement(&e));
            let mut more = e.clone();
            more.push((share, server));
            let after = happiness(&placement(&more));
            prop_assert!(after >= before && after <= before + 1);
        }

        #[test]
        fn ring_is_a_permutation(ids in proptest::collection::vec(any::<u8>(), 0..30), si in any::<[u8; 16]>()) {
            let servers: Vec<NodeId> = ids.iter().map(|&i| node(i)).collect();
            let ring = permuted_ring(StorageIndex(si), &servers);
            let expected: BTreeSet<NodeId> = servers.iter().copied().collect();
            prop_assert_eq!(ring.len(), expected.len());
            prop_assert_eq!(ring.iter().copied().collect::<BTreeSet<_>>(), expected);
        }
    }
}
