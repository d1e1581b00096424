//! The streaming decoder: from any `k` good shares (read through [`ShareSource`]), verified
//! plaintext out, segment by segment.
//!
//! Every check of the format is made before a byte leaves: the UEB against the cap, each
//! share's hash chain against `share_root_hash`, its hash trees node by node, every block
//! against its share's block tree and every decoded segment against `crypttext_root_hash`.
//! A share that fails a check is set aside (and reported, with the check it failed) and the
//! next candidate takes its place.

use crate::cap::ChkCap;
use crate::crypt::Cryptor;
use crate::hash::{tagged_hash, tags, Hash, TaggedHasher};
use crate::layout::{self, ShareLayout, MAX_HEADER_SIZE};
use crate::merkle::{self, HashTree};
use crate::params::Geometry;
use crate::ueb::{Ueb, MAX_UEB_SIZE};
use crate::zfec::{DecodingMatrix, Zfec};
use crate::Error;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::io::Write;

/// Bytes decoded, hashed and decrypted at a time: small enough to stay in cache between the
/// three passes; a multiple of SHA-256's 64-byte block.
const STRIPE: usize = 16 * 1024;

/// Where a decoder reads one share from: a file, a peer, a test's buffer.
pub trait ShareSource {
    /// The share number this source claims to hold (the hash chain proves it or not).
    fn share_num(&self) -> usize;
    /// Exactly `len` bytes at `offset`; an error if the share is shorter or unreadable.
    /// A source that holds the share in memory lends the bytes instead of copying them.
    fn read_at(&mut self, offset: u64, len: u64) -> std::io::Result<Cow<'_, [u8]>>;
}

/// A share held in memory (owned or borrowed), with its share number.
impl<T: AsRef<[u8]>> ShareSource for (usize, T) {
    fn share_num(&self) -> usize {
        self.0
    }

    fn read_at(&mut self, offset: u64, len: u64) -> std::io::Result<Cow<'_, [u8]>> {
        let share = self.1.as_ref();
        let end = offset.checked_add(len).filter(|&e| e <= share.len() as u64);
        match end {
            Some(end) => Ok(Cow::Borrowed(&share[offset as usize..end as usize])),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{len} bytes at {offset} run past the share's end ({} bytes)",
                    share.len()
                ),
            )),
        }
    }
}

/// The check a share failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareCheck {
    /// The share could not be read (too short, I/O or network error).
    Read,
    /// The header is malformed or does not fit the file.
    Header,
    /// The UEB is too big or its hash is not the cap's.
    UebHash,
    /// The crypttext hash tree is inconsistent or has the wrong root.
    CrypttextHashTree,
    /// The block hash tree is internally inconsistent.
    BlockHashTree,
    /// The share hash chain does not lead from this share's block tree to `share_root_hash`.
    ShareHashChain,
    /// A block does not match its hash.
    Block { segment: u64 },
}

impl fmt::Display for ShareCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareCheck::Read => f.write_str("read"),
            ShareCheck::Header => f.write_str("header"),
            ShareCheck::UebHash => f.write_str("UEB hash"),
            ShareCheck::CrypttextHashTree => f.write_str("crypttext hash tree"),
            ShareCheck::BlockHashTree => f.write_str("block hash tree"),
            ShareCheck::ShareHashChain => f.write_str("share hash chain"),
            ShareCheck::Block { segment } => write!(f, "block hash of segment {segment}"),
        }
    }
}

/// A share that failed a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareFault {
    /// Position of the share's source in the list given to the decoder.
    pub source: usize,
    /// The share number the source claimed.
    pub share: usize,
    pub check: ShareCheck,
    pub detail: String,
}

impl fmt::Display for ShareFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "share {} (source {}) failed its {} check: {}",
            self.share, self.source, self.check, self.detail
        )
    }
}

/// What a successful decode saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// Shares set aside, in the order they failed.
    pub faults: Vec<ShareFault>,
}

/// A share that passed every check that does not depend on its blocks.
struct VerifiedShare<S> {
    source: S,
    index: usize,
    num: usize,
    layout: ShareLayout,
    block_tree: HashTree,
}

/// Decodes the file `cap` names from `sources` (any order; at least `k` must be good) into
/// `out`. Sources are tried in the order given: put the cheapest or fastest first.
pub fn decode<S: ShareSource>(
    cap: &ChkCap,
    sources: Vec<S>,
    out: &mut impl Write,
) -> Result<DecodeReport, Error> {
    Decoder::new(cap, sources)?.run(out)
}

struct Decoder<'c, S> {
    cap: &'c ChkCap,
    zfec: Zfec,
    candidates: VecDeque<(usize, S)>,
    active: Vec<VerifiedShare<S>>,
    /// Learned from the first share whose UEB matches the cap.
    file: Option<(Geometry, Ueb)>,
    /// The segment hashes, from the first share whose crypttext tree verifies.
    crypttext_tree: Option<HashTree>,
    faults: Vec<ShareFault>,
}

