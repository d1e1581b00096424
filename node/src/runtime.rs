//! A running node: its transport, the actors its configuration asks for, and its HTTP
//! gateway — what `cairn run` and `cairn demo` start.

use crate::config::NodeConfig;
use crate::gateway::{self, Gateway};
use crate::nodedir::{
    self, GATEWAY_PORT_FILE, INTRODUCER_FURL_FILE, NODE_URL_FILE, TRANSPORT_PORT_FILE,
};
use anyhow::{Context, Result};
use cairn_actors::client::{Client, ClientConfig};
use cairn_actors::introducer::Introducer;
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::uploader::UploadConfig;
use cairn_actors::vdrive::Vdrive;
use cairn_actors::{Addr, Service};
use cairn_net::transport::{Furl, Transport, TransportConfig};
use cairn_net::{DiskShareStore, FileJournal, Node};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a stopping node waits for the gateway's requests in flight.
const GATEWAY_GRACE: Duration = Duration::from_secs(5);

/// One node's running parts. Dropping it does not stop the node: call [`RunningNode::stop`].
pub struct RunningNode {
    pub dir: PathBuf,
    pub config: NodeConfig,
    pub node: Node,
    pub transport: Arc<Transport>,
    /// The gateway's base URL, `http://127.0.0.1:PORT`.
    pub gateway_url: String,
    stop_gateway: watch::Sender<bool>,
    gateway_task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// This node's FURL.
    pub fn furl(&self) -> Furl {
        self.transport.furl()
    }

    /// Stops serving: the gateway finishes its open requests, the actors stop, connections
    /// close. Shares already closed are on disk; uploads in progress are abandoned (their
    /// incomplete shares are never visible).
    pub async fn stop(self) {
        let _ = std::fs::remove_file(self.dir.join(NODE_URL_FILE));
        let _ = self.stop_gateway.send(true);
        // Requests in flight get a moment to finish; a stalled download does not hold the
        // node up.
        let mut gateway_task = self.gateway_task;
        if tokio::time::timeout(GATEWAY_GRACE, &mut gateway_task)
            .await
            .is_err()
        {
            gateway_task.abort();
        }
        self.node.shutdown();
        self.transport.shutdown();
    }
}

/// Starts the node in `dir` as its `cairn.toml` says. Must run within a multi-threaded tokio
/// runtime.
pub async fn start(dir: &Path) -> Result<RunningNode> {
    let config = NodeConfig::load(dir)?;
    let identity = nodedir::identity(dir)?;
    let listen = kept_port(dir, TRANSPORT_PORT_FILE, config.node.listen)?;
    let transport = Transport::bind(
        &identity.key,
        identity.furl_secret.clone(),
        listen,
        config.node.advertise_host.clone(),
        TransportConfig::default(),
    )
    .await
    .with_context(|| format!("cannot listen for other nodes on {listen}"))?;
    if config.node.listen.port() == 0 {
        keep_port(dir, TRANSPORT_PORT_FILE, transport.local_addr())?;
    }
    let node = Node::new(identity.key.id(), transport.clone());
    transport.serve(node.clone());
    let furl = transport.furl();

    if config.introducer.enabled {
        spawn(&node, Service::Introducer, || Ok(Introducer::new()))?;
        if config.introducer.vdrive {
            let vdrive_dir = dir.join("vdrive");
            spawn(&node, Service::Vdrive, move || {
                let journal = open_journal(&vdrive_dir, "journal")?;
                Ok(Vdrive::new(Box::new(journal)))
            })?;
        }
        let text = format!("{furl}\n");
        nodedir::write_atomically(&dir.join(INTRODUCER_FURL_FILE), text.as_bytes())?;
    }
    let mut encoding = None;
    let mut introducer_ids = Vec::new();
    if let Some(client) = &config.client {
        let furls = std::iter::once(("introducer", &client.introducer)).chain(
            client
                .more_introducers
                .iter()
                .map(|f| ("more_introducers", f)),
        );
        for (key, text) in furls {
            let introducer: Furl = text
                .parse()
                .with_context(|| format!("[client] {key}: {text:?}"))?;
            introducer_ids.push(introducer.node);
            transport.add_peer(introducer);
        }
        let addrs: Vec<Addr> = introducer_ids
            .iter()
            .map(|&id| Addr::new(id, Service::Introducer))
            .collect();
        let (first, more) = (addrs[0], addrs[1..].to_vec());
        if config.storage.enabled {
            let (dir, config) = (dir.to_owned(), config.clone());
            let (seed, address) = (identity.key.seed(), furl.to_string());
            let more = more.clone();
            spawn(&node, Service::Storage, move || {
                let server = storage_server(&dir, &config, seed, address.clone(), first)?;
                Ok(server.with_more_introducers(more.clone()))
            })?;
        }
        let vdrive = Addr::new(first.node, Service::Vdrive);
        let client_config = client_config(client, identity.lease_secret);
        spawn(&node, Service::Client, move || {
            let client = Client::new(Some(first), Some(vdrive), client_config.clone());
            Ok(client.with_more_introducers(more.clone()))
        })?;
        encoding = Some(client.encoding()?);
    }

    // A gateway on port 0 keeps the port it got first, so that its URL (and a browser's
    // session) stays the same; if that port is taken now, any other will do.
    let gateway_addr = kept_port(dir, GATEWAY_PORT_FILE, config.node.gateway)?;
    let listener = match tokio::net::TcpListener::bind(gateway_addr).await {
        Ok(listener) => listener,
        Err(e) if gateway_addr != config.node.gateway => {
            tracing::warn!(%gateway_addr, "the gateway's port is taken ({e}); another is used");
            tokio::net::TcpListener::bind(config.node.gateway).await?
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot open the gateway on {}", config.node.gateway))
        }
    };
    let bound = listener.local_addr()?;
    if config.node.gateway.port() == 0 {
        keep_port(dir, GATEWAY_PORT_FILE, bound)?;
    }
    let gateway_url = match bound.ip().is_loopback() {
        true => format!("http://127.0.0.1:{}", bound.port()),
        false => format!("http://{bound}"),
    };
    let (max_size, spool_reserve) = config.upload_limits()?;
    let gateway = Gateway {
        auth: gateway::auth::Auth::new(nodedir::ensure_api_token(dir)?, bound),
        base_url: gateway_url.clone(),
        limits: gateway::UploadLimits {
            max_size,
            spool_reserve,
        },
        node: node.clone(),
        transport: transport.clone(),
        nickname: config.node.nickname.clone(),
        roles: roles(&config),
        convergence: identity.convergence,
        encoding,
        spool_dir: dir.join("tmp"),
        operations: Default::default(),
        introducers: introducer_ids,
        metrics: Arc::new(gateway::metrics::Metrics::new()),
        metrics_public: config.gateway.metrics_public,
        started: std::time::Instant::now(),
        storage_reserved: config.storage.server_config()?.reserved_space,
        tree: match config.client.is_some() {
            true => Some(gateway::tree::Tree::open(dir)?),
            false => None,
        },
        upkeep: config
            .upkeep_plan()?
            .map(|plan| Arc::new(gateway::schedule::Schedule::open(dir, plan))),
    };
    std::fs::create_dir_all(&gateway.spool_dir)?;
    let (stop_gateway, stopped) = watch::channel(false);
    let gateway = Arc::new(gateway);
    if let Some(schedule) = gateway.upkeep.clone() {
        tokio::spawn(gateway::schedule::run(
            gateway.clone(),
            schedule,
            stopped.clone(),
        ));
    }
    let gateway_task = tokio::spawn(gateway::serve(listener, gateway, stopped));
    let url_text = format!("{gateway_url}\n");
    nodedir::write_atomically(&dir.join(NODE_URL_FILE), url_text.as_bytes())?;
    tracing::info!(node = %node.id(), address = %furl.address(), %gateway_url, "node running");
    Ok(RunningNode {
        dir: dir.to_owned(),
        config,
        node,
        transport,
        gateway_url,
        stop_gateway,
        gateway_task,
    })
}

