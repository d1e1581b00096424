//! The chaos scenario's grid: who runs what, and how each node's actors are rebuilt from its
//! disk after a restart.

use super::ChaosConfig;
use crate::byzantine::{ByzantineClient, ByzantineServer, SharedLedger};
use crate::{LocalUser, SimDisk, World};
use cairn_actors::client::{Client, ClientConfig};
use cairn_actors::introducer::Introducer;
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::uploader::UploadConfig;
use cairn_actors::vdrive::Vdrive;
use cairn_actors::{Actor, Addr, NodeId, NodeKey, Service};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long clients wait for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an upload may take in all.
pub const UPLOAD_DEADLINE: Duration = Duration::from_secs(300);
/// Each storage server's disk.
const STORAGE_CAPACITY: u64 = 8 << 20;

/// The nodes of one run, with their keys' seeds.
pub struct Grid {
    /// Runs the introducer and the vdrive.
    pub introducer: NodeId,
    pub storage: Vec<(NodeId, [u8; 32])>,
    pub clients: Vec<NodeId>,
    /// Attackers with the membership of honest nodes (see [`crate::byzantine`]).
    pub byzantine_servers: Vec<(NodeId, [u8; 32])>,
    pub byzantine_clients: Vec<(NodeId, [u8; 32])>,
    /// What the attackers tried, and what got through.
    pub ledger: SharedLedger,
}

impl Grid {
    pub fn new(seed: u64, config: &ChaosConfig) -> Self {
        let key_seed = |role: &str, i: usize| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(b"cairn chaos node key");
            h.update(seed.to_le_bytes());
            h.update(role.as_bytes());
            h.update((i as u64).to_le_bytes());
            h.finalize().into()
        };
        let id = |s: [u8; 32]| NodeKey::from_seed(s).id();
        let grid = Grid {
            introducer: id(key_seed("introducer", 0)),
            storage: (0..config.storage_nodes)
                .map(|i| key_seed("storage", i))
                .map(|s| (id(s), s))
                .collect(),
            clients: (0..config.clients)
                .map(|i| id(key_seed("client", i)))
                .collect(),
            byzantine_servers: (0..config.byzantine_servers)
                .map(|i| key_seed("byzantine storage", i))
                .map(|s| (id(s), s))
                .collect(),
            byzantine_clients: (0..config.byzantine_clients)
                .map(|i| key_seed("byzantine client", i))
                .map(|s| (id(s), s))
                .collect(),
            ledger: SharedLedger::default(),
        };
        grid.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .colluders = (grid.byzantine_servers.iter())
            .chain(&grid.byzantine_clients)
            .map(|(id, _)| *id)
            .collect();
        grid
    }

    pub fn introducer_addr(&self) -> Addr {
        Addr::new(self.introducer, Service::Introducer)
    }

    pub fn vdrive_addr(&self) -> Addr {
        Addr::new(self.introducer, Service::Vdrive)
    }

    pub fn client_addr(&self, i: usize) -> Addr {
        Addr::new(self.clients[i], Service::Client)
    }

    /// The nodes crashes and other node faults may strike: every honest server (clients are
    /// the observers, cut off by partitions but never crashed; the attackers are never
    /// down, at no cost to them).
    pub fn faultable_nodes(&self) -> Vec<NodeId> {
        let mut nodes = vec![self.introducer];
        nodes.extend(self.storage.iter().map(|(id, _)| *id));
        nodes
    }

    /// Adds every node to `world`.
    pub fn populate<U: LocalUser>(&self, world: &mut World<U>) {
        let added = world.add_node(self.introducer, SimDisk::new(64 << 20), |disk: &SimDisk| {
            let vdrive: Box<dyn Actor> = Box::new(Vdrive::new(Box::new(disk.journal())));
            vec![
                (
                    Service::Introducer,
                    Box::new(Introducer::new()) as Box<dyn Actor>,
                ),
                (Service::Vdrive, vdrive),
            ]
        });
        added.expect("fresh node ids");
        for (i, &(id, seed)) in self.storage.iter().enumerate() {
            let introducer = Some(self.introducer_addr());
            let config = StorageConfig {
                reserved_space: 0,
                announce_interval: Duration::from_secs(60),
                ..StorageConfig::default()
            };
            let added =
                world.add_node(id, SimDisk::new(STORAGE_CAPACITY), move |disk: &SimDisk| {
                    let server = StorageServer::new(
                        NodeKey::from_seed(seed),
                        format!("sim-storage-{i}"),
                        introducer,
                        Box::new(disk.shares()),
                        Box::new(disk.journal()),
                        config.clone(),
                    );
                    vec![(Service::Storage, Box::new(server) as Box<dyn Actor>)]
                });
            added.expect("fresh node ids");
        }
        for &id in &self.clients {
            let (introducer, vdrive) = (Some(self.introducer_addr()), Some(self.vdrive_addr()));
            let config = ClientConfig {
                request_timeout: REQUEST_TIMEOUT,
                resubscribe_interval: Duration::from_secs(60),
                upload: UploadConfig {
                    request_timeout: REQUEST_TIMEOUT,
                    deadline: UPLOAD_DEADLINE,
                    window: 4,
                    lease_secret: [0; 32],
                },
            };
            let added = world.add_node(id, SimDisk::new(1 << 20), move |_: &SimDisk| {
                let client = Client::new(introducer, vdrive, config.clone());
                vec![(Service::Client, Box::new(client) as Box<dyn Actor>)]
            });
            added.expect("fresh node ids");
        }
        self.populate_byzantine(world);
    }

    fn populate_byzantine<U: LocalUser>(&self, world: &mut World<U>) {
        let introducer = self.introducer_addr();
        for (i, &(id, seed)) in self.byzantine_servers.iter().enumerate() {
            let ledger = self.ledger.clone();
            let added = world.add_node(id, SimDisk::new(1 << 20), move |_: &SimDisk| {
                let key = NodeKey::from_seed(seed);
                let address = format!("sim-byzantine-storage-{i}");
                let server = ByzantineServer::new(key, address, introducer, ledger.clone());
                vec![(Service::Storage, Box::new(server) as Box<dyn Actor>)]
            });
            added.expect("fresh node ids");
        }
        for &(id, seed) in &self.byzantine_clients {
            let (ledger, vdrive) = (self.ledger.clone(), self.vdrive_addr());
            let added = world.add_node(id, SimDisk::new(1 << 20), move |_: &SimDisk| {
                let key = NodeKey::from_seed(seed);
                let client = ByzantineClient::new(key, introducer, vdrive, ledger.clone());
                vec![(Service::Client, Box::new(client) as Box<dyn Actor>)]
            });
            added.expect("fresh node ids");
        }
    }
}
