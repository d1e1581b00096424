//! The downloader: one per download. Asks the known storage servers which shares of the file
//! they hold, verifies k shares against the cap (header, UEB, hash trees and chain), then
//! fetches their blocks segment by segment, checks each block, decodes, and streams verified
//! plaintext out. A share that fails a check is reported to its server (a corruption
//! advisory) and replaced by another; a server that does not answer in time is dropped.
//!
//! Memory: the current segment's blocks and one decoded segment waiting to be drained, plus
//! each active share's hash trees (32 bytes per segment).

use crate::actor::{Actor, Addr, Context, Effect, Input, Service, TimerId};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::{DownloadError, DownloadReceipt, LocalId, LocalResponse};
use crate::protocol::{Message, Request, RequestId, Response, MAX_DATA_PER_MESSAGE};
use cairn_codec::verify::{self, Rejection, SegmentDecoder, ShareError, ShareHashes};
use cairn_codec::{ChkCap, Geometry, ShareCheck, ShareLayout, Ueb};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One download.
pub struct Downloader {
    local: LocalId,
    cap: ChkCap,
    si: StorageIndex,
    /// Known servers, in the file's permuted-ring order.
    servers: Vec<NodeId>,
    request_timeout: Duration,
    next_request: u64,
    /// What each outstanding request is for.
    pending: BTreeMap<RequestId, Pending>,
    /// Servers that have not answered `List` yet.
    listing: BTreeSet<NodeId>,
    /// Shares not yet tried, by the servers said to hold them.
    candidates: BTreeMap<usize, Vec<NodeId>>,
    /// Shares being verified: their fetch in progress.
    verifying: BTreeMap<usize, Fetch>,
    /// Shares in use: their server and verified hashes.
    active: BTreeMap<usize, (NodeId, ShareHashes)>,
    /// The first verified UEB and the decoder made from it.
    ueb: Option<Ueb>,
    decoder: Option<SegmentDecoder>,
    /// The segment being fetched, and its blocks so far.
    segment: u64,
    blocks: BTreeMap<usize, Vec<u8>>,
    block_fetches: BTreeMap<usize, Fetch>,
    /// A decoded segment waiting for the local user to drain the previous one.
    ready: Option<Vec<u8>>,
    draining: bool,
    bytes_out: u64,
    faults: Vec<String>,
    done: bool,
}

/// What an outstanding request is for.
#[derive(Clone, Copy, Debug)]
enum Pending {
    List(NodeId),
    /// A chunk of a fetch of `share`'s bytes (verification or a block).
    Chunk {
        share: usize,
        block: bool,
    },
}

/// A ranged read of one share from one server, in chunks the protocol allows.
#[derive(Debug)]
struct Fetch {
    server: NodeId,
    stage: Stage,
    offset: u64,
    len: u64,
    /// If set, a short answer is the end of the share, not an error (the UEB region).
    short_ok: bool,
    data: Vec<u8>,
    /// The chunk request in flight (answers to older requests are stale).
    request: RequestId,
}