/// `listen`, with port 0 replaced by the port kept from an earlier start (so the FURL that
/// other nodes know stays valid).
/// `addr`, or if its port is 0, with the port kept in `dir/file` from an earlier start.
fn kept_port(dir: &Path, file: &str, addr: SocketAddr) -> Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
        return Ok(addr);
    };
    let port: u16 = text
        .trim()
        .parse()
        .with_context(|| format!("{} is not a port", dir.join(file).display()))?;
    Ok(SocketAddr::new(addr.ip(), port))
}

/// Keeps the port `bound` got in `dir/file`, for the next start.
fn keep_port(dir: &Path, file: &str, bound: SocketAddr) -> Result<()> {
    nodedir::write_atomically(&dir.join(file), bound.port().to_string().as_bytes())
}

fn storage_server(
    dir: &Path,
    config: &NodeConfig,
    key_seed: [u8; 32],
    address: String,
    introducer: Addr,
) -> Result<StorageServer> {
    let storage = dir.join("storage");
    let shares = DiskShareStore::open(&storage, None)
        .with_context(|| format!("cannot open the share store in {}", storage.display()))?;
    let leases = open_journal(&storage, "leases")?;
    let storage_config = StorageConfig {
        nickname: config.node.nickname.clone(),
        ..config.storage.server_config()?
    };
    Ok(StorageServer::new(
        cairn_actors::NodeKey::from_seed(key_seed),
        address,
        Some(introducer),
        Box::new(shares),
        Box::new(leases),
        storage_config,
    ))
}

fn open_journal(dir: &Path, name: &str) -> Result<FileJournal> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    FileJournal::open(&path).with_context(|| format!("cannot open the journal {}", path.display()))
}

fn client_config(client: &crate::config::ClientSection, lease_secret: [u8; 32]) -> ClientConfig {
    let request_timeout = Duration::from_secs(client.request_timeout_secs);
    ClientConfig {
        request_timeout,
        resubscribe_interval: Duration::from_secs(60),
        upload: UploadConfig {
            request_timeout,
            lease_secret,
            ..UploadConfig::default()
        },
    }
}

/// Starts a service's actor from `make`, and again from `make` should it ever panic.
fn spawn<A: cairn_actors::Actor + 'static>(
    node: &Node,
    service: Service,
    make: impl Fn() -> Result<A> + Send + Sync + 'static,
) -> Result<()> {
    let factory: cairn_net::host::Factory = Arc::new(move || {
        make()
            .map(|actor| Box::new(actor) as Box<dyn cairn_actors::Actor>)
            .map_err(|e| format!("{e:#}"))
    });
    node.spawn_service(service, factory)
        .with_context(|| format!("cannot start the {service:?} actor"))
}

/// What the node runs, for status output.
fn roles(config: &NodeConfig) -> Vec<&'static str> {
    let mut roles = Vec::new();
    if config.introducer.enabled {
        roles.push("introducer");
    }
    if config.introducer.vdrive {
        roles.push("vdrive");
    }
    if config.storage.enabled {
        roles.push("storage");
    }
    if config.client.is_some() {
        roles.push("client");
    }
    roles
}
