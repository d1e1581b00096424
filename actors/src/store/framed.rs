//! [`FramedJournal`]: the one [`Journal`] format and its recovery, over any byte [`Medium`] —
//! a file for real nodes (`net`), the simulated disk for the simulator (`sim`), so that the
//! simulator's crashes and torn writes exercise the very recovery code a node runs.
//!
//! Each record is one frame, `[u32 length][u32 checksum][payload]` (little-endian; the
//! checksum is the first four bytes of the payload's SHA-256). An append writes its frame
//! after the last whole one and syncs before returning, so an acknowledged record is durable.
//!
//! A crash mid-append leaves a torn frame at the tail: the journal keeps everything before the
//! first frame that is incomplete, fails its checksum or claims more than [`MAX_RECORD`]
//! bytes, and cuts the medium there — when it first reads it, and whenever it finds bytes
//! after its last acknowledged frame (an append that failed part way) — so that later
//! appends are never stranded behind a bad frame.
//!
//! Damage is told apart from a torn tail: a torn append leaves at most one frame's bytes,
//! and nothing whole after them. A bad frame followed by more than that, or by intact frames,
//! is bit rot or an outside hand, and cutting there would silently drop acknowledged
//! records: the journal then refuses to be read ([`io::ErrorKind::InvalidData`], naming the
//! offset) and changes nothing, so that its operator decides.

use super::Journal;
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// The largest record accepted, in bytes. A frame header claiming more is treated as damage,
/// so a flipped bit in a length never makes a reader allocate gigabytes.
pub const MAX_RECORD: usize = 16 << 20;

/// Bytes of a frame before its payload: a `u32` length and a `u32` checksum.
pub const FRAME_HEADER: usize = 8;

/// The bytes under a journal: what a file offers, and no more.
pub trait Medium: Send {
    /// Reads from `offset` to the end.
    type Reader<'a>: Read
    where
        Self: 'a;

    /// A reader of the bytes from `offset` on.
    fn read_from(&mut self, offset: u64) -> io::Result<Self::Reader<'_>>;
    /// How many bytes the medium holds.
    fn size(&mut self) -> io::Result<u64>;
    /// Writes `data` at `offset` (at or before the end; the medium grows as needed). Not
    /// durable until [`Medium::sync`].
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Cuts the medium to `len` bytes, durably.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Replaces every byte with `data`, atomically and durably: after a crash the medium
    /// holds either its old bytes or exactly `data`.
    fn replace(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// What the medium is, for messages and logs (a file's path).
    fn name(&self) -> String;
}

/// A [`Journal`] of frames on a [`Medium`]. See the module docs.
#[derive(Debug)]
pub struct FramedJournal<M> {
    medium: M,
    /// Where the last acknowledged (or, after recovery, the last intact) frame ends: anything
    /// after it is the remains of a failed append. `None` until the medium is first read.
    end: Option<u64>,
}

impl<M: Medium> FramedJournal<M> {
    /// A journal over `medium`; nothing is read until it is used (or [`FramedJournal::recover`]
    /// is called).
    pub fn new(medium: M) -> Self {
        FramedJournal { medium, end: None }
    }

    /// The medium.
    pub fn medium(&self) -> &M {
        &self.medium
    }

    /// Reads the medium and cuts off a torn tail; refuses a damaged journal (see the
    /// module docs).
    pub fn recover(&mut self) -> io::Result<()> {
        let end = self.scan(|_| ())?;
        self.refuse_damage_before(end)?;
        self.cut_at(end)
    }

