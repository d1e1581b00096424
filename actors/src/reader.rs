//! Reading one share from one server and proving it with only a verify cap: its header, its
//! UEB against the cap's UEB hash, its hash trees and share hash chain, then any block
//! against its block hash tree. The reader is passive: it says which bytes to read next and
//! judges what comes back; its owner (the downloader, the checker or the repairer) sends the
//! reads.
//!
//! Memory: the region being read (a block, or the hash trees: 96 bytes per segment), and the
//! share's verified trees once they pass.

use crate::actor::{Addr, Context};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::protocol::{Request, RequestId, Response, MAX_DATA_PER_MESSAGE};
use crate::requests::Requests;
use cairn_codec::verify::{self, Rejection, ShareError, ShareHashes};
use cairn_codec::{Geometry, ShareCheck, ShareLayout, Ueb, VerifierCap};

/// What the reader is reading.
#[derive(Debug)]
enum Stage {
    Header,
    Ueb(ShareLayout),
    Trees(ShareLayout),
    /// Verified; no read in progress.
    Ready,
    Block(u64),
}

/// A region being read, in chunks the protocol allows.
#[derive(Debug)]
struct Region {
    offset: u64,
    len: u64,
    /// If set, a short answer is the end of the share, not an error (the UEB region).
    short_ok: bool,
    data: Vec<u8>,
}

/// What a share proved once its trees verified.
pub struct Verified {
    pub ueb: Ueb,
    pub ueb_bytes: Vec<u8>,
}

/// What became of an answer.
pub enum Progress {
    /// Read this next: `(offset, len)`.
    Read(u64, u64),
    /// The share is proved: its blocks can be read now.
    Verified(Box<Verified>),
    /// A verified block.
    Block(u64, Vec<u8>),
    /// The share (or this server's copy) is bad.
    Rejected(Rejection),
    /// The UEB the cap pins is unusable: no share of this file can help.
    Fatal(cairn_codec::Error),
}

/// One share on one server, being read. See the module docs.
pub struct ShareReader {
    pub share: ShareNum,
    pub server: NodeId,
    /// The read in flight (answers to others are stale).
    pub request: Option<RequestId>,
    stage: Stage,
    region: Region,
    /// The UEB, checked, while the trees are read.
    pending_ueb: Option<Verified>,
    hashes: Option<(ShareHashes, Geometry)>,
}

impl ShareReader {
    /// A reader of share `share` on `server`; its first read is `ShareReader::next_read`.
    pub fn new(share: ShareNum, server: NodeId) -> Self {
        ShareReader {
            share,
            server,
            request: None,
            stage: Stage::Header,
            region: Region {
                offset: 0,
                len: verify::HEADER_FETCH,
                short_ok: true,
                data: Vec::new(),
            },
            pending_ueb: None,
            hashes: None,
        }
    }

    /// The next chunk to read of the current region: `(offset, len)`.
    pub fn next_read(&self) -> (u64, u64) {
        let r = &self.region;
        let have = r.data.len() as u64;
        debug_assert!(have <= r.len, "a region never holds more than asked");
        (
            r.offset.saturating_add(have),
            (r.len - have).min(MAX_DATA_PER_MESSAGE),
        )
    }

    /// Sends the read `(offset, len)` of this share of the file `si` through `requests`, as
    /// the read in flight (answers to earlier ones are stale from now on).
    pub fn send<P>(
        &mut self,
        ctx: &mut Context<'_>,
        requests: &mut Requests<P>,
        si: StorageIndex,
        (offset, len): (u64, u64),
        purpose: P,
    ) {
        let body = Request::Read {
            si,
            share: self.share,
            offset,
            len,
        };
        let id = requests.send(ctx, Addr::storage(self.server), body, purpose);
        self.request = Some(id);
    }

    /// Whether the share has been proved (its blocks can be read).
    pub fn verified(&self) -> bool {
        self.hashes.is_some()
    }

    /// Whether a read is in progress.
    pub fn busy(&self) -> bool {
        !matches!(self.stage, Stage::Ready)
    }

    /// Starts reading block `segment` of a verified share: its first read, or `None` if the
    /// share is not verified (or the segment is not in the file).
    pub fn read_block(&mut self, segment: u64) -> Option<(u64, u64)> {
        let (hashes, g) = self.hashes.as_ref()?;
        if segment >= g.num_segments {
            return None;
        }
        let (offset, len) = hashes.block_region(g, segment);
        self.start(Stage::Block(segment), (offset, len), false);
        Some(self.next_read())
    }

    fn start(&mut self, stage: Stage, (offset, len): (u64, u64), short_ok: bool) {
        self.stage = stage;
        self.region = Region {
            offset,
            len,
            short_ok,
            data: Vec::new(),
        };
    }

