//! The vdrive: a path -> cap namespace kept by one actor, durable through a [`Journal`] —
//! and, beside it, the store of directories named by caps ([`dirs`]) that replaces it: the
//! global tree stays readable so that it can be imported into a node's own root.
//!
//! The namespace is a tree of directories whose leaves are caps ([`EntryKind::File`]); the
//! root always exists. Its history is the journal: every change that succeeded, one record
//! each (a postcard-encoded [`VdriveOp`]), appended *before* the change is made in memory
//! and acknowledged — so an acknowledged change survives any crash, and a restarted vdrive
//! rebuilds exactly the tree it acknowledged by replaying the journal.
//!
//! Everything it keeps is bounded: paths, names and caps by length, each directory by
//! [`MAX_DIR_ENTRIES`] (so a listing fits in one message), the tree by [`MAX_ENTRIES`].
//!
//! Journal format: a journal begins with the record [`HEADER`], and each record after it is
//! a postcard [`Logged`]: a change of the tree, or a directory write. A journal without the
//! header was written before directories existed (each record a bare [`VdriveOp`]); it is
//! rewritten in the current format when it is read, and until that succeeds directory
//! writes are refused.

mod dirs;
mod tree;

use crate::actor::{Actor, Addr, Context, Input, Time};
use crate::ids::{NodeId, StorageIndex};
use crate::protocol::{Message, RemoteError, Request, RequestId, Response};
use crate::replies::ReplyCache;
use crate::store::Journal;
use dirs::{Dirs, StoredDir};
use serde::{Deserialize, Serialize};
use tree::Tree;

pub use dirs::{DEFAULT_MAX_DIR_BYTES, DEFAULT_MAX_DIR_BYTES_PER_CREATOR};

/// The first record of a journal in the current format (shorter than any legacy record
/// could be mistaken for: a bare [`VdriveOp`] never encodes to these bytes).
const HEADER: &[u8] = b"\xffcairn vdrive v2";

/// Directory records beyond twice the directories held that are tolerated in the journal
/// before it is compacted.
const COMPACTION_SLACK: usize = 256;

/// One journal record of the current format.
#[derive(Serialize, Deserialize)]
enum Logged {
    Op(VdriveOp),
    Dir(StoredDir),
}

/// Checks a path as the vdrive will, so that a client can refuse a bad one before it does
/// any work for it (an upload, say).
pub fn check_path(path: &str) -> Result<(), VdriveError> {
    tree::components(path).map(drop)
}

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// The longest name (path component) accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// The longest cap accepted, in bytes (today's caps are under 130).
pub const MAX_CAP_LEN: usize = 512;
/// The most names one directory holds: a listing of that many of the longest names and caps
/// still fits in one message (see the test `a_full_directory_listing_fits_a_message`).
pub const MAX_DIR_ENTRIES: usize = 4096;
/// The most names the whole vdrive holds (about 1 KiB of memory each at worst).
pub const MAX_ENTRIES: usize = 1_000_000;

/// A vdrive operation. Paths are absolute, `/`-separated, without `.` or `..` components.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VdriveOp {
    Mkdir {
        path: String,
    },
    /// Links `cap` at `path`; with `replace`, over an existing file (never a directory).
    Link {
        path: String,
        cap: String,
        replace: bool,
    },
    Unlink {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    List {
        path: String,
    },
    Lookup {
        path: String,
    },
}

/// A successful vdrive operation's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VdriveReply {
    Done,
    Entries(Vec<DirEntry>),
    Entry(EntryKind),
}

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

/// What a name stands for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryKind {
    Dir,
    File { cap: String },
}

/// Why a vdrive operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VdriveError {
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("not a directory: {0}")]
    NotADirectory(String),
    #[error("is a directory: {0}")]
    IsADirectory(String),
    #[error("invalid path {0:?}: {1}")]
    InvalidPath(String, String),
    #[error("invalid cap: {0}")]
    InvalidCap(String),
    #[error("the vdrive's journal failed: {0}")]
    Storage(String),
    /// The client could not get an answer from the vdrive (nothing is known to be wrong
    /// with the vdrive's data); the operation may or may not have been applied.
    #[error("the vdrive did not answer: {0}")]
    Unreachable(String),
}

/// The vdrive actor. See the module docs.
pub struct Vdrive {
    journal: Box<dyn Journal>,
    tree: Tree,
    max_entries: usize,
    dirs: Dirs,
    /// Whether the journal is in the current format (else it takes tree changes only).
    current_format: bool,
    /// Directory records in the journal.
    logged_dirs: usize,
    health: Health,
    answered: ReplyCache,
}

/// Whether the tree in memory is the journal's.
enum Health {
    /// The journal has not been read (yet, or the last attempt failed: why).
    Unread(String),
    /// The tree is the journal's, and changes may be added.
    Healthy,
    /// The journal holds a record this vdrive cannot replay (why): the tree is what came
    /// before it. Changes are refused — one appended after the bad record would be lost at
    /// the next replay — until an operator repairs the journal.
    ReadOnly(String),
}

