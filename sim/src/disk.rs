//! The simulated disk: one per node, outliving the node's crashes, implementing the actors'
//! [`ShareStore`] and [`Journal`] and the disk faults (lost unsynced writes, torn writes,
//! bit rot, a full disk).
//!
//! Durability model. A complete (committed) share and a complete journal record are on the
//! platter: they survive every crash. An incoming share lives in the page cache: a process
//! crash leaves it (the restarted server finds it with [`ShareStore::incoming`] and aborts
//! it), a power loss ([`SimDisk::crash`] with `lose_unsynced`) makes it vanish. The journal
//! is a byte log of `length, checksum, body` frames, so an append torn by a power loss is
//! recognised and cut off on the next read or append, as a real journal's recovery would.
//!
//! Everything is in `BTreeMap`s so that fault targets are drawn in a deterministic order.

use crate::host::index_below;
use cairn_actors::store::{Journal, ShareStore};
use cairn_actors::{ShareNum, StorageIndex};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of a journal frame before its body: a `u32` length and a `u32` checksum.
const FRAME_HEADER: usize = 8;

type ShareKey = (StorageIndex, ShareNum);

/// A node's disk. Cloning gives another handle to the same disk (the actors' stores and the
/// simulator's fault hooks share it).
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

struct DiskState {
    capacity: u64,
    full: bool,
    complete: BTreeMap<ShareKey, Vec<u8>>,
    incoming: BTreeMap<ShareKey, Vec<u8>>,
    share_bytes: u64,
    journal: Vec<u8>,
    /// How much of `journal` is known to be whole frames; anything after it must be checked.
    journal_checked: usize,
}

/// What a disk holds, for tests and statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Committed shares.
    pub complete_shares: usize,
    /// Shares being written.
    pub incoming_shares: usize,
    /// Bytes of all shares, complete and incoming.
    pub share_bytes: u64,
    /// Bytes of the journal (a torn tail included until it is cut).
    pub journal_bytes: u64,
}

impl SimDisk {
    /// An empty disk of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState {
                capacity,
                full: false,
                complete: BTreeMap::new(),
                incoming: BTreeMap::new(),
                share_bytes: 0,
                journal: Vec::new(),
                journal_checked: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // The lock is only held inside this module's methods, none of which panics while
        // holding it, so a poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node crashed. A process crash (`lose_unsynced` false) loses nothing the disk has
    /// seen; a power loss also loses what was never made durable: every incoming share.
    pub fn crash(&self, lose_unsynced: bool) {
        if lose_unsynced {
            let mut s = self.lock();
            let lost: u64 = s.incoming.values().map(|d| d.len() as u64).sum();
            s.incoming.clear();
            s.share_bytes -= lost;
        }
    }

    /// Leaves a torn journal append at the tail: the first `1..len` bytes of a frame whose
    /// body is `record`, as a power loss in the middle of writing it would. The record was
    /// never acknowledged, so losing it breaks no promise; what matters is that readers cut
    /// it off and later appends are not lost behind it.
    pub fn tear_append(&self, record: &[u8], rng: &mut impl Rng) {
        let frame = frame_of(record);
        let keep = index_below(rng, frame.len() - 1) + 1;
        self.lock().journal.extend_from_slice(&frame[..keep]);
    }

    /// Flips `count` random bits in complete shares (incoming shares are not touched: bit
    /// rot strikes data at rest). Returns how many bits were flipped (none if no complete
    /// share has a byte).
    pub fn rot(&self, count: u32, rng: &mut impl Rng) -> u32 {
        let mut s = self.lock();
        let candidates: Vec<ShareKey> = s
            .complete
            .iter()
            .filter(|(_, data)| !data.is_empty())
            .map(|(key, _)| *key)
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        for _ in 0..count {
            let key = candidates[index_below(rng, candidates.len())];
            if let Some(data) = s.complete.get_mut(&key) {
                let byte = index_below(rng, data.len());
                data[byte] ^= 1 << rng.gen_range(0..8);
            }
        }
        count
    }

    /// Makes the disk full (every write fails, no space is available) or not.
    pub fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    /// What the disk holds.
    pub fn usage(&self) -> DiskUsage {
        let s = self.lock();
        DiskUsage {
            complete_shares: s.complete.len(),
            incoming_shares: s.incoming.len(),
            share_bytes: s.share_bytes,
            journal_bytes: s.journal.len() as u64,
        }
    }

