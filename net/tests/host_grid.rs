//! A small grid on the tokio host: an introducer, storage servers and a client, each on its
//! own node, joined by a `LocalNetwork`; a file goes up and comes back byte-exact.

use cairn_actors::client::{Client, ClientConfig};
use cairn_actors::introducer::Introducer;
use cairn_actors::local::LocalResponse;
use cairn_actors::memstore::{MemJournal, MemShareStore};
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::{Addr, NodeId, NodeKey, Service};
use cairn_codec::EncodingParams;
use cairn_net::host::{LocalNetwork, Node};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use support::{download, learn_servers, upload, PATIENCE};
use tokio::time::timeout;

mod support;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_goes_up_and_comes_back() {
    let net = LocalNetwork::new();
    let grid = grid(&net);
    let mut data = vec![0u8; 100_000];
    ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut data);
    let client = &grid.client;
    timeout(PATIENCE, learn_servers(client, SERVERS))
        .await
        .expect("the client learns every server");
    let params = EncodingParams::new(3, 10, 4096).expect("params");
    let uploaded = timeout(PATIENCE, upload(client, &data, params, 7))
        .await
        .expect("the upload finishes");
    let LocalResponse::Uploaded(Ok(receipt)) = uploaded else {
        panic!("upload failed: {uploaded:?}");
    };
    assert!(receipt.happiness >= 7, "{receipt:?}");
    let (back, downloaded) = timeout(PATIENCE, download(client, receipt.cap))
        .await
        .expect("the download finishes");
    let LocalResponse::Downloaded(Ok(got)) = downloaded else {
        panic!("download failed: {downloaded:?}");
    };
    assert_eq!(got.bytes, back.len() as u64);
    assert!(back == data, "the download differs from the upload");
}