impl Vdrive {
    /// A vdrive whose history is `journal` (read when the actor starts).
    pub fn new(journal: Box<dyn Journal>) -> Self {
        Self::with_max_entries(journal, MAX_ENTRIES)
    }

    /// A vdrive holding at most `max_entries` names (for tests and small simulations).
    pub fn with_max_entries(journal: Box<dyn Journal>, max_entries: usize) -> Self {
        Vdrive {
            journal,
            tree: Tree::new(max_entries),
            max_entries,
            dirs: Dirs::new(DEFAULT_MAX_DIR_BYTES),
            current_format: false,
            logged_dirs: 0,
            health: Health::Unread("the vdrive has not started".into()),
            answered: ReplyCache::default(),
        }
    }

    /// Keeps at most `max_bytes` of directory records, and at most `per_creator` of the
    /// directories one node created (for tests and small simulations).
    pub fn with_dir_limits(mut self, max_bytes: u64, per_creator: u64) -> Self {
        self.dirs.max_bytes = max_bytes;
        self.dirs.max_per_creator = per_creator;
        self
    }

    /// How many directories (named by caps) the server holds.
    pub fn directories(&self) -> usize {
        self.dirs.len()
    }

    /// How many names the vdrive holds.
    pub fn entries(&self) -> usize {
        self.tree.entries()
    }

    /// Why changes are refused, if they are (a damaged or unreadable journal).
    pub fn fault(&self) -> Option<&str> {
        match &self.health {
            Health::Healthy => None,
            Health::Unread(why) | Health::ReadOnly(why) => Some(why),
        }
    }

