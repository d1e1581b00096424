//! The store contract as tests: [`share_store_suite`] and [`journal_suite`] run against every
//! implementation (memory, files, the simulated disk, the research ledger), so the stores
//! agree on every edge case the actors rely on — what a read past the end does, which error a
//! missing share is, how space is counted — instead of each deciding for itself.
//!
//! The suites panic with a message naming the case that failed; call them from a `#[test]`.

use crate::ids::{ShareNum, StorageIndex};
use crate::store::{Journal, ShareStore, MAX_RECORD};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;

/// How a share store under test is made, and what it keeps. See [`share_store_suite`].
pub struct ShareStoreSuite {
    /// Two storage indexes the store accepts (a research store knows only its run's files).
    pub files: [StorageIndex; 2],
    /// Whether the store keeps the bytes written (a research store keeps only sizes: its
    /// reads answer with no bytes, and the suite checks only their errors).
    pub keeps_bytes: bool,
}

impl Default for ShareStoreSuite {
    fn default() -> Self {
        ShareStoreSuite {
            files: [StorageIndex([1; 16]), StorageIndex([2; 16])],
            keeps_bytes: true,
        }
    }
}

/// Runs the share store contract against stores made by `make(capacity)`: each call must
/// give a new, empty store that holds at most `capacity` bytes of shares.
pub fn share_store_suite<S: ShareStore>(make: impl FnMut(u64) -> S) {
    ShareStoreSuite::default().run(make)
}

impl ShareStoreSuite {
    /// Runs every case; see [`share_store_suite`].
    pub fn run<S: ShareStore>(&self, mut make: impl FnMut(u64) -> S) {
        self.a_share_round_trips_once_committed(&mut make(1000));
        self.incoming_shares_are_invisible_until_committed(&mut make(1000));
        self.create_fails_when_the_share_exists_in_either_state(&mut make(1000));
        self.writes_are_bounds_checked(&mut make(1000));
        self.reads_stop_at_the_end_and_fail_past_it(&mut make(1000));
        self.missing_shares_are_not_found(&mut make(1000));
        self.capacity_bounds_creation_and_abort_gives_space_back(&mut make(100));
        self.files_are_listed_apart_and_in_order(&mut make(1000));
        self.delete_removes_a_complete_share_and_frees_its_space(&mut make(100));
        for seed in 0..16 {
            self.behaves_like_its_model(&mut make(MODEL_CAPACITY), seed);
        }
    }

    fn a_share_round_trips_once_committed(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        store.create(si, ShareNum(3), 10).expect("create");
        store.write(si, ShareNum(3), 4, b"world").expect("write");
        store.write(si, ShareNum(3), 0, b"hell").expect("write");
        store.commit(si, ShareNum(3)).expect("commit");
        assert_eq!(store.list(si).expect("list"), vec![(ShareNum(3), 10)]);
        let whole = store.read(si, ShareNum(3), 0, 100).expect("read");
        let middle = store.read(si, ShareNum(3), 4, 3).expect("read");
        if self.keeps_bytes {
            assert_eq!(whole, b"hellworld\0", "unwritten bytes read as zeros");
            assert_eq!(middle, b"wor");
        }
    }

    fn incoming_shares_are_invisible_until_committed(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        store.create(si, ShareNum(0), 5).expect("create");
        store.write(si, ShareNum(0), 0, b"abcde").expect("write");
        assert_eq!(store.list(si).expect("list"), vec![]);
        assert_eq!(
            kind(store.read(si, ShareNum(0), 0, 5)),
            io::ErrorKind::NotFound
        );
        assert_eq!(store.incoming().expect("incoming"), vec![(si, ShareNum(0))]);
        store.commit(si, ShareNum(0)).expect("commit");
        assert_eq!(store.incoming().expect("incoming"), vec![]);
        // A complete share can no longer be written, committed or aborted.
        let write = store.write(si, ShareNum(0), 0, b"x");
        assert_eq!(kind(write), io::ErrorKind::NotFound, "write after commit");
        assert_eq!(kind(store.commit(si, ShareNum(0))), io::ErrorKind::NotFound);
        assert_eq!(kind(store.abort(si, ShareNum(0))), io::ErrorKind::NotFound);
        assert_eq!(store.list(si).expect("list"), vec![(ShareNum(0), 5)]);
    }

    fn create_fails_when_the_share_exists_in_either_state(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        store.create(si, ShareNum(1), 5).expect("create");
        let again = store.create(si, ShareNum(1), 5);
        assert_eq!(kind(again), io::ErrorKind::AlreadyExists, "incoming");
        store.commit(si, ShareNum(1)).expect("commit");
        let again = store.create(si, ShareNum(1), 7);
        assert_eq!(kind(again), io::ErrorKind::AlreadyExists, "complete");
        assert_eq!(store.list(si).expect("list"), vec![(ShareNum(1), 5)]);
    }

