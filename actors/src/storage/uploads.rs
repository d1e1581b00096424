//! Shares being uploaded: allocating them (the space, the per-peer limit, the lease), and the
//! writes, closes and aborts of the upload that owns each — shown by its [`UploadSecret`] —
//! and the sweep that drops those left idle.

use super::{
    disk, Incoming, StorageServer, IDLE_TIMER, INCOMING_IDLE_LIMIT, MAX_INCOMING_PER_NODE,
    MAX_SHARE_SIZE,
};
use crate::actor::{Context, Time};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::protocol::{LeaseSecret, RemoteError, Response, UploadSecret, MAX_DATA_PER_MESSAGE};
use std::collections::BTreeSet;
use std::io;

/// An allocation request: for which file, how big, whose upload, when.
pub(super) struct Ask {
    pub si: StorageIndex,
    pub share_size: u64,
    pub upload: UploadSecret,
    pub uploader: NodeId,
    pub now: Time,
}

/// What an allocation will do with each share asked for.
#[derive(Default)]
struct AllocationPlan {
    already_have: Vec<ShareNum>,
    /// Shares to create now.
    allocate: Vec<ShareNum>,
    /// Shares this very upload allocated before (a retry): allocated, again.
    mine: Vec<ShareNum>,
    /// Some share did not fit.
    refused: bool,
    /// Some share would pass the uploader's limit of shares in flight.
    limited: bool,
}

impl StorageServer {
    pub(super) fn allocate(
        &mut self,
        ask: Ask,
        shares: &[ShareNum],
        lease: LeaseSecret,
    ) -> Result<Response, RemoteError> {
        let size = ask.share_size;
        if size == 0 || size > MAX_SHARE_SIZE {
            return Err(RemoteError::Malformed(format!(
                "share size {size} is not in 1..={MAX_SHARE_SIZE}"
            )));
        }
        let free = self.free_space()?;
        let plan = self.plan_allocation(&ask, shares, free)?;
        if plan.already_have.is_empty() && plan.allocate.is_empty() && plan.mine.is_empty() {
            if plan.limited {
                return Err(RemoteError::Limit(format!(
                    "your node is uploading {MAX_INCOMING_PER_NODE} shares to this server \
                     already; finish or abort some first"
                )));
            }
            if plan.refused {
                return Err(RemoteError::Full { free });
            }
            // Nothing held, nothing to make: no lease either.
            return Ok(Response::Allocated {
                already_have: Vec::new(),
                allocated: Vec::new(),
            });
        }
        self.create_all(&ask, &plan.allocate)?;
        let until = ask.now.after(self.config.lease_period);
        if let Err(e) = self.leases.grant(ask.si, lease, until) {
            // Without the lease the allocation did not happen: give the space back.
            for &share in &plan.allocate {
                self.drop_incoming(ask.si, share);
            }
            return Err(disk(e));
        }
        let mut allocated = plan.allocate;
        allocated.extend(plan.mine);
        allocated.sort();
        Ok(Response::Allocated {
            already_have: plan.already_have,
            allocated,
        })
    }

    /// Decides, without touching the store, what to do with each requested share.
    fn plan_allocation(
        &mut self,
        ask: &Ask,
        shares: &[ShareNum],
        mut budget: u64,
    ) -> Result<AllocationPlan, RemoteError> {
        let budget_at_start = budget;
        let charge = ask.share_size.max(self.config.min_share_charge);
        let held: BTreeSet<ShareNum> = self.complete_shares(ask.si)?.iter().map(|s| s.0).collect();
        let mut in_flight = self
            .incoming
            .values()
            .filter(|i| i.uploader == ask.uploader)
            .count();
        let mut plan = AllocationPlan::default();
        for share in shares.iter().copied().collect::<BTreeSet<_>>() {
            if held.contains(&share) {
                plan.already_have.push(share);
            } else if let Some(incoming) = self.incoming.get(&(ask.si, share)) {
                // Being written: by this upload (a retry), or by another, whose it stays.
                if incoming.upload == ask.upload {
                    plan.mine.push(share);
                }
            } else if in_flight >= MAX_INCOMING_PER_NODE {
                plan.limited = true;
            } else if charge <= budget {
                budget -= charge;
                in_flight += 1;
                plan.allocate.push(share);
            } else {
                plan.refused = true;
            }
        }
        debug_assert!(plan.allocate.len() as u64 * charge <= budget_at_start);
        Ok(plan)
    }

    /// Creates every share of `shares`, or none of them.
    fn create_all(&mut self, ask: &Ask, shares: &[ShareNum]) -> Result<(), RemoteError> {
        for (done, &share) in shares.iter().enumerate() {
            if let Err(e) = self.store.create(ask.si, share, ask.share_size) {
                for &created in &shares[..done] {
                    self.drop_incoming(ask.si, created);
                }
                return Err(match e.kind() {
                    io::ErrorKind::StorageFull => RemoteError::Full {
                        free: self.free_space().unwrap_or(0),
                    },
                    _ => disk(e),
                });
            }
            let incoming = Incoming {
                size: ask.share_size,
                overcharge: self.config.min_share_charge.saturating_sub(ask.share_size),
                upload: ask.upload,
                uploader: ask.uploader,
                touched: ask.now,
            };
            self.overcharge += incoming.overcharge;
            self.incoming.insert((ask.si, share), incoming);
        }
        Ok(())
    }

