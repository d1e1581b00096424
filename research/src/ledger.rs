//! Where the shares of a research run are: the [`Ledger`] (every share on every node), and
//! [`SizeStore`], the storage servers' [`ShareStore`] over it, which keeps share *sizes*
//! instead of bytes.
//!
//! The storage servers are the real [`cairn_actors::storage::StorageServer`]: they allocate,
//! take writes, close, list and read through this store exactly as over a disk. Only the
//! payload is synthetic: writes are not kept, and a read answers with no bytes (the reader
//! counts the share's size). That is what lets a hundred thousand files of megabytes fit.
//!
//! The ledger is also the run's omniscient view, for statistics only: how many distinct
//! shares of each file remain on member nodes (or on nodes up now), and how evenly the shares
//! spread. Actors never read it, except each store for its own node's shares.

mod holders;

use super::churn::NodeNum;
use cairn_actors::store::{Journal, ShareStore};
use cairn_actors::{NodeId, ShareNum, StorageIndex};
use holders::Holders;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// A file, by its number in the run.
pub type FileNum = u32;

/// Every share of the run. See the module docs.
#[derive(Debug, Default)]
pub struct Ledger {
    share_size: u64,
    /// Each file's shares: (share number, node).
    files: Vec<Holders>,
    /// Each node's shares: (file, share number); emptied when the node departs.
    nodes: Vec<Vec<(FileNum, u8)>>,
    /// Shares ever committed.
    commits: u64,
}

/// A set of share numbers (there are at most 256).
#[derive(Clone, Copy, Default)]
pub(crate) struct ShareSet([u64; 4]);

impl ShareSet {
    pub(crate) fn insert(&mut self, share: u8) {
        self.0[usize::from(share >> 6)] |= 1 << (share & 63);
    }

