//! The uploader: one actor per upload. It picks storage servers for the file's shares
//! (permuted ring plus servers-of-happiness, see [`crate::placement`]), pulls the plaintext
//! from the local user one segment at a time, encodes it with the codec's streaming
//! [`Encoder`], pipelines each share's blocks to its servers, writes the hash trees and UEB
//! at the end, closes every share and answers with the cap.
//!
//! The life of an upload:
//!
//! 1. **Selection.** Allocate requests walk the ring (see `selection`) until every share has
//!    a home and enough servers hold distinct shares (`happy`), or nobody is left to ask.
//! 2. **Streaming.** One [`Effect::Pull`] at a time; at most `window` segments whose writes
//!    are not all acknowledged, so memory stays O(window × segment).
//! 3. **Finishing.** After the last segment (and a one-byte pull past the promised end, to
//!    catch an input that runs long): each share's trailer, then, once every write to every
//!    server is acknowledged, a Close per share. Success only once every share in the
//!    receipt is closed.
//!
//! A server that times out or returns an error at any point is dropped with all its shares.
//! Selection then looks for new homes for the shares it leaves homeless. A new home must be
//! brought up to date from the first segment, and encoding is deterministic, so the stream
//! simply restarts at segment 0 with a fresh encoder: homes already further along get
//! nothing until the stream catches up with them. Pulls pause while allocations are in
//! flight, so one restart serves every share re-homed at once.

use crate::actor::{Actor, Context, Effect, Input, TimerId};
use crate::ids::{NodeId, ShareNum, StorageIndex};
use crate::local::{LocalId, LocalResponse, UploadError, UploadReceipt};
use crate::placement::{happiness, permuted_ring};
use crate::protocol::{Message, UploadSecret};
use crate::requests::Requests;
use cairn_codec::{EncodedFile, Encoder, EncodingParams, Geometry, Key, ShareLayout};
use rand::RngCore;
use selection::{Placement, Selection};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod requests;
mod selection;
mod stream;
#[cfg(test)]
mod tests;

/// Bytes reserved in each share for the UEB, whose exact length is known only after the last
/// segment. Tahoe-LAFS reserves the same 1000; a UEB is about 400. Servers bound writes by
/// the allocated size, so a share may end up shorter than its allocation.
pub const UEB_ALLOWANCE: u64 = 1000;

/// The whole upload's deadline.
const DEADLINE: TimerId = TimerId(0);
/// Fires at the earliest deadline among the requests in flight.
const SWEEP: TimerId = TimerId(1);

/// How an upload paces itself and when it gives up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// A server that has not answered a request within this is taken for dead.
    pub request_timeout: Duration,
    /// The whole upload fails with [`UploadError::Deadline`] if not done within this.
    pub deadline: Duration,
    /// Segments whose writes may be unacknowledged at once (at least 1 is used).
    pub window: usize,
    /// The client's lease secret, from which each server's is derived
    /// ([`crate::protocol::LeaseSecret::derive`]).
    pub lease_secret: [u8; 32],
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            request_timeout: Duration::from_secs(60),
            deadline: Duration::from_secs(3600),
            window: 4,
            lease_secret: [0; 32],
        }
    }
}

/// One upload, run as the actor at `Service::Upload(op)`. See the module docs.
pub struct Uploader {
    state: State,
}

enum State {
    /// Constructed, not yet started: what [`Uploader::new`] was given.
    Waiting(Setup),
    Running(Box<Run>),
    Finished,
}

struct Setup {
    local: LocalId,
    key: Key,
    params: EncodingParams,
    happy: usize,
    size: u64,
    servers: Vec<NodeId>,
    config: UploadConfig,
}

impl Uploader {
    /// An upload of `size` bytes (pulled from local request `local`) under `key`, placing
    /// shares on `servers` until `happy` of them hold distinct shares. The arguments are
    /// checked on [`Input::Start`]; a bad one is answered with
    /// [`UploadError::Invalid`] (or `NotHappy` for too few servers).
    pub fn new(
        local: LocalId,
        key: Key,
        params: EncodingParams,
        happy: usize,
        size: u64,
        servers: Vec<NodeId>,
        config: UploadConfig,
    ) -> Self {
        Uploader {
            state: State::Waiting(Setup {
                local,
                key,
                params,
                happy,
                size,
                servers,
                config,
            }),
        }
    }
}

impl Actor for Uploader {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Waiting(setup) => match input {
                Input::Start => self.state = start(setup, ctx),
                Input::Cancel(local) if local == setup.local => {
                    let cancelled = LocalResponse::Uploaded(Err(UploadError::Cancelled));
                    ctx.reply(local, cancelled);
                    ctx.push(Effect::Stop);
                }
                // Nothing can be meant for an upload that has not started.
                _ => self.state = State::Waiting(setup),
            },
            State::Running(mut run) => {
                run.handle(input, ctx);
                if !run.finished {
                    self.state = State::Running(run);
                }
            }
            State::Finished => {}
        }
    }
}

