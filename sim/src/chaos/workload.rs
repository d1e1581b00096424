//! The chaos scenario's users: each client runs a sequence of uploads, downloads and vdrive
//! operations, one at a time, and every answer is checked against what must be true.

use super::grid::{Grid, UPLOAD_DEADLINE};
use super::{ChaosConfig, ChaosReport, OperationCounts};
use crate::faults::Fault;
use crate::{derive_rng, LocalUser, UserIo, World};
use cairn_actors::local::{LocalId, LocalRequest, LocalResponse};
use cairn_actors::vdrive::{EntryKind, VdriveError, VdriveOp, VdriveReply};
use cairn_actors::{Addr, NodeId, ShareNum, Time};
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
    Vdrive {
        client: usize,
        op: VdriveOp,
        final_check: bool,
    },
}

/// One client's vdrive knowledge: what acknowledged operations imply (`None`: known absent),
/// and the paths an operation of unknown outcome touched.
#[derive(Default)]
struct Model {
    known: BTreeMap<String, Option<EntryKind>>,
    uncertain: BTreeSet<String>,
    next_name: u64,
}

/// The workload: the scenario's local user.
pub struct Workload {
    rng: ChaCha8Rng,
    clients: Vec<Addr>,
    files: Vec<Vec<u8>>,
    /// Caps of uploads that succeeded, by file.
    uploaded: BTreeMap<usize, ChkCap>,
    ops: BTreeMap<LocalId, (usize, Time, Op)>,
    remaining: Vec<usize>,
    models: Vec<Model>,
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
        Workload {
            rng,
            clients: (0..grid.clients.len())
                .map(|i| grid.client_addr(i))
                .collect(),
            files,
            uploaded: BTreeMap::new(),
            ops: BTreeMap::new(),
            remaining: vec![config.ops_per_client; grid.clients.len()],
            models: (0..grid.clients.len()).map(|_| Model::default()).collect(),
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
                world
                    .user_mut()
                    .violation(format!("could not schedule an operation: {e}"));
            }
        }
    }

    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
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
            self.vdrive_op(client)
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

    fn vdrive_op(&mut self, client: usize) -> (Op, LocalRequest) {
        self.counts.vdrive += 1;
        let root = format!("/c{client}");
        let model = &mut self.models[client];
        model.next_name += 1;
        let name = model.next_name;
        let files: Vec<String> = model
            .known
            .iter()
            .filter(|(_, e)| matches!(e, Some(EntryKind::File { .. })))
            .map(|(p, _)| p.clone())
            .collect();
        let root_known = model.known.get(&root) == Some(&Some(EntryKind::Dir));
        let op = match (root_known, self.rng.gen_range(0..5), files.is_empty()) {
            (false, _, _) => VdriveOp::Mkdir { path: root },
            (true, 0, _) => VdriveOp::Mkdir {
                path: format!("{root}/d{name}"),
            },
            (true, 1, false) => {
                let from = self.pick(&files).clone();
                VdriveOp::Rename {
                    from,
                    to: format!("{root}/r{name}"),
                }
            }
            (true, 2, false) => VdriveOp::Unlink {
                path: self.pick(&files).clone(),
            },
            (true, 3, false) => VdriveOp::Lookup {
                path: self.pick(&files).clone(),
            },
            (true, _, _) => {
                let cap = match self.uploaded.values().next() {
                    Some(cap) => cairn_codec::Cap::Chk(cap.clone()).to_string(),
                    None => format!(
                        "URI:LIT:{}",
                        cairn_codec::base32::encode(format!("file {name}").as_bytes())
                    ),
                };
                VdriveOp::Link {
                    path: format!("{root}/f{name}"),
                    cap,
                    replace: false,
                }
            }
        };
        (
            Op::Vdrive {
                client,
                op: op.clone(),
                final_check: false,
            },
            LocalRequest::Vdrive(op),
        )
    }

    fn on_upload(&mut self, file: usize, response: LocalResponse) {
        match response {
            LocalResponse::Uploaded(Ok(receipt)) => {
                self.counts.uploads_ok += 1;
                if receipt.happiness < HAPPY {
                    self.violation(format!(
                        "an upload reported success at happiness {}",
                        receipt.happiness
                    ));
                }
                if let Some(earlier) = self.uploaded.insert(file, receipt.cap.clone()) {
                    if earlier != receipt.cap {
                        self.violation(format!("file {file} got two different caps"));
                    }
                }
            }
            LocalResponse::Uploaded(Err(_)) => {}
            other => self.violation(format!("an upload was answered with {other:?}")),
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
                    self.violation(format!(
                        "a download of file {file} succeeded with {} bytes that are not the {} uploaded",
                        received.len(),
                        expected.len()
                    ));
                }
            }
            LocalResponse::Downloaded(Err(e)) if final_check => self.violation(format!(
                "file {file} could be rebuilt from the shares on disk, but downloading it from a healed grid failed: {e}"
            )),
            LocalResponse::Downloaded(Err(_)) => {}
            other => self.violation(format!("a download was answered with {other:?}")),
        }
    }

    fn on_vdrive(
        &mut self,
        client: usize,
        op: VdriveOp,
        final_check: bool,
        response: LocalResponse,
    ) {
        let LocalResponse::Vdrive(result) = response else {
            return self.violation(format!("a vdrive operation was answered with {response:?}"));
        };
        if result.is_ok() {
            self.counts.vdrive_ok += 1;
        }
        let model = &mut self.models[client];
        match (&op, result) {
            (VdriveOp::Lookup { path }, result) => {
                let expected = match model.known.get(path) {
                    Some(Some(kind)) => Ok(VdriveReply::Entry(kind.clone())),
                    Some(None) => Err(VdriveError::NotFound(path.clone())),
                    None => return, // nothing certain to compare with
                };
                let same = match (&result, &expected) {
                    (Err(VdriveError::NotFound(_)), Err(_)) => true,
                    // No answer, or a vdrive whose journal failed (a disk fault).
                    (Err(VdriveError::Storage(_) | VdriveError::Unreachable(_)), _)
                        if !final_check =>
                    {
                        true
                    }
                    _ => result == expected,
                };
                if !same {
                    self.violation(format!(
                        "vdrive lookup of {path} gave {result:?}, but acknowledged changes imply {expected:?}"
                    ));
                }
            }
            (_, Ok(_)) => model.apply(&op),
            (VdriveOp::Mkdir { path }, Err(VdriveError::AlreadyExists(_)))
                if path.matches('/').count() == 1 =>
            {
                // The client's own root: an earlier attempt of unknown outcome made it.
                model.known.insert(path.clone(), Some(EntryKind::Dir));
            }
            (_, Err(VdriveError::Storage(_) | VdriveError::Unreachable(_))) => {
                model.unknown_outcome(&op)
            }
            (_, Err(_)) => {} // a definite refusal: nothing changed
        }
    }

    /// The run's findings (without the world's own figures).
    pub fn report(&mut self, seed: u64) -> ChaosReport {
        let now_pending: Vec<String> = self.ops.keys().map(|id| format!("{id:?}")).collect();
        if !now_pending.is_empty() {
            self.violation(format!(
                "operations never ended: {}",
                now_pending.join(", ")
            ));
        }
        ChaosReport {
            seed,
            violations: std::mem::take(&mut self.violations),
            operations: self.counts.clone(),
            ..ChaosReport::default()
        }
    }

    /// After the faults: crash and restart the vdrive, then download every file the disks
    /// can still rebuild and look up every vdrive path whose state is known. Runs the world
    /// until those end.
    pub fn final_checks(world: &mut World<Workload>, grid: &Grid) {
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
        for (at, fault) in restarts {
            if let Err(e) = world.schedule_fault(at, fault) {
                world
                    .user_mut()
                    .violation(format!("could not restart the vdrive: {e}"));
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
                let paths: Vec<String> = w.models[client].known.keys().cloned().collect();
                for path in paths {
                    w.counts.vdrive += 1;
                    let op = VdriveOp::Lookup { path };
                    let tracked = Op::Vdrive {
                        client,
                        op: op.clone(),
                        final_check: true,
                    };
                    requests.push(w.track(client, at, tracked, LocalRequest::Vdrive(op)));
                }
            }
        }
        for (addr, id, request) in requests {
            if let Err(e) = world.schedule_local(at, addr, id, request) {
                world
                    .user_mut()
                    .violation(format!("could not schedule a final check: {e}"));
            }
        }
        let deadline = at.after(OP_DEADLINE);
        world.run_until_or(deadline, |w| w.user().ops.is_empty());
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

    /// Schedules the client's next operation after a pause, if it has any left.
    fn continue_client(&mut self, client: usize, io: &mut UserIo<'_>) {
        if self.remaining[client] == 0 {
            return;
        }
        let at = io
            .now()
            .after(Duration::from_millis(self.rng.gen_range(500..20_000)));
        let (addr, id, request) = self.next_op(client, at);
        io.request(at, addr, id, request);
    }
}

