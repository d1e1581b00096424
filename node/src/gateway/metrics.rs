//! `GET /metrics`: the node's figures in the Prometheus/OpenMetrics text format. Counters and
//! histograms move as the gateway serves (operations started, succeeded and failed, bytes in
//! and out, how long each took); gauges are read at each scrape from the same status that
//! `cairn status` shows (servers, this node's storage figures as announced, the garbage
//! collector's last pass, actor restarts, the process's memory), so the CLI, the gateway and
//! the metrics say the same thing.

use super::activity::Activity;
use super::{status, ApiError, Gateway};
use crate::api;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// What an operation is (its `kind` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Upload,
    Download,
    Check,
    /// A check that repairs what it finds missing or bad.
    Repair,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Upload => "upload",
            Kind::Download => "download",
            Kind::Check => "check",
            Kind::Repair => "repair",
        }
    }
}

/// Which way plaintext moved (the `direction` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the node's user (uploads).
    In,
    /// Sent to the node's user (downloads).
    Out,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    kind: &'static str,
    /// started, succeeded or failed.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
    /// What went wrong, in a word: see [`reason`].
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    /// The peer's node id.
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    /// The kind of actor: client, storage, vdrive, introducer, upload, download, ...
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    /// renewal or repair.
    kind: &'static str,
    /// files, healthy, unhealthy, unrecoverable, repaired or errors.
    count: &'static str,
}

type Histograms = Family<KindLabels, Histogram, fn() -> Histogram>;

/// The node's metrics. See the module docs.
pub struct Metrics {
    registry: Registry,
    operations: Family<OperationLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Histograms,
    bytes: Family<DirectionLabels, Counter>,
    gauges: Gauges,
    peers: Family<StateLabels, Gauge>,
    peer_connected: Family<PeerLabels, Gauge>,
    peer_dials: Family<PeerLabels, Gauge>,
    mailboxes: Family<ServiceLabels, Gauge>,
    upkeep: Family<RunLabels, Gauge>,
    /// The same operations, one by one.
    pub activity: Activity,
}

/// The gauges set at each scrape.
#[derive(Default)]
struct Gauges {
    servers_known: Gauge,
    servers_connected: Gauge,
    introducer_connected: Gauge,
    actor_restarts: Gauge,
    resident_memory: Gauge,
    storage_shares: Gauge,
    storage_used: Gauge,
    storage_free: Gauge,
    storage_reserved: Gauge,
    storage_leases: Gauge,
    storage_incoming: Gauge,
    collector_files: Gauge,
    collector_removed: Gauge,
    collector_freed: Gauge,
    collector_lapsing: Gauge,
    collector_current_files: Gauge,
    upkeep_running_files: Gauge,
}

