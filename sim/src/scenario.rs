//! A small grid for named scenarios and tests: storage servers, one introducer with the
//! vdrive, and one client, driven one operation at a time, with faults placed exactly where
//! a scenario wants them. (The chaos scenario draws its faults at random instead.)

use crate::chaos::grid::Grid;
use crate::chaos::ChaosConfig;
use crate::faults::Fault;
use crate::{LocalUser, UserIo, World, WorldConfig};
use cairn_actors::local::{
    DirOpError, DirReply, DirRequest, DownloadError, DownloadReceipt, LocalId, LocalRequest,
    LocalResponse, UploadError, UploadReceipt,
};
use cairn_actors::vdrive::{VdriveError, VdriveOp, VdriveReply};
use cairn_actors::{Addr, NodeId, ShareNum, Time};
use cairn_codec::{ChkCap, EncodingParams};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long [`Scenario::wait`] lets an operation run before calling it stuck.
pub const WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// Records what the grid hands the local user, and serves upload plaintext.
#[derive(Default)]
pub struct Recorder {
    plaintexts: BTreeMap<LocalId, Vec<u8>>,
    outputs: BTreeMap<LocalId, Vec<u8>>,
    replies: BTreeMap<LocalId, LocalResponse>,
}

impl LocalUser for Recorder {
    fn on_reply(
        &mut self,
        _from: Addr,
        to: LocalId,
        response: LocalResponse,
        _io: &mut UserIo<'_>,
    ) {
        self.replies.insert(to, response);
    }

    fn on_output(&mut self, from: Addr, to: LocalId, data: Vec<u8>, io: &mut UserIo<'_>) {
        self.outputs.entry(to).or_default().extend_from_slice(&data);
        io.drained(from);
    }

    fn on_pull(&mut self, from: Addr, id: LocalId, offset: u64, max: usize, io: &mut UserIo<'_>) {
        let data = self.plaintexts.get(&id).map_or(&[][..], |d| &d[..]);
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(max).min(data.len());
        io.plaintext(from, offset, data[start..end].to_vec());
    }
}

/// A running grid. See the module docs.
pub struct Scenario {
    pub world: World<Recorder>,
    grid: Grid,
    next_id: u64,
}

impl Scenario {
    /// A grid of `storage_nodes` servers, one introducer (with the vdrive) and one client,
    /// settled: every server has announced itself and the client has heard of it.
    pub fn new(seed: u64, storage_nodes: usize) -> Self {
        Scenario::with_attackers(seed, storage_nodes, 0, 0)
    }

    /// Like [`Scenario::new`], with `servers` byzantine storage servers and `clients`
    /// byzantine clients among the nodes ([`crate::byzantine`]), attacking from the start.
    pub fn with_attackers(seed: u64, storage_nodes: usize, servers: usize, clients: usize) -> Self {
        let config = ChaosConfig {
            storage_nodes,
            clients: 1,
            byzantine_servers: servers,
            byzantine_clients: clients,
            ..ChaosConfig::default()
        };
        let grid = Grid::new(seed, &config);
        let world_config = WorldConfig {
            seed,
            chaos: true,
            ..WorldConfig::default()
        };
        let mut world = World::new(world_config, Recorder::default());
        grid.populate(&mut world);
        world.run_for(Duration::from_secs(30));
        Scenario {
            world,
            grid,
            next_id: 1,
        }
    }

    /// The storage servers, in the order they were added.
    pub fn storage(&self) -> Vec<NodeId> {
        self.grid.storage.iter().map(|(id, _)| *id).collect()
    }

    /// What the byzantine peers tried, and what got through.
    pub fn attacks(&self) -> std::sync::MutexGuard<'_, crate::byzantine::Ledger> {
        self.grid
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node running the introducer and the vdrive.
    pub fn introducer(&self) -> NodeId {
        self.grid.introducer
    }

    /// The client node.
    pub fn client(&self) -> NodeId {
        self.grid.clients[0]
    }

