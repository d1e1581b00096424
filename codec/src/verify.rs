//! The checks a reader makes on a share, as pure functions over bytes it has fetched, so that
//! the same code serves [`crate::decode`] (shares read synchronously) and the network
//! downloader actor (shares fetched by messages, in any order, from many servers).
//!
//! A share is checked in three steps, each needing only what the previous one trusted:
//! its header ([`check_header`]), then its UEB against the cap ([`check_ueb`]: this also pins
//! the file's geometry, and so every other offset and size), then its hash trees and share
//! hash chain ([`check_trees`]). After that each block is checked as it arrives
//! ([`ShareHashes::check_block`]), and [`SegmentDecoder`] turns `k` good blocks into
//! plaintext that matched the crypttext hash tree.

use crate::cap::{ChkCap, VerifierCap};
use crate::crypt::Cryptor;
use crate::hash::{tagged_hash, tags, Hash, TaggedHasher};
use crate::layout::{self, ShareLayout, MAX_HEADER_SIZE};
use crate::merkle::{self, HashTree};
use crate::params::Geometry;
use crate::ueb::{Ueb, MAX_UEB_SIZE};
use crate::zfec::{DecodingMatrix, Zfec};
use crate::{Error, ShareCheck};

/// Bytes decoded, hashed and decrypted at a time: small enough to stay in cache between the
/// three passes; a multiple of SHA-256's 64-byte block.
const STRIPE: usize = 16 * 1024;

/// Why a share was set aside: the check it failed, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub check: ShareCheck,
    pub detail: String,
}

impl Rejection {
    pub fn new(check: ShareCheck, detail: impl Into<String>) -> Self {
        Rejection {
            check,
            detail: detail.into(),
        }
    }
}

/// The outcome of a failed check: this share is bad (another may do), or the file itself
/// cannot be read (no share would help).
#[derive(Debug)]
pub enum ShareError {
    Rejected(Rejection),
    Fatal(Error),
}

impl From<Rejection> for ShareError {
    fn from(r: Rejection) -> Self {
        ShareError::Rejected(r)
    }
}

/// How many bytes to fetch from a share's start for [`check_header`].
pub const HEADER_FETCH: u64 = MAX_HEADER_SIZE;

/// Parses a share's header (its first [`HEADER_FETCH`] bytes, or fewer if it is that
/// short), for share number `share` of the file `cap` names. The share checks need only a
/// verify cap: whoever can read a file can check it, and so can a checker or repairer that
/// cannot read it.
pub fn check_header(
    cap: &VerifierCap,
    share: usize,
    bytes: &[u8],
) -> Result<ShareLayout, Rejection> {
    if share >= cap.n {
        return Err(Rejection::new(
            ShareCheck::Header,
            format!("share number {share} is not below N={}", cap.n),
        ));
    }
    ShareLayout::parse(bytes).map_err(|e| Rejection::new(ShareCheck::Header, e.to_string()))
}

/// Where the UEB (with its length prefix) is: offset and the most bytes to fetch. A share
/// ends with its UEB, so a fetch of this length comes back cut short at the share's end.
pub fn ueb_region(layout: &ShareLayout) -> (u64, u64) {
    (layout.ueb, layout.ueb_length_size() + MAX_UEB_SIZE)
}