    fn writes_are_bounds_checked(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        store.create(si, ShareNum(0), 8).expect("create");
        store
            .write(si, ShareNum(0), 8, b"")
            .expect("an empty write at the end");
        store
            .write(si, ShareNum(0), 4, b"1234")
            .expect("a write up to the end");
        let over = store.write(si, ShareNum(0), 5, b"1234");
        assert_eq!(kind(over), io::ErrorKind::InvalidInput, "past the end");
        let wraps = store.write(si, ShareNum(0), u64::MAX, b"1");
        assert_eq!(kind(wraps), io::ErrorKind::InvalidInput, "offset overflow");
        let unknown = store.write(si, ShareNum(1), 0, b"1");
        assert_eq!(kind(unknown), io::ErrorKind::NotFound, "not created");
    }

    fn reads_stop_at_the_end_and_fail_past_it(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        store.create(si, ShareNum(2), 10).expect("create");
        store
            .write(si, ShareNum(2), 0, b"0123456789")
            .expect("write");
        store.commit(si, ShareNum(2)).expect("commit");
        let at_end = store
            .read(si, ShareNum(2), 10, 3)
            .expect("a read at the end");
        assert!(at_end.is_empty(), "a read at the end is empty");
        let tail = store
            .read(si, ShareNum(2), 7, 100)
            .expect("a read over the end");
        let none = store
            .read(si, ShareNum(2), 3, 0)
            .expect("a read of nothing");
        assert!(none.is_empty());
        if self.keeps_bytes {
            assert_eq!(tail, b"789", "a read over the end stops at it");
        } else {
            assert!(tail.len() <= 3);
        }
        let past = store.read(si, ShareNum(2), 11, 1);
        assert_eq!(
            kind(past),
            io::ErrorKind::InvalidInput,
            "a read past the end"
        );
        let far = store.read(si, ShareNum(2), u64::MAX, u64::MAX);
        assert_eq!(
            kind(far),
            io::ErrorKind::InvalidInput,
            "a read far past the end"
        );
    }

    fn missing_shares_are_not_found(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        assert_eq!(
            kind(store.read(si, ShareNum(9), 0, 1)),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(store.commit(si, ShareNum(9))), io::ErrorKind::NotFound);
        assert_eq!(kind(store.abort(si, ShareNum(9))), io::ErrorKind::NotFound);
        assert_eq!(kind(store.delete(si, ShareNum(9))), io::ErrorKind::NotFound);
        assert_eq!(store.share_count().expect("count"), 0);
        assert_eq!(store.list(si).expect("list"), vec![]);
        assert_eq!(store.incoming().expect("incoming"), vec![]);
        assert_eq!(store.used_bytes().expect("used"), 0);
    }

    fn capacity_bounds_creation_and_abort_gives_space_back(&self, store: &mut impl ShareStore) {
        let si = self.files[0];
        assert_eq!(store.available_bytes().expect("available"), 100);
        store.create(si, ShareNum(0), 60).expect("create");
        assert_eq!(store.used_bytes().expect("used"), 60, "counted at creation");
        assert_eq!(store.available_bytes().expect("available"), 40);
        let too_big = store.create(si, ShareNum(1), 41);
        assert_eq!(kind(too_big), io::ErrorKind::StorageFull);
        store
            .create(si, ShareNum(1), 40)
            .expect("create what fits exactly");
        assert_eq!(store.used_bytes().expect("used"), 100);
        assert_eq!(store.available_bytes().expect("available"), 0);
        store.abort(si, ShareNum(0)).expect("abort");
        assert_eq!(store.available_bytes().expect("available"), 60);
        store.commit(si, ShareNum(1)).expect("commit");
        assert_eq!(
            store.used_bytes().expect("used"),
            40,
            "a committed share still counts"
        );
    }

    fn files_are_listed_apart_and_in_order(&self, store: &mut impl ShareStore) {
        let [a, b] = self.files;
        for share in [7, 0, 3] {
            store.create(a, ShareNum(share), 4).expect("create");
            store.commit(a, ShareNum(share)).expect("commit");
        }
        store.create(b, ShareNum(5), 6).expect("create");
        store.commit(b, ShareNum(5)).expect("commit");
        store.create(b, ShareNum(1), 6).expect("create");
        let listed = store.list(a).expect("list");
        assert_eq!(
            listed,
            vec![(ShareNum(0), 4), (ShareNum(3), 4), (ShareNum(7), 4)]
        );
        assert_eq!(store.list(b).expect("list"), vec![(ShareNum(5), 6)]);
        assert_eq!(store.incoming().expect("incoming"), vec![(b, ShareNum(1))]);
        assert_eq!(store.used_bytes().expect("used"), 3 * 4 + 2 * 6);
    }