    /// The incoming share `(si, share)`, if `upload` owns it.
    fn owned(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        upload: UploadSecret,
    ) -> Result<&mut Incoming, RemoteError> {
        let incoming = self
            .incoming
            .get_mut(&(si, share))
            .ok_or(RemoteError::NotAllocated)?;
        match incoming.upload == upload {
            true => Ok(incoming),
            false => Err(RemoteError::NotYourUpload),
        }
    }

    pub(super) fn write(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: &[u8],
        upload: UploadSecret,
        now: Time,
    ) -> Result<Response, RemoteError> {
        if data.len() as u64 > MAX_DATA_PER_MESSAGE {
            return Err(RemoteError::Malformed(format!(
                "a write of {} bytes is over the {MAX_DATA_PER_MESSAGE}-byte limit",
                data.len()
            )));
        }
        let incoming = self.owned(si, share, upload)?;
        let size = incoming.size;
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > size) {
            return Err(RemoteError::OutOfBounds { size });
        }
        incoming.touched = now;
        self.store.write(si, share, offset, data).map_err(disk)?;
        Ok(Response::Ok)
    }

    pub(super) fn close(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        upload: UploadSecret,
    ) -> Result<Response, RemoteError> {
        self.owned(si, share, upload)?;
        if crate::mutants::active(crate::mutants::Mutant::StorageAcksCloseBeforeCommit) {
            return Ok(Response::Ok);
        }
        if let Err(e) = self.store.commit(si, share) {
            // The share is in an unknown state: get rid of it rather than keep a record of
            // it that may not match the store. The uploader will place it elsewhere.
            self.drop_incoming(si, share);
            return Err(disk(e));
        }
        let closed = self.forget_incoming(si, share);
        debug_assert!(closed, "checked to be incoming above");
        Ok(Response::Ok)
    }

    /// Aborting what is not incoming succeeds: the abort may be a retry whose first answer
    /// was lost. Aborting another upload's share does not.
    pub(super) fn abort(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        upload: UploadSecret,
    ) -> Result<Response, RemoteError> {
        match self.owned(si, share, upload) {
            Err(RemoteError::NotAllocated) => return Ok(Response::Ok),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.forget_incoming(si, share);
        let result = self.store.abort(si, share);
        self.forget_leases_if_empty(si);
        result.map(|()| Response::Ok).map_err(disk)
    }

    /// Forgets an incoming share and asks the store to delete it (best effort: a share the
    /// store cannot delete is aborted again at the next start).
    pub(super) fn drop_incoming(&mut self, si: StorageIndex, share: ShareNum) {
        self.forget_incoming(si, share);
        if let Err(e) = self.store.abort(si, share) {
            tracing::warn!(?si, share = share.0, "storage: cannot abort a share: {e}");
        }
        self.forget_leases_if_empty(si);
    }

    /// Takes a share off the incoming table (closed or aborted); false if it was not there.
    fn forget_incoming(&mut self, si: StorageIndex, share: ShareNum) -> bool {
        let Some(gone) = self.incoming.remove(&(si, share)) else {
            return false;
        };
        debug_assert!(self.overcharge >= gone.overcharge);
        self.overcharge -= gone.overcharge;
        true
    }

    /// Drops the shares whose uploads have been idle too long, and sets the idle timer for
    /// the next one that could be.
    pub(super) fn drop_idle_uploads(&mut self, ctx: &mut Context<'_>) {
        self.idle_check = None;
        let now = ctx.now();
        let idle: Vec<(StorageIndex, ShareNum)> = self
            .incoming
            .iter()
            .filter(|(_, i)| i.touched.after(INCOMING_IDLE_LIMIT) <= now)
            .map(|(&key, _)| key)
            .collect();
        for (si, share) in idle {
            tracing::info!(
                ?si,
                share = share.0,
                "storage: dropping an upload left idle"
            );
            self.drop_incoming(si, share);
        }
        self.arm_idle_check(ctx);
    }

    /// Makes sure the idle timer will fire for the oldest upload, if there is one.
    pub(super) fn arm_idle_check(&mut self, ctx: &mut Context<'_>) {
        if self.idle_check.is_some() {
            return;
        }
        let oldest = self.incoming.values().map(|i| i.touched).min();
        if let Some(oldest) = oldest {
            let at = oldest.after(INCOMING_IDLE_LIMIT);
            self.idle_check = Some(at);
            ctx.push(crate::actor::Effect::SetTimer { id: IDLE_TIMER, at });
        }
    }
}
