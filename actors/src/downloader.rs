//! The downloader: one per download. Finds shares, verifies them against the cap, fetches
//! blocks from k servers in parallel, and streams verified plaintext out.

use crate::actor::{Actor, Context, Input};
use crate::ids::NodeId;
use crate::local::LocalId;
use cairn_codec::ChkCap;
use std::time::Duration;

/// One download (being written).
pub struct Downloader {
    #[allow(dead_code)]
    local: LocalId,
}

impl Downloader {
    /// A download of `cap` for local request `local`, asking `servers` (the storage servers the
    /// client knows); each request to a server is given up after `request_timeout`.
    pub fn new(
        local: LocalId,
        cap: ChkCap,
        servers: Vec<NodeId>,
        request_timeout: Duration,
    ) -> Self {
        let _ = (cap, servers, request_timeout);
        Downloader { local }
    }
}

impl Actor for Downloader {
    fn handle(&mut self, _input: Input, _ctx: &mut Context<'_>) {}
}
