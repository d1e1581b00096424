//! The simulated network: how long a message takes from one node to another, and whether it
//! arrives at all.
//!
//! Each message between two nodes is routed once, when it is sent: it waits for the sender's
//! uplink (bandwidth serialises a node's sends), then takes the link's latency plus random
//! jitter, more if a delay spike is on or either end is slow, and may be lost, duplicated or
//! held back (reordered). Partitions drop messages between sets of nodes, one way or both;
//! they are checked at sending and again at arrival, so a partition also cuts what was
//! already in flight. By default the network is a datagram network: messages on one link may
//! overtake each other. With [`NetworkConfig::fifo`] a link keeps order (as the real
//! runtime's one TCP connection per pair of nodes does) unless a reorder fault holds one back.
//!
//! Nodes are named here by their index in the world (`u32`), not by their id.

use crate::counters::DropReason;
use crate::fingerprint::FastBuild;
use cairn_actors::Time;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::Duration;

/// How a link behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// The least time a message takes.
    pub latency: Duration,
    /// A uniformly random extra delay, `0..=jitter`.
    pub jitter: Duration,
    /// The sender's uplink in bytes per second (`None`: unlimited). A message occupies the
    /// uplink for `bytes / bandwidth`, and waits for the messages sent before it.
    pub bandwidth: Option<u64>,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message arrives twice.
    pub duplicate: f64,
    /// Probability that a message is held back by up to `reorder_delay` (so later ones
    /// overtake it).
    pub reorder: f64,
    /// The longest a reordered message is held back.
    pub reorder_delay: Duration,
}

impl Default for LinkParams {
    /// A LAN: 1 ms ± 0.2 ms, unlimited bandwidth, no loss.
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_millis(1),
            jitter: Duration::from_micros(200),
            bandwidth: None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
        }
    }
}

/// The network's configuration at the start of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Every link's behaviour, unless overridden with [`Network::set_link`].
    pub link: LinkParams,
    /// How long a message from a node to itself takes (never lost, never partitioned).
    pub local_latency: Duration,
    /// Whether each link keeps messages in order (see the module docs).
    pub fifo: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            link: LinkParams::default(),
            local_latency: Duration::from_micros(1),
            fifo: false,
        }
    }
}

/// What becomes of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// It never arrives.
    Drop(DropReason),
    /// It arrives at `at`, and a copy at `copy` if duplicated.
    Deliver { at: Time, copy: Option<Time> },
}

/// A set of blocked directions between two sets of nodes.
#[derive(Clone, Debug)]
struct Partition {
    /// Sorted node indexes.
    a: Vec<u32>,
    b: Vec<u32>,
    one_way: bool,
}

impl Partition {
    fn blocks(&self, from: u32, to: u32) -> bool {
        let a_to_b = self.a.binary_search(&from).is_ok() && self.b.binary_search(&to).is_ok();
        a_to_b
            || (!self.one_way
                && self.b.binary_search(&from).is_ok()
                && self.a.binary_search(&to).is_ok())
    }
}

/// Per-node network state.
#[derive(Clone, Copy, Debug)]
struct Port {
    /// When the uplink finishes sending what it has been given.
    uplink_free: Time,
    /// Latency multiplier (and bandwidth divisor) for a slow node; 1 is normal.
    slow: u32,
}

/// The network's state: configuration, per-link overrides and the faults in force.
pub struct Network {
    config: NetworkConfig,
    overrides: HashMap<(u32, u32), LinkParams, FastBuild>,
    ports: Vec<Port>,
    partitions: Vec<Partition>,
    fault_loss: f64,
    fault_duplicate: f64,
    spike_extra: Duration,
    spike_until: Time,
    /// Links between two nodes that faults made lossy and slow (both ways): the pair, lower
    /// index first, and the loss and extra delay.
    degraded: HashMap<(u32, u32), (f64, Duration), FastBuild>,
    last_arrival: HashMap<(u32, u32), Time, FastBuild>,
}

