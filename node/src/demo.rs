//! `cairn demo`: a whole grid in one process on loopback — an introducer, ten storage nodes
//! and a client, each with its own node directory, transport and gateway — and a file sent
//! through it, as the CLI would.

use crate::config::{ClientSection, IntroducerSection, NodeConfig, NodeSection, StorageSection};
use crate::gateway_client::GatewayClient;
use crate::runtime::{self, RunningNode};
use crate::serve::{tokio_runtime, until_stopped};
use crate::{api, config, nodedir};
use anyhow::{bail, Context, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STORAGE_NODES: usize = 10;

/// Start a grid on this machine (an introducer, 10 storage nodes and a client, in one
/// process, on 127.0.0.1), upload and download a sample file through it, and print the cap,
/// where the shares went and the throughput. With --keep the grid keeps running, so you can
/// try `cairn -d DIR/client put/get/ls` against it.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keep the grid running after the round trip, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// The sample file's size (e.g. "32 MiB").
    #[arg(long, value_name = "SIZE", default_value = "32 MiB")]
    size: String,
    /// Put the grid's node directories here (default: a temporary directory, removed at the
    /// end unless --keep).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let size = config::parse_size(&args.size).context("--size")?;
    // A temporary root unless --dir: removed at the end, or kept with --keep.
    let temporary = match &args.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("cairn-demo-").tempdir()?),
    };
    let root = match (&args.dir, &temporary) {
        (_, Some(tmp)) => tmp.path().to_owned(),
        (dir, None) => dir.clone().unwrap_or_default(),
    };
    tokio_runtime()?.block_on(async {
        let grid = start_grid(&root).await?;
        let outcome = round_trip(&grid, &root, size).await;
        if outcome.is_ok() && args.keep {
            let client = root.join("client");
            println!(
                "\nThe grid keeps running in {} (Ctrl-C stops it). Try:",
                root.display()
            );
            println!("  cairn -d {} status", client.display());
            println!("  cairn -d {} put FILE /FILE", client.display());
            println!("  cairn -d {} ls /", client.display());
            until_stopped().await?;
        }
        for node in grid {
            node.stop().await;
        }
        outcome
    })?;
    if let Some(tmp) = temporary.filter(|_| args.keep) {
        // The node directories stay for the user to look at.
        let _ = tmp.keep();
    }
    Ok(())
}

/// Creates and starts the introducer, the storage nodes and the client under `root`.
async fn start_grid(root: &Path) -> Result<Vec<RunningNode>> {
    let introducer_dir = root.join("introducer");
    nodedir::create(&introducer_dir, &introducer_config())?;
    let introducer = runtime::start(&introducer_dir).await?;
    let furl = introducer.furl().to_string();
    let mut grid = vec![introducer];
    for i in 1..=STORAGE_NODES {
        let dir = root.join(format!("storage-{i:02}"));
        nodedir::create(&dir, &member_config(&dir, &furl, true))?;
        grid.push(runtime::start(&dir).await?);
    }
    let client_dir = root.join("client");
    nodedir::create(&client_dir, &member_config(&client_dir, &furl, false))?;
    grid.push(runtime::start(&client_dir).await?);
    println!(
        "grid of {} nodes running under {}",
        grid.len(),
        root.display()
    );
    Ok(grid)
}

fn loopback() -> NodeSection {
    NodeSection {
        nickname: String::new(),
        listen: "127.0.0.1:0".parse().expect("a literal address"),
        advertise_host: None,
        gateway: "127.0.0.1:0".parse().expect("a literal address"),
    }
}

fn introducer_config() -> NodeConfig {
    NodeConfig {
        node: NodeSection {
            nickname: "introducer".to_owned(),
            ..loopback()
        },
        introducer: IntroducerSection {
            enabled: true,
            vdrive: true,
        },
        client: None,
        storage: StorageSection::default(),
        gateway: Default::default(),
        repair: Default::default(),
    }
}