    pub(crate) fn len(self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

impl FromIterator<u8> for ShareSet {
    fn from_iter<I: IntoIterator<Item = u8>>(shares: I) -> Self {
        let mut set = ShareSet::default();
        for share in shares {
            set.insert(share);
        }
        set
    }
}

impl Ledger {
    /// A ledger for `files` files whose shares are `share_size` bytes.
    pub fn new(files: u32, share_size: u64) -> Self {
        Ledger {
            share_size,
            files: vec![Holders::default(); files as usize],
            nodes: Vec::new(),
            commits: 0,
        }
    }

    /// Records that `node` now holds `share` of `file`.
    pub fn add(&mut self, file: FileNum, share: u8, node: NodeNum) {
        let Some(holders) = self.files.get_mut(file as usize) else {
            return;
        };
        holders.push((share, node));
        if self.nodes.len() <= node as usize {
            self.nodes.resize(node as usize + 1, Vec::new());
        }
        self.nodes[node as usize].push((file, share));
        self.commits += 1;
    }

    /// Whether `node` holds `share` of `file`.
    pub fn holds(&self, file: FileNum, share: u8, node: NodeNum) -> bool {
        self.files
            .get(file as usize)
            .is_some_and(|h| h.contains(&(share, node)))
    }

    /// The shares of `file` on `node`, with their sizes, in share order.
    pub fn shares_on(&self, file: FileNum, node: NodeNum) -> Vec<(ShareNum, u64)> {
        let mut shares: Vec<(ShareNum, u64)> = self
            .files
            .get(file as usize)
            .into_iter()
            .flat_map(Holders::iter)
            .filter(|(_, n)| *n == node)
            .map(|(s, _)| (ShareNum(*s), self.share_size))
            .collect();
        shares.sort_unstable();
        shares
    }

    /// Bytes of complete shares on `node`.
    pub fn bytes_on(&self, node: NodeNum) -> u64 {
        self.nodes
            .get(node as usize)
            .map_or(0, |s| s.len() as u64 * self.share_size)
    }

    /// `node` no longer holds `share` of `file`.
    pub fn remove(&mut self, file: FileNum, share: u8, node: NodeNum) {
        if let Some(holders) = self.files.get_mut(file as usize) {
            holders.retain(|h| *h != (share, node));
        }
        if let Some(held) = self.nodes.get_mut(node as usize) {
            held.retain(|h| *h != (file, share));
        }
    }

    /// How many shares `node` holds.
    pub fn shares_of(&self, node: NodeNum) -> u64 {
        self.nodes.get(node as usize).map_or(0, |s| s.len() as u64)
    }

    /// `node` left the mesh: its shares are gone.
    pub fn depart(&mut self, node: NodeNum) {
        let Some(held) = self.nodes.get_mut(node as usize) else {
            return;
        };
        for (file, share) in std::mem::take(held) {
            self.files[file as usize].retain(|h| *h != (share, node));
        }
    }

    /// Distinct shares of `file` on nodes for which `counts` holds.
    pub fn distinct(&self, file: FileNum, mut counts: impl FnMut(NodeNum) -> bool) -> usize {
        let mut set = ShareSet::default();
        for &(share, node) in self
            .files
            .get(file as usize)
            .into_iter()
            .flat_map(Holders::iter)
        {
            if counts(node) {
                set.insert(share);
            }
        }
        set.len()
    }

    /// Distinct shares of `file` on members and on nodes up now, in one pass (`state` says
    /// of a node whether it is a member and whether it is up).
    pub fn distinct_two(
        &self,
        file: FileNum,
        mut state: impl FnMut(NodeNum) -> (bool, bool),
    ) -> (usize, usize) {
        let (mut members, mut up) = (ShareSet::default(), ShareSet::default());
        for &(share, node) in self
            .files
            .get(file as usize)
            .into_iter()
            .flat_map(Holders::iter)
        {
            let (member, is_up) = state(node);
            if member {
                members.insert(share);
            }
            if is_up {
                up.insert(share);
            }
        }
        (members.len(), up.len())
    }

    /// Shares of `file` stored, counting copies of one share on several nodes.
    pub fn copies(&self, file: FileNum) -> usize {
        self.files.get(file as usize).map_or(0, Holders::len)
    }

    /// Files in the run.
    pub fn file_count(&self) -> u32 {
        self.files.len() as u32
    }

    /// How many shares each node in `nodes` holds.
    pub fn load(&self, nodes: impl Iterator<Item = NodeNum>) -> Vec<usize> {
        nodes
            .map(|n| self.nodes.get(n as usize).map_or(0, Vec::len))
            .collect()
    }

    /// Shares ever committed.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Each share's size.
    pub fn share_size(&self) -> u64 {
        self.share_size
    }
}

/// The ledger, shared by every node's store and the runner (one thread; the lock is never
/// contended, it only makes the stores `Send` as actors must be).
pub type SharedLedger = Arc<Mutex<Ledger>>;

/// Locks the ledger. No holder panics while holding it, so a poisoned lock still guards
/// consistent state.
pub fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node id of node `n` of a run: the number first (so that it can be read back), then
/// bytes drawn from the seed.
pub fn node_id(seed: u64, n: NodeNum) -> NodeId {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    id[4..12].copy_from_slice(&mix(seed ^ 0x6e6f_6465, u64::from(n)).to_le_bytes());
    NodeId(id)
}

/// The number of a node from its id (`None` for ids not made by [`node_id`]).
pub fn node_num(seed: u64, id: NodeId) -> Option<NodeNum> {
    let n = u32::from_le_bytes(id.0[..4].try_into().ok()?);
    (node_id(seed, n) == id).then_some(n)
}

/// The storage index of file `f`: its number, then bytes drawn from the seed.
pub fn storage_index(seed: u64, f: FileNum) -> StorageIndex {
    let mut si = [0u8; 16];
    si[..4].copy_from_slice(&f.to_le_bytes());
    si[4..12].copy_from_slice(&mix(seed ^ 0x6669_6c65, u64::from(f)).to_le_bytes());
    StorageIndex(si)
}

/// The file a storage index names (`None` for one not made by [`storage_index`]: a server
/// holds nothing under it).
pub fn file_num(seed: u64, si: StorageIndex) -> Option<FileNum> {
    let f = u32::from_le_bytes(si.0[..4].try_into().ok()?);
    (storage_index(seed, f) == si).then_some(f)
}

/// A 64-bit mix of two words (SplitMix64's finaliser): fast, and good enough for simulated
/// ids and ring positions.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One storage node's share store over the ledger: sizes, not bytes. See the module docs.
pub struct SizeStore {
    seed: u64,
    node: NodeNum,
    capacity: u64,
    ledger: SharedLedger,
    /// Shares being uploaded, with their sizes (lost with the process, as a crash loses them).
    incoming: BTreeMap<(StorageIndex, ShareNum), u64>,
    /// Committed shares whose size is not the run's share size, which the ledger assumes.
    /// Empty in a research run (its client allocates exactly that size); kept so that the
    /// store is exact for any size, as the store contract wants.
    odd_sizes: BTreeMap<(StorageIndex, ShareNum), u64>,
}

impl SizeStore {
    /// The store of node `node`, holding at most `capacity` bytes.
    pub fn new(seed: u64, node: NodeNum, capacity: u64, ledger: SharedLedger) -> Self {
        SizeStore {
            seed,
            node,
            capacity,
            ledger,
            incoming: BTreeMap::new(),
            odd_sizes: BTreeMap::new(),
        }
    }

    fn file(&self, si: StorageIndex) -> io::Result<FileNum> {
        file_num(self.seed, si)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn complete(&self, si: StorageIndex, share: ShareNum) -> bool {
        file_num(self.seed, si).is_some_and(|f| lock(&self.ledger).holds(f, share.0, self.node))
    }

    /// A complete share's size.
    fn size_of(&self, si: StorageIndex, share: ShareNum) -> u64 {
        let usual = lock(&self.ledger).share_size();
        self.odd_sizes.get(&(si, share)).copied().unwrap_or(usual)
    }
}

fn not_incoming() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such incoming share")
}

impl ShareStore for SizeStore {
    fn create(&mut self, si: StorageIndex, share: ShareNum, size: u64) -> io::Result<()> {
        self.file(si)?;
        if self.incoming.contains_key(&(si, share)) || self.complete(si, share) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "share exists"));
        }
        if size > self.available_bytes()? {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "store full"));
        }
        self.incoming.insert((si, share), size);
        Ok(())
    }

    fn write(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        // The payload is synthetic: only that the share exists, and the bounds, matter.
        let size = *self.incoming.get(&(si, share)).ok_or_else(not_incoming)?;
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > size)
        {
            let why = format!(
                "a write of {} bytes at {offset} is outside the {size}-byte share",
                data.len()
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        Ok(())
    }

    fn commit(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let size = self
            .incoming
            .remove(&(si, share))
            .ok_or_else(not_incoming)?;
        let file = self.file(si)?;
        let mut ledger = lock(&self.ledger);
        ledger.add(file, share.0, self.node);
        if size != ledger.share_size() {
            self.odd_sizes.insert((si, share), size);
        }
        Ok(())
    }

    fn abort(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        self.incoming
            .remove(&(si, share))
            .ok_or_else(not_incoming)?;
        Ok(())
    }

    fn delete(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        if !self.complete(si, share) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such share"));
        }
        lock(&self.ledger).remove(self.file(si)?, share.0, self.node);
        self.odd_sizes.remove(&(si, share));
        Ok(())
    }

    fn read(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        _: u64,
    ) -> io::Result<Vec<u8>> {
        if !self.complete(si, share) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such share"));
        }
        let size = self.size_of(si, share);
        if offset > size {
            let why = format!("a read at {offset} is past the end of the {size}-byte share");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        // Synthetic payload: the reader counts the share's size.
        Ok(Vec::new())
    }

    fn list(&mut self, si: StorageIndex) -> io::Result<Vec<(ShareNum, u64)>> {
        let Some(f) = file_num(self.seed, si) else {
            return Ok(Vec::new());
        };
        let mut shares = lock(&self.ledger).shares_on(f, self.node);
        if !self.odd_sizes.is_empty() {
            for (share, size) in &mut shares {
                *size = self.size_of(si, *share);
            }
        }
        Ok(shares)
    }

    fn incoming(&mut self) -> io::Result<Vec<(StorageIndex, ShareNum)>> {
        Ok(self.incoming.keys().copied().collect())
    }

    fn used_bytes(&mut self) -> io::Result<u64> {
        let incoming: u64 = self.incoming.values().sum();
        let (mut complete, usual) = {
            let ledger = lock(&self.ledger);
            (ledger.bytes_on(self.node), ledger.share_size())
        };
        for (&(si, share), &size) in &self.odd_sizes {
            if self.complete(si, share) {
                complete = complete - usual + size;
            }
        }
        Ok(complete + incoming)
    }

    fn share_count(&mut self) -> io::Result<u64> {
        Ok(lock(&self.ledger).shares_of(self.node))
    }

    fn available_bytes(&mut self) -> io::Result<u64> {
        Ok(self.capacity.saturating_sub(self.used_bytes()?))
    }
}

