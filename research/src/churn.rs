//! The churn and failure models: when each node goes down and comes back, leaves for good, is
//! replaced, and when whole zones fail.
//!
//! A node is *up* when it is a member (not departed), its own on/off process says up, and its
//! zone is not in an outage. The [`ChurnDriver`] keeps its own queue of these happenings and
//! reports each change of a node's up state as a [`Transition`]; the runner turns them into
//! crashes and restarts of the node in the [`cairn_sim::World`].
//!
//! Stationarity. The run starts in the long-run regime: each node is up at time zero with
//! its long-run availability, and the time to its next flip is a residual period drawn from
//! the right distribution (for exponential periods, a fresh period, by memorylessness; for
//! Weibull periods, the state reached after a burn-in of many cycles). So at any instant each
//! node is up with probability `A = E[up] / (E[up] + E[down])`, independently of the others
//! (without zones) — which is what makes a file's readability a binomial tail.

use super::scenario::{Churn, Departures, Zones, DAY, HOUR};
use cairn_actors::Time;
use cairn_sim::queue::Agenda;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A node, by its number in the run (the order it joined).
pub type NodeNum = u32;

/// A change the runner must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The node goes down (crashes); its shares stay on its disk.
    Down(NodeNum),
    /// The node comes back up.
    Up(NodeNum),
    /// The node leaves for good, with its shares.
    Departed(NodeNum),
    /// A new node (numbered next) joins, up and empty.
    Arrived(NodeNum),
}

/// A distribution of period lengths, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Period {
    /// Never ends.
    Forever,
    /// Never lasts.
    Never,
    Exponential {
        mean: f64,
    },
    Weibull {
        shape: f64,
        scale: f64,
    },
}

impl Period {
    fn exponential_hours(mean_hours: f64) -> Self {
        if mean_hours <= 0.0 {
            Period::Never
        } else if !mean_hours.is_finite() {
            Period::Forever
        } else {
            Period::Exponential {
                mean: mean_hours * HOUR,
            }
        }
    }

    /// One period, in seconds.
    pub fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        // 1 - u is in (0, 1]: its logarithm is finite.
        let mut tail = || -> f64 { -(1.0 - rng.gen::<f64>()).ln() };
        match self {
            Period::Forever => f64::INFINITY,
            Period::Never => 0.0,
            Period::Exponential { mean } => mean * tail(),
            Period::Weibull { shape, scale } => scale * tail().powf(1.0 / shape),
        }
    }

    /// The mean period, in seconds.
    pub fn mean(self) -> f64 {
        match self {
            Period::Forever => f64::INFINITY,
            Period::Never => 0.0,
            Period::Exponential { mean } => mean,
            Period::Weibull { shape, scale } => scale * gamma(1.0 + 1.0 / shape),
        }
    }
}

/// A node's on/off process: its up and down period distributions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnOff {
    pub up: Period,
    pub down: Period,
}

impl OnOff {
    /// The process a churn model describes.
    pub fn of(churn: &Churn) -> Self {
        match *churn {
            Churn::None => OnOff {
                up: Period::Forever,
                down: Period::Never,
            },
            Churn::Availability { p, cycle_hours } => OnOff {
                up: Period::exponential_hours(p * cycle_hours),
                down: Period::exponential_hours((1.0 - p) * cycle_hours),
            },
            Churn::Exponential {
                mean_up_hours,
                mean_down_hours,
            } => OnOff {
                up: Period::exponential_hours(mean_up_hours),
                down: Period::exponential_hours(mean_down_hours),
            },
            Churn::Weibull {
                up_shape,
                up_scale_hours,
                down_shape,
                down_scale_hours,
            } => OnOff {
                up: Period::Weibull {
                    shape: up_shape,
                    scale: up_scale_hours * HOUR,
                },
                down: Period::Weibull {
                    shape: down_shape,
                    scale: down_scale_hours * HOUR,
                },
            },
        }
    }

    /// The long-run fraction of time up.
    pub fn availability(self) -> f64 {
        match (self.up, self.down) {
            (Period::Forever, _) | (_, Period::Never) => 1.0,
            (Period::Never, _) => 0.0,
            (up, down) => up.mean() / (up.mean() + down.mean()),
        }
    }

    /// A node's state at a random instant of the long run: whether it is up, and seconds
    /// until it flips.
    fn stationary(self, rng: &mut ChaCha8Rng) -> (bool, f64) {
        let a = self.availability();
        match (self.up, self.down) {
            _ if a >= 1.0 => (true, f64::INFINITY),
            _ if a <= 0.0 => (false, f64::INFINITY),
            (Period::Exponential { .. }, Period::Exponential { .. }) => {
                let up = rng.gen::<f64>() < a;
                let period = if up { self.up } else { self.down };
                (up, period.draw(rng))
            }
            _ => self.burn_in(rng),
        }
    }

    /// Runs the process from an up start for many mean cycles and reports where it is.
    fn burn_in(self, rng: &mut ChaCha8Rng) -> (bool, f64) {
        let cycle = self.up.mean() + self.down.mean();
        let mut t = -50.0 * cycle;
        let mut up = true;
        loop {
            let period = if up { self.up } else { self.down };
            t += period.draw(rng);
            if t > 0.0 {
                return (up, t);
            }
            up = !up;
        }
    }
}

