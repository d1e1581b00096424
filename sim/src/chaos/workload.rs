//! The chaos scenario's users: each client runs a sequence of uploads, downloads and
//! directory operations, one at a time, and every answer is checked against what must be
//! true.
//!
//! Directories: each client has its own root directory (named by a write cap), and all of
//! them write into one shared directory too, concurrently. Each client tracks the names it
//! made (they are its own: no other client touches them) and what its acknowledged changes
//! imply for each; a listing of a directory must agree on every name whose state is known —
//! so no acknowledged change is ever lost, even to a concurrent writer of the same
//! directory, and no removed name comes back. The vdrive server is honest here: a record
//! that does not verify, or an older version than one seen, is a violation.

use super::grid::{Grid, UPLOAD_DEADLINE};
use super::{ChaosConfig, ChaosReport, Invariant, OperationCounts};
use crate::faults::Fault;
use crate::{derive_rng, LocalUser, UserIo, World};
use cairn_actors::local::{
    DirChange, DirOpError, DirReply, DirRequest, LocalId, LocalRequest, LocalResponse,
};
use cairn_actors::placement::happiness;
use cairn_actors::{Addr, NodeId, ShareNum, StorageIndex, Time};
use cairn_codec::dirnode::{ChildKind, DirCap, DirWriteCap, Entry};
use cairn_codec::{ChkCap, EncodingParams};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// An operation must end (succeed or fail) within this.
pub const OP_DEADLINE: Duration = Duration::from_secs(400);
/// Distinct file contents the clients upload (so some uploads repeat a file).
const FILES: usize = 8;
const HAPPY: usize = 7;
const CONVERGENCE_SECRET: &[u8] = b"cairn chaos convergence secret..";

fn params() -> EncodingParams {
    // Small segments: every file has several, and a tail of some residue.
    EncodingParams::new(3, 10, 4096).expect("valid parameters")
}

/// What one operation in flight is.
enum Op {
    Upload {
        file: usize,
    },
    Download {
        file: usize,
        received: Vec<u8>,
        final_check: bool,
    },
    Dir {
        client: usize,
        /// Which directory: the client's root, or the shared one.
        shared: bool,
        request: DirRequest,
        final_check: bool,
    },
}

/// One client's knowledge of a directory: for each name it made there, what its
/// acknowledged changes imply (`None`: known absent); names an operation of unknown outcome
/// touched are not known.
#[derive(Default)]
struct Model {
    known: BTreeMap<String, Option<String>>,
    /// When the workload heard the last acknowledged change of each name.
    settled: BTreeMap<String, Time>,
    /// Whether the directory is known to exist (its create was acknowledged, or refused as
    /// existing).
    exists: bool,
}

/// One client's directories.
struct Dirs {
    root: DirWriteCap,
    own: Model,
    shared: Model,
    next_name: u64,
}

/// The workload: the scenario's local user.
pub struct Workload {
    rng: ChaCha8Rng,
    clients: Vec<Addr>,
    files: Vec<Vec<u8>>,
    /// Caps of uploads that succeeded, by file.
    uploaded: BTreeMap<usize, ChkCap>,
    /// Every share a successful upload's receipt says was placed, and where: it must stay.
    placed: BTreeSet<(StorageIndex, ShareNum, NodeId)>,
    ops: BTreeMap<LocalId, (usize, Time, Op)>,
    remaining: Vec<usize>,
    /// Clients start operations until the faults end.
    busy_until: Time,
    dirs: Vec<Dirs>,
    /// The directory every client writes into (made before the run, as a setup step).
    shared: DirWriteCap,
    next_id: u64,
    counts: OperationCounts,
    violations: Vec<String>,
}

