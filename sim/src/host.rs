//! Where actors live in the simulated world: nodes, each with a disk, a factory that
//! (re)builds its actors, and the actors it runs now with their random generators and timers.

use crate::disk::SimDisk;
use crate::fingerprint::FastBuild;
use cairn_actors::{Actor, NodeId, Service, TimerId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The actors a node runs, each at its service.
pub type ActorSet = Vec<(Service, Box<dyn Actor>)>;

/// Builds a node's actors over its disk: when the node is added, and again at every restart
/// (so the actors must recover their state from the disk, as after a real crash).
pub type Factory = Box<dyn FnMut(&SimDisk) -> ActorSet>;

/// One running actor.
pub(crate) struct Hosted {
    pub actor: Box<dyn Actor>,
    pub rng: ChaCha8Rng,
    /// Each live timer's generation: a timer event fires only if its generation is still
    /// here, which is how cancelled and replaced timers are skipped without searching the
    /// queue.
    pub timers: HashMap<TimerId, u64, FastBuild>,
}

impl Hosted {
    pub fn new(actor: Box<dyn Actor>, rng: ChaCha8Rng) -> Self {
        Hosted {
            actor,
            rng,
            timers: HashMap::default(),
        }
    }
}

/// A node's running actors, by service.
///
/// Not a `BTreeMap`: its leaves hold eleven entries inline, which for a few hundred bytes
/// of actor state each is kilobytes per node, and at ten thousand nodes every lookup would
/// miss the cache. Here the services sit sorted in one small array, searched without
/// touching the actors, and each actor is boxed so that spawning and stopping moves
/// pointers, not actors.
#[derive(Default)]
pub(crate) struct ActorTable {
    services: Vec<Service>,
    // Boxed on purpose (see above): inserting and removing shift pointers, not actors.
    #[allow(clippy::vec_box)]
    hosted: Vec<Box<Hosted>>,
}

impl ActorTable {
    fn find(&self, service: &Service) -> Result<usize, usize> {
        self.services.binary_search(service)
    }

    pub fn get_mut(&mut self, service: &Service) -> Option<&mut Hosted> {
        let i = self.find(service).ok()?;
        Some(&mut self.hosted[i])
    }

    pub fn contains_key(&self, service: &Service) -> bool {
        self.find(service).is_ok()
    }

    /// Adds an actor; false (and nothing changed) if the service is taken.
    pub fn insert(&mut self, service: Service, hosted: Hosted) -> bool {
        match self.find(&service) {
            Ok(_) => false,
            Err(i) => {
                self.services.insert(i, service);
                self.hosted.insert(i, Box::new(hosted));
                true
            }
        }
    }

    pub fn remove(&mut self, service: &Service) {
        if let Ok(i) = self.find(service) {
            self.services.remove(i);
            self.hosted.remove(i);
        }
    }

    pub fn clear(&mut self) {
        self.services.clear();
        self.hosted.clear();
    }

    /// The services, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Service> {
        self.services.iter()
    }
}

/// One simulated node.
pub(crate) struct Node {
    pub id: NodeId,
    pub up: bool,
    /// Counts crashes: a message addressed to an earlier incarnation is not delivered.
    pub epoch: u32,
    pub actors: ActorTable,
    pub factory: Factory,
    pub disk: SimDisk,
    /// The next crash is a power loss ([`crate::Fault::LoseUnsyncedWrites`]).
    pub power_loss_armed: bool,
}

/// Every node, by index (the order they were added) and by id.
#[derive(Default)]
pub(crate) struct Nodes {
    pub list: Vec<Node>,
    index: HashMap<NodeId, u32, FastBuild>,
}

impl Nodes {
    /// Adds a node; returns its index.
    pub fn push(&mut self, node: Node) -> u32 {
        let ix = self.list.len() as u32;
        self.index.insert(node.id, ix);
        self.list.push(node);
        ix
    }

    /// The index of the node with this id.
    pub fn index_of(&self, id: NodeId) -> Option<u32> {
        self.index.get(&id).copied()
    }

    pub fn get(&self, ix: u32) -> &Node {
        &self.list[ix as usize]
    }

    pub fn get_mut(&mut self, ix: u32) -> &mut Node {
        &mut self.list[ix as usize]
    }
}

/// A generator derived from the run's seed and a label: independent streams for the
/// network, the faults, each actor and each workload, so that one's draws never shift
/// another's.
pub fn derive_rng(seed: u64, parts: &[&[u8]]) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(b"cairn-sim rng v1");
    hasher.update(seed.to_le_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// A uniform index below `n` (> 0), drawn as a `u64` so that 32- and 64-bit machines draw
/// the same (`gen_range` over `usize` samples differently on each).
pub(crate) fn index_below(rng: &mut impl Rng, n: usize) -> usize {
    rng.gen_range(0..n as u64) as usize
}

/// The generator of the actor at `service` on `node` in its `epoch`-th incarnation (a
/// restarted actor must not replay the random numbers, such as request ids, of its past).
pub(crate) fn actor_rng(seed: u64, node: NodeId, service: Service, epoch: u32) -> ChaCha8Rng {
    let (tag, op) = service_code(service);
    derive_rng(
        seed,
        &[
            b"actor",
            &node.0,
            &[tag],
            &op.to_le_bytes(),
            &epoch.to_le_bytes(),
        ],
    )
}

/// A service as a tag and an operation number, for hashing.
pub(crate) fn service_code(service: Service) -> (u8, u64) {
    match service {
        Service::Introducer => (0, 0),
        Service::Storage => (1, 0),
        Service::Vdrive => (2, 0),
        Service::Client => (3, 0),
        Service::Upload(op) => (4, op.0),
        Service::Download(op) => (5, op.0),
        Service::Check(op) => (6, op.0),
        Service::Repair(op) => (7, op.0),
    }
}