impl Network {
    /// A network with no nodes yet.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            config,
            overrides: HashMap::default(),
            ports: Vec::new(),
            partitions: Vec::new(),
            fault_loss: 0.0,
            fault_duplicate: 0.0,
            spike_extra: Duration::ZERO,
            spike_until: Time(0),
            degraded: HashMap::default(),
            last_arrival: HashMap::default(),
        }
    }

    /// Makes room for node index `node`.
    pub(crate) fn add_node(&mut self, node: u32) {
        let needed = node as usize + 1;
        if self.ports.len() < needed {
            self.ports.resize(
                needed,
                Port {
                    uplink_free: Time(0),
                    slow: 1,
                },
            );
        }
    }

    /// Overrides the link from `from` to `to` (one direction).
    pub(crate) fn set_link(&mut self, from: u32, to: u32, params: LinkParams) {
        self.overrides.insert((from, to), params);
    }

    /// The configuration every link starts from.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Decides the fate of a `len`-byte message sent now from `from` to `to`.
    pub(crate) fn route(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Time,
        from: u32,
        to: u32,
        len: u64,
    ) -> Route {
        if from == to {
            let at = now.after(self.config.local_latency);
            return Route::Deliver { at, copy: None };
        }
        if self.partitioned(from, to) {
            return Route::Drop(DropReason::Partitioned);
        }
        let params = *self.overrides.get(&(from, to)).unwrap_or(&self.config.link);
        let pair = (from.min(to), from.max(to));
        let (link_loss, link_extra) = self.degraded.get(&pair).copied().unwrap_or_default();
        if chance(rng, either(either(params.loss, self.fault_loss), link_loss)) {
            return Route::Drop(DropReason::Lost);
        }
        let slow = self.slowness(from, to);
        let sent = self.transmit(now, from, len, params.bandwidth);
        let mut flight = params.latency + uniform(rng, params.jitter);
        flight *= slow;
        if now < self.spike_until {
            flight += self.spike_extra;
        }
        flight += link_extra;
        let mut at = self.keep_order(from, to, sent.after(flight));
        if chance(rng, params.reorder) {
            at = at.after(uniform(rng, params.reorder_delay));
        }
        let copy = chance(rng, either(params.duplicate, self.fault_duplicate))
            .then(|| at.after(uniform(rng, params.latency + params.jitter)));
        if let Some(copy) = copy {
            self.keep_order(from, to, copy);
        }
        Route::Deliver { at, copy }
    }

    /// Whether a partition blocks `from` → `to` now.
    pub(crate) fn partitioned(&self, from: u32, to: u32) -> bool {
        from != to && self.partitions.iter().any(|p| p.blocks(from, to))
    }

    fn slowness(&self, from: u32, to: u32) -> u32 {
        let slow_of = |n: u32| self.ports.get(n as usize).map_or(1, |p| p.slow);
        slow_of(from).max(slow_of(to))
    }

    /// Puts `len` bytes on the sender's uplink; returns when the last byte leaves.
    fn transmit(&mut self, now: Time, from: u32, len: u64, bandwidth: Option<u64>) -> Time {
        let Some(port) = self.ports.get_mut(from as usize) else {
            return now;
        };
        let Some(bandwidth) = bandwidth.filter(|b| *b > 0) else {
            return now;
        };
        let per_second = (bandwidth / u64::from(port.slow)).max(1);
        let nanos = u128::from(len) * 1_000_000_000 / u128::from(per_second);
        let start = port.uplink_free.max(now);
        let done = start.after(Duration::from_nanos(nanos.min(u64::MAX as u128) as u64));
        port.uplink_free = done;
        done
    }

    /// With FIFO links, a message never arrives before one sent earlier on its link.
    fn keep_order(&mut self, from: u32, to: u32, at: Time) -> Time {
        if !self.config.fifo {
            return at;
        }
        let last = self.last_arrival.entry((from, to)).or_insert(Time(0));
        let at = at.max(*last);
        *last = at;
        at
    }

    /// Blocks `a` → `b` (and `b` → `a` unless `one_way`).
    pub(crate) fn partition(&mut self, mut a: Vec<u32>, mut b: Vec<u32>, one_way: bool) {
        a.sort_unstable();
        b.sort_unstable();
        self.partitions.push(Partition { a, b, one_way });
    }

    /// Lifts every partition.
    pub(crate) fn heal(&mut self) {
        self.partitions.clear();
    }

    /// Sets the loss probability that faults add to every link.
    pub(crate) fn set_fault_loss(&mut self, p: f64) {
        self.fault_loss = p;
    }

    /// Sets the duplication probability that faults add to every link.
    pub(crate) fn set_fault_duplicate(&mut self, p: f64) {
        self.fault_duplicate = p;
    }

    /// Adds `extra` to every message sent until `until`.
    pub(crate) fn spike(&mut self, extra: Duration, until: Time) {
        self.spike_extra = extra;
        self.spike_until = until;
    }

    /// Makes the link between `a` and `b` lose `loss` of its messages both ways and delay
    /// them by `extra` more (0 and zero: the link is whole again).
    pub(crate) fn degrade(&mut self, a: u32, b: u32, loss: f64, extra: Duration) {
        let pair = (a.min(b), a.max(b));
        match loss > 0.0 || !extra.is_zero() {
            true => self.degraded.insert(pair, (loss, extra)),
            false => self.degraded.remove(&pair),
        };
    }

    /// Makes a node `factor` times slower on the network (1: normal).
    pub(crate) fn set_slow(&mut self, node: u32, factor: u32) {
        if let Some(port) = self.ports.get_mut(node as usize) {
            port.slow = factor.max(1);
        }
    }

    /// A crashed node's uplink queue is gone with it.
    pub(crate) fn reset_node(&mut self, node: u32, now: Time) {
        if let Some(port) = self.ports.get_mut(node as usize) {
            port.uplink_free = now;
        }
    }
}

