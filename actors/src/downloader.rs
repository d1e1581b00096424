//! The downloader: one per download. The life of a download:
//!
//! 1. **Finding.** `List` to every known storage server, in the file's permuted-ring order;
//!    the answers (or timeouts) say who holds which shares. Proving starts as soon as `k`
//!    distinct shares are known (or every server has answered): a server that is down, or
//!    slow, costs a download nothing while others hold enough. Later answers still add
//!    holders, for replacements.
//! 2. **Proving.** `k` shares of distinct numbers are read and proved against the cap with
//!    a [`ShareReader`] each (header, UEB, hash trees and share hash chain). The first share
//!    proved pins the file's geometry and crypttext hash tree, and so the segment decoder.
//! 3. **Streaming.** Segment by segment, each of the `k` proved shares' block is read and
//!    checked, the `k` blocks are decoded, checked against the crypttext hash tree,
//!    decrypted, and output. The next segment is fetched while the user drains the last.
//!
//! A share that fails a check is reported to its server (a corruption advisory) and
//! replaced by another holder of the same share or another share, at any phase; a server
//! that does not answer in time is given up for that share. A copy whose only fault is a bad
//! block (bit rot strikes one place) is good for the other segments: once the stream is
//! past the bad one, the copy is a candidate again, so scattered rot in many shares still
//! leaves a file readable wherever each segment has `k` good blocks. No byte is output before it
//! verified. Requests go through one [`Requests`] table (one sweep timer).
//!
//! Memory: the current segment's blocks and one decoded segment waiting to be drained, plus
//! each proved share's hash trees (32 bytes per segment).

use crate::actor::{Actor, Addr, Context, Effect, Input, TimerId};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::{DownloadError, DownloadReceipt, LocalId, LocalResponse};
use crate::protocol::{Message, Request, RequestId, Response};
use crate::reader::{self, Progress, ShareReader};
use crate::requests::Requests;
use cairn_codec::verify::{Rejection, SegmentDecoder};
use cairn_codec::ShareCheck;
use cairn_codec::{ChkCap, VerifierCap};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Fires at the earliest deadline among the requests in flight.
const SWEEP: TimerId = TimerId(0);

/// One download. See the module docs.
pub struct Downloader {
    local: LocalId,
    cap: ChkCap,
    verifier: VerifierCap,
    si: StorageIndex,
    /// Known servers, in the file's permuted-ring order.
    servers: Vec<NodeId>,
    /// Each known server's place in that order.
    ring_position: BTreeMap<NodeId, usize>,
    requests: Requests<Purpose>,
    phase: Phase,
    /// Servers that have not answered `List` yet.
    listing: BTreeSet<NodeId>,
    /// Holders of each share not yet tried, in ring order.
    candidates: BTreeMap<ShareNum, Vec<NodeId>>,
    /// At most `k` shares being read: being proved, or proved and serving blocks.
    readers: BTreeMap<ShareNum, ShareReader>,
    /// Copies set aside for a bad block: the share, its holder, and the segment it failed
    /// (candidates again once the stream is past it).
    damaged: Vec<(ShareNum, NodeId, u64)>,
    faults: Vec<String>,
}

/// What a request of the download is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    List,
    Read(ShareNum),
}

/// Where the download is (see the module docs).
enum Phase {
    /// Created, not started.
    Waiting,
    /// `List`s out.
    Finding,
    /// Reading shares; none is proved yet.
    Proving,
    /// A share is proved: the decoder is made; segments stream once `k` are proved.
    Streaming(Box<Stream>),
    /// Answered and stopped.
    Done,
}

/// The streaming state: the decoder and the segment in progress.
struct Stream {
    decoder: SegmentDecoder,
    /// The segment being fetched, and its verified blocks so far.
    segment: u64,
    blocks: BTreeMap<ShareNum, Vec<u8>>,
    /// A decoded segment waiting for the local user to drain the previous one.
    ready: Option<Vec<u8>>,
    draining: bool,
    bytes_out: u64,
}

