//! The authenticated transport: how a node's actors reach other nodes over TCP.
//!
//! Each node has a [`Furl`] (`pb://<node id>@<host>:<port>/<secret>`). Dialling one means a
//! TLS 1.3 handshake in which both sides present self-signed certificates around their
//! Ed25519 node keys ([`tls`], [`verifier`]): the dialler accepts only the key whose hash is
//! the FURL's node id, the acceptor learns who called from the key it proved. The dialler
//! then shows the FURL's secret in a hello; a wrong or missing secret closes the connection.
//! After that, [`frame`]s carry `(from service, to service, message)`; the sending node is
//! always the authenticated peer, never something a frame claims.
//!
//! There is one connection per pair of nodes, whichever side dialled it (if both dial at
//! once, both keep the one the lower node id dialled), so replies go back over the
//! connection a request came in on: the introducer and storage servers need no addresses
//! for their clients. Addresses are learnt from [`Transport::add_peer`] (the introducer's
//! FURL, from configuration) and from the node's client actor, through the host
//! ([`Outbound::learn`]): the client passes on the address of each announcement it believed —
//! one from its introducer, newer than what it knew, whose signature verifies — and the
//! transport takes it if it is a FURL for the node announced. The transport itself never
//! reads addresses out of the frames it carries: a frame can come from any peer, and an
//! address taken from one would let that peer make this node dial any host. A node with an
//! address
//! is dialled as soon as it is known and redialled when its connection drops, with
//! exponential backoff (capped, jittered) after failures.
//!
//! **Backpressure.** [`Outbound::send`] is called from an actor's task and never waits: it
//! encodes the frame and puts it on the peer's bounded queue ([`queue`]: at most
//! [`TransportConfig::queue_frames`] frames and [`TransportConfig::queue_bytes`] bytes),
//! or drops it (logged at debug) if the queue is full, the peer is in backoff, or its address
//! is unknown. The actors already treat the network as lossy: every request has a timeout
//! and a retry. Waiting for room instead would risk a distributed deadlock: two nodes'
//! actors each blocked sending to the other while each reader waits for room in a mailbox
//! that only those blocked actors would empty. Real backpressure happens further down:
//! a connection's reader awaits room in the receiving actor's mailbox before reading on, so
//! a slow node stops reading, TCP's window fills, the sender's writer stalls and its queue
//! fills. The default queue sizes hold an uploader's whole pipeline window (4 segments of
//! blocks to each server, a few MiB) many times over, so that uploads never lose writes to
//! a full queue in normal operation.
//!
//! TLS encryption and decryption run on each connection's own task, so they spread across
//! the runtime's threads; the codec's work and the stores' disk I/O run in the actors' tasks,
//! whose workers hand the connections' tasks on first (see [`crate::host`]).

mod connection;
pub mod frame;
mod furl;
mod peers;
mod queue;
mod tls;
mod verifier;

pub use connection::LinkError;
pub use furl::{Furl, FurlError};
pub use peers::{PeerState, PeerStatus};
pub use tls::IdentityError;

use crate::host::{lock, Node, Outbound, Undelivered};
use cairn_actors::protocol::MAX_MESSAGE_SIZE;
use cairn_actors::{Addr, Message, NodeId, NodeKey};
use connection::{Established, Inbox};
use frame::Frame;
use peers::{Admission, Conn, Peers};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tls::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// How the transport behaves. The defaults suit a grid on the Internet.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The largest frame read or written (a larger length prefix closes the connection).
    pub max_frame: usize,
    /// How long connecting, the TLS handshake and the hello may take together.
    pub connect_timeout: Duration,
    /// The wait before the first redial after a failure; it doubles with each failure...
    pub backoff_min: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// The most frames queued for one peer.
    pub queue_frames: usize,
    /// The most bytes queued for one peer...
    pub queue_bytes: usize,
    /// ... and for all peers together.
    pub all_queues_bytes: usize,
    /// How long a write may wait on a peer that does not read before its connection closes.
    pub write_timeout: Duration,
    /// The most peers known at once (learnt addresses past it are not taken).
    pub max_peers: usize,
    /// The most dials started per second (more wait their turn).
    pub dials_per_second: u32,
    /// A learnt peer that has failed this many times in a row is forgotten (until it is
    /// announced again); configured ones never are.
    pub forget_after_failures: u32,
    /// How long a connection may be quiet before a keepalive is sent on it.
    pub keepalive: Duration,
    /// How long a connection may receive nothing (not even a keepalive) before it is closed.
    pub idle_timeout: Duration,
    /// The most incoming connections in their handshake at once; past it, the oldest is
    /// dropped to make room, so that idle callers cannot stop the node from accepting.
    pub max_handshakes: usize,
    /// The most of those from one IP address (more from it are closed at once).
    pub max_handshakes_per_ip: usize,
    /// How long an incoming connection has for its TLS handshake.
    pub tls_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            // A message and its two service names, with room to spare.
            max_frame: MAX_MESSAGE_SIZE + 1024,
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            queue_frames: 1024,
            queue_bytes: 64 << 20,
            all_queues_bytes: 256 << 20,
            write_timeout: Duration::from_secs(30),
            max_peers: 10_000,
            dials_per_second: 50,
            forget_after_failures: 30,
            keepalive: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_handshakes: 64,
            max_handshakes_per_ip: 8,
            tls_timeout: Duration::from_secs(5),
        }
    }
}