impl<'c, S: ShareSource> Decoder<'c, S> {
    fn new(cap: &'c ChkCap, sources: Vec<S>) -> Result<Self, Error> {
        let zfec = Zfec::new(cap.k, cap.n).map_err(|e| Error::InvalidParams(e.to_string()))?;
        Ok(Decoder {
            cap,
            zfec,
            candidates: sources.into_iter().enumerate().collect(),
            active: Vec::new(),
            file: None,
            crypttext_tree: None,
            faults: Vec::new(),
        })
    }

    fn run(mut self, out: &mut impl Write) -> Result<DecodeReport, Error> {
        self.fill_active()?;
        let geometry = self
            .file
            .as_ref()
            .expect("set by the first verified share")
            .0;
        let crypttext_tree = self
            .crypttext_tree
            .take()
            .expect("set by the first verified share");
        let mut cryptor = Cryptor::new(&self.cap.key.0);
        let mut matrix = None;
        let mut segment = Vec::with_capacity(geometry.segment_size as usize);
        for s in 0..geometry.num_segments {
            let crypttext_hash = loop {
                let decoded = decode_segment(
                    &mut self.active,
                    &self.zfec,
                    &mut matrix,
                    &mut cryptor,
                    &geometry,
                    s,
                    &mut segment,
                );
                match decoded {
                    Ok(hash) => break hash,
                    Err(BadBlock {
                        position,
                        check,
                        detail,
                    }) => {
                        let share = self.active.remove(position);
                        self.fault(share.index, share.num, check, detail);
                        self.fill_active()?;
                    }
                }
            };
            let expected = crypttext_tree.leaf(s as usize).expect("a leaf per segment");
            if &crypttext_hash != expected {
                return Err(Error::SegmentHashMismatch { segment: s });
            }
            out.write_all(&segment).map_err(Error::Output)?;
        }
        out.flush().map_err(Error::Output)?;
        Ok(DecodeReport {
            faults: self.faults,
        })
    }