impl Downloader {
    /// A download of `cap` for local request `local`, asking `servers` (the storage servers the
    /// client knows); each request to a server is given up after `request_timeout`.
    pub fn new(
        local: LocalId,
        cap: ChkCap,
        servers: Vec<NodeId>,
        request_timeout: Duration,
    ) -> Self {
        let verifier = cap.verifier();
        let si = verifier.storage_index;
        let servers = crate::placement::permuted_ring(si, &servers);
        Downloader {
            local,
            ring_position: servers.iter().enumerate().map(|(i, &s)| (s, i)).collect(),
            servers,
            cap,
            verifier,
            si,
            requests: Requests::new(request_timeout, SWEEP),
            phase: Phase::Waiting,
            listing: BTreeSet::new(),
            candidates: BTreeMap::new(),
            readers: BTreeMap::new(),
            damaged: Vec::new(),
            faults: Vec::new(),
        }
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.requests.start(ctx);
        self.phase = Phase::Finding;
        // A cap the parser would refuse (caps can be built field by field): with k = 0 the
        // download would wait forever for nothing, neither answering nor stopping.
        let (k, n) = (self.cap.k, self.cap.n);
        if k == 0 || k > n || n > cairn_codec::params::MAX_SHARES {
            let why = format!(
                "the cap is malformed: it says k={k} of N={n} shares, but a cap needs \
                 1 <= k <= N <= {}",
                cairn_codec::params::MAX_SHARES
            );
            return self.fail(ctx, DownloadError::Corrupt(why));
        }
        if self.servers.is_empty() {
            return self.fail(ctx, self.not_enough("no storage servers are known"));
        }
        for &server in &self.servers {
            self.listing.insert(server);
            let body = Request::List { si: self.si };
            self.requests
                .send(ctx, Addr::storage(server), body, Purpose::List);
        }
    }

    fn on_response(&mut self, ctx: &mut Context<'_>, from: Addr, id: RequestId, body: Response) {
        if let Some((server, purpose)) = self.requests.answer(from, id) {
            self.answered(ctx, id, server.node, purpose, Some(body));
        }
    }

    fn on_sweep(&mut self, ctx: &mut Context<'_>) {
        for (id, server, purpose) in self.requests.expire(ctx) {
            if self.done() {
                return;
            }
            self.answered(ctx, id, server.node, purpose, None);
        }
    }

    /// A request's answer (`None`: none came in time).
    fn answered(
        &mut self,
        ctx: &mut Context<'_>,
        id: RequestId,
        server: NodeId,
        purpose: Purpose,
        answer: Option<Response>,
    ) {
        match purpose {
            Purpose::List => self.on_list(ctx, server, answer),
            Purpose::Read(share) => self.on_read(ctx, id, share, server, answer),
        }
    }

    /// A server's answer to `List`: its shares join their holders, in ring order. Proving
    /// starts once `k` distinct shares are known or every server has answered (or timed
    /// out); an answer after that may hold the replacement a failed share needs.
    fn on_list(&mut self, ctx: &mut Context<'_>, server: NodeId, answer: Option<Response>) {
        if !self.listing.remove(&server) {
            return;
        }
        if let Some(Response::Shares(shares)) = answer {
            let position = |s: &NodeId| self.ring_position.get(s).copied();
            for (share, _size) in shares {
                if share.index() >= self.cap.n {
                    continue;
                }
                let holders = self.candidates.entry(share).or_default();
                if !holders.contains(&server) {
                    let at = holders.partition_point(|h| position(h) < position(&server));
                    holders.insert(at, server);
                }
            }
        }
        match self.phase {
            Phase::Finding if self.listing.is_empty() || self.found() >= self.cap.k => {
                self.phase = Phase::Proving;
                self.fill(ctx);
            }
            Phase::Proving | Phase::Streaming(_) => self.fill(ctx),
            _ => {}
        }
    }

    /// Starts reading candidate shares until `k` are being read; fails the download when
    /// that can no longer happen.
    fn fill(&mut self, ctx: &mut Context<'_>) {
        if !matches!(self.phase, Phase::Proving | Phase::Streaming(_)) {
            return;
        }
        while self.readers.len() < self.cap.k {
            let next = self
                .candidates
                .iter_mut()
                .find(|(share, holders)| !holders.is_empty() && !self.readers.contains_key(share))
                .map(|(&share, holders)| (share, holders.remove(0)));
            let Some((share, server)) = next else {
                // Servers yet to answer `List` may hold what is missing.
                if self.listing.is_empty() && self.readers.values().all(ShareReader::verified) {
                    let why = format!(
                        "{} distinct shares found on {} servers",
                        self.found(),
                        self.servers.len()
                    );
                    self.fail(ctx, self.not_enough(&why));
                }
                // Else a share being proved may yet fail, and its replacement be needed.
                return;
            };
            let reader = ShareReader::new(share, server);
            let (offset, len) = reader.next_read();
            self.readers.insert(share, reader);
            self.read(ctx, share, offset, len);
        }
        debug_assert!(self.readers.len() <= self.cap.k);
    }

