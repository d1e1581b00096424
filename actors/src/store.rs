//! The durable state of actors goes through these small traits, so that the same actor runs
//! over real files (`net`) and over the simulator's faulty disk (`sim`).
//!
//! A store's methods are synchronous and are called from inside an actor's `handle`: the host
//! decides where that runs. The simulator calls them at once (its disk is memory). The real
//! runtime (`net`) runs the handles of the actors that own stores — the storage server and
//! the vdrive — inside tokio's `block_in_place`, so a write or fsync that waits on the disk
//! blocks only that actor's thread, after the thread has handed the node's other tasks
//! (connections, other actors) to another worker. What a method has returned `Ok` for is
//! durable: it survives a crash of the process.
//!
//! The contract is a test suite as much as these docs: every implementation runs
//! `testing::share_store_suite` or `testing::journal_suite` (feature `testing`), which pin
//! the edge cases (what a read past the end does, which error a missing share is, how space
//! is counted). There is one journal format, [`FramedJournal`], over a file in `net` and over
//! the simulated disk in `sim`.

pub mod framed;

pub use framed::{FramedJournal, Medium, MAX_RECORD};

use crate::ids::{ShareNum, StorageIndex};
use std::io;

/// Where a storage server keeps shares.
///
/// A share is first *incoming*: created with its final size, written in any order, invisible
/// to readers. [`ShareStore::commit`] makes it durable and visible at once; a crash before
/// that leaves no trace of it a reader could see.
///
/// Errors, by [`io::ErrorKind`]: `AlreadyExists` to create a share that exists (incoming or
/// complete); `StorageFull` to create one bigger than [`ShareStore::available_bytes`];
/// `NotFound` to write, commit or abort a share that is not incoming, or to read or delete
/// one that is not complete; `InvalidInput` to write outside a share or read from past its end.
pub trait ShareStore: Send {
    /// Starts an incoming share of `size` bytes. Fails if it exists (incoming or complete).
    fn create(&mut self, si: StorageIndex, share: ShareNum, size: u64) -> io::Result<()>;
    /// Writes into an incoming share.
    fn write(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()>;
    /// Makes an incoming share durable and visible, atomically.
    fn commit(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()>;
    /// Deletes an incoming share.
    fn abort(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()>;
    /// Deletes a complete share (the garbage collector's), durably: once this returns `Ok`
    /// the share is gone for good, and its space is free.
    fn delete(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()>;
    /// Reads `len` bytes at `offset` of a complete share (fewer at its end; none at its end;
    /// an error past it). Bytes never written read as zeros.
    fn read(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> io::Result<Vec<u8>>;
    /// The complete shares of a file, with their sizes, by share number.
    fn list(&mut self, si: StorageIndex) -> io::Result<Vec<(ShareNum, u64)>>;
    /// Incoming shares left over from before a restart (to be aborted).
    fn incoming(&mut self) -> io::Result<Vec<(StorageIndex, ShareNum)>>;
    /// Bytes taken by all shares, complete and incoming.
    fn used_bytes(&mut self) -> io::Result<u64>;
    /// How many complete shares the store holds, of all files.
    fn share_count(&mut self) -> io::Result<u64>;
    /// Bytes the store could still take (free disk space, before any reserve), with the full
    /// size of every incoming share already counted as taken.
    fn available_bytes(&mut self) -> io::Result<u64>;
}

/// An append-only log of records, for actors that keep their state as a history of changes
/// (the vdrive, the storage server's leases).
pub trait Journal: Send {
    /// Appends one record; when this returns `Ok` the record is durable. A record over
    /// [`MAX_RECORD`] bytes is refused (`InvalidInput`).
    fn append(&mut self, record: &[u8]) -> io::Result<()>;
    /// Every complete record, oldest first. A record torn by a crash mid-append is not
    /// returned, nor is anything after it.
    fn records(&mut self) -> io::Result<Vec<Vec<u8>>>;
    /// Replaces every record with `records` (a compacted history), atomically: after a crash
    /// the journal holds either all its old records or exactly the new ones. Each record is
    /// bounded as in [`Journal::append`].
    fn rewrite(&mut self, records: &[Vec<u8>]) -> io::Result<()>;
}
