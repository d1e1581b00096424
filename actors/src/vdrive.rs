//! The vdrive: a path -> cap namespace kept by one actor, durable through a [`Journal`].
//!
//! The namespace is a tree of directories whose leaves are caps ([`EntryKind::File`]); the
//! root always exists. Its history is the journal: every change that succeeded, one record
//! each (a postcard-encoded [`VdriveOp`]), appended *before* the change is made in memory
//! and acknowledged — so an acknowledged change survives any crash, and a restarted vdrive
//! rebuilds exactly the tree it acknowledged by replaying the journal.
//!
//! Everything it keeps is bounded: paths, names and caps by length, each directory by
//! [`MAX_DIR_ENTRIES`] (so a listing fits in one message), the tree by [`MAX_ENTRIES`].

mod tree;

use crate::actor::{Actor, Addr, Context, Input, Time};
use crate::protocol::{Message, RemoteError, Request, RequestId, Response};
use crate::replies::ReplyCache;
use crate::store::Journal;
use serde::{Deserialize, Serialize};
use tree::Tree;

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
            health: Health::Unread("the vdrive has not started".into()),
            answered: ReplyCache::default(),
        }
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

    /// Rebuilds the tree from the journal.
    fn load(&mut self) {
        self.tree = Tree::new(self.max_entries);
        let records = match self.journal.records() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!("vdrive: cannot read the journal (will retry): {e}");
                self.health = Health::Unread(format!("cannot read the journal: {e}"));
                return;
            }
        };
        self.health = Health::Healthy;
        let total = records.len();
        for (index, record) in records.iter().enumerate() {
            if let Err(why) = self.replay(record) {
                tracing::error!(index, total, "vdrive: journal replay stops: {why}");
                self.health = Health::ReadOnly(format!(
                    "journal record {index} of {total} cannot be replayed ({why}); the \
                     vdrive is read-only until the journal is repaired"
                ));
                return;
            }
        }
    }

    fn replay(&mut self, record: &[u8]) -> Result<(), String> {
        let (op, rest) =
            postcard::take_from_bytes::<VdriveOp>(record).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the change", rest.len()));
        }
        self.tree.apply(&op).map_err(|e| e.to_string())
    }

    fn on_request(
        &mut self,
        from: Addr,
        id: RequestId,
        deadline: Time,
        body: Request,
        ctx: &mut Context<'_>,
    ) {
        // Lookups and listings change nothing (and a listing can be large).
        let changes = !matches!(
            body,
            Request::Vdrive(VdriveOp::List { .. } | VdriveOp::Lookup { .. })
        );
        let Some(request) = self.answered.admit(ctx, from, id, deadline, changes) else {
            return;
        };
        let body = match body {
            Request::Vdrive(op) => Response::Vdrive(self.serve(op)),
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

    /// Checks, journals, then applies a change: in that order, so that memory never holds
    /// (and no one is told of) a change the journal may not have.
    fn change(&mut self, op: &VdriveOp) -> Result<(), VdriveError> {
        if let Health::ReadOnly(why) = &self.health {
            return Err(VdriveError::Storage(why.clone()));
        }
        self.tree.check(op)?;
        let record = postcard::to_stdvec(op).map_err(|e| VdriveError::Storage(e.to_string()))?;
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

#[cfg(test)]
mod tests;
