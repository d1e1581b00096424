//! `cairn create-introducer` and `cairn create-node`: new node directories.

use crate::config::{
    ClientSection, IntroducerSection, NodeConfig, NodeSection, Shares, StorageSection,
};
use crate::nodedir;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where new nodes listen unless told otherwise: loopback, a port the OS picks.
const LOOPBACK_ANY_PORT: &str = "127.0.0.1:0";

/// Make the node directory of a grid's introducer (and, unless --no-vdrive, its vdrive).
/// Start it with `cairn run DIR`; it then writes DIR/introducer.furl, which storage nodes
/// and clients are created with.
#[derive(clap::Args)]
pub struct CreateIntroducerArgs {
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Do not run the vdrive (the grid's shared directory tree) on this node.
    #[arg(long)]
    no_vdrive: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// Make the node directory of a storage node and client (or, with --no-storage, a client
/// only). Start it with `cairn run DIR`; use it with `cairn -d DIR put/get/ls/...`.
#[derive(clap::Args)]
pub struct CreateNodeArgs {
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The grid's introducer FURL (from the introducer's introducer.furl). Give it more than
    /// once for a grid with several introducers: the node learns of servers while any one is
    /// up (the first one's node keeps the node's directories).
    #[arg(long, value_name = "FURL", required = true)]
    introducer: Vec<String>,
    /// Store no shares for the grid: a client only.
    #[arg(long)]
    no_storage: bool,
    #[command(flatten)]
    shares: SharesArgs,
    /// Disk space the storage server leaves free (e.g. "1 GB", "500 MiB").
    #[arg(long, value_name = "SIZE", default_value = "1 GB")]
    reserved_space: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args)]
struct CommonArgs {
    /// A name for the node, shown in status output (default: the directory's name).
    #[arg(long, value_name = "NAME")]
    nickname: Option<String>,
    /// Where the node listens for other nodes; port 0 picks one once and keeps it.
    #[arg(long, value_name = "ADDR", default_value = LOOPBACK_ANY_PORT)]
    listen: SocketAddr,
    /// The host other nodes should dial (default: the listen address's IP).
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<String>,
    /// Where the local HTTP gateway listens (keep it on loopback: it grants full access).
    #[arg(long, value_name = "ADDR", default_value = LOOPBACK_ANY_PORT)]
    gateway: SocketAddr,
}

impl CommonArgs {
    fn node_section(&self, dir: &Path) -> NodeSection {
        let nickname = self.nickname.clone().unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "cairn".to_owned())
        });
        NodeSection {
            nickname,
            listen: self.listen,
            advertise_host: self.advertise_host.clone(),
            gateway: self.gateway,
        }
    }
}

pub fn create_introducer(args: CreateIntroducerArgs) -> Result<()> {
    let config = introducer_config(&args.dir, &args);
    nodedir::create(&args.dir, &config)?;
    println!(
        "created introducer in {dir}; start it with `cairn run {dir}`: it writes its FURL to \
         {dir}/introducer.furl",
        dir = args.dir.display()
    );
    Ok(())
}

fn introducer_config(dir: &Path, args: &CreateIntroducerArgs) -> NodeConfig {
    NodeConfig {
        node: args.common.node_section(dir),
        introducer: IntroducerSection {
            enabled: true,
            vdrive: !args.no_vdrive,
        },
        client: None,
        storage: StorageSection::default(),
        gateway: Default::default(),
        repair: Default::default(),
    }
}

pub fn create_node(args: CreateNodeArgs) -> Result<()> {
    for furl in &args.introducer {
        furl.parse::<cairn_net::transport::Furl>()
            .with_context(|| format!("--introducer {furl:?}"))?;
    }
    let (first, more) = args
        .introducer
        .split_first()
        .expect("clap requires one --introducer");
    let shares = args.shares.over(Shares::DEFAULT);
    let config = NodeConfig {
        node: args.common.node_section(&args.dir),
        introducer: IntroducerSection::default(),
        client: Some(ClientSection {
            introducer: first.clone(),
            more_introducers: more.to_vec(),
            shares_needed: shares.needed,
            shares_happy: shares.happy,
            shares_total: shares.total,
            request_timeout_secs: crate::config::DEFAULT_REQUEST_TIMEOUT_SECS,
            lease_renewal: crate::config::DEFAULT_LEASE_RENEWAL.to_owned(),
        }),
        storage: StorageSection {
            enabled: !args.no_storage,
            reserved_space: args.reserved_space.clone(),
            ..StorageSection::default()
        },
        gateway: Default::default(),
        repair: Default::default(),
    };
    nodedir::create(&args.dir, &config)?;
    println!(
        "created node in {dir}; start it with `cairn run {dir}`",
        dir = args.dir.display()
    );
    Ok(())
}

/// How files are encoded: any of k, happy and N; the others follow (see [`Shares::with`]).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct SharesArgs {
    /// Shares needed to rebuild a file (k). Default 3 (fewer if N is smaller).
    #[arg(long, value_name = "K")]
    pub shares_needed: Option<usize>,
    /// Servers that must hold distinct shares for an upload to succeed. Default 7, within
    /// k..=N.
    #[arg(long, value_name = "H")]
    pub shares_happy: Option<usize>,
    /// Shares made of each file (N). Default 10 (k if k is larger).
    #[arg(long, value_name = "N")]
    pub shares_total: Option<usize>,
}

impl SharesArgs {
    /// The shares given, over `defaults`.
    pub fn over(self, defaults: Shares) -> Shares {
        defaults.with(self.shares_needed, self.shares_happy, self.shares_total)
    }

    /// The values given, as the gateway's `PUT /uri` query takes them.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        [
            ("shares_needed", self.shares_needed),
            ("shares_happy", self.shares_happy),
            ("shares_total", self.shares_total),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v.to_string())))
        .collect()
    }
}
