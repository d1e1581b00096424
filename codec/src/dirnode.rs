//! Directories named by caps: the format of a vdrive directory that its servers can store
//! and check but neither read nor forge (`docs/dirnode.md` is the specification).
//!
//! A directory is named by a write cap, from which a read cap derives one way, and from that
//! a verify cap:
//!
//! ```text
//! URI:CAIRN-DIR:<write key>:<fingerprint>       list, read, change
//! URI:CAIRN-DIR-RO:<read key>:<fingerprint>     list, read
//! URI:CAIRN-DIR-V:<storage index>:<fingerprint> check integrity (a server, a checker)
//! ```
//!
//! The write key seeds an Ed25519 key pair; the fingerprint is the hash of its verifying
//! key, so every cap pins the one key whose signatures count. A directory's content is a
//! [`Record`]: a version number, the entries encrypted under a key from the read key and a
//! fresh IV, and a signature over the storage index, the version, the IV and the hash of the
//! ciphertext. Inside, each child's write cap (if the directory holds one) is encrypted once
//! more, under a key from the directory's write key, so a read-cap holder learns only the
//! read caps of children. The server sees sizes and access patterns, nothing else.
//!
//! Pure: the caller brings the randomness (a new directory's write key, each record's IVs).

use crate::base32;
use crate::cap::{abbreviate, StorageIndex};
use crate::crypt::Cryptor;
use crate::hash::{tagged_hash, tagged_pair_hash, Hash};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The most entries one directory holds.
pub const MAX_ENTRIES: usize = 4096;
/// The longest name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// The longest child cap, in bytes.
pub const MAX_CHILD_CAP_LEN: usize = 512;
/// The largest encoded record: it travels in one message.
pub const MAX_RECORD_LEN: usize = 2 << 20;

/// The tags that separate the uses of the hash in directories (cairn's own: Tahoe's
/// dirnodes are a different format).
pub mod tags {
    pub const SIGNING_KEY: &[u8] = b"cairn_dirnode_signing_key_v1";
    pub const FINGERPRINT: &[u8] = b"cairn_dirnode_verifying_key_fingerprint_v1";
    pub const READ_KEY: &[u8] = b"cairn_dirnode_write_key_to_read_key_v1";
    pub const STORAGE_INDEX: &[u8] = b"cairn_dirnode_read_key_to_storage_index_v1";
    pub const WRITE_ENABLER_MASTER: &[u8] = b"cairn_dirnode_write_enabler_master_v1";
    pub const WRITE_ENABLER: &[u8] = b"cairn_dirnode_write_enabler_v1";
    pub const DATA_KEY: &[u8] = b"cairn_dirnode_data_key_v1";
    pub const CHILD_KEY: &[u8] = b"cairn_dirnode_child_write_cap_key_v1";
    pub const ENABLER_CHECK: &[u8] = b"cairn_dirnode_write_enabler_check_v1";
    /// The domain of the signed bytes of a record.
    pub const RECORD: &str = "cairn dirnode record v1";
}

/// Why a directory cap or record is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    #[error("malformed directory cap {cap:?}: {reason}")]
    MalformedCap { cap: String, reason: String },
    #[error("malformed directory record: {0}")]
    Malformed(String),
    /// The record is signed by another key, or for another directory, or not at all: a
    /// server (or someone) forged or spliced it.
    #[error("the directory record is not signed by this directory's key: {0}")]
    Forged(String),
    /// What a writer asked to store is not a valid directory.
    #[error("invalid directory: {0}")]
    Invalid(String),
}

/// A directory's write cap: its write key, and the fingerprint of its verifying key.
#[derive(Clone, PartialEq, Eq)]
pub struct DirWriteCap {
    pub write_key: [u8; 16],
    pub fingerprint: Hash,
}

/// A directory's read cap.
#[derive(Clone, PartialEq, Eq)]
pub struct DirReadCap {
    pub read_key: [u8; 16],
    pub fingerprint: Hash,
}

