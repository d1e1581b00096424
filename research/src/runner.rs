//! Runs one research scenario: builds the mesh in a [`World`], uploads the files, then plays
//! the churn against the client's downloads and repairs, sampling the mesh as it goes.

use super::churn::{ChurnDriver, NodeNum, OnOff, Transition};
use super::client::{self, ClientPlan, ClientStats, ResearchClient, SharedStats};
use super::ledger::{self, node_id, Ledger, NullJournal, SharedLedger, SizeStore};
use super::ring::{self, Membership, SharedMembership};
use super::scenario::{Repair, Scenario, ScenarioError, DAY};
use super::series::{Sample, Sampler};
use super::summary::Summary;
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::{Actor, Addr, NodeId, NodeKey, Service, Time};
use cairn_sim::{Fault, NoUser, SimDisk, World, WorldConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the upload phase may last before the run gives up.
const UPLOAD_PHASE_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);
/// Events between two progress reports during the uploads.
const PROGRESS_EVERY: u64 = 1 << 16;
/// Each storage node's capacity: room for every share, so that space never decides.
const NODE_CAPACITY: u64 = u64::MAX / 4;

/// How far a run has got, for a progress display.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Simulated days since the churn began (negative-free: 0 during uploads).
    pub day: f64,
    /// Days the run lasts.
    pub days: f64,
    /// Events so far.
    pub events: u64,
    /// Files uploaded so far, while the uploads run (`None` once the churn phase began).
    pub uploaded: Option<u64>,
}

/// What a run produced: the summary and the time series.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub series: Vec<Sample>,
}

struct Run {
    scenario: Scenario,
    world: World<NoUser>,
    ledger: SharedLedger,
    members: SharedMembership,
    stats: SharedStats,
    client: NodeId,
    /// The storage servers' key, derived once: deriving it at every restart cost a scalar
    /// multiplication per restart.
    key: Arc<NodeKey>,
}