fn durations() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "operations",
            "Operations the gateway served, by kind and outcome",
            operations.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "operation_failures",
            "Operations that failed, by kind and reason",
            failures.clone(),
        );
        let durations: Histograms = Family::new_with_constructor(durations);
        registry.register(
            "operation_duration_seconds",
            "How long operations took, from request to their end",
            durations.clone(),
        );
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "plaintext_bytes",
            "Bytes of files received (in) from and sent (out) to the node's user",
            bytes.clone(),
        );
        let gauges = Gauges::default();
        let g = &gauges;
        let each: [(&str, &str, &Gauge); 17] = [
            (
                "servers_known",
                "Storage servers the client knows of",
                &g.servers_known,
            ),
            (
                "servers_connected",
                "Storage servers with a live connection",
                &g.servers_connected,
            ),
            (
                "introducer_connected",
                "1 if an introducer answered lately",
                &g.introducer_connected,
            ),
            (
                "actor_restarts",
                "Services restarted after a panic since start",
                &g.actor_restarts,
            ),
            (
                "resident_memory_bytes",
                "The process's resident memory",
                &g.resident_memory,
            ),
            (
                "storage_shares",
                "Complete shares this node's storage server holds",
                &g.storage_shares,
            ),
            (
                "storage_used_bytes",
                "Bytes of shares held, complete and incoming",
                &g.storage_used,
            ),
            (
                "storage_free_bytes",
                "Bytes the storage server still takes",
                &g.storage_free,
            ),
            (
                "storage_reserved_bytes",
                "Free space the storage server never fills ([storage] reserved_space)",
                &g.storage_reserved,
            ),
            (
                "storage_leases",
                "Leases recorded, over all files held",
                &g.storage_leases,
            ),
            (
                "storage_incoming_shares",
                "Shares being uploaded",
                &g.storage_incoming,
            ),
            (
                "collector_last_pass_files",
                "Files the last collection pass examined",
                &g.collector_files,
            ),
            (
                "collector_last_pass_removed_shares",
                "Shares the last pass deleted",
                &g.collector_removed,
            ),
            (
                "collector_last_pass_freed_bytes",
                "Bytes the last pass freed",
                &g.collector_freed,
            ),
            (
                "collector_lapsing_shares",
                "Shares that will lapse within a week",
                &g.collector_lapsing,
            ),
            (
                "collector_current_pass_files",
                "Files the collection pass under way has examined (0: none under way)",
                &g.collector_current_files,
            ),
            (
                "upkeep_running_files",
                "Files the scheduled renewal or repair run under way has done (0: none)",
                &g.upkeep_running_files,
            ),
        ];
        for (name, help, gauge) in each {
            registry.register(name, help, gauge.clone());
        }
        let peers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "peers",
            "Peers the transport knows, by connection state",
            peers.clone(),
        );
        let peer_connected = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_connected",
            "1 while the transport has a live connection to the peer",
            peer_connected.clone(),
        );
        let peer_dials = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_dials",
            "Dials made to the peer since the node started (connects and reconnects)",
            peer_dials.clone(),
        );
        let mailboxes = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "actor_mailbox_depth",
            "Inputs waiting in the actors' mailboxes, by kind of actor",
            mailboxes.clone(),
        );
        let upkeep = Family::<RunLabels, Gauge>::default();
        registry.register(
            "upkeep_last_run_files",
            "What the last scheduled lease renewal and repair runs found",
            upkeep.clone(),
        );
        Metrics {
            registry,
            operations,
            failures,
            durations,
            bytes,
            gauges,
            peers,
            peer_connected,
            peer_dials,
            mailboxes,
            upkeep,
            activity: Activity::default(),
        }
    }

    /// An operation of `kind` on `what` starts: ended by [`Operation::end`].
    pub fn start(self: &Arc<Self>, kind: Kind, what: String) -> Operation {
        self.count(kind, "started");
        Operation {
            id: self.activity.start(kind, what),
            metrics: self.clone(),
            kind,
            started: Instant::now(),
            ended: false,
        }
    }

    fn count(&self, kind: Kind, outcome: &'static str) {
        let labels = OperationLabels {
            kind: kind.label(),
            outcome,
        };
        self.operations.get_or_create(&labels).inc();
    }

    /// `n` bytes of plaintext moved.
    pub fn bytes(&self, direction: Direction, n: u64) {
        let direction = match direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        self.bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(n);
    }

    /// The text a scrape gets, with the gauges set from `status`, the transport's `peers` and
    /// the actors' `mailboxes`.
    fn encode(
        &self,
        status: &api::Status,
        peers: &[cairn_net::PeerStatus],
        mailboxes: &BTreeMap<&'static str, usize>,
    ) -> Result<String, std::fmt::Error> {
        let g = &self.gauges;
        let set = |gauge: &Gauge, value: u64| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&g.servers_known, status.servers.len() as u64);
        set(&g.servers_connected, status.servers_connected as u64);
        set(
            &g.introducer_connected,
            u64::from(status.introducer_connected == Some(true)),
        );
        set(&g.actor_restarts, status.actor_restarts);
        set(&g.resident_memory, resident_memory().unwrap_or(0));
        if let Some(s) = &status.storage {
            set(&g.storage_shares, s.figures.shares);
            set(&g.storage_used, s.figures.used_bytes);
            set(&g.storage_free, s.figures.free_space);
            set(&g.storage_reserved, s.reserved_bytes);
            set(&g.storage_leases, s.leases as u64);
            set(&g.storage_incoming, s.incoming_shares as u64);
            if let Some(pass) = &s.collector.last {
                set(&g.collector_files, pass.files_examined);
                set(&g.collector_removed, pass.shares_removed);
                set(&g.collector_freed, pass.bytes_freed);
                set(&g.collector_lapsing, pass.shares_lapsing);
            }
            let current = s.collector.current.as_ref();
            set(
                &g.collector_current_files,
                current.map_or(0, |p| p.files_examined),
            );
        }
        self.peers.clear();
        for state in ["connected", "connecting", "backoff", "idle"] {
            let count = peers
                .iter()
                .filter(|p| p.state.to_string() == state)
                .count();
            let labels = StateLabels {
                state: state.to_owned(),
            };
            set(&self.peers.get_or_create(&labels), count as u64);
        }
        // Peers come and go: only those the transport knows now are shown.
        self.peer_connected.clear();
        self.peer_dials.clear();
        for peer in peers {
            let labels = PeerLabels {
                peer: peer.id.to_string(),
            };
            let up = peer.state == cairn_net::transport::PeerState::Connected;
            set(&self.peer_connected.get_or_create(&labels), u64::from(up));
            set(&self.peer_dials.get_or_create(&labels), peer.dials);
        }
        self.mailboxes.clear();
        for (&service, &depth) in mailboxes {
            set(
                &self.mailboxes.get_or_create(&ServiceLabels { service }),
                depth as u64,
            );
        }
        let running = status.upkeep.as_ref().and_then(|u| u.running.as_ref());
        set(
            &g.upkeep_running_files,
            running.map_or(0, |r| r.summary.objects),
        );
        let runs = status
            .upkeep
            .as_ref()
            .map(|u| [("renewal", &u.last_renewal), ("repair", &u.last_repair)]);
        for (kind, run) in runs.into_iter().flatten() {
            let Some(run) = run else { continue };
            let s = &run.summary;
            let counts = [
                ("files", s.objects),
                ("healthy", s.healthy),
                ("unhealthy", s.unhealthy),
                ("unrecoverable", s.unrecoverable),
                ("repaired", s.repaired),
                ("errors", s.errors),
            ];
            for (count, value) in counts {
                set(
                    &self.upkeep.get_or_create(&RunLabels { kind, count }),
                    value,
                );
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        if !text.ends_with('\n') {
            text.push('\n'); // every OpenMetrics line ends so, "# EOF" too
        }
        Ok(text)
    }
}

