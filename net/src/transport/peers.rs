//! The transport's table of peers: for each node it knows, its address (if any), its
//! connection, the dial or backoff in progress, and its outgoing queue; and the rules that
//! keep one connection per pair of nodes and space out reconnection attempts.

use super::furl::Furl;
use super::queue::{shared_budget, Queue};
use cairn_actors::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Where the transport stands with a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// A connection is up.
    Connected,
    /// A dial is in progress.
    Connecting,
    /// The last dial failed or the connection dropped; the next dial waits. Messages to the
    /// peer are dropped meanwhile.
    Backoff,
    /// No connection and none being made: the peer's address is unknown (it reached us
    /// before, and went), or nothing has asked for it yet.
    Idle,
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerState::Connected => "connected",
            PeerState::Connecting => "connecting",
            PeerState::Backoff => "backoff",
            PeerState::Idle => "idle",
        })
    }
}

/// What the transport can tell about one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's node id.
    pub id: NodeId,
    /// `host:port`: from its FURL if known, else where its connection came from (never the
    /// FURL itself, whose secret does not belong in status pages).
    pub address: Option<String>,
    /// Where the transport stands with it.
    pub state: PeerState,
    /// Dials made to it so far, and how many failed (or dropped) since it last connected.
    pub dials: u64,
    pub failures: u32,
    /// Why the last dial failed, or the last connection dropped (cleared once connected).
    pub last_error: Option<String>,
}

/// An established connection to a peer.
pub struct Conn {
    /// Tells this connection from the peer's others.
    pub id: u64,
    /// The node that dialled it (this node or the peer).
    pub dialled_by: NodeId,
    /// The peer's socket address.
    pub remote: SocketAddr,
    /// The task running it; aborting it closes the connection.
    pub task: AbortHandle,
}

/// One peer.
pub struct Peer {
    /// Where to dial it, if known (from `add_peer`: configuration, or an announcement the
    /// client believed).
    pub address: Option<Furl>,
    pub conn: Option<Conn>,
    /// The dial in progress.
    pub dial: Option<AbortHandle>,
    /// The timer that will dial again after a failure.
    pub retry: Option<AbortHandle>,
    /// Failed dials or dropped connections since the last connection came up.
    pub failures: u32,
    /// Why the last of those failed.
    pub last_error: Option<String>,
    /// Dials started, ever.
    pub dials: u64,
    /// Given by configuration (the introducer): never forgotten, however often it fails.
    pub pinned: bool,
    pub queue: Queue,
}

impl Peer {
    /// Where the transport stands with this peer.
    pub fn state(&self) -> PeerState {
        if self.conn.is_some() {
            PeerState::Connected
        } else if self.dial.is_some() {
            PeerState::Connecting
        } else if self.retry.is_some() {
            PeerState::Backoff
        } else {
            PeerState::Idle
        }
    }

    /// Aborts the connection, dial and timer of this peer.
    pub fn close(&mut self) {
        let tasks = [self.conn.take().map(|c| c.task), self.dial.take()];
        for task in tasks.into_iter().flatten().chain(self.retry.take()) {
            task.abort();
        }
    }
}

/// What to do with a newly established connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Use it (in place of the current connection, if any: abort that one).
    Install,
    /// Close it: the current connection is the one both sides keep.
    Refuse,
}

/// Every peer the transport knows, by node id (ordered, so status lists are stable).
pub struct Peers {
    me: NodeId,
    map: BTreeMap<NodeId, Peer>,
    queue_frames: usize,
    queue_bytes: usize,
    /// The byte budget every peer's queue draws from.
    shared: Arc<Semaphore>,
    next_conn: u64,
    rng: ChaCha8Rng,
    /// Dials started in the current second, and when that second began.
    dials_this_second: (Instant, u32),
}

impl Peers {
    /// An empty table for node `me`, whose peers get queues of `queue_frames` frames and
    /// `queue_bytes` bytes; `rng` jitters the backoff.
    pub fn new(me: NodeId, queues: (usize, usize, usize), rng: ChaCha8Rng) -> Self {
        let (queue_frames, queue_bytes, all_queues_bytes) = queues;
        Peers {
            me,
            map: BTreeMap::new(),
            queue_frames,
            queue_bytes,
            shared: shared_budget(all_queues_bytes),
            next_conn: 1,
            rng,
            dials_this_second: (Instant::now(), 0),
        }
    }