    /// Starts a local request at the client now; see [`Scenario::wait`].
    pub fn start(&mut self, request: LocalRequest, plaintext: Option<Vec<u8>>) -> LocalId {
        let id = LocalId(self.next_id);
        self.next_id += 1;
        if let Some(data) = plaintext {
            self.world.user_mut().plaintexts.insert(id, data);
        }
        let (now, client) = (self.world.now(), self.grid.client_addr(0));
        self.world
            .schedule_local(now, client, id, request)
            .expect("the client node exists");
        id
    }

    /// Runs until request `id` is answered; returns the answer and the plaintext output.
    /// Panics if it is not answered within [`WAIT_LIMIT`]: every operation must end.
    pub fn wait(&mut self, id: LocalId) -> (LocalResponse, Vec<u8>) {
        let deadline = self.world.now().after(WAIT_LIMIT);
        self.world
            .run_until_or(deadline, |w| w.user().replies.contains_key(&id));
        let user = self.world.user_mut();
        let response = user
            .replies
            .remove(&id)
            .unwrap_or_else(|| panic!("{id:?} was not answered within {WAIT_LIMIT:?}"));
        user.plaintexts.remove(&id);
        (response, user.outputs.remove(&id).unwrap_or_default())
    }

    /// Uploads `data` (3-of-10, happy 7, 4 KiB segments) and waits for the answer.
    pub fn upload(&mut self, data: &[u8]) -> Result<UploadReceipt, UploadError> {
        let id = self.start_upload(data);
        match self.wait(id).0 {
            LocalResponse::Uploaded(result) => result,
            other => panic!("an upload was answered with {other:?}"),
        }
    }

    /// Starts an upload of `data` as [`Scenario::upload`] does.
    pub fn start_upload(&mut self, data: &[u8]) -> LocalId {
        let params = EncodingParams::new(3, 10, 4096).expect("valid parameters");
        let size = data.len() as u64;
        let key =
            cairn_codec::convergent_key(b"scenario", params, size, data).expect("a non-empty file");
        self.start(
            LocalRequest::Upload {
                key,
                params,
                happy: 7,
                size,
            },
            Some(data.to_vec()),
        )
    }

    /// Downloads `cap`: the bytes output and the answer.
    pub fn download(&mut self, cap: &ChkCap) -> (Vec<u8>, Result<DownloadReceipt, DownloadError>) {
        let id = self.start(LocalRequest::Download { cap: cap.clone() }, None);
        match self.wait(id) {
            (LocalResponse::Downloaded(result), out) => (out, result),
            (other, _) => panic!("a download was answered with {other:?}"),
        }
    }

    /// Runs a vdrive operation.
    pub fn vdrive(&mut self, op: VdriveOp) -> Result<VdriveReply, VdriveError> {
        let id = self.start(LocalRequest::Vdrive(op), None);
        match self.wait(id).0 {
            LocalResponse::Vdrive(result) => result,
            other => panic!("a vdrive operation was answered with {other:?}"),
        }
    }

    /// Runs a directory operation and waits for its answer.
    pub fn dir(&mut self, request: DirRequest) -> Result<DirReply, DirOpError> {
        let id = self.start(LocalRequest::Dir(request), None);
        match self.wait(id).0 {
            LocalResponse::Dir(result) => result,
            other => panic!("a directory operation was answered with {other:?}"),
        }
    }

    /// Injects `fault` at `at` (not before now).
    pub fn fault_at(&mut self, at: Time, fault: Fault) {
        let at = at.max(self.world.now());
        self.world
            .schedule_fault(at, fault)
            .expect("a fault on a node of this grid");
    }

    /// Injects `fault` now.
    pub fn fault(&mut self, fault: Fault) {
        self.fault_at(self.world.now(), fault);
        self.world.run_for(Duration::from_millis(1));
    }

    /// Which servers hold which complete shares of `cap`'s file, read off their disks.
    pub fn holders(&self, cap: &ChkCap) -> BTreeMap<ShareNum, Vec<NodeId>> {
        let si = cap.key.storage_index();
        let mut out: BTreeMap<ShareNum, Vec<NodeId>> = BTreeMap::new();
        for node in self.storage() {
            let disk = self.world.disk(node).expect("a storage node has a disk");
            for share in (0..cap.n).map(|s| ShareNum(s as u8)) {
                if disk.share(si, share).is_some() {
                    out.entry(share).or_default().push(node);
                }
            }
        }
        out
    }
}
