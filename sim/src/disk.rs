//! The simulated disk: one per node, outliving the node's crashes. It holds the node's
//! shares (the actors' [`MemShareStore`], [`SimDisk::shares`]) and the medium under its
//! journal ([`SimDisk::journal`]), on one capacity, and takes the disk faults: lost unsynced
//! writes, torn journal appends, bit rot, a full disk.
//!
//! Durability model. A complete (committed) share is on the platter: it survives every
//! crash. An incoming share lives in the page cache: a process crash leaves it (the
//! restarted server finds it with `ShareStore::incoming` and aborts it), a power loss
//! ([`SimDisk::crash`] with `lose_unsynced`) makes it vanish. The journal is the actors' own
//! [`FramedJournal`] over a byte medium on this disk: bytes written but not yet synced are
//! lost at a power loss, and a torn append ([`SimDisk::tear_append`]) is recognised and cut
//! off by the same recovery code a node runs over its journal file.
//!
//! Everything is in `BTreeMap`s so that fault targets are drawn in a deterministic order.

use crate::host::index_below;
use cairn_actors::memstore::MemShareStore;
use cairn_actors::store::framed::frame;
use cairn_actors::store::{FramedJournal, Medium, ShareStore};
use cairn_actors::{ShareNum, StorageIndex};
use rand::Rng;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};

/// A node's disk. Cloning gives another handle to the same disk (the actors' stores and the
/// simulator's fault hooks share it).
#[derive(Clone)]
pub struct SimDisk {
    capacity: u64,
    shares: MemShareStore,
    journal: Arc<Mutex<JournalBytes>>,
}

/// The journal's medium, and how much of it is synced (the rest is lost at a power loss).
#[derive(Default)]
struct JournalBytes {
    bytes: Vec<u8>,
    synced: usize,
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
            capacity,
            shares: MemShareStore::new(capacity),
            journal: Arc::default(),
        }
    }

    /// The node's share store: a handle to the shares on this disk.
    pub fn shares(&self) -> MemShareStore {
        self.shares.clone()
    }

    /// The node's journal: the actors' [`FramedJournal`] over this disk. Open a new one at
    /// every (re)start of the node, as a node opens its journal file.
    pub fn journal(&self) -> FramedJournal<DiskJournal> {
        FramedJournal::new(DiskJournal { disk: self.clone() })
    }

    fn journal_bytes(&self) -> MutexGuard<'_, JournalBytes> {
        // Held only inside this module's methods, none of which panics while holding it, so
        // a poisoned lock still guards consistent bytes.
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The journal and the shares share the disk: the shares get what the journal leaves.
    fn journal_resized(&self, journal: &JournalBytes) {
        let len = journal.bytes.len() as u64;
        self.shares.set_capacity(self.capacity.saturating_sub(len));
    }

    /// The node crashed. A process crash (`lose_unsynced` false) loses nothing the disk has
    /// seen; a power loss also loses what was never made durable: every incoming share, and
    /// the journal's unsynced bytes.
    pub fn crash(&self, lose_unsynced: bool) {
        if lose_unsynced {
            self.shares.lose_incoming();
            let mut journal = self.journal_bytes();
            let synced = journal.synced;
            journal.bytes.truncate(synced);
            self.journal_resized(&journal);
        }
    }

    /// Leaves a torn journal append at the tail, synced: the first `1..len` bytes of a frame
    /// whose body is `record`, as a power loss in the middle of writing it would. The record
    /// was never acknowledged, so losing it breaks no promise; what matters is that readers
    /// cut it off and later appends are not lost behind it.
    pub fn tear_append(&self, record: &[u8], rng: &mut impl Rng) {
        let frame = frame(record);
        let keep = index_below(rng, frame.len() - 1) + 1;
        let mut journal = self.journal_bytes();
        journal.bytes.extend_from_slice(&frame[..keep]);
        journal.synced = journal.bytes.len();
        self.journal_resized(&journal);
    }

    /// Flips `count` random bits in complete shares (incoming shares are not touched: bit
    /// rot strikes data at rest). Returns how many bits were flipped (none if no complete
    /// share has a byte).
    pub fn rot(&self, count: u32, rng: &mut impl Rng) -> u32 {
        let candidates: Vec<(StorageIndex, ShareNum, u64)> = self
            .shares
            .complete()
            .into_iter()
            .filter(|&(_, _, size)| size > 0)
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        for _ in 0..count {
            let (si, share, size) = candidates[index_below(rng, candidates.len())];
            let byte = index_below(rng, size as usize) as u64;
            // Drawn as an i32, as it always has been, so that seeds keep their faults.
            let bit = rng.gen_range(0..8i32) as u8;
            // The share exists and the byte is inside it: the flip cannot fail.
            let _ = self.shares.flip_bit(si, share, byte, bit);
        }
        count
    }

    /// Makes the disk full (every write fails, no space is available) or not.
    pub fn set_full(&self, full: bool) {
        self.shares.set_full(full);
    }

    /// What the disk holds.
    pub fn usage(&self) -> DiskUsage {
        let (incoming, complete) = self.shares.counts();
        DiskUsage {
            complete_shares: complete,
            incoming_shares: incoming,
            share_bytes: self.shares.clone().used_bytes().unwrap_or(0),
            journal_bytes: self.journal_bytes().bytes.len() as u64,
        }
    }

    /// A copy of a complete share's bytes (for tests and invariant checks).
    pub fn share(&self, si: StorageIndex, share: ShareNum) -> Option<Vec<u8>> {
        self.shares.share(si, share)
    }
}

