//! The storage server's leases: who asked to keep which file, until when — and where the
//! garbage collector stands in its walk over them.
//!
//! Leases are kept as a journal (so they survive restarts) and, in memory, as a table bounded
//! by what the server holds: only files with shares on the server have leases, and each file
//! keeps at most [`MAX_LEASES_PER_FILE`]. A lease stays in the table after it ends, until its
//! file goes: whether an ended lease lets its file go is the collector's rule to decide
//! (`super::collector`), not the table's.
//!
//! The journal is bounded by the table: once it holds more than twice the table's leases
//! (and [`COMPACTION_SLACK`] more), it is rewritten with just the table's and the collector's
//! latest checkpoint. Without that, a peer that keeps allocating and abandoning tiny shares
//! would grow it without end.
//!
//! Format: a journal begins with the record [`HEADER`]; each record after it is a postcard
//! [`Record`]. A journal without the header was written before checkpoints existed: each of
//! its records is a bare grant. Such a journal is rewritten in the new format when it is
//! replayed, and written in the old one (grants only) for as long as that rewrite fails.

use super::collector::Pass;
use crate::actor::Time;
use crate::ids::StorageIndex;
use crate::protocol::LeaseSecret;
use crate::store::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;

/// The most leases one file keeps. Past it, the lease that ends soonest is dropped: the
/// file is kept until its latest lease ends, so dropping the earliest never shortens that.
pub const MAX_LEASES_PER_FILE: usize = 32;

/// Journal records beyond twice the live leases that are tolerated before a compaction.
pub const COMPACTION_SLACK: usize = 1024;

/// The first record of a journal in the current format. Shorter than any grant, so a
/// journal of the first format (bare grants) never begins with it.
const HEADER: &[u8] = b"cairn leases v2";

/// A grant's encoded length is at most this: a tag, a 16-byte index, a 32-byte secret and a
/// varint of at most 10 bytes.
const MAX_GRANT_LEN: usize = 64;

/// A lease granted or extended.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct Grant {
    si: StorageIndex,
    secret: LeaseSecret,
    expires: Time,
}

/// One journal record of the current format.
#[derive(Serialize, Deserialize)]
enum Record {
    Grant(Grant),
    /// Where the collector stands: the pass under way, if any, and the last one finished.
    Checkpoint {
        current: Option<Pass>,
        last: Option<Pass>,
    },
}

/// What a replay found besides the leases: the collector's latest checkpoint.
#[derive(Default)]
pub(super) struct Replayed {
    pub current: Option<Pass>,
    pub last: Option<Pass>,
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
    /// Whether the journal is in the current format (else it takes bare grants only).
    current_format: bool,
    /// The latest checkpoint, carried over by compactions.
    checkpoint: Replayed,
}

impl Leases {
    pub(super) fn new(journal: Box<dyn Journal>) -> Self {
        Leases {
            journal,
            files: BTreeMap::new(),
            leases: 0,
            records: 0,
            current_format: false,
            checkpoint: Replayed::default(),
        }
    }

    /// Rebuilds the table from the journal, keeping the leases of the files for which `holds`
    /// is true, and returns the collector's latest checkpoint. Stops at a record that does
    /// not decode: the journal drops torn records itself, so such a record is damage, and
    /// what follows it cannot be trusted. A journal of the first format, or an empty one, is
    /// rewritten in the current format.
    pub(super) fn replay(
        &mut self,
        mut holds: impl FnMut(StorageIndex) -> bool,
    ) -> io::Result<&Replayed> {
        self.files.clear();
        self.leases = 0;
        self.checkpoint = Replayed::default();
        let records = self.journal.records()?;
        self.records = records.len();
        self.current_format = records.first().is_some_and(|r| r == HEADER);
        let body = &records[usize::from(self.current_format)..];
        for (index, record) in body.iter().enumerate() {
            let decoded = match self.current_format {
                true => postcard::from_bytes::<Record>(record),
                false => postcard::from_bytes::<Grant>(record).map(Record::Grant),
            };
            match decoded {
                Ok(Record::Grant(grant)) if holds(grant.si) => self.insert(grant),
                Ok(Record::Grant(_)) => {}
                Ok(Record::Checkpoint { current, last }) => {
                    self.checkpoint = Replayed { current, last }
                }
                Err(_) => {
                    tracing::warn!(
                        index,
                        "lease journal: undecodable record; replay stops there"
                    );
                    break;
                }
            }
        }
        if !self.current_format {
            if let Err(e) = self.compact() {
                tracing::warn!("lease journal: cannot rewrite it in the current format: {e}");
            }
        }
        Ok(&self.checkpoint)
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
        let record = match self.current_format {
            true => postcard::to_slice(&Record::Grant(grant), &mut buf),
            false => postcard::to_slice(&grant, &mut buf),
        }
        .map_err(io::Error::other)?;
        self.journal.append(record)?;
        self.records += 1;
        self.insert(grant);
        self.compact_if_long();
        Ok(())
    }

