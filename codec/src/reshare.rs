//! Regenerating shares from other shares, for a repairer that holds only the verify cap.
//!
//! A repairer cannot decrypt: it works on crypttext. From `k` verified blocks of a segment
//! [`Regenerator`] rebuilds the segment's crypttext (zfec decoding, checked against the
//! crypttext hash tree), encodes it again into all `N` blocks and hashes each. After the last
//! segment it has every share's block hash tree, so the share hash tree too; its root must be
//! the UEB's `share_root_hash`, which proves the rebuilt shares are exactly the ones the
//! original upload made. [`RegeneratedFile::share_trailer`] then gives a share's hash trees,
//! hash chain and UEB, byte for byte what [`crate::EncodedFile::share_trailer`] wrote. The
//! share checks it relies on ([`crate::verify`]) need only a [`crate::VerifierCap`].

use crate::encoder::SegmentBlocks;
use crate::hash::{tagged_hash, tags, Hash};
use crate::layout::{self, ShareLayout};
use crate::merkle::HashTree;
use crate::params::Geometry;
use crate::ueb::Ueb;
use crate::zfec::{DecodingMatrix, Zfec};
use crate::Error;

/// Rebuilds every block of a file, one segment at a time, from `k` verified blocks each.
///
/// Memory: one segment and its `N - k` parity blocks, plus 32 bytes per block for the hash
/// trees.
pub struct Regenerator {
    zfec: Zfec,
    geometry: Geometry,
    layout: ShareLayout,
    ueb: Vec<u8>,
    share_root_hash: Hash,
    crypttext_tree: HashTree,
    next_segment: u64,
    /// `block_hashes[share][segment]`.
    block_hashes: Vec<Vec<Hash>>,
    matrix: Option<DecodingMatrix>,
    /// The current segment's crypttext, padded, as its `k` primary pieces.
    segment: Vec<u8>,
    parity: Vec<Vec<u8>>,
}

impl Regenerator {
    /// A regenerator for the file whose UEB is `ueb_bytes` (as [`crate::verify::check_ueb`] returned them,
    /// with their parse `ueb`) and whose verified crypttext hash tree is `crypttext_tree`.
    pub fn new(ueb_bytes: Vec<u8>, ueb: &Ueb, crypttext_tree: HashTree) -> Result<Self, Error> {
        let g = ueb.geometry;
        let zfec = Zfec::new(g.k, g.n).map_err(|e| Error::InvalidParams(e.to_string()))?;
        if crypttext_tree.root() != ueb.crypttext_root_hash {
            return Err(Error::CapMismatch(
                "the crypttext hash tree is not the one the UEB names".into(),
            ));
        }
        let segments = g.num_segments as usize;
        Ok(Regenerator {
            zfec,
            layout: ShareLayout::for_geometry(&g),
            ueb: ueb_bytes,
            share_root_hash: ueb.share_root_hash,
            crypttext_tree,
            next_segment: 0,
            block_hashes: vec![Vec::with_capacity(segments); g.n],
            matrix: None,
            segment: Vec::new(),
            parity: vec![Vec::new(); g.n - g.k],
            geometry: g,
        })
    }

    /// The file's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Where things go in every share of the file.
    pub fn layout(&self) -> &ShareLayout {
        &self.layout
    }

    /// The segment [`Regenerator::regenerate`] expects next.
    pub fn next_segment(&self) -> u64 {
        self.next_segment
    }