impl Workload {
    pub fn new(seed: u64, grid: &Grid, config: &ChaosConfig) -> Self {
        let mut rng = derive_rng(seed, &[b"workload"]);
        let files = (0..FILES)
            .map(|_| {
                let len = rng.gen_range(56..40_000);
                (0..len).map(|_| rng.gen()).collect()
            })
            .collect();
        let dirs = (0..grid.clients.len())
            .map(|_| Dirs {
                root: DirWriteCap::from_write_key(rng.gen()),
                own: Model::default(),
                shared: Model::default(),
                next_name: 0,
            })
            .collect();
        let shared = DirWriteCap::from_write_key(rng.gen());
        Workload {
            rng,
            clients: (0..grid.clients.len())
                .map(|i| grid.client_addr(i))
                .collect(),
            files,
            placed: BTreeSet::new(),
            uploaded: BTreeMap::new(),
            ops: BTreeMap::new(),
            remaining: vec![config.ops_per_client; grid.clients.len()],
            busy_until: Time(0).after(super::CHAOS_START + config.chaos),
            dirs,
            shared,
            next_id: 1,
            counts: OperationCounts::default(),
            violations: Vec::new(),
        }
    }

    /// Schedules each client's first operation in the first seconds after `start`.
    pub fn schedule_start(world: &mut World<Workload>, start: Time) {
        for client in 0..world.user().clients.len() {
            let at = start.after(Duration::from_millis(
                world.user_mut().rng.gen_range(0..10_000),
            ));
            let (addr, id, request) = world.user_mut().next_op(client, at);
            if let Err(e) = world.schedule_local(at, addr, id, request) {
                world.user_mut().violation(
                    Invariant::Harness,
                    format!("could not schedule an operation: {e}"),
                );
            }
        }
    }

    pub fn violation(&mut self, invariant: Invariant, what: String) {
        self.violations.push(invariant.line(&what));
    }

