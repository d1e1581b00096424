//! [`FileJournal`]: the actors' one journal format ([`FramedJournal`]) in one file, for the
//! vdrive and the storage server's leases.
//!
//! The framing, the checksums and the recovery from a torn or damaged tail are
//! [`cairn_actors::store::framed`]'s, shared with the simulator's disk; this module adds
//! the file: opening it (and cutting a torn tail at once, so that a damaged journal is
//! reported when the node starts), an exclusive lock while it is open, and `fsync`s.

use cairn_actors::store::{FramedJournal, Journal, Medium};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A [`Journal`] in one file. See the module docs.
#[derive(Debug)]
pub struct FileJournal(FramedJournal<JournalFile>);

/// The file under a [`FileJournal`].
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    file: File,
}

impl FileJournal {
    /// Opens the journal at `path`, creating it if missing, and cuts off any torn or damaged
    /// tail. Fails if another handle holds the journal open.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let file = open_private(&path).map_err(|e| context(e, "cannot open journal", &path))?;
        lock(&file, &path)?;
        // A new file's name must be durable before the first record in it is acknowledged.
        sync_parent(&path)?;
        let mut journal = FramedJournal::new(JournalFile { path, file });
        journal.recover()?;
        Ok(FileJournal(journal))
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.0.medium().path
    }
}

impl Journal for FileJournal {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.0.append(record)
    }

    fn records(&mut self) -> io::Result<Vec<Vec<u8>>> {
        self.0.records()
    }

    fn rewrite(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        self.0.rewrite(records)
    }
}

impl Medium for JournalFile {
    type Reader<'a> = BufReader<&'a File>;

    fn read_from(&mut self, offset: u64) -> io::Result<Self::Reader<'_>> {
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(BufReader::new(&self.file))
    }

    fn size(&mut self) -> io::Result<u64> {
        self.file.metadata().map(|m| m.len())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(data)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()
    }

    /// Writes `data` to a new file beside the journal, makes it durable, locks it and renames
    /// it over the journal (a crash leaves the old journal, or the new one, and maybe a stray
    /// `.rewrite` file that the next rewrite replaces).
    fn replace(&mut self, data: &[u8]) -> io::Result<()> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".rewrite");
        let staged = self.path.with_file_name(name);
        // A stray from a crash is removed, not reused: a new file gets the private mode.
        match std::fs::remove_file(&staged) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = open_private(&staged)?;
        file.write_all(data)?;
        file.sync_all()?;
        lock(&file, &staged)?;
        std::fs::rename(&staged, &self.path)?;
        sync_parent(&self.path)?;
        self.file = file;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        // sync_data suffices: it flushes the file size along with the bytes.
        self.file.sync_data()
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Opens (creating) a file only the node's user may read: journals hold caps and leases.
fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
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
    use cairn_actors::actor::{Addr, Input, Service, Time};
    use cairn_actors::codec::{Cap, LitCap};
    use cairn_actors::protocol::{Request, Response};
    use cairn_actors::store::framed::frame;
    use cairn_actors::testing::{journal_suite, Driven};
    use cairn_actors::vdrive::{EntryKind, Vdrive, VdriveOp, VdriveReply};
    use cairn_actors::NodeId;
    use std::fs;
    use std::io::Write;

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
    fn the_file_journal_keeps_the_journal_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        journal_suite(|| FileJournal::open(&path).unwrap());
    }

    #[test]
    fn a_rewrite_replaces_a_stray_from_a_crashed_one_and_stays_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = FileJournal::open(&path).unwrap();
        journal.append(b"old").unwrap();
        // What a crash between staging and renaming leaves: a readable stray.
        let stray = dir.path().join("journal.rewrite");
        fs::write(&stray, b"half a rewrite").unwrap();
        fs::set_permissions(&stray, fs::Permissions::from_mode(0o644)).unwrap();
        journal.rewrite(&[b"new".to_vec()]).unwrap();
        journal.append(b"after").unwrap();
        drop(journal);
        assert!(!stray.exists());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut reopened = FileJournal::open(&path).unwrap();
        assert_eq!(
            reopened.records().unwrap(),
            vec![b"new".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn a_torn_tail_in_the_file_is_cut_when_it_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        FileJournal::open(&path).unwrap().append(b"one").unwrap();
        scribble(&path, &frame(b"never acknowledged")[..9]);
        assert_eq!(records(&path), strings(&["one"]));
        assert_eq!(fs::metadata(&path).unwrap().len(), 8 + 3, "cut on open");
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

    const CLIENT: Addr = Addr {
        node: NodeId([9; 32]),
        service: Service::Client,
    };

    /// A started vdrive over the journal at `path`, driven by hand.
    fn started_vdrive(path: &Path) -> Driven<Vdrive> {
        let vdrive = Vdrive::new(Box::new(FileJournal::open(path).unwrap()));
        let me = Addr::new(NodeId([0; 32]), Service::Vdrive);
        let mut driven = Driven::new(vdrive, me, Time(5_000_000_000), 3);
        assert!(driven.input(Input::Start).is_empty());
        driven
    }

    fn vdrive_op(vdrive: &mut Driven<Vdrive>, op: VdriveOp) -> Response {
        vdrive.only_answer(CLIENT, Request::Vdrive(op))
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
        for op in ops {
            assert_eq!(
                vdrive_op(&mut vdrive, op),
                Response::Vdrive(Ok(VdriveReply::Done))
            );
        }
        drop(vdrive);
        // A torn append from the crash, too.
        scribble(&path, &frame(b"torn")[..6]);

        let mut vdrive = started_vdrive(&path);
        assert_eq!(vdrive.actor.entries(), 2);
        let lookup = VdriveOp::Lookup { path: "/g".into() };
        assert_eq!(
            vdrive_op(&mut vdrive, lookup),
            Response::Vdrive(Ok(VdriveReply::Entry(EntryKind::File { cap })))
        );
        let list = VdriveOp::List { path: "/a".into() };
        assert_eq!(
            vdrive_op(&mut vdrive, list),
            Response::Vdrive(Ok(VdriveReply::Entries(vec![])))
        );
        let mkdir = VdriveOp::Mkdir { path: "/b".into() };
        assert_eq!(
            vdrive_op(&mut vdrive, mkdir),
            Response::Vdrive(Ok(VdriveReply::Done))
        );
        drop(vdrive);
        assert_eq!(started_vdrive(&path).actor.entries(), 3);
    }
}
