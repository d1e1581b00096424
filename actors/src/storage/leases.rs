//! The storage server's leases: who asked to keep which file, until when.
//!
//! Leases are kept as a journal of grants (so they survive restarts) and, in memory, as a
//! table bounded by what the server holds: only files with shares on the server have leases,
//! and each file keeps at most [`MAX_LEASES_PER_FILE`]. Nothing expires files yet (garbage
//! collection comes later); the table is what that collector will read.
//!
//! The journal is bounded by the table: once it holds more than twice the table's leases
//! (and [`COMPACTION_SLACK`] more), it is rewritten with just the table's. Without that,
//! a peer that keeps allocating and abandoning tiny shares would grow it without end.

use crate::actor::Time;
use crate::ids::StorageIndex;
use crate::protocol::LeaseSecret;
use crate::store::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;

/// The most leases one file keeps. Past it, the lease that ends soonest is dropped: the
/// file is kept until its latest lease ends, so dropping the earliest never shortens that.
pub const MAX_LEASES_PER_FILE: usize = 32;

/// Journal records beyond twice the live leases that are tolerated before a compaction.
pub const COMPACTION_SLACK: usize = 1024;

/// A grant's encoded length is at most this: a 16-byte index, a 32-byte secret and a
/// varint of at most 10 bytes.
const MAX_GRANT_LEN: usize = 64;

/// One journal record: a lease granted or extended.
#[derive(Serialize, Deserialize)]
struct Grant {
    si: StorageIndex,
    secret: LeaseSecret,
    expires: Time,
}

/// The leases of the files a server holds, over the journal that makes them durable.
///
/// A file's leases are a short list (one per uploader or renewer, at most
/// [`MAX_LEASES_PER_FILE`]): a server holds a lease or two on each of many files, and a
/// list of one costs 40 bytes where a tree costs a node of hundreds.
pub(super) struct Leases {
    journal: Box<dyn Journal>,
    files: BTreeMap<StorageIndex, Vec<(LeaseSecret, Time)>>,
    /// How many leases `files` holds in all (kept as it changes: a grant must not walk
    /// every file to decide whether to compact).
    leases: usize,
    /// How many records the journal holds.
    records: usize,
}

impl Leases {
    pub(super) fn new(journal: Box<dyn Journal>) -> Self {
        Leases {
            journal,
            files: BTreeMap::new(),
            leases: 0,
            records: 0,
        }
    }

    /// Rebuilds the table from the journal, keeping the unexpired leases of the files for
    /// which `holds` is true. Stops at a record that does not decode: the journal drops torn
    /// records itself, so such a record is damage, and what follows it cannot be trusted.
    pub(super) fn replay(
        &mut self,
        now: Time,
        mut holds: impl FnMut(StorageIndex) -> bool,
    ) -> io::Result<()> {
        self.files.clear();
        self.leases = 0;
        let records = self.journal.records()?;
        self.records = records.len();
        for (index, record) in records.iter().enumerate() {
            let Ok(grant) = postcard::from_bytes::<Grant>(record) else {
                tracing::warn!(
                    index,
                    "lease journal: undecodable record; replay stops there"
                );
                break;
            };
            if grant.expires > now && holds(grant.si) {
                self.insert(grant);
            }
        }
        Ok(())
    }

    /// Grants `secret` a lease on `si` until `expires` (or keeps a later one): durable first,
    /// then in memory.
    pub(super) fn grant(
        &mut self,
        si: StorageIndex,
        secret: LeaseSecret,
        expires: Time,
    ) -> io::Result<()> {
        let current = self.files.get(&si).into_iter().flatten();
        if current
            .filter(|(s, _)| *s == secret)
            .any(|&(_, t)| t >= expires)
        {
            return Ok(());
        }
        let grant = Grant {
            si,
            secret,
            expires,
        };
        let mut buf = [0u8; MAX_GRANT_LEN];
        let record = postcard::to_slice(&grant, &mut buf).map_err(io::Error::other)?;
        self.journal.append(record)?;
        self.records += 1;
        self.insert(grant);
        if self.records > 2 * self.leases + COMPACTION_SLACK {
            // The grant is durable already: a failed compaction only leaves a longer journal.
            if let Err(e) = self.compact() {
                tracing::warn!("lease journal: cannot compact: {e}");
            }
        }
        Ok(())
    }

