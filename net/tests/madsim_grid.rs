//! The real transport and actor host on madsim's simulated TCP and clock: a grid of an
//! introducer, five storage nodes and a client, each a simulated machine with its own IP
//! address, under link clogging, node kills and restarts. Every run repeats exactly from its
//! seed (`MADSIM_TEST_SEED`; madsim prints it when a test fails).
//!
//! Run with `RUSTFLAGS="--cfg madsim" cargo test -p cairn-net --test madsim_grid
//! --target-dir target/madsim`. The 10.0.0.x addresses exist only inside the simulation.
#![cfg(madsim)]

mod support;

use cairn_actors::client::{Client, ClientConfig};
use cairn_actors::introducer::Introducer;
use cairn_actors::local::{DownloadError, LocalResponse, UploadError};
use cairn_actors::memstore::{MemJournal, MemShareStore};
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::{Addr, NodeKey, Service};
use cairn_codec::{ChkCap, EncodingParams};
use cairn_net::host::Node;
use cairn_net::transport::{Furl, Transport};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const SERVERS: usize = 5;
const PORT: u16 = 4000;
/// Simulated seconds a step of a scenario may take before the test calls it a hang.
const STEP: Duration = Duration::from_secs(600);

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, host))
}

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed([seed; 32])
}

/// A fixed secret per node, so that a restarted node keeps its FURL.
fn secret(seed: u8) -> String {
    cairn_codec::base32::encode(&[seed; 20])
}

fn furl(seed: u8, host: u8) -> Furl {
    Furl {
        node: key(seed).id(),
        host: ip(host).to_string(),
        port: PORT,
        secret: secret(seed),
    }
}

const INTRODUCER: u8 = 100;
const CLIENT: u8 = 200;

fn introducer_addr() -> Addr {
    Addr::new(key(INTRODUCER).id(), Service::Introducer)
}

/// Binds the node `seed` on its simulated address, and serves.
async fn start(seed: u8, host: u8) -> (std::sync::Arc<Transport>, Node) {
    let listen = SocketAddr::new(ip(host), PORT);
    let transport = Transport::bind(&key(seed), secret(seed), listen, None, support::config())
        .await
        .expect("bind");
    let node = Node::new(key(seed).id(), transport.clone());
    if seed != INTRODUCER {
        transport.add_peer(furl(INTRODUCER, 1));
    }
    transport.serve(node.clone());
    (transport, node)
}

/// A simulated machine running a storage server whose shares and leases live outside it,
/// so that they survive its kills and restarts.
fn storage_machine(handle: &Handle, i: u8) -> NodeHandle {
    let (store, leases) = (MemShareStore::new(1 << 30), MemJournal::new());
    let (seed, host) = (i + 1, i + 2);
    handle
        .create_node()
        .name(format!("storage-{i}"))
        .ip(ip(host))
        .init(move || {
            let (store, leases) = (store.clone(), leases.clone());
            async move {
                let (transport, node) = start(seed, host).await;
                let config = StorageConfig {
                    announce_interval: Duration::from_secs(10),
                    ..StorageConfig::default()
                };
                let server = StorageServer::new(
                    key(seed),
                    transport.furl().to_string(),
                    Some(introducer_addr()),
                    Box::new(store),
                    Box::new(leases),
                    config,
                );
                node.spawn(Service::Storage, Box::new(server))
                    .expect("storage server");
                std::future::pending::<()>().await;
            }
        })
        .build()
}

/// The simulated grid: machines, and the client's actor host.
struct Grid {
    handle: Handle,
    servers: Vec<NodeHandle>,
    client_machine: NodeHandle,
    client: Node,
}