    /// Picks client `client`'s next operation, starting at `at`.
    fn next_op(&mut self, client: usize, at: Time) -> (Addr, LocalId, LocalRequest) {
        self.remaining[client] -= 1;
        let roll = self.rng.gen_range(0..100);
        let (op, request) = if roll < 45 || self.uploaded.is_empty() && roll < 75 {
            self.upload()
        } else if roll < 75 {
            let file = *self.pick(&self.uploaded.keys().copied().collect::<Vec<_>>());
            self.download(file, false)
        } else {
            self.dir_op(client)
        };
        let id = LocalId(self.next_id);
        self.next_id += 1;
        self.ops.insert(id, (client, at, op));
        (self.clients[client], id, request)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.gen_range(0..items.len())]
    }

    fn upload(&mut self) -> (Op, LocalRequest) {
        self.counts.uploads += 1;
        let file = self.rng.gen_range(0..FILES);
        let data = &self.files[file];
        let size = data.len() as u64;
        let key = cairn_codec::convergent_key(CONVERGENCE_SECRET, params(), size, &data[..])
            .expect("files are never empty");
        (
            Op::Upload { file },
            LocalRequest::Upload {
                key,
                params: params(),
                happy: HAPPY,
                size,
            },
        )
    }

    fn download(&mut self, file: usize, final_check: bool) -> (Op, LocalRequest) {
        self.counts.downloads += 1;
        let cap = self.uploaded[&file].clone();
        (
            Op::Download {
                file,
                received: Vec::new(),
                final_check,
            },
            LocalRequest::Download { cap },
        )
    }

    fn dir_op(&mut self, client: usize) -> (Op, LocalRequest) {
        self.counts.vdrive += 1;
        let dirs = &mut self.dirs[client];
        if !dirs.own.exists {
            let request = DirRequest::Create {
                cap: dirs.root.clone(),
            };
            return self.dir_request(client, false, request, false);
        }
        dirs.next_name += 1;
        let name = format!("c{client}-n{}", dirs.next_name);
        let shared = self.rng.gen_bool(0.5);
        let cap = match shared {
            true => self.shared.clone(),
            false => self.dirs[client].root.clone(),
        };
        if !self.model(client, shared).exists {
            // The shared directory: whichever client comes first makes it.
            let request = DirRequest::Create { cap };
            return self.dir_request(client, shared, request, false);
        }
        let model = self.model(client, shared);
        let present: Vec<String> = model
            .known
            .iter()
            .filter(|(_, e)| e.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        let change = match (self.rng.gen_range(0..5), present.is_empty()) {
            (0, _) => {
                let request = DirRequest::List {
                    cap: DirCap::Write(cap),
                };
                return self.dir_request(client, shared, request, false);
            }
            (1, false) => DirChange::Remove {
                name: self.pick(&present).clone(),
            },
            (2, false) => DirChange::Rename {
                from: self.pick(&present).clone(),
                to: name,
            },
            _ => {
                let read_cap = match self.uploaded.values().next() {
                    Some(cap) => cairn_codec::Cap::Chk(cap.clone()).to_string(),
                    None => format!("URI:LIT:{}", cairn_codec::base32::encode(name.as_bytes())),
                };
                let entry = Entry {
                    name,
                    kind: ChildKind::File,
                    read_cap,
                    write_cap: None,
                    size: None,
                    mtime: None,
                };
                DirChange::Add {
                    entry,
                    replace: false,
                }
            }
        };
        let request = DirRequest::Change { cap, change };
        self.dir_request(client, shared, request, false)
    }

    fn dir_request(
        &mut self,
        client: usize,
        shared: bool,
        request: DirRequest,
        final_check: bool,
    ) -> (Op, LocalRequest) {
        let op = Op::Dir {
            client,
            shared,
            request: request.clone(),
            final_check,
        };
        (op, LocalRequest::Dir(request))
    }

    fn model(&mut self, client: usize, shared: bool) -> &mut Model {
        let dirs = &mut self.dirs[client];
        match shared {
            true => &mut dirs.shared,
            false => &mut dirs.own,
        }
    }

    fn on_upload(&mut self, file: usize, response: LocalResponse) {
        match response {
            LocalResponse::Uploaded(Ok(receipt)) => {
                self.counts.uploads_ok += 1;
                // Servers holding distinct shares, recounted from where the receipt says
                // they are.
                let shown = happiness(&receipt.placement);
                if receipt.happiness < HAPPY || shown != receipt.happiness {
                    self.violation(Invariant::Receipts, format!(
                        "an upload reported success at happiness {}, and its placement shows {shown}",
                        receipt.happiness
                    ));
                }
                let si = receipt.cap.key.storage_index();
                for (&share, servers) in &receipt.placement {
                    self.placed
                        .extend(servers.iter().map(|&server| (si, share, server)));
                }
                if let Some(earlier) = self.uploaded.insert(file, receipt.cap.clone()) {
                    if earlier != receipt.cap {
                        self.violation(
                            Invariant::Receipts,
                            format!("file {file} got two different caps"),
                        );
                    }
                }
            }
            LocalResponse::Uploaded(Err(_)) => {}
            other => self.violation(
                Invariant::Answered,
                format!("an upload was answered with {other:?}"),
            ),
        }
    }

    fn on_download(
        &mut self,
        file: usize,
        received: &[u8],
        final_check: bool,
        response: LocalResponse,
    ) {
        let expected = &self.files[file];
        match response {
            LocalResponse::Downloaded(Ok(receipt)) => {
                self.counts.downloads_ok += 1;
                if received != &expected[..] || receipt.bytes != expected.len() as u64 {
                    self.violation(Invariant::ExactBytes, format!(
                        "a download of file {file} succeeded with {} bytes that are not the {} uploaded",
                        received.len(),
                        expected.len()
                    ));
                }
            }
            LocalResponse::Downloaded(Err(e)) if final_check => self.violation(Invariant::Recoverable, format!(
                "file {file} could be rebuilt from the shares on disk, but downloading it from a healed grid failed: {e}"
            )),
            LocalResponse::Downloaded(Err(_)) => {}
            other => self.violation(Invariant::Answered, format!("a download was answered with {other:?}")),
        }
    }

    fn on_dir(
        &mut self,
        client: usize,
        shared: bool,
        request: DirRequest,
        final_check: bool,
        (invoked, answered): (Time, Time),
        response: LocalResponse,
    ) {
        let LocalResponse::Dir(result) = response else {
            return self.violation(
                Invariant::Answered,
                format!("a directory operation was answered with {response:?}"),
            );
        };
        // A create that finds its directory made (the shared one, by another client) did what
        // was asked too.
        let made = matches!(
            (&request, &result),
            (DirRequest::Create { .. }, Err(DirOpError::AlreadyExists(_)))
        );
        if result.is_ok() || made {
            self.counts.vdrive_ok += 1;
        }
        let model = self.model(client, shared);
        let violation = match (&request, result) {
            (_, Err(e @ (DirOpError::Forged(_) | DirOpError::Rollback { .. }))) => Some(format!(
                "an honest vdrive server's directory was refused: {e}"
            )),
            (DirRequest::Create { .. }, Ok(_) | Err(DirOpError::AlreadyExists(_))) => {
                model.exists = true;
                None
            }
            (DirRequest::List { .. }, Ok(DirReply::Entries { entries, .. })) => {
                let own = model.disagreement(&entries);
                let others = || self.others_disagree(client, &entries, invoked, answered);
                own.or_else(|| shared.then(others).flatten())
            }
            (DirRequest::Change { change, .. }, Ok(_)) => {
                model.apply(change);
                for name in change.names() {
                    model.settled.insert(name.to_owned(), answered);
                }
                None
            }
            // No answer, or a server whose journal failed mid-write: it may be made or not.
            (
                DirRequest::Change { change, .. },
                Err(DirOpError::Unreachable(_) | DirOpError::Refused(_)),
            ) if !final_check => {
                model.unknown_outcome(change);
                None
            }
            (_, Err(DirOpError::Unreachable(_) | DirOpError::Busy(_) | DirOpError::Refused(_)))
                if !final_check =>
            {
                None // no answer, or a server whose journal failed (a disk fault)
            }
            (DirRequest::Change { change, .. }, Err(e)) => model.refusal(change, &e),
            (_, Err(e)) if final_check => Some(format!("a final listing failed: {e}")),
            (_, Err(_)) => None,
            (_, Ok(reply)) => Some(format!("{request:?} was answered {reply:?}")),
        };
        if let Some(what) = violation {
            let whose = if shared {
                "the shared directory"
            } else {
                "its root"
            };
            self.violation(
                Invariant::Directories,
                format!("client {client}, {whose}: {what}"),
            );
        }
    }

    /// A listing of the shared directory by `lister`, invoked at `invoked` and answered at
    /// `answered`, against the other clients' acknowledged changes: each of their names whose
    /// last change was acknowledged before the listing began, and that no change of theirs
    /// in flight during it touches, must be listed as it was left (linearizability, checked
    /// name by name).
    fn others_disagree(
        &self,
        lister: usize,
        entries: &[Entry],
        invoked: Time,
        answered: Time,
    ) -> Option<String> {
        let listed: BTreeMap<&str, &str> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.read_cap.as_str()))
            .collect();
        let in_flight: Vec<&str> = self
            .ops
            .values()
            .filter(|(client, at, _)| *client != lister && *at < answered)
            .filter_map(|(_, _, op)| match op {
                Op::Dir {
                    shared: true,
                    request: DirRequest::Change { change, .. },
                    ..
                } => Some(change.names()),
                _ => None,
            })
            .flatten()
            .collect();
        for (client, dirs) in self.dirs.iter().enumerate() {
            if client == lister {
                continue;
            }
            let model = &dirs.shared;
            for (name, expected) in &model.known {
                let settled_before = model.settled.get(name).is_some_and(|t| *t < invoked);
                if !settled_before || in_flight.contains(&name.as_str()) {
                    continue;
                }
                let found = listed.get(name.as_str()).copied();
                if found != expected.as_deref() {
                    return Some(format!(
                        "{name} (client {client}'s) listed as {found:?}, but its change \
                         acknowledged before the listing began implies {expected:?}"
                    ));
                }
            }
        }
        None
    }

    /// The run's findings (without the world's own figures).
    pub fn report(&mut self, seed: u64) -> ChaosReport {
        let now_pending: Vec<String> = self.ops.keys().map(|id| format!("{id:?}")).collect();
        if !now_pending.is_empty() {
            self.violation(
                Invariant::Answered,
                format!("operations never ended: {}", now_pending.join(", ")),
            );
        }
        ChaosReport {
            seed,
            violations: std::mem::take(&mut self.violations),
            operations: self.counts.clone(),
            ..ChaosReport::default()
        }
    }

    /// After the faults: check that every share placed is still on its server's disk;
    /// crash and restart the vdrive, then download every file the disks can still rebuild
    /// and look up every vdrive path whose state is known. Runs the world until those end.
    /// Returns the faults it scheduled.
    pub fn final_checks(world: &mut World<Workload>, grid: &Grid) -> Vec<(Time, Fault)> {
        lost_shares(world, grid);
        let now = world.now();
        let restarts = [
            (
                now.after(Duration::from_secs(1)),
                Fault::Crash {
                    node: grid.introducer,
                },
            ),
            (
                now.after(Duration::from_secs(2)),
                Fault::Restart {
                    node: grid.introducer,
                },
            ),
        ];
        for (at, fault) in restarts.clone() {
            if let Err(e) = world.schedule_fault(at, fault) {
                world.user_mut().violation(
                    Invariant::Harness,
                    format!("could not restart the vdrive: {e}"),
                );
            }
        }
        // Clients re-subscribe within their interval; give them that, then check.
        let at = now.after(Duration::from_secs(45));
        let rebuildable = rebuildable_files(world, grid);
        let mut requests = Vec::new();
        {
            let w = world.user_mut();
            for (n, file) in rebuildable.into_iter().enumerate() {
                let client = n % w.clients.len();
                let (op, request) = w.download(file, true);
                requests.push(w.track(client, at, op, request));
            }
            for client in 0..w.clients.len() {
                let own = w.dirs[client]
                    .own
                    .exists
                    .then(|| w.dirs[client].root.clone());
                let shared = w.dirs[client].shared.exists.then(|| w.shared.clone());
                for (is_shared, cap) in [(false, own), (true, shared)] {
                    let Some(cap) = cap else { continue };
                    w.counts.vdrive += 1;
                    let list = DirRequest::List {
                        cap: DirCap::Write(cap),
                    };
                    let (op, request) = w.dir_request(client, is_shared, list, true);
                    requests.push(w.track(client, at, op, request));
                }
            }
        }
        for (addr, id, request) in requests {
            if let Err(e) = world.schedule_local(at, addr, id, request) {
                world.user_mut().violation(
                    Invariant::Harness,
                    format!("could not schedule a final check: {e}"),
                );
            }
        }
        let deadline = at.after(OP_DEADLINE);
        world.run_until_or(deadline, |w| w.user().ops.is_empty());
        restarts.into()
    }

    fn track(
        &mut self,
        client: usize,
        at: Time,
        op: Op,
        request: LocalRequest,
    ) -> (Addr, LocalId, LocalRequest) {
        let id = LocalId(self.next_id);
        self.next_id += 1;
        self.ops.insert(id, (client, at, op));
        (self.clients[client], id, request)
    }

    /// Schedules the client's next operation after a short pause, if it has any left and the
    /// faults go on.
    fn continue_client(&mut self, client: usize, io: &mut UserIo<'_>) {
        if self.remaining[client] == 0 || io.now() >= self.busy_until {
            return;
        }
        let at = io
            .now()
            .after(Duration::from_millis(self.rng.gen_range(100..5_000)));
        let (addr, id, request) = self.next_op(client, at);
        io.request(at, addr, id, request);
    }
}