    /// Rewrites the journal with one record per lease in the table.
    fn compact(&mut self) -> io::Result<()> {
        let mut records = Vec::with_capacity(self.leases);
        for (&si, leases) in &self.files {
            for &(secret, expires) in leases {
                let grant = Grant {
                    si,
                    secret,
                    expires,
                };
                records.push(postcard::to_allocvec(&grant).map_err(io::Error::other)?);
            }
        }
        self.journal.rewrite(&records)?;
        tracing::debug!(
            from = self.records,
            to = records.len(),
            "lease journal compacted"
        );
        self.records = records.len();
        Ok(())
    }

    /// Forgets the leases of a file the server no longer holds.
    pub(super) fn forget(&mut self, si: StorageIndex) {
        if let Some(leases) = self.files.remove(&si) {
            self.leases -= leases.len();
        }
    }

    /// How many files have leases, and how many leases there are.
    pub(super) fn counts(&self) -> (usize, usize) {
        debug_assert_eq!(
            self.leases,
            self.files.values().map(Vec::len).sum::<usize>()
        );
        (self.files.len(), self.leases)
    }

    fn insert(&mut self, grant: Grant) {
        let file = self.files.entry(grant.si).or_default();
        match file.iter_mut().find(|(secret, _)| *secret == grant.secret) {
            Some((_, expires)) => *expires = (*expires).max(grant.expires),
            None => {
                file.reserve_exact(1); // most files have one lease: no room for four
                file.push((grant.secret, grant.expires));
                self.leases += 1;
            }
        }
        if file.len() > MAX_LEASES_PER_FILE {
            // The soonest to end goes; among equals, the smallest secret (as it always has).
            let soonest = (0..file.len()).min_by_key(|&i| (file[i].1, file[i].0));
            if let Some(i) = soonest {
                file.swap_remove(i);
                self.leases -= 1;
            }
        }
        debug_assert!(file.len() <= MAX_LEASES_PER_FILE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemJournal;

    #[test]
    fn the_longest_grant_fits_its_record_and_survives_a_replay() {
        let journal = MemJournal::new();
        let mut leases = Leases::new(Box::new(journal.clone()));
        let (si, secret) = (StorageIndex([0xff; 16]), LeaseSecret([0xff; 32]));
        leases.grant(si, secret, Time(u64::MAX)).unwrap();
        assert_eq!(journal.len(), 1);
        let mut replayed = Leases::new(Box::new(journal));
        replayed.replay(Time(0), |_| true).unwrap();
        assert_eq!(replayed.counts(), (1, 1));
    }

    #[test]
    fn the_journal_stays_within_twice_the_live_leases_and_keeps_them() {
        let journal = MemJournal::new();
        let mut leases = Leases::new(Box::new(journal.clone()));
        let kept = StorageIndex([1; 16]);
        leases.grant(kept, LeaseSecret([1; 32]), Time(500)).unwrap();
        // Files allocated and abandoned, one after another, as a hostile peer would.
        for i in 0..20_000u32 {
            let mut si = [0u8; 16];
            si[..4].copy_from_slice(&i.to_le_bytes());
            si[15] = 2;
            let si = StorageIndex(si);
            leases.grant(si, LeaseSecret([2; 32]), Time(100)).unwrap();
            leases.forget(si);
            // Compactions come with grants: bounded by the leases live at the last grant.
            assert!(journal.len() <= 2 * (leases.counts().1 + 1) + COMPACTION_SLACK);
        }
        let mut replayed = Leases::new(Box::new(journal));
        replayed.replay(Time(0), |si| si == kept).unwrap();
        assert_eq!(
            replayed.counts(),
            (1, 1),
            "the live lease survives compactions"
        );
        assert_eq!(
            replayed.files[&kept],
            vec![(LeaseSecret([1; 32]), Time(500))]
        );
    }
}
