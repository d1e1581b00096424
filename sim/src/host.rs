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
    /// Boxed: a generator is 300-odd bytes, read only by actors that draw, and inline it
    /// would spread every node's record over six cache lines.
    pub rng: Box<ChaCha8Rng>,
    /// Each live timer's generation: a timer event fires only if its generation is still
    /// here, which is how cancelled and replaced timers are skipped without searching the
    /// queue.
    pub timers: HashMap<TimerId, u64, FastBuild>,
}

impl Hosted {
    pub fn new(actor: Box<dyn Actor>, rng: ChaCha8Rng) -> Self {
        Hosted {
            actor,
            rng: Box::new(rng),
            timers: HashMap::default(),
        }
    }
}

/// A node's running actors, by service.
///
/// Not a `BTreeMap`: its leaves hold eleven entries inline, which for a few hundred bytes
/// of actor state each is kilobytes per node, and at ten thousand nodes every lookup would
/// miss the cache. Most nodes run one actor, so the first (by service) sits in the table
/// itself, unboxed: finding it reads nothing but the node. The others sit sorted in a small
/// array, boxed so that spawning and stopping moves pointers, not actors.
#[derive(Default)]
pub(crate) struct ActorTable {
    first: Option<(Service, Hosted)>,
    /// The others, sorted by service, all after `first`'s.
    rest: Vec<(Service, Box<Hosted>)>,
}

impl ActorTable {
    fn find_rest(&self, service: &Service) -> Result<usize, usize> {
        self.rest.binary_search_by(|(s, _)| s.cmp(service))
    }

    pub fn get_mut(&mut self, service: &Service) -> Option<&mut Hosted> {
        match &mut self.first {
            Some((s, hosted)) if s == service => Some(hosted),
            Some(_) => {
                let i = self.rest.binary_search_by(|(s, _)| s.cmp(service)).ok()?;
                Some(&mut self.rest[i].1)
            }
            None => None,
        }
    }

    pub fn contains_key(&self, service: &Service) -> bool {
        match &self.first {
            Some((s, _)) => s == service || self.find_rest(service).is_ok(),
            None => false,
        }
    }

    /// Adds an actor; false (and nothing changed) if the service is taken.
    pub fn insert(&mut self, service: Service, hosted: Hosted) -> bool {
        if self.contains_key(&service) {
            return false;
        }
        match &mut self.first {
            None => self.first = Some((service, hosted)),
            Some(first) if service < first.0 => {
                let (old, old_hosted) = std::mem::replace(first, (service, hosted));
                self.rest.insert(0, (old, Box::new(old_hosted)));
            }
            Some(_) => {
                let i = self.find_rest(&service).unwrap_or_else(|i| i);
                self.rest.insert(i, (service, Box::new(hosted)));
            }
        }
        true
    }

    pub fn remove(&mut self, service: &Service) {
        match &self.first {
            Some((s, _)) if s == service => {
                self.first = (!self.rest.is_empty()).then(|| {
                    let (next, hosted) = self.rest.remove(0);
                    (next, *hosted)
                });
            }
            Some(_) => {
                if let Ok(i) = self.find_rest(service) {
                    self.rest.remove(i);
                }
            }
            None => {}
        }
    }

    pub fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }

    /// The services, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Service> {
        let first = self.first.iter().map(|(s, _)| s);
        first.chain(self.rest.iter().map(|(s, _)| s))
    }
}

/// One simulated node (its id is in [`Nodes`]).
pub(crate) struct Node {
    pub actors: ActorTable,
    pub factory: Factory,
    pub disk: SimDisk,
    /// The next crash is a power loss ([`crate::Fault::LoseUnsyncedWrites`]).
    pub power_loss_armed: bool,
    /// How far ahead of true time the node's clock reads, in nanoseconds (behind if
    /// negative; [`crate::Fault::SetClock`]). It outlives crashes, as a hardware clock does.
    pub clock_ahead: i64,
}

impl Node {
    /// What the node's clock reads when true time is `now`.
    pub fn clock(&self, now: cairn_actors::Time) -> cairn_actors::Time {
        cairn_actors::Time(now.0.saturating_add_signed(self.clock_ahead))
    }
}

