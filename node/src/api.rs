//! The gateway's JSON bodies: what the node's HTTP API returns and the CLI reads.

use cairn_actors::protocol::StorageFigures;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `PUT /uri`: the uploaded file's cap, and where its shares went.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Uploaded {
    pub cap: String,
    pub size: u64,
    /// Servers holding distinct shares (0 for a literal file, which needs no servers).
    pub happiness: usize,
    /// Share number -> node ids of the servers holding it.
    pub placement: BTreeMap<u8, Vec<String>>,
}

/// Any failure: what went wrong, said for a person.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
}

/// `GET /status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    pub nickname: String,
    /// The cairn version the node runs.
    #[serde(default)]
    pub version: String,
    /// Seconds since the node started.
    #[serde(default)]
    pub uptime_secs: u64,
    /// What the node runs: introducer, vdrive, storage, client.
    pub roles: Vec<String>,
    /// Where other nodes reach it (`host:port`; never its FURL, whose secret is a
    /// credential).
    pub address: String,
    /// Whether the introducer answered recently and is still connected (clients only).
    pub introducer_connected: Option<bool>,
    /// Why the last connection to the introducer failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introducer_error: Option<String>,
    /// Known storage servers with a live connection (or this node's own).
    pub servers_connected: usize,
    /// The node's services restarted after a panic since it started.
    pub actor_restarts: u64,
    pub servers: Vec<Server>,
    /// This node's own storage server, if it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<OwnStorage>,
    /// How the node's client encodes uploads, if it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Scheduled lease renewal and repair, if the node runs a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upkeep: Option<Upkeep>,
}

/// A client node's scheduled upkeep: what runs how often, what ran, what is due.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Upkeep {
    /// `[client] lease_renewal`, in seconds (absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_interval_secs: Option<u64>,
    /// `[repair] interval`, in seconds (absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_interval_secs: Option<u64>,
    /// `[repair] bandwidth`, bytes a second (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_bandwidth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal: Option<UpkeepRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_repair: Option<UpkeepRun>,
    /// The run under way, as far as it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<UpkeepRun>,
    /// When the next runs are due, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_renewal: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_repair: Option<u64>,
}

/// One scheduled run over the vdrive's files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpkeepRun {
    /// "renewal" (`deep-check --add-lease`) or "repair" (`deep-check --repair --add-lease`).
    pub kind: String,
    /// Unix seconds.
    pub started: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    pub summary: DeepCheckSummary,
    /// Why the run could not walk the tree, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// k, happy and N.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Encoding {
    pub shares_needed: usize,
    pub shares_happy: usize,
    pub shares_total: usize,
}

/// What a node's own storage server holds and does: the figures it announces (the same
/// schema as every server's in `servers`), and more.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwnStorage {
    #[serde(flatten)]
    pub figures: StorageFigures,
    /// `[storage] reserved_space`: free space the server never fills.
    #[serde(default)]
    pub reserved_bytes: u64,
    pub incoming_shares: usize,
    /// Files with leases, and leases in all.
    pub leased_files: usize,
    pub leases: usize,
    /// Corruption advisories clients sent since it started.
    pub advisories_received: u64,
    pub collector: Collector,
}

/// What the garbage collector does and did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Collector {
    /// The `[storage] expire` rule in force ("off" if nothing is ever collected).
    pub expire: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CollectorPass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<CollectorPass>,
    /// When the next pass starts (Unix seconds), if none is under way and expiry is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_pass: Option<u64>,
}

/// One pass of the garbage collector over the files it holds leases on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CollectorPass {
    /// Unix seconds.
    pub started: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    pub files_examined: u64,
    pub shares_removed: u64,
    pub bytes_freed: u64,
    /// Shares (and bytes) of the files examined that will lapse within a week.
    pub shares_lapsing: u64,
    pub bytes_lapsing: u64,
    pub errors: u64,
}

/// A storage server the node knows of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    /// Its operator's name for it (not an identity).
    pub nickname: String,
    /// Where it listens (`host:port`, without its FURL's secret).
    pub address: String,
    /// The connection's state: connected, connecting, backoff or idle; `local` for the
    /// node's own storage server.
    pub connection: String,
    /// As of its latest announcement.
    #[serde(flatten)]
    pub figures: StorageFigures,
    /// Whether its announcements are fresh.
    pub announced_recently: bool,
    /// Seconds since its latest announcement arrived.
    #[serde(default)]
    pub announced_secs_ago: u64,
    /// Why the last connection to it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A name in a vdrive directory (`GET /vdrive/list`), or what a path names
