//! The local user: whoever stands at a node's local interface (the CLI, a workload). The
//! scenario plugs one in as a [`LocalUser`]; the world calls it when an actor replies to a
//! local request, outputs plaintext, or pulls plaintext for an upload, and the user answers
//! by scheduling inputs through [`UserIo`].

use crate::engine::event::Event;
use crate::host::Nodes;
use crate::queue::Agenda;
use cairn_actors::local::{LocalId, LocalRequest, LocalResponse};
use cairn_actors::{Addr, Input, NodeId, Time};
use std::time::Duration;

/// Callbacks for what actors hand to their local user. Every method has a do-nothing
/// default.
pub trait LocalUser {
    /// The actor at `from` answered local request `to`; that request is finished.
    fn on_reply(&mut self, from: Addr, to: LocalId, response: LocalResponse, io: &mut UserIo<'_>) {
        let _ = (from, to, response, io);
    }

    /// The actor at `from` output verified plaintext for download `to`. Answer with
    /// [`UserIo::drained`] once it is consumed, or the download waits.
    fn on_output(&mut self, from: Addr, to: LocalId, data: Vec<u8>, io: &mut UserIo<'_>) {
        let _ = (from, to, data, io);
    }

    /// The actor at `from` wants up to `max` bytes of upload `id`'s plaintext at `offset`.
    /// Answer with [`UserIo::plaintext`].
    fn on_pull(&mut self, from: Addr, id: LocalId, offset: u64, max: usize, io: &mut UserIo<'_>) {
        let _ = (from, id, offset, max, io);
    }

    /// `node` crashed: its local requests in progress will never be answered.
    fn on_crash(&mut self, node: NodeId, io: &mut UserIo<'_>) {
        let _ = (node, io);
    }

    /// An input for `to` found no actor there (the node was down, or the actor gone).
    fn on_undelivered(&mut self, to: Addr, input: Input, io: &mut UserIo<'_>) {
        let _ = (to, input, io);
    }
}

/// A local user that does nothing (for worlds without local requests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUser;

impl LocalUser for NoUser {}

/// What a [`LocalUser`] callback can do: schedule inputs for actors.
pub struct UserIo<'a> {
    now: Time,
    delay: Duration,
    agenda: &'a mut Agenda<Event>,
    nodes: &'a Nodes,
}

impl<'a> UserIo<'a> {
    pub(crate) fn new(
        now: Time,
        delay: Duration,
        agenda: &'a mut Agenda<Event>,
        nodes: &'a Nodes,
    ) -> Self {
        UserIo {
            now,
            delay,
            agenda,
            nodes,
        }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Hands `input` to the actor at `to` after the world's user delay, if that actor's node
    /// has not crashed meanwhile (an answer to a pull is for the actor that pulled). Returns
    /// false if `to.node` is not in the world.
    pub fn send(&mut self, to: Addr, input: Input) -> bool {
        let at = self.now.after(self.delay);
        self.schedule(at, to, input, true)
    }

    /// Plaintext for an upload, answering a pull.
    pub fn plaintext(&mut self, to: Addr, offset: u64, data: Vec<u8>) -> bool {
        self.send(to, Input::Plaintext { offset, data })
    }

    /// Tells a download its output was consumed.
    pub fn drained(&mut self, to: Addr) -> bool {
        self.send(to, Input::OutputDrained)
    }

    /// Makes a new local request of the actor at `to` at time `at` (not before now),
    /// whatever incarnation of its node is running then.
    pub fn request(&mut self, at: Time, to: Addr, id: LocalId, request: LocalRequest) -> bool {
        let input = Input::Local { id, request };
        self.schedule(at.max(self.now), to, input, false)
    }

    fn schedule(&mut self, at: Time, to: Addr, input: Input, this_incarnation: bool) -> bool {
        let Some(node) = self.nodes.index_of(to.node) else {
            return false;
        };
        let epoch = this_incarnation.then(|| self.nodes.status(node).epoch);
        self.agenda.push(
            at,
            Event::Input {
                node,
                service: to.service,
                epoch,
                input,
            },
        );
        true
    }
}
