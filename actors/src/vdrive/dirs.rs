//! The vdrive server's directories: for each storage index, the latest record a holder of
//! the directory's write cap stored ([`cairn_codec::dirnode`], `docs/dirnode.md`).
//!
//! The server checks every write and learns nothing of the entries. The first write of a
//! directory pins the fingerprint of its signing key and what checks its write enabler;
//! every later write must show that write enabler, carry a record signed by that key with a
//! higher version, and name the version it replaces (a compare-and-swap, so that two writers
//! never silently lose an update: the loser gets [`RemoteError::Conflict`] and retries on the
//! new version). Records are bounded in size, all of them together by [`Dirs::max_bytes`],
//! and those of the directories one node created by [`Dirs::max_per_creator`] (a directory's
//! later versions, by whoever writes them, count against its creator), so that no one peer
//! holding the grid's FURL can take the whole server.

use crate::ids::{NodeId, StorageIndex};
use crate::protocol::RemoteError;
use cairn_codec::dirnode::{enabler_check, fingerprint_of, DirVerifyCap, Record};
use cairn_codec::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most bytes of records a vdrive server keeps unless configured otherwise.
pub const DEFAULT_MAX_DIR_BYTES: u64 = 256 << 20;
/// The most bytes of the records of directories one node created, unless configured
/// otherwise.
pub const DEFAULT_MAX_DIR_BYTES_PER_CREATOR: u64 = 32 << 20;

/// A directory as the journal holds it: a write that was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredDir {
    pub si: StorageIndex,
    /// The node that created the directory: its bytes count against that node.
    pub creator: NodeId,
    pub fingerprint: Hash,
    pub enabler_check: Hash,
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// A write that passed its checks, ready to be journaled and applied.
pub(super) struct AcceptedWrite(pub StoredDir);

struct Dir {
    creator: NodeId,
    fingerprint: Hash,
    enabler_check: Hash,
    version: u64,
    record: Vec<u8>,
}

/// The directories a server holds.
pub(super) struct Dirs {
    dirs: BTreeMap<StorageIndex, Dir>,
    /// Bytes of the records held.
    bytes: u64,
    /// Bytes of the records held, by the node that created their directories.
    by_creator: BTreeMap<NodeId, u64>,
    pub max_bytes: u64,
    pub max_per_creator: u64,
}

impl Dirs {
    pub fn new(max_bytes: u64) -> Self {
        Dirs {
            dirs: BTreeMap::new(),
            bytes: 0,
            by_creator: BTreeMap::new(),
            max_bytes,
            max_per_creator: DEFAULT_MAX_DIR_BYTES_PER_CREATOR,
        }
    }

    pub fn clear(&mut self) {
        self.dirs.clear();
        self.bytes = 0;
        self.by_creator.clear();
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// The record stored at `si`, encoded.
    pub fn read(&self, si: StorageIndex) -> Option<Vec<u8>> {
        self.dirs.get(&si).map(|d| d.record.clone())
    }

    /// Checks a write without making it.
    pub fn check(
        &self,
        writer: NodeId,
        si: StorageIndex,
        write_enabler: &Hash,
        expected: Option<u64>,
        record: Vec<u8>,
    ) -> Result<AcceptedWrite, RemoteError> {
        let decoded = Record::decode(&record)
            .map_err(|e| RemoteError::Malformed(format!("not a directory record: {e}")))?;
        let check = enabler_check(write_enabler);
        let current = self.dirs.get(&si);
        let fingerprint = match current {
            Some(dir) => {
                if dir.enabler_check != check {
                    return Err(RemoteError::Forbidden(
                        "the write enabler is not this directory's".into(),
                    ));
                }
                if expected != Some(dir.version) {
                    return Err(RemoteError::Conflict {
                        current: Some(dir.version),
                    });
                }
                if decoded.version <= dir.version {
                    return Err(RemoteError::Malformed(format!(
                        "version {} does not follow version {}",
                        decoded.version, dir.version
                    )));
                }
                dir.fingerprint
            }
            None if expected.is_some() => return Err(RemoteError::Conflict { current: None }),
            None => fingerprint_of(&decoded.public_key),
        };
        let cap = DirVerifyCap {
            storage_index: si,
            fingerprint,
        };
        decoded
            .check(&cap)
            .map_err(|e| RemoteError::Forbidden(e.to_string()))?;
        let freed = current.map_or(0, |d| d.record.len() as u64);
        let total = self.bytes - freed + record.len() as u64;
        if total > self.max_bytes {
            return Err(RemoteError::Full {
                free: self.max_bytes.saturating_sub(self.bytes - freed),
            });
        }
        let creator = current.map_or(writer, |d| d.creator);
        let charged = (self.by_creator.get(&creator).copied().unwrap_or(0)).saturating_sub(freed);
        if charged + record.len() as u64 > self.max_per_creator {
            return Err(RemoteError::Limit(format!(
                "the directories created by node {creator:?} hold {charged} bytes here, and \
                 this server keeps at most {} for one node's",
                self.max_per_creator
            )));
        }
        Ok(AcceptedWrite(StoredDir {
            si,
            creator,
            fingerprint,
            enabler_check: check,
            record,
        }))
    }

    /// Applies a write (accepted now, or replayed from the journal).
    pub fn apply(&mut self, stored: StoredDir) -> Result<(), String> {
        let version = Record::decode(&stored.record)
            .map_err(|e| e.to_string())?
            .version;
        let size = stored.record.len() as u64;
        let dir = Dir {
            creator: stored.creator,
            fingerprint: stored.fingerprint,
            enabler_check: stored.enabler_check,
            version,
            record: stored.record,
        };
        if let Some(old) = self.dirs.insert(stored.si, dir) {
            self.bytes -= old.record.len() as u64;
            if let Some(charged) = self.by_creator.get_mut(&old.creator) {
                *charged = charged.saturating_sub(old.record.len() as u64);
            }
        }
        self.bytes += size;
        *self.by_creator.entry(stored.creator).or_default() += size;
        Ok(())
    }

    /// Every directory as the journal would hold it after a compaction.
    pub fn stored(&self) -> impl Iterator<Item = StoredDir> + '_ {
        self.dirs.iter().map(|(&si, d)| StoredDir {
            si,
            creator: d.creator,
            fingerprint: d.fingerprint,
            enabler_check: d.enabler_check,
            record: d.record.clone(),
        })
    }
}