/// A directory's verify cap: where its record is stored, and whose signature it needs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirVerifyCap {
    pub storage_index: StorageIndex,
    pub fingerprint: Hash,
}

fn first16(h: Hash) -> [u8; 16] {
    h[..16].try_into().expect("16 of 32 bytes")
}

impl DirWriteCap {
    /// The cap of the directory whose write key is `write_key` (16 random bytes, for a new
    /// directory).
    pub fn from_write_key(write_key: [u8; 16]) -> Self {
        let verifying = signing_key(&write_key).verifying_key();
        DirWriteCap {
            write_key,
            fingerprint: fingerprint(&verifying),
        }
    }

    pub fn read_cap(&self) -> DirReadCap {
        DirReadCap {
            read_key: first16(tagged_hash(tags::READ_KEY, &self.write_key)),
            fingerprint: self.fingerprint,
        }
    }

    pub fn verify_cap(&self) -> DirVerifyCap {
        self.read_cap().verify_cap()
    }

    /// What a write of this directory shows `server` (its node id) to be let in: derived
    /// from the write key and the server's id, so one server cannot replay it to another.
    pub fn write_enabler(&self, server: &[u8; 32]) -> Hash {
        let master = tagged_hash(tags::WRITE_ENABLER_MASTER, &self.write_key);
        tagged_pair_hash(tags::WRITE_ENABLER, &master, server)
    }

    fn signing_key(&self) -> SigningKey {
        signing_key(&self.write_key)
    }

    fn child_key(&self, iv: &[u8; 16]) -> [u8; 16] {
        first16(tagged_pair_hash(tags::CHILD_KEY, &self.write_key, iv))
    }
}

impl DirReadCap {
    pub fn verify_cap(&self) -> DirVerifyCap {
        DirVerifyCap {
            storage_index: StorageIndex(first16(tagged_hash(tags::STORAGE_INDEX, &self.read_key))),
            fingerprint: self.fingerprint,
        }
    }

    fn data_key(&self, iv: &[u8; 16]) -> [u8; 16] {
        first16(tagged_pair_hash(tags::DATA_KEY, &self.read_key, iv))
    }
}

fn signing_key(write_key: &[u8; 16]) -> SigningKey {
    SigningKey::from_bytes(&tagged_hash(tags::SIGNING_KEY, write_key))
}

fn fingerprint(key: &VerifyingKey) -> Hash {
    fingerprint_of(key.as_bytes())
}

/// The fingerprint of an Ed25519 verifying key: what a server pins when a directory is
/// created (from its first record's key).
pub fn fingerprint_of(public_key: &[u8; 32]) -> Hash {
    tagged_hash(tags::FINGERPRINT, public_key)
}

/// What a server keeps of a directory's write enabler: enough to check one, not to show one
/// (a copy of the server's files does not let anyone write).
pub fn enabler_check(write_enabler: &Hash) -> Hash {
    tagged_hash(tags::ENABLER_CHECK, write_enabler)
}

impl fmt::Display for DirWriteCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, fp) = (
            base32::encode(&self.write_key),
            base32::encode(&self.fingerprint),
        );
        write!(f, "URI:CAIRN-DIR:{key}:{fp}")
    }
}

impl fmt::Display for DirReadCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, fp) = (
            base32::encode(&self.read_key),
            base32::encode(&self.fingerprint),
        );
        write!(f, "URI:CAIRN-DIR-RO:{key}:{fp}")
    }
}

impl fmt::Display for DirVerifyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (si, fp) = (
            base32::encode(&self.storage_index.0),
            base32::encode(&self.fingerprint),
        );
        write!(f, "URI:CAIRN-DIR-V:{si}:{fp}")
    }
}

// Caps are secrets (but for the verify cap): never in logs.
impl fmt::Debug for DirWriteCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirWriteCap({:?})", self.verify_cap().storage_index)
    }
}