/// Checks the UEB found at [`ueb_region`] against the cap, and the header against the file
/// the UEB describes. `region` may run past the UEB; it may not stop before its end.
///
/// Returns the UEB and its exact bytes (what a rebuilt share must hold: a UEB written by
/// another implementation may have entries [`Ueb::to_bytes`] would not reproduce).
pub fn check_ueb<'a>(
    cap: &VerifierCap,
    layout: &ShareLayout,
    region: &'a [u8],
) -> Result<(Ueb, &'a [u8]), ShareError> {
    let prefix = layout.ueb_length_size() as usize;
    let Some(len_bytes) = region.get(..prefix) else {
        return Err(
            Rejection::new(ShareCheck::Read, "the share ends before its UEB length").into(),
        );
    };
    let len = len_bytes
        .iter()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    if len > MAX_UEB_SIZE {
        return Err(Rejection::new(ShareCheck::UebHash, format!("claims a {len}-byte UEB")).into());
    }
    let Some(bytes) = usize::try_from(len)
        .ok()
        .and_then(|len| region.get(prefix..prefix.checked_add(len)?))
    else {
        return Err(Rejection::new(ShareCheck::Read, "the share ends inside its UEB").into());
    };
    if Ueb::hash(bytes) != cap.ueb_hash {
        return Err(Rejection::new(
            ShareCheck::UebHash,
            "the UEB's hash is not the one in the cap",
        )
        .into());
    }
    // From here on the UEB is the one the cap pins: if it is unusable, so is the file.
    let ueb = Ueb::parse(bytes).map_err(ShareError::Fatal)?;
    let g = ueb.geometry;
    if (g.k, g.n, g.size) != (cap.k, cap.n, cap.size) {
        return Err(ShareError::Fatal(Error::CapMismatch(format!(
            "the cap says k={} N={} size={} but its UEB says k={} N={} size={}",
            cap.k, cap.n, cap.size, g.k, g.n, g.size
        ))));
    }
    layout
        .check_matches(&g)
        .map_err(|e| Rejection::new(ShareCheck::Header, e.to_string()))?;
    Ok((ueb, bytes))
}

/// Where the hash trees and share hash chain are: offset and length (exact, once the header
/// has passed [`check_ueb`]).
pub fn trees_region(layout: &ShareLayout) -> (u64, u64) {
    (
        layout.crypttext_hash_tree,
        layout.ueb - layout.crypttext_hash_tree,
    )
}