impl Model {
    fn apply(&mut self, op: &VdriveOp) {
        match op {
            VdriveOp::Mkdir { path } => self.set(path, Some(EntryKind::Dir)),
            VdriveOp::Link { path, cap, .. } => {
                self.set(path, Some(EntryKind::File { cap: cap.clone() }))
            }
            VdriveOp::Unlink { path } => self.set(path, None),
            VdriveOp::Rename { from, to } => {
                match self.known.get(from).cloned() {
                    Some(entry) => self.set(to, entry),
                    None => self.unknown(to),
                }
                self.set(from, None);
            }
            VdriveOp::List { .. } | VdriveOp::Lookup { .. } => {}
        }
    }

    fn set(&mut self, path: &str, entry: Option<EntryKind>) {
        self.uncertain.remove(path);
        self.known.insert(path.to_string(), entry);
    }

    fn unknown(&mut self, path: &str) {
        self.known.remove(path);
        self.uncertain.insert(path.to_string());
    }

    /// The vdrive may or may not have applied `op` (its answer was lost).
    fn unknown_outcome(&mut self, op: &VdriveOp) {
        match op {
            VdriveOp::Mkdir { path } | VdriveOp::Link { path, .. } | VdriveOp::Unlink { path } => {
                self.unknown(path)
            }
            VdriveOp::Rename { from, to } => {
                self.unknown(from);
                self.unknown(to);
            }
            VdriveOp::List { .. } | VdriveOp::Lookup { .. } => {}
        }
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
            return self.violation(format!("a reply to {to:?}, which is not in flight"));
        };
        if io.now().since(started) > OP_DEADLINE {
            self.violation(format!(
                "{to:?} took {:?}, over its {OP_DEADLINE:?} deadline",
                io.now().since(started)
            ));
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
            Op::Vdrive {
                client,
                op,
                final_check,
            } => {
                self.on_vdrive(client, op, final_check, response);
                final_check
            }
        };
        if !final_check {
            self.continue_client(client, io);
        }
    }

    fn on_output(&mut self, from: Addr, to: LocalId, data: Vec<u8>, io: &mut UserIo<'_>) {
        let Some((_, _, Op::Download { file, received, .. })) = self.ops.get_mut(&to) else {
            return self.violation(format!(
                "output for {to:?}, which is not a download in flight"
            ));
        };
        let (file, at) = (*file, received.len());
        let wrong = self.files[file].get(at..at + data.len()) != Some(&data[..]);
        received.extend_from_slice(&data);
        if wrong {
            let n = data.len();
            self.violation(format!("download {to:?} of file {file} output {n} bytes at offset {at} that were never uploaded there"));
        }
        io.drained(from);
    }

    fn on_pull(&mut self, from: Addr, id: LocalId, offset: u64, max: usize, io: &mut UserIo<'_>) {
        let Some((_, _, Op::Upload { file })) = self.ops.get(&id) else {
            return self.violation(format!(
                "a pull for {id:?}, which is not an upload in flight"
            ));
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