    /// Records where the collector stands (nothing, in a journal of the first format).
    pub(super) fn checkpoint(
        &mut self,
        current: Option<Pass>,
        last: Option<Pass>,
    ) -> io::Result<()> {
        self.checkpoint = Replayed { current, last };
        if !self.current_format {
            return Ok(());
        }
        let record = self.checkpoint_record()?;
        self.journal.append(&record)?;
        self.records += 1;
        self.compact_if_long();
        Ok(())
    }

    fn checkpoint_record(&self) -> io::Result<Vec<u8>> {
        let record = Record::Checkpoint {
            current: self.checkpoint.current.clone(),
            last: self.checkpoint.last.clone(),
        };
        postcard::to_allocvec(&record).map_err(io::Error::other)
    }

    fn compact_if_long(&mut self) {
        if self.records > 2 * self.leases + COMPACTION_SLACK {
            // What was appended is durable already: a failed compaction only leaves a
            // longer journal.
            if let Err(e) = self.compact() {
                tracing::warn!("lease journal: cannot compact: {e}");
            }
        }
    }

    /// Rewrites the journal, in the current format, with one record per lease in the table
    /// and the latest checkpoint.
    fn compact(&mut self) -> io::Result<()> {
        let mut records = Vec::with_capacity(self.leases + 2);
        records.push(HEADER.to_vec());
        for (&si, leases) in &self.files {
            for &(secret, expires) in leases {
                let grant = Grant {
                    si,
                    secret,
                    expires,
                };
                records
                    .push(postcard::to_allocvec(&Record::Grant(grant)).map_err(io::Error::other)?);
            }
        }
        if self.checkpoint.current.is_some() || self.checkpoint.last.is_some() {
            records.push(self.checkpoint_record()?);
        }
        self.journal.rewrite(&records)?;
        tracing::debug!(
            from = self.records,
            to = records.len(),
            "lease journal compacted"
        );
        self.records = records.len();
        self.current_format = true;
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

    /// The first file with leases after `cursor` (from the first of all without one), in
    /// storage-index order, with the times its leases end.
    pub(super) fn file_after(
        &self,
        cursor: Option<StorageIndex>,
    ) -> Option<(StorageIndex, impl Iterator<Item = Time> + '_)> {
        let from = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let (&si, leases) = self.files.range((from, Bound::Unbounded)).next()?;
        Some((si, leases.iter().map(|&(_, expires)| expires)))
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
        replayed.replay(|_| true).unwrap();
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
        replayed.replay(|si| si == kept).unwrap();
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

    #[test]
    fn a_journal_of_the_first_format_is_read_and_rewritten_in_the_current_one() {
        let journal = MemJournal::new();
        let (si, secret) = (StorageIndex([3; 16]), LeaseSecret([4; 32]));
        // Bare grants, as servers wrote them before checkpoints existed.
        let mut old = journal.clone();
        let grant = Grant {
            si,
            secret,
            expires: Time(77),
        };
        old.append(&postcard::to_allocvec(&grant).unwrap()).unwrap();
        let mut leases = Leases::new(Box::new(journal.clone()));
        leases.replay(|_| true).unwrap();
        assert_eq!(leases.counts(), (1, 1));
        assert_eq!(journal.clone().records().unwrap()[0], HEADER, "rewritten");
        let pass = Pass {
            files_examined: 9,
            ..Pass::default()
        };
        leases.checkpoint(Some(pass.clone()), None).unwrap();
        let mut replayed = Leases::new(Box::new(journal));
        let checkpoint = replayed.replay(|_| true).unwrap();
        assert_eq!(checkpoint.current, Some(pass));
        assert_eq!(replayed.files[&si], vec![(secret, Time(77))]);
    }
}