    /// How many distinct shares are (or were) known to exist.
    fn found(&self) -> usize {
        let mut shares: BTreeSet<ShareNum> = self.readers.keys().copied().collect();
        shares.extend(
            self.candidates
                .iter()
                .filter(|(_, h)| !h.is_empty())
                .map(|(s, _)| *s),
        );
        shares.len()
    }

    /// Sends the read of `share`'s reader for `(offset, len)`.
    fn read(&mut self, ctx: &mut Context<'_>, share: ShareNum, offset: u64, len: u64) {
        if let Some(reader) = self.readers.get_mut(&share) {
            let purpose = Purpose::Read(share);
            reader.send(ctx, &mut self.requests, self.si, (offset, len), purpose);
        }
    }

    /// An answer to a reader's read (`None`: none came in time).
    fn on_read(
        &mut self,
        ctx: &mut Context<'_>,
        id: RequestId,
        share: ShareNum,
        server: NodeId,
        answer: Option<Response>,
    ) {
        let Some(reader) = self.readers.get_mut(&share) else {
            return;
        };
        if reader.server != server || reader.request != Some(id) {
            return; // an answer to a read of an earlier holder, or a stale one
        }
        match reader.on_answer(&self.verifier, answer) {
            Progress::Read(offset, len) => self.read(ctx, share, offset, len),
            Progress::Verified(_) => {
                if matches!(self.phase, Phase::Proving) {
                    self.begin_streaming(ctx, share);
                }
                // If this was the last share in sight, fewer than k may be all there is.
                self.fill(ctx);
                self.advance(ctx);
            }
            Progress::Block(segment, data) => {
                if let Phase::Streaming(stream) = &mut self.phase {
                    if stream.segment == segment {
                        stream.blocks.insert(share, data);
                    }
                }
                self.advance(ctx);
            }
            Progress::Rejected(rejection) => self.reject(ctx, share, server, rejection),
            Progress::Fatal(e) => self.fail(ctx, DownloadError::Corrupt(e.to_string())),
        }
    }

    /// The first share is proved: its geometry and crypttext hash tree make the decoder.
    fn begin_streaming(&mut self, ctx: &mut Context<'_>, share: ShareNum) {
        let Some(tree) = self.readers.get(&share).and_then(|r| r.crypttext_tree()) else {
            return;
        };
        let Some(geometry) = self.readers.get(&share).and_then(|r| r.geometry()) else {
            return;
        };
        match SegmentDecoder::new(&self.cap, geometry, tree.clone()) {
            Ok(decoder) => {
                self.phase = Phase::Streaming(Box::new(Stream {
                    decoder,
                    segment: 0,
                    blocks: BTreeMap::new(),
                    ready: None,
                    draining: false,
                    bytes_out: 0,
                }))
            }
            Err(e) => self.fail(ctx, DownloadError::Corrupt(e.to_string())),
        }
    }

    /// A share failed (its read is over): drop it, tell its server when it served bad
    /// bytes, and find another.
    fn reject(
        &mut self,
        ctx: &mut Context<'_>,
        share: ShareNum,
        server: NodeId,
        rejection: Rejection,
    ) {
        self.readers.remove(&share);
        if let Phase::Streaming(stream) = &mut self.phase {
            stream.blocks.remove(&share);
        }
        if let ShareCheck::Block { segment } = rejection.check {
            self.damaged.push((share, server, segment));
        }
        let line = reader::fault_line(share, server, &rejection);
        tracing::debug!(%line, "download set a share aside");
        self.faults.push(line);
        if let Some(body) = reader::advisory(self.si, share, &rejection) {
            // Advice expects no follow-up: its answer is ignored.
            self.requests.send_only(ctx, Addr::storage(server), body);
        }
        self.fill(ctx);
        self.advance(ctx);
    }

    /// Moves the stream on: reads blocks once `k` shares are proved, decodes a segment once
    /// its `k` blocks are in, outputs it when the user is ready.
    fn advance(&mut self, ctx: &mut Context<'_>) {
        let k = self.cap.k;
        let proved = self.readers.values().filter(|r| r.verified()).count();
        let Phase::Streaming(stream) = &mut self.phase else {
            return;
        };
        let segments = stream.decoder.geometry().num_segments;
        if proved < k || stream.ready.is_some() || stream.segment >= segments {
            return;
        }
        if stream.blocks.len() < k {
            return self.fetch_blocks(ctx);
        }
        debug_assert_eq!(stream.blocks.len(), k, "blocks only of the k shares in use");
        let blocks: Vec<(usize, &[u8])> = stream
            .blocks
            .iter()
            .map(|(s, b)| (s.index(), &b[..]))
            .collect();
        let mut plaintext = Vec::new();
        if let Err(e) = stream
            .decoder
            .decode(stream.segment, &blocks, &mut plaintext)
        {
            return self.fail(ctx, DownloadError::Corrupt(e.to_string()));
        }
        stream.blocks.clear();
        stream.segment += 1;
        stream.ready = Some(plaintext);
        let next = stream.segment;
        self.restore_damaged(next);
        self.flush(ctx);
    }

