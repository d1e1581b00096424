//! [`LocalNetwork`]: several [`Node`]s in one process, connected through channels (for tests).

use super::{lock, Node, Outbound, Undelivered};
use cairn_actors::{Addr, Message, NodeId, Service};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A message on its way to a node.
struct Parcel {
    from: Addr,
    to: Service,
    msg: Message,
}

/// An in-process network: an [`Outbound`] that delivers to the other nodes added to it.
/// Each node has one inbound queue, drained in order by a task that awaits room in the
/// receiving actors' mailboxes (so messages between two nodes stay in order; the queue
/// itself is unbounded, which is fine for tests). Messages to unknown nodes are dropped.
#[derive(Default)]
pub struct LocalNetwork {
    links: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Parcel>>>,
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new node named `id` on this network (replacing any earlier node of that id as the
    /// destination of messages to `id`). Must be called within a tokio runtime.
    pub fn add_node(self: &Arc<Self>, id: NodeId) -> Node {
        let outbound: Arc<dyn Outbound> = self.clone();
        let node = Node::new(id, outbound);
        let (link, mut inbound) = mpsc::unbounded_channel::<Parcel>();
        lock(&self.links).insert(id, link);
        let receiver = node.clone();
        tokio::spawn(async move {
            while let Some(p) = inbound.recv().await {
                if let Err(error) = receiver.deliver(p.from, p.to, p.msg).await {
                    tracing::debug!(from = ?p.from, "message dropped: {error}");
                }
            }
        });
        node
    }

    /// Disconnects node `id`: messages to it are dropped from now on.
    pub fn remove_node(&self, id: NodeId) {
        lock(&self.links).remove(&id);
    }
}

impl Outbound for LocalNetwork {
    fn send(&self, from: Addr, to: Addr, msg: Message) -> Result<(), Undelivered> {
        let links = lock(&self.links);
        let Some(link) = links.get(&to.node) else {
            tracing::debug!(?from, ?to, "unknown node; message dropped");
            return Err(Undelivered("the node is not on this network".into()));
        };
        let parcel = Parcel {
            from,
            to: to.service,
            msg,
        };
        link.send(parcel).map_err(|_| {
            tracing::debug!(?from, ?to, "node gone; message dropped");
            Undelivered("the node is gone".into())
        })
    }

    /// The nodes of a local network reach each other by id: addresses mean nothing here.
    fn learn(&self, _node: NodeId, _address: &str) {}
}