/// Something on the churn queue.
#[derive(Clone, Copy, Debug)]
enum Happening {
    Flip(NodeNum),
    Depart(NodeNum),
    Arrive,
    ZoneDown(u32),
    ZoneUp(u32),
}

#[derive(Clone, Copy, Debug)]
struct NodeState {
    member: bool,
    own_up: bool,
    zone: u32,
}

/// Draws and orders every churn happening of a run. See the module docs.
pub struct ChurnDriver {
    start: Time,
    /// The time of the happening being handled.
    now: Time,
    onoff: OnOff,
    departures: Departures,
    zones: Zones,
    rng: ChaCha8Rng,
    agenda: Agenda<Happening>,
    nodes: Vec<NodeState>,
    zone_down: Vec<bool>,
}

impl ChurnDriver {
    /// A driver for `nodes` initial nodes whose run starts at `start`; draws from `rng`.
    pub fn new(
        start: Time,
        nodes: u32,
        churn: &Churn,
        departures: &Departures,
        zones: &Zones,
        rng: ChaCha8Rng,
    ) -> Self {
        let mut driver = ChurnDriver {
            start,
            now: start,
            onoff: OnOff::of(churn),
            departures: departures.clone(),
            zones: zones.clone(),
            rng,
            agenda: Agenda::new(),
            nodes: Vec::new(),
            zone_down: vec![false; zones.count as usize],
        };
        for _ in 0..nodes {
            let (up, flip) = driver.onoff.stationary(&mut driver.rng);
            driver.join(up, flip);
        }
        for zone in 0..zones.count {
            let gap = Period::exponential_hours(zones.mean_days_between_outages * 24.0);
            let at = gap.draw(&mut driver.rng);
            driver.schedule(at, Happening::ZoneDown(zone));
        }
        driver
    }

    /// Whether node `n` is up now (as far as churn is concerned).
    pub fn is_up(&self, n: NodeNum) -> bool {
        self.nodes.get(n as usize).is_some_and(|s| self.up(s))
    }

    /// Nodes that ever joined (departed ones included).
    pub fn node_count(&self) -> u32 {
        self.nodes.len() as u32
    }

    /// The time of the next happening.
    pub fn next_time(&self) -> Option<Time> {
        self.agenda.peek_time()
    }

    /// Acts on the next happening; returns its time and the up-state changes it causes.
    pub fn advance(&mut self) -> Option<(Time, Vec<Transition>)> {
        let (at, happening) = self.agenda.pop()?;
        self.now = at;
        let mut changes = Vec::new();
        match happening {
            Happening::Flip(n) => self.flip(n, &mut changes),
            Happening::Depart(n) => self.depart(n, &mut changes),
            Happening::Arrive => {
                let flip = self.onoff.up.draw(&mut self.rng);
                let n = self.join(true, flip);
                changes.push(Transition::Arrived(n));
                if !self.is_up(n) {
                    changes.push(Transition::Down(n));
                }
            }
            Happening::ZoneDown(z) => self.zone(z, true, &mut changes),
            Happening::ZoneUp(z) => self.zone(z, false, &mut changes),
        }
        Some((at, changes))
    }

    fn up(&self, s: &NodeState) -> bool {
        s.member
            && s.own_up
            && !self
                .zone_down
                .get(s.zone as usize)
                .copied()
                .unwrap_or(false)
    }

    /// Adds a node in state `up` that flips after `flip` seconds; returns its number.
    fn join(&mut self, up: bool, flip: f64) -> NodeNum {
        let n = self.nodes.len() as NodeNum;
        let zone = if self.zones.count == 0 {
            0
        } else {
            n % self.zones.count
        };
        self.nodes.push(NodeState {
            member: true,
            own_up: up,
            zone,
        });
        self.schedule_from_now(flip, Happening::Flip(n));
        let life = Period::exponential_hours(self.departures.mean_lifetime_days * 24.0);
        if self.departures.mean_lifetime_days > 0.0 {
            let lifetime = life.draw(&mut self.rng);
            self.schedule_from_now(lifetime, Happening::Depart(n));
        }
        n
    }

    fn flip(&mut self, n: NodeNum, changes: &mut Vec<Transition>) {
        let s = self.nodes[n as usize];
        if !s.member {
            return;
        }
        let was = self.up(&s);
        let own_up = !s.own_up;
        self.nodes[n as usize].own_up = own_up;
        let period = if own_up {
            self.onoff.up
        } else {
            self.onoff.down
        };
        let next = period.draw(&mut self.rng);
        self.schedule_from_now(next, Happening::Flip(n));
        self.report(n, was, changes);
    }

    fn depart(&mut self, n: NodeNum, changes: &mut Vec<Transition>) {
        self.nodes[n as usize].member = false;
        changes.push(Transition::Departed(n));
        if self.departures.replace {
            let delay = self.departures.replacement_delay_hours * HOUR;
            self.schedule_from_now(delay, Happening::Arrive);
        }
    }