impl fmt::Debug for DirReadCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirReadCap({:?})", self.verify_cap().storage_index)
    }
}

impl fmt::Debug for DirVerifyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirVerifyCap({:?})", self.storage_index)
    }
}

/// A directory cap of any of the three kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirCap {
    Write(DirWriteCap),
    Read(DirReadCap),
    Verify(DirVerifyCap),
}

impl DirCap {
    /// Parses `text` if it is a directory cap; `Ok(None)` if it is no directory cap at all.
    pub fn parse(text: &str) -> Result<Option<DirCap>, DirError> {
        let bad = |reason: &str| DirError::MalformedCap {
            cap: abbreviate(text),
            reason: reason.to_owned(),
        };
        let (kind, rest) = if let Some(rest) = text.strip_prefix("URI:CAIRN-DIR:") {
            ("write", rest)
        } else if let Some(rest) = text.strip_prefix("URI:CAIRN-DIR-RO:") {
            ("read", rest)
        } else if let Some(rest) = text.strip_prefix("URI:CAIRN-DIR-V:") {
            ("verify", rest)
        } else {
            return Ok(None);
        };
        let Some((first, fp)) = rest.split_once(':') else {
            return Err(bad("expected two fields separated by `:` after the prefix"));
        };
        let first = base32::decode(first)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| bad("the key / storage index is not 16 bytes of base32"))?;
        let fingerprint = base32::decode(fp)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("the fingerprint is not 32 bytes of base32"))?;
        Ok(Some(match kind {
            "write" => {
                let cap = DirWriteCap::from_write_key(first);
                if cap.fingerprint != fingerprint {
                    return Err(bad(
                        "the fingerprint is not that of the write key's signing key",
                    ));
                }
                DirCap::Write(cap)
            }
            "read" => DirCap::Read(DirReadCap {
                read_key: first,
                fingerprint,
            }),
            _ => DirCap::Verify(DirVerifyCap {
                storage_index: StorageIndex(first),
                fingerprint,
            }),
        }))
    }

    /// The verify cap of the same directory.
    pub fn verify_cap(&self) -> DirVerifyCap {
        match self {
            DirCap::Write(c) => c.verify_cap(),
            DirCap::Read(c) => c.verify_cap(),
            DirCap::Verify(c) => *c,
        }
    }
}

impl fmt::Display for DirCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirCap::Write(c) => c.fmt(f),
            DirCap::Read(c) => c.fmt(f),
            DirCap::Verify(c) => c.fmt(f),
        }
    }
}

/// What a directory entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildKind {
    File,
    Dir,
}

/// One entry of a directory, in the clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: ChildKind,
    /// The child's read cap (a file's cap; a directory's read cap).
    pub read_cap: String,
    /// The child's write cap, if the directory holds one (and the reader may see it).
    pub write_cap: Option<String>,
    /// A file's size in bytes.
    pub size: Option<u64>,
    /// When the file was last modified, in Unix seconds (as its uploader said).
    pub mtime: Option<u64>,
}

/// An entry as the record holds it: the child's write cap encrypted.
#[derive(Serialize, Deserialize)]
struct SealedEntry {
    name: String,
    kind: ChildKind,
    read_cap: String,
    /// The IV and ciphertext of the child's write cap.
    write_cap: Option<([u8; 16], Vec<u8>)>,
    size: Option<u64>,
    mtime: Option<u64>,
}

/// A directory's content as its servers store it: see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Grows with every change; a write is a compare-and-swap on it.
    pub version: u64,
    pub iv: [u8; 16],
    /// The Ed25519 verifying key whose fingerprint the caps hold.
    pub public_key: [u8; 32],
    /// The entries, encrypted.
    pub ciphertext: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The bytes a record's signature covers.
#[derive(Serialize)]
struct Signed<'a> {
    domain: &'static str,
    storage_index: StorageIndex,
    version: u64,
    iv: &'a [u8; 16],
    public_key: &'a [u8; 32],
    ciphertext_hash: [u8; 32],
}

