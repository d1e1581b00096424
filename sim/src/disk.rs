//! The simulated disk: one per node, outliving the node's crashes, implementing the actors'
//! [`ShareStore`], the medium under the node's journal, and the disk faults (lost unsynced
//! writes, torn writes, bit rot, a full disk).
//!
//! Durability model. A complete (committed) share is on the platter: it survives every
//! crash. An incoming share lives in the page cache: a process crash leaves it (the
//! restarted server finds it with [`ShareStore::incoming`] and aborts it), a power loss
//! ([`SimDisk::crash`] with `lose_unsynced`) makes it vanish. The journal is the actors' own
//! [`FramedJournal`] over a byte medium on this disk ([`SimDisk::journal`]): bytes written
//! but not yet synced are lost at a power loss, and a torn append
//! ([`SimDisk::tear_append`]) is recognised and cut off by the same recovery code a node
//! runs over its journal file.
//!
//! Everything is in `BTreeMap`s so that fault targets are drawn in a deterministic order.

use crate::host::index_below;
use cairn_actors::store::framed::frame;
use cairn_actors::store::{FramedJournal, Medium, ShareStore};
use cairn_actors::{ShareNum, StorageIndex};
use rand::Rng;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// The journal's medium, and how much of it is synced (the rest is lost at a power loss).
    journal: Vec<u8>,
    journal_synced: usize,
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
                journal_synced: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // The lock is only held inside this module's methods, none of which panics while
        // holding it, so a poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's journal: the actors' [`FramedJournal`] over this disk. Open a new one at
    /// every (re)start of the node, as a node opens its journal file.
    pub fn journal(&self) -> FramedJournal<DiskJournal> {
        FramedJournal::new(DiskJournal { disk: self.clone() })
    }

    /// The node crashed. A process crash (`lose_unsynced` false) loses nothing the disk has
    /// seen; a power loss also loses what was never made durable: every incoming share, and
    /// the journal's unsynced bytes.
    pub fn crash(&self, lose_unsynced: bool) {
        if lose_unsynced {
            let mut s = self.lock();
            let lost: u64 = s.incoming.values().map(|d| d.len() as u64).sum();
            s.incoming.clear();
            s.share_bytes -= lost;
            let synced = s.journal_synced;
            s.journal.truncate(synced);
        }
    }

    /// Leaves a torn journal append at the tail, synced: the first `1..len` bytes of a frame
    /// whose body is `record`, as a power loss in the middle of writing it would. The record
    /// was never acknowledged, so losing it breaks no promise; what matters is that readers
    /// cut it off and later appends are not lost behind it.
    pub fn tear_append(&self, record: &[u8], rng: &mut impl Rng) {
        let frame = frame(record);
        let keep = index_below(rng, frame.len() - 1) + 1;
        let mut s = self.lock();
        s.journal.extend_from_slice(&frame[..keep]);
        s.journal_synced = s.journal.len();
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
            .ok()
            .filter(|&start| start <= data.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "read at {offset} is past the end of the {}-byte share",
                        data.len()
                    ),
                )
            })?;
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

/// The medium under a node's journal: a byte log on its [`SimDisk`], with a file's
/// durability (written bytes survive a power loss only once synced).
pub struct DiskJournal {
    disk: SimDisk,
}

/// Reads a [`DiskJournal`] while holding its disk's lock.
pub struct DiskJournalReader<'a> {
    state: MutexGuard<'a, DiskState>,
    at: usize,
}

impl Read for DiskJournalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.state.journal.get(self.at..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

impl Medium for DiskJournal {
    type Reader<'a> = DiskJournalReader<'a>;

    fn read_from(&mut self, offset: u64) -> io::Result<Self::Reader<'_>> {
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(DiskJournalReader {
            state: self.disk.lock(),
            at,
        })
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.disk.lock().journal.len() as u64)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.check_writable()?;
        let at = usize::try_from(offset)
            .ok()
            .filter(|&at| at <= s.journal.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a write past the end"))?;
        let grows = (at + data.len()).saturating_sub(s.journal.len()) as u64;
        if grows > s.free() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no room for {grows} more bytes of journal"),
            ));
        }
        s.journal.truncate(at);
        s.journal.extend_from_slice(data);
        s.journal_synced = s.journal_synced.min(at);
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.disk.lock();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        s.journal.truncate(len);
        s.journal_synced = s.journal_synced.min(len);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.journal_synced = s.journal.len();
        Ok(())
    }

    fn name(&self) -> String {
        "the simulated journal".into()
    }
}

fn not_found(what: &str, si: StorageIndex, share: ShareNum) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no {what} share {} of {si:?}", share.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_actors::store::Journal;
    use cairn_actors::testing::{journal_suite, share_store_suite};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SI: StorageIndex = StorageIndex([7; 16]);

    #[test]
    fn the_simulated_disk_keeps_the_store_contract() {
        share_store_suite(SimDisk::new);
        let disk = SimDisk::new(64 << 20);
        journal_suite(|| disk.journal());
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
        assert!(disk.journal().append(b"r").is_err());
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
            let disk = SimDisk::new(10_000);
            let mut journal = disk.journal();
            journal.append(b"one").unwrap();
            journal.append(b"two").unwrap();
            disk.tear_append(b"three, never acknowledged", &mut rng);
            let restarted = disk.journal().records().unwrap();
            assert_eq!(restarted, vec![b"one".to_vec(), b"two".to_vec()]);
            disk.tear_append(b"four", &mut rng);
            journal.append(b"five").unwrap();
            assert_eq!(
                disk.journal().records().unwrap(),
                vec![b"one".to_vec(), b"two".to_vec(), b"five".to_vec()]
            );
        }
    }

    #[test]
    fn power_loss_keeps_synced_journal_bytes_and_loses_the_rest() {
        let disk = SimDisk::new(10_000);
        let mut journal = disk.journal();
        journal.append(b"acknowledged").unwrap();
        let mut medium = DiskJournal { disk: disk.clone() };
        let end = medium.size().unwrap();
        medium
            .write_at(end, &frame(b"written, not synced"))
            .unwrap();
        disk.crash(false);
        assert_eq!(
            disk.usage().journal_bytes,
            medium.size().unwrap(),
            "a process crash loses nothing"
        );
        disk.crash(true);
        assert_eq!(
            disk.usage().journal_bytes,
            end,
            "a power loss loses what was not synced"
        );
        assert_eq!(
            disk.journal().records().unwrap(),
            vec![b"acknowledged".to_vec()]
        );
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
