//! The streaming encoder: plaintext in, one segment at a time; per segment, the blocks of all
//! N shares out; at the end, each share's hash trees and the UEB, and the cap.
//!
//! Memory is one padded segment plus its `N - k` parity blocks (O(segment × N/k)), and 32
//! bytes per block for the hash trees, never the file.

use crate::cap::{ChkCap, Key};
use crate::crypt::Cryptor;
use crate::hash::{tags, Hash, TaggedHasher};
use crate::layout::ShareLayout;
use crate::merkle::HashTree;
use crate::params::{EncodingParams, Geometry};
use crate::ueb::Ueb;
use crate::zfec::Zfec;
use crate::{hash::netstring, Error};
use std::io::Read;

/// The first pass of a convergent upload: hashes the plaintext, with the convergence secret
/// and the encoding, into the key. Same file, secret and encoding: same key, same cap.
pub struct ConvergentKeyer {
    hasher: TaggedHasher,
}

impl ConvergentKeyer {
    /// Starts the key of a `size`-byte file encoded with `params`.
    pub fn new(secret: &[u8], params: EncodingParams, size: u64) -> Result<Self, Error> {
        let g = Geometry::new(params, size)?;
        let mut tag = tags::CONVERGENT_KEY.to_vec();
        tag.extend_from_slice(&netstring(secret));
        tag.extend_from_slice(&netstring(
            format!("{},{},{}", g.k, g.n, g.segment_size).as_bytes(),
        ));
        Ok(ConvergentKeyer {
            hasher: TaggedHasher::new(&tag),
        })
    }

    /// Feeds plaintext.
    pub fn update(&mut self, plaintext: &[u8]) {
        self.hasher.update(plaintext);
    }

    /// The key.
    pub fn finish(self) -> Key {
        Key(self.hasher.finish()[..16]
            .try_into()
            .expect("16 of 32 bytes"))
    }
}

/// Reads exactly `size` bytes of `input` through a [`ConvergentKeyer`].
pub fn convergent_key(
    secret: &[u8],
    params: EncodingParams,
    size: u64,
    input: impl Read,
) -> Result<Key, Error> {
    let mut keyer = ConvergentKeyer::new(secret, params, size)?;
    let read = for_each_chunk(input, |chunk| keyer.update(chunk))?;
    if read != size {
        return Err(Error::InputSizeMismatch {
            expected: size,
            read,
        });
    }
    Ok(keyer.finish())
}

/// Feeds all of `input` to `f` in 64 KiB chunks; returns the byte count.
fn for_each_chunk(mut input: impl Read, mut f: impl FnMut(&[u8])) -> Result<u64, Error> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                f(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Input(e)),
        }
    }
}

/// Bytes encrypted, hashed or erasure coded at a time: small enough to stay in the core's
/// cache between the passes over them.
const STRIPE: usize = 32 * 1024;

/// Encodes one file, segment by segment.
pub struct Encoder {
    key: Key,
    geometry: Geometry,
    layout: ShareLayout,
    zfec: Zfec,
    cryptor: Cryptor,
    next_segment: u64,
    crypttext_hasher: TaggedHasher,
    segment_hashes: Vec<Hash>,
    /// `block_hashes[share][segment]`.
    block_hashes: Vec<Vec<Hash>>,
    /// The current segment: crypttext, zero-padded, cut into `k` pieces in place.
    segment: Vec<u8>,
    parity: Vec<Vec<u8>>,
}

impl Encoder {
    /// An encoder for a `size`-byte file under `key`.
    pub fn new(key: Key, params: EncodingParams, size: u64) -> Result<Self, Error> {
        let geometry = Geometry::new(params, size)?;
        let zfec =
            Zfec::new(geometry.k, geometry.n).map_err(|e| Error::InvalidParams(e.to_string()))?;
        let segments = geometry.num_segments as usize;
        Ok(Encoder {
            key,
            layout: ShareLayout::for_geometry(&geometry),
            zfec,
            cryptor: Cryptor::new(&key.0),
            next_segment: 0,
            crypttext_hasher: TaggedHasher::new(tags::CRYPTTEXT),
            segment_hashes: Vec::with_capacity(segments),
            block_hashes: vec![Vec::with_capacity(segments); geometry.n],
            segment: Vec::with_capacity(geometry.segment_size as usize),
            parity: vec![Vec::new(); geometry.n - geometry.k],
            geometry,
        })
    }

    /// The file's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Where things go in each share; the same for every share of the file. Known before
    /// the first block, so a share's header can be written first.
    pub fn layout(&self) -> &ShareLayout {
        &self.layout
    }

    /// The file's storage index.
    pub fn storage_index(&self) -> crate::StorageIndex {
        self.key.storage_index()
    }

