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
use crate::store::{Journal, ShareStore};
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

    fn lock(&self) -> MutexGuard<'_, Shares> {
        // A panic while holding the lock can only be an allocation failure mid-copy; the maps
        // themselves are never left half-updated, so the contents are still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shares {
    fn available(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
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
        self.lock().incoming_mut((si, share))?.write(offset, data)
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
        self.lock().push(record.to_vec());
        Ok(())
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        Ok(self.lock().clone())
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
    use proptest::prelude::*;

    const SI: StorageIndex = StorageIndex([1; 16]);

    fn kind<T: std::fmt::Debug>(result: io::Result<T>) -> io::ErrorKind {
        result.expect_err("the store should refuse").kind()
    }

    #[test]
    fn a_share_round_trips_once_committed() {
        let mut store = MemShareStore::new(1000);
        store.create(SI, ShareNum(3), 10).unwrap();
        store.write(SI, ShareNum(3), 4, b"world").unwrap();
        store.write(SI, ShareNum(3), 0, b"hell").unwrap();
        store.commit(SI, ShareNum(3)).unwrap();
        assert_eq!(store.read(SI, ShareNum(3), 0, 100).unwrap(), b"hellworld\0");
        assert_eq!(store.read(SI, ShareNum(3), 4, 3).unwrap(), b"wor");
        assert_eq!(store.read(SI, ShareNum(3), 10, 3).unwrap(), b"");
        assert_eq!(
            kind(store.read(SI, ShareNum(3), 11, 1)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(store.list(SI).unwrap(), vec![(ShareNum(3), 10)]);
    }

    #[test]
    fn incoming_shares_are_invisible_until_commit() {
        let mut store = MemShareStore::new(1000);
        store.create(SI, ShareNum(0), 5).unwrap();
        store.write(SI, ShareNum(0), 0, b"abcde").unwrap();
        assert_eq!(store.list(SI).unwrap(), vec![]);
        assert_eq!(
            kind(store.read(SI, ShareNum(0), 0, 5)),
            io::ErrorKind::NotFound
        );
        assert_eq!(store.incoming().unwrap(), vec![(SI, ShareNum(0))]);
        store.commit(SI, ShareNum(0)).unwrap();
        assert_eq!(store.incoming().unwrap(), vec![]);
        // A complete share can no longer be written, committed or aborted.
        assert_eq!(
            kind(store.write(SI, ShareNum(0), 0, b"x")),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(store.commit(SI, ShareNum(0))), io::ErrorKind::NotFound);
        assert_eq!(kind(store.abort(SI, ShareNum(0))), io::ErrorKind::NotFound);
    }

    #[test]
    fn create_fails_when_the_share_exists_in_either_state() {
        let mut store = MemShareStore::new(1000);
        store.create(SI, ShareNum(1), 5).unwrap();
        assert_eq!(
            kind(store.create(SI, ShareNum(1), 5)),
            io::ErrorKind::AlreadyExists
        );
        store.commit(SI, ShareNum(1)).unwrap();
        assert_eq!(
            kind(store.create(SI, ShareNum(1), 7)),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(store.list(SI).unwrap(), vec![(ShareNum(1), 5)]);
    }

    #[test]
    fn writes_are_bounds_checked() {
        let mut store = MemShareStore::new(1000);
        store.create(SI, ShareNum(0), 8).unwrap();
        store.write(SI, ShareNum(0), 8, b"").unwrap();
        store.write(SI, ShareNum(0), 4, b"1234").unwrap();
        assert_eq!(
            kind(store.write(SI, ShareNum(0), 5, b"1234")),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.write(SI, ShareNum(0), u64::MAX, b"1")),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.write(SI, ShareNum(1), 0, b"1")),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn capacity_bounds_creation_and_abort_gives_space_back() {
        let mut store = MemShareStore::new(100);
        store.create(SI, ShareNum(0), 60).unwrap();
        assert_eq!(store.available_bytes().unwrap(), 40);
        assert_eq!(
            kind(store.create(SI, ShareNum(1), 41)),
            io::ErrorKind::StorageFull
        );
        store.create(SI, ShareNum(1), 40).unwrap();
        assert_eq!(store.used_bytes().unwrap(), 100);
        store.abort(SI, ShareNum(0)).unwrap();
        assert_eq!(store.available_bytes().unwrap(), 60);
        store.commit(SI, ShareNum(1)).unwrap();
        assert_eq!(store.used_bytes().unwrap(), 40);
        store.set_capacity(10);
        assert_eq!(store.available_bytes().unwrap(), 0);
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

        let mut journal = MemJournal::new();
        let mut reader = journal.clone();
        journal.append(b"one").unwrap();
        journal.append(b"").unwrap();
        journal.append(b"three").unwrap();
        assert_eq!(
            reader.records().unwrap(),
            vec![b"one".to_vec(), vec![], b"three".to_vec()]
        );
        assert_eq!(reader.len(), 3);
    }

    /// One operation on a store, over a small space of shares so that they collide.
    #[derive(Clone, Debug)]
    enum Op {
        Create(u8, u64),
        Write(u8, u64, Vec<u8>),
        Commit(u8),
        Abort(u8),
        Read(u8, u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let share = 0u8..4;
        prop_oneof![
            (share.clone(), 0u64..200_000).prop_map(|(s, n)| Op::Create(s, n)),
            (
                share.clone(),
                0u64..200_000,
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(s, o, d)| Op::Write(s, o, d)),
            share.clone().prop_map(Op::Commit),
            share.clone().prop_map(Op::Abort),
            (share, 0u64..200_000, 0u64..300).prop_map(|(s, o, n)| Op::Read(s, o, n)),
        ]
    }

    /// The obvious model: whole byte vectors.
    #[derive(Default)]
    struct Model {
        incoming: BTreeMap<u8, Vec<u8>>,
        complete: BTreeMap<u8, Vec<u8>>,
    }

    impl Model {
        fn used(&self) -> u64 {
            self.incoming
                .values()
                .chain(self.complete.values())
                .map(|v| v.len() as u64)
                .sum()
        }

        /// Applies `op`; returns whether it should succeed, and what a read returns.
        fn apply(&mut self, op: &Op, capacity: u64) -> (bool, Option<Vec<u8>>) {
            match op {
                Op::Create(s, n) => {
                    let fresh = !self.incoming.contains_key(s) && !self.complete.contains_key(s);
                    let ok = fresh && *n <= capacity - self.used();
                    if ok {
                        self.incoming.insert(*s, vec![0; *n as usize]);
                    }
                    (ok, None)
                }
                Op::Write(s, o, d) => match self.incoming.get_mut(s) {
                    Some(v) if *o as usize + d.len() <= v.len() => {
                        v[*o as usize..*o as usize + d.len()].copy_from_slice(d);
                        (true, None)
                    }
                    _ => (false, None),
                },
                Op::Commit(s) => match self.incoming.remove(s) {
                    Some(v) => (self.complete.insert(*s, v).is_none(), None),
                    None => (false, None),
                },
                Op::Abort(s) => (self.incoming.remove(s).is_some(), None),
                Op::Read(s, o, n) => match self.complete.get(s) {
                    Some(v) if *o as usize <= v.len() => {
                        let end = (*o + *n).min(v.len() as u64) as usize;
                        (true, Some(v[*o as usize..end].to_vec()))
                    }
                    _ => (false, None),
                },
            }
        }
    }

    fn run(store: &mut MemShareStore, op: &Op) -> (bool, Option<Vec<u8>>) {
        let share = |s: &u8| ShareNum(*s);
        match op {
            Op::Create(s, n) => (store.create(SI, share(s), *n).is_ok(), None),
            Op::Write(s, o, d) => (store.write(SI, share(s), *o, d).is_ok(), None),
            Op::Commit(s) => (store.commit(SI, share(s)).is_ok(), None),
            Op::Abort(s) => (store.abort(SI, share(s)).is_ok(), None),
            Op::Read(s, o, n) => match store.read(SI, share(s), *o, *n) {
                Ok(bytes) => (true, Some(bytes)),
                Err(_) => (false, None),
            },
        }
    }

    proptest! {
        #[test]
        fn the_store_behaves_like_its_model(ops in proptest::collection::vec(op(), 0..60)) {
            let capacity = 400_000;
            let mut store = MemShareStore::new(capacity);
            let mut model = Model::default();
            for op in &ops {
                prop_assert_eq!(run(&mut store, op), model.apply(op, capacity), "{:?}", op);
                prop_assert_eq!(store.used_bytes().unwrap(), model.used());
                let listed: Vec<_> =
                    model.complete.iter().map(|(s, v)| (ShareNum(*s), v.len() as u64)).collect();
                prop_assert_eq!(store.list(SI).unwrap(), listed);
            }
        }
    }
}
