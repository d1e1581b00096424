//! The vdrive: a path -> cap namespace kept by one actor, durable through a [`Journal`].
//!
//! [`Journal`]: crate::store::Journal

use serde::{Deserialize, Serialize};

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

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
}