fn member_config(dir: &Path, introducer: &str, storage: bool) -> NodeConfig {
    let nickname = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    NodeConfig {
        node: NodeSection {
            nickname: nickname.unwrap_or_default(),
            ..loopback()
        },
        introducer: IntroducerSection::default(),
        client: Some(ClientSection {
            introducer: introducer.to_owned(),
            shares_needed: 3,
            shares_happy: 7,
            shares_total: 10,
            request_timeout_secs: config::DEFAULT_REQUEST_TIMEOUT_SECS,
            lease_renewal: config::DEFAULT_LEASE_RENEWAL.to_owned(),
            more_introducers: Vec::new(),
        }),
        storage: StorageSection {
            enabled: storage,
            ..StorageSection::default()
        },
        gateway: Default::default(),
        repair: Default::default(),
    }
}

/// Uploads and downloads a sample file through the client's gateway and reports.
async fn round_trip(grid: &[RunningNode], root: &Path, size: u64) -> Result<()> {
    let client = grid.last().context("the grid has a client")?;
    let gateway = client.gateway_url.clone();
    let token = crate::nodedir::api_token(&client.dir)?;
    let nicknames: HashMap<String, String> = grid
        .iter()
        .map(|n| (n.node.id().to_string(), n.config.node.nickname.clone()))
        .collect();
    let sample = root.join("sample.bin");
    tokio::task::spawn_blocking(move || {
        let client = GatewayClient::new(gateway, token);
        wait_for_servers(&client)?;
        let written = write_sample(&sample, size)?;
        let started = Instant::now();
        let upload = crate::gateway_client::Upload {
            operation: "demo".into(),
            shares: Vec::new(),
        };
        let uploaded = client.upload(&mut File::open(&sample)?, Some(size), &upload)?;
        let put = started.elapsed();
        let started = Instant::now();
        let read = download_digest(&client, &uploaded.cap)?;
        let got = started.elapsed();
        if read != written {
            bail!("the file came back different: the demo found a bug");
        }
        report(&uploaded, &nicknames, size, put, got);
        Ok(())
    })
    .await?
}

/// Waits until the client knows every storage server.
fn wait_for_servers(client: &GatewayClient) -> Result<()> {
    let started = Instant::now();
    loop {
        let status: api::Status = client.get("/status", &[])?;
        if status.servers.len() >= STORAGE_NODES {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the client learned of only {} of {STORAGE_NODES} storage servers in 30 s",
                status.servers.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `size` pseudo-random bytes to `path`; their SHA-256.
fn write_sample(path: &Path, size: u64) -> Result<[u8; 32]> {
    let mut rng = ChaCha8Rng::seed_from_u64(size);
    let mut out = BufWriter::new(File::create(path)?);
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        rng.fill_bytes(&mut chunk[..n]);
        hash.update(&chunk[..n]);
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hash.finalize().into())
}

fn download_digest(client: &GatewayClient, cap: &str) -> Result<[u8; 32]> {
    let (size, body) = client.download(cap)?;
    let mut hash = Sha256::new();
    let copied = io::copy(&mut body.into_reader(), &mut HashWriter(&mut hash))?;
    if copied != size {
        bail!("the download broke off after {copied} of {size} bytes");
    }
    Ok(hash.finalize().into())
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn report(
    uploaded: &api::Uploaded,
    nicknames: &HashMap<String, String>,
    size: u64,
    put: Duration,
    get: Duration,
) {
    let rate = |d: Duration| size as f64 / d.as_secs_f64().max(1e-9) / 1e6;
    println!("\ncap: {}", uploaded.cap);
    println!(
        "\nshares ({} servers hold distinct shares):",
        uploaded.happiness
    );
    for (share, holders) in &uploaded.placement {
        let names: Vec<&str> = holders
            .iter()
            .map(|id| nicknames.get(id).map_or(id.as_str(), String::as_str))
            .collect();
        println!("  share {share:>2} -> {}", names.join(", "));
    }
    println!(
        "\nput {} in {:.2} s ({:.1} MB/s); get in {:.2} s ({:.1} MB/s); the bytes match",
        bytesize::ByteSize(size),
        put.as_secs_f64(),
        rate(put),
        get.as_secs_f64(),
        rate(get)
    );
}
