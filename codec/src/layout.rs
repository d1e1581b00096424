//! Where everything sits in one share, as a Tahoe-LAFS storage server stores it: a header
//! (v1: nine u32; v2: a u32 version then eight u64), the blocks, three hash-tree regions,
//! the share hash chain and the UEB.

use crate::merkle;
use crate::params::Geometry;
use crate::Error;

const HASH: u64 = 32;
/// The largest offset a header may name (2^48: far past the largest share, a million
/// segments of 16 MiB, and far below where offset arithmetic could overflow).
const MAX_SHARE_OFFSET: u64 = 1 << 48;

/// A share-hash-chain entry: a u16 node index and a hash.
const CHAIN_ENTRY: u64 = 2 + HASH;
/// The largest header (v2).
pub const MAX_HEADER_SIZE: u64 = 0x44;

/// The byte offsets of one share's regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareLayout {
    pub version: u32,
    pub block_size: u64,
    pub data_size: u64,
    pub data: u64,
    pub plaintext_hash_tree: u64,
    pub crypttext_hash_tree: u64,
    pub block_hashes: u64,
    pub share_hashes: u64,
    pub ueb: u64,
}

impl ShareLayout {
    /// The layout Tahoe-LAFS uses for a share of a file of this geometry: v1 unless a field
    /// would not fit in 32 bits.
    pub fn for_geometry(g: &Geometry) -> Self {
        let v1 = Self::with_version(g, 1);
        let fits = |x: u64| x < 1 << 32;
        if fits(v1.block_size) && fits(v1.data_size) && fits(v1.ueb) {
            v1
        } else {
            Self::with_version(g, 2)
        }
    }

    fn with_version(g: &Geometry, version: u32) -> Self {
        let tree = merkle::node_count(g.num_segments as usize) as u64 * HASH;
        let data = if version == 1 { 0x24 } else { 0x44 };
        let data_size = g.share_data_size();
        let plaintext_hash_tree = data + data_size;
        let crypttext_hash_tree = plaintext_hash_tree + tree;
        let block_hashes = crypttext_hash_tree + tree;
        let share_hashes = block_hashes + tree;
        let ueb = share_hashes + chain_len(g.n) as u64 * CHAIN_ENTRY;
        ShareLayout {
            version,
            block_size: g.block_size(),
            data_size,
            data,
            plaintext_hash_tree,
            crypttext_hash_tree,
            block_hashes,
            share_hashes,
            ueb,
        }
    }

    /// Bytes of the UEB-length field.
    pub fn ueb_length_size(&self) -> u64 {
        if self.version == 1 {
            4
        } else {
            8
        }
    }

    /// Bytes of the header.
    pub fn header_size(&self) -> u64 {
        self.data
    }

    /// Where block `segment` starts.
    pub fn block_offset(&self, segment: u64) -> u64 {
        self.data + segment * self.block_size
    }

    /// Bytes of each hash-tree region.
    pub fn tree_size(&self) -> u64 {
        self.crypttext_hash_tree - self.plaintext_hash_tree
    }

    /// The whole share's size once its UEB of `ueb_len` bytes is written.
    pub fn share_size(&self, ueb_len: u64) -> u64 {
        self.ueb + self.ueb_length_size() + ueb_len
    }