    /// Adopts candidates until `k` shares are active, or fails with what went wrong.
    fn fill_active(&mut self) -> Result<(), Error> {
        while self.active.len() < self.cap.k {
            let position = self
                .candidates
                .iter()
                .position(|(_, s)| !self.active.iter().any(|a| a.num == s.share_num()));
            let Some((index, source)) = position.and_then(|p| self.candidates.remove(p)) else {
                return Err(Error::NotEnoughShares {
                    needed: self.cap.k,
                    good: self.active.len(),
                    faults: self.faults.clone(),
                });
            };
            let num = source.share_num();
            match self.verify_share(index, source) {
                Ok(share) => self.active.push(share),
                Err(ShareError::Fault(check, detail)) => self.fault(index, num, check, detail),
                Err(ShareError::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn fault(&mut self, source: usize, share: usize, check: ShareCheck, detail: String) {
        self.faults.push(ShareFault {
            source,
            share,
            check,
            detail,
        });
    }

    /// Reads and checks everything of a share but its blocks.
    fn verify_share(
        &mut self,
        index: usize,
        mut source: S,
    ) -> Result<VerifiedShare<S>, ShareError> {
        let num = source.share_num();
        if num >= self.cap.n {
            return Err(ShareError::Fault(
                ShareCheck::Header,
                format!("share number {num} is not below N={}", self.cap.n),
            ));
        }
        let header = read(&mut source, 0, MAX_HEADER_SIZE)?;
        let layout = ShareLayout::parse(&header)
            .map_err(|e| ShareError::Fault(ShareCheck::Header, e.to_string()))?;
        let ueb_len = be_uint(&read(&mut source, layout.ueb, layout.ueb_length_size())?);
        if ueb_len > MAX_UEB_SIZE {
            return Err(ShareError::Fault(
                ShareCheck::UebHash,
                format!("claims a {ueb_len}-byte UEB"),
            ));
        }
        let ueb_bytes = read(&mut source, layout.ueb + layout.ueb_length_size(), ueb_len)?;
        if Ueb::hash(&ueb_bytes) != self.cap.ueb_hash {
            return Err(ShareError::Fault(
                ShareCheck::UebHash,
                "the UEB's hash is not the one in the cap".into(),
            ));
        }
        let (geometry, ueb) = self.learn_file(&ueb_bytes)?;
        layout
            .check_matches(&geometry)
            .map_err(|e| ShareError::Fault(ShareCheck::Header, e.to_string()))?;

        let tree_size = layout.tree_size();
        let crypttext_nodes = hashes(&read(&mut source, layout.crypttext_hash_tree, tree_size)?);
        let crypttext_tree =
            HashTree::verified_from_nodes(crypttext_nodes, &ueb.crypttext_root_hash)
                .map_err(|e| ShareError::Fault(ShareCheck::CrypttextHashTree, e.to_string()))?;
        let block_nodes = hashes(&read(&mut source, layout.block_hashes, tree_size)?);
        let block_tree = HashTree::from_nodes(block_nodes)
            .map_err(|e| ShareError::Fault(ShareCheck::BlockHashTree, e.to_string()))?;
        let chain = layout::decode_chain(&read(
            &mut source,
            layout.share_hashes,
            layout.ueb - layout.share_hashes,
        )?);
        merkle::verify_chain(
            merkle::node_count(self.cap.n),
            num,
            &block_tree.root(),
            &chain,
            &ueb.share_root_hash,
        )
        .map_err(|e| ShareError::Fault(ShareCheck::ShareHashChain, e.to_string()))?;
        self.crypttext_tree.get_or_insert(crypttext_tree);
        Ok(VerifiedShare {
            source,
            index,
            num,
            layout,
            block_tree,
        })
    }

    /// Parses the (hash-verified) UEB the first time and checks it against the cap.
    fn learn_file(&mut self, ueb_bytes: &[u8]) -> Result<(Geometry, Ueb), ShareError> {
        if let Some((g, ueb)) = &self.file {
            // Same hash as the one already parsed, so the same bytes.
            return Ok((*g, ueb.clone()));
        }
        let ueb = Ueb::parse(ueb_bytes).map_err(ShareError::Fatal)?;
        let g = ueb.geometry;
        if (g.k, g.n, g.size) != (self.cap.k, self.cap.n, self.cap.size) {
            return Err(ShareError::Fatal(Error::CapMismatch(format!(
                "the cap says k={} N={} size={} but its UEB says k={} N={} size={}",
                self.cap.k, self.cap.n, self.cap.size, g.k, g.n, g.size
            ))));
        }
        self.file = Some((g, ueb.clone()));
        Ok((g, ueb))
    }
}

/// A block that failed: the position of its share among the active ones, and why.
struct BadBlock {
    position: usize,
    check: ShareCheck,
    detail: String,
}

/// Reads block `s` of every active share and checks each against its share's block tree;
/// then, stripe by stripe so the bytes stay in cache, erasure-decodes the segment into
/// `segment`, hashes its crypttext and decrypts it in place. Returns the crypttext hash: the
/// caller must check it before letting any of `segment` out. `matrix` caches the decoding
/// matrix while the set of shares stays the same.
fn decode_segment<S: ShareSource>(
    active: &mut [VerifiedShare<S>],
    zfec: &Zfec,
    matrix: &mut Option<DecodingMatrix>,
    cryptor: &mut Cryptor,
    g: &Geometry,
    s: u64,
    segment: &mut Vec<u8>,
) -> Result<Hash, BadBlock> {
    let nums: Vec<usize> = active.iter().map(|share| share.num).collect();
    let block_len = g.block_len(s) as usize;
    let mut blocks = Vec::with_capacity(active.len());
    for (position, share) in active.iter_mut().enumerate() {
        let offset = share.layout.block_offset(s);
        let leaf = share
            .block_tree
            .leaf(s as usize)
            .expect("the header check fixed the tree size");
        let block = share
            .source
            .read_at(offset, block_len as u64)
            .map_err(|e| BadBlock {
                position,
                check: ShareCheck::Read,
                detail: e.to_string(),
            })?;
        if &tagged_hash(tags::BLOCK, &block) != leaf {
            return Err(BadBlock {
                position,
                check: ShareCheck::Block { segment: s },
                detail: "the block's hash is not in the share's block hash tree".into(),
            });
        }
        blocks.push(block);
    }
    if matrix.as_ref().is_none_or(|m| m.share_nums() != nums) {
        *matrix = Some(
            zfec.decoding_matrix(&nums)
                .expect("k distinct verified share numbers"),
        );
    }
    let matrix = matrix.as_ref().expect("just set");
    let blocks: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    let (len, start) = (g.segment_len(s) as usize, s * g.segment_size);
    segment.resize(block_len * g.k, 0);
    let mut hasher = TaggedHasher::new(tags::CRYPTTEXT_SEGMENT);
    for piece in 0..g.k {
        for at in (0..block_len).step_by(STRIPE) {
            let range = at..(at + STRIPE).min(block_len);
            let (from, to) = (
                piece * block_len + range.start,
                piece * block_len + range.end,
            );
            zfec.decode_piece_range(matrix, &nums, &blocks, piece, range, &mut segment[from..to]);
            // Padding (past `len`) is decoded but neither hashed nor decrypted.
            if from < len {
                let crypttext = &mut segment[from..to.min(len)];
                hasher.update(crypttext);
                cryptor.apply_at(start + from as u64, crypttext);
            }
        }
    }
    segment.truncate(len);
    Ok(hasher.finish())
}

enum ShareError {
    /// This share is bad; another may do.
    Fault(ShareCheck, String),
    /// The file itself cannot be decoded: another share would not help.
    Fatal(Error),
}

fn read<S: ShareSource>(source: &mut S, offset: u64, len: u64) -> Result<Vec<u8>, ShareError> {
    match source.read_at(offset, len) {
        Ok(bytes) => Ok(bytes.into_owned()),
        Err(e) => Err(ShareError::Fault(ShareCheck::Read, e.to_string())),
    }
}

fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b))
}

fn hashes(bytes: &[u8]) -> Vec<crate::Hash> {
    bytes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect()
}
