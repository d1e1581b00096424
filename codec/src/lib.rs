//! cairn's codec: how bytes become shares and a capability, and back, byte-compatible with
//! Tahoe-LAFS's immutable (CHK) files (`shared/spec/chk.md`).
//!
//! Pure computation: no sockets, files, clocks, threads or randomness. Inputs and outputs are
//! `Read`/`Write` streams and the [`ShareWriter`] / [`ShareSource`] traits, so the same code
//! serves the CLI, the real runtime and the simulator.
//!
//! Main types: [`Cap`] (parse and print caps), [`EncodingParams`] and [`Geometry`], the
//! streaming [`Encoder`] (with [`ConvergentKeyer`] for the key pass) and [`decode`]. Below
//! them: tagged hashes ([`hash`]), [`merkle`] trees, the [`zfec`] code, the [`Ueb`], and the
//! share [`layout`].

pub mod base32;
pub mod cap;
pub mod crypt;
pub mod decoder;
pub mod dirnode;
pub mod encoder;
pub mod hash;
pub mod layout;
pub mod merkle;
pub mod params;
pub mod reshare;
pub mod ueb;
pub mod verify;
pub mod zfec;

pub use cap::{Cap, ChkCap, Key, LitCap, StorageIndex, VerifierCap};
pub use decoder::{decode, DecodeReport, ShareCheck, ShareFault, ShareSource};
pub use encoder::{
    convergent_key, encode_stream, ConvergentKeyer, DiscardShares, EncodedFile, Encoder,
    MemoryShares, SegmentBlocks, ShareWriter,
};
pub use hash::Hash;
pub use layout::ShareLayout;
pub use params::{CapKind, EncodingParams, Geometry, DEFAULT_MAX_SEGMENT_SIZE, LIT_THRESHOLD};
pub use ueb::Ueb;

/// Everything that can go wrong in the codec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cap string could not be parsed.
    #[error("malformed cap {cap:?}: {reason}")]
    MalformedCap { cap: String, reason: String },
    /// Encoding parameters out of range.
    #[error("invalid encoding parameters: {0}")]
    InvalidParams(String),
    /// A UEB whose hash matched the cap but whose content is unusable: the uploader wrote a
    /// bad file, and no share of it can help.
    #[error("malformed URI extension block: {0}")]
    MalformedUeb(String),
    /// A share's bytes are not a valid share.
    #[error("malformed share: {0}")]
    MalformedShare(String),
    /// The cap and the UEB it pins disagree.
    #[error("cap does not match its file: {0}")]
    CapMismatch(String),
    /// The plaintext did not have the promised length.
    #[error("the input has a different length than promised: expected {expected} bytes, got {read} or more")]
    InputSizeMismatch { expected: u64, read: u64 },
    /// Reading the plaintext failed.
    #[error("reading the input failed: {0}")]
    Input(std::io::Error),
    /// Writing output (shares or plaintext) failed.
    #[error("writing the output failed: {0}")]
    Output(std::io::Error),
    /// Too few shares survived verification.
    #[error("{}", not_enough_shares(*needed, *good, faults))]
    NotEnoughShares {
        needed: usize,
        good: usize,
        faults: Vec<ShareFault>,
    },
    /// Every block verified but the decoded segment did not: the shares are consistent with
    /// each other but not with the file (a broken or malicious uploader).
    #[error("segment {segment} does not match its crypttext hash although all its blocks verified: the file was encoded inconsistently and cannot be read")]
    SegmentHashMismatch { segment: u64 },
}

fn not_enough_shares(needed: usize, good: usize, faults: &[ShareFault]) -> String {
    let mut msg =
        format!("not enough good shares: the file needs {needed} but only {good} verified");
    if faults.is_empty() {
        msg.push_str(" (no other shares were offered)");
    } else {
        msg.push_str(&format!("; {} share(s) failed:", faults.len()));
        for f in faults {
            msg.push_str(&format!("\n  {f}"));
        }
    }
    msg
}

/// The LIT cap of a small file, or `None` if it is over [`LIT_THRESHOLD`] bytes.
pub fn lit_cap(data: &[u8]) -> Option<LitCap> {
    (CapKind::for_size(data.len() as u64) == CapKind::Lit).then(|| LitCap {
        data: data.to_vec(),
    })
}