    /// The header's bytes.
    pub fn header(&self) -> Vec<u8> {
        let fields = [
            self.block_size,
            self.data_size,
            self.data,
            self.plaintext_hash_tree,
            self.crypttext_hash_tree,
            self.block_hashes,
            self.share_hashes,
            self.ueb,
        ];
        let mut out = self.version.to_be_bytes().to_vec();
        for f in fields {
            if self.version == 1 {
                out.extend_from_slice(&(f as u32).to_be_bytes());
            } else {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        out
    }

    /// Parses a header from the first bytes of a share (at least its header, at most
    /// [`MAX_HEADER_SIZE`] are looked at). Checks only that the offsets are in order; whether
    /// they fit the file is for [`ShareLayout::check_matches`] once the UEB is known.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::MalformedShare(reason);
        let version = u32::from_be_bytes(
            bytes
                .get(..4)
                .ok_or_else(|| bad("shorter than a header".into()))?
                .try_into()
                .expect("4 bytes"),
        );
        let width = match version {
            1 => 4,
            2 => 8,
            v => {
                return Err(bad(format!(
                    "unknown share version {v} (this reader knows 1 and 2)"
                )))
            }
        };
        let body = bytes
            .get(4..4 + 8 * width)
            .ok_or_else(|| bad(format!("shorter than a v{version} header")))?;
        let f: Vec<u64> = body
            .chunks(width)
            .map(|c| c.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
            .collect();
        let layout = ShareLayout {
            version,
            block_size: f[0],
            data_size: f[1],
            data: f[2],
            plaintext_hash_tree: f[3],
            crypttext_hash_tree: f[4],
            block_hashes: f[5],
            share_hashes: f[6],
            ueb: f[7],
        };
        let in_order = layout.data == 4 + 8 * width as u64
            && [
                layout.data,
                layout.plaintext_hash_tree,
                layout.crypttext_hash_tree,
                layout.block_hashes,
                layout.share_hashes,
                layout.ueb,
            ]
            .windows(2)
            .all(|w| w[0] <= w[1]);
        if !in_order {
            return Err(bad(format!("header offsets are out of order: {layout:?}")));
        }
        // No share of a readable file comes near this, and below it no sum of offsets and
        // lengths a reader makes can overflow.
        if layout.ueb > MAX_SHARE_OFFSET || layout.block_size > MAX_SHARE_OFFSET {
            return Err(bad(format!(
                "header offsets are beyond any share: {layout:?}"
            )));
        }
        Ok(layout)
    }

    /// Checks that a parsed header is exactly the layout this file's geometry gives.
    pub fn check_matches(&self, g: &Geometry) -> Result<(), Error> {
        let expected = Self::with_version(g, self.version);
        if *self == expected {
            Ok(())
        } else {
            Err(Error::MalformedShare(format!(
                "header {self:?} does not fit the file (expected {expected:?})"
            )))
        }
    }
}

/// How many share-hash-chain entries every share of an `n`-share file holds.
pub fn chain_len(n: usize) -> usize {
    merkle::chain_indexes(merkle::node_count(n), 0).len()
}

/// Serialises a share hash chain: a u16 node index and the hash, for each node.
pub fn encode_chain(chain: &[(usize, crate::Hash)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chain.len() * CHAIN_ENTRY as usize);
    for (index, hash) in chain {
        out.extend_from_slice(&(*index as u16).to_be_bytes());
        out.extend_from_slice(hash);
    }
    out
}

/// Parses a share hash chain.
pub fn decode_chain(bytes: &[u8]) -> Vec<(usize, crate::Hash)> {
    bytes
        .chunks_exact(CHAIN_ENTRY as usize)
        .map(|c| {
            (
                usize::from(u16::from_be_bytes([c[0], c[1]])),
                c[2..].try_into().expect("32 bytes"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncodingParams;

    #[test]
    fn v1_header_round_trips_and_is_checked() {
        let g = Geometry::new(EncodingParams::new(3, 10, 131072).unwrap(), 1_000_000).unwrap();
        let layout = ShareLayout::for_geometry(&g);
        assert_eq!(layout.version, 1);
        assert_eq!(layout.data, 0x24);
        let header = layout.header();
        assert_eq!(header.len(), 0x24);
        let parsed = ShareLayout::parse(&header).unwrap();
        assert_eq!(parsed, layout);
        parsed.check_matches(&g).unwrap();
        let other = Geometry::new(EncodingParams::new(3, 10, 131072).unwrap(), 1_000_003).unwrap();
        assert!(parsed.check_matches(&other).is_err());
    }

    #[test]
    fn huge_files_get_v2() {
        let g = Geometry::new(EncodingParams::new(1, 2, 1 << 20).unwrap(), 5 << 30).unwrap();
        let layout = ShareLayout::for_geometry(&g);
        assert_eq!(layout.version, 2);
        assert_eq!(ShareLayout::parse(&layout.header()).unwrap(), layout);
    }

    #[test]
    fn rejects_short_unknown_and_disordered_headers() {
        assert!(ShareLayout::parse(&[0, 0, 0]).is_err());
        assert!(ShareLayout::parse(&[0, 0, 0, 3, 0, 0]).is_err());
        let g = Geometry::new(EncodingParams::default(), 5000).unwrap();
        let mut header = ShareLayout::for_geometry(&g).header();
        assert!(ShareLayout::parse(&header[..20]).is_err());
        header[20] = 0xff; // crypttext tree offset far past the block hashes
        assert!(ShareLayout::parse(&header).is_err());
    }

    #[test]
    fn offsets_past_any_share_are_refused_before_anyone_adds_to_them() {
        let g = Geometry::new(EncodingParams::default(), 5000).unwrap();
        let mut layout = ShareLayout::with_version(&g, 2);
        layout.ueb = u64::MAX - 3; // in order, and one addition from overflowing
        let error = ShareLayout::parse(&layout.header())
            .unwrap_err()
            .to_string();
        assert!(error.contains("beyond any share"), "{error}");
        layout.ueb = MAX_SHARE_OFFSET;
        assert!(ShareLayout::parse(&layout.header()).is_ok());
    }

    #[test]
    fn chain_lengths() {
        assert_eq!(chain_len(1), 1);
        assert_eq!(chain_len(10), 5);
        assert_eq!(chain_len(256), 9);
    }
}
