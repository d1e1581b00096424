//! Applying faults to the world, and the node lifecycle they drive: crash, restart, and
//! (re)building a node's actors from its factory.

use super::World;
use crate::counters::IncidentKind;
use crate::faults::Fault;
use crate::trace::{Record, Spot};
use crate::user::LocalUser;
use cairn_actors::actor::panic_message;
use cairn_actors::NodeId;
use rand::Rng;
use std::panic::{self, AssertUnwindSafe};

impl<U: LocalUser> World<U> {
    pub(super) fn apply_fault(&mut self, fault: Fault) {
        self.counters.events += 1;
        self.counters.count_fault(fault.kind());
        self.trace.record(self.now, &Record::Fault(&fault));
        tracing::debug!("{:?}: fault {fault:?}", self.now);
        match fault {
            Fault::Crash { node } => self.on_node(node, |w, ix| w.crash(ix, false)),
            Fault::Restart { node } => self.on_node(node, |w, ix| w.restart(ix)),
            Fault::Partition { a, b, one_way } => {
                let a = self.indexes(&a);
                let b = self.indexes(&b);
                self.network.partition(a, b, one_way);
            }
            Fault::Heal => self.network.heal(),
            Fault::SetLoss { p } => self.network.set_fault_loss(p),
            Fault::SetDuplication { p } => self.network.set_fault_duplicate(p),
            Fault::DelaySpike { extra, duration } => {
                let until = self.now.after(duration);
                self.network.spike(extra, until);
            }
            Fault::SlowNode { node, factor } => {
                self.on_node(node, |w, ix| w.network.set_slow(ix, factor))
            }
            Fault::LoseUnsyncedWrites { node } => {
                self.on_node(node, |w, ix| w.nodes.get_mut(ix).power_loss_armed = true)
            }
            Fault::TornWrite { node } => self.on_node(node, |w, ix| w.tear(ix)),
            Fault::BitRot { node, count } => self.on_node(node, |w, ix| {
                w.nodes.get(ix).disk.rot(count, &mut w.fault_rng);
            }),
            Fault::DiskFull { node, full } => {
                self.on_node(node, |w, ix| w.nodes.get(ix).disk.set_full(full))
            }
            Fault::DegradeLink { a, b, loss, extra } => {
                if let (Some(a), Some(b)) = (self.nodes.index_of(a), self.nodes.index_of(b)) {
                    self.network.degrade(a, b, loss, extra);
                }
            }
            Fault::SetClock { node, ahead } => {
                self.on_node(node, |w, ix| w.nodes.get_mut(ix).clock_ahead = ahead)
            }
        }
    }

    /// Runs `f` on the node's index (faults are checked when scheduled, so it exists).
    fn on_node(&mut self, node: NodeId, f: impl FnOnce(&mut Self, u32)) {
        if let Some(ix) = self.nodes.index_of(node) {
            f(self, ix);
        }
    }

    fn indexes(&self, nodes: &[NodeId]) -> Vec<u32> {
        nodes
            .iter()
            .filter_map(|n| self.nodes.index_of(*n))
            .collect()
    }

    /// The node dies: actors, timers and uplink queue gone, its incarnation over. With
    /// `power_loss` (or if armed), its disk also loses unsynced writes.
    fn crash(&mut self, ix: u32, power_loss: bool) {
        let node = self.nodes.get_mut(ix);
        let power_loss = power_loss || std::mem::take(&mut node.power_loss_armed);
        node.disk.crash(power_loss);
        let status = self.nodes.status_mut(ix);
        if !status.up {
            return;
        }
        status.up = false;
        status.epoch += 1;
        self.nodes.get_mut(ix).actors.clear();
        let id = self.nodes.id(ix);
        self.network.reset_node(ix, self.now);
        self.call_user(|user, io| user.on_crash(id, io));
    }

    /// Power fails in the middle of a journal append: a partial record of random bytes
    /// (which no one was told is durable) is left at the journal's tail, and the node
    /// crashes as in a power loss.
    fn tear(&mut self, ix: u32) {
        if self.nodes.status(ix).up {
            let len = self.fault_rng.gen_range(1..=64u32);
            let record: Vec<u8> = (0..len).map(|_| self.fault_rng.gen()).collect();
            self.nodes
                .get(ix)
                .disk
                .tear_append(&record, &mut self.fault_rng);
        }
        self.crash(ix, true);
    }

    fn restart(&mut self, ix: u32) {
        let status = self.nodes.status_mut(ix);
        if status.up {
            return;
        }
        status.up = true;
        self.start_actors(ix);
    }

    /// Builds the node's actors with its factory and starts each. A factory that panics
    /// (say, on a journal it cannot read) leaves the node up with no actors, and an incident.
    pub(super) fn start_actors(&mut self, ix: u32) {
        let node = self.nodes.get_mut(ix);
        let (factory, disk) = (&mut node.factory, &node.disk);
        let built = panic::catch_unwind(AssertUnwindSafe(|| factory(disk)));
        let actors = match built {
            Ok(actors) => actors,
            Err(payload) => {
                let node = self.nodes.id(ix);
                let message = panic_message(payload.as_ref());
                self.counters.panics += 1;
                self.incident(IncidentKind::FactoryPanicked { node, message });
                return;
            }
        };
        for (service, actor) in actors {
            if !self.install(ix, service, actor) {
                let addr = self.addr(Spot { node: ix, service });
                self.incident(IncidentKind::SpawnCollision { addr });
            }
        }
    }
}