/// The probability that at least one of two independent events happens.
fn either(p: f64, q: f64) -> f64 {
    1.0 - (1.0 - p) * (1.0 - q)
}

/// Draws an event of probability `p`; draws nothing when `p` is zero, so that a run without
/// a fault uses the same random numbers however that fault is configured elsewhere.
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && rng.gen::<f64>() < p
}

/// A uniformly random duration in `0..=max` (no draw when `max` is zero).
fn uniform(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let max = max.as_nanos().min(u64::MAX as u128) as u64;
    if max == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.gen_range(0..=max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn net(link: LinkParams) -> Network {
        let mut net = Network::new(NetworkConfig {
            link,
            ..NetworkConfig::default()
        });
        for n in 0..4 {
            net.add_node(n);
        }
        net
    }

    fn arrival(route: Route) -> Time {
        match route {
            Route::Deliver { at, .. } => at,
            Route::Drop(reason) => panic!("dropped: {reason:?}"),
        }
    }

    #[test]
    fn bandwidth_serialises_a_senders_messages() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut net = net(LinkParams {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            bandwidth: Some(1_000_000),
            ..LinkParams::default()
        });
        let first = arrival(net.route(&mut rng, Time(0), 0, 1, 1000));
        let second = arrival(net.route(&mut rng, Time(0), 0, 2, 1000));
        let other = arrival(net.route(&mut rng, Time(0), 3, 1, 1000));
        assert_eq!(first, Time(2_000_000), "1 ms on the wire + 1 ms latency");
        assert_eq!(second, Time(3_000_000), "waits for the first");
        assert_eq!(other, Time(2_000_000), "another sender's uplink is free");
    }

    #[test]
    fn partitions_block_the_right_directions_until_healed() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut net = net(LinkParams::default());
        net.partition(vec![0, 1], vec![2], true);
        let blocked = Route::Drop(DropReason::Partitioned);
        assert_eq!(net.route(&mut rng, Time(0), 1, 2, 10), blocked);
        assert_ne!(net.route(&mut rng, Time(0), 2, 1, 10), blocked);
        assert_ne!(net.route(&mut rng, Time(0), 0, 1, 10), blocked);
        net.partition(vec![3], vec![0], false);
        assert_eq!(net.route(&mut rng, Time(0), 0, 3, 10), blocked);
        net.heal();
        assert_ne!(net.route(&mut rng, Time(0), 1, 2, 10), blocked);
    }

    #[test]
    fn fifo_links_keep_order_despite_jitter() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut net = net(LinkParams {
            jitter: Duration::from_millis(5),
            ..LinkParams::default()
        });
        net.config.fifo = true;
        let arrivals: Vec<Time> = (0..100)
            .map(|i| arrival(net.route(&mut rng, Time(i * 1000), 0, 1, 10)))
            .collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn loss_and_duplication_happen_at_about_their_rates() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut net = net(LinkParams::default());
        net.set_fault_loss(0.25);
        net.set_fault_duplicate(0.5);
        let routes: Vec<Route> = (0..4000)
            .map(|_| net.route(&mut rng, Time(0), 0, 1, 10))
            .collect();
        let lost = routes
            .iter()
            .filter(|r| matches!(r, Route::Drop(_)))
            .count();
        let copied = routes
            .iter()
            .filter(|r| matches!(r, Route::Deliver { copy: Some(_), .. }))
            .count();
        assert!((800..1200).contains(&lost), "lost {lost}");
        assert!((1300..1700).contains(&copied), "copied {copied}");
    }
}