    /// A copy of a complete share's bytes (for tests and invariant checks).
    pub fn share(&self, si: StorageIndex, share: ShareNum) -> Option<Vec<u8>> {
        self.lock().complete.get(&(si, share)).cloned()
    }
}

impl DiskState {
    fn free(&self) -> u64 {
        if self.full {
            return 0;
        }
        self.capacity
            .saturating_sub(self.share_bytes)
            .saturating_sub(self.journal.len() as u64)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.full {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated disk is full",
            ));
        }
        Ok(())
    }

    /// Cuts the journal at the end of its last whole frame (recovery after a torn append).
    fn recover_journal(&mut self) {
        let mut at = self.journal_checked;
        while let Some(next) = next_frame(&self.journal, at) {
            at = next;
        }
        self.journal.truncate(at);
        self.journal_checked = at;
    }
}

impl ShareStore for SimDisk {
    fn create(&mut self, si: StorageIndex, share: ShareNum, size: u64) -> io::Result<()> {
        let mut s = self.lock();
        s.check_writable()?;
        let key = (si, share);
        if s.complete.contains_key(&key) || s.incoming.contains_key(&key) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("share {} of {si:?} already exists", share.0),
            ));
        }
        if size > s.free() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no room for a {size}-byte share: {} bytes free", s.free()),
            ));
        }
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "share too large"))?;
        s.incoming.insert(key, vec![0; len]);
        s.share_bytes += size;
        Ok(())
    }

    fn write(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let mut s = self.lock();
        s.check_writable()?;
        let buf = s
            .incoming
            .get_mut(&(si, share))
            .ok_or_else(|| not_found("incoming", si, share))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start
            .checked_add(data.len())
            .filter(|end| *end <= buf.len());
        let Some(end) = end else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write of {} bytes at {offset} is past the share's {} bytes",
                    data.len(),
                    buf.len()
                ),
            ));
        };
        buf[start..end].copy_from_slice(data);
        Ok(())
    }

    fn commit(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let mut s = self.lock();
        let data = s
            .incoming
            .remove(&(si, share))
            .ok_or_else(|| not_found("incoming", si, share))?;
        s.complete.insert((si, share), data);
        Ok(())
    }

    fn abort(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let mut s = self.lock();
        let data = s
            .incoming
            .remove(&(si, share))
            .ok_or_else(|| not_found("incoming", si, share))?;
        s.share_bytes -= data.len() as u64;
        Ok(())
    }

    fn read(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let data = s
            .complete
            .get(&(si, share))
            .ok_or_else(|| not_found("complete", si, share))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn list(&mut self, si: StorageIndex) -> io::Result<Vec<(ShareNum, u64)>> {
        let s = self.lock();
        Ok(s.complete
            .range((si, ShareNum(0))..=(si, ShareNum(u8::MAX)))
            .map(|((_, share), data)| (*share, data.len() as u64))
            .collect())
    }

    fn incoming(&mut self) -> io::Result<Vec<(StorageIndex, ShareNum)>> {
        Ok(self.lock().incoming.keys().copied().collect())
    }

    fn used_bytes(&mut self) -> io::Result<u64> {
        Ok(self.lock().share_bytes)
    }

    fn available_bytes(&mut self) -> io::Result<u64> {
        Ok(self.lock().free())
    }
}

impl Journal for SimDisk {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        s.check_writable()?;
        s.recover_journal();
        let needed = (FRAME_HEADER + record.len()) as u64;
        if needed > s.free() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no room for a {needed}-byte journal record"),
            ));
        }
        let frame = frame_of(record);
        s.journal.extend_from_slice(&frame);
        s.journal_checked = s.journal.len();
        Ok(())
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut s = self.lock();
        s.recover_journal();
        let mut records = Vec::new();
        let mut at = 0;
        while let Some(next) = next_frame(&s.journal, at) {
            records.push(s.journal[at + FRAME_HEADER..next].to_vec());
            at = next;
        }
        Ok(records)
    }
}

fn not_found(what: &str, si: StorageIndex, share: ShareNum) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no {what} share {} of {si:?}", share.0),
    )
}

fn checksum(body: &[u8]) -> u32 {
    let hash = Sha256::digest(body);
    u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]])
}

fn frame_of(record: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER + record.len());
    frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
    frame.extend_from_slice(&checksum(record).to_le_bytes());
    frame.extend_from_slice(record);
    frame
}

