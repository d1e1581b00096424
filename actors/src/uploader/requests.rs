//! The uploader's side of the storage protocol: sending Allocate, Write, Close and Abort,
//! matching and checking the answers, timing requests out, and dropping a server that fails.
//!
//! Requests are kept in the actor's [`Requests`](crate::requests::Requests) table. An answer
//! counts only if its id is in flight, it comes from the server asked, and it is the kind of
//! answer that request expects; anything else is ignored (and the request times out if
//! nothing better comes).

use super::selection::{Ask, Refusal};
use super::{Close, Home, Purpose, Run, Stream, UEB_ALLOWANCE};
use crate::actor::{Addr, Context, Service};
use crate::ids::{NodeId, ShareNum};
use crate::protocol::{self, LeaseSecret, RemoteError, Request, RequestId, Response};
use std::collections::{BTreeMap, BTreeSet};

impl Run {
    /// Whether an Allocate is in flight.
    pub(super) fn allocating(&self) -> bool {
        self.requests
            .any(|_, p| matches!(p, Purpose::Allocate { .. }))
    }

    /// Each share is given room for its blocks, hash trees and the largest UEB expected.
    pub(super) fn allocated_size(&self) -> u64 {
        self.layout.share_size(UEB_ALLOWANCE)
    }

    pub(super) fn send_allocate(&mut self, ask: Ask, ctx: &mut Context<'_>) {
        let body = Request::Allocate {
            si: self.si,
            shares: ask.shares.clone(),
            share_size: self.allocated_size(),
            lease: LeaseSecret::derive(&self.config.lease_secret, self.si, ask.server),
            upload: self.upload,
        };
        let purpose = Purpose::Allocate { shares: ask.shares };
        self.requests
            .send(ctx, Addr::storage(ask.server), body, purpose);
    }

    /// Writes `data` at `offset` of a share, in pieces no bigger than a server accepts.
    pub(super) fn send_write(
        &mut self,
        (share, server): (ShareNum, NodeId),
        offset: u64,
        data: &[u8],
        segment: Option<u64>,
        ctx: &mut Context<'_>,
    ) {
        for body in protocol::writes(self.si, share, offset, data, self.upload) {
            let purpose = Purpose::Write { share, segment };
            self.requests
                .send(ctx, Addr::storage(server), body, purpose);
            if let Some(home) = self.homes.get_mut(&(share, server)) {
                home.writes += 1;
            }
            if let Some(s) = segment {
                *self.unacked.entry(s).or_default() += 1;
            }
        }
    }

    pub(super) fn send_close(
        &mut self,
        (share, server): (ShareNum, NodeId),
        ctx: &mut Context<'_>,
    ) {
        let body = Request::Close {
            si: self.si,
            share,
            upload: self.upload,
        };
        let purpose = Purpose::Close { share };
        self.requests
            .send(ctx, Addr::storage(server), body, purpose);
    }

    /// Asks a server to free a share's space. Nobody waits for the answer: if the server is
    /// gone, the allocation dies with it (or with its lease).
    pub(super) fn send_abort(&mut self, share: ShareNum, server: NodeId, ctx: &mut Context<'_>) {
        let body = Request::Abort {
            si: self.si,
            share,
            upload: self.upload,
        };
        self.requests.send_only(ctx, Addr::storage(server), body);
    }

    pub(super) fn on_response(
        &mut self,
        from: Addr,
        id: RequestId,
        body: Response,
        ctx: &mut Context<'_>,
    ) {
        if from.service != Service::Storage {
            return;
        }
        let expected = match (self.requests.get(from, id), &body) {
            (None, _) => return, // not pending, or not from the server asked
            (Some(_), Response::Err(_)) => true,
            (Some(Purpose::Allocate { .. }), answer) => {
                matches!(answer, Response::Allocated { .. })
            }
            (Some(Purpose::Write { .. } | Purpose::Close { .. }), answer) => {
                matches!(answer, Response::Ok)
            }
        };
        if !expected {
            return; // not the answer such a request gets: it times out if nothing better comes
        }
        let Some((server, purpose)) = self.requests.take(id) else {
            return;
        };
        match purpose {
            Purpose::Allocate { shares } => self.on_allocate_answer(server.node, shares, body),
            purpose => self.on_share_answer(server.node, purpose, body, ctx),
        }
    }

    fn on_allocate_answer(&mut self, server: NodeId, shares: Vec<ShareNum>, body: Response) {
        self.dirty = true;
        match body {
            Response::Allocated {
                already_have,
                allocated,
            } => {
                self.selection.accepted(server);
                self.take_allocation(server, &shares, already_have, allocated);
            }
            Response::Err(e) => {
                tracing::debug!(?server, error = %e, "allocation refused");
                let why = match e {
                    RemoteError::Full { .. } => Refusal::Full,
                    _ => Refusal::Error,
                };
                self.selection.refused(server, why);
            }
            _ => {}
        }
    }

