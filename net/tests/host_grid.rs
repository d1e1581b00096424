//! A small grid on the tokio host: an introducer, storage servers and a client, each on its
//! own node, joined by a `LocalNetwork`; a file goes up and comes back byte-exact.

use cairn_actors::client::{Client, ClientConfig};
use cairn_actors::introducer::Introducer;
use cairn_actors::local::{LocalRequest, LocalResponse};
use cairn_actors::memstore::{MemJournal, MemShareStore};
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::{Addr, NodeId, NodeKey, Service};
use cairn_codec::{convergent_key, ChkCap, EncodingParams};
use cairn_net::host::{LocalNetwork, Node};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// Generous: only there so that a bug hangs no test.
const PATIENCE: Duration = Duration::from_secs(10);
const SERVERS: usize = 8;

struct Grid {
    client: Node,
}

/// Starts the introducer, `SERVERS` storage servers and a client.
fn grid(net: &Arc<LocalNetwork>) -> Grid {
    let introducer_node = net.add_node(NodeId([0; 32]));
    let introducer = Addr::new(introducer_node.id(), Service::Introducer);
    introducer_node
        .spawn(Service::Introducer, Box::new(Introducer::new()))
        .expect("introducer");
    for i in 0..SERVERS {
        let key = NodeKey::from_seed([i as u8 + 1; 32]);
        let node = net.add_node(key.id());
        let server = StorageServer::new(
            key,
            format!("local-storage-{i}"),
            Some(introducer),
            Box::new(MemShareStore::new(64 << 20)),
            Box::new(MemJournal::new()),
            StorageConfig::default(),
        );
        node.spawn(Service::Storage, Box::new(server))
            .expect("server");
    }
    let client = net.add_node(NodeId([0xc1; 32]));
    let actor = Client::new(Some(introducer), None, ClientConfig::default());
    client
        .spawn(Service::Client, Box::new(actor))
        .expect("client");
    Grid { client }
}

/// Waits until the client knows every server.
async fn learn_servers(client: &Node) {
    loop {
        let handle = client.request(Service::Client, LocalRequest::Status).await;
        let response = handle.expect("request").response().await.expect("reply");
        let LocalResponse::Status(report) = response else {
            panic!("not a status report: {response:?}");
        };
        if report.servers.len() == SERVERS {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn upload(client: &Node, data: &[u8]) -> ChkCap {
    let params = EncodingParams::new(3, 10, 4096).expect("params");
    let size = data.len() as u64;
    let key = convergent_key(b"test secret", params, size, data).expect("key");
    let request = LocalRequest::Upload {
        key,
        params,
        happy: 7,
        size,
    };
    let handle = client.request(Service::Client, request).await;
    let response = handle.expect("request").upload(&mut &data[..]).await;
    match response.expect("upload response") {
        LocalResponse::Uploaded(Ok(receipt)) => {
            assert!(receipt.happiness >= 7, "{receipt:?}");
            receipt.cap
        }
        other => panic!("upload failed: {other:?}"),
    }
}

async fn download(client: &Node, cap: ChkCap) -> Vec<u8> {
    let handle = client.request(Service::Client, LocalRequest::Download { cap });
    let mut plaintext = Vec::new();
    let response = handle
        .await
        .expect("request")
        .download(&mut plaintext)
        .await;
    match response.expect("download response") {
        LocalResponse::Downloaded(Ok(receipt)) => {
            assert_eq!(receipt.bytes, plaintext.len() as u64);
            plaintext
        }
        other => panic!("download failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_goes_up_and_comes_back() {
    let net = LocalNetwork::new();
    let grid = grid(&net);
    let mut data = vec![0u8; 100_000];
    ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut data);
    let client = &grid.client;
    timeout(PATIENCE, learn_servers(client))
        .await
        .expect("the client learns every server");
    let cap = timeout(PATIENCE, upload(client, &data))
        .await
        .expect("the upload finishes");
    let back = timeout(PATIENCE, download(client, cap))
        .await
        .expect("the download finishes");
    assert!(back == data, "the download differs from the upload");
}
