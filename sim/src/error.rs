//! What can go wrong when building or driving a simulated world.

use crate::faults::Fault;
use cairn_actors::{NodeId, Time};

/// A mistake in a scenario: the run itself never fails (what goes wrong inside it is
/// counted or recorded as an [`crate::Incident`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SimError {
    /// Two nodes with one id.
    #[error("node {0:?} is already in the world: give every node its own id")]
    DuplicateNode(NodeId),
    /// A node that was never added.
    #[error("node {0:?} is not in the world: add it with `World::add_node` first")]
    UnknownNode(NodeId),
    /// Scheduling before the current time.
    #[error("cannot schedule at {at:?}: the world is already at {now:?}")]
    InThePast { at: Time, now: Time },
    /// A fault with impossible parameters.
    #[error("invalid fault {fault:?}: {reason}")]
    InvalidFault { fault: Fault, reason: String },
}