/// How far a share's verification has come.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Header,
    Ueb(ShareLayout),
    Trees(ShareLayout),
    Block,
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
        let si = StorageIndex::from(cap.key.storage_index());
        let servers = crate::placement::permuted_ring(si, &servers);
        Downloader {
            local,
            cap,
            si,
            servers,
            request_timeout,
            next_request: 0,
            pending: BTreeMap::new(),
            listing: BTreeSet::new(),
            candidates: BTreeMap::new(),
            verifying: BTreeMap::new(),
            active: BTreeMap::new(),
            ueb: None,
            decoder: None,
            segment: 0,
            blocks: BTreeMap::new(),
            block_fetches: BTreeMap::new(),
            ready: None,
            draining: false,
            bytes_out: 0,
            faults: Vec::new(),
            done: false,
        }
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        self.next_request = crate::replies::first_request_id(ctx);
        if self.servers.is_empty() {
            return self.fail(ctx, self.not_enough("no storage servers are known"));
        }
        for server in self.servers.clone() {
            self.listing.insert(server);
            self.request(
                ctx,
                server,
                Some(Pending::List(server)),
                Request::List { si: self.si },
            );
        }
    }

    /// Sends a request; a `purpose` makes it expect an answer within the request timeout.
    fn request(
        &mut self,
        ctx: &mut Context<'_>,
        server: NodeId,
        purpose: Option<Pending>,
        body: Request,
    ) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = ctx.now().after(self.request_timeout);
        ctx.send(
            Addr::new(server, Service::Storage),
            Message::Request { id, deadline, body },
        );
        if let Some(purpose) = purpose {
            self.pending.insert(id, purpose);
            ctx.set_timer(TimerId(id.0), self.request_timeout);
        }
        id
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: Addr, msg: Message) {
        let Message::Response { id, body } = msg else {
            return;
        };
        // Only the server asked may answer, and only once.
        let Some(purpose) = self.pending.get(&id).copied() else {
            return;
        };
        let asked = match purpose {
            Pending::List(server) => Some(server),
            Pending::Chunk { share, block } => self.fetch_mut(share, block).map(|f| f.server),
        };
        if asked.map(|server| Addr::new(server, Service::Storage)) != Some(from) {
            return;
        }
        self.pending.remove(&id);
        ctx.cancel_timer(TimerId(id.0));
        self.answered(ctx, id, purpose, Some(body));
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let id = RequestId(timer.0);
        if let Some(purpose) = self.pending.remove(&id) {
            self.answered(ctx, id, purpose, None);
        }
    }

    /// A request's answer (`None`: none came in time).
    fn answered(
        &mut self,
        ctx: &mut Context<'_>,
        id: RequestId,
        purpose: Pending,
        answer: Option<Response>,
    ) {
        match purpose {
            Pending::List(server) => self.on_list(ctx, server, answer),
            Pending::Chunk { share, block } => {
                if self
                    .fetch_mut(share, block)
                    .is_some_and(|f| f.request == id)
                {
                    self.on_chunk(ctx, share, block, answer);
                }
            }
        }
    }

    /// A server's answer to `List` (or `None`: it did not answer in time).
    fn on_list(&mut self, ctx: &mut Context<'_>, server: NodeId, answer: Option<Response>) {
        if !self.listing.remove(&server) {
            return;
        }
        if let Some(Response::Shares(shares)) = answer {
            for (share, _size) in shares.into_iter().filter(|(s, _)| s.index() < self.cap.n) {
                let holders = self.candidates.entry(share.index()).or_default();
                if !holders.contains(&server) {
                    holders.push(server);
                }
            }
        }
        if self.listing.is_empty() {
            self.fill(ctx);
        }
    }

    /// Starts verifying candidate shares until `k` are active or being verified; fails the
    /// download when that can no longer happen.
    fn fill(&mut self, ctx: &mut Context<'_>) {
        while self.active.len() + self.verifying.len() < self.cap.k {
            let next = self
                .candidates
                .iter()
                .find(|(share, holders)| {
                    !holders.is_empty()
                        && !self.active.contains_key(share)
                        && !self.verifying.contains_key(share)
                })
                .map(|(share, _)| *share);
            let Some(share) = next else {
                if self.verifying.is_empty() && !self.listing.is_empty() {
                    return; // more answers to `List` may still come
                }
                if self.verifying.is_empty() {
                    let why = format!(
                        "{} distinct shares found on {} servers",
                        self.found(),
                        self.servers.len()
                    );
                    return self.fail(ctx, self.not_enough(&why));
                }
                return;
            };
            let server = self
                .candidates
                .get_mut(&share)
                .expect("found above")
                .remove(0);
            self.begin_fetch(
                ctx,
                share,
                false,
                server,
                Stage::Header,
                0,
                verify::HEADER_FETCH,
                true,
            );
        }
    }

    /// How many distinct shares are (or were) known to exist.
    fn found(&self) -> usize {
        let mut shares: BTreeSet<usize> = self.active.keys().copied().collect();
        shares.extend(self.verifying.keys());
        shares.extend(
            self.candidates
                .iter()
                .filter(|(_, h)| !h.is_empty())
                .map(|(s, _)| *s),
        );
        shares.len()
    }

    #[allow(clippy::too_many_arguments)]
    fn begin_fetch(
        &mut self,
        ctx: &mut Context<'_>,
        share: usize,
        block: bool,
        server: NodeId,
        stage: Stage,
        offset: u64,
        len: u64,
        short_ok: bool,
    ) {
        let fetch = Fetch {
            server,
            stage,
            offset,
            len,
            short_ok,
            data: Vec::new(),
            request: RequestId(0),
        };
        if block {
            self.block_fetches.insert(share, fetch);
        } else {
            self.verifying.insert(share, fetch);
        }
        self.next_chunk(ctx, share, block);
    }

    fn fetch_mut(&mut self, share: usize, block: bool) -> Option<&mut Fetch> {
        match block {
            true => self.block_fetches.get_mut(&share),
            false => self.verifying.get_mut(&share),
        }
    }

    fn take_fetch(&mut self, share: usize, block: bool) -> Option<Fetch> {
        match block {
            true => self.block_fetches.remove(&share),
            false => self.verifying.remove(&share),
        }
    }

    fn next_chunk(&mut self, ctx: &mut Context<'_>, share: usize, block: bool) {
        let Some(f) = self.fetch_mut(share, block) else {
            return;
        };
        let have = f.data.len() as u64;
        let len = (f.len - have).min(MAX_DATA_PER_MESSAGE);
        let (server, offset) = (f.server, f.offset + have);
        let body = Request::Read {
            si: self.si,
            share: ShareNum(share as u8),
            offset,
            len,
        };
        let id = self.request(ctx, server, Some(Pending::Chunk { share, block }), body);
        if let Some(f) = self.fetch_mut(share, block) {
            f.request = id;
        }
    }

    /// A chunk of a fetch arrived (or `None`: it timed out).
    fn on_chunk(
        &mut self,
        ctx: &mut Context<'_>,
        share: usize,
        block: bool,
        answer: Option<Response>,
    ) {
        let Some(f) = self.fetch_mut(share, block) else {
            return;
        };
        let asked = (f.len - f.data.len() as u64).min(MAX_DATA_PER_MESSAGE);
        let data = match answer {
            Some(Response::Data(data)) if data.len() as u64 <= asked => data,
            Some(Response::Data(_)) => {
                return self.read_failed(ctx, share, block, "the server sent more bytes than asked")
            }
            Some(Response::Err(e)) => return self.read_failed(ctx, share, block, &e.to_string()),
            Some(_) => {
                return self.read_failed(
                    ctx,
                    share,
                    block,
                    "the server answered a read with something else",
                )
            }
            None => {
                return self.read_failed(ctx, share, block, "the server did not answer in time")
            }
        };
        let short = (data.len() as u64) < asked;
        f.data.extend_from_slice(&data);
        let complete = f.data.len() as u64 == f.len;
        match (complete, short, f.short_ok) {
            (true, _, _) | (false, true, true) => self.fetched(ctx, share, block),
            (false, false, _) => self.next_chunk(ctx, share, block),
            (false, true, false) => self.read_failed(
                ctx,
                share,
                block,
                "the share is shorter than its header says",
            ),
        }
    }

    fn read_failed(&mut self, ctx: &mut Context<'_>, share: usize, block: bool, why: &str) {
        if let Some(f) = self.take_fetch(share, block) {
            self.reject(ctx, share, f.server, Rejection::new(ShareCheck::Read, why));
        }
    }

    /// A fetch is complete: check what it brought and go on to the next stage.
    fn fetched(&mut self, ctx: &mut Context<'_>, share: usize, block: bool) {
        let Some(f) = self.take_fetch(share, block) else {
            return;
        };
        let outcome = match f.stage {
            Stage::Header => verify::check_header(&self.cap, share, &f.data).map(|layout| {
                let (offset, len) = verify::ueb_region(&layout);
                Some((Stage::Ueb(layout), offset, len, true))
            }),
            Stage::Ueb(layout) => match verify::check_ueb(&self.cap, &layout, &f.data) {
                Ok(ueb) => {
                    self.ueb.get_or_insert(ueb);
                    let (offset, len) = verify::trees_region(&layout);
                    Ok(Some((Stage::Trees(layout), offset, len, false)))
                }
                Err(ShareError::Rejected(r)) => Err(r),
                Err(ShareError::Fatal(e)) => {
                    return self.fail(ctx, DownloadError::Corrupt(e.to_string()))
                }
            },
            Stage::Trees(layout) => {
                let ueb = self.ueb.as_ref().expect("set at the UEB stage");
                verify::check_trees(ueb, share, &layout, &f.data).map(|hashes| {
                    self.active.insert(share, (f.server, hashes));
                    None
                })
            }
            Stage::Block => {
                let (_, hashes) = &self.active[&share];
                hashes.check_block(self.segment, &f.data).map(|()| {
                    self.blocks.insert(share, f.data);
                    None
                })
            }
        };
        match outcome {
            Ok(Some((stage, offset, len, short_ok))) => {
                self.begin_fetch(ctx, share, false, f.server, stage, offset, len, short_ok)
            }
            Ok(None) => {
                // A share became active (or a block arrived): fail early if k can no longer
                // be reached, else move on.
                self.fill(ctx);
                self.advance(ctx);
            }
            Err(rejection) => self.reject(ctx, share, f.server, rejection),
        }
    }

    /// A share failed (its fetch already ended): drop it, tell its server when it served
    /// bad bytes, and find another.
    fn reject(
        &mut self,
        ctx: &mut Context<'_>,
        share: usize,
        server: NodeId,
        rejection: Rejection,
    ) {
        self.active.remove(&share);
        self.blocks.remove(&share);
        let line = format!(
            "share {share} on server {server}: {} check failed: {}",
            rejection.check, rejection.detail
        );
        tracing::debug!(%line, "download set a share aside");
        self.faults.push(line);
        if rejection.check != ShareCheck::Read {
            let reason = format!("{} check failed: {}", rejection.check, rejection.detail);
            let body = Request::AdviseCorrupt {
                si: self.si,
                share: ShareNum(share as u8),
                reason,
            };
            // Advice expects no follow-up: its answer is ignored.
            self.request(ctx, server, None, body);
        }
        self.fill(ctx);
        self.advance(ctx);
    }

    /// Moves the download on: starts block fetches when k shares are active, decodes a
    /// segment once its k blocks are in, outputs it when the user is ready.
    fn advance(&mut self, ctx: &mut Context<'_>) {
        if self.done || self.active.len() < self.cap.k {
            return;
        }
        if self.decoder.is_none() {
            let (_, first) = self.active.values().next().expect("k >= 1 active");
            let ueb = self
                .ueb
                .as_ref()
                .expect("an active share passed the UEB stage");
            match SegmentDecoder::new(&self.cap, ueb.geometry, first.crypttext_tree().clone()) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => return self.fail(ctx, DownloadError::Corrupt(e.to_string())),
            }
        }
        let geometry = *self.decoder.as_ref().expect("just set").geometry();
        if self.ready.is_some() || self.segment >= geometry.num_segments {
            return;
        }
        if self.blocks.len() < self.cap.k {
            return self.fetch_blocks(ctx, &geometry);
        }
        self.decode_segment(ctx, &geometry);
    }

    fn fetch_blocks(&mut self, ctx: &mut Context<'_>, g: &Geometry) {
        let missing: Vec<(usize, NodeId, u64, u64)> = self
            .active
            .iter()
            .filter(|(share, _)| {
                !self.blocks.contains_key(share) && !self.block_fetches.contains_key(share)
            })
            .map(|(share, (server, hashes))| {
                let (offset, len) = hashes.block_region(g, self.segment);
                (*share, *server, offset, len)
            })
            .collect();
        for (share, server, offset, len) in missing {
            self.begin_fetch(ctx, share, true, server, Stage::Block, offset, len, false);
        }
    }

    fn decode_segment(&mut self, ctx: &mut Context<'_>, g: &Geometry) {
        let blocks: Vec<(usize, &[u8])> = self.blocks.iter().map(|(s, b)| (*s, &b[..])).collect();
        let mut plaintext = Vec::new();
        let decoder = self.decoder.as_mut().expect("made before fetching blocks");
        if let Err(e) = decoder.decode(self.segment, &blocks, &mut plaintext) {
            return self.fail(ctx, DownloadError::Corrupt(e.to_string()));
        }
        self.blocks.clear();
        self.segment += 1;
        self.ready = Some(plaintext);
        self.flush(ctx, g);
    }

    /// Outputs the ready segment unless the user is still draining the previous one.
    fn flush(&mut self, ctx: &mut Context<'_>, g: &Geometry) {
        if self.draining {
            return;
        }
        let Some(data) = self.ready.take() else {
            return;
        };
        self.bytes_out += data.len() as u64;
        self.draining = true;
        ctx.push(Effect::Output {
            to: self.local,
            data,
        });
        if self.segment == g.num_segments {
            let receipt = DownloadReceipt {
                bytes: self.bytes_out,
                faults: std::mem::take(&mut self.faults),
            };
            self.finish(ctx, Ok(receipt));
        } else {
            self.advance(ctx); // prefetch the next segment while this one drains
        }
    }

    fn on_drained(&mut self, ctx: &mut Context<'_>) {
        self.draining = false;
        if let Some(g) = self.decoder.as_ref().map(|d| *d.geometry()) {
            self.flush(ctx, &g);
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
            found: self.active.len(),
            detail,
        }
    }

    fn fail(&mut self, ctx: &mut Context<'_>, error: DownloadError) {
        self.finish(ctx, Err(error));
    }

    fn finish(&mut self, ctx: &mut Context<'_>, result: Result<DownloadReceipt, DownloadError>) {
        if self.done {
            return;
        }
        self.done = true;
        for id in std::mem::take(&mut self.pending).into_keys() {
            ctx.cancel_timer(TimerId(id.0));
        }
        ctx.reply(self.local, LocalResponse::Downloaded(result));
        ctx.push(Effect::Stop);
    }
}