/// The names a change touches.
trait Names {
    fn names(&self) -> Vec<&str>;
}

impl Names for DirChange {
    fn names(&self) -> Vec<&str> {
        match self {
            DirChange::Add { entry, .. } => vec![entry.name.as_str()],
            DirChange::Remove { name } => vec![name.as_str()],
            DirChange::Rename { from, to } => vec![from.as_str(), to.as_str()],
        }
    }
}

impl Model {
    /// The entries listed, against what is known of this client's names: a description of
    /// the first disagreement.
    fn disagreement(&self, entries: &[Entry]) -> Option<String> {
        let listed: BTreeMap<&str, &str> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.read_cap.as_str()))
            .collect();
        for (name, expected) in &self.known {
            let found = listed.get(name.as_str()).copied();
            if found != expected.as_deref() {
                return Some(format!(
                    "{name} listed as {found:?}, but acknowledged changes imply {expected:?}"
                ));
            }
        }
        None
    }

    fn apply(&mut self, change: &DirChange) {
        match change {
            DirChange::Add { entry, .. } => {
                self.known
                    .insert(entry.name.clone(), Some(entry.read_cap.clone()));
            }
            DirChange::Remove { name } => {
                self.known.insert(name.clone(), None);
            }
            DirChange::Rename { from, to } => {
                let moved = self.known.insert(from.clone(), None).flatten();
                match moved {
                    Some(cap) => self.known.insert(to.clone(), Some(cap)),
                    None => self.known.remove(to),
                };
            }
        }
    }

    /// The vdrive server may or may not have applied `change` (its answer was lost).
    fn unknown_outcome(&mut self, change: &DirChange) {
        match change {
            DirChange::Add { entry, .. } => self.known.remove(&entry.name),
            DirChange::Remove { name } => self.known.remove(name),
            DirChange::Rename { from, to } => {
                self.known.remove(to);
                self.known.remove(from)
            }
        };
    }

    /// A definite refusal changes nothing: it must agree with what is known.
    fn refusal(&mut self, change: &DirChange, error: &DirOpError) -> Option<String> {
        let (name, must_exist) = match (change, error) {
            (DirChange::Add { entry, .. }, DirOpError::AlreadyExists(_)) => (&entry.name, true),
            (
                DirChange::Remove { name } | DirChange::Rename { from: name, .. },
                DirOpError::NotFound(_),
            ) => (name, false),
            (DirChange::Rename { to, .. }, DirOpError::AlreadyExists(_)) => (to, true),
            _ => return None,
        };
        match self.known.get(name) {
            Some(state) if state.is_some() != must_exist => Some(format!(
                "{change:?} was refused ({error}), but acknowledged changes imply {name} is {}",
                if state.is_some() {
                    "there"
                } else {
                    "not there"
                }
            )),
            _ => None,
        }
    }
}