    /// Judges the answer to the read in flight (`None`: none came in time).
    pub fn on_answer(&mut self, cap: &VerifierCap, answer: Option<Response>) -> Progress {
        self.request = None;
        let (_, asked) = self.next_read();
        let data = match answer {
            Some(Response::Data(data)) if data.len() as u64 <= asked => data,
            Some(Response::Data(_)) => return read_error("the server sent more bytes than asked"),
            Some(Response::Err(e)) => return read_error(&e.to_string()),
            Some(_) => return read_error("the server answered a read with something else"),
            None => return read_error("the server did not answer in time"),
        };
        let short = (data.len() as u64) < asked;
        let r = &mut self.region;
        r.data.extend_from_slice(&data);
        let complete = r.data.len() as u64 == r.len;
        match (complete, short, r.short_ok) {
            (true, _, _) | (false, true, true) => self.region_done(cap),
            (false, false, _) => {
                let (offset, len) = self.next_read();
                Progress::Read(offset, len)
            }
            (false, true, false) => read_error("the share is shorter than its header says"),
        }
    }

    /// The current region is in: check it and move on.
    fn region_done(&mut self, cap: &VerifierCap) -> Progress {
        let data = std::mem::take(&mut self.region.data);
        match std::mem::replace(&mut self.stage, Stage::Ready) {
            Stage::Header => match verify::check_header(cap, self.share.index(), &data) {
                Ok(layout) => self.read_next(Stage::Ueb(layout), verify::ueb_region(&layout), true),
                Err(r) => Progress::Rejected(r),
            },
            Stage::Ueb(layout) => match verify::check_ueb(cap, &layout, &data) {
                Ok((ueb, ueb_bytes)) => {
                    let ueb_bytes = ueb_bytes.to_vec();
                    self.pending_ueb = Some(Verified { ueb, ueb_bytes });
                    self.read_next(Stage::Trees(layout), verify::trees_region(&layout), false)
                }
                Err(ShareError::Rejected(r)) => Progress::Rejected(r),
                Err(ShareError::Fatal(e)) => Progress::Fatal(e),
            },
            Stage::Trees(layout) => {
                let Some(verified) = self.pending_ueb.take() else {
                    return read_error("the hash trees were read before the UEB");
                };
                match verify::check_trees(&verified.ueb, self.share.index(), &layout, &data) {
                    Ok(hashes) => {
                        self.hashes = Some((hashes, verified.ueb.geometry));
                        Progress::Verified(Box::new(verified))
                    }
                    Err(r) => Progress::Rejected(r),
                }
            }
            Stage::Block(segment) => {
                let Some((hashes, _)) = &self.hashes else {
                    return read_error("a block was read before the share was verified");
                };
                if crate::mutants::active(crate::mutants::Mutant::DownloaderSkipsBlockHash) {
                    return Progress::Block(segment, data);
                }
                match hashes.check_block(segment, &data) {
                    Ok(()) => Progress::Block(segment, data),
                    Err(r) => Progress::Rejected(r),
                }
            }
            Stage::Ready => read_error("an answer came with no read in progress"),
        }
    }

    fn read_next(&mut self, stage: Stage, region: (u64, u64), short_ok: bool) -> Progress {
        self.start(stage, region, short_ok);
        let (offset, len) = self.next_read();
        Progress::Read(offset, len)
    }

    /// The file's geometry, from the share's verified UEB.
    pub fn geometry(&self) -> Option<Geometry> {
        self.hashes.as_ref().map(|(_, g)| *g)
    }

    /// The verified crypttext hash tree (the same in every good share of the file).
    pub fn crypttext_tree(&self) -> Option<&cairn_codec::merkle::HashTree> {
        self.hashes.as_ref().map(|(h, _)| h.crypttext_tree())
    }
}

/// A rejected share as a report line.
pub fn fault_line(share: ShareNum, server: NodeId, rejection: &Rejection) -> String {
    format!(
        "share {} on server {server}: {} check failed: {}",
        share.0, rejection.check, rejection.detail
    )
}

/// The corruption advisory a rejection deserves: none for a failed read (the server may be
/// down or slow, its share fine), one for bytes that failed a check.
pub fn advisory(si: StorageIndex, share: ShareNum, rejection: &Rejection) -> Option<Request> {
    (rejection.check != ShareCheck::Read).then(|| Request::AdviseCorrupt {
        si,
        share,
        reason: format!("{} check failed: {}", rejection.check, rejection.detail),
    })
}

fn read_error(why: &str) -> Progress {
    Progress::Rejected(Rejection::new(ShareCheck::Read, why))
}
