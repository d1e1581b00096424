//! Cheap, deterministic hashes for the simulator's own bookkeeping: a streaming fingerprint of
//! a message's wire bytes (for the trace digest), computed without building the bytes, and a
//! fast hasher for the lookup tables on the hot path.
//!
//! Neither is cryptographic; neither may change between machines or Rust releases (which is
//! why std's `DefaultHasher`, whose algorithm is unspecified, is not used).

use cairn_actors::Message;
use std::hash::{BuildHasherDefault, Hasher};

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xC2B2_AE3D_27D4_EB4F;
const LANES: usize = 4;
const BLOCK: usize = 8 * LANES;

/// A streaming 64-bit hash of a byte string that does not depend on how the string is cut
/// into chunks: `update(a); update(b)` equals `update(a ++ b)`.
///
/// Four independent lanes over 32-byte blocks keep it near memory speed on the few-hundred-KiB
/// blocks that upload and download messages carry.
#[derive(Clone, Debug)]
pub struct Fingerprint {
    lanes: [u64; LANES],
    pending: [u8; BLOCK],
    pending_len: usize,
    total: u64,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            lanes: [K0, K1, K0 ^ K1, K0.rotate_left(17)],
            pending: [0; BLOCK],
            pending_len: 0,
            total: 0,
        }
    }
}

impl Fingerprint {
    /// A fingerprint of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.pending_len > 0 {
            let take = (BLOCK - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < BLOCK {
                return;
            }
            let block = self.pending;
            self.absorb(&block);
            self.pending_len = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            self.absorb(block);
        }
        let rest = blocks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// Adds one byte (postcard writes most fields a byte at a time).
    pub fn push(&mut self, byte: u8) {
        self.total = self.total.wrapping_add(1);
        self.pending[self.pending_len] = byte;
        self.pending_len += 1;
        if self.pending_len == BLOCK {
            let block = self.pending;
            self.absorb(&block);
            self.pending_len = 0;
        }
    }

    /// How many bytes were added.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no bytes were added.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The hash of everything added.
    pub fn finish(&self) -> u64 {
        let mut tail = [0u8; BLOCK];
        tail[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        let mut lanes = self.lanes;
        for (lane, word) in lanes.iter_mut().zip(tail.chunks_exact(8)) {
            *lane = mix(*lane, word_of(word));
        }
        let folded = lanes
            .iter()
            .fold(self.total, |acc, lane| mix(acc, *lane).rotate_left(23));
        avalanche(folded)
    }

    fn absorb(&mut self, block: &[u8]) {
        for (lane, word) in self.lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = mix(*lane, word_of(word));
        }
    }
}

/// The fingerprint of a whole byte string.
pub fn fingerprint(data: &[u8]) -> u64 {
    let mut f = Fingerprint::new();
    f.update(data);
    f.finish()
}

/// A message's encoded length and the fingerprint of its wire bytes, computed by serialising
/// it into the hash rather than into a buffer (no allocation, no copy of its payload).
pub fn message_fingerprint(msg: &Message) -> (u64, u64) {
    // Serialising into this flavor cannot fail: it never runs out of room, and every message
    // type is postcard-encodable (`Message::encode` relies on the same).
    postcard::serialize_with_flavor(msg, FingerprintFlavor(Fingerprint::new())).unwrap_or((0, 0))
}

/// Postcard output that hashes instead of storing.
struct FingerprintFlavor(Fingerprint);

impl postcard::ser_flavors::Flavor for FingerprintFlavor {
    type Output = (u64, u64);

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<(u64, u64)> {
        Ok((self.0.len(), self.0.finish()))
    }
}

fn word_of(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

fn mix(state: u64, word: u64) -> u64 {
    (state ^ word)
        .wrapping_mul(K0)
        .rotate_left(31)
        .wrapping_mul(K1)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// A fast hasher for tables keyed by node ids and timer ids. Only for lookups: nothing may
/// iterate a table built on it where order matters.
#[derive(Clone, Copy, Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.0 = mix(self.0, word_of(chunk));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = mix(self.0, u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.0 = mix(self.0, u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = mix(self.0, u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0, n);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }

    fn finish(&self) -> u64 {
        avalanche(self.0)
    }
}

/// Builds [`FastHasher`]s.
pub type FastBuild = BuildHasherDefault<FastHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_does_not_depend_on_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = fingerprint(&data);
        for cut in [0, 1, 7, 31, 32, 33, 500, 999, 1000] {
            let mut f = Fingerprint::new();
            f.update(&data[..cut]);
            for (i, byte) in data[cut..].iter().enumerate() {
                match i % 2 {
                    0 => f.update(&[*byte]),
                    _ => f.push(*byte),
                }
            }
            assert_eq!(f.finish(), whole, "cut at {cut}");
        }
        assert_ne!(fingerprint(&data[..999]), whole);
        assert_ne!(fingerprint(&[0]), fingerprint(&[0, 0]));
    }

    #[test]
    fn message_fingerprint_matches_the_wire_bytes() {
        use cairn_actors::protocol::Request;
        use cairn_actors::{RequestId, ShareNum, StorageIndex, Time};
        let msg = Message::Request {
            id: RequestId(9),
            deadline: Time(5),
            body: Request::Write {
                si: StorageIndex([1; 16]),
                share: ShareNum(3),
                offset: 77,
                data: vec![42; 1000],
                upload: cairn_actors::protocol::UploadSecret([8; 32]),
            },
        };
        let wire = msg.encode();
        assert_eq!(
            message_fingerprint(&msg),
            (wire.len() as u64, fingerprint(&wire))
        );
    }
}
