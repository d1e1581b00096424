//! In-memory implementations of the store traits: [`MemShareStore`] and [`MemJournal`].
//!
//! They are real, correct stores — not mocks — so that actor tests and large simulations run
//! the same storage semantics as a node on disk: incoming shares are invisible until
//! committed, space is limited, writes are bounds-checked. Everything is kept in `BTreeMap`s,
//! so every listing comes out in the same order on every run.
//!
//! A store is a *handle*: clones share the same contents, like two file descriptors on one
//! disk. A test or simulator keeps one handle while the actor owns another, inspects what the
//! actor stored, and hands the same store to the actor's successor after a simulated crash —
//! everything a method returned `Ok` for survives, as the traits promise.

use crate::ids::{ShareNum, StorageIndex};
use crate::store::{Journal, ShareStore, MAX_RECORD};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Share bytes are kept in chunks of this size, allocated on first write, so that memory
/// follows the bytes written rather than the sizes announced (a simulation may create huge
/// shares and write only a few bytes of them).
const CHUNK: u64 = 64 << 10;

type ShareKey = (StorageIndex, ShareNum);

/// A [`ShareStore`] in memory with a fixed capacity: `available_bytes = capacity - used`,
/// where a share uses its full size from the moment it is created.
#[derive(Clone)]
pub struct MemShareStore {
    inner: Arc<Mutex<Shares>>,
}

struct Shares {
    capacity: u64,
    /// A full disk: nothing is created or written, whatever the capacity says.
    full: bool,
    /// Sum of the sizes of all shares, incoming and complete.
    used: u64,
    incoming: BTreeMap<ShareKey, Share>,
    complete: BTreeMap<ShareKey, Share>,
}

/// One share's bytes: `size` long; chunks never written read as zeros.
struct Share {
    size: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl MemShareStore {
    /// An empty store that can hold `capacity` bytes of shares.
    pub fn new(capacity: u64) -> Self {
        MemShareStore {
            inner: Arc::new(Mutex::new(Shares {
                capacity,
                full: false,
                used: 0,
                incoming: BTreeMap::new(),
                complete: BTreeMap::new(),
            })),
        }
    }

    /// An empty store without a practical limit.
    pub fn unlimited() -> Self {
        Self::new(u64::MAX)
    }

    /// The capacity, in bytes.
    pub fn capacity(&self) -> u64 {
        self.lock().capacity
    }

    /// Changes the capacity (a simulated disk filling up or growing). Shares already stored
    /// stay; only new ones are refused.
    pub fn set_capacity(&self, capacity: u64) {
        self.lock().capacity = capacity;
    }

    /// How many shares are incoming and how many complete.
    pub fn counts(&self) -> (usize, usize) {
        let shares = self.lock();
        (shares.incoming.len(), shares.complete.len())
    }

    /// Fills the disk (every create and write fails, nothing is available) or empties it
    /// again: the simulator's full-disk fault.
    pub fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    /// A power loss: every incoming share (never synced) is gone, and its space with it.
    pub fn lose_incoming(&self) {
        let mut shares = self.lock();
        let lost: u64 = shares.incoming.values().map(|s| s.size).sum();
        shares.incoming.clear();
        shares.used -= lost;
    }

    /// The complete shares, with their sizes, in key order.
    pub fn complete(&self) -> Vec<(StorageIndex, ShareNum, u64)> {
        let shares = self.lock();
        let all = shares.complete.iter();
        all.map(|(&(si, share), s)| (si, share, s.size)).collect()
    }

    /// A complete share's bytes, whole (for tests and invariant checks).
    pub fn share(&self, si: StorageIndex, share: ShareNum) -> Option<Vec<u8>> {
        let shares = self.lock();
        let s = shares.complete.get(&(si, share))?;
        s.read(0, s.size).ok()
    }

    /// Flips bit `bit % 8` of byte `offset` of a complete share: the simulator's bit rot.
    pub fn flip_bit(
        &self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        bit: u8,
    ) -> io::Result<()> {
        let mut shares = self.lock();
        let s = shares
            .complete
            .get_mut(&(si, share))
            .ok_or_else(|| not_found("complete", (si, share)))?;
        let mut byte = s.read(offset, 1)?;
        let Some(b) = byte.first_mut() else {
            return Err(invalid(format!("byte {offset} is past the share's end")));
        };
        *b ^= 1 << (bit % 8);
        s.write(offset, &byte)
    }

    fn lock(&self) -> MutexGuard<'_, Shares> {
        // A panic while holding the lock can only be an allocation failure mid-copy; the maps
        // themselves are never left half-updated, so the contents are still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shares {
    fn available(&self) -> u64 {
        match self.full {
            true => 0,
            false => self.capacity.saturating_sub(self.used),
        }
    }

    fn check_writable(&self) -> io::Result<()> {
        match self.full {
            true => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "the disk is full",
            )),
            false => Ok(()),
        }
    }

    fn incoming_mut(&mut self, key: ShareKey) -> io::Result<&mut Share> {
        self.incoming
            .get_mut(&key)
            .ok_or_else(|| not_found("incoming", key))
    }
}