/// Whether a node is up, and which incarnation runs: what every message send and delivery
/// asks of a node, kept apart from the rest of it (eight bytes a node, so ten thousand nodes'
/// fit in a cache that their full records would not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub up: bool,
    /// Counts crashes: a message addressed to an earlier incarnation is not delivered.
    pub epoch: u32,
}

/// Every node, by index (the order they were added) and by id.
#[derive(Default)]
pub(crate) struct Nodes {
    list: Vec<Node>,
    /// Each node's id and status, by index: read for every message, so kept in arrays of
    /// their own rather than in the nodes' records.
    ids: Vec<NodeId>,
    status: Vec<Status>,
    index: HashMap<NodeId, u32, FastBuild>,
}

impl Nodes {
    /// Adds a node, up; returns its index.
    pub fn push(&mut self, id: NodeId, node: Node) -> u32 {
        let ix = self.list.len() as u32;
        self.index.insert(id, ix);
        self.ids.push(id);
        self.list.push(node);
        self.status.push(Status { up: true, epoch: 0 });
        ix
    }

    /// Whether node `ix` is up, and its incarnation.
    pub fn status(&self, ix: u32) -> Status {
        self.status[ix as usize]
    }

    pub fn status_mut(&mut self, ix: u32) -> &mut Status {
        &mut self.status[ix as usize]
    }

    /// The id of node `ix`.
    pub fn id(&self, ix: u32) -> NodeId {
        self.ids[ix as usize]
    }

    /// Every node's id, by index.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Asks the CPU to start loading node `ix`'s record.
    pub fn prefetch_record(&self, ix: u32) {
        if let Some(node) = self.list.get(ix as usize) {
            prefetch(
                node as *const Node as *const u8,
                std::mem::size_of::<Node>(),
            );
        }
    }

    /// Asks the CPU to start loading the state of node `ix`'s first actor.
    pub fn prefetch_actor(&self, ix: u32) {
        let Some(Node { actors, .. }) = self.list.get(ix as usize) else {
            return;
        };
        if let Some((_, hosted)) = &actors.first {
            let state = &*hosted.actor;
            let len = std::mem::size_of_val(state).min(MAX_PREFETCH);
            prefetch(state as *const dyn Actor as *const u8, len);
        }
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

/// The most of an actor's state prefetched (a storage server's is a few hundred bytes).
const MAX_PREFETCH: usize = 512;

/// Asks the CPU to start loading `len` bytes at `at` into cache.
#[cfg(target_arch = "x86_64")]
fn prefetch(at: *const u8, len: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for offset in (0..len).step_by(64) {
        // SAFETY: a prefetch is a hint; it never faults and reads nothing into the program
        // (`wrapping_add` keeps the address arithmetic defined whatever it points at).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(offset).cast()) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_: *const u8, _: usize) {}

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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_actors::{Context, Input, OpId};

    struct Idle;

    impl Actor for Idle {
        fn handle(&mut self, _: Input, _: &mut Context<'_>) {}
    }

    fn hosted() -> Hosted {
        Hosted::new(Box::new(Idle), ChaCha8Rng::seed_from_u64(0))
    }

    #[test]
    fn actor_table_keeps_services_sorted_through_inserts_and_removals() {
        let mut table = ActorTable::default();
        let services = [
            Service::Client,
            Service::Upload(OpId(2)),
            Service::Storage,
            Service::Upload(OpId(1)),
            Service::Introducer,
        ];
        for service in services {
            assert!(table.insert(service, hosted()));
        }
        assert!(!table.insert(Service::Storage, hosted()), "taken");
        let mut sorted = services.to_vec();
        sorted.sort();
        assert_eq!(table.keys().copied().collect::<Vec<_>>(), sorted);
        for service in [
            Service::Introducer,
            Service::Upload(OpId(1)),
            Service::Vdrive,
        ] {
            table.remove(&service);
            assert!(!table.contains_key(&service));
            assert!(table.get_mut(&service).is_none());
        }
        sorted.retain(|s| *s != Service::Introducer && *s != Service::Upload(OpId(1)));
        assert_eq!(table.keys().copied().collect::<Vec<_>>(), sorted);
        assert!(sorted.iter().all(|s| table.get_mut(s).is_some()));
        table.clear();
        assert_eq!(table.keys().count(), 0);
        assert!(table.insert(Service::Vdrive, hosted()));
        assert!(table.contains_key(&Service::Vdrive));
    }
}
