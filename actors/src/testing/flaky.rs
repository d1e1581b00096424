//! Stores that fail on demand: [`FlakyStore`] and [`FlakyJournal`] wrap a real store and
//! fail its calls while a test says so, to check that an actor answers a disk failure (and
//! recovers from it) instead of panicking or lying.
//!
//! Like the stores they wrap they are handles: a test keeps a clone to switch failures on
//! and off while the actor owns another.

use crate::ids::{ShareNum, StorageIndex};
use crate::store::{Journal, ShareStore};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A [`ShareStore`] whose every call fails while [`FlakyStore::fail`] is on.
#[derive(Clone)]
pub struct FlakyStore<S> {
    inner: S,
    failing: Arc<AtomicBool>,
}

impl<S: ShareStore> FlakyStore<S> {
    /// `inner`, working for now.
    pub fn new(inner: S) -> Self {
        FlakyStore {
            inner,
            failing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Makes every call fail (`true`) or work again (`false`), in every clone.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    fn check(&self) -> io::Result<()> {
        match self.failing.load(Ordering::Relaxed) {
            true => Err(io::Error::other("simulated disk failure")),
            false => Ok(()),
        }
    }
}

impl<S: ShareStore> ShareStore for FlakyStore<S> {
    fn create(&mut self, si: StorageIndex, share: ShareNum, size: u64) -> io::Result<()> {
        self.check()?;
        self.inner.create(si, share, size)
    }
    fn write(&mut self, si: StorageIndex, share: ShareNum, at: u64, d: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write(si, share, at, d)
    }
    fn commit(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        self.check()?;
        self.inner.commit(si, share)
    }
    fn abort(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        self.check()?;
        self.inner.abort(si, share)
    }
    fn delete(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        self.check()?;
        self.inner.delete(si, share)
    }
    fn read(&mut self, si: StorageIndex, n: ShareNum, at: u64, len: u64) -> io::Result<Vec<u8>> {
        self.check()?;
        self.inner.read(si, n, at, len)
    }
    fn list(&mut self, si: StorageIndex) -> io::Result<Vec<(ShareNum, u64)>> {
        self.check()?;
        self.inner.list(si)
    }
    fn incoming(&mut self) -> io::Result<Vec<(StorageIndex, ShareNum)>> {
        self.check()?;
        self.inner.incoming()
    }
    fn used_bytes(&mut self) -> io::Result<u64> {
        self.check()?;
        self.inner.used_bytes()
    }
    fn share_count(&mut self) -> io::Result<u64> {
        self.check()?;
        self.inner.share_count()
    }
    fn available_bytes(&mut self) -> io::Result<u64> {
        self.check()?;
        self.inner.available_bytes()
    }
}

/// How a [`FlakyJournal`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalFault {
    /// It works.
    None,
    /// Appends fail and write nothing.
    LosesAppends,
    /// Appends write the record but still report failure (a failed sync, say): the caller
    /// cannot tell whether the change is durable.
    AppendsButFails,
    /// Reading the records fails.
    Unreadable,
}

/// A [`Journal`] that fails as its [`JournalFault`] says.
#[derive(Clone)]
pub struct FlakyJournal<J> {
    inner: J,
    fault: Arc<Mutex<JournalFault>>,
}

impl<J: Journal> FlakyJournal<J> {
    /// `inner`, working for now.
    pub fn new(inner: J) -> Self {
        FlakyJournal {
            inner,
            fault: Arc::new(Mutex::new(JournalFault::None)),
        }
    }

    /// From now on, fails as `fault` says, in every clone.
    pub fn set(&self, fault: JournalFault) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    fn fault(&self) -> JournalFault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<J: Journal> Journal for FlakyJournal<J> {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        match self.fault() {
            JournalFault::LosesAppends => Err(io::Error::other("simulated append failure")),
            JournalFault::AppendsButFails => {
                self.inner.append(record)?;
                Err(io::Error::other("simulated sync failure"))
            }
            JournalFault::None | JournalFault::Unreadable => self.inner.append(record),
        }
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        match self.fault() {
            JournalFault::Unreadable => Err(io::Error::other("simulated read failure")),
            _ => self.inner.records(),
        }
    }

    /// A rewrite is all or nothing: failing appends fail it, leaving the old records.
    fn rewrite(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        match self.fault() {
            JournalFault::LosesAppends | JournalFault::AppendsButFails => {
                Err(io::Error::other("simulated rewrite failure"))
            }
            JournalFault::None | JournalFault::Unreadable => self.inner.rewrite(records),
        }
    }
}
