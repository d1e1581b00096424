//! [`FileJournal`]: a [`Journal`] kept in one file, for the vdrive and the storage server's
//! leases.
//!
//! Each record is one frame, `[u32 length][u32 checksum][payload]` (little-endian; the
//! checksum is the first four bytes of the payload's SHA-256), the same framing as the
//! simulator's disk. An append writes its frame after the last whole one and fsyncs before
//! returning, so an acknowledged record is durable.
//!
//! A crash mid-append leaves a torn frame at the tail; bit rot can spoil one anywhere. The
//! journal keeps everything before the first frame that is incomplete, fails its checksum or
//! claims more than [`MAX_RECORD`] bytes, and cuts the file there — on open, and whenever it
//! finds bytes after its last acknowledged frame (an append that failed part way) — so that
//! later appends are never stranded behind a bad frame. Cutting loses nothing that was
//! acknowledged in one piece: records after a damaged one could not be trusted to follow it
//! anyway, and the trait promises none of them.
//!
//! The file is locked while open, so two journals (or two processes) never append to it at
//! once.

use cairn_actors::store::Journal;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The largest record accepted, in bytes. A frame header claiming more is treated as damage,
/// so a flipped bit in a length never makes a reader allocate gigabytes.
pub const MAX_RECORD: usize = 16 << 20;

/// Bytes of a frame before its payload: a `u32` length and a `u32` checksum.
const HEADER: usize = 8;

/// A [`Journal`] in one file. See the module docs.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    file: File,
    /// Where the last acknowledged (or, after open, the last intact) frame ends: anything
    /// after it is the remains of a failed append.
    end: u64,
}

impl FileJournal {
    /// Opens the journal at `path`, creating it if missing, and cuts off any torn or damaged
    /// tail. Fails if another handle holds the journal open.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| context(e, "cannot open journal", &path))?;
        lock(&file, &path)?;
        // A new file's name must be durable before the first record in it is acknowledged.
        sync_parent(&path)?;
        let mut journal = FileJournal { path, file, end: 0 };
        let end = journal.scan(0, |_| ())?;
        journal.cut_at(end)?;
        Ok(journal)
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the frames from byte `from` on, handing each payload to `visit`; returns where
    /// the last whole, intact frame ends.
    fn scan(&mut self, from: u64, mut visit: impl FnMut(Vec<u8>)) -> io::Result<u64> {
        let io_err = |e| context(e, "cannot read journal", &self.path);
        self.file.seek(SeekFrom::Start(from)).map_err(io_err)?;
        let mut reader = BufReader::new(&self.file);
        let mut at = from;
        while let Some(payload) = read_frame(&mut reader).map_err(io_err)? {
            at += (HEADER + payload.len()) as u64;
            visit(payload);
        }
        Ok(at)
    }

    /// Cuts the file at `end` if anything follows it, durably, and takes `end` as the end of
    /// the journal.
    fn cut_at(&mut self, end: u64) -> io::Result<()> {
        let len = self.len()?;
        if len > end {
            tracing::warn!(
                path = %self.path.display(),
                kept = end,
                cut = len - end,
                "journal: cutting a torn or damaged tail"
            );
            let io_err = |e| context(e, "cannot cut the tail of journal", &self.path);
            self.file.set_len(end).map_err(io_err)?;
            self.file.sync_all().map_err(io_err)?;
        }
        self.end = end;
        Ok(())
    }

    /// Drops what a failed append left after the last acknowledged frame (whole or not: it
    /// was never acknowledged, and its bytes may not even be durable after a failed fsync),
    /// so that what is read and appended next is what a restart would find.
    fn drop_unacknowledged(&mut self) -> io::Result<()> {
        if self.len()? < self.end {
            // Shrunk under us (the lock is only advisory): trust nothing, rescan it all.
            let end = self.scan(0, |_| ())?;
            return self.cut_at(end);
        }
        self.cut_at(self.end)
    }

    fn len(&self) -> io::Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| context(e, "cannot stat journal", &self.path))
    }
}