impl Actor for Downloader {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        if self.done {
            return;
        }
        match input {
            Input::Start => self.start(ctx),
            Input::Message { from, msg } => self.on_message(ctx, from, msg),
            Input::Timer(timer) => self.on_timer(ctx, timer),
            Input::OutputDrained => self.on_drained(ctx),
            Input::Local { .. } | Input::Plaintext { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Time;
    use crate::local::LocalResponse;
    use cairn_codec::{encode_stream, EncodingParams, Key, ShareWriter};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::VecDeque;

    /// How a test server behaves.
    #[derive(Clone, Copy, PartialEq)]
    enum Behaviour {
        Good,
        Silent,
        /// Flips a bit in every block it serves.
        CorruptBlocks,
    }

    struct Server {
        id: NodeId,
        shares: BTreeMap<usize, Vec<u8>>,
        behaviour: Behaviour,
        advisories: usize,
    }

    #[derive(Default)]
    struct Shares(Vec<Vec<u8>>);

    impl ShareWriter for Shares {
        fn write_at(&mut self, share: usize, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.0.resize(self.0.len().max(share + 1), Vec::new());
            let buf = &mut self.0[share];
            let end = offset as usize + data.len();
            buf.resize(buf.len().max(end), 0);
            buf[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
    }

    fn file(size: usize) -> (Vec<u8>, ChkCap, Vec<Vec<u8>>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let params = EncodingParams::new(3, 10, 1000).unwrap();
        let mut shares = Shares::default();
        let f = encode_stream(Key([5; 16]), params, size as u64, &data[..], &mut shares).unwrap();
        (data, f.cap, shares.0)
    }

    /// Runs a download against servers holding one share each (server i holds share i),
    /// with virtual time; returns the output, the final response and the servers.
    fn run(
        behaviours: &[Behaviour],
        size: usize,
    ) -> (Vec<u8>, Vec<u8>, LocalResponse, Vec<Server>) {
        let (data, cap, shares) = file(size);
        let mut servers: Vec<Server> = behaviours
            .iter()
            .enumerate()
            .map(|(i, &behaviour)| Server {
                id: crate::ids::NodeKey::from_seed([i as u8 + 1; 32]).id(),
                shares: BTreeMap::from([(i, shares[i].clone())]),
                behaviour,
                advisories: 0,
            })
            .collect();
        let client = Addr::new(
            crate::ids::NodeKey::from_seed([99; 32]).id(),
            Service::Download(crate::OpId(1)),
        );
        let ids = servers.iter().map(|s| s.id).collect();
        let mut d = Downloader::new(LocalId(7), cap.clone(), ids, Duration::from_secs(5));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut now = Time(0);
        let mut inbox: VecDeque<Input> = VecDeque::from([Input::Start]);
        let mut timers: BTreeMap<TimerId, Time> = BTreeMap::new();
        let (mut out, mut response) = (Vec::new(), None);
        for _ in 0..100_000 {
            let input = match inbox.pop_front() {
                Some(input) => input,
                None => match timers
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(id, at)| (*id, *at))
                {
                    Some((id, at)) => {
                        timers.remove(&id);
                        now = at;
                        Input::Timer(id)
                    }
                    None => break,
                },
            };
            let mut ctx = Context::new(now, client, &mut rng);
            d.handle(input, &mut ctx);
            for effect in ctx.into_effects() {
                match effect {
                    Effect::Send { to, msg } => {
                        let server = servers
                            .iter_mut()
                            .find(|s| s.id == to.node)
                            .expect("a known server");
                        if let Some(answer) = serve(server, &cap, msg) {
                            inbox.push_back(Input::Message {
                                from: to,
                                msg: answer,
                            });
                        }
                    }
                    Effect::SetTimer { id, at } => {
                        timers.insert(id, at);
                    }
                    Effect::CancelTimer { id } => {
                        timers.remove(&id);
                    }
                    Effect::Output { data, .. } => {
                        out.extend_from_slice(&data);
                        inbox.push_back(Input::OutputDrained);
                    }
                    Effect::Reply { response: r, .. } => response = Some(r),
                    Effect::Stop => timers.clear(),
                    other => panic!("unexpected effect {other:?}"),
                }
            }
        }
        (data, out, response.expect("the download answered"), servers)
    }

    fn serve(server: &mut Server, cap: &ChkCap, msg: Message) -> Option<Message> {
        let Message::Request { id, body, .. } = msg else {
            return None;
        };
        if server.behaviour == Behaviour::Silent {
            return None;
        }
        let si = StorageIndex::from(cap.key.storage_index());
        let body = match body {
            Request::List { si: asked } if asked == si => Response::Shares(
                server
                    .shares
                    .iter()
                    .map(|(s, b)| (ShareNum(*s as u8), b.len() as u64))
                    .collect(),
            ),
            Request::Read {
                share, offset, len, ..
            } => match server.shares.get(&share.index()) {
                Some(bytes) => {
                    let start = (offset as usize).min(bytes.len());
                    let end = (start + len as usize).min(bytes.len());
                    let mut data = bytes[start..end].to_vec();
                    // Blocks are the only reads past the header at this size.
                    if server.behaviour == Behaviour::CorruptBlocks && offset == 0x24 {
                        data[0] ^= 1;
                    }
                    Response::Data(data)
                }
                None => Response::Err(crate::protocol::RemoteError::NoSuchShare),
            },
            Request::AdviseCorrupt { .. } => {
                server.advisories += 1;
                Response::Ok
            }
            _ => Response::Err(crate::protocol::RemoteError::Unsupported),
        };
        Some(Message::Response { id, body })
    }

    use Behaviour::*;

    #[test]
    fn downloads_from_all_good_servers() {
        let (data, out, response, _) = run(&[Good; 10], 5000);
        assert!(
            matches!(response, LocalResponse::Downloaded(Ok(ref r)) if r.bytes == 5000 && r.faults.is_empty()),
            "{response:?}"
        );
        assert_eq!(out, data);
    }

    #[test]
    fn survives_n_minus_k_silent_servers() {
        let mut b = [Silent; 10];
        b[2] = Good;
        b[5] = Good;
        b[9] = Good;
        let (data, out, response, _) = run(&b, 3001);
        assert!(
            matches!(response, LocalResponse::Downloaded(Ok(_))),
            "{response:?}"
        );
        assert_eq!(out, data);
    }

    #[test]
    fn fails_clearly_with_too_few_servers_and_outputs_nothing() {
        let mut b = [Silent; 10];
        b[0] = Good;
        b[1] = Good;
        let (_, out, response, _) = run(&b, 3001);
        let LocalResponse::Downloaded(Err(DownloadError::NotEnoughShares { needed: 3, .. })) =
            &response
        else {
            panic!("{response:?}")
        };
        assert!(
            response_text(&response).contains("2 distinct shares found on 10 servers"),
            "{response:?}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn routes_around_corrupt_blocks_and_advises_the_server() {
        let mut b = [Good; 10];
        b[0] = CorruptBlocks;
        let (data, out, response, servers) = run(&b, 2500);
        let LocalResponse::Downloaded(Ok(receipt)) = &response else {
            panic!("{response:?}")
        };
        assert_eq!(out, data);
        assert_eq!(receipt.faults.len(), 1, "{:?}", receipt.faults);
        assert!(
            receipt.faults[0].contains("block hash of segment 0"),
            "{:?}",
            receipt.faults
        );
        assert_eq!(servers[0].advisories, 1);
    }

    fn response_text(r: &LocalResponse) -> String {
        match r {
            LocalResponse::Downloaded(Err(e)) => e.to_string(),
            other => format!("{other:?}"),
        }
    }
}