impl Grid {
    async fn start() -> Grid {
        support::logs();
        let handle = Handle::current();
        handle
            .create_node()
            .name("introducer")
            .ip(ip(1))
            .init(|| async {
                let (_transport, node) = start(INTRODUCER, 1).await;
                node.spawn(Service::Introducer, Box::new(Introducer::new()))
                    .expect("introducer");
                std::future::pending::<()>().await;
            })
            .build();
        let servers = (0..SERVERS as u8)
            .map(|i| storage_machine(&handle, i))
            .collect();
        let client_machine = handle.create_node().name("client").ip(ip(10)).build();
        let client = client_machine
            .spawn(async {
                let (_transport, node) = start(CLIENT, 10).await;
                let config = ClientConfig {
                    resubscribe_interval: Duration::from_secs(10),
                    ..ClientConfig::default()
                };
                let actor = Client::new(Some(introducer_addr()), None, config);
                node.spawn(Service::Client, Box::new(actor))
                    .expect("client");
                node
            })
            .await
            .expect("the client starts");
        let grid = Grid {
            handle,
            servers,
            client_machine,
            client,
        };
        grid.on_client(|client| async move {
            support::learn_servers(&client, SERVERS).await;
        })
        .await;
        grid
    }

    /// Runs `work` with the client's host, as a task of the client's machine.
    async fn on_client<F, T>(&self, work: impl FnOnce(Node) -> F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.client_machine.spawn(work(self.client.clone()));
        madsim::time::timeout(STEP, task)
            .await
            .expect("the step ends in time")
            .expect("the step does not panic")
    }

    async fn upload(&self, data: &[u8], happy: usize) -> LocalResponse {
        let data = data.to_vec();
        self.on_client(move |client| async move {
            let params = EncodingParams::new(2, 5, 16 << 10).expect("params");
            support::upload(&client, &data, params, happy).await
        })
        .await
    }

    async fn download(&self, cap: ChkCap) -> (Vec<u8>, LocalResponse) {
        self.on_client(move |client| async move { support::download(&client, cap).await })
            .await
    }

    /// Clogs the links both ways between the client and storage servers `which`.
    fn clog(&self, which: &[usize], clogged: bool) {
        let net = NetSim::current();
        let client = self.client_machine.id();
        for &i in which {
            let server = self.servers[i].id();
            if clogged {
                net.clog_link(client, server);
                net.clog_link(server, client);
            } else {
                net.unclog_link(client, server);
                net.unclog_link(server, client);
            }
        }
    }

    fn kill(&self, which: &[usize]) {
        for &i in which {
            self.handle.kill(self.servers[i].id());
        }
    }

    fn restart(&self, which: &[usize]) {
        for &i in which {
            self.handle.restart(self.servers[i].id());
        }
    }
}

/// A file of three segments and a bit, the same for every run.
fn file() -> Vec<u8> {
    let mut data = vec![0u8; 50_000];
    ChaCha8Rng::seed_from_u64(11).fill_bytes(&mut data);
    data
}

fn downloaded(response: &LocalResponse) -> bool {
    matches!(response, LocalResponse::Downloaded(Ok(_)))
}

#[madsim::test]
async fn a_file_goes_up_and_comes_back() {
    let grid = Grid::start().await;
    let data = file();
    let cap = support::cap_of(grid.upload(&data, 4).await);
    let (back, response) = grid.download(cap).await;
    assert!(downloaded(&response), "{response:?}");
    assert!(back == data, "the download differs from the upload");
}

#[madsim::test]
async fn an_upload_through_clogged_links_is_happy_or_says_why_not() {
    let grid = Grid::start().await;
    let data = file();
    grid.clog(&[0, 1], true);
    // Three servers answer: happiness 3 is reachable, 4 is not.
    let happy = grid.upload(&data, 3).await;
    let unhappy = grid.upload(&data, 4).await;
    grid.clog(&[0, 1], false);
    let cap = support::cap_of(happy);
    match unhappy {
        LocalResponse::Uploaded(Err(UploadError::NotHappy { happy: 4, .. })) => {}
        other => panic!("three servers reachable, happy=4 should be NotHappy: {other:?}"),
    }
    let (back, response) = grid.download(cap).await;
    assert!(downloaded(&response), "{response:?}");
    assert!(back == data);
}

