//! What a node's local user (the CLI through the gateway, a simulated client) asks of it, and
//! the answers.

use crate::checker::{CheckError, CheckOptions, CheckReport};
use crate::ids::{NodeId, ShareNum};
use crate::protocol::{RemoteError, StorageFigures};
use crate::repairer::{RepairError, RepairReport};
use crate::vdrive::{VdriveError, VdriveOp, VdriveReply};
use cairn_codec::dirnode::{DirCap, DirWriteCap, Entry};
use cairn_codec::{ChkCap, EncodingParams, Key, VerifierCap};
use std::collections::BTreeMap;
use std::time::Duration;

/// Matches a local request to its answers; unique per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalId(pub u64);

/// A local user's request, sent to the node's client actor.
#[derive(Debug)]
pub enum LocalRequest {
    /// Upload `size` bytes (pulled with `Effect::Pull`) under `key`, placing shares until
    /// `happy` servers hold distinct shares.
    Upload {
        key: Key,
        params: EncodingParams,
        happy: usize,
        size: u64,
    },
    /// Download a file; its plaintext comes out through `Effect::Output`.
    Download { cap: ChkCap },
    /// A vdrive operation.
    Vdrive(VdriveOp),
    /// An operation on a directory named by a cap.
    Dir(DirRequest),
    /// What the client knows of the grid.
    Status,
    /// Check a file's health: which of its shares the servers hold (see
    /// [`crate::checker`]). A read cap's verify cap is `cap.verifier()`.
    Check {
        cap: VerifierCap,
        /// The servers-of-happiness the file should have.
        happy: usize,
        options: CheckOptions,
    },
    /// Check a file and, if fewer than `happy` servers hold distinct shares, regenerate
    /// shares from `k` good ones and place them on other servers (see [`crate::repairer`]).
    Repair {
        cap: VerifierCap,
        happy: usize,
        options: CheckOptions,
        /// Copies known bad (a verifying check found them corrupt): not counted, not used,
        /// and replaced like missing shares.
        distrusted: Vec<(ShareNum, NodeId)>,
    },
}

/// An operation on a directory named by a cap ([`cairn_codec::dirnode`]).
#[derive(Clone, Debug)]
pub enum DirRequest {
    /// Stores the first, empty version of the directory `cap` names (a new cap: 16 random
    /// bytes make its write key); answered with the cap.
    Create { cap: DirWriteCap },
    /// The entries of the directory (with a write cap, the children's write caps too).
    List { cap: DirCap },
    /// A change to the directory, applied to its latest version (again if another writer
    /// got there first).
    Change { cap: DirWriteCap, change: DirChange },
}

/// A change to one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirChange {
    /// Adds `entry` (over one of the same name only with `replace`).
    Add {
        entry: Entry,
        replace: bool,
    },
    Remove {
        name: String,
    },
    /// Renames an entry within the directory (never over another).
    Rename {
        from: String,
        to: String,
    },
}

/// A directory operation's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirReply {
    Created(DirWriteCap),
    /// The entries of the version read.
    Entries {
        version: u64,
        entries: Vec<Entry>,
    },
    /// The change is made: the directory is at `version`.
    Done {
        version: u64,
    },
}

/// Why a directory operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirOpError {
    #[error("no such directory on the vdrive server")]
    NoSuchDirectory,
    #[error("no such entry: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("invalid directory: {0}")]
    Invalid(String),
    /// The server answered a record that is not this directory's, or not a record.
    #[error("the vdrive server answered a record that does not verify: {0}")]
    Forged(String),
    /// The server answered an older version than this client has seen.
    #[error(
        "the vdrive server answered version {got} of the directory, older than version {seen} \
         seen before: it lost or withholds changes"
    )]
    Rollback { seen: u64, got: u64 },
    #[error("the directory kept changing under {0} attempts: try again")]
    Busy(u32),
    #[error("the vdrive server refused: {0}")]
    Refused(RemoteError),
    #[error("the vdrive server did not answer: {0}")]
    Unreachable(String),
}

/// The final answer to a [`LocalRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalResponse {
    Uploaded(Result<UploadReceipt, UploadError>),
    Downloaded(Result<DownloadReceipt, DownloadError>),
    Vdrive(Result<VdriveReply, VdriveError>),
    Dir(Result<DirReply, DirOpError>),
    Status(StatusReport),
    /// To [`LocalRequest::Status`] made of a storage server.
    Storage(Box<crate::storage::StorageReport>),
    Checked(Result<CheckReport, CheckError>),
    Repaired(Result<RepairReport, RepairError>),
}

/// What a successful upload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadReceipt {
    pub cap: ChkCap,
    /// Which servers hold which shares.
    pub placement: BTreeMap<ShareNum, Vec<NodeId>>,
    /// The servers-of-happiness measure reached.
    pub happiness: usize,
}

/// Why an upload failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error(
        "upload needs {happy} servers holding distinct shares but reached only {achieved}: \
         {known} servers known, {reachable} reachable, {accepting} accepting; {detail}"
    )]
    NotHappy {
        happy: usize,
        achieved: usize,
        known: usize,
        reachable: usize,
        accepting: usize,
        detail: String,
    },
    #[error("invalid upload: {0}")]
    Invalid(String),
    #[error("the upload's plaintext ended early or ran long: {0}")]
    Input(String),
    #[error("the upload did not finish before its deadline")]
    Deadline,
    #[error("the upload was cancelled; its shares were aborted")]
    Cancelled,
}

/// What a successful download did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadReceipt {
    pub bytes: u64,
    /// Shares found bad (each also reported to its server), as readable lines.
    pub faults: Vec<String>,
}

/// Why a download failed. No unverified byte was output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    #[error("not enough good shares: the file needs {needed} but {found} could be had ({detail})")]
    NotEnoughShares {
        needed: usize,
        found: usize,
        detail: String,
    },
    #[error("the file cannot be read: {0}")]
    Corrupt(String),
    #[error("the download did not finish before its deadline")]
    Deadline,
    #[error("the download was cancelled")]
    Cancelled,
}

/// What a client knows of the grid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusReport {
    pub introducer_connected: bool,
    pub servers: Vec<ServerStatus>,
}

/// One storage server as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    pub id: NodeId,
    pub address: String,
    /// The server's own name for itself, as announced (checked free of control characters).
    pub nickname: String,
    /// What it holds and has room for, as of its latest announcement.
    pub figures: StorageFigures,
    /// Whether the server's announcements are fresh (a newer one arrived recently).
    pub reachable: bool,
    /// How long ago its latest announcement arrived.
    pub heard_ago: Duration,
}