impl Share {
    fn new(size: u64) -> Self {
        Share {
            size,
            chunks: BTreeMap::new(),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= self.size)
            .ok_or_else(|| {
                invalid(format!(
                    "write of {} bytes at {offset} is outside the {}-byte share",
                    data.len(),
                    self.size
                ))
            })?;
        let mut pos = offset;
        let mut rest = data;
        while pos < end {
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let take = rest.len().min(CHUNK as usize - within);
            // The last chunk is only as long as the share, so small shares stay small.
            let len = (self.size - index * CHUNK).min(CHUNK) as usize;
            let chunk = self
                .chunks
                .entry(index)
                .or_insert_with(|| vec![0; len].into_boxed_slice());
            chunk[within..within + take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            pos += take as u64;
        }
        Ok(())
    }

    fn read(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        if offset > self.size {
            return Err(invalid(format!(
                "read at {offset} is past the end of the {}-byte share",
                self.size
            )));
        }
        let end = offset.saturating_add(len).min(self.size);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let take = (end - pos).min(CHUNK - within as u64) as usize;
            match self.chunks.get(&index) {
                Some(chunk) => out.extend_from_slice(&chunk[within..within + take]),
                None => out.resize(out.len() + take, 0),
            }
            pos += take as u64;
        }
        Ok(out)
    }
}

impl ShareStore for MemShareStore {
    fn create(&mut self, si: StorageIndex, share: ShareNum, size: u64) -> io::Result<()> {
        let mut shares = self.lock();
        shares.check_writable()?;
        let key = (si, share);
        if shares.incoming.contains_key(&key) || shares.complete.contains_key(&key) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("share {si:?} #{} already exists", share.0),
            ));
        }
        if size > shares.available() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "a {size}-byte share does not fit: {} bytes available",
                    shares.available()
                ),
            ));
        }
        shares.used += size;
        shares.incoming.insert(key, Share::new(size));
        Ok(())
    }

    fn write(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let mut shares = self.lock();
        shares.check_writable()?;
        shares.incoming_mut((si, share))?.write(offset, data)
    }

    fn commit(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let mut shares = self.lock();
        let key = (si, share);
        let bytes = shares
            .incoming
            .remove(&key)
            .ok_or_else(|| not_found("incoming", key))?;
        shares.complete.insert(key, bytes);
        Ok(())
    }

    fn abort(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let mut shares = self.lock();
        let key = (si, share);
        let bytes = shares
            .incoming
            .remove(&key)
            .ok_or_else(|| not_found("incoming", key))?;
        shares.used -= bytes.size;
        Ok(())
    }

    fn delete(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let mut shares = self.lock();
        let key = (si, share);
        let bytes = shares
            .complete
            .remove(&key)
            .ok_or_else(|| not_found("complete", key))?;
        shares.used -= bytes.size;
        Ok(())
    }

    fn read(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> io::Result<Vec<u8>> {
        let shares = self.lock();
        let key = (si, share);
        shares
            .complete
            .get(&key)
            .ok_or_else(|| not_found("complete", key))?
            .read(offset, len)
    }

    fn list(&mut self, si: StorageIndex) -> io::Result<Vec<(ShareNum, u64)>> {
        let shares = self.lock();
        let first = (si, ShareNum(0));
        Ok(shares
            .complete
            .range(first..)
            .take_while(|((s, _), _)| *s == si)
            .map(|((_, n), share)| (*n, share.size))
            .collect())
    }

    fn incoming(&mut self) -> io::Result<Vec<(StorageIndex, ShareNum)>> {
        Ok(self.lock().incoming.keys().copied().collect())
    }

    fn used_bytes(&mut self) -> io::Result<u64> {
        Ok(self.lock().used)
    }

    fn share_count(&mut self) -> io::Result<u64> {
        Ok(self.lock().complete.len() as u64)
    }

    fn available_bytes(&mut self) -> io::Result<u64> {
        Ok(self.lock().available())
    }
}