    fn zone(&mut self, z: u32, down: bool, changes: &mut Vec<Transition>) {
        let before: Vec<bool> = self.nodes.iter().map(|s| self.up(s)).collect();
        self.zone_down[z as usize] = down;
        let (period, next) = if down {
            let outage = Period::exponential_hours(self.zones.mean_outage_hours);
            (outage, Happening::ZoneUp(z))
        } else {
            let gap = Period::exponential_hours(self.zones.mean_days_between_outages * 24.0);
            (gap, Happening::ZoneDown(z))
        };
        let after = period.draw(&mut self.rng);
        self.schedule_from_now(after, next);
        for (n, was) in before.into_iter().enumerate() {
            if self.nodes[n].zone == z {
                self.report(n as NodeNum, was, changes);
            }
        }
    }

    fn report(&self, n: NodeNum, was: bool, changes: &mut Vec<Transition>) {
        match (was, self.is_up(n)) {
            (true, false) => changes.push(Transition::Down(n)),
            (false, true) => changes.push(Transition::Up(n)),
            _ => {}
        }
    }

    fn schedule_from_now(&mut self, seconds: f64, happening: Happening) {
        let now = self.agenda_now();
        self.schedule_at(now, seconds, happening);
    }

    fn schedule(&mut self, seconds: f64, happening: Happening) {
        self.schedule_at(0.0, seconds, happening);
    }

    /// Schedules `seconds` after `base` (seconds since the start); never-ending periods are
    /// not scheduled at all.
    fn schedule_at(&mut self, base: f64, seconds: f64, happening: Happening) {
        let at = base + seconds;
        // Past ten thousand years nothing a run simulates is affected.
        if !at.is_finite() || at > 1e4 * 365.0 * DAY {
            return;
        }
        let at = self
            .start
            .after(std::time::Duration::from_secs_f64(at.max(0.0)));
        self.agenda.push(at, happening);
    }

    /// Seconds since the start of the happening being handled.
    fn agenda_now(&self) -> f64 {
        self.now.0.saturating_sub(self.start.0) as f64 / 1e9
    }
}

/// The gamma function (Lanczos approximation, about 15 digits), for Weibull means.
pub fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gamma_of_known_points() {
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-9);
    }

    /// The fraction of nodes up at the start, and after a while, is the long-run availability.
    fn check_stationary(churn: Churn) {
        let nodes = 4000;
        let rng = ChaCha8Rng::seed_from_u64(1);
        let zones = Zones::default();
        let mut d = ChurnDriver::new(Time(0), nodes, &churn, &Departures::default(), &zones, rng);
        let a = OnOff::of(&churn).availability();
        let tolerance = 5.0 * (a * (1.0 - a) / f64::from(nodes)).sqrt();
        let up =
            |d: &ChurnDriver| (0..nodes).filter(|n| d.is_up(*n)).count() as f64 / f64::from(nodes);
        assert!(
            (up(&d) - a).abs() < tolerance,
            "{churn:?}: {} up at the start, A = {a}",
            up(&d)
        );
        let later = Time(0).after(std::time::Duration::from_secs(3 * 86_400));
        while d.next_time().is_some_and(|t| t < later) {
            d.advance();
        }
        assert!(
            (up(&d) - a).abs() < tolerance,
            "{churn:?}: {} up later, A = {a}",
            up(&d)
        );
    }

    #[test]
    fn nodes_start_and_stay_in_the_long_run_regime() {
        check_stationary(Churn::Availability {
            p: 0.7,
            cycle_hours: 24.0,
        });
        check_stationary(Churn::Weibull {
            up_shape: 0.6,
            up_scale_hours: 10.0,
            down_shape: 1.5,
            down_scale_hours: 3.0,
        });
    }

    #[test]
    fn departures_are_replaced_and_zones_take_their_nodes_down() {
        let rng = ChaCha8Rng::seed_from_u64(2);
        let departures = Departures {
            mean_lifetime_days: 1.0,
            replace: true,
            replacement_delay_hours: 1.0,
        };
        let zones = Zones {
            count: 2,
            mean_days_between_outages: 1.0,
            mean_outage_hours: 2.0,
        };
        let mut d = ChurnDriver::new(Time(0), 10, &Churn::None, &departures, &zones, rng);
        let (mut departed, mut arrived, mut zone_downs) = (0, 0, 0);
        for _ in 0..200 {
            let Some((_, changes)) = d.advance() else {
                break;
            };
            departed += changes
                .iter()
                .filter(|c| matches!(c, Transition::Departed(_)))
                .count();
            arrived += changes
                .iter()
                .filter(|c| matches!(c, Transition::Arrived(_)))
                .count();
            zone_downs += usize::from(
                changes
                    .iter()
                    .filter(|c| matches!(c, Transition::Down(_)))
                    .count()
                    > 1,
            );
        }
        assert!(
            departed > 5 && arrived > 5,
            "{departed} departed, {arrived} arrived"
        );
        assert!(
            zone_downs > 0,
            "a zone outage takes several nodes down at once"
        );
        assert_eq!(d.node_count() as usize, 10 + arrived);
    }
}
