//! The uploader's side of the storage protocol: sending Allocate, Write, Close and Abort,
//! matching and checking the answers, timing requests out, and dropping a server that fails.
//!
//! Every request is tracked with its deadline until answered; one sweep timer fires at the
//! earliest deadline. An answer counts only if its id is in flight, it comes from the server
//! asked, and it is the kind of answer that request expects; anything else is ignored.

use super::selection::{Ask, Refusal};
use super::{AllocRequest, Close, Home, OpKind, Run, ShareOp, Stream, SWEEP, UEB_ALLOWANCE};
use crate::actor::{Addr, Context, Effect, Service, Time};
use crate::ids::{NodeId, ShareNum};
use crate::protocol::{Message, RemoteError, Request, RequestId, Response, MAX_DATA_PER_MESSAGE};
use std::collections::BTreeSet;

impl Run {
    /// Sends `body` to `server`'s storage service; returns its id and deadline.
    pub(super) fn send(
        &mut self,
        server: NodeId,
        body: Request,
        ctx: &mut Context<'_>,
    ) -> (RequestId, Time) {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = ctx.now().after(self.config.request_timeout);
        let msg = Message::Request { id, deadline, body };
        ctx.send(Addr::new(server, Service::Storage), msg);
        (id, deadline)
    }

    /// Makes sure the sweep timer fires no later than `deadline`.
    pub(super) fn arm_sweep(&mut self, deadline: Time, ctx: &mut Context<'_>) {
        if self.sweep_at.is_none_or(|at| deadline < at) {
            self.sweep_at = Some(deadline);
            ctx.push(Effect::SetTimer {
                id: SWEEP,
                at: deadline,
            });
        }
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
            lease: self.lease,
        };
        let (id, deadline) = self.send(ask.server, body, ctx);
        self.allocs.insert(
            id,
            AllocRequest {
                server: ask.server,
                shares: ask.shares,
                deadline,
            },
        );
        self.arm_sweep(deadline, ctx);
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
        let mut at = offset;
        for piece in data.chunks(MAX_DATA_PER_MESSAGE as usize) {
            let body = Request::Write {
                si: self.si,
                share,
                offset: at,
                data: piece.to_vec(),
            };
            at += piece.len() as u64;
            let (id, deadline) = self.send(server, body, ctx);
            let op = ShareOp {
                server,
                share,
                deadline,
                kind: OpKind::Write { segment },
            };
            self.ops.insert(id, op);
            self.arm_sweep(deadline, ctx);
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
        let (id, deadline) = self.send(server, Request::Close { si: self.si, share }, ctx);
        let op = ShareOp {
            server,
            share,
            deadline,
            kind: OpKind::Close,
        };
        self.ops.insert(id, op);
        self.arm_sweep(deadline, ctx);
    }

    /// Asks a server to free a share's space. Nobody waits for the answer: if the server is
    /// gone, the allocation dies with it (or with its lease).
    pub(super) fn send_abort(&mut self, share: ShareNum, server: NodeId, ctx: &mut Context<'_>) {
        self.send(server, Request::Abort { si: self.si, share }, ctx);
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
        // An answer counts only from the server that was asked.
        if self.allocs.get(&id).is_some_and(|a| a.server == from.node) {
            self.on_allocate_answer(id, body);
        } else if self.ops.get(&id).is_some_and(|o| o.server == from.node) {
            self.on_op_answer(id, body, ctx);
        }
    }

    pub(super) fn on_allocate_answer(&mut self, id: RequestId, body: Response) {
        // Any other kind of answer is not an answer to an Allocate: ignore it; the request
        // times out if nothing better comes.
        if !matches!(body, Response::Allocated { .. } | Response::Err(_)) {
            return;
        }
        let Some(req) = self.allocs.remove(&id) else {
            return;
        };
        self.dirty = true;
        match body {
            Response::Allocated {
                already_have,
                allocated,
            } => {
                self.selection.accepted(req.server);
                self.take_allocation(&req, already_have, allocated);
            }
            Response::Err(e) => {
                tracing::debug!(server = ?req.server, error = %e, "allocation refused");
                let why = match e {
                    RemoteError::Full { .. } => Refusal::Full,
                    _ => Refusal::Error,
                };
                self.selection.refused(req.server, why);
            }
            _ => {}
        }
    }