/// A source of fresh IVs (random bytes: the caller's, as the codec has no randomness).
pub trait Ivs {
    fn next_iv(&mut self) -> [u8; 16];
}

impl<F: FnMut() -> [u8; 16]> Ivs for F {
    fn next_iv(&mut self) -> [u8; 16] {
        self()
    }
}

impl Record {
    /// Seals `entries` as version `version` of the directory `cap` names, with fresh IVs
    /// from `ivs`. Entries are checked (names unique, non-empty, without `/` or control
    /// characters, bounded; caps bounded) and stored sorted by name.
    pub fn seal(
        cap: &DirWriteCap,
        version: u64,
        entries: &[Entry],
        ivs: &mut impl Ivs,
    ) -> Result<Record, DirError> {
        if entries.len() > MAX_ENTRIES {
            return Err(DirError::Invalid(format!(
                "{} entries: a directory holds at most {MAX_ENTRIES}",
                entries.len()
            )));
        }
        let mut sorted: Vec<&Entry> = entries.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let lengths = sorted.iter().map(|e| {
            let write = e.write_cap.as_ref().map(String::len);
            (e.name.as_str(), e.read_cap.len(), write)
        });
        check_entries(lengths).map_err(DirError::Invalid)?;
        let mut sealed = Vec::with_capacity(sorted.len());
        for e in sorted {
            let write_cap = e.write_cap.as_ref().map(|w| {
                let iv = ivs.next_iv();
                let mut bytes = w.as_bytes().to_vec();
                Cryptor::new(&cap.child_key(&iv)).apply_at(0, &mut bytes);
                (iv, bytes)
            });
            sealed.push(SealedEntry {
                name: e.name.clone(),
                kind: e.kind,
                read_cap: e.read_cap.clone(),
                write_cap,
                size: e.size,
                mtime: e.mtime,
            });
        }
        let mut ciphertext = postcard::to_stdvec(&sealed)
            .map_err(|e| DirError::Invalid(format!("cannot encode the entries: {e}")))?;
        let iv = ivs.next_iv();
        let read = cap.read_cap();
        Cryptor::new(&read.data_key(&iv)).apply_at(0, &mut ciphertext);
        let key = cap.signing_key();
        let mut record = Record {
            version,
            iv,
            public_key: key.verifying_key().to_bytes(),
            ciphertext,
            signature: Vec::new(),
        };
        let signed = record.signed_bytes(read.verify_cap().storage_index);
        record.signature = key.sign(&signed).to_bytes().to_vec();
        if record.encoded_len() > MAX_RECORD_LEN {
            return Err(DirError::Invalid(format!(
                "the directory's record would be over {MAX_RECORD_LEN} bytes: fewer or \
                 shorter entries"
            )));
        }
        Ok(record)
    }

    /// Whether this is a record of the directory `cap` names, signed by its key: what a
    /// server or a checker can know. Reveals nothing of the entries.
    pub fn check(&self, cap: &DirVerifyCap) -> Result<(), DirError> {
        let key = VerifyingKey::from_bytes(&self.public_key)
            .map_err(|_| DirError::Forged("its key is not an Ed25519 key".into()))?;
        if fingerprint(&key) != cap.fingerprint {
            return Err(DirError::Forged(
                "its key is not the one the cap names".into(),
            ));
        }
        let signature = Signature::from_slice(&self.signature)
            .map_err(|_| DirError::Forged("its signature is not 64 bytes".into()))?;
        key.verify(&self.signed_bytes(cap.storage_index), &signature)
            .map_err(|_| DirError::Forged("its signature does not verify".into()))
    }

    /// The entries, checked and decrypted, without any child's write cap.
    pub fn open(&self, cap: &DirReadCap) -> Result<Vec<Entry>, DirError> {
        let entries = self.unseal(cap)?.into_iter().map(|e| Entry {
            name: e.name,
            kind: e.kind,
            read_cap: e.read_cap,
            write_cap: None,
            size: e.size,
            mtime: e.mtime,
        });
        Ok(entries.collect())
    }