    /// Copies set aside for a bad block of a segment before `segment` may serve it: they
    /// are candidates again (after the holders not yet tried).
    fn restore_damaged(&mut self, segment: u64) {
        let (restored, waiting) = std::mem::take(&mut self.damaged)
            .into_iter()
            .partition(|&(_, _, bad)| bad < segment);
        self.damaged = waiting;
        for (share, server, _) in restored {
            self.candidates.entry(share).or_default().push(server);
        }
    }

    /// Starts reading the current segment's block from every proved, idle share that has
    /// not brought it yet.
    fn fetch_blocks(&mut self, ctx: &mut Context<'_>) {
        let Phase::Streaming(stream) = &self.phase else {
            return;
        };
        let segment = stream.segment;
        let idle: Vec<ShareNum> = self
            .readers
            .iter()
            .filter(|(share, r)| r.verified() && !r.busy() && !stream.blocks.contains_key(share))
            .map(|(&share, _)| share)
            .collect();
        for share in idle {
            let read = self
                .readers
                .get_mut(&share)
                .and_then(|r| r.read_block(segment));
            if let Some((offset, len)) = read {
                self.read(ctx, share, offset, len);
            }
        }
    }

    /// Outputs the ready segment unless the user is still draining the previous one; after
    /// the last, answers.
    fn flush(&mut self, ctx: &mut Context<'_>) {
        let Phase::Streaming(stream) = &mut self.phase else {
            return;
        };
        if stream.draining {
            return;
        }
        let Some(data) = stream.ready.take() else {
            return;
        };
        stream.bytes_out += data.len() as u64;
        stream.draining = true;
        ctx.push(Effect::Output {
            to: self.local,
            data,
        });
        if stream.segment == stream.decoder.geometry().num_segments {
            let receipt = DownloadReceipt {
                bytes: stream.bytes_out,
                faults: std::mem::take(&mut self.faults),
            };
            self.finish(ctx, Ok(receipt));
        } else {
            self.advance(ctx); // fetch the next segment while this one drains
        }
    }

    fn on_drained(&mut self, ctx: &mut Context<'_>) {
        if let Phase::Streaming(stream) = &mut self.phase {
            stream.draining = false;
            self.flush(ctx);
            self.advance(ctx);
        }
    }

    fn not_enough(&self, why: &str) -> DownloadError {
        let mut detail = why.to_string();
        if !self.faults.is_empty() {
            detail.push_str(&format!(
                "; {} share(s) failed: {}",
                self.faults.len(),
                self.faults.join("; ")
            ));
        }
        DownloadError::NotEnoughShares {
            needed: self.cap.k,
            found: self.readers.values().filter(|r| r.verified()).count(),
            detail,
        }
    }

    fn fail(&mut self, ctx: &mut Context<'_>, error: DownloadError) {
        self.finish(ctx, Err(error));
    }

    fn finish(&mut self, ctx: &mut Context<'_>, result: Result<DownloadReceipt, DownloadError>) {
        if self.done() {
            return;
        }
        self.phase = Phase::Done;
        self.requests.close(ctx);
        ctx.reply(self.local, LocalResponse::Downloaded(result));
        ctx.push(Effect::Stop);
    }

    fn done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }
}

impl Actor for Downloader {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match (&self.phase, input) {
            (Phase::Done, _) => {}
            (_, Input::Cancel(local)) if local == self.local => {
                self.fail(ctx, DownloadError::Cancelled)
            }
            (Phase::Waiting, Input::Start) => self.start(ctx),
            (Phase::Waiting, _) => {} // nothing can be meant for a download not started
            (
                _,
                Input::Message {
                    from,
                    msg: Message::Response { id, body },
                },
            ) => self.on_response(ctx, from, id, body),
            (_, Input::Timer(SWEEP)) => self.on_sweep(ctx),
            (_, Input::OutputDrained) => self.on_drained(ctx),
            // Requests, announcements, local input, plaintext, stray timers: not for a
            // download.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
