//! The streaming decoder: from any `k` good shares (read through [`ShareSource`]), verified
//! plaintext out, segment by segment.
//!
//! Every check of the format is made before a byte leaves: the UEB against the cap, each
//! share's hash chain against `share_root_hash`, its hash trees node by node, every block
//! against its share's block tree and every decoded segment against `crypttext_root_hash`.
//! A share that fails a check is set aside (and reported, with the check it failed) and the
//! next candidate takes its place.

use crate::cap::{ChkCap, VerifierCap};
use crate::ueb::{Ueb, MAX_UEB_SIZE};
use crate::verify::{self, Rejection, SegmentDecoder, ShareError, ShareHashes};
use crate::Error;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::io::Write;

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
struct ActiveShare<S> {
    source: S,
    index: usize,
    hashes: ShareHashes,
}

/// Decodes the file `cap` names from `sources` (any order; at least `k` must be good) into
/// `out`. Sources are tried in the order given: put the cheapest or fastest first.
pub fn decode<S: ShareSource>(
    cap: &ChkCap,
    sources: Vec<S>,
    out: &mut impl Write,
) -> Result<DecodeReport, Error> {
    Decoder {
        cap,
        verifier: cap.verifier(),
        candidates: sources.into_iter().enumerate().collect(),
        active: Vec::new(),
        ueb: None,
        faults: Vec::new(),
    }
    .run(out)
}

struct Decoder<'c, S> {
    cap: &'c ChkCap,
    verifier: VerifierCap,
    candidates: VecDeque<(usize, S)>,
    active: Vec<ActiveShare<S>>,
    /// From the first share whose UEB matches the cap.
    ueb: Option<Ueb>,
    faults: Vec<ShareFault>,
}

impl<S: ShareSource> Decoder<'_, S> {
    fn run(mut self, out: &mut impl Write) -> Result<DecodeReport, Error> {
        self.fill_active()?;
        let geometry = self
            .ueb
            .as_ref()
            .expect("set by the first verified share")
            .geometry;
        let crypttext_tree = self.active[0].hashes.crypttext_tree().clone();
        let mut decoder = SegmentDecoder::new(self.cap, geometry, crypttext_tree)?;
        let mut plaintext = Vec::with_capacity(geometry.segment_size as usize);
        for s in 0..geometry.num_segments {
            while let Err(failure) =
                decode_segment(&mut self.active, &mut decoder, s, &mut plaintext)
            {
                let BadBlock {
                    position,
                    rejection,
                } = failure?;
                let share = self.active.remove(position);
                self.fault(share.index, share.hashes.share, rejection);
                self.fill_active()?;
            }
            out.write_all(&plaintext).map_err(Error::Output)?;
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
                .position(|(_, s)| !self.active.iter().any(|a| a.hashes.share == s.share_num()));
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
                Err(ShareError::Rejected(rejection)) => self.fault(index, num, rejection),
                Err(ShareError::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn fault(&mut self, source: usize, share: usize, rejection: Rejection) {
        let Rejection { check, detail } = rejection;
        self.faults.push(ShareFault {
            source,
            share,
            check,
            detail,
        });
    }

    /// Reads and checks everything of a share but its blocks.
    fn verify_share(&mut self, index: usize, mut source: S) -> Result<ActiveShare<S>, ShareError> {
        let num = source.share_num();
        let layout = verify::check_header(
            &self.verifier,
            num,
            &read(&mut source, 0, verify::HEADER_FETCH)?,
        )?;
        let prefix = read(&mut source, layout.ueb, layout.ueb_length_size())?;
        let len = prefix
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b))
            .min(MAX_UEB_SIZE + 1);
        let body = match len > MAX_UEB_SIZE {
            true => Vec::new(), // check_ueb refuses the claimed length before anything is read
            false => read(&mut source, layout.ueb + layout.ueb_length_size(), len)?,
        };
        let (ueb, _) = verify::check_ueb(&self.verifier, &layout, &[prefix, body].concat())?;
        let (offset, len) = verify::trees_region(&layout);
        let trees = read(&mut source, offset, len)?;
        let hashes = verify::check_trees(&ueb, num, &layout, &trees)?;
        self.ueb.get_or_insert(ueb);
        Ok(ActiveShare {
            source,
            index,
            hashes,
        })
    }
}

/// A block that failed: the position of its share among the active ones, and why.
struct BadBlock {
    position: usize,
    rejection: Rejection,
}

/// Reads block `s` of every active share, checks each against its share's block tree, and
/// decodes the segment's plaintext into `plaintext`. The outer error is fatal; the inner
/// names a share to replace.
fn decode_segment<S: ShareSource>(
    active: &mut [ActiveShare<S>],
    decoder: &mut SegmentDecoder,
    s: u64,
    plaintext: &mut Vec<u8>,
) -> Result<(), Result<BadBlock, Error>> {
    let geometry = *decoder.geometry();
    let mut blocks = Vec::with_capacity(active.len());
    for (position, share) in active.iter_mut().enumerate() {
        let (offset, len) = share.hashes.block_region(&geometry, s);
        let bad = |rejection| {
            Ok(BadBlock {
                position,
                rejection,
            })
        };
        let block = match share.source.read_at(offset, len) {
            Ok(block) => block,
            Err(e) => return Err(bad(Rejection::new(ShareCheck::Read, e.to_string()))),
        };
        if let Err(rejection) = share.hashes.check_block(s, &block) {
            return Err(bad(rejection));
        }
        blocks.push((share.hashes.share, block));
    }
    let blocks: Vec<(usize, &[u8])> = blocks.iter().map(|(n, b)| (*n, &b[..])).collect();
    decoder.decode(s, &blocks, plaintext).map_err(Err)
}

fn read<S: ShareSource>(source: &mut S, offset: u64, len: u64) -> Result<Vec<u8>, Rejection> {
    match source.read_at(offset, len) {
        Ok(bytes) => Ok(bytes.into_owned()),
        Err(e) => Err(Rejection::new(ShareCheck::Read, e.to_string())),
    }
}