impl Journal for FileJournal {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        if record.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte journal record is over the {MAX_RECORD}-byte limit",
                    record.len()
                ),
            ));
        }
        self.drop_unacknowledged()?;
        let frame = frame_of(record);
        let io_err = |e| context(e, "cannot append to journal", &self.path);
        self.file.seek(SeekFrom::Start(self.end)).map_err(io_err)?;
        self.file.write_all(&frame).map_err(io_err)?;
        // sync_data suffices: it flushes the file size along with the bytes.
        self.file.sync_data().map_err(io_err)?;
        self.end += frame.len() as u64;
        Ok(())
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        self.drop_unacknowledged()?;
        let mut records = Vec::new();
        let end = self.scan(0, |record| records.push(record))?;
        // Damage found now (bit rot since open) is cut as a reopen would cut it, so that
        // what was returned is exactly what later appends follow.
        self.cut_at(end)?;
        Ok(records)
    }
}

/// The next frame's payload; `None` at the end of the file or at a torn or damaged frame.
fn read_frame(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0; HEADER];
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

/// Fills `buf`; `false` if the file ends first.
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

fn frame_of(record: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + record.len());
    // Fits: append refuses records over MAX_RECORD, far below u32::MAX.
    frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
    frame.extend_from_slice(&checksum(record).to_le_bytes());
    frame.extend_from_slice(record);
    frame
}

/// Takes the file's exclusive lock. A file system without locks is allowed (with a warning):
/// refusing to run there would be worse than the risk it guards against.
fn lock(file: &File, path: &Path) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "journal {} is already open (in this process or another); close it first",
                path.display()
            ),
        )),
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            tracing::warn!(path = %path.display(), "journal: file locks unsupported here");
            Ok(())
        }
        Err(TryLockError::Error(e)) => Err(context(e, "cannot lock journal", path)),
    }
}