    /// Rebuilds the tree and the directories from the journal (rewriting a journal of the
    /// first format in the current one).
    fn load(&mut self) {
        self.tree = Tree::new(self.max_entries);
        self.dirs.clear();
        self.logged_dirs = 0;
        let records = match self.journal.records() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!("vdrive: cannot read the journal (will retry): {e}");
                self.health = Health::Unread(format!("cannot read the journal: {e}"));
                return;
            }
        };
        self.health = Health::Healthy;
        self.current_format = records.first().is_some_and(|r| r == HEADER);
        let skip = usize::from(self.current_format);
        let total = records.len();
        for (index, record) in records.iter().enumerate().skip(skip) {
            if let Err(why) = self.replay(record) {
                tracing::error!(index, total, "vdrive: journal replay stops: {why}");
                self.health = Health::ReadOnly(format!(
                    "journal record {index} of {total} cannot be replayed ({why}); the \
                     vdrive is read-only until the journal is repaired"
                ));
                return;
            }
        }
        if !self.current_format {
            let mut rewritten = vec![HEADER.to_vec()];
            for record in &records {
                match postcard::from_bytes::<VdriveOp>(record) {
                    Ok(op) => rewritten.push(encode(&Logged::Op(op))),
                    Err(_) => return, // replayed above, so cannot happen
                }
            }
            match self.journal.rewrite(&rewritten) {
                Ok(()) => self.current_format = true,
                Err(e) => tracing::warn!(
                    "vdrive: cannot rewrite the journal in the current format (directories \
                     are refused until it can be): {e}"
                ),
            }
        }
    }

    fn replay(&mut self, record: &[u8]) -> Result<(), String> {
        let logged = match self.current_format {
            true => postcard::take_from_bytes::<Logged>(record),
            false => postcard::take_from_bytes::<VdriveOp>(record)
                .map(|(op, rest)| (Logged::Op(op), rest)),
        };
        let (logged, rest) = logged.map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the change", rest.len()));
        }
        match logged {
            Logged::Op(op) => self.tree.apply(&op).map_err(|e| e.to_string()),
            Logged::Dir(stored) => {
                self.logged_dirs += 1;
                self.dirs.apply(stored)
            }
        }
    }

    fn on_request(
        &mut self,
        from: Addr,
        id: RequestId,
        deadline: Time,
        body: Request,
        ctx: &mut Context<'_>,
    ) {
        let changes = body.changes();
        let Some(request) = self.answered.admit(ctx, from, id, deadline, changes) else {
            return;
        };
        let body = match body {
            Request::Vdrive(op) => Response::Vdrive(self.serve(op)),
            Request::DirRead { si } => match self.ready() {
                Ok(()) => Response::DirRecord(self.dirs.read(si)),
                Err(e) => Response::Err(e),
            },
            Request::DirWrite {
                si,
                write_enabler,
                expected,
                record,
            } => match self.write_dir(from.node, si, &write_enabler, expected, record) {
                Ok(()) => Response::Ok,
                Err(e) => Response::Err(e),
            },
            _ => Response::Err(RemoteError::Unsupported),
        };
        self.answered.answer(ctx, request, body);
    }

    fn serve(&mut self, op: VdriveOp) -> Result<VdriveReply, VdriveError> {
        if let Health::Unread(_) = self.health {
            self.load();
        }
        if let Health::Unread(why) = &self.health {
            return Err(VdriveError::Storage(why.clone()));
        }
        match self.tree.query(&op) {
            Some(answer) => answer,
            None => self.change(&op).map(|()| VdriveReply::Done),
        }
    }

    /// Reads the journal if it was not read yet; whether the directories can be served.
    fn ready(&mut self) -> Result<(), RemoteError> {
        if let Health::Unread(_) = self.health {
            self.load();
        }
        match &self.health {
            Health::Unread(why) => Err(RemoteError::Disk(why.clone())),
            _ => Ok(()),
        }
    }

    /// Checks, journals, then applies a directory write.
    fn write_dir(
        &mut self,
        writer: NodeId,
        si: StorageIndex,
        write_enabler: &[u8; 32],
        expected: Option<u64>,
        record: Vec<u8>,
    ) -> Result<(), RemoteError> {
        self.ready()?;
        if let Health::ReadOnly(why) = &self.health {
            return Err(RemoteError::Disk(why.clone()));
        }
        if !self.current_format {
            return Err(RemoteError::Disk(
                "the vdrive's journal is in an older format and could not be rewritten".into(),
            ));
        }
        let accepted = self
            .dirs
            .check(writer, si, write_enabler, expected, record)?;
        if crate::mutants::active(crate::mutants::Mutant::VdriveAcksBeforeJournal) {
            let _ = self.dirs.apply(accepted.0);
            return Ok(());
        }
        let logged = encode(&Logged::Dir(accepted.0.clone()));
        if let Err(e) = self.journal.append(&logged) {
            tracing::warn!("vdrive: journal append failed, re-reading the journal: {e}");
            self.load();
            return Err(RemoteError::Disk(format!(
                "recording the directory failed, so it may or may not have been stored: {e}"
            )));
        }
        self.logged_dirs += 1;
        if let Err(e) = self.dirs.apply(accepted.0) {
            tracing::error!("vdrive: a checked directory write failed to apply: {e}");
        }
        if self.logged_dirs > 2 * self.dirs.len() + COMPACTION_SLACK {
            // The write is durable already: a failed compaction only leaves a longer journal.
            if let Err(e) = self.compact() {
                tracing::warn!("vdrive: cannot compact the journal: {e}");
            }
        }
        Ok(())
    }

    /// Rewrites the journal with the tree's changes as they are and one record per
    /// directory (the latest).
    fn compact(&mut self) -> std::io::Result<()> {
        let mut records = Vec::new();
        for record in self.journal.records()? {
            if record == HEADER {
                records.push(record);
                continue;
            }
            if let Ok(Logged::Op(_)) = postcard::from_bytes::<Logged>(&record) {
                records.push(record);
            }
        }
        let dirs: Vec<Vec<u8>> = self
            .dirs
            .stored()
            .map(|d| encode(&Logged::Dir(d)))
            .collect();
        self.logged_dirs = dirs.len();
        records.extend(dirs);
        self.journal.rewrite(&records)
    }

    /// Checks, journals, then applies a change: in that order, so that memory never holds
    /// (and no one is told of) a change the journal may not have.
    fn change(&mut self, op: &VdriveOp) -> Result<(), VdriveError> {
        if let Health::ReadOnly(why) = &self.health {
            return Err(VdriveError::Storage(why.clone()));
        }
        self.tree.check(op)?;
        let record = match self.current_format {
            true => encode(&Logged::Op(op.clone())),
            false => encode(op),
        };
        if let Err(e) = self.journal.append(&record) {
            // The record may or may not have reached the journal: re-read it, so that the
            // tree is again exactly what a restart would rebuild.
            tracing::warn!("vdrive: journal append failed, re-reading the journal: {e}");
            self.load();
            return Err(VdriveError::Storage(format!(
                "recording the change failed, so it may or may not have been made (look it \
                 up): {e}"
            )));
        }
        let applied = self.tree.apply(op).inspect_err(|e| {
            // A checked change cannot fail; if it did, the journal is now ahead of memory.
            tracing::error!("vdrive: a checked change failed to apply: {e}");
            self.health = Health::ReadOnly(format!("a journaled change failed to apply: {e}"));
        });
        debug_assert!(applied.is_ok(), "a checked change applies");
        debug_assert!(self.tree.entries() <= self.max_entries);
        applied
    }
}

impl Actor for Vdrive {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => self.load(),
            Input::Message {
                from,
                msg: Message::Request { id, deadline, body },
            } => self.on_request(from, id, deadline, body, ctx),
            Input::Message { .. }
            | Input::Timer(_)
            | Input::Local { .. }
            | Input::Plaintext { .. }
            | Input::OutputDrained
            | Input::Cancel(_) => {}
        }
    }
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    postcard::to_stdvec(value).expect("serialising to memory cannot fail")
}

#[cfg(test)]
mod tests;
