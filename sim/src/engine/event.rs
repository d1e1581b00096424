//! The things that can happen in the world, as the event queue holds them.
//!
//! Nodes appear by index, not id, and a message carries its encoded length and fingerprint
//! (computed once, when sent) so that neither routing nor tracing re-encodes it.

use crate::faults::Fault;
use cairn_actors::{Input, Message, Service, TimerId};

/// One scheduled happening.
pub(crate) enum Event {
    /// A message arrives.
    Deliver(Delivery),
    /// A timer comes due (it fires only if still current: see `Hosted::timers`).
    Timer {
        node: u32,
        service: Service,
        id: TimerId,
        generation: u64,
    },
    /// An input from the node itself or its local user. With an `epoch`, it is meant for
    /// that incarnation of the node only (a `Start`, the plaintext an actor pulled).
    Input {
        node: u32,
        service: Service,
        epoch: Option<u32>,
        input: Input,
    },
    /// A fault strikes.
    Fault(Fault),
}

impl Event {
    /// The node it happens at (`None` for a fault).
    pub fn node(&self) -> Option<u32> {
        match self {
            Event::Deliver(d) => Some(d.to),
            Event::Timer { node, .. } | Event::Input { node, .. } => Some(*node),
            Event::Fault(_) => None,
        }
    }
}

/// A message in flight.
pub(crate) struct Delivery {
    pub from: u32,
    pub from_service: Service,
    pub to: u32,
    pub to_service: Service,
    /// The receiver's incarnation when the message was sent.
    pub epoch: u32,
    pub len: u64,
    pub print: u64,
    pub payload: Payload,
}

/// A message as it travels: as a value, or (chaos mode) as its wire bytes.
#[derive(Clone)]
pub(crate) enum Payload {
    Message(Message),
    Wire(Vec<u8>),
}
