//! The world: virtual time, the event queue, the nodes and their actors, the network, and
//! the run loop that hands each event to its actor and carries out what the actor asks.
//!
//! A scenario builds a [`World`] from a [`WorldConfig`] and a [`LocalUser`], adds nodes with
//! [`World::add_node`] (a disk and a factory for the node's actors), schedules local requests
//! and faults, then runs it ([`World::run_until`], [`World::run_until_idle`], [`World::step`])
//! and reads its [`Counters`], [`Incident`]s and trace [`digest`](World::digest).
//!
//! Everything that happens is a function of the seed and the scenario: one thread, one queue
//! ordered by (time, sequence number), and one seeded generator per purpose.

mod dispatch;
pub(crate) mod event;
mod inject;

use crate::counters::{Counters, Incident};
use crate::disk::SimDisk;
use crate::error::SimError;
use crate::faults::{Fault, FaultPlan};
use crate::host::{derive_rng, ActorSet, ActorTable, Node, Nodes};
use crate::network::{LinkParams, Network, NetworkConfig};
use crate::queue::Agenda;
use crate::trace::Trace;
use crate::user::{LocalUser, NoUser, UserIo};
use cairn_actors::local::{LocalId, LocalRequest};
use cairn_actors::{Addr, Input, NodeId, Service, Time};
use event::Event;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// How a world runs.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldConfig {
    /// The run's seed: everything random is drawn from generators derived from it.
    pub seed: u64,
    /// The network's behaviour.
    pub network: NetworkConfig,
    /// Chaos mode: every message travels as its wire bytes (`Message::encode`) and is
    /// decoded on arrival, so the wire format is exercised; a failure is an incident.
    pub chaos: bool,
    /// Keep every trace record as a readable line (and emit it with `tracing` at debug
    /// level, target `cairn_sim::trace`), for replaying a failing seed.
    pub trace_lines: bool,
    /// How long the local user takes to answer a pull or consume output.
    pub user_delay: Duration,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 0,
            network: NetworkConfig::default(),
            chaos: false,
            trace_lines: false,
            user_delay: Duration::ZERO,
        }
    }
}

/// A simulated mesh. See the module docs.
pub struct World<U: LocalUser = NoUser> {
    seed: u64,
    chaos: bool,
    user_delay: Duration,
    now: Time,
    agenda: Agenda<Event>,
    nodes: Nodes,
    network: Network,
    net_rng: ChaCha8Rng,
    fault_rng: ChaCha8Rng,
    timer_generation: u64,
    user: U,
    trace: Trace,
    counters: Counters,
    incidents: Vec<Incident>,
    tap: Option<Tap>,
    /// The effect buffer handed to each actor in turn (see `dispatch`).
    effects: Vec<cairn_actors::Effect>,
}

/// Sees every message as it is delivered: `(time, from, to, message)`.
pub type Tap = Box<dyn FnMut(Time, Addr, Addr, &cairn_actors::Message)>;

impl<U: LocalUser> World<U> {
    /// An empty world at time zero.
    pub fn new(config: WorldConfig, user: U) -> Self {
        World {
            seed: config.seed,
            chaos: config.chaos,
            user_delay: config.user_delay,
            now: Time(0),
            agenda: Agenda::new(),
            nodes: Nodes::default(),
            network: Network::new(config.network),
            net_rng: derive_rng(config.seed, &[b"network"]),
            fault_rng: derive_rng(config.seed, &[b"faults"]),
            timer_generation: 0,
            user,
            trace: Trace::new(config.trace_lines),
            counters: Counters::default(),
            incidents: Vec::new(),
            tap: None,
            effects: Vec::new(),
        }
    }

    /// Adds a node, up, with its disk, and builds its actors with `factory` (which is kept
    /// to rebuild them at every restart). Each actor gets `Input::Start` now.
    pub fn add_node(
        &mut self,
        id: NodeId,
        disk: SimDisk,
        factory: impl FnMut(&SimDisk) -> ActorSet + 'static,
    ) -> Result<(), SimError> {
        if self.nodes.index_of(id).is_some() {
            return Err(SimError::DuplicateNode(id));
        }
        let ix = self.nodes.push(
            id,
            Node {
                actors: ActorTable::default(),
                factory: Box::new(factory),
                disk,
                power_loss_armed: false,
                clock_ahead: 0,
            },
        );
        self.network.add_node(ix);
        self.start_actors(ix);
        Ok(())
    }

