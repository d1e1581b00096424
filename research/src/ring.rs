//! Who is in the mesh, and the order in which a client asks servers about a file: Tahoe's
//! permuted ring, kept incrementally for a hundred thousand files over ten thousand servers.
//!
//! The ring is the one [`cairn_actors::placement::permuted_ring`] defines — servers sorted by
//! a hash of (storage index, server) — with a 64-bit mix in place of SHA-256: the same
//! uniformly random, per-file order, at a thirtieth of the cost. Even so, ordering every
//! server for every operation would cost `files × servers` hashes per sweep, so each file
//! keeps only its ring's first servers ([`RingCache`]) and brings them up to date from the
//! [`Membership`]'s log of joins and departures when it is next used.
//!
//! The membership is what a perfect introducer would tell the client: every member, up or
//! down (a down server simply does not answer).

use super::churn::NodeNum;
use super::ledger::{mix, FileNum};
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A change of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Joined(NodeNum),
    Left(NodeNum),
}

/// The mesh's members and their history. See the module docs.
#[derive(Debug, Default)]
pub struct Membership {
    /// Each node's ring key (from its id), by number.
    keys: Vec<u64>,
    member: Vec<bool>,
    /// The members' (ring key, number), in no particular order: what a ring rebuild scans,
    /// packed so that the scan reads one array front to back.
    active: Vec<(u64, NodeNum)>,
    /// Where each member sits in `active`.
    slot: Vec<u32>,
    log: Vec<Change>,
}

impl Membership {
    /// Adds node `n` with ring key `key` (nodes join in number order).
    pub fn join(&mut self, n: NodeNum, key: u64) {
        debug_assert_eq!(n as usize, self.keys.len());
        self.keys.push(key);
        self.member.push(true);
        self.slot.push(self.active.len() as u32);
        self.active.push((key, n));
        self.log.push(Change::Joined(n));
    }

    /// Node `n` left for good.
    pub fn leave(&mut self, n: NodeNum) {
        let Some(m) = self.member.get_mut(n as usize) else {
            return;
        };
        if !std::mem::replace(m, false) {
            return;
        }
        let at = self.slot[n as usize] as usize;
        self.active.swap_remove(at);
        if let Some(&(_, moved)) = self.active.get(at) {
            self.slot[moved as usize] = at as u32;
        }
        self.log.push(Change::Left(n));
    }

    /// Whether `n` is a member.
    pub fn is_member(&self, n: NodeNum) -> bool {
        self.member.get(n as usize).copied().unwrap_or(false)
    }

    /// The members, in number order.
    pub fn members(&self) -> impl Iterator<Item = NodeNum> + '_ {
        (0..self.member.len() as NodeNum).filter(|&n| self.member[n as usize])
    }

    /// Members now.
    pub fn count(&self) -> usize {
        self.member.iter().filter(|m| **m).count()
    }

    fn position(&self, file_key: u64, n: NodeNum) -> u64 {
        mix(file_key, self.keys[n as usize])
    }
}

/// The membership, shared by the runner (which changes it) and the client (which reads it).
pub type SharedMembership = Arc<Mutex<Membership>>;

/// Locks the membership (never contended; see [`super::ledger::lock`]).
pub fn lock(m: &SharedMembership) -> MutexGuard<'_, Membership> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first servers of one file's ring, as of some point of the membership log.
#[derive(Clone, Debug, Default)]
struct Prefix {
    /// How much of the log this prefix has seen.
    seen: usize,
    /// (ring position, node), in ring order.
    entries: Vec<(u64, NodeNum)>,
}

/// Each file's ring prefix. See the module docs.
pub struct RingCache {
    len: usize,
    keys: Vec<u64>,
    prefixes: Vec<Prefix>,
    scratch: Vec<(u64, NodeNum)>,
}

impl RingCache {
    /// Prefixes of `len` servers for files whose ring keys are `keys`.
    pub fn new(len: usize, keys: Vec<u64>) -> Self {
        let prefixes = vec![Prefix::default(); keys.len()];
        RingCache {
            len,
            keys,
            prefixes,
            scratch: Vec::new(),
        }
    }

    /// The first servers of `file`'s ring among the current members, in ring order.
    pub fn prefix(&mut self, file: FileNum, members: &Membership) -> Vec<NodeNum> {
        let f = file as usize;
        let key = self.keys[f];
        let prefix = &mut self.prefixes[f];
        let mut stale = prefix.seen == 0;
        let unseen = if stale {
            &[][..]
        } else {
            &members.log[prefix.seen.min(members.log.len())..]
        };
        for change in unseen {
            match *change {
                Change::Left(n) => {
                    let before = prefix.entries.len();
                    prefix.entries.retain(|(_, m)| *m != n);
                    // A prefix that lost a server no longer knows its last place.
                    stale |= prefix.entries.len() != before;
                }
                Change::Joined(n) => {
                    let pos = members.position(key, n);
                    let at = prefix.entries.partition_point(|e| *e < (pos, n));
                    if at < self.len {
                        prefix.entries.insert(at, (pos, n));
                        prefix.entries.truncate(self.len);
                    }
                }
            }
            if stale {
                break;
            }
        }
        prefix.seen = members.log.len();
        if stale {
            self.rebuild(f, members);
        }
        self.prefixes[f].entries.iter().map(|(_, n)| *n).collect()
    }

    /// Finds file `f`'s first `len` members in ring order. One pass over the members that
    /// keeps the best so far in a bounded max-heap: of ten thousand members only a few
    /// hundred ever displace one, so almost every member costs a hash and a comparison (no
    /// list of every member to write out and select from).
    fn rebuild(&mut self, f: usize, members: &Membership) {
        let key = self.keys[f];
        let mut best = BinaryHeap::from(std::mem::take(&mut self.scratch));
        best.clear();
        let (first, rest) = members.active.split_at(self.len.min(members.active.len()));
        best.extend(first.iter().map(|&(k, n)| (mix(key, k), n)));
        // The worst entry kept so far, held in a local so that the loop reads no heap.
        let mut worst = best.peek().copied().unwrap_or((0, 0));
        for &(k, n) in rest {
            let entry = (mix(key, k), n);
            if entry < worst {
                if let Some(mut top) = best.peek_mut() {
                    *top = entry;
                }
                worst = best.peek().copied().unwrap_or(entry);
            }
        }
        let mut sorted = best.into_vec();
        sorted.sort_unstable();
        let prefix = &mut self.prefixes[f];
        prefix.entries.clear();
        prefix.entries.extend_from_slice(&sorted);
        self.scratch = sorted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full ring, the slow way.
    fn full_ring(file_key: u64, m: &Membership) -> Vec<NodeNum> {
        let mut all: Vec<(u64, NodeNum)> =
            m.members().map(|n| (m.position(file_key, n), n)).collect();
        all.sort_unstable();
        all.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn cached_prefixes_follow_joins_and_departures() {
        let mut m = Membership::default();
        for n in 0..50 {
            m.join(n, mix(99, u64::from(n)));
        }
        let keys: Vec<u64> = (0..20).map(|f| mix(5, f)).collect();
        let mut cache = RingCache::new(8, keys.clone());
        for round in 0..30u32 {
            for f in 0..20u32 {
                let want: Vec<NodeNum> = full_ring(keys[f as usize], &m)
                    .into_iter()
                    .take(8)
                    .collect();
                assert_eq!(cache.prefix(f, &m), want, "round {round}, file {f}");
            }
            m.leave((round * 7) % 50);
            let next = 50 + round;
            m.join(next, mix(99, u64::from(next)));
        }
    }
}