/// Runs `scenario`, telling `progress` how far it has got now and then.
pub fn run(
    scenario: &Scenario,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, ScenarioError> {
    scenario.validate()?;
    let started = Instant::now();
    let mut run = Run::new(scenario);
    run.upload_phase(progress)?;
    let stored_before = ledger::lock(&run.ledger).commits();
    let (series, churn) = run.churn_phase(progress);
    let stored_during = ledger::lock(&run.ledger).commits() - stored_before;
    let stats = client::lock(&run.stats).clone();
    let summary = Summary::new(
        scenario,
        &stats,
        series.last(),
        &series,
        OnOff::of(&scenario.churn).availability(),
        run.world.counters().events,
        run.world.digest(),
        churn.node_count(),
        stored_during,
        started.elapsed().as_secs_f64(),
    );
    Ok(Outcome { summary, series })
}

impl Run {
    fn new(scenario: &Scenario) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::new(
            scenario.files,
            scenario.share_size(),
        )));
        let members = Arc::new(Mutex::new(Membership::default()));
        let stats = Arc::new(Mutex::new(ClientStats::default()));
        let config = WorldConfig {
            seed: scenario.seed,
            ..WorldConfig::default()
        };
        let client = NodeId([0xff; 32]);
        let mut run = Run {
            scenario: scenario.clone(),
            world: World::new(config, NoUser),
            ledger,
            members,
            stats,
            client,
            // The key only signs announcements, which research runs do without (the client
            // learns the members from the membership, as from a perfect introducer).
            key: Arc::new(NodeKey::from_seed([0; 32])),
        };
        for n in 0..scenario.nodes {
            run.add_storage(n);
        }
        run.add_client();
        run
    }

    /// Adds storage node `n`, a member from now on.
    fn add_storage(&mut self, n: NodeNum) {
        let seed = self.scenario.seed;
        let id = node_id(seed, n);
        ring::lock(&self.members).join(n, client::ring_key(&id.0));
        let (ledger, key) = (self.ledger.clone(), self.key.clone());
        let factory = move |_: &SimDisk| -> Vec<(Service, Box<dyn Actor>)> {
            let store = SizeStore::new(seed, n, NODE_CAPACITY, ledger.clone());
            let server = StorageServer::new(
                key.clone(),
                format!("node-{n}"),
                None,
                Box::new(store),
                Box::new(NullJournal),
                StorageConfig::default(),
            );
            vec![(Service::Storage, Box::new(server))]
        };
        // Node ids are unique by construction: adding cannot fail.
        let _ = self.world.add_node(id, SimDisk::new(0), factory);
    }

    fn add_client(&mut self) {
        let s = &self.scenario;
        let plan = ClientPlan {
            seed: s.seed,
            files: s.files,
            needed: s.shares_needed,
            total: s.shares_total,
            happy: s.shares_happy,
            share_size: s.share_size(),
            search_width: s.search_width(),
            downloads: s.download_attempts(),
            run: Duration::from_secs_f64(s.days * DAY),
            repair: s.repair,
            repair_interval: Duration::from_secs_f64(s.repair_interval_hours * 3600.0),
            repair_bandwidth: s.repair_bandwidth,
        };
        let (members, stats) = (self.members.clone(), self.stats.clone());
        let mut client = Some(ResearchClient::new(plan, members, stats));
        let factory = move |_: &SimDisk| -> Vec<(Service, Box<dyn Actor>)> {
            // The client never crashes: it is built once.
            client
                .take()
                .map(|c| (Service::Client, Box::new(c) as Box<dyn Actor>))
                .into_iter()
                .collect()
        };
        let _ = self.world.add_node(self.client, SimDisk::new(0), factory);
    }

    fn upload_phase(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<(), ScenarioError> {
        let deadline = Time(0).after(UPLOAD_PHASE_LIMIT);
        let stats = self.stats.clone();
        let days = self.scenario.days;
        let mut steps = 0u64;
        let done = self.world.run_until_or(deadline, |world| {
            let stats = client::lock(&stats);
            steps += 1;
            if steps.is_multiple_of(PROGRESS_EVERY) {
                progress(Progress {
                    day: 0.0,
                    days,
                    events: world.counters().events,
                    uploaded: Some(stats.uploads_ok + stats.uploads_failed),
                });
            }
            stats.uploads_done_at.is_some()
        });
        progress(Progress {
            day: 0.0,
            days,
            events: self.world.counters().events,
            uploaded: None,
        });
        match done {
            true => Ok(()),
            false => Err(ScenarioError::Invalid(
                "the uploads did not finish within 30 simulated days".into(),
            )),
        }
    }

    fn churn_phase(&mut self, progress: &mut dyn FnMut(Progress)) -> (Vec<Sample>, ChurnDriver) {
        let s = self.scenario.clone();
        let start = self.world.now();
        let rng = self.world.rng_for("research churn");
        let mut churn = ChurnDriver::new(start, s.nodes, &s.churn, &s.departures, &s.zones, rng);
        for n in 0..s.nodes {
            if !churn.is_up(n) {
                self.apply(Transition::Down(n));
            }
        }
        let end = start.after(Duration::from_secs_f64(s.days * DAY));
        let mut sampler = Sampler::new(start, end, s.samples, self.ledger_k_r());
        sampler.take(start, &self.ledger, &self.members, &churn, &self.stats);
        while let Some(at) = sampler.next_time() {
            let next = churn.next_time().filter(|t| *t < at).unwrap_or(at);
            self.world.run_until(next);
            if next == at {
                sampler.take(at, &self.ledger, &self.members, &churn, &self.stats);
                progress(Progress {
                    day: at.since(start).as_secs_f64() / DAY,
                    days: s.days,
                    events: self.world.counters().events,
                    uploaded: None,
                });
                continue;
            }
            if let Some((_, changes)) = churn.advance() {
                for change in changes {
                    self.apply(change);
                }
            }
        }
        (sampler.into_samples(), churn)
    }

    fn ledger_k_r(&self) -> (u8, u8) {
        let r = match self.scenario.repair {
            Repair::None => self.scenario.shares_total,
            Repair::Threshold(r) => r,
            Repair::Unhealthy => self.scenario.shares_happy,
        };
        (self.scenario.shares_needed, r)
    }

    /// Carries out one change of a node's state in the world and the books.
    fn apply(&mut self, change: Transition) {
        let now = self.world.now();
        let seed = self.scenario.seed;
        let fault = |n| match change {
            Transition::Down(_) | Transition::Departed(_) => Fault::Crash {
                node: node_id(seed, n),
            },
            _ => Fault::Restart {
                node: node_id(seed, n),
            },
        };
        match change {
            Transition::Down(n) | Transition::Up(n) => {
                let _ = self.world.schedule_fault(now, fault(n));
            }
            Transition::Departed(n) => {
                let _ = self.world.schedule_fault(now, fault(n));
                ledger::lock(&self.ledger).depart(n);
                ring::lock(&self.members).leave(n);
            }
            Transition::Arrived(n) => self.add_storage(n),
        }
    }
}

/// The client node's address (for tests that watch the mesh).
pub fn client_addr() -> Addr {
    Addr::new(NodeId([0xff; 32]), Service::Client)
}
