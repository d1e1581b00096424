//! Handing events to actors, and carrying out the effects they record.

use super::event::{Delivery, Event, Payload};
use super::World;
use crate::counters::{DropReason, Incident, IncidentKind};
use crate::fingerprint::{fingerprint, message_fingerprint};
use crate::host::{actor_rng, Hosted};
use crate::network::Route;
use crate::trace::{InputSummary, Record, Spot};
use crate::user::LocalUser;
use cairn_actors::actor::panic_message;
use cairn_actors::{Actor, Addr, Context, Effect, Input, Message, Service, Time, TimerId};
use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

impl<U: LocalUser> World<U> {
    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver(delivery) => self.deliver(delivery),
            Event::Timer {
                node,
                service,
                id,
                generation,
            } => self.fire_timer(node, service, id, generation),
            Event::Input {
                node,
                service,
                epoch,
                input,
            } => self.give_input(node, service, epoch, input),
            Event::Fault(fault) => self.apply_fault(fault),
        }
    }

    fn deliver(&mut self, d: Delivery) {
        self.counters.events += 1;
        let from = Spot {
            node: d.from,
            service: d.from_service,
        };
        let to = Spot {
            node: d.to,
            service: d.to_service,
        };
        let status = self.nodes.status(d.to);
        let refused = if !status.up || status.epoch != d.epoch {
            Some(DropReason::NodeDown)
        } else if self.network.partitioned(d.from, d.to) {
            Some(DropReason::Partitioned)
        } else {
            None
        };
        if let Some(reason) = refused {
            self.drop_message(from, to, reason, d.len, d.print);
            return;
        }
        let Some(msg) = self.unwrap_payload(from, to, d.payload, d.len, d.print) else {
            return;
        };
        let record = Record::Message {
            from,
            to,
            len: d.len,
            print: d.print,
        };
        let sender = Addr::new(self.nodes.id(d.from), d.from_service);
        if let Some(tap) = &mut self.tap {
            tap(
                self.now,
                sender,
                Addr::new(self.nodes.id(d.to), d.to_service),
                &msg,
            );
        }
        let input = Input::Message { from: sender, msg };
        match self.dispatch(d.to, d.to_service, input, &record) {
            Ok(()) => self.counters.messages_delivered += 1,
            Err(_) => self.drop_message(from, to, DropReason::NoActor, d.len, d.print),
        }
    }

    /// The message itself; in chaos mode, decoded from its wire bytes (a failure is an
    /// incident and drops it).
    fn unwrap_payload(
        &mut self,
        from: Spot,
        to: Spot,
        payload: Payload,
        len: u64,
        print: u64,
    ) -> Option<Message> {
        let bytes = match payload {
            Payload::Message(msg) => return Some(msg),
            Payload::Wire(bytes) => bytes,
        };
        match Message::decode(&bytes) {
            Ok(msg) => Some(msg),
            Err(error) => {
                let kind = IncidentKind::DecodeFailed {
                    from: self.addr(from),
                    to: self.addr(to),
                    error: error.to_string(),
                };
                self.incident(kind);
                self.drop_message(from, to, DropReason::DecodeFailed, len, print);
                None
            }
        }
    }

    fn fire_timer(&mut self, node: u32, service: Service, id: TimerId, generation: u64) {
        let current = self
            .nodes
            .get_mut(node)
            .actors
            .get_mut(&service)
            .is_some_and(|h| {
                let current = h.timers.get(&id) == Some(&generation);
                if current {
                    h.timers.remove(&id);
                }
                current
            });
        if !current {
            self.counters.timers_stale += 1;
            return;
        }
        self.counters.events += 1;
        self.counters.timers_fired += 1;
        let record = Record::Timer {
            at: Spot { node, service },
            id,
        };
        let _ = self.dispatch(node, service, Input::Timer(id), &record);
    }

    fn give_input(&mut self, node: u32, service: Service, epoch: Option<u32>, input: Input) {
        self.counters.events += 1;
        let at = Spot { node, service };
        let summary = summarize(&input);
        let meant_here = epoch.is_none_or(|e| e == self.nodes.status(node).epoch);
        let record = Record::Input { at, input: summary };
        let result = if meant_here {
            self.dispatch(node, service, input, &record)
        } else {
            Err(input)
        };
        let Err(input) = result else {
            self.counters.inputs += 1;
            return;
        };
        self.counters.inputs_undelivered += 1;
        let record = Record::Undelivered { at, input: summary };
        self.trace.record(self.now, &record);
        if !matches!(input, Input::Start) {
            let to = self.addr(at);
            self.call_user(|user, io| user.on_undelivered(to, input, io));
        }
    }

    /// Hands `input` to the actor at `service` on node `ix` (tracing it as `record`) and
    /// carries out its effects. Gives the input back if there is no such actor (a crashed
    /// node has none).
    // The input comes back by value on purpose: it is moved, never copied or boxed.
    #[allow(clippy::result_large_err)]
    fn dispatch(
        &mut self,
        ix: u32,
        service: Service,
        input: Input,
        record: &Record<'_>,
    ) -> Result<(), Input> {
        let now = self.now;
        let me = Addr::new(self.nodes.id(ix), service);
        let node = self.nodes.get_mut(ix);
        // The actor sees the node's clock, which may be ahead or behind.
        let clock = node.clock(now);
        let Some(Hosted { actor, rng, .. }) = node.actors.get_mut(&service) else {
            return Err(input);
        };
        self.trace.record(now, record);
        // The effect buffer is reused from event to event (an allocation per event was a
        // tenth of the run); a nested dispatch (a spawn's start) finds it taken and makes
        // its own.
        let buffer = std::mem::take(&mut self.effects);
        let mut ctx = Context::with_buffer(clock, me, rng, buffer);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| actor.handle(input, &mut ctx)));
        let mut effects = ctx.into_effects();
        match outcome {
            Ok(()) => self.carry_out(ix, service, &mut effects),
            Err(payload) => self.actor_panicked(ix, service, payload.as_ref()),
        }
        effects.clear();
        if effects.capacity() > self.effects.capacity() {
            self.effects = effects;
        }
        Ok(())
    }

    /// A panicking actor is gone, as its task would be in the real runtime; what it had
    /// recorded before panicking is discarded.
    fn actor_panicked(&mut self, ix: u32, service: Service, payload: &(dyn Any + Send)) {
        self.nodes.get_mut(ix).actors.remove(&service);
        self.counters.panics += 1;
        let at = Spot { node: ix, service };
        self.trace.record(self.now, &Record::Panic { at });
        let message = panic_message(payload);
        let addr = self.addr(at);
        tracing::warn!("actor {addr:?} panicked: {message}");
        self.incident(IncidentKind::ActorPanicked { addr, message });
    }

    fn carry_out(&mut self, ix: u32, service: Service, effects: &mut Vec<Effect>) {
        let me = Spot { node: ix, service };
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, msg } => self.send(me, to, msg),
                Effect::SetTimer { id, at } => self.set_timer(me, id, at),
                Effect::CancelTimer { id } => self.cancel_timer(me, id),
                Effect::Reply { to, response } => {
                    let from = self.addr(me);
                    self.call_user(|user, io| user.on_reply(from, to, response, io));
                }
                Effect::Output { to, data } => {
                    let from = self.addr(me);
                    self.call_user(|user, io| user.on_output(from, to, data, io));
                }
                Effect::Pull {
                    from: id,
                    offset,
                    max,
                } => {
                    let from = self.addr(me);
                    self.call_user(|user, io| user.on_pull(from, id, offset, max, io));
                }
                // The hand-over of a local request needs no bookkeeping here: the local user
                // learns who answers from each reply, output and pull (their `from`), and a
                // node's requests end with it when it crashes.
                Effect::Spawn { service, actor, .. } => self.spawn(ix, service, actor),
                // The simulated network routes by node id: it needs no addresses.
                Effect::Learn { .. } => {}
                Effect::Stop => {
                    self.nodes.get_mut(ix).actors.remove(&service);
                }
            }
        }
    }

    fn send(&mut self, from: Spot, to: Addr, msg: Message) {
        self.counters.messages_sent += 1;
        let (payload, len, print) = if self.chaos {
            let wire = msg.encode();
            let (len, print) = (wire.len() as u64, fingerprint(&wire));
            (Payload::Wire(wire), len, print)
        } else {
            let (len, print) = message_fingerprint(&msg);
            (Payload::Message(msg), len, print)
        };
        self.counters.bytes_sent += len;
        let Some(to_ix) = self.nodes.index_of(to.node) else {
            let nowhere = Spot {
                node: u32::MAX,
                service: to.service,
            };
            self.drop_message(from, nowhere, DropReason::UnknownNode, len, print);
            return;
        };
        let dest = Spot {
            node: to_ix,
            service: to.service,
        };
        let receiver = self.nodes.status(to_ix);
        let epoch = receiver.epoch;
        let route = if receiver.up {
            self.network
                .route(&mut self.net_rng, self.now, from.node, to_ix, len)
        } else {
            Route::Drop(DropReason::NodeDown)
        };
        let (at, copy) = match route {
            Route::Drop(reason) => return self.drop_message(from, dest, reason, len, print),
            Route::Deliver { at, copy } => (at, copy),
        };
        let delivery = |payload| Delivery {
            from: from.node,
            from_service: from.service,
            to: to_ix,
            to_service: to.service,
            epoch,
            len,
            print,
            payload,
        };
        if let Some(copy_at) = copy {
            self.counters.messages_duplicated += 1;
            let copy = delivery(payload.clone());
            self.agenda.push(copy_at, Event::Deliver(copy));
        }
        self.agenda.push(at, Event::Deliver(delivery(payload)));
    }

    fn drop_message(&mut self, from: Spot, to: Spot, reason: DropReason, len: u64, print: u64) {
        self.counters.count_drop(reason);
        let record = Record::Drop {
            from,
            to,
            reason,
            len,
            print,
        };
        self.trace.record(self.now, &record);
    }

    /// Sets (or moves) a timer: a new generation makes any earlier event for it stale.
    /// Sets a timer for `at` by the node's clock: it fires after as long as that is from the
    /// clock's now, whatever the clock does meanwhile (a monotonic timer's promise).
    fn set_timer(&mut self, me: Spot, id: TimerId, at: Time) {
        let node = self.nodes.get_mut(me.node);
        let after = at.since(node.clock(self.now));
        let Some(hosted) = node.actors.get_mut(&me.service) else {
            return;
        };
        self.timer_generation += 1;
        let generation = self.timer_generation;
        hosted.timers.insert(id, generation);
        let event = Event::Timer {
            node: me.node,
            service: me.service,
            id,
            generation,
        };
        self.agenda.push(self.now.after(after), event);
    }

    fn cancel_timer(&mut self, me: Spot, id: TimerId) {
        if let Some(hosted) = self.nodes.get_mut(me.node).actors.get_mut(&me.service) {
            hosted.timers.remove(&id);
        }
    }

    fn spawn(&mut self, ix: u32, service: Service, actor: Box<dyn Actor>) {
        if !self.install(ix, service, actor) {
            let addr = self.addr(Spot { node: ix, service });
            self.incident(IncidentKind::SpawnCollision { addr });
        }
    }

    /// Puts an actor at `service` on node `ix` and schedules its `Start`; false (and the
    /// actor dropped) if the service is taken.
    pub(super) fn install(&mut self, ix: u32, service: Service, actor: Box<dyn Actor>) -> bool {
        let epoch = self.nodes.status(ix).epoch;
        let id = self.nodes.id(ix);
        let node = self.nodes.get_mut(ix);
        if node.actors.contains_key(&service) {
            return false;
        }
        let rng = actor_rng(self.seed, id, service, epoch);
        node.actors.insert(service, Hosted::new(actor, rng));
        let start = Event::Input {
            node: ix,
            service,
            epoch: Some(epoch),
            input: Input::Start,
        };
        self.agenda.push(self.now, start);
        true
    }

    pub(super) fn addr(&self, spot: Spot) -> Addr {
        Addr::new(self.nodes.id(spot.node), spot.service)
    }

    pub(super) fn incident(&mut self, kind: IncidentKind) {
        self.incidents.push(Incident { at: self.now, kind });
    }
}

fn summarize(input: &Input) -> InputSummary {
    match input {
        Input::Start => InputSummary::Start,
        Input::Local { id, .. } => InputSummary::Local { id: id.0 },
        Input::Plaintext { offset, data } => InputSummary::Plaintext {
            offset: *offset,
            len: data.len() as u64,
            print: fingerprint(data),
        },
        Input::OutputDrained => InputSummary::Drained,
        Input::Message { msg, .. } => {
            let (len, print) = message_fingerprint(msg);
            InputSummary::Message { len, print }
        }
        Input::Timer(id) => InputSummary::Timer { id: id.0 },
        Input::Cancel(id) => InputSummary::Cancel { id: id.0 },
    }
}