    /// Fails if what follows the last intact frame, at `end`, is not what a torn append
    /// leaves: more than one frame's bytes, or whole frames after the bad one.
    fn refuse_damage_before(&mut self, end: u64) -> io::Result<()> {
        let len = self.size()?;
        let rest = len.saturating_sub(end);
        if rest == 0 {
            return Ok(());
        }
        let damaged = rest > (FRAME_HEADER + MAX_RECORD) as u64 || {
            let name = self.medium.name();
            let mut tail = Vec::new();
            self.medium
                .read_from(end)
                .and_then(|r| r.take(rest).read_to_end(&mut tail))
                .map_err(|e| context(e, "cannot read journal", &name))?;
            (1..tail.len()).any(|at| whole_frames_to_the_end(&tail[at..]))
        };
        if !damaged {
            return Ok(());
        }
        let name = self.medium.name();
        tracing::error!(journal = %name, at = end, "journal: damaged, with records after the damage");
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "journal {name} is damaged at byte {end}, and records follow the damage: it \
                 was left as it is. Restore it from a backup, or move it aside to start with \
                 what it held before byte {end} lost"
            ),
        ))
    }

    /// Reads every frame from the start, handing each payload to `visit`; returns where the
    /// last whole, intact frame ends.
    fn scan(&mut self, mut visit: impl FnMut(Vec<u8>)) -> io::Result<u64> {
        let name = self.medium.name();
        let mut reader = self
            .medium
            .read_from(0)
            .map_err(|e| context(e, "cannot read journal", &name))?;
        let mut at = 0u64;
        while let Some(payload) =
            read_frame(&mut reader).map_err(|e| context(e, "cannot read journal", &name))?
        {
            at += (FRAME_HEADER + payload.len()) as u64;
            visit(payload);
        }
        Ok(at)
    }

    /// Cuts the medium at `end` if anything follows it, and takes `end` as the journal's end.
    fn cut_at(&mut self, end: u64) -> io::Result<()> {
        let len = self.size()?;
        if len > end {
            let name = self.medium.name();
            tracing::warn!(journal = %name, kept = end, cut = len - end, "journal: cutting a torn or damaged tail");
            self.medium
                .truncate(end)
                .map_err(|e| context(e, "cannot cut the tail of journal", &name))?;
        }
        self.end = Some(end);
        Ok(())
    }

    /// Drops what a failed append left after the last acknowledged frame (whole or not: it
    /// was never acknowledged, and its bytes may not even be durable), so that what is read
    /// and appended next is what a restart would find.
    fn drop_unacknowledged(&mut self) -> io::Result<u64> {
        let len = self.size()?;
        match self.end {
            Some(end) if len >= end => self.cut_at(end)?,
            // Shrunk under us, or never read: trust nothing, scan it all.
            _ => self.recover()?,
        }
        self.end
            .ok_or_else(|| io::Error::other("the journal's end is unknown after recovery"))
    }

    fn size(&mut self) -> io::Result<u64> {
        let name = self.medium.name();
        self.medium
            .size()
            .map_err(|e| context(e, "cannot size journal", &name))
    }
}

/// Refuses a record over [`MAX_RECORD`].
fn check_record_size(record: &[u8]) -> io::Result<()> {
    if record.len() > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte journal record is over the {MAX_RECORD}-byte limit",
                record.len()
            ),
        ));
    }
    Ok(())
}

impl<M: Medium> Journal for FramedJournal<M> {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        check_record_size(record)?;
        let end = self.drop_unacknowledged()?;
        let frame = frame(record);
        let name = self.medium.name();
        let io_err = |e| context(e, "cannot append to journal", &name);
        self.medium.write_at(end, &frame).map_err(io_err)?;
        self.medium.sync().map_err(io_err)?;
        self.end = Some(end + frame.len() as u64);
        Ok(())
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        self.drop_unacknowledged()?;
        let mut records = Vec::new();
        let end = self.scan(|record| records.push(record))?;
        // Damage found now (bit rot since the last read) is judged as a restart would judge
        // it, so that what was returned is exactly what later appends follow.
        self.refuse_damage_before(end)?;
        self.cut_at(end)?;
        Ok(records)
    }

    fn rewrite(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            check_record_size(record)?;
            bytes.extend_from_slice(&frame(record));
        }
        let name = self.medium.name();
        self.end = None; // unknown if the replace fails half-way: the next use scans
        self.medium
            .replace(&bytes)
            .map_err(|e| context(e, "cannot rewrite journal", &name))?;
        self.end = Some(bytes.len() as u64);
        Ok(())
    }
}

/// `record` as a frame.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER + record.len());
    // Fits: callers refuse records over MAX_RECORD, far below u32::MAX.
    frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
    frame.extend_from_slice(&checksum(record).to_le_bytes());
    frame.extend_from_slice(record);
    frame
}

/// The next frame's payload; `None` at the end of the medium or at a torn or damaged frame.
fn read_frame(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0; FRAME_HEADER];
    if !read_whole(reader, &mut header)? {
        return Ok(None);
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let sum = u32::from_le_bytes([c0, c1, c2, c3]);
    if len > MAX_RECORD {
        return Ok(None);
    }
    let mut payload = Vec::new();
    reader.take(len as u64).read_to_end(&mut payload)?;
    Ok((payload.len() == len && checksum(&payload) == sum).then_some(payload))
}

/// Whether `bytes` is one or more intact frames, to its very end (or to a torn last frame):
/// what the records after a damaged frame look like, and a torn tail does not.
fn whole_frames_to_the_end(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let mut whole = 0;
    loop {
        let Some(header) = rest.get(..FRAME_HEADER) else {
            return whole > 0;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let sum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
            return whole > 0; // a torn last frame
        };
        if len > MAX_RECORD || checksum(payload) != sum {
            return false;
        }
        whole += 1;
        rest = &rest[FRAME_HEADER + len..];
    }
}

/// Fills `buf`; `false` if the medium ends first.
fn read_whole(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn checksum(payload: &[u8]) -> u32 {
    let hash = Sha256::digest(payload);
    u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]])
}