/// Records a violation for every share a receipt placed on an honest server that is not on
/// its disk, complete: a close is acknowledged only once the share is durable, nothing in
/// the scenario deletes a complete share, and bit rot changes bytes but keeps the share.
fn lost_shares(world: &mut World<Workload>, grid: &Grid) {
    let honest: BTreeSet<NodeId> = grid.storage.iter().map(|(id, _)| *id).collect();
    let lost: Vec<String> = world
        .user()
        .placed
        .iter()
        .filter(|(_, _, server)| honest.contains(server))
        .filter(|&&(si, share, server)| {
            world
                .disk(server)
                .is_none_or(|disk| disk.share(si, share).is_none())
        })
        .map(|(si, share, server)| {
            format!("share {share:?} of {si:?} was placed on {server:?} (its upload succeeded), but is not on its disk")
        })
        .collect();
    for violation in lost {
        world.user_mut().violation(Invariant::Receipts, violation);
    }
}

/// Files whose upload succeeded and whose shares, as they sit on the storage disks now,
/// still decode (checked by the codec, the oracle).
fn rebuildable_files(world: &World<Workload>, grid: &Grid) -> Vec<usize> {
    let w = world.user();
    let mut out = Vec::new();
    for (&file, cap) in &w.uploaded {
        let si = cap.key.storage_index();
        let mut sources: Vec<(usize, Vec<u8>)> = Vec::new();
        for (node, _) in &grid.storage {
            let Some(disk) = world.disk(*node) else {
                continue;
            };
            for share in 0..cap.n {
                if let Some(bytes) = disk.share(si, ShareNum(share as u8)) {
                    sources.push((share, bytes));
                }
            }
        }
        let mut sink = Vec::new();
        if cairn_codec::decode(cap, sources, &mut sink).is_ok() {
            out.push(file);
        }
    }
    out
}

