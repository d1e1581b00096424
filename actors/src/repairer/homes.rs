//! The repairer's writing side: choosing which shares to make and which servers to offer
//! them to, and the Allocate, Write, Close (or Abort) of each new share.

use super::{CloseState, Home, Phase, Purpose, Repairer};
use crate::actor::{Addr, Context};
use crate::ids::{NodeId, ShareNum};
use crate::placement::max_matching;
use crate::protocol::{self, LeaseSecret, Request, Response, UploadSecret};
use crate::uploader::UEB_ALLOWANCE;
use rand::RngCore;
use std::collections::BTreeSet;

impl Repairer {
    /// Picks the shares to make and offers each to a server.
    ///
    /// The shares the best matching of the placement leaves out are the ones whose new copy
    /// on a server holding nothing of the file raises happiness by one each. Every missing
    /// share is made (a full set of shares is the most robust); shares held only by servers
    /// matched to other shares are made as far as needed to reach `happy`.
    pub(super) fn plan_homes(&mut self, ctx: &mut Context<'_>) {
        let placement = self.survey.claims().clone();
        let matching = max_matching(&placement);
        let all = (0..self.cap.n).map(|i| ShareNum(i as u8));
        let missing: Vec<ShareNum> = all.clone().filter(|s| !placement.contains_key(s)).collect();
        let unmatched_held = all.filter(|s| placement.contains_key(s) && !matching.contains_key(s));
        let count = missing.len().max(self.happy.saturating_sub(matching.len()));
        self.targets = missing
            .into_iter()
            .chain(unmatched_held)
            .take(count)
            .collect();
        // Servers that hold shares of the file, or did not answer the survey, are not asked.
        self.tried = placement.values().flatten().copied().collect();
        let silent = self
            .survey
            .servers()
            .iter()
            .filter(|s| !self.survey.answered(**s));
        self.tried.extend(silent);
        let mut upload = [0u8; 32];
        ctx.rng().fill_bytes(&mut upload);
        self.upload = UploadSecret(upload);
        for share in self.targets.clone() {
            self.offer(ctx, share);
        }
    }

    /// Each new share is given room for the whole share, as its uploader gave it, so that the
    /// new copy is the same bytes as the lost one, trailing room included.
    fn allocated_size(&self) -> u64 {
        let layout = self.regen.as_ref().map(|r| *r.layout());
        let ueb_len = self.ueb.as_ref().map_or(0, |(_, b)| b.len() as u64);
        layout.map_or(0, |l| l.share_size(ueb_len.max(UEB_ALLOWANCE)))
    }

    /// Offers `share` to the next server on the ring not asked yet (if any is left).
    fn offer(&mut self, ctx: &mut Context<'_>, share: ShareNum) {
        let Some(server) = self.ring.iter().copied().find(|s| !self.tried.contains(s)) else {
            tracing::debug!(si = %self.si, share = share.0, "repair: no server left to offer a share to");
            return;
        };
        self.tried.insert(server);
        let body = Request::Allocate {
            si: self.si,
            shares: vec![share],
            share_size: self.allocated_size(),
            // The repairing client's lease, as on the shares it uploads itself.
            lease: LeaseSecret::derive(&self.config.lease_secret, self.si, server),
            upload: self.upload,
        };
        self.requests.send(
            ctx,
            Addr::storage(server),
            body,
            Purpose::Allocate { share },
        );
    }

    /// A server's answer to an Allocate (`None`: none came in time).
    pub(super) fn on_allocated(
        &mut self,
        ctx: &mut Context<'_>,
        share: ShareNum,
        server: NodeId,
        answer: Option<Response>,
    ) {
        if self.phase != Phase::Homes {
            // Too late (the repair moved on or failed): free what it may have reserved.
            if matches!(answer, Some(Response::Allocated { .. })) {
                self.abort(ctx, share, server);
            }
            return;
        }
        let (already_have, allocated) = match answer {
            Some(Response::Allocated {
                already_have,
                allocated,
            }) => (already_have, allocated),
            // No answer in time: the server may yet reserve the space; free it.
            None => {
                self.abort(ctx, share, server);
                return self.offer(ctx, share);
            }
            Some(_) => return self.offer(ctx, share),
        };
        let have: BTreeSet<ShareNum> = already_have.into_iter().collect();
        let mut holds_it = false;
        for &held in &have {
            holds_it |= self.survey.learn(held, server) && held == share;
        }
        if allocated.contains(&share) && !have.contains(&share) {
            if have.is_empty() {
                let home = Home {
                    server,
                    writes: 0,
                    trailer_sent: false,
                    close: CloseState::NotYet,
                };
                self.homes.insert(share, home);
                return;
            }
            // The server already holds shares of the file: another there adds nothing.
            self.abort(ctx, share, server);
        }
        // A server that holds this very share (a good copy, as far as is known) serves it;
        // otherwise the share needs another server (someone else may be uploading it here,
        // or the copy here was found bad).
        if !holds_it {
            self.offer(ctx, share);
        }
    }

    /// Every Allocate is answered: stream to the homes, or conclude if there are none.
    pub(super) fn homes_settled(&mut self, ctx: &mut Context<'_>) {
        if self.homes.is_empty() {
            return self.conclude(ctx);
        }
        self.phase = Phase::Streaming;
    }