/// Validates the upload and starts selection; or answers with the error and stops.
fn start(setup: Setup, ctx: &mut Context<'_>) -> State {
    let local = setup.local;
    match Run::new(setup, ctx) {
        Ok(mut run) => {
            run.progress(ctx);
            if run.finished {
                State::Finished
            } else {
                State::Running(Box::new(run))
            }
        }
        Err(e) => {
            tracing::info!(error = %e, "upload refused");
            ctx.reply(local, LocalResponse::Uploaded(Err(e)));
            ctx.push(Effect::Stop);
            State::Finished
        }
    }
}

/// One place a share is being written: a (share, server) pair that accepted it.
#[derive(Debug, Default)]
struct Home {
    /// The next segment whose block this home needs.
    next_segment: u64,
    /// Writes sent and not yet acknowledged.
    writes: usize,
    trailer_sent: bool,
    close: Close,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Close {
    #[default]
    NotYet,
    Sent,
    Done,
}

/// What a request of the upload is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    /// Room for these shares.
    Allocate {
        shares: Vec<ShareNum>,
    },
    /// A write of segment `Some(s)`'s block of `share`, or of its header or trailer (`None`).
    Write {
        share: ShareNum,
        segment: Option<u64>,
    },
    Close {
        share: ShareNum,
    },
}

/// Where the plaintext stream is.
struct Stream {
    /// `None` before the first segment of a restarted stream, and after the last.
    encoder: Option<Encoder>,
    /// The next segment to encode.
    next: u64,
    /// The offset of the pull in flight, if any.
    pull: Option<u64>,
}

/// Whether the input has been checked to end where promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eof {
    Unchecked,
    Pending,
    Confirmed,
}

/// A started upload.
struct Run {
    local: LocalId,
    key: Key,
    params: EncodingParams,
    happy: usize,
    config: UploadConfig,
    si: StorageIndex,
    geometry: Geometry,
    layout: ShareLayout,
    /// Shown with every allocation, write, close and abort: the shares are this upload's.
    upload: UploadSecret,
    selection: Selection,
    homes: BTreeMap<(ShareNum, NodeId), Home>,
    /// Shares servers already hold complete (`Allocated.already_have`).
    held: Placement,
    /// Allocates, writes and closes in flight.
    requests: Requests<Purpose>,
    stream: Stream,
    /// Segment -> its writes not yet acknowledged (only segments with some).
    unacked: BTreeMap<u64, usize>,
    /// The hash trees, UEB and cap, once the first pass over the input is done.
    file: Option<EncodedFile>,
    eof: Eof,
    /// Set once the first selection settles happily; from then on the stream runs.
    streaming: bool,
    /// Happiness of the current placement (recomputed when the placement changes).
    achieved: usize,
    /// Distinct shares in the current placement.
    distinct: usize,
    /// The placement or the servers' states changed: recompute and plan more asks.
    dirty: bool,
    finished: bool,
}