    fn delete_removes_a_complete_share_and_frees_its_space(&self, store: &mut impl ShareStore) {
        let [a, b] = self.files;
        for (si, share) in [(a, 0), (a, 1), (b, 0)] {
            store.create(si, ShareNum(share), 30).expect("create");
            store.commit(si, ShareNum(share)).expect("commit");
        }
        store.create(a, ShareNum(2), 10).expect("create");
        assert_eq!(
            store.share_count().expect("count"),
            3,
            "complete shares only"
        );
        assert_eq!(
            kind(store.delete(a, ShareNum(2))),
            io::ErrorKind::NotFound,
            "an incoming share is not deleted"
        );
        store.delete(a, ShareNum(0)).expect("delete");
        assert_eq!(store.list(a).expect("list"), vec![(ShareNum(1), 30)]);
        assert_eq!(store.list(b).expect("list"), vec![(ShareNum(0), 30)]);
        assert_eq!(store.share_count().expect("count"), 2);
        assert_eq!(store.used_bytes().expect("used"), 70);
        assert_eq!(store.available_bytes().expect("available"), 30);
        assert_eq!(
            kind(store.read(a, ShareNum(0), 0, 1)),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(store.delete(a, ShareNum(0))), io::ErrorKind::NotFound);
        // The share's number is free again.
        store.create(a, ShareNum(0), 30).expect("create again");
    }

    /// A random sequence of operations over a few colliding shares, against the obvious
    /// model (whole byte vectors).
    fn behaves_like_its_model(&self, store: &mut impl ShareStore, seed: u64) {
        let si = self.files[0];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        for step in 0..40 {
            let op = Op::random(&mut rng);
            let (ok, read) = op.run(store, si);
            let (expected_ok, expected_read) = model.apply(&op);
            let context = format!("seed {seed}, step {step}: {op:?}");
            assert_eq!(ok, expected_ok, "{context}");
            match (read, expected_read) {
                (Some(got), Some(want)) if self.keeps_bytes => assert_eq!(got, want, "{context}"),
                (Some(got), Some(want)) => assert!(got.len() <= want.len(), "{context}"),
                _ => {}
            }
            assert_eq!(store.used_bytes().expect("used"), model.used(), "{context}");
            let listed: Vec<_> = model
                .complete
                .iter()
                .map(|(&s, v)| (ShareNum(s), v.len() as u64))
                .collect();
            assert_eq!(store.list(si).expect("list"), listed, "{context}");
            let count = store.share_count().expect("count");
            assert_eq!(count, model.complete.len() as u64, "{context}");
        }
    }
}

/// The capacity of the model runs: room for a few shares of the sizes drawn.
const MODEL_CAPACITY: u64 = 400_000;

/// One operation of a model run.
#[derive(Clone, Debug)]
enum Op {
    Create(u8, u64),
    Write(u8, u64, Vec<u8>),
    Commit(u8),
    Abort(u8),
    Delete(u8),
    Read(u8, u64, u64),
}

impl Op {
    fn random(rng: &mut ChaCha8Rng) -> Op {
        let share = rng.gen_range(0..4u8);
        match rng.gen_range(0..6) {
            0 => Op::Create(share, rng.gen_range(0..200_000)),
            1 => {
                let len = rng.gen_range(0..300);
                let data = (0..len).map(|_| rng.gen()).collect();
                Op::Write(share, rng.gen_range(0..200_000), data)
            }
            2 => Op::Commit(share),
            3 => Op::Abort(share),
            4 => Op::Delete(share),
            _ => Op::Read(share, rng.gen_range(0..200_000), rng.gen_range(0..300)),
        }
    }

    /// Runs the operation: whether it succeeded, and what a read returned.
    fn run(&self, store: &mut impl ShareStore, si: StorageIndex) -> (bool, Option<Vec<u8>>) {
        let n = |s: &u8| ShareNum(*s);
        match self {
            Op::Create(s, size) => (store.create(si, n(s), *size).is_ok(), None),
            Op::Write(s, offset, data) => (store.write(si, n(s), *offset, data).is_ok(), None),
            Op::Commit(s) => (store.commit(si, n(s)).is_ok(), None),
            Op::Abort(s) => (store.abort(si, n(s)).is_ok(), None),
            Op::Delete(s) => (store.delete(si, n(s)).is_ok(), None),
            Op::Read(s, offset, len) => match store.read(si, n(s), *offset, *len) {
                Ok(bytes) => (true, Some(bytes)),
                Err(_) => (false, None),
            },
        }
    }
}