    /// Writes `data` at `offset` of the new `share`, in pieces no bigger than a server takes.
    pub(super) fn send_write(
        &mut self,
        ctx: &mut Context<'_>,
        share: ShareNum,
        offset: u64,
        data: &[u8],
        segment: Option<u64>,
    ) {
        let Some(server) = self.homes.get(&share).map(|h| h.server) else {
            return;
        };
        self.traffic.bytes_uploaded += data.len() as u64;
        for body in protocol::writes(self.si, share, offset, data, self.upload) {
            let purpose = Purpose::Write { share, segment };
            self.requests
                .send(ctx, Addr::storage(server), body, purpose);
            if let Some(home) = self.homes.get_mut(&share) {
                home.writes += 1;
            }
            if let Some(s) = segment {
                *self.unacked.entry(s).or_default() += 1;
            }
        }
    }

    /// A server's answer to a Write (`None`: none came in time).
    pub(super) fn on_written(
        &mut self,
        ctx: &mut Context<'_>,
        share: ShareNum,
        server: NodeId,
        segment: Option<u64>,
        answer: Option<Response>,
    ) {
        if self.homes.get(&share).is_none_or(|h| h.server != server) {
            return;
        }
        if let Some(s) = segment {
            self.segment_write_done(s);
        }
        match answer {
            Some(Response::Ok) => {
                if let Some(home) = self.homes.get_mut(&share) {
                    home.writes = home.writes.saturating_sub(1);
                }
            }
            other => self.drop_home(ctx, share, &format!("a write failed: {other:?}")),
        }
    }

    fn segment_write_done(&mut self, segment: u64) {
        if let Some(count) = self.unacked.get_mut(&segment) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.unacked.remove(&segment);
            }
        }
    }

    /// Closing: each home's trailer, then, once every home is fully written, the Closes;
    /// once all are closed (or lost), the answer.
    pub(super) fn close_homes(&mut self, ctx: &mut Context<'_>) {
        let trail: Vec<ShareNum> = self
            .homes
            .iter()
            .filter(|(_, h)| !h.trailer_sent)
            .map(|(&share, _)| share)
            .collect();
        for share in trail {
            let Some(trailer) = self.file.as_ref().map(|f| f.share_trailer(share.index())) else {
                return;
            };
            let at = self
                .file
                .as_ref()
                .map_or(0, |f| f.layout().plaintext_hash_tree);
            self.send_write(ctx, share, at, &trailer, None);
            if let Some(home) = self.homes.get_mut(&share) {
                home.trailer_sent = true;
            }
        }
        if !self.homes.values().all(|h| h.writes == 0) {
            return;
        }
        let open: Vec<(ShareNum, NodeId)> = self
            .homes
            .iter()
            .filter(|(_, h)| h.close == CloseState::NotYet)
            .map(|(&share, h)| (share, h.server))
            .collect();
        for (share, server) in open {
            let body = Request::Close {
                si: self.si,
                share,
                upload: self.upload,
            };
            self.requests
                .send(ctx, Addr::storage(server), body, Purpose::Close { share });
            if let Some(home) = self.homes.get_mut(&share) {
                home.close = CloseState::Sent;
            }
        }
        if self.homes.values().all(|h| h.close == CloseState::Done) {
            self.conclude(ctx);
        }
    }

    /// A server's answer to a Close (`None`: none came in time).
    pub(super) fn on_closed(
        &mut self,
        ctx: &mut Context<'_>,
        share: ShareNum,
        server: NodeId,
        answer: Option<Response>,
    ) {
        if self.homes.get(&share).is_none_or(|h| h.server != server) {
            return;
        }
        match answer {
            Some(Response::Ok) => {
                if let Some(home) = self.homes.get_mut(&share) {
                    home.close = CloseState::Done;
                }
            }
            other => self.drop_home(ctx, share, &format!("closing failed: {other:?}")),
        }
    }

    /// Gives up on a new share's home: forgets its requests and frees its space.
    fn drop_home(&mut self, ctx: &mut Context<'_>, share: ShareNum, why: &str) {
        let Some(home) = self.homes.remove(&share) else {
            return;
        };
        tracing::info!(si = %self.si, share = share.0, server = ?home.server, why, "repair dropped a new share's server");
        let forgotten = self.requests.forget(|server, p| {
            server.node == home.server && matches!(p, Purpose::Write { share: s, .. } | Purpose::Close { share: s } if *s == share)
        });
        for (_, purpose) in forgotten {
            if let Purpose::Write {
                segment: Some(s), ..
            } = purpose
            {
                self.segment_write_done(s);
            }
        }
        self.abort(ctx, share, home.server);
    }

    /// Frees every new share not closed, and every reservation still being asked for.
    pub(super) fn abort_open_homes(&mut self, ctx: &mut Context<'_>) {
        let open: Vec<(ShareNum, NodeId)> = self
            .homes
            .iter()
            .filter(|(_, h)| h.close != CloseState::Done)
            .map(|(&share, h)| (share, h.server))
            .collect();
        for (share, server) in open {
            self.abort(ctx, share, server);
        }
        let asking = self
            .requests
            .forget(|_, p| matches!(p, Purpose::Allocate { .. }));
        for (server, purpose) in asking {
            if let Purpose::Allocate { share } = purpose {
                self.abort(ctx, share, server.node);
            }
        }
    }

    /// Asks `server` to free `share`'s space; nobody waits for the answer.
    fn abort(&mut self, ctx: &mut Context<'_>, share: ShareNum, server: NodeId) {
        let body = Request::Abort {
            si: self.si,
            share,
            upload: self.upload,
        };
        self.requests.send_only(ctx, Addr::storage(server), body);
    }
}
