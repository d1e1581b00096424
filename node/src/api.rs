//! The gateway's JSON bodies: what the node's HTTP API returns and the CLI reads.

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
}

/// A storage server the node knows of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    /// Where it listens (`host:port`, without its FURL's secret).
    pub address: String,
    /// The connection's state: connected, connecting, backoff or idle; `local` for the
    /// node's own storage server.
    pub connection: String,
    pub free_space: u64,
    /// Whether its announcements are fresh.
    pub announced_recently: bool,
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