/// Runs every check a reader makes on a whole share held in memory: header, UEB, hash trees
/// and chain, every block. For tests and tools that have a share's bytes at hand (a reader
/// over the network checks the same regions as they arrive).
pub fn check_whole_share(cap: &VerifierCap, share: usize, bytes: &[u8]) -> Result<(), ShareError> {
    let region = |(offset, len): (u64, u64)| {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = usize::try_from(offset.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        &bytes[start..end]
    };
    let layout = check_header(cap, share, bytes)?;
    let (ueb, _) = check_ueb(cap, &layout, region(ueb_region(&layout)))?;
    let hashes = check_trees(&ueb, share, &layout, region(trees_region(&layout)))?;
    for segment in 0..ueb.geometry.num_segments {
        let (offset, len) = hashes.block_region(&ueb.geometry, segment);
        let block = region((offset, len));
        if block.len() as u64 != len {
            let why = format!("the share ends inside block {segment}");
            return Err(Rejection::new(ShareCheck::Read, why).into());
        }
        hashes.check_block(segment, block)?;
    }
    Ok(())
}

/// A share's verified hashes: what its blocks, and the file's segments, must match.
#[derive(Clone, Debug)]
pub struct ShareHashes {
    pub share: usize,
    pub layout: ShareLayout,
    block_tree: HashTree,
    crypttext_tree: HashTree,
}

/// Checks the bytes at [`trees_region`]: the crypttext hash tree against the UEB, the block
/// hash tree node by node, and the share hash chain from the block tree's root up to the
/// UEB's `share_root_hash` — which proves this is share number `share`.
pub fn check_trees(
    ueb: &Ueb,
    share: usize,
    layout: &ShareLayout,
    region: &[u8],
) -> Result<ShareHashes, Rejection> {
    let (start, len) = trees_region(layout);
    if region.len() as u64 != len {
        return Err(Rejection::new(
            ShareCheck::Read,
            format!("expected {len} bytes of hash trees, got {}", region.len()),
        ));
    }
    let at = |offset: u64| (offset - start) as usize;
    let tree_size = layout.tree_size() as usize;
    let crypttext_nodes = hashes(&region[..tree_size]);
    let crypttext_tree =
        HashTree::verified_from_nodes(crypttext_nodes, &ueb.crypttext_root_hash)
            .map_err(|e| Rejection::new(ShareCheck::CrypttextHashTree, e.to_string()))?;
    let block_nodes = hashes(&region[at(layout.block_hashes)..at(layout.block_hashes) + tree_size]);
    let block_tree = HashTree::from_nodes(block_nodes)
        .map_err(|e| Rejection::new(ShareCheck::BlockHashTree, e.to_string()))?;
    let chain = layout::decode_chain(&region[at(layout.share_hashes)..]);
    let n = ueb.geometry.n;
    merkle::verify_chain(
        merkle::node_count(n),
        share,
        &block_tree.root(),
        &chain,
        &ueb.share_root_hash,
    )
    .map_err(|e| Rejection::new(ShareCheck::ShareHashChain, e.to_string()))?;
    Ok(ShareHashes {
        share,
        layout: *layout,
        block_tree,
        crypttext_tree,
    })
}

impl ShareHashes {
    /// Where block `segment` is in the share, and how long it is.
    pub fn block_region(&self, g: &Geometry, segment: u64) -> (u64, u64) {
        (self.layout.block_offset(segment), g.block_len(segment))
    }

    /// Checks block `segment` against this share's block hash tree.
    pub fn check_block(&self, segment: u64, block: &[u8]) -> Result<(), Rejection> {
        let leaf = self.block_tree.leaf(segment as usize);
        if leaf != Some(&tagged_hash(tags::BLOCK, block)) {
            return Err(Rejection::new(
                ShareCheck::Block { segment },
                "the block's hash is not in the share's block hash tree",
            ));
        }
        Ok(())
    }

    /// The file's crypttext hash tree (the same, verified, in every good share).
    pub fn crypttext_tree(&self) -> &HashTree {
        &self.crypttext_tree
    }
}

/// Turns `k` verified blocks of a segment into its plaintext.
pub struct SegmentDecoder {
    zfec: Zfec,
    geometry: Geometry,
    crypttext_tree: HashTree,
    cryptor: Cryptor,
    matrix: Option<DecodingMatrix>,
}

impl SegmentDecoder {
    /// A decoder for the file `cap` names, whose UEB gave `geometry` and whose (verified)
    /// crypttext hash tree is `crypttext_tree`.
    pub fn new(cap: &ChkCap, geometry: Geometry, crypttext_tree: HashTree) -> Result<Self, Error> {
        let zfec =
            Zfec::new(geometry.k, geometry.n).map_err(|e| Error::InvalidParams(e.to_string()))?;
        Ok(SegmentDecoder {
            zfec,
            geometry,
            crypttext_tree,
            cryptor: Cryptor::new(&cap.key.0),
            matrix: None,
        })
    }

    /// The file's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Decodes segment `s` from `k` verified blocks of distinct shares (`(share number,
    /// block)`), checks its crypttext against the crypttext hash tree and decrypts it into
    /// `out` (resized to the segment's length). On an error `out` holds nothing usable.
    pub fn decode(
        &mut self,
        s: u64,
        blocks: &[(usize, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let g = self.geometry;
        let nums: Vec<usize> = blocks.iter().map(|(n, _)| *n).collect();
        let matrix = self
            .zfec
            .cached_decoding_matrix(&mut self.matrix, &nums)
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        let blocks: Vec<&[u8]> = blocks.iter().map(|(_, b)| *b).collect();
        let block_len = g.block_len(s) as usize;
        if blocks.iter().any(|b| b.len() != block_len) {
            return Err(Error::InvalidParams(format!(
                "segment {s} needs blocks of {block_len} bytes"
            )));
        }
        let (len, start) = (g.segment_len(s) as usize, s * g.segment_size);
        out.resize(block_len * g.k, 0);
        // Stripe by stripe, so each stripe is decoded, hashed and decrypted while in cache.
        let mut hasher = TaggedHasher::new(tags::CRYPTTEXT_SEGMENT);
        for piece in 0..g.k {
            for at in (0..block_len).step_by(STRIPE) {
                let range = at..(at + STRIPE).min(block_len);
                let (from, to) = (
                    piece * block_len + range.start,
                    piece * block_len + range.end,
                );
                self.zfec.decode_piece_range(
                    matrix,
                    &nums,
                    &blocks,
                    piece,
                    range,
                    &mut out[from..to],
                );
                // Padding (past `len`) is decoded but neither hashed nor decrypted.
                if from < len {
                    let crypttext = &mut out[from..to.min(len)];
                    hasher.update(crypttext);
                    self.cryptor.apply_at(start + from as u64, crypttext);
                }
            }
        }
        out.truncate(len);
        if Some(&hasher.finish()) != self.crypttext_tree.leaf(s as usize) {
            out.clear();
            return Err(Error::SegmentHashMismatch { segment: s });
        }
        Ok(())
    }
}

fn hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect()
}