    /// Rebuilds the next segment's `N` blocks from `k` verified blocks of distinct shares
    /// (`(share number, block)`). Fails, changing nothing, if the blocks are not `k` distinct
    /// shares of the segment's block length, or if they decode to crypttext that does not
    /// match the crypttext hash tree (the file was encoded inconsistently).
    pub fn regenerate(&mut self, blocks: &[(usize, &[u8])]) -> Result<SegmentBlocks<'_>, Error> {
        let (g, s) = (self.geometry, self.next_segment);
        if s >= g.num_segments {
            return Err(Error::InvalidParams(format!(
                "the file has {} segments; all have been regenerated",
                g.num_segments
            )));
        }
        let block_len = g.block_len(s) as usize;
        if blocks.iter().any(|(_, b)| b.len() != block_len) {
            return Err(Error::InvalidParams(format!(
                "segment {s} needs blocks of {block_len} bytes"
            )));
        }
        self.decode(s, blocks)?;
        let segment_len = g.segment_len(s) as usize;
        let leaf = tagged_hash(tags::CRYPTTEXT_SEGMENT, &self.segment[..segment_len]);
        if Some(&leaf) != self.crypttext_tree.leaf(s as usize) {
            return Err(Error::SegmentHashMismatch { segment: s });
        }
        let pieces: Vec<&[u8]> = self.segment.chunks(block_len).collect();
        self.zfec.encode_parity(&pieces, &mut self.parity);
        let all = pieces
            .iter()
            .copied()
            .chain(self.parity.iter().map(|p| &p[..]));
        for (hashes, block) in self.block_hashes.iter_mut().zip(all) {
            hashes.push(tagged_hash(tags::BLOCK, block));
        }
        self.next_segment += 1;
        Ok(SegmentBlocks {
            segment: s,
            offset: self.layout.block_offset(s),
            pieces,
            parity: &self.parity,
        })
    }

    /// Decodes segment `s`'s padded crypttext into `self.segment`.
    fn decode(&mut self, s: u64, blocks: &[(usize, &[u8])]) -> Result<(), Error> {
        let nums: Vec<usize> = blocks.iter().map(|(n, _)| *n).collect();
        let matrix = self
            .zfec
            .cached_decoding_matrix(&mut self.matrix, &nums)
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        let blocks: Vec<&[u8]> = blocks.iter().map(|(_, b)| *b).collect();
        let block_len = self.geometry.block_len(s) as usize;
        self.segment.resize(block_len * self.geometry.k, 0);
        self.zfec
            .decode_with(matrix, &nums, &blocks, &mut self.segment);
        Ok(())
    }

    /// After the last segment: every share's hash trees, checked against the UEB's share
    /// root hash. A mismatch means the original shares were not all encoded from the same
    /// crypttext: rebuilt shares would not verify, so none must be stored.
    pub fn finish(self) -> Result<RegeneratedFile, Error> {
        let g = self.geometry;
        if self.next_segment != g.num_segments {
            return Err(Error::InvalidParams(format!(
                "only {} of {} segments were regenerated",
                self.next_segment, g.num_segments
            )));
        }
        let block_trees: Vec<HashTree> =
            self.block_hashes.iter().map(|h| HashTree::new(h)).collect();
        let roots: Vec<Hash> = block_trees.iter().map(HashTree::root).collect();
        let share_tree = HashTree::new(&roots);
        if share_tree.root() != self.share_root_hash {
            return Err(Error::CapMismatch(
                "the shares rebuilt from the file's crypttext do not hash to the UEB's share \
                 root: the original upload encoded its shares inconsistently, so no share \
                 rebuilt from it would verify"
                    .into(),
            ));
        }
        Ok(RegeneratedFile {
            layout: self.layout,
            ueb: self.ueb,
            crypttext_tree: self.crypttext_tree,
            block_trees,
            share_tree,
        })
    }
}

/// Every share's hashes once all segments are regenerated and checked.
pub struct RegeneratedFile {
    layout: ShareLayout,
    ueb: Vec<u8>,
    crypttext_tree: HashTree,
    block_trees: Vec<HashTree>,
    share_tree: HashTree,
}

impl RegeneratedFile {
    /// Where things go in every share.
    pub fn layout(&self) -> &ShareLayout {
        &self.layout
    }

    /// The share's bytes from `layout.plaintext_hash_tree` to its end: see
    /// [`share_trailer`].
    pub fn share_trailer(&self, share: usize) -> Vec<u8> {
        share_trailer(
            &self.layout,
            &self.crypttext_tree,
            &self.block_trees[share],
            &self.share_tree,
            share,
            &self.ueb,
        )
    }

    /// A whole share's size (its header, blocks and trailer).
    pub fn share_size(&self) -> u64 {
        self.layout.share_size(self.ueb.len() as u64)
    }
}

