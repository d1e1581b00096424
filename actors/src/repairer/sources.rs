//! The repairer's reading side: keeping `k` proved source shares, fetching each segment's
//! blocks from them, and regenerating the segment's blocks for every share.

use super::{Phase, Purpose, RepairError, Repairer};
use crate::actor::{Addr, Context};
use crate::ids::{NodeId, ShareNum};
use crate::protocol::{RequestId, Response};
use crate::reader::{self, Progress, ShareReader};
use cairn_codec::reshare::Regenerator;
use cairn_codec::verify::Rejection;

impl Repairer {
    /// Starts reading candidates until `k` shares are sources; fails the repair when that can
    /// no longer happen. Once all `k` are proved (first time only), goes on to the homes.
    pub(super) fn fill_sources(&mut self, ctx: &mut Context<'_>) {
        let k = self.cap.k;
        while self.sources.len() < k {
            let next = self
                .candidates
                .iter()
                .find(|(share, holders)| !holders.is_empty() && !self.sources.contains_key(share))
                .map(|(&share, _)| share);
            let Some(share) = next else {
                let found = self.sources.len();
                let why = format!(
                    "{found} shares could be proved good; the others held by the servers that \
                     answered failed their checks or their reads"
                );
                let err = self.not_enough(found, why);
                return self.fail(ctx, err);
            };
            let Some(server) = self.candidates.get_mut(&share).map(|h| h.remove(0)) else {
                return;
            };
            let reader = ShareReader::new(share, server);
            let (offset, len) = reader.next_read();
            self.sources.insert(share, reader);
            self.read(ctx, share, offset, len);
        }
        debug_assert!(self.sources.len() <= k, "at most k sources");
        let proved = self.sources.values().all(ShareReader::verified);
        if self.phase == Phase::Sources && proved {
            self.sources_proved(ctx);
        }
    }

    /// All `k` sources are proved: the regenerator, then homes for the new shares.
    fn sources_proved(&mut self, ctx: &mut Context<'_>) {
        let tree = self
            .sources
            .values()
            .find_map(ShareReader::crypttext_tree)
            .cloned();
        let (Some((ueb, bytes)), Some(tree)) = (self.ueb.clone(), tree) else {
            return;
        };
        match Regenerator::new(bytes, &ueb, tree) {
            Ok(regen) => self.regen = Some(regen),
            Err(e) => {
                let err = RepairError::Corrupt {
                    detail: e.to_string(),
                    traffic: self.traffic,
                };
                return self.fail(ctx, err);
            }
        }
        self.phase = Phase::Homes;
        self.plan_homes(ctx);
    }

    /// Sends the read of `share`'s source for `(offset, len)`.
    pub(super) fn read(&mut self, ctx: &mut Context<'_>, share: ShareNum, offset: u64, len: u64) {
        if let Some(reader) = self.sources.get_mut(&share) {
            let purpose = Purpose::Read { share };
            reader.send(ctx, &mut self.requests, self.si, (offset, len), purpose);
        }
    }

    /// An answer to a source's read (`None`: none came in time).
    pub(super) fn on_read(
        &mut self,
        ctx: &mut Context<'_>,
        id: RequestId,
        share: ShareNum,
        server: NodeId,
        answer: Option<Response>,
    ) {
        let Some(reader) = self.sources.get_mut(&share) else {
            return;
        };
        if reader.server != server || reader.request != Some(id) {
            return;
        }
        match reader.on_answer(&self.cap, answer) {
            Progress::Read(offset, len) => self.read(ctx, share, offset, len),
            Progress::Verified(v) => {
                if self.ueb.is_none() {
                    self.ueb = Some((v.ueb, v.ueb_bytes));
                }
                // A replacement source proved mid-stream reads on at the current segment.
                if self.phase != Phase::Sources {
                    self.fetch_blocks(ctx);
                }
            }
            Progress::Block(segment, data) => {
                if self.regen.as_ref().map(Regenerator::next_segment) == Some(segment) {
                    self.blocks.insert(share, data);
                }
            }
            Progress::Rejected(rejection) => self.reject_source(ctx, share, server, rejection),
            Progress::Fatal(e) => {
                let err = RepairError::Corrupt {
                    detail: e.to_string(),
                    traffic: self.traffic,
                };
                self.fail(ctx, err);
            }
        }
    }