/// A [`Journal`] in memory: every append is durable at once, and no record is ever torn.
#[derive(Clone, Default)]
pub struct MemJournal {
    records: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl MemJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // See `MemShareStore::lock`: a push is never left half-done.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal for MemJournal {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        if record.len() > MAX_RECORD {
            let why = format!(
                "a {}-byte record is over the {MAX_RECORD}-byte limit",
                record.len()
            );
            return Err(invalid(why));
        }
        self.lock().push(record.to_vec());
        Ok(())
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        Ok(self.lock().clone())
    }

    fn rewrite(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        if let Some(record) = records.iter().find(|r| r.len() > MAX_RECORD) {
            let why = format!(
                "a {}-byte record is over the {MAX_RECORD}-byte limit",
                record.len()
            );
            return Err(invalid(why));
        }
        *self.lock() = records.to_vec();
        Ok(())
    }
}

fn not_found(state: &str, (si, share): ShareKey) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no {state} share {si:?} #{}", share.0),
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{journal_suite, share_store_suite};

    const SI: StorageIndex = StorageIndex([1; 16]);

    #[test]
    fn the_memory_stores_keep_the_store_contract() {
        share_store_suite(MemShareStore::new);
        let journal = MemJournal::new();
        journal_suite(|| journal.clone());
    }

    #[test]
    fn huge_sparse_shares_cost_only_what_is_written() {
        // A terabyte share, written at its two ends: if the store allocated the whole share,
        // this test would run out of memory.
        let mut store = MemShareStore::unlimited();
        let size = 1 << 40;
        store.create(SI, ShareNum(9), size).unwrap();
        store.write(SI, ShareNum(9), 0, b"head").unwrap();
        store.write(SI, ShareNum(9), size - 4, b"tail").unwrap();
        store.commit(SI, ShareNum(9)).unwrap();
        assert_eq!(
            store.read(SI, ShareNum(9), size - 6, 10).unwrap(),
            b"\0\0tail"
        );
        assert_eq!(store.read(SI, ShareNum(9), 2, 4).unwrap(), b"ad\0\0");
    }

    #[test]
    fn clones_are_handles_to_the_same_store() {
        let mut store = MemShareStore::new(100);
        let mut other = store.clone();
        store.create(SI, ShareNum(0), 1).unwrap();
        assert_eq!(other.incoming().unwrap(), vec![(SI, ShareNum(0))]);
        assert_eq!(other.counts(), (1, 0));
        store.set_capacity(10);
        assert_eq!(other.available_bytes().unwrap(), 9);

        let mut journal = MemJournal::new();
        let mut reader = journal.clone();
        journal.append(b"one").unwrap();
        assert_eq!(reader.records().unwrap(), vec![b"one".to_vec()]);
        assert_eq!(reader.len(), 1);
    }
}