/// Everything share `share` holds after its blocks, to be written at
/// `layout.plaintext_hash_tree`: the (unused, zeroed) plaintext hash tree, the crypttext hash
/// tree, the share's block hash tree, its share hash chain, and the UEB with its length.
pub fn share_trailer(
    layout: &ShareLayout,
    crypttext_tree: &HashTree,
    block_tree: &HashTree,
    share_tree: &HashTree,
    share: usize,
    ueb: &[u8],
) -> Vec<u8> {
    let mut out = vec![0u8; layout.tree_size() as usize];
    for tree in [crypttext_tree, block_tree] {
        out.extend(tree.nodes().iter().flatten());
    }
    let chain: Vec<(usize, Hash)> = share_tree
        .chain_indexes(share)
        .into_iter()
        .filter_map(|i| share_tree.node(i).map(|h| (i, *h)))
        .collect();
    out.extend(layout::encode_chain(&chain));
    let len = ueb.len() as u64;
    match layout.version {
        1 => out.extend_from_slice(&(len as u32).to_be_bytes()),
        _ => out.extend_from_slice(&len.to_be_bytes()),
    }
    out.extend_from_slice(ueb);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::{Key, VerifierCap};
    use crate::verify::{self, check_header, check_ueb, ShareError};
    use crate::{encode_stream, EncodingParams, MemoryShares};

    fn encoded(size: usize, k: usize, n: usize, segment: u64) -> (VerifierCap, Vec<Vec<u8>>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let params = EncodingParams::new(k, n, segment).unwrap();
        let mut shares = MemoryShares::default();
        let file =
            encode_stream(Key([3; 16]), params, size as u64, &data[..], &mut shares).unwrap();
        (file.cap.verifier(), shares.into_shares())
    }

    /// Regenerates every share of the file from the shares numbered `from`, as a repairer
    /// would: header, UEB and trees of the first, then blocks segment by segment.
    fn regenerate(
        cap: &VerifierCap,
        shares: &[Vec<u8>],
        from: &[usize],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let first = &shares[from[0]];
        let layout = check_header(cap, from[0], first).unwrap();
        let (ueb, bytes) =
            check_ueb(cap, &layout, &first[layout.ueb as usize..]).map_err(|e| match e {
                ShareError::Fatal(e) => e,
                ShareError::Rejected(r) => Error::MalformedShare(r.detail),
            })?;
        let (start, len) = verify::trees_region(&layout);
        let hashes = verify::check_trees(
            &ueb,
            from[0],
            &layout,
            &first[start as usize..(start + len) as usize],
        )
        .unwrap();
        let mut regen = Regenerator::new(bytes.to_vec(), &ueb, hashes.crypttext_tree().clone())?;
        let g = *regen.geometry();
        let mut out: Vec<Vec<u8>> = vec![layout.header(); g.n];
        for s in 0..g.num_segments {
            let (offset, len) = (layout.block_offset(s) as usize, g.block_len(s) as usize);
            let blocks: Vec<(usize, &[u8])> = from
                .iter()
                .map(|&i| (i, &shares[i][offset..offset + len]))
                .collect();
            let rebuilt = regen.regenerate(&blocks)?;
            for (share, buf) in out.iter_mut().enumerate() {
                buf.extend_from_slice(rebuilt.block(share));
            }
        }
        let file = regen.finish()?;
        for (share, buf) in out.iter_mut().enumerate() {
            buf.extend(file.share_trailer(share));
            assert_eq!(buf.len() as u64, file.share_size());
        }
        Ok(out)
    }

    #[test]
    fn regenerated_shares_are_the_originals_byte_for_byte() {
        for (size, k, n, segment) in [
            (20_000, 3, 10, 4096),
            (1, 1, 1, 4096),
            (5000, 2, 5, 5000),
            (70_001, 4, 7, 8192),
        ] {
            let (cap, shares) = encoded(size, k, n, segment);
            // Parity shares only, where there are enough; otherwise the last k.
            let from: Vec<usize> = (n - k..n).collect();
            let rebuilt = regenerate(&cap, &shares, &from).unwrap();
            assert_eq!(rebuilt, shares, "size {size} {k}-of-{n}");
        }
    }

    #[test]
    fn blocks_of_the_wrong_file_or_length_are_refused() {
        let (cap, shares) = encoded(20_000, 3, 10, 4096);
        let layout = check_header(&cap, 0, &shares[0]).unwrap();
        let (ueb, bytes) = check_ueb(&cap, &layout, &shares[0][layout.ueb as usize..]).unwrap();
        let (start, len) = verify::trees_region(&layout);
        let hashes = verify::check_trees(
            &ueb,
            0,
            &layout,
            &shares[0][start as usize..(start + len) as usize],
        )
        .unwrap();
        let mut regen =
            Regenerator::new(bytes.to_vec(), &ueb, hashes.crypttext_tree().clone()).unwrap();
        let at = layout.data as usize;
        let bl = regen.geometry().block_size() as usize;
        let mut flipped = shares[1][at..at + bl].to_vec();
        flipped[5] ^= 1;
        let wrong: Vec<(usize, &[u8])> = vec![
            (0, &shares[0][at..at + bl]),
            (1, &flipped),
            (2, &shares[2][at..at + bl]),
        ];
        assert!(matches!(
            regen.regenerate(&wrong),
            Err(Error::SegmentHashMismatch { segment: 0 })
        ));
        let short: Vec<(usize, &[u8])> = (0..3).map(|i| (i, &shares[i][at..at + bl - 1])).collect();
        assert!(matches!(
            regen.regenerate(&short),
            Err(Error::InvalidParams(_))
        ));
        let twice: Vec<(usize, &[u8])> = (0..3).map(|_| (0, &shares[0][at..at + bl])).collect();
        assert!(matches!(
            regen.regenerate(&twice),
            Err(Error::InvalidParams(_))
        ));
        assert_eq!(regen.next_segment(), 0, "a refused segment changes nothing");
        assert!(regen.finish().is_err(), "unfinished");
    }

    #[test]
    fn rebuilt_shares_that_miss_the_share_root_are_refused() {
        // What an inconsistent upload looks like to a repairer: the blocks it rebuilds do not
        // hash to the UEB's share root (here the root is wrong instead of a block).
        let (cap, shares) = encoded(20_000, 3, 10, 4096);
        let layout = check_header(&cap, 0, &shares[0]).unwrap();
        let (ueb, bytes) = check_ueb(&cap, &layout, &shares[0][layout.ueb as usize..]).unwrap();
        let (start, len) = verify::trees_region(&layout);
        let hashes = verify::check_trees(
            &ueb,
            0,
            &layout,
            &shares[0][start as usize..(start + len) as usize],
        )
        .unwrap();
        let mut lying = ueb.clone();
        lying.share_root_hash[0] ^= 1;
        let mut regen =
            Regenerator::new(bytes.to_vec(), &lying, hashes.crypttext_tree().clone()).unwrap();
        let g = *regen.geometry();
        for s in 0..g.num_segments {
            let (offset, len) = (layout.block_offset(s) as usize, g.block_len(s) as usize);
            let blocks: Vec<(usize, &[u8])> = (0..3)
                .map(|i| (i, &shares[i][offset..offset + len]))
                .collect();
            regen.regenerate(&blocks).unwrap();
        }
        assert!(matches!(regen.finish(), Err(Error::CapMismatch(_))));
    }

    #[test]
    fn a_verify_cap_checks_what_a_read_cap_does() {
        let (cap, shares) = encoded(20_000, 3, 10, 4096);
        assert!(
            check_header(&cap, 10, &shares[0]).is_err(),
            "share number past N"
        );
        let layout = check_header(&cap, 0, &shares[0]).unwrap();
        let mut wrong = cap.clone();
        wrong.ueb_hash[0] ^= 1;
        let region = &shares[0][layout.ueb as usize..];
        assert!(matches!(
            check_ueb(&wrong, &layout, region),
            Err(ShareError::Rejected(_))
        ));
        let (ueb, bytes) = check_ueb(&cap, &layout, region).unwrap();
        assert_eq!(Ueb::hash(bytes), cap.ueb_hash);
        assert_eq!(ueb.to_bytes(), bytes);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any `k` shares, in any order of numbers, rebuild every share of any file exactly.
        #[test]
        fn any_k_shares_rebuild_all_of_them(
            size in 1usize..9000,
            k in 1usize..6,
            extra in 0usize..6,
            segment in 64u64..3000,
            pick in proptest::sample::subsequence((0..11).collect::<Vec<usize>>(), 0..=11),
        ) {
            let n = k + extra;
            let (cap, shares) = encoded(size, k, n, segment);
            let mut from: Vec<usize> = pick.into_iter().filter(|&s| s < n).collect();
            for s in 0..n {
                if from.len() < k && !from.contains(&s) {
                    from.push(s);
                }
            }
            from.truncate(k);
            from.reverse();
            proptest::prop_assert_eq!(regenerate(&cap, &shares, &from).unwrap(), shares);
        }
    }
}