    /// Shows every delivered message to `tap` (for tests that check what was said, such as
    /// a corruption advisory reaching its server). Observes only: the run is unchanged.
    pub fn set_tap(&mut self, tap: impl FnMut(Time, Addr, Addr, &cairn_actors::Message) + 'static) {
        self.tap = Some(Box::new(tap));
    }

    /// Overrides the link from `from` to `to` (one direction).
    pub fn set_link(
        &mut self,
        from: NodeId,
        to: NodeId,
        params: LinkParams,
    ) -> Result<(), SimError> {
        let from = self.index(from)?;
        let to = self.index(to)?;
        self.network.set_link(from, to, params);
        Ok(())
    }

    /// Schedules a fault at `at`.
    pub fn schedule_fault(&mut self, at: Time, fault: Fault) -> Result<(), SimError> {
        self.check_time(at)?;
        self.check_fault(&fault)?;
        self.agenda.push(at, Event::Fault(fault));
        Ok(())
    }

    /// Draws `plan`'s faults from the run's fault generator and schedules them; returns the
    /// schedule (to print with a failing seed).
    pub fn schedule_fault_plan(
        &mut self,
        plan: &FaultPlan,
    ) -> Result<Vec<(Time, Fault)>, SimError> {
        let schedule = plan.draw(&mut self.fault_rng);
        self.schedule_faults(&schedule)?;
        Ok(schedule)
    }

    /// Draws `plan`'s faults from the run's fault generator, as episodes
    /// ([`FaultPlan::draw_episodes`]), and schedules none of them: a run that keeps only
    /// some (a shrinking run) schedules those with [`World::schedule_faults`].
    pub fn draw_fault_episodes(&mut self, plan: &FaultPlan) -> Vec<crate::faults::Episode> {
        plan.draw_episodes(&mut self.fault_rng)
    }

    /// Schedules every fault of `schedule`, or none if any is invalid.
    pub fn schedule_faults(&mut self, schedule: &[(Time, Fault)]) -> Result<(), SimError> {
        for (at, fault) in schedule {
            self.check_time(*at)?;
            self.check_fault(fault)?;
        }
        for (at, fault) in schedule {
            self.agenda.push(*at, Event::Fault(fault.clone()));
        }
        Ok(())
    }

    /// Schedules local request `id` to the actor at `to`, at `at`.
    pub fn schedule_local(
        &mut self,
        at: Time,
        to: Addr,
        id: LocalId,
        request: LocalRequest,
    ) -> Result<(), SimError> {
        self.schedule_input(at, to, Input::Local { id, request })
    }

    /// Schedules any input to the actor at `to`, at `at`, for whatever incarnation of its
    /// node runs then. (A message scheduled this way bypasses the network.)
    pub fn schedule_input(&mut self, at: Time, to: Addr, input: Input) -> Result<(), SimError> {
        self.check_time(at)?;
        let node = self.index(to.node)?;
        let service = to.service;
        let event = Event::Input {
            node,
            service,
            epoch: None,
            input,
        };
        self.agenda.push(at, event);
        Ok(())
    }

    /// Acts on the next event; returns its time, or `None` if nothing is left.
    pub fn step(&mut self) -> Option<Time> {
        let (at, event) = self.agenda.pop()?;
        self.prefetch_upcoming();
        self.now = self.now.max(at);
        self.handle(event);
        Some(at)
    }

    /// Starts loading what the next events will touch while this one is handled: at ten
    /// thousand nodes each event's node is a few cache misses, which otherwise stall one
    /// after another. The next event's actor is fetched through its node's record, which
    /// was asked for one step earlier, as the event after the next.
    fn prefetch_upcoming(&self) {
        let (next, after) = self.agenda.upcoming();
        if let Some(ix) = next.and_then(Event::node) {
            self.nodes.prefetch_actor(ix);
        }
        if let Some(ix) = after.and_then(Event::node) {
            self.nodes.prefetch_record(ix);
        }
    }