/// What a store must do, with whole byte vectors.
#[derive(Default)]
struct Model {
    incoming: BTreeMap<u8, Vec<u8>>,
    complete: BTreeMap<u8, Vec<u8>>,
}

impl Model {
    fn used(&self) -> u64 {
        let sizes = self.incoming.values().chain(self.complete.values());
        sizes.map(|v| v.len() as u64).sum()
    }

    /// Applies `op`: whether it should succeed, and what a read returns.
    fn apply(&mut self, op: &Op) -> (bool, Option<Vec<u8>>) {
        match op {
            Op::Create(s, size) => {
                let fresh = !self.incoming.contains_key(s) && !self.complete.contains_key(s);
                let ok = fresh && *size <= MODEL_CAPACITY - self.used();
                if ok {
                    self.incoming.insert(*s, vec![0; *size as usize]);
                }
                (ok, None)
            }
            Op::Write(s, offset, data) => match self.incoming.get_mut(s) {
                Some(v) if *offset as usize + data.len() <= v.len() => {
                    let at = *offset as usize;
                    v[at..at + data.len()].copy_from_slice(data);
                    (true, None)
                }
                _ => (false, None),
            },
            Op::Commit(s) => match self.incoming.remove(s) {
                Some(v) => (self.complete.insert(*s, v).is_none(), None),
                None => (false, None),
            },
            Op::Abort(s) => (self.incoming.remove(s).is_some(), None),
            Op::Delete(s) => (self.complete.remove(s).is_some(), None),
            Op::Read(s, offset, len) => match self.complete.get(s) {
                Some(v) if *offset as usize <= v.len() => {
                    let end = (*offset + *len).min(v.len() as u64) as usize;
                    (true, Some(v[*offset as usize..end].to_vec()))
                }
                _ => (false, None),
            },
        }
    }
}

/// Runs the journal contract against a journal that `open` opens: each call opens the same
/// journal afresh, as a restarted node would (the suite drops the previous handle first).
/// The journal must be empty at the first call.
pub fn journal_suite<J: Journal>(mut open: impl FnMut() -> J) {
    let mut journal = open();
    assert_eq!(
        records(&mut journal),
        Vec::<Vec<u8>>::new(),
        "a new journal is empty"
    );
    for record in [&b"one"[..], b"", b"three"] {
        journal.append(record).expect("append");
    }
    let expected = vec![b"one".to_vec(), vec![], b"three".to_vec()];
    assert_eq!(
        records(&mut journal),
        expected,
        "records in order, empty ones too"
    );
    assert_eq!(records(&mut journal), expected, "reading changes nothing");
    drop(journal);

    let mut journal = open();
    assert_eq!(records(&mut journal), expected, "records survive reopening");
    let too_big = journal.append(&vec![0; MAX_RECORD + 1]);
    assert_eq!(
        kind(too_big),
        io::ErrorKind::InvalidInput,
        "a record over the limit"
    );
    journal
        .append(&vec![7; MAX_RECORD])
        .expect("a record at the limit");
    journal.append(b"after").expect("append");
    drop(journal);

    let mut journal = open();
    let all = records(&mut journal);
    assert_eq!(all.len(), 5, "the refused record left nothing behind");
    assert_eq!(all[3], vec![7; MAX_RECORD]);
    assert_eq!(all[4], b"after");

    // A rewrite replaces the history; appends follow it; a refused rewrite changes nothing.
    let compacted = vec![b"kept".to_vec(), vec![]];
    journal.rewrite(&compacted).expect("rewrite");
    assert_eq!(records(&mut journal), compacted, "the rewritten records");
    journal.append(b"later").expect("append after a rewrite");
    let too_big = journal.rewrite(&[b"fine".to_vec(), vec![0; MAX_RECORD + 1]]);
    assert_eq!(
        kind(too_big),
        io::ErrorKind::InvalidInput,
        "a record over the limit"
    );
    drop(journal);
    let mut journal = open();
    let expected = vec![b"kept".to_vec(), vec![], b"later".to_vec()];
    assert_eq!(
        records(&mut journal),
        expected,
        "a rewrite survives reopening"
    );
    journal.rewrite(&[]).expect("rewrite to nothing");
    assert_eq!(records(&mut journal), Vec::<Vec<u8>>::new());
}

fn records(journal: &mut impl Journal) -> Vec<Vec<u8>> {
    journal.records().expect("records")
}

fn kind<T: std::fmt::Debug>(result: io::Result<T>) -> io::ErrorKind {
    result.expect_err("the store should refuse").kind()
}