fn context(e: io::Error, what: &str, name: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::journal_suite;
    use std::sync::{Arc, Mutex};

    /// A medium in memory; clones share the bytes, as reopening a file would.
    #[derive(Clone, Default)]
    struct Bytes(Arc<Mutex<Vec<u8>>>);

    impl Bytes {
        fn get(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }

        fn set(&self, bytes: Vec<u8>) {
            *self.0.lock().unwrap() = bytes;
        }
    }

    impl Medium for Bytes {
        type Reader<'a> = io::Cursor<Vec<u8>>;

        fn read_from(&mut self, offset: u64) -> io::Result<Self::Reader<'_>> {
            let bytes = self.get();
            let at = (offset as usize).min(bytes.len());
            Ok(io::Cursor::new(bytes[at..].to_vec()))
        }

        fn size(&mut self) -> io::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64)
        }

        fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
            let mut bytes = self.0.lock().unwrap();
            let at = offset as usize;
            let len = bytes.len().max(at + data.len());
            bytes.resize(len, 0);
            bytes[at..at + data.len()].copy_from_slice(data);
            Ok(())
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.0.lock().unwrap().truncate(len as usize);
            Ok(())
        }

        fn replace(&mut self, data: &[u8]) -> io::Result<()> {
            self.set(data.to_vec());
            Ok(())
        }

        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }

        fn name(&self) -> String {
            "memory".into()
        }
    }

    fn records(bytes: &Bytes) -> Vec<Vec<u8>> {
        FramedJournal::new(bytes.clone()).records().unwrap()
    }

    fn strings(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_framed_journal_keeps_the_journal_contract() {
        let bytes = Bytes::default();
        journal_suite(|| FramedJournal::new(bytes.clone()));
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_appends_are_kept() {
        let torn = frame(b"never acknowledged");
        for keep in 1..torn.len() {
            let bytes = Bytes::default();
            FramedJournal::new(bytes.clone()).append(b"one").unwrap();
            let mut with_tail = bytes.get();
            with_tail.extend_from_slice(&torn[..keep]);
            bytes.set(with_tail);
            let mut journal = FramedJournal::new(bytes.clone());
            assert_eq!(journal.records().unwrap(), strings(&["one"]), "keep {keep}");
            journal.append(b"two").unwrap();
            assert_eq!(records(&bytes), strings(&["one", "two"]), "keep {keep}");
        }
    }

    #[test]
    fn a_tail_torn_while_open_is_cut_before_the_next_append() {
        let bytes = Bytes::default();
        let mut journal = FramedJournal::new(bytes.clone());
        journal.append(b"one").unwrap();
        // As a failed append would leave it, behind the open journal's back.
        let mut with_tail = bytes.get();
        with_tail.extend_from_slice(&frame(b"failed")[..5]);
        bytes.set(with_tail);
        journal.append(b"two").unwrap();
        assert_eq!(records(&bytes), strings(&["one", "two"]));
    }

    #[test]
    fn damage_with_records_after_it_is_refused_and_left_alone() {
        let bytes = Bytes::default();
        let mut journal = FramedJournal::new(bytes.clone());
        for record in ["one", "two", "three"] {
            journal.append(record.as_bytes()).unwrap();
        }
        let mut rotten = bytes.get();
        rotten[2 * FRAME_HEADER + 3] ^= 0x01; // the second record's payload
        bytes.set(rotten.clone());
        let error = FramedJournal::new(bytes.clone()).records().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("byte 11"), "{error}");
        let error = FramedJournal::new(bytes.clone())
            .append(b"four")
            .unwrap_err();
        assert_eq!(
            error.kind(),
            io::ErrorKind::InvalidData,
            "nothing is appended after damage"
        );
        assert_eq!(bytes.get(), rotten, "the damaged journal is not changed");
        // An open journal that finds the damage later refuses too.
        let error = journal.records().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_damaged_length_with_records_after_it_is_refused_too() {
        let bytes = Bytes::default();
        let mut journal = FramedJournal::new(bytes.clone());
        for record in ["one", "two", "three"] {
            journal.append(record.as_bytes()).unwrap();
        }
        let mut rotten = bytes.get();
        rotten[FRAME_HEADER + 3 + 2] ^= 0x40; // the second record claims 4 MiB more
        bytes.set(rotten);
        let error = FramedJournal::new(bytes.clone()).records().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_huge_claimed_length_at_the_tail_is_torn_not_an_allocation() {
        let bytes = Bytes::default();
        FramedJournal::new(bytes.clone()).append(b"one").unwrap();
        let mut scribbled = bytes.get();
        scribbled.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3]);
        bytes.set(scribbled);
        assert_eq!(records(&bytes), strings(&["one"]));
        assert_eq!(bytes.get().len(), FRAME_HEADER + 3, "the torn tail is cut");
    }

    #[test]
    fn a_medium_shrunk_under_the_journal_is_read_again() {
        let bytes = Bytes::default();
        let mut journal = FramedJournal::new(bytes.clone());
        journal.append(b"one").unwrap();
        journal.append(b"two").unwrap();
        bytes.set(bytes.get()[..FRAME_HEADER + 3].to_vec());
        journal.append(b"three").unwrap();
        assert_eq!(records(&bytes), strings(&["one", "three"]));
    }
}