/// An operation being counted and logged. One dropped before it ended (its HTTP client went
/// away) counts as failed.
pub struct Operation {
    metrics: Arc<Metrics>,
    /// Its record in the activity log, if it has one.
    id: Option<u64>,
    kind: Kind,
    started: Instant,
    ended: bool,
}

impl Operation {
    /// How far it got: `done` bytes of `total` in `phase`.
    pub fn progress(&self, phase: &'static str, done: u64, total: Option<u64>) {
        if let Some(id) = self.id {
            self.metrics.activity.progress(id, phase, done, total);
        }
    }

    /// Counts the operation's end, why it failed if it did, and how long it took.
    pub(super) fn end(mut self, result: Result<(), &ApiError>) {
        self.finish(result.map_err(|e| (reason(e.status), e.message.clone())));
    }

    fn finish(&mut self, result: Result<(), (&'static str, String)>) {
        self.ended = true;
        let kind = self.kind.label();
        match &result {
            Ok(()) => self.metrics.count(self.kind, "succeeded"),
            Err((reason, _)) => {
                self.metrics.count(self.kind, "failed");
                let labels = FailureLabels { kind, reason };
                self.metrics.failures.get_or_create(&labels).inc();
            }
        }
        let took = self.started.elapsed().as_secs_f64();
        let labels = KindLabels { kind };
        self.metrics.durations.get_or_create(&labels).observe(took);
        if let Some(id) = self.id {
            let outcome = result.map_err(|(_, message)| message);
            self.metrics.activity.end(id, outcome);
        }
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if !self.ended {
            let why = "the HTTP client went away before it ended".to_owned();
            self.finish(Err(("abandoned", why)));
        }
    }
}

/// A failure's reason label, from the status the gateway answered it with.
fn reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "cancelled",
        StatusCode::GONE => "not_enough_shares",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNPROCESSABLE_ENTITY => "corrupt",
        StatusCode::BAD_GATEWAY => "bad_peer",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "deadline",
        StatusCode::INSUFFICIENT_STORAGE => "disk_full",
        _ => "internal",
    }
}

/// The process's resident memory, from `/proc/self/statm` (Linux).
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

pub(super) async fn metrics(State(g): State<Arc<Gateway>>) -> Result<Response, ApiError> {
    let status = status(State(g.clone())).await?.0;
    let text = g
        .metrics
        .encode(&status, &g.transport.peers(), &g.node.mailbox_depths())
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