    /// Acts on every event up to and including `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        while self.agenda.peek_time().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now.after(duration));
    }

    /// Runs until nothing is left to happen. (Actors with periodic timers never go idle:
    /// bound those runs with [`World::run_until`].)
    pub fn run_until_idle(&mut self) {
        while self.step().is_some() {}
    }

    /// Runs until `stop` holds (checked after each event) or the clock would pass
    /// `deadline`; returns whether `stop` held.
    pub fn run_until_or(&mut self, deadline: Time, mut stop: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if stop(self) {
                return true;
            }
            if self.agenda.peek_time().is_none_or(|at| at > deadline) {
                self.now = self.now.max(deadline);
                return stop(self);
            }
            self.step();
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A generator for the scenario's own use (a workload's choices), derived from the seed
    /// and `label` and independent of every generator the world uses.
    pub fn rng_for(&self, label: &str) -> ChaCha8Rng {
        derive_rng(self.seed, &[b"scenario", label.as_bytes()])
    }

    /// What happened so far, in numbers.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// What went wrong so far (panics, undecodable messages, ...).
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The hex SHA-256 of the trace so far: equal for equal seeds and scenarios.
    pub fn digest(&self) -> String {
        self.trace.digest()
    }

    /// The trace as readable lines (empty unless [`WorldConfig::trace_lines`]).
    pub fn trace_lines(&self) -> &[String] {
        self.trace.lines()
    }

    /// How many events are waiting (including timers that will turn out stale).
    pub fn pending_events(&self) -> usize {
        self.agenda.len()
    }

    /// The local user.
    pub fn user(&self) -> &U {
        &self.user
    }

    /// The local user, to change.
    pub fn user_mut(&mut self) -> &mut U {
        &mut self.user
    }

    /// The network (its configuration).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Every node's id, in the order they were added.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.ids().iter().copied()
    }

    /// Whether `node` is up (false if unknown).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes
            .index_of(node)
            .is_some_and(|ix| self.nodes.status(ix).up)
    }

    /// The services `node` runs now.
    pub fn services(&self, node: NodeId) -> Vec<Service> {
        self.nodes
            .index_of(node)
            .map(|ix| self.nodes.get(ix).actors.keys().copied().collect())
            .unwrap_or_default()
    }

    /// `node`'s disk.
    pub fn disk(&self, node: NodeId) -> Option<&SimDisk> {
        self.nodes.index_of(node).map(|ix| &self.nodes.get(ix).disk)
    }

    /// Calls the local user with a handle for scheduling inputs now.
    pub(crate) fn call_user(&mut self, f: impl FnOnce(&mut U, &mut UserIo<'_>)) {
        let mut io = UserIo::new(self.now, self.user_delay, &mut self.agenda, &self.nodes);
        f(&mut self.user, &mut io);
    }

    fn index(&self, node: NodeId) -> Result<u32, SimError> {
        self.nodes.index_of(node).ok_or(SimError::UnknownNode(node))
    }

    fn check_time(&self, at: Time) -> Result<(), SimError> {
        if at < self.now {
            return Err(SimError::InThePast { at, now: self.now });
        }
        Ok(())
    }

    fn check_fault(&self, fault: &Fault) -> Result<(), SimError> {
        for node in fault.nodes() {
            self.index(node)?;
        }
        let invalid = |reason: &str| SimError::InvalidFault {
            fault: fault.clone(),
            reason: reason.to_string(),
        };
        if let Some(p) = fault.probability() {
            if !(0.0..=1.0).contains(&p) {
                return Err(invalid("a probability must be within 0 and 1"));
            }
        }
        if let Fault::SlowNode { factor: 0, .. } = fault {
            return Err(invalid("a slow-down factor must be at least 1"));
        }
        Ok(())
    }
}