    /// How many peers are known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether a dial may start now, at most `per_second` a second; if not, how long until
    /// one may.
    pub fn pace_dial(&mut self, per_second: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let (start, count) = &mut self.dials_this_second;
        if now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *count) = (now, 0);
        }
        if *count < per_second.max(1) {
            *count += 1;
            return Ok(());
        }
        Err(Duration::from_secs(1).saturating_sub(now.duration_since(*start)))
    }

    /// The peer `id`, if known.
    pub fn get(&mut self, id: NodeId) -> Option<&mut Peer> {
        self.map.get_mut(&id)
    }

    /// The peer `id`, added (with no address) if new.
    pub fn entry(&mut self, id: NodeId) -> &mut Peer {
        let (frames, bytes, shared) = (self.queue_frames, self.queue_bytes, &self.shared);
        self.map.entry(id).or_insert_with(|| Peer {
            address: None,
            conn: None,
            dial: None,
            retry: None,
            failures: 0,
            last_error: None,
            dials: 0,
            pinned: false,
            queue: Queue::new(frames, bytes, shared.clone()),
        })
    }

    /// Forgets peer `id`, closing whatever it had.
    pub fn remove(&mut self, id: NodeId) {
        if let Some(mut peer) = self.map.remove(&id) {
            peer.close();
        }
    }

    /// Every peer's id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.map.keys().copied().collect()
    }

    /// Every peer's status.
    pub fn statuses(&self) -> Vec<PeerStatus> {
        let status = |(id, peer): (&NodeId, &Peer)| PeerStatus {
            id: *id,
            address: match (&peer.address, &peer.conn) {
                (Some(furl), _) => Some(furl.address()),
                (None, Some(conn)) => Some(conn.remote.to_string()),
                (None, None) => None,
            },
            state: peer.state(),
            dials: peer.dials,
            failures: peer.failures,
            last_error: peer.last_error.clone(),
        };
        self.map.iter().map(status).collect()
    }

    /// A number for a new connection.
    pub fn next_conn_id(&mut self) -> u64 {
        self.next_conn += 1;
        self.next_conn
    }

    /// Whether a connection to `peer` dialled by `dialled_by` should be used. Of two
    /// connections dialled by different nodes, both sides keep the one the lower node id
    /// dialled; a new connection dialled by the same node as the current one replaces it
    /// (the dialler has restarted, or lost the old one).
    pub fn admit(&mut self, peer: NodeId, dialled_by: NodeId) -> Admission {
        let current = self.map.get(&peer).and_then(|p| p.conn.as_ref());
        match current {
            None => Admission::Install,
            Some(conn) if conn.dialled_by == dialled_by => Admission::Install,
            Some(_) if dialled_by == self.me.min(peer) => Admission::Install,
            Some(_) => Admission::Refuse,
        }
    }

    /// How long to wait before dialling a peer that has failed `failures` times in a row:
    /// `min` doubled per failure up to `max`, then a random fraction of it (between half and
    /// all), so that peers that failed together do not all retry together.
    pub fn backoff(&mut self, failures: u32, min: Duration, max: Duration) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = min.saturating_mul(1 << doublings).min(max).max(min);
        full.mul_f64(self.rng.gen_range(0.5..=1.0))
    }

    /// Closes everything and forgets every peer.
    pub fn close_all(&mut self) {
        for peer in self.map.values_mut() {
            peer.close();
        }
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn peers(me: u8) -> Peers {
        Peers::new(
            NodeId([me; 32]),
            (4, 1000, 4000),
            ChaCha8Rng::seed_from_u64(1),
        )
    }

    #[tokio::test]
    async fn dials_are_paced_per_second() {
        let mut p = peers(1);
        for _ in 0..3 {
            assert_eq!(p.pace_dial(3), Ok(()));
        }
        let wait = p.pace_dial(3).expect_err("a fourth dial this second waits");
        assert!(wait <= Duration::from_secs(1));
    }

    async fn connect(peers: &mut Peers, peer: NodeId, dialled_by: NodeId) {
        let task = tokio::spawn(std::future::pending::<()>()).abort_handle();
        let id = peers.next_conn_id();
        peers.entry(peer).conn = Some(Conn {
            id,
            dialled_by,
            remote: "127.0.0.1:1".parse().expect("an address"),
            task,
        });
    }

    #[tokio::test]
    async fn both_sides_keep_the_connection_the_lower_id_dialled() {
        let (low, high) = (NodeId([1; 32]), NodeId([2; 32]));
        // The lower node has its own connection up when the higher one's arrives.
        let mut at_low = peers(1);
        connect(&mut at_low, high, low).await;
        assert_eq!(at_low.admit(high, high), Admission::Refuse);
        assert_eq!(
            at_low.admit(high, low),
            Admission::Install,
            "its own redial"
        );
        // The higher node has its own connection up when the lower one's arrives.
        let mut at_high = peers(2);
        connect(&mut at_high, low, high).await;
        assert_eq!(at_high.admit(low, low), Admission::Install);
        assert_eq!(
            at_high.admit(low, high),
            Admission::Install,
            "its own redial"
        );
        // Nothing up: anything goes.
        assert_eq!(peers(1).admit(high, high), Admission::Install);
    }

    #[tokio::test]
    async fn states_follow_the_connection_dial_and_timer() {
        let mut table = peers(1);
        let id = NodeId([9; 32]);
        assert_eq!(table.entry(id).state(), PeerState::Idle);
        let pending = || tokio::spawn(std::future::pending::<()>()).abort_handle();
        table.entry(id).retry = Some(pending());
        assert_eq!(table.entry(id).state(), PeerState::Backoff);
        table.entry(id).dial = Some(pending());
        assert_eq!(table.entry(id).state(), PeerState::Connecting);
        connect(&mut table, id, NodeId([1; 32])).await;
        assert_eq!(table.entry(id).state(), PeerState::Connected);
        assert_eq!(table.statuses()[0].address.as_deref(), Some("127.0.0.1:1"));
        table.entry(id).close();
        assert_eq!(table.entry(id).state(), PeerState::Idle);
        assert_eq!(PeerState::Backoff.to_string(), "backoff");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut table = peers(1);
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for failures in 0u32..40 {
            let full = min
                .saturating_mul(1 << failures.saturating_sub(1).min(31))
                .min(max);
            let delay = table.backoff(failures, min, max);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
    }
}