/// What can go wrong setting up a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}: {source} (is the port in use, or the address not this machine's?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The FURL's secret or host is not valid.
    #[error("invalid FURL part: {0}")]
    Furl(#[from] FurlError),
    /// The node's TLS identity could not be made.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The OS gave no randomness.
    #[error("could not seed the transport's random number generator: {0}")]
    Entropy(rand::Error),
}

/// A node's transport: listens for other nodes, dials them, and carries its actors'
/// messages. Use it as the node's [`Outbound`].
pub struct Transport {
    me: Weak<Transport>,
    id: NodeId,
    furl: Furl,
    local_addr: SocketAddr,
    config: TransportConfig,
    identity: Identity,
    peers: Mutex<Peers>,
    node: OnceLock<Node>,
    listener: Mutex<Option<TcpListener>>,
    accepting: Mutex<Option<AbortHandle>>,
    closed: AtomicBool,
}

impl Transport {
    /// Binds `listen` (e.g. `127.0.0.1:0`) for the node with `key`, whose FURL will carry
    /// `secret` and `advertise_host` (or else the bound IP address: give a host when binding
    /// `0.0.0.0`, which other nodes cannot dial). Nothing is accepted or dialled until
    /// [`Transport::serve`].
    pub async fn bind(
        key: &NodeKey,
        secret: String,
        listen: SocketAddr,
        advertise_host: Option<String>,
        config: TransportConfig,
    ) -> Result<Arc<Transport>, TransportError> {
        Furl::check_secret(&secret)?;
        let identity = Identity::new(key)?;
        let bind_error = |source| TransportError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let host = advertise_host.unwrap_or_else(|| local_addr.ip().to_string());
        Furl::check_host(&host)?;
        let furl = Furl {
            node: key.id(),
            host,
            port: local_addr.port(),
            secret,
        };
        let rng = ChaCha8Rng::from_seed(crate::entropy::seed().map_err(TransportError::Entropy)?);
        let queues = (
            config.queue_frames,
            config.queue_bytes,
            config.all_queues_bytes,
        );
        let peers = Peers::new(key.id(), queues, rng);
        Ok(Arc::new_cyclic(|me| Transport {
            me: me.clone(),
            id: key.id(),
            furl,
            local_addr,
            config,
            identity,
            peers: Mutex::new(peers),
            node: OnceLock::new(),
            listener: Mutex::new(Some(listener)),
            accepting: Mutex::new(None),
            closed: AtomicBool::new(false),
        }))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's FURL: give it to the nodes that should reach this one.
    pub fn furl(&self) -> Furl {
        self.furl.clone()
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts accepting connections and dialling the known peers; frames that arrive are
    /// delivered to `node`'s actors. Call once, within a tokio runtime.
    pub fn serve(self: &Arc<Self>, node: Node) {
        if self.node.set(node).is_err() {
            return tracing::warn!("transport already serving; serve() called again");
        }
        let Some(listener) = lock(&self.listener).take() else {
            return;
        };
        let task = tokio::spawn(self.clone().accept_loop(listener));
        *lock(&self.accepting) = Some(task.abort_handle());
        let mut peers = lock(&self.peers);
        for id in peers.ids() {
            self.dial_if_idle(&mut peers, id);
        }
    }

    /// Tells the transport where node `furl.node` listens, from configuration (the
    /// introducer's FURL): the peer is kept however often it fails. It is dialled at once if
    /// the transport serves.
    pub fn add_peer(&self, furl: Furl) {
        self.set_address(furl, true);
    }

    /// Takes `furl` as where its node listens: `pinned` from configuration, else learnt.
    fn set_address(&self, furl: Furl, pinned: bool) {
        if furl.node == self.id {
            return;
        }
        let mut peers = lock(&self.peers);
        let known = peers.get(furl.node).is_some();
        if !known && !pinned && peers.len() >= self.config.max_peers {
            return tracing::warn!(peer = ?furl.node, "peer table full; address not taken");
        }
        let peer = peers.entry(furl.node);
        peer.pinned |= pinned;
        if peer.address.as_ref() == Some(&furl) {
            // Announced anew while waiting to redial it: it is up (it just announced, or
            // restarted), so the wait is over.
            let waiting = peer.conn.is_none() && peer.dial.is_none();
            if let Some(retry) = peer.retry.take_if(|_| waiting && !pinned) {
                retry.abort();
                tracing::debug!(peer = ?furl.node, "announced while in backoff: dialling now");
                self.dial_if_idle(&mut peers, furl.node);
            }
            return;
        }
        tracing::debug!(peer = ?furl.node, address = %furl.address(), "learnt a peer's address");
        peer.address = Some(furl.clone());
        if let Some(retry) = peer.retry.take() {
            // A new address may be what the failing dials needed: try it now.
            retry.abort();
        }
        self.dial_if_idle(&mut peers, furl.node);
    }

    /// Every peer the transport knows, and where it stands with each.
    pub fn peers(&self) -> Vec<PeerStatus> {
        lock(&self.peers).statuses()
    }

    /// Stops listening and closes every connection; messages sent afterwards are dropped.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(task) = lock(&self.accepting).take() {
            task.abort();
        }
        lock(&self.listener).take();
        lock(&self.peers).close_all();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Starts dialling peer `id` if it has an address and nothing is under way with it.
    fn dial_if_idle(&self, peers: &mut Peers, id: NodeId) {
        let (Some(transport), Some(_)) = (self.me.upgrade(), self.node.get()) else {
            return;
        };
        let Some(peer) = peers.get(id) else { return };
        let Some(furl) = peer.address.clone() else {
            return;
        };
        if self.is_closed() || peer.state() != PeerState::Idle {
            return;
        }
        if let Err(wait) = peers.pace_dial(self.config.dials_per_second) {
            // Too many dials this second: this one waits its turn, as after a failure.
            let transport = transport.clone();
            let task = tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                transport.retry(id);
            });
            if let Some(peer) = peers.get(id) {
                peer.retry = Some(task.abort_handle());
            }
            return;
        }
        let Some(peer) = peers.get(id) else { return };
        let task = tokio::spawn(async move { transport.dial(furl).await });
        peer.dial = Some(task.abort_handle());
        peer.dials += 1;
    }

    async fn dial(self: Arc<Self>, furl: Furl) {
        let result = connection::dial(&self.identity, self.id, &furl, &self.config).await;
        let mut peers = lock(&self.peers);
        let Some(peer) = peers.get(furl.node) else {
            return;
        };
        peer.dial = None;
        match result {
            Ok(link) => self.admit(&mut peers, link, false),
            Err(error) => {
                let failures = peer.failures + 1;
                peer.last_error = Some(error.to_string());
                let (address, peer) = (furl.address(), furl.node);
                if error.is_suspicious() {
                    tracing::warn!(?peer, %address, "refusing the connection: {error}");
                } else {
                    tracing::debug!(?peer, %address, failures, "dial failed: {error}");
                }
                self.failed(&mut peers, furl.node);
            }
        }
    }

    /// Counts a failure with peer `id` and, unless another connection is up, drops what is
    /// queued for it and dials again after a backoff.
    fn failed(&self, peers: &mut Peers, id: NodeId) {
        let (min, max) = (self.config.backoff_min, self.config.backoff_max);
        let Some(peer) = peers.get(id) else { return };
        peer.failures = peer.failures.saturating_add(1);
        if peer.conn.is_some() || peer.dial.is_some() {
            return;
        }
        let dropped = peer.queue.clear();
        if dropped > 0 {
            tracing::debug!(peer = ?id, dropped, "peer unreachable; dropped its queued messages");
        }
        let (failures, has_address) = (peer.failures, peer.address.is_some());
        if !has_address {
            // A peer known only from its connection (a client, say): nothing to redial, and
            // nothing to remember until it calls again.
            peers.remove(id);
            return;
        }
        if !peer.pinned && failures >= self.config.forget_after_failures {
            tracing::info!(peer = ?id, failures, "peer keeps failing; forgotten until announced again");
            peers.remove(id);
            return;
        }
        let Some(transport) = self.me.upgrade() else {
            return;
        };
        if self.is_closed() {
            return;
        }
        let delay = peers.backoff(failures, min, max);
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            transport.retry(id);
        });
        if let Some(peer) = peers.get(id) {
            peer.retry = Some(task.abort_handle());
        }
    }

    fn retry(&self, id: NodeId) {
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get(id) {
            peer.retry = None;
        }
        self.dial_if_idle(&mut peers, id);
    }

    /// Accepts connections for as long as the transport serves. Each handshake runs in a task
    /// of its own, within bounds: at most [`TransportConfig::max_handshakes_per_ip`] from one
    /// address (a flood from one host leaves room for everyone else) and at most
    /// [`TransportConfig::max_handshakes`] in all, the oldest dropped to make room (so that
    /// accepting never stops).
    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let pending = Arc::new(Mutex::new(Handshakes::default()));
        loop {
            match listener.accept().await {
                Ok((tcp, remote)) => {
                    let mut handshakes = lock(&pending);
                    if handshakes.from(remote.ip()) >= self.config.max_handshakes_per_ip {
                        tracing::debug!(%remote, "too many handshakes from this address; closed");
                        continue;
                    }
                    if handshakes.len() >= self.config.max_handshakes.max(1) {
                        if let Some(oldest) = handshakes.drop_oldest() {
                            tracing::debug!(remote = %oldest, "handshake slots full; dropped the oldest");
                        }
                    }
                    let (transport, done) = (self.clone(), pending.clone());
                    let number = handshakes.next_number();
                    let task = tokio::spawn(async move {
                        transport.accept(tcp, remote).await;
                        lock(&done).finished(number);
                    });
                    handshakes.started(number, remote, task.abort_handle());
                }
                Err(error) => {
                    // Out of file descriptors, usually: wait for some to close.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn accept(self: Arc<Self>, tcp: TcpStream, remote: SocketAddr) {
        let secret = &self.furl.secret;
        match connection::accept(&self.identity, tcp, remote, secret, &self.config).await {
            Ok(link) => self.admit(&mut lock(&self.peers), link, true),
            Err((peer, error)) if error.is_suspicious() => {
                tracing::warn!(?peer, %remote, "refusing an incoming connection: {error}");
            }
            Err((peer, error)) => {
                tracing::debug!(?peer, %remote, "incoming connection failed: {error}");
            }
        }
    }

    /// Puts an established connection to use, unless the transport is closed, the peer is
    /// this node, or the peer's current connection is the one to keep.
    fn admit(&self, peers: &mut Peers, link: Established, welcome: bool) {
        let (peer, remote) = (link.peer, link.remote);
        let (Some(transport), Some(node)) = (self.me.upgrade(), self.node.get().cloned()) else {
            return;
        };
        if self.is_closed() {
            return;
        }
        if peer == self.id {
            return tracing::warn!(%remote, "refusing a connection from this node's own key");
        }
        if peers.admit(peer, link.dialled_by) == Admission::Refuse {
            return tracing::debug!(?peer, %remote, "closing a duplicate connection");
        }
        let id = peers.next_conn_id();
        let dialled_by = link.dialled_by;
        let entry = peers.entry(peer);
        let queue = entry.queue.receiver();
        let task = tokio::spawn(async move {
            let inbox = Delivery { transport, node };
            let config = &inbox.transport.config;
            let result = connection::run(link, welcome, queue, &inbox, config).await;
            inbox.transport.ended(peer, id, result);
        });
        let conn = Conn {
            id,
            dialled_by,
            remote,
            task: task.abort_handle(),
        };
        if let Some(old) = entry.conn.replace(conn) {
            old.task.abort();
        }
        if let Some(retry) = entry.retry.take() {
            retry.abort();
        }
        entry.failures = 0;
        entry.last_error = None;
        tracing::debug!(?peer, %remote, "connected");
    }

    /// A connection's task has ended: if it was the peer's current one, redial after a
    /// backoff (if the peer's address is known).
    fn ended(&self, peer: NodeId, id: u64, result: Result<(), LinkError>) {
        match &result {
            Ok(()) => tracing::debug!(?peer, "the peer closed the connection"),
            Err(error) if error.is_suspicious() => {
                tracing::error!(?peer, "closing the connection: {error}")
            }
            Err(error) => tracing::info!(?peer, "connection lost: {error}"),
        }
        let mut peers = lock(&self.peers);
        let Some(entry) = peers.get(peer) else { return };
        if entry.conn.as_ref().map(|c| c.id) != Some(id) {
            return;
        }
        entry.conn = None;
        self.failed(&mut peers, peer);
    }
}

impl Outbound for Transport {
    fn send(&self, from: Addr, to: Addr, msg: Message) -> Result<(), Undelivered> {
        let frame = Frame::Deliver {
            from: from.service,
            to: to.service,
            msg,
        };
        let bytes = frame::encode(&frame, self.config.max_frame).map_err(|error| {
            tracing::warn!(?from, ?to, "message not sent: {error}");
            Undelivered(format!("the message cannot be sent: {error}"))
        })?;
        let mut peers = lock(&self.peers);
        let Some(peer) = peers.get(to.node) else {
            tracing::debug!(?from, ?to, "no address known for the node; message dropped");
            return Err(Undelivered("no address is known for the node".into()));
        };
        if peer.state() == PeerState::Idle && peer.address.is_some() {
            self.dial_if_idle(&mut peers, to.node);
        }
        let Some(peer) = peers.get(to.node) else {
            return Err(Undelivered("no address is known for the node".into()));
        };
        let state = peer.state();
        if !matches!(state, PeerState::Connected | PeerState::Connecting) {
            tracing::debug!(?from, ?to, %state, "node unreachable; message dropped");
            let why = match &peer.last_error {
                Some(error) => format!("the node is unreachable ({state}: {error})"),
                None => format!("the node is unreachable ({state})"),
            };
            return Err(Undelivered(why));
        }
        peer.queue.push(bytes).map_err(|_| {
            tracing::debug!(?from, ?to, "the node's queue is full; message dropped");
            Undelivered("too much is queued for the node already".into())
        })
    }

    /// Takes `address` for `node` if it is a FURL for that node (a FURL pins the key the
    /// connection must prove, so a FURL naming another node would be refused anyway).
    fn learn(&self, node: NodeId, address: &str) {
        match address.parse::<Furl>() {
            Ok(furl) if furl.node == node => self.set_address(furl, false),
            _ => tracing::debug!(
                ?node,
                "announced address is not a FURL for the node announced; ignored"
            ),
        }
    }
}

/// The incoming connections in their handshake, oldest first.
#[derive(Default)]
struct Handshakes {
    pending: std::collections::BTreeMap<u64, (SocketAddr, AbortHandle)>,
    numbered: u64,
}

impl Handshakes {
    fn next_number(&mut self) -> u64 {
        self.numbered += 1;
        self.numbered
    }

    fn len(&self) -> usize {
        self.pending.len()
    }

    /// How many are from `ip`.
    fn from(&self, ip: std::net::IpAddr) -> usize {
        self.pending.values().filter(|(r, _)| r.ip() == ip).count()
    }

    fn started(&mut self, number: u64, remote: SocketAddr, task: AbortHandle) {
        // A task that already ended has taken itself out: nothing to keep.
        if !task.is_finished() {
            self.pending.insert(number, (remote, task));
        }
    }

    fn finished(&mut self, number: u64) {
        self.pending.remove(&number);
    }

    /// Aborts the oldest handshake; where it came from.
    fn drop_oldest(&mut self) -> Option<SocketAddr> {
        let (_, (remote, task)) = self.pending.pop_first()?;
        task.abort();
        Some(remote)
    }
}

/// Where a connection's reader hands its frames: the node's actors. Announcements pass
/// through like any message; only the client actor decides whether to believe them.
struct Delivery {
    transport: Arc<Transport>,
    node: Node,
}

impl Inbox for Delivery {
    async fn receive(&self, peer: NodeId, frame: Frame) {
        let Frame::Deliver { from, to, msg } = frame else {
            return;
        };
        let from = Addr::new(peer, from);
        if let Err(error) = self.node.deliver(from, to, msg).await {
            tracing::debug!(?from, ?to, "message dropped: {error}");
        }
    }
}