#[madsim::test]
async fn downloads_survive_two_kills_fail_typed_after_four_and_recover_on_restart() {
    let grid = Grid::start().await;
    let data = file();
    let cap = support::cap_of(grid.upload(&data, 5).await);

    grid.kill(&[0, 1]);
    let (back, response) = grid.download(cap.clone()).await;
    assert!(downloaded(&response), "3 of 5 servers, k=2: {response:?}");
    assert!(back == data);

    grid.kill(&[2, 3]);
    let (_, response) = grid.download(cap.clone()).await;
    match response {
        LocalResponse::Downloaded(Err(DownloadError::NotEnoughShares { needed: 2, .. })) => {}
        other => panic!("1 of 5 servers, k=2, should be NotEnoughShares: {other:?}"),
    }

    // Long enough down for the client to give up on them (5 failed dials each).
    madsim::time::sleep(Duration::from_secs(30)).await;
    grid.restart(&[0, 1, 2, 3]);
    // The restarted servers come back on their old addresses, with their shares. Each
    // announces its restart, which the introducer passes on at once, and the client dials
    // it then: it does not wait for its backoff (the client had forgotten these servers,
    // after 5 failed dials each) nor for its next resubscription (every 10 s).
    let restarted = madsim::time::Instant::now();
    let recovered = grid
        .on_client(move |client| async move {
            // A download started while servers are still down waits on its requests to
            // them until they time out (60 s here); give the restarts a second.
            madsim::time::sleep(Duration::from_secs(1)).await;
            loop {
                let (back, response) = support::download(&client, cap.clone()).await;
                if downloaded(&response) {
                    return back;
                }
                madsim::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
    assert!(recovered == data);
    let took = restarted.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the client reached the restarted servers {took:?} (simulated) after they restarted"
    );
}

#[madsim::test]
async fn requests_to_servers_known_down_are_answered_at_once() {
    let grid = Grid::start().await;
    let data = file();
    let cap = support::cap_of(grid.upload(&data, 5).await);
    grid.kill(&[0, 1]);
    // The client's connections to them drop, and its redials fail: it knows they are down.
    madsim::time::sleep(Duration::from_secs(5)).await;

    // Three servers answer; the two known down are not waited for (the client's request
    // timeout is 60 s here): the upload fails at once, saying why, and a download succeeds
    // from the three.
    let started = madsim::time::Instant::now();
    let other = {
        let mut other = data.clone();
        other[0] ^= 1;
        other
    };
    match grid.upload(&other, 5).await {
        LocalResponse::Uploaded(Err(UploadError::NotHappy { happy: 5, .. })) => {}
        other => panic!("two of five servers down, happy=5: {other:?}"),
    }
    let (back, response) = grid.download(cap).await;
    assert!(downloaded(&response), "{response:?}");
    assert!(back == data);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{took:?} (simulated): requests to servers known down were waited for"
    );
}

/// One scenario's outcome: what was placed where, what came back, and when (in simulated
/// nanoseconds), hashed.
async fn scenario_digest() -> String {
    let grid = Grid::start().await;
    let start = madsim::time::Instant::now();
    let data = file();
    let uploaded = grid.upload(&data, 4).await;
    let after_upload = start.elapsed();
    grid.kill(&[0]);
    grid.clog(&[1], true);
    let LocalResponse::Uploaded(Ok(receipt)) = &uploaded else {
        panic!("upload failed: {uploaded:?}");
    };
    let (back, response) = grid.download(receipt.cap.clone()).await;
    let after_download = start.elapsed();
    let mut hash = Sha256::new();
    for part in [
        format!("{:?}", receipt.placement),
        format!("{response:?}"),
        format!("{after_upload:?} {after_download:?}"),
    ] {
        hash.update(part.as_bytes());
    }
    hash.update(&back);
    cairn_codec::base32::encode(&hash.finalize())
}

#[test]
fn the_same_seed_gives_the_same_run() {
    // Each run on a fresh thread, as madsim's own check does: std's hash maps draw their
    // keys per thread.
    let run = |seed| {
        std::thread::spawn(move || {
            let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
            runtime.block_on(scenario_digest())
        })
        .join()
        .expect("the scenario runs")
    };
    let (first, second) = (run(7), run(7));
    assert_eq!(first, second, "seed 7 ran two different ways");
    // madsim's own check: every random draw of a second run matches the first's.
    madsim::runtime::Runtime::check_determinism(8, Default::default(), scenario_digest);
}