/// The medium under a node's journal: a byte log on its [`SimDisk`], with a file's
/// durability (written bytes survive a power loss only once synced).
pub struct DiskJournal {
    disk: SimDisk,
}

/// Reads a [`DiskJournal`] while holding its bytes' lock.
pub struct DiskJournalReader<'a> {
    journal: MutexGuard<'a, JournalBytes>,
    at: usize,
}

impl Read for DiskJournalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.journal.bytes.get(self.at..).unwrap_or_default();
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
            journal: self.disk.journal_bytes(),
            at,
        })
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.disk.journal_bytes().bytes.len() as u64)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        // Free space is what the shares may still take: the full-disk fault included.
        let free = self.disk.shares.clone().available_bytes()?;
        let mut journal = self.disk.journal_bytes();
        let at = usize::try_from(offset)
            .ok()
            .filter(|&at| at <= journal.bytes.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a write past the end"))?;
        let grows = (at + data.len()).saturating_sub(journal.bytes.len()) as u64;
        if grows > free {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no room for {grows} more bytes of journal: {free} bytes free"),
            ));
        }
        journal.bytes.truncate(at);
        journal.bytes.extend_from_slice(data);
        journal.synced = journal.synced.min(at);
        self.disk.journal_resized(&journal);
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut journal = self.disk.journal_bytes();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        journal.bytes.truncate(len);
        journal.synced = journal.synced.min(len);
        self.disk.journal_resized(&journal);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut journal = self.disk.journal_bytes();
        journal.synced = journal.bytes.len();
        Ok(())
    }

    /// As a file system's rename over the old file: all or nothing, durable at once.
    fn replace(&mut self, data: &[u8]) -> io::Result<()> {
        let free = self.disk.shares.clone().available_bytes()?;
        let mut journal = self.disk.journal_bytes();
        // The new file is written beside the old one, so it needs room of its own.
        if data.len() as u64 > free {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "no room for a {}-byte journal: {free} bytes free",
                    data.len()
                ),
            ));
        }
        journal.bytes = data.to_vec();
        journal.synced = data.len();
        self.disk.journal_resized(&journal);
        Ok(())
    }

    fn name(&self) -> String {
        "the simulated journal".into()
    }
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
        share_store_suite(|capacity| SimDisk::new(capacity).shares());
        let disk = SimDisk::new(64 << 20);
        journal_suite(|| disk.journal());
    }

    #[test]
    fn capacity_and_full_disk_refuse_writes() {
        let full_disk = SimDisk::new(10);
        let mut disk = full_disk.shares();
        assert!(disk.create(SI, ShareNum(0), 11).is_err());
        disk.create(SI, ShareNum(0), 6).unwrap();
        assert_eq!(disk.available_bytes().unwrap(), 4);
        full_disk.set_full(true);
        assert_eq!(disk.available_bytes().unwrap(), 0);
        let err = disk.write(SI, ShareNum(0), 0, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(full_disk.journal().append(b"r").is_err());
        full_disk.set_full(false);
        disk.write(SI, ShareNum(0), 0, b"x").unwrap();
        assert!(disk.write(SI, ShareNum(0), 5, b"xy").is_err());
        disk.abort(SI, ShareNum(0)).unwrap();
        assert_eq!(disk.used_bytes().unwrap(), 0);
    }

    #[test]
    fn power_loss_drops_incoming_but_process_crash_keeps_it() {
        let power = SimDisk::new(1000);
        let mut disk = power.shares();
        disk.create(SI, ShareNum(0), 3).unwrap();
        disk.create(SI, ShareNum(1), 3).unwrap();
        disk.commit(SI, ShareNum(1)).unwrap();
        power.crash(false);
        assert_eq!(disk.incoming().unwrap(), vec![(SI, ShareNum(0))]);
        power.crash(true);
        assert_eq!(disk.incoming().unwrap(), vec![]);
        assert_eq!(disk.list(SI).unwrap(), vec![(ShareNum(1), 3)]);
        assert_eq!(disk.used_bytes().unwrap(), 3);
    }

    #[test]
    fn the_journal_and_the_shares_share_the_capacity() {
        let disk = SimDisk::new(100);
        let mut shares = disk.shares();
        let mut journal = disk.journal();
        journal.append(&[1; 32]).unwrap(); // 40 bytes framed
        assert_eq!(shares.available_bytes().unwrap(), 60);
        shares.create(SI, ShareNum(0), 55).unwrap();
        let err = journal.append(&[2; 32]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "5 bytes left");
        shares.abort(SI, ShareNum(0)).unwrap();
        journal.append(&[2; 32]).unwrap();
        assert_eq!(shares.available_bytes().unwrap(), 20);
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
        let rotting = SimDisk::new(10_000);
        let mut disk = rotting.shares();
        disk.create(SI, ShareNum(0), 64).unwrap();
        disk.create(SI, ShareNum(1), 64).unwrap();
        disk.write(SI, ShareNum(1), 0, &[0; 64]).unwrap();
        assert_eq!(rotting.rot(5, &mut rng), 0, "nothing complete yet");
        disk.commit(SI, ShareNum(0)).unwrap();
        assert_eq!(rotting.rot(1, &mut rng), 1);
        let data = disk.read(SI, ShareNum(0), 0, 64).unwrap();
        assert_eq!(data.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        disk.commit(SI, ShareNum(1)).unwrap();
        let _ = rotting.rot(0, &mut rng);
        assert_eq!(disk.read(SI, ShareNum(1), 0, 64).unwrap(), vec![0; 64]);
    }
}