/// A journal that keeps nothing: research runs do not model leases across restarts (the
/// servers keep their lease tables in memory while up).
pub struct NullJournal;

impl Journal for NullJournal {
    fn append(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    fn rewrite(&mut self, _: &[Vec<u8>]) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_actors::testing::ShareStoreSuite;

    #[test]
    fn the_size_store_keeps_the_store_contract_but_for_the_bytes() {
        let suite = ShareStoreSuite {
            files: [storage_index(3, 0), storage_index(3, 1)],
            keeps_bytes: false,
        };
        suite.run(|capacity| {
            let ledger = Arc::new(Mutex::new(Ledger::new(2, 100)));
            SizeStore::new(3, 0, capacity, ledger)
        });
    }

    #[test]
    fn ids_and_indexes_round_trip_and_refuse_strangers() {
        assert_eq!(node_num(7, node_id(7, 42)), Some(42));
        assert_eq!(node_num(8, node_id(7, 42)), None);
        assert_eq!(file_num(7, storage_index(7, 9)), Some(9));
        assert_eq!(file_num(7, StorageIndex([1; 16])), None);
    }

    #[test]
    fn store_keeps_sizes_and_the_ledger_counts_distinct_shares() {
        let ledger = Arc::new(Mutex::new(Ledger::new(2, 100)));
        let si = storage_index(1, 1);
        let mut a = SizeStore::new(1, 0, 250, ledger.clone());
        let mut b = SizeStore::new(1, 1, 1000, ledger.clone());
        a.create(si, ShareNum(0), 100).unwrap();
        a.write(si, ShareNum(0), 0, &[]).unwrap();
        a.commit(si, ShareNum(0)).unwrap();
        a.create(si, ShareNum(1), 100).unwrap();
        let full = a.create(si, ShareNum(2), 100).unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        a.commit(si, ShareNum(1)).unwrap();
        b.create(si, ShareNum(1), 100).unwrap();
        b.commit(si, ShareNum(1)).unwrap();
        assert!(
            a.create(si, ShareNum(0), 100).is_err(),
            "a complete share exists"
        );
        assert_eq!(
            a.list(si).unwrap(),
            vec![(ShareNum(0), 100), (ShareNum(1), 100)]
        );
        assert_eq!(lock(&ledger).distinct(1, |_| true), 2);
        assert_eq!(lock(&ledger).distinct(1, |n| n == 1), 1);
        lock(&ledger).depart(0);
        assert_eq!(lock(&ledger).distinct(1, |_| true), 1);
        assert!(a.read(si, ShareNum(0), 0, 10).is_err());
        assert_eq!(b.read(si, ShareNum(1), 0, 10).unwrap(), Vec::<u8>::new());
    }
}