/// (`GET /vdrive/lookup`, with an empty name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    /// "dir" or "file".
    pub kind: String,
    /// A file's cap.
    pub cap: Option<String>,
    /// A file's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A file's modification time (Unix seconds), as its uploader gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<u64>,
    /// A directory's read cap: what to give someone to share it read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_cap: Option<String>,
    /// A directory's write cap, if this node holds it: what to give to share it writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_cap: Option<String>,
}

/// `POST /vdrive/import`: what was copied from the old global tree.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Imported {
    pub directories: u64,
    pub files: u64,
}

/// `POST /login-url`: a one-time URL that logs a browser in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginUrl {
    pub url: String,
    /// How long it stays good, in seconds.
    pub valid_secs: u64,
}

/// `POST /operations/cancel`: whether the operation was running (else it was unknown or
/// had not started, and now never will).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cancelled {
    pub running: bool,
}

/// `POST /check`: what a check found (after a repair, if one was asked for and needed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checked {
    /// The file's verify cap (or the literal cap itself).
    pub cap: String,
    /// A literal file holds its bytes in its cap: always healthy, nothing on servers.
    pub literal: bool,
    pub k: usize,
    pub n: usize,
    /// The servers-of-happiness the node's encoding asks for.
    pub happy: usize,
    pub distinct_shares: usize,
    pub happiness: usize,
    pub servers_asked: usize,
    pub servers_answered: usize,
    pub healthy: bool,
    pub recoverable: bool,
    /// Share number -> the servers holding a copy (with `verify`: a copy that proved good).
    pub holders: BTreeMap<u8, Vec<String>>,
    /// Copies found bad when verifying.
    pub faults: Vec<String>,
    /// Servers that renewed the node's lease on the file (with `add_lease`).
    pub leases_renewed: usize,
    pub repair: Option<Repaired>,
}

impl Checked {
    pub fn literal(cap: String) -> Checked {
        Checked {
            cap,
            literal: true,
            k: 1,
            n: 1,
            happy: 0,
            distinct_shares: 0,
            happiness: 0,
            servers_asked: 0,
            servers_answered: 0,
            healthy: true,
            recoverable: true,
            holders: BTreeMap::new(),
            faults: Vec::new(),
            leases_renewed: 0,
            repair: None,
        }
    }
}

/// What a repair did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repaired {
    pub shares_placed: usize,
    pub happiness_before: usize,
    pub happiness_after: usize,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    /// Why it fell short, if it did.
    pub error: Option<String>,
}

/// What a deep-check found, in all (the CLI's `deep-check` and the node's scheduled runs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepCheckSummary {
    pub objects: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    pub unrecoverable: u64,
    pub repaired: u64,
    /// Files that could not be checked.
    pub errors: u64,
    /// Bytes repair read and wrote.
    pub bytes_moved: u64,
    /// Leases renewed, one per file and server.
    pub leases_renewed: u64,
}

impl DeepCheckSummary {
    /// Counts one file's check; its state: "healthy", "repaired", "UNHEALTHY" or
    /// "UNRECOVERABLE".
    pub fn count(&mut self, checked: &Checked) -> &'static str {
        self.objects += 1;
        let repaired = checked
            .repair
            .as_ref()
            .is_some_and(|r| r.shares_placed > 0 && r.error.is_none());
        if let Some(r) = &checked.repair {
            self.bytes_moved += r.bytes_downloaded + r.bytes_uploaded;
        }
        self.leases_renewed += checked.leases_renewed as u64;
        if repaired {
            self.repaired += 1;
        }
        match (checked.recoverable, checked.healthy) {
            (false, _) => {
                self.unrecoverable += 1;
                "UNRECOVERABLE"
            }
            (true, false) => {
                self.unhealthy += 1;
                "UNHEALTHY"
            }
            (true, true) => {
                self.healthy += 1;
                match repaired {
                    true => "repaired",
                    false => "healthy",
                }
            }
        }
    }

    /// Counts a file that could not be checked.
    pub fn failed(&mut self) {
        self.objects += 1;
        self.errors += 1;
    }
}