    /// Records what a server holds and what it reserved. Shares outside the file, or
    /// reserved without being asked for, are ignored.
    pub(super) fn take_allocation(
        &mut self,
        req: &AllocRequest,
        already_have: Vec<ShareNum>,
        allocated: Vec<ShareNum>,
    ) {
        let n = self.params.n;
        let have: BTreeSet<ShareNum> = already_have.into_iter().filter(|s| s.index() < n).collect();
        for &share in &have {
            self.held.entry(share).or_default().insert(req.server);
        }
        let allocated: BTreeSet<ShareNum> = allocated.into_iter().collect();
        for share in allocated {
            if req.shares.contains(&share) && !have.contains(&share) {
                self.add_home(share, req.server);
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

    pub(super) fn on_op_answer(&mut self, id: RequestId, body: Response, ctx: &mut Context<'_>) {
        let Some(op) = self.ops.get(&id) else {
            return;
        };
        match (op.kind, body) {
            (kind, Response::Err(e)) => {
                let what = match kind {
                    OpKind::Write { .. } => "a write",
                    OpKind::Close => "closing",
                };
                let reason = format!("{what} of share {} failed: {e}", op.share.0);
                let server = op.server;
                self.fail_server(server, &reason, ctx);
            }
            (OpKind::Write { segment }, Response::Ok) => {
                let key = (op.share, op.server);
                self.ops.remove(&id);
                self.write_acked(key, segment);
            }
            (OpKind::Close, Response::Ok) => {
                let key = (op.share, op.server);
                self.ops.remove(&id);
                if let Some(home) = self.homes.get_mut(&key) {
                    home.close = Close::Done;
                }
            }
            // Not an answer to a Write or Close: ignore it.
            _ => {}
        }
    }

    pub(super) fn write_acked(&mut self, key: (ShareNum, NodeId), segment: Option<u64>) {
        if let Some(home) = self.homes.get_mut(&key) {
            home.writes = home.writes.saturating_sub(1);
        }
        if let Some(s) = segment {
            self.segment_write_done(s);
        }
    }

    pub(super) fn segment_write_done(&mut self, segment: u64) {
        if let Some(count) = self.unacked.get_mut(&segment) {
            *count -= 1;
            if *count == 0 {
                self.unacked.remove(&segment);
            }
        }
    }

    /// Every request whose deadline has passed fails its server.
    pub(super) fn on_sweep(&mut self, ctx: &mut Context<'_>) {
        self.sweep_at = None;
        let now = ctx.now();
        let late: BTreeSet<NodeId> = self
            .allocs
            .values()
            .map(|a| (a.server, a.deadline))
            .chain(self.ops.values().map(|o| (o.server, o.deadline)))
            .filter(|&(_, deadline)| deadline <= now)
            .map(|(server, _)| server)
            .collect();
        let reason = format!("no answer within {:?}", self.config.request_timeout);
        for server in late {
            self.fail_server(server, &reason, ctx);
        }
        let next = self
            .allocs
            .values()
            .map(|a| a.deadline)
            .chain(self.ops.values().map(|o| o.deadline))
            .min();
        if let Some(deadline) = next {
            self.arm_sweep(deadline, ctx);
        }
    }

    /// Drops `server` from the upload: forgets its requests and its shares (asking it to free
    /// what it reserved), so that selection finds the shares new homes.
    pub(super) fn fail_server(&mut self, server: NodeId, reason: &str, ctx: &mut Context<'_>) {
        tracing::info!(si = %self.si, ?server, reason, "storage server dropped from upload");
        self.selection.lost(server);
        self.dirty = true;
        let allocs: Vec<RequestId> = self
            .allocs
            .iter()
            .filter(|(_, a)| a.server == server)
            .map(|(&id, _)| id)
            .collect();
        for id in allocs {
            if let Some(req) = self.allocs.remove(&id) {
                for share in req.shares {
                    self.send_abort(share, server, ctx);
                }
            }
        }
        let ops: Vec<RequestId> = self
            .ops
            .iter()
            .filter(|(_, o)| o.server == server)
            .map(|(&id, _)| id)
            .collect();
        for id in ops {
            if let Some(ShareOp {
                kind: OpKind::Write { segment: Some(s) },
                ..
            }) = self.ops.remove(&id)
            {
                self.segment_write_done(s);
            }
        }
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