impl LocalUser for Workload {
    fn on_reply(&mut self, _from: Addr, to: LocalId, response: LocalResponse, io: &mut UserIo<'_>) {
        let Some((client, started, op)) = self.ops.remove(&to) else {
            return self.violation(
                Invariant::Answered,
                format!("a reply to {to:?}, which is not in flight"),
            );
        };
        if io.now().since(started) > OP_DEADLINE {
            self.violation(
                Invariant::Answered,
                format!(
                    "{to:?} took {:?}, over its {OP_DEADLINE:?} deadline",
                    io.now().since(started)
                ),
            );
        }
        let final_check = match op {
            Op::Upload { file } => {
                self.on_upload(file, response);
                false
            }
            Op::Download {
                file,
                received,
                final_check,
            } => {
                self.on_download(file, &received, final_check, response);
                final_check
            }
            Op::Dir {
                client,
                shared,
                request,
                final_check,
            } => {
                let times = (started, io.now());
                self.on_dir(client, shared, request, final_check, times, response);
                final_check
            }
        };
        if !final_check {
            self.continue_client(client, io);
        }
    }

    fn on_output(&mut self, from: Addr, to: LocalId, data: Vec<u8>, io: &mut UserIo<'_>) {
        let Some((_, _, Op::Download { file, received, .. })) = self.ops.get_mut(&to) else {
            return self.violation(
                Invariant::Answered,
                format!("output for {to:?}, which is not a download in flight"),
            );
        };
        let (file, at) = (*file, received.len());
        let wrong = self.files[file].get(at..at + data.len()) != Some(&data[..]);
        received.extend_from_slice(&data);
        if wrong {
            let n = data.len();
            self.violation(Invariant::ExactBytes, format!("download {to:?} of file {file} output {n} bytes at offset {at} that were never uploaded there"));
        }
        io.drained(from);
    }

    fn on_pull(&mut self, from: Addr, id: LocalId, offset: u64, max: usize, io: &mut UserIo<'_>) {
        let Some((_, _, Op::Upload { file })) = self.ops.get(&id) else {
            return self.violation(
                Invariant::Answered,
                format!("a pull for {id:?}, which is not an upload in flight"),
            );
        };
        let data = &self.files[*file];
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(max).min(data.len());
        io.plaintext(from, offset, data[start..end].to_vec());
    }

    fn on_crash(&mut self, node: NodeId, _io: &mut UserIo<'_>) {
        // Clients never crash in this scenario; servers hold no local requests.
        let _ = node;
    }
}

/// The upload deadline is shorter than an operation's, so uploads end in time.
const _: () = assert!(UPLOAD_DEADLINE.as_secs() < OP_DEADLINE.as_secs());