/// Makes `path`'s directory entry durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::share_store::sync_dir(parent)
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_actors::actor::{Actor, Addr, Context, Effect, Input, Service, Time};
    use cairn_actors::codec::{Cap, LitCap};
    use cairn_actors::protocol::{Message, Request, RequestId, Response};
    use cairn_actors::vdrive::{EntryKind, Vdrive, VdriveOp, VdriveReply};
    use cairn_actors::NodeId;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::fs;
    use std::time::Duration;

    fn records(path: &Path) -> Vec<Vec<u8>> {
        FileJournal::open(path).unwrap().records().unwrap()
    }

    fn strings(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    /// Appends `bytes` to the file by hand, as a crash or a vandal would leave them.
    fn scribble(path: &Path, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.records().unwrap(), strings(&[]));
        journal.append(b"one").unwrap();
        journal.append(b"").unwrap();
        journal.append(b"three").unwrap();
        assert_eq!(journal.records().unwrap(), strings(&["one", "", "three"]));
        drop(journal);
        assert_eq!(records(&path), strings(&["one", "", "three"]));
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_appends_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let frame = frame_of(b"never acknowledged");
        for keep in 1..frame.len() {
            let _ = fs::remove_file(&path);
            FileJournal::open(&path).unwrap().append(b"one").unwrap();
            scribble(&path, &frame[..keep]);
            let mut journal = FileJournal::open(&path).unwrap();
            assert_eq!(journal.records().unwrap(), strings(&["one"]), "keep {keep}");
            journal.append(b"two").unwrap();
            drop(journal);
            assert_eq!(records(&path), strings(&["one", "two"]), "keep {keep}");
        }
    }

    #[test]
    fn a_tail_torn_while_open_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = FileJournal::open(&path).unwrap();
        journal.append(b"one").unwrap();
        // As a failed append would leave it: the journal still holds the file open.
        scribble(&path, &frame_of(b"failed")[..5]);
        journal.append(b"two").unwrap();
        drop(journal);
        assert_eq!(records(&path), strings(&["one", "two"]));
    }

    #[test]
    fn a_bad_checksum_drops_that_record_and_all_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = FileJournal::open(&path).unwrap();
        for record in ["one", "two", "three"] {
            journal.append(record.as_bytes()).unwrap();
        }
        drop(journal);
        let mut bytes = fs::read(&path).unwrap();
        let second_payload = 2 * HEADER + 3;
        bytes[second_payload] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let mut journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.records().unwrap(), strings(&["one"]));
        journal.append(b"four").unwrap();
        drop(journal);
        assert_eq!(records(&path), strings(&["one", "four"]));
    }

    #[test]
    fn a_huge_claimed_length_is_damage_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        FileJournal::open(&path).unwrap().append(b"one").unwrap();
        scribble(&path, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(records(&path), strings(&["one"]));
        assert_eq!(fs::metadata(&path).unwrap().len(), (HEADER + 3) as u64);
    }

    #[test]
    fn oversized_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = FileJournal::open(&path).unwrap();
        let err = journal.append(&vec![0; MAX_RECORD + 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("limit"), "{err}");
        journal.append(&vec![7; MAX_RECORD]).unwrap();
        drop(journal);
        assert_eq!(records(&path), vec![vec![7; MAX_RECORD]]);
    }

    #[test]
    fn a_second_handle_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let journal = FileJournal::open(&path).unwrap();
        let err = FileJournal::open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(journal);
        FileJournal::open(&path).unwrap();
    }

    #[test]
    fn a_directory_in_place_of_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileJournal::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("journal"), "{err}");
    }

    /// Sends one vdrive operation to `vdrive` and returns its answer.
    fn vdrive_op(vdrive: &mut Vdrive, id: u64, op: VdriveOp) -> Response {
        let client = Addr::new(NodeId([9; 32]), Service::Client);
        let now = Time(5_000_000_000);
        let msg = Message::Request {
            id: RequestId(id),
            deadline: now.after(Duration::from_secs(1)),
            body: Request::Vdrive(op),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut ctx = Context::new(now, Addr::new(NodeId([0; 32]), Service::Vdrive), &mut rng);
        vdrive.handle(Input::Message { from: client, msg }, &mut ctx);
        match ctx.into_effects().as_slice() {
            [Effect::Send {
                msg: Message::Response { body, .. },
                ..
            }] => body.clone(),
            other => panic!("expected one answer, got {other:?}"),
        }
    }

    fn started_vdrive(path: &Path) -> Vdrive {
        let mut vdrive = Vdrive::new(Box::new(FileJournal::open(path).unwrap()));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let me = Addr::new(NodeId([0; 32]), Service::Vdrive);
        let mut ctx = Context::new(Time(5_000_000_000), me, &mut rng);
        vdrive.handle(Input::Start, &mut ctx);
        assert!(ctx.effects().is_empty());
        vdrive
    }

    #[test]
    fn the_vdrive_survives_being_recreated_over_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vdrive.journal");
        let cap = Cap::Lit(LitCap {
            data: b"hello".to_vec(),
        })
        .to_string();
        let mut vdrive = started_vdrive(&path);
        let ops = [
            VdriveOp::Mkdir { path: "/a".into() },
            VdriveOp::Link {
                path: "/a/f".into(),
                cap: cap.clone(),
                replace: false,
            },
            VdriveOp::Rename {
                from: "/a/f".into(),
                to: "/g".into(),
            },
        ];
        for (id, op) in ops.into_iter().enumerate() {
            assert_eq!(
                vdrive_op(&mut vdrive, id as u64, op),
                Response::Vdrive(Ok(VdriveReply::Done))
            );
        }
        drop(vdrive);
        // A torn append from the crash, too.
        scribble(&path, &frame_of(b"torn")[..6]);

        let mut vdrive = started_vdrive(&path);
        assert_eq!(vdrive.entries(), 2);
        let lookup = VdriveOp::Lookup { path: "/g".into() };
        assert_eq!(
            vdrive_op(&mut vdrive, 10, lookup),
            Response::Vdrive(Ok(VdriveReply::Entry(EntryKind::File { cap })))
        );
        let list = VdriveOp::List { path: "/a".into() };
        assert_eq!(
            vdrive_op(&mut vdrive, 11, list),
            Response::Vdrive(Ok(VdriveReply::Entries(vec![])))
        );
        let mkdir = VdriveOp::Mkdir { path: "/b".into() };
        assert_eq!(
            vdrive_op(&mut vdrive, 12, mkdir),
            Response::Vdrive(Ok(VdriveReply::Done))
        );
        drop(vdrive);
        assert_eq!(started_vdrive(&path).entries(), 3);
    }
}
