//! What a run did, in numbers (events, messages, faults) and in incidents (things that
//! should never happen, such as an actor panicking, recorded rather than aborting the run).

use crate::faults::FaultKind;
use cairn_actors::{Addr, NodeId, Time};
use std::collections::BTreeMap;
use std::fmt;

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The network lost it (loss probability).
    Lost,
    /// A partition stood between sender and receiver.
    Partitioned,
    /// The receiving node was down, or restarted while the message was in flight.
    NodeDown,
    /// The receiving node runs no actor at that service.
    NoActor,
    /// It was addressed to a node that is not in the world.
    UnknownNode,
    /// Its wire form did not decode (chaos mode).
    DecodeFailed,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Lost,
        DropReason::Partitioned,
        DropReason::NodeDown,
        DropReason::NoActor,
        DropReason::UnknownNode,
        DropReason::DecodeFailed,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts of what happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events taken from the queue and acted on (stale timers excluded).
    pub events: u64,
    /// Messages actors sent (copies made by duplication not included).
    pub messages_sent: u64,
    /// Messages handed to their receiver (duplicates included).
    pub messages_delivered: u64,
    /// Extra copies the network made.
    pub messages_duplicated: u64,
    /// Encoded bytes of the messages sent.
    pub bytes_sent: u64,
    dropped: [u64; DropReason::ALL.len()],
    /// Timers that fired.
    pub timers_fired: u64,
    /// Timers that came due after being cancelled, replaced, or outliving their actor.
    pub timers_stale: u64,
    /// Inputs other than messages and timers handed to actors (start, local requests,
    /// plaintext, drained output).
    pub inputs: u64,
    /// Inputs that found no actor to take them.
    pub inputs_undelivered: u64,
    /// Actors that panicked.
    pub panics: u64,
    /// Faults applied, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
}

impl Counters {
    /// Messages dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Messages dropped for any reason.
    pub fn messages_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Faults of `kind` applied.
    pub fn faults_of(&self, kind: FaultKind) -> u64 {
        self.faults.get(&kind).copied().unwrap_or(0)
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }

    pub(crate) fn count_fault(&mut self, kind: FaultKind) {
        *self.faults.entry(kind).or_insert(0) += 1;
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events; messages: {} sent ({} bytes), {} delivered, {} duplicated, {} dropped",
            self.events,
            self.messages_sent,
            self.bytes_sent,
            self.messages_delivered,
            self.messages_duplicated,
            self.messages_dropped()
        )?;
        for reason in DropReason::ALL {
            let n = self.dropped(reason);
            if n > 0 {
                write!(f, " [{reason:?} {n}]")?;
            }
        }
        write!(
            f,
            "; timers: {} fired, {} stale; {} inputs; {} panics",
            self.timers_fired, self.timers_stale, self.inputs, self.panics
        )?;
        for (kind, n) in &self.faults {
            write!(f, "; {kind:?} ×{n}")?;
        }
        Ok(())
    }
}

/// Something that should not happen, recorded when it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// When it happened.
    pub at: Time,
    /// What happened.
    pub kind: IncidentKind,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncidentKind {
    /// An actor panicked handling an input; it was removed (as if its task had died) and the
    /// effects of that input were discarded.
    ActorPanicked { addr: Addr, message: String },
    /// A message's wire form did not decode (chaos mode); it was dropped.
    DecodeFailed { from: Addr, to: Addr, error: String },
    /// A node's factory panicked building its actors; the node is up with no actors.
    FactoryPanicked { node: NodeId, message: String },
    /// An actor spawned another at a service that was taken; the new one was discarded.
    SpawnCollision { addr: Addr },
}

impl fmt::Display for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IncidentKind::ActorPanicked { addr, message } => {
                write!(f, "{:?}: actor {addr:?} panicked: {message}", self.at)
            }
            IncidentKind::DecodeFailed { from, to, error } => write!(
                f,
                "{:?}: message {from:?} -> {to:?} did not decode: {error}",
                self.at
            ),
            IncidentKind::FactoryPanicked { node, message } => {
                write!(
                    f,
                    "{:?}: node {node:?}'s factory panicked: {message}",
                    self.at
                )
            }
            IncidentKind::SpawnCollision { addr } => {
                write!(f, "{:?}: spawn at {addr:?}, which is taken", self.at)
            }
        }
    }
}