/// Where the whole, intact frame starting at `at` ends; `None` at the end of the log or at a
/// torn or damaged frame.
fn next_frame(log: &[u8], at: usize) -> Option<usize> {
    let header = log.get(at..at.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let sum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let end = (at + FRAME_HEADER).checked_add(len)?;
    let body = log.get(at + FRAME_HEADER..end)?;
    (checksum(body) == sum).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SI: StorageIndex = StorageIndex([7; 16]);

    #[test]
    fn incoming_shares_are_invisible_until_committed() {
        let mut disk = SimDisk::new(1000);
        disk.create(SI, ShareNum(1), 4).unwrap();
        disk.write(SI, ShareNum(1), 0, b"abcd").unwrap();
        assert!(disk.read(SI, ShareNum(1), 0, 4).is_err());
        assert_eq!(disk.list(SI).unwrap(), vec![]);
        disk.commit(SI, ShareNum(1)).unwrap();
        assert_eq!(disk.read(SI, ShareNum(1), 1, 10).unwrap(), b"bcd");
        assert_eq!(disk.list(SI).unwrap(), vec![(ShareNum(1), 4)]);
        assert!(disk.create(SI, ShareNum(1), 4).is_err());
        assert!(disk.write(SI, ShareNum(1), 0, b"x").is_err());
    }

    #[test]
    fn capacity_and_full_disk_refuse_writes() {
        let mut disk = SimDisk::new(10);
        assert!(disk.create(SI, ShareNum(0), 11).is_err());
        disk.create(SI, ShareNum(0), 6).unwrap();
        assert_eq!(disk.available_bytes().unwrap(), 4);
        disk.set_full(true);
        assert_eq!(disk.available_bytes().unwrap(), 0);
        let err = disk.write(SI, ShareNum(0), 0, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(disk.append(b"r").is_err());
        disk.set_full(false);
        disk.write(SI, ShareNum(0), 0, b"x").unwrap();
        assert!(disk.write(SI, ShareNum(0), 5, b"xy").is_err());
        disk.abort(SI, ShareNum(0)).unwrap();
        assert_eq!(disk.used_bytes().unwrap(), 0);
    }

    #[test]
    fn power_loss_drops_incoming_but_process_crash_keeps_it() {
        let mut disk = SimDisk::new(1000);
        disk.create(SI, ShareNum(0), 3).unwrap();
        disk.create(SI, ShareNum(1), 3).unwrap();
        disk.commit(SI, ShareNum(1)).unwrap();
        disk.crash(false);
        assert_eq!(disk.incoming().unwrap(), vec![(SI, ShareNum(0))]);
        disk.crash(true);
        assert_eq!(disk.incoming().unwrap(), vec![]);
        assert_eq!(disk.list(SI).unwrap(), vec![(ShareNum(1), 3)]);
        assert_eq!(disk.used_bytes().unwrap(), 3);
    }

    #[test]
    fn torn_tail_is_cut_and_later_appends_survive() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let mut disk = SimDisk::new(10_000);
            disk.append(b"one").unwrap();
            disk.append(b"two").unwrap();
            disk.tear_append(b"three, never acknowledged", &mut rng);
            assert_eq!(
                disk.records().unwrap(),
                vec![b"one".to_vec(), b"two".to_vec()]
            );
            disk.tear_append(b"four", &mut rng);
            disk.append(b"five").unwrap();
            assert_eq!(
                disk.records().unwrap(),
                vec![b"one".to_vec(), b"two".to_vec(), b"five".to_vec()]
            );
        }
    }

    #[test]
    fn rot_flips_bits_in_complete_shares_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut disk = SimDisk::new(10_000);
        disk.create(SI, ShareNum(0), 64).unwrap();
        disk.create(SI, ShareNum(1), 64).unwrap();
        disk.write(SI, ShareNum(1), 0, &[0; 64]).unwrap();
        assert_eq!(disk.rot(5, &mut rng), 0, "nothing complete yet");
        disk.commit(SI, ShareNum(0)).unwrap();
        assert_eq!(disk.rot(1, &mut rng), 1);
        let data = disk.read(SI, ShareNum(0), 0, 64).unwrap();
        assert_eq!(data.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        disk.commit(SI, ShareNum(1)).unwrap();
        let _ = disk.rot(0, &mut rng);
        assert_eq!(disk.read(SI, ShareNum(1), 0, 64).unwrap(), vec![0; 64]);
    }
}