    /// Reads the next segment's plaintext (exactly its length) from `input` and encodes it.
    pub fn encode_segment_from(
        &mut self,
        input: &mut impl Read,
    ) -> Result<SegmentBlocks<'_>, Error> {
        let len = self.next_segment_len()?;
        self.segment.resize(len, 0);
        if let Err(e) = input.read_exact(&mut self.segment) {
            return Err(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::InputSizeMismatch {
                    expected: self.geometry.size,
                    read: self.next_segment * self.geometry.segment_size,
                },
                _ => Error::Input(e),
            });
        }
        self.encrypt_and_hash(None);
        Ok(self.code_segment())
    }

    /// Encodes the next segment from `plaintext`, which must be exactly its length.
    pub fn encode_segment(&mut self, plaintext: &[u8]) -> Result<SegmentBlocks<'_>, Error> {
        let len = self.next_segment_len()?;
        if plaintext.len() != len {
            return Err(Error::InvalidParams(format!(
                "segment {} must be {len} bytes, got {}",
                self.next_segment,
                plaintext.len()
            )));
        }
        self.segment.resize(len, 0);
        self.encrypt_and_hash(Some(plaintext));
        Ok(self.code_segment())
    }

    fn next_segment_len(&self) -> Result<usize, Error> {
        let g = &self.geometry;
        if self.next_segment >= g.num_segments {
            return Err(Error::InputSizeMismatch {
                expected: g.size,
                read: g.size + 1,
            });
        }
        Ok(g.segment_len(self.next_segment) as usize)
    }

    /// Encrypts the segment (from `plaintext`, or in place) and hashes its crypttext, in
    /// cache-sized stripes so that each byte is loaded once for the three jobs.
    fn encrypt_and_hash(&mut self, plaintext: Option<&[u8]>) {
        let mut segment_hasher = TaggedHasher::new(tags::CRYPTTEXT_SEGMENT);
        let start = self.next_segment * self.geometry.segment_size;
        for (i, stripe) in self.segment.chunks_mut(STRIPE).enumerate() {
            let position = start + (i * STRIPE) as u64;
            match plaintext {
                Some(p) => {
                    self.cryptor
                        .apply_at_into(position, &p[i * STRIPE..][..stripe.len()], stripe)
                }
                None => self.cryptor.apply_at(position, stripe),
            }
            self.crypttext_hasher.update(stripe);
            segment_hasher.update(stripe);
        }
        self.segment_hashes.push(segment_hasher.finish());
    }

    /// Pads the encrypted segment, erasure codes it and hashes every block.
    fn code_segment(&mut self) -> SegmentBlocks<'_> {
        let s = self.next_segment;
        let g = self.geometry;
        // Pad after hashing: the hashes cover the crypttext, the blocks the padded segment.
        let block_len = g.block_len(s) as usize;
        self.segment.resize(block_len * g.k, 0);
        let pieces: Vec<&[u8]> = self.segment.chunks(block_len).collect();
        for p in self.parity.iter_mut() {
            p.resize(block_len, 0);
        }
        // Erasure code and hash the blocks stripe by stripe, for the same reason.
        let mut hashers = vec![TaggedHasher::new(tags::BLOCK); g.n];
        // A multiple of SHA-256's 64-byte block, so no stripe is split inside the hasher.
        let stripe = (STRIPE / g.k).max(64) & !63;
        for at in (0..block_len).step_by(stripe) {
            let range = at..(at + stripe).min(block_len);
            self.zfec
                .encode_parity_range(&pieces, &mut self.parity, range.clone());
            let blocks = pieces
                .iter()
                .copied()
                .chain(self.parity.iter().map(|p| &p[..]));
            for (hasher, block) in hashers.iter_mut().zip(blocks) {
                hasher.update(&block[range.clone()]);
            }
        }
        for (hashes, hasher) in self.block_hashes.iter_mut().zip(hashers) {
            hashes.push(hasher.finish());
        }
        self.next_segment += 1;
        SegmentBlocks {
            segment: s,
            offset: self.layout.block_offset(s),
            pieces,
            parity: &self.parity,
        }
    }

    /// After the last segment: the hash trees, the UEB and the cap.
    pub fn finish(self) -> Result<EncodedFile, Error> {
        if self.next_segment != self.geometry.num_segments {
            return Err(Error::InputSizeMismatch {
                expected: self.geometry.size,
                read: self.next_segment * self.geometry.segment_size,
            });
        }
        let block_trees: Vec<HashTree> =
            self.block_hashes.iter().map(|h| HashTree::new(h)).collect();
        let share_roots: Vec<Hash> = block_trees.iter().map(HashTree::root).collect();
        let share_tree = HashTree::new(&share_roots);
        let crypttext_tree = HashTree::new(&self.segment_hashes);
        let ueb = Ueb {
            geometry: self.geometry,
            crypttext_hash: self.crypttext_hasher.finish(),
            crypttext_root_hash: crypttext_tree.root(),
            share_root_hash: share_tree.root(),
        }
        .to_bytes();
        let g = &self.geometry;
        let cap = ChkCap {
            key: self.key,
            ueb_hash: Ueb::hash(&ueb),
            k: g.k,
            n: g.n,
            size: g.size,
        };
        Ok(EncodedFile {
            cap,
            layout: self.layout,
            ueb,
            crypttext_tree,
            block_trees,
            share_tree,
        })
    }
}