impl Run {
    fn new(setup: Setup, ctx: &mut Context<'_>) -> Result<Run, UploadError> {
        let Setup {
            local,
            key,
            params,
            happy,
            size,
            servers,
            config,
        } = setup;
        if size == 0 {
            return Err(UploadError::Invalid(
                "an empty file is not uploaded: its cap is URI:LIT:".into(),
            ));
        }
        let encoder = Encoder::new(key, params, size)
            .map_err(|e| UploadError::Invalid(format!("cannot encode this file: {e}")))?;
        if happy == 0 || happy > params.n {
            return Err(UploadError::Invalid(format!(
                "happy={happy} must be between 1 and the number of shares N={}",
                params.n
            )));
        }
        let si = key.storage_index();
        let ring = permuted_ring(si, &servers);
        if ring.len() < happy {
            return Err(too_few_servers(happy, ring.len()));
        }
        let mut upload = [0u8; 32];
        ctx.rng().fill_bytes(&mut upload);
        let mut requests = Requests::new(config.request_timeout, SWEEP);
        requests.start(ctx);
        ctx.set_timer(DEADLINE, config.deadline);
        tracing::debug!(%si, size, happy, servers = ring.len(), "upload starts");
        Ok(Run {
            local,
            key,
            params,
            happy,
            si,
            geometry: *encoder.geometry(),
            layout: *encoder.layout(),
            upload: UploadSecret(upload),
            selection: Selection::new(params.n, ring),
            homes: BTreeMap::new(),
            held: Placement::new(),
            requests,
            stream: Stream {
                encoder: Some(encoder),
                next: 0,
                pull: None,
            },
            unacked: BTreeMap::new(),
            file: None,
            eof: Eof::Unchecked,
            streaming: false,
            achieved: 0,
            distinct: 0,
            dirty: true,
            finished: false,
            config,
        })
    }

    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Message {
                from,
                msg: Message::Response { id, body },
            } => self.on_response(from, id, body, ctx),
            Input::Timer(DEADLINE) => self.fail(UploadError::Deadline, ctx),
            Input::Cancel(local) if local == self.local => self.fail(UploadError::Cancelled, ctx),
            Input::Timer(SWEEP) => self.on_sweep(ctx),
            Input::Plaintext { offset, data } => self.on_plaintext(offset, data, ctx),
            // Requests, announcements, local requests, drained output: not for an uploader.
            _ => {}
        }
        if !self.finished {
            self.progress(ctx);
        }
    }

    /// Does whatever the state now allows: more asks, the next pull, trailers, closes, the
    /// final answer.
    fn progress(&mut self, ctx: &mut Context<'_>) {
        if self.dirty {
            self.replan(ctx);
        }
        if !self.allocating() && !self.good_enough() {
            let err = self.selection.not_happy(
                &self.placement(),
                self.happy,
                self.achieved,
                self.params.k,
            );
            return self.fail(err, ctx);
        }
        self.streaming |= !self.allocating();
        if !self.streaming {
            return;
        }
        self.pull_next(ctx);
        if self.file.is_some() && self.eof == Eof::Confirmed {
            self.finish_homes(ctx);
            self.maybe_succeed(ctx);
        }
    }

    /// Whether the placement is happy, and holds enough distinct shares to read the file
    /// (which `happy < k` alone would not promise).
    fn good_enough(&self) -> bool {
        self.achieved >= self.happy && self.distinct >= self.params.k
    }

    /// Which servers hold (or are being written) which shares.
    fn placement(&self) -> Placement {
        let mut placement = self.held.clone();
        for &(share, server) in self.homes.keys() {
            placement.entry(share).or_default().insert(server);
        }
        placement
    }

    fn replan(&mut self, ctx: &mut Context<'_>) {
        self.dirty = false;
        let placement = self.placement();
        self.achieved =
            match crate::mutants::active(crate::mutants::Mutant::UploaderCountsSharesAsHappiness) {
                true => placement.len(),
                false => happiness(&placement),
            };
        self.distinct = placement.len();
        let mut asking = BTreeSet::new();
        let mut allocs = 0;
        for (_, _, purpose) in self.requests.iter() {
            if let Purpose::Allocate { shares } = purpose {
                asking.extend(shares.iter().copied());
                allocs += 1;
            }
        }
        let asks = self.selection.plan(&placement, &asking, allocs, self.happy);
        for ask in asks {
            self.send_allocate(ask, ctx);
        }
    }

    /// Answers with the cap once every home is closed and the placement is happy.
    fn maybe_succeed(&mut self, ctx: &mut Context<'_>) {
        let closed = self.homes.values().all(|h| h.close == Close::Done);
        if !closed || self.allocating() || !self.good_enough() {
            return;
        }
        let Some(cap) = self.file.as_ref().map(|f| f.cap.clone()) else {
            return;
        };
        debug_assert!(
            self.unacked.is_empty(),
            "every share closed: every write answered"
        );
        debug_assert!(self.requests.is_empty(), "nothing left to wait for");
        debug_assert!(self.eof == Eof::Confirmed);
        let placement = self
            .placement()
            .into_iter()
            .map(|(share, servers)| (share, servers.into_iter().collect()))
            .collect();
        let receipt = UploadReceipt {
            cap,
            placement,
            happiness: self.achieved,
        };
        tracing::info!(si = %self.si, happiness = self.achieved, "upload done");
        ctx.reply(self.local, LocalResponse::Uploaded(Ok(receipt)));
        self.finish(ctx);
    }

    /// Gives up: frees every share not yet closed, answers with `err`, stops.
    fn fail(&mut self, err: UploadError, ctx: &mut Context<'_>) {
        tracing::info!(si = %self.si, error = %err, "upload failed");
        let open: Vec<(ShareNum, NodeId)> = self
            .homes
            .iter()
            .filter(|(_, h)| h.close != Close::Done)
            .map(|(&key, _)| key)
            .collect();
        for (share, server) in open {
            self.send_abort(share, server, ctx);
        }
        let asking = self
            .requests
            .forget(|_, p| matches!(p, Purpose::Allocate { .. }));
        for (server, purpose) in asking {
            if let Purpose::Allocate { shares } = purpose {
                for share in shares {
                    self.send_abort(share, server.node, ctx);
                }
            }
        }
        ctx.reply(self.local, LocalResponse::Uploaded(Err(err)));
        self.finish(ctx);
    }

    fn finish(&mut self, ctx: &mut Context<'_>) {
        ctx.cancel_timer(DEADLINE);
        ctx.cancel_timer(SWEEP);
        ctx.push(Effect::Stop);
        self.finished = true;
    }
}

/// The error for an upload that cannot be happy with the servers known.
fn too_few_servers(happy: usize, known: usize) -> UploadError {
    UploadError::NotHappy {
        happy,
        achieved: 0,
        known,
        reachable: 0,
        accepting: 0,
        detail: format!(
            "only {known} storage servers are known, so none was asked; wait for the \
             introducer to announce more servers, or lower happy"
        ),
    }
}