    /// Sets a source aside (reporting corrupt bytes to its server) and finds another.
    fn reject_source(
        &mut self,
        ctx: &mut Context<'_>,
        share: ShareNum,
        server: NodeId,
        rejection: Rejection,
    ) {
        self.sources.remove(&share);
        self.blocks.remove(&share);
        let line = reader::fault_line(share, server, &rejection);
        tracing::debug!(si = %self.si, %line, "repair set a source aside");
        self.faults.push(line);
        if let Some(body) = reader::advisory(self.si, share, &rejection) {
            self.requests.send_only(ctx, Addr::storage(server), body);
        }
        // It does not count as a holder any more, for the placement after the repair.
        self.survey.disown(share, server);
        self.fill_sources(ctx);
    }

    /// Starts fetching the current segment's block from every idle proved source that has
    /// not brought it yet, if the write window allows.
    pub(super) fn fetch_blocks(&mut self, ctx: &mut Context<'_>) {
        let Some(segment) = self.regen.as_ref().map(Regenerator::next_segment) else {
            return;
        };
        if self.phase != Phase::Streaming || self.unacked.len() >= self.config.window.max(1) {
            return;
        }
        let idle: Vec<ShareNum> = self
            .sources
            .iter()
            .filter(|(share, r)| r.verified() && !r.busy() && !self.blocks.contains_key(share))
            .map(|(&share, _)| share)
            .collect();
        for share in idle {
            let read = self
                .sources
                .get_mut(&share)
                .and_then(|r| r.read_block(segment));
            if let Some((offset, len)) = read {
                self.read(ctx, share, offset, len);
            }
        }
    }

    /// Streaming: regenerates the current segment once its `k` blocks are in and sends each
    /// home its block; after the last, checks the whole and goes on to closing.
    pub(super) fn stream(&mut self, ctx: &mut Context<'_>) {
        if self.homes.is_empty() {
            return self.conclude(ctx);
        }
        if self.blocks.len() < self.cap.k {
            return self.fetch_blocks(ctx);
        }
        let Some(mut regen) = self.regen.take() else {
            return;
        };
        let blocks = std::mem::take(&mut self.blocks);
        let inputs: Vec<(usize, &[u8])> = blocks.iter().map(|(s, b)| (s.index(), &b[..])).collect();
        let segment = regen.next_segment();
        let header = regen.layout().header();
        match regen.regenerate(&inputs) {
            Ok(out) => {
                let homes: Vec<ShareNum> = self.homes.keys().copied().collect();
                for share in homes {
                    if segment == 0 {
                        self.send_write(ctx, share, 0, &header, None);
                    }
                    self.send_write(
                        ctx,
                        share,
                        out.offset,
                        out.block(share.index()),
                        Some(segment),
                    );
                }
            }
            Err(e) => {
                let err = RepairError::Corrupt {
                    detail: e.to_string(),
                    traffic: self.traffic,
                };
                return self.fail(ctx, err);
            }
        }
        debug_assert!(self.unacked.len() <= self.config.window.max(1));
        if regen.next_segment() < regen.geometry().num_segments {
            self.regen = Some(regen);
            return self.fetch_blocks(ctx);
        }
        match regen.finish() {
            Ok(file) => {
                self.file = Some(file);
                self.phase = super::Phase::Closing;
            }
            Err(e) => {
                let err = RepairError::Corrupt {
                    detail: e.to_string(),
                    traffic: self.traffic,
                };
                self.fail(ctx, err);
            }
        }
    }
}