/// The `N` blocks of one segment (encoded, or regenerated by a repairer), borrowed until
/// the next segment.
pub struct SegmentBlocks<'a> {
    /// Which segment.
    pub segment: u64,
    /// Where these blocks go in their shares.
    pub offset: u64,
    pub(crate) pieces: Vec<&'a [u8]>,
    pub(crate) parity: &'a [Vec<u8>],
}

impl SegmentBlocks<'_> {
    /// Share `share`'s block.
    pub fn block(&self, share: usize) -> &[u8] {
        match self.pieces.get(share) {
            Some(piece) => piece,
            None => &self.parity[share - self.pieces.len()],
        }
    }
}

/// What an encoded file leaves once all its blocks are out.
pub struct EncodedFile {
    pub cap: ChkCap,
    pub layout: ShareLayout,
    pub ueb: Vec<u8>,
    crypttext_tree: HashTree,
    block_trees: Vec<HashTree>,
    share_tree: HashTree,
}

impl EncodedFile {
    /// Everything share `share` holds after its blocks, to be written at
    /// `layout.plaintext_hash_tree`: the (unused, zeroed) plaintext hash tree, the crypttext
    /// hash tree, this share's block hash tree, its share hash chain, and the UEB.
    pub fn share_trailer(&self, share: usize) -> Vec<u8> {
        let out = crate::reshare::share_trailer(
            &self.layout,
            &self.crypttext_tree,
            &self.block_trees[share],
            &self.share_tree,
            share,
            &self.ueb,
        );
        debug_assert_eq!(
            self.layout.plaintext_hash_tree + out.len() as u64,
            self.layout.share_size(self.ueb.len() as u64)
        );
        out
    }
}

/// Something that stores the shares an encoder makes: each write puts `data` at `offset` of
/// share `share`.
pub trait ShareWriter {
    fn write_at(&mut self, share: usize, offset: u64, data: &[u8]) -> std::io::Result<()>;
}

/// A [`ShareWriter`] that keeps every share in memory, whole: for tests, and for files small
/// enough to hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryShares(Vec<Vec<u8>>);

impl MemoryShares {
    /// The shares written, by share number (a share never written is empty).
    pub fn shares(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// The shares written, by share number.
    pub fn into_shares(self) -> Vec<Vec<u8>> {
        self.0
    }
}

impl ShareWriter for MemoryShares {
    fn write_at(&mut self, share: usize, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let too_far = || std::io::Error::other("a write past what memory can address");
        let start = usize::try_from(offset).map_err(|_| too_far())?;
        let end = start.checked_add(data.len()).ok_or_else(too_far)?;
        if self.0.len() <= share {
            self.0.resize(share + 1, Vec::new());
        }
        let buf = &mut self.0[share];
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[start..end].copy_from_slice(data);
        Ok(())
    }
}

/// A [`ShareWriter`] that keeps nothing: for computing a cap without storing shares.
pub struct DiscardShares;

impl ShareWriter for DiscardShares {
    fn write_at(&mut self, _: usize, _: u64, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes `size` bytes of `plaintext` under `key` and writes every share, in full, to `out`.
pub fn encode_stream(
    key: Key,
    params: EncodingParams,
    size: u64,
    mut plaintext: impl Read,
    out: &mut impl ShareWriter,
) -> Result<EncodedFile, Error> {
    let mut encoder = Encoder::new(key, params, size)?;
    let (n, header) = (encoder.geometry().n, encoder.layout().header());
    for share in 0..n {
        out.write_at(share, 0, &header).map_err(Error::Output)?;
    }
    for _ in 0..encoder.geometry().num_segments {
        let blocks = encoder.encode_segment_from(&mut plaintext)?;
        for share in 0..n {
            out.write_at(share, blocks.offset, blocks.block(share))
                .map_err(Error::Output)?;
        }
    }
    if plaintext.read(&mut [0u8; 1]).map_err(Error::Input)? != 0 {
        return Err(Error::InputSizeMismatch {
            expected: size,
            read: size + 1,
        });
    }
    let file = encoder.finish()?;
    for share in 0..n {
        out.write_at(
            share,
            file.layout.plaintext_hash_tree,
            &file.share_trailer(share),
        )
        .map_err(Error::Output)?;
    }
    Ok(file)
}