    /// Records what a server holds and what it reserved. Shares outside the file, or
    /// reserved without being asked for, are ignored.
    pub(super) fn take_allocation(
        &mut self,
        server: NodeId,
        asked: &[ShareNum],
        already_have: Vec<ShareNum>,
        allocated: Vec<ShareNum>,
    ) {
        let n = self.params.n;
        let have: BTreeSet<ShareNum> = already_have.into_iter().filter(|s| s.index() < n).collect();
        for &share in &have {
            self.held.entry(share).or_default().insert(server);
        }
        let allocated: BTreeSet<ShareNum> = allocated.into_iter().collect();
        for share in allocated {
            if asked.contains(&share) && !have.contains(&share) {
                self.add_home(share, server);
            }
        }
    }

    pub(super) fn add_home(&mut self, share: ShareNum, server: NodeId) {
        if self.homes.contains_key(&(share, server)) {
            return;
        }
        self.homes.insert((share, server), Home::default());
        if self.stream.next > 0 {
            // The new home needs every block from the first: re-encode from the start.
            self.stream = Stream {
                encoder: None,
                next: 0,
                pull: None,
            };
        }
    }

    /// The answer to a Write or Close: `Ok`, or an error that fails the server.
    fn on_share_answer(
        &mut self,
        server: NodeId,
        purpose: Purpose,
        body: Response,
        ctx: &mut Context<'_>,
    ) {
        match (purpose, body) {
            (Purpose::Write { share, segment }, Response::Ok) => {
                self.write_acked((share, server), segment)
            }
            (Purpose::Close { share }, Response::Ok) => {
                if let Some(home) = self.homes.get_mut(&(share, server)) {
                    home.close = Close::Done;
                }
            }
            (purpose, Response::Err(e)) => {
                let (what, share) = match &purpose {
                    Purpose::Write { share, .. } => ("a write", share),
                    Purpose::Close { share } => ("closing", share),
                    Purpose::Allocate { .. } => return,
                };
                let reason = format!("{what} of share {} failed: {e}", share.0);
                self.drop_requests(server, vec![purpose], ctx);
                self.fail_server(server, &reason, ctx);
            }
            _ => {}
        }
    }

    pub(super) fn write_acked(&mut self, key: (ShareNum, NodeId), segment: Option<u64>) {
        if let Some(home) = self.homes.get_mut(&key) {
            debug_assert!(home.writes > 0, "an acknowledged write was counted");
            home.writes = home.writes.saturating_sub(1);
        }
        if let Some(s) = segment {
            self.segment_write_done(s);
        }
    }

    pub(super) fn segment_write_done(&mut self, segment: u64) {
        debug_assert!(
            self.unacked.contains_key(&segment),
            "a write of segment {segment} was counted"
        );
        if let Some(count) = self.unacked.get_mut(&segment) {
            *count -= 1;
            if *count == 0 {
                self.unacked.remove(&segment);
            }
        }
    }

    /// Every request whose deadline has passed fails its server.
    pub(super) fn on_sweep(&mut self, ctx: &mut Context<'_>) {
        let mut late: BTreeMap<NodeId, Vec<Purpose>> = BTreeMap::new();
        for (_, server, purpose) in self.requests.take_late(ctx.now()) {
            late.entry(server.node).or_default().push(purpose);
        }
        let reason = format!("no answer within {:?}", self.config.request_timeout);
        for (server, purposes) in late {
            // Deadlines follow ids, so the late requests are the server's oldest: dropping
            // them first keeps the aborts in the order the allocations were asked.
            self.drop_requests(server, purposes, ctx);
            self.fail_server(server, &reason, ctx);
        }
        self.requests.rearm(ctx);
    }

    /// Undoes what requests no longer waited on stood for: reservations are freed, writes
    /// no longer hold their segment's window.
    fn drop_requests(&mut self, server: NodeId, purposes: Vec<Purpose>, ctx: &mut Context<'_>) {
        for purpose in purposes {
            match purpose {
                Purpose::Allocate { shares } => {
                    for share in shares {
                        self.send_abort(share, server, ctx);
                    }
                }
                Purpose::Write {
                    segment: Some(s), ..
                } => self.segment_write_done(s),
                Purpose::Write { .. } | Purpose::Close { .. } => {}
            }
        }
    }

    /// Drops `server` from the upload: forgets its requests and its shares (asking it to free
    /// what it reserved), so that selection finds the shares new homes.
    pub(super) fn fail_server(&mut self, server: NodeId, reason: &str, ctx: &mut Context<'_>) {
        tracing::info!(si = %self.si, ?server, reason, "storage server dropped from upload");
        self.selection.lost(server);
        self.dirty = true;
        let pending = self.requests.forget(|to, _| to.node == server);
        let purposes = pending.into_iter().map(|(_, purpose)| purpose).collect();
        self.drop_requests(server, purposes, ctx);
        let homes: Vec<(ShareNum, NodeId)> = self
            .homes
            .keys()
            .filter(|(_, s)| *s == server)
            .copied()
            .collect();
        for key in homes {
            if let Some(home) = self.homes.remove(&key) {
                if home.close != Close::Done {
                    self.send_abort(key.0, server, ctx);
                }
            }
        }
        for holders in self.held.values_mut() {
            holders.remove(&server);
        }
        self.held.retain(|_, holders| !holders.is_empty());
    }
}