    /// The entries, checked and decrypted, with the children's write caps.
    pub fn open_writable(&self, cap: &DirWriteCap) -> Result<Vec<Entry>, DirError> {
        let mut entries = Vec::new();
        for e in self.unseal(&cap.read_cap())? {
            let write_cap = match e.write_cap {
                Some((iv, mut bytes)) => {
                    Cryptor::new(&cap.child_key(&iv)).apply_at(0, &mut bytes);
                    let text = String::from_utf8(bytes).map_err(|_| {
                        DirError::Malformed(format!("the write cap of {:?} is not text", e.name))
                    })?;
                    Some(text)
                }
                None => None,
            };
            entries.push(Entry {
                name: e.name,
                kind: e.kind,
                read_cap: e.read_cap,
                write_cap,
                size: e.size,
                mtime: e.mtime,
            });
        }
        Ok(entries)
    }

    /// The sealed entries, once the record is checked against `cap` and decrypted.
    fn unseal(&self, cap: &DirReadCap) -> Result<Vec<SealedEntry>, DirError> {
        self.check(&cap.verify_cap())?;
        let mut plain = self.ciphertext.clone();
        Cryptor::new(&cap.data_key(&self.iv)).apply_at(0, &mut plain);
        let sealed: Vec<SealedEntry> = postcard::from_bytes(&plain)
            .map_err(|e| DirError::Malformed(format!("its entries do not decode: {e}")))?;
        if sealed.len() > MAX_ENTRIES {
            return Err(DirError::Malformed(format!("{} entries", sealed.len())));
        }
        let lengths = sealed.iter().map(|e| {
            let write = e.write_cap.as_ref().map(|(_, c)| c.len());
            (e.name.as_str(), e.read_cap.len(), write)
        });
        check_entries(lengths).map_err(DirError::Malformed)?;
        Ok(sealed)
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("serialising to memory cannot fail")
    }

    /// Parses the wire form, refusing anything over [`MAX_RECORD_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<Record, DirError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(DirError::Malformed(format!(
                "{} bytes, over the {MAX_RECORD_LEN}-byte limit",
                bytes.len()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| DirError::Malformed(e.to_string()))
    }

    fn encoded_len(&self) -> usize {
        postcard::experimental::serialized_size(self).unwrap_or(usize::MAX)
    }

    fn signed_bytes(&self, storage_index: StorageIndex) -> Vec<u8> {
        let signed = Signed {
            domain: tags::RECORD,
            storage_index,
            version: self.version,
            iv: &self.iv,
            public_key: &self.public_key,
            ciphertext_hash: Sha256::digest(&self.ciphertext).into(),
        };
        postcard::to_stdvec(&signed).expect("serialising to memory cannot fail")
    }
}

/// Checks entries, sorted by name: each name valid and listed once, each cap bounded.
fn check_entries<'a>(
    entries: impl Iterator<Item = (&'a str, usize, Option<usize>)>,
) -> Result<(), String> {
    let mut previous: Option<&str> = None;
    for (name, read_cap, write_cap) in entries {
        check_name(name)?;
        if previous.is_some_and(|p| p >= name) {
            return Err(format!("{name:?} is listed twice, or out of order"));
        }
        previous = Some(name);
        if read_cap.max(write_cap.unwrap_or(0)) > MAX_CHILD_CAP_LEN {
            return Err(format!(
                "a cap of {name:?} is over {MAX_CHILD_CAP_LEN} bytes"
            ));
        }
    }
    Ok(())
}

/// A name is one path component: not empty, not `.` or `..`, no `/`, no control characters
/// (which could rewrite a terminal showing it), at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{name:?} is not a name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name {:?} is over {MAX_NAME_LEN} bytes",
            abbreviate(name)
        ));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "the name {name:?} has a `/` or a control character"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
