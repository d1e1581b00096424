//! What the transport tests share: nodes on real transports, a recording actor, and a grid's
//! upload and download through a client node.
#![allow(dead_code)] // each test binary uses its own part of this

use cairn_actors::local::{LocalRequest, LocalResponse};
use cairn_actors::{Actor, Addr, Context, Input, Message, NodeKey, Service};
use cairn_codec::{convergent_key, ChkCap, EncodingParams};
use cairn_net::host::Node;
use cairn_net::transport::{Transport, TransportConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Generous: only there so that a bug hangs no test.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Shows the nodes' logs (with `RUST_LOG`, e.g. `RUST_LOG=cairn_net=debug`) in test output.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Quick retries, so that tests of reconnection do not wait long.
pub fn config() -> TransportConfig {
    TransportConfig {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        forget_after_failures: 5,
        ..TransportConfig::default()
    }
}

/// A node on a real transport, serving.
pub struct TestNode {
    pub key: NodeKey,
    pub transport: Arc<Transport>,
    pub node: Node,
}

impl TestNode {
    /// Binds `listen` for the node whose key has seed `[seed; 32]`, and serves.
    pub async fn start(seed: u8, listen: SocketAddr) -> TestNode {
        logs();
        let key = NodeKey::from_seed([seed; 32]);
        let secret = cairn_net::Furl::new_secret();
        let transport = Transport::bind(&key, secret, listen, None, config())
            .await
            .expect("bind");
        let node = Node::new(key.id(), transport.clone());
        transport.serve(node.clone());
        TestNode {
            key,
            transport,
            node,
        }
    }

    /// The address of this node's actor at `service`.
    pub fn addr(&self, service: Service) -> Addr {
        Addr::new(self.key.id(), service)
    }

    /// Stops the node's transport and actors.
    pub fn stop(&self) {
        self.transport.shutdown();
        self.node.shutdown();
    }
}

/// An actor that passes every message it gets to a channel.
pub struct Recorder(pub mpsc::UnboundedSender<(Addr, Message)>);

impl Recorder {
    /// Starts a recorder at `service` on `node`; its messages come out of the receiver.
    pub fn spawn(node: &Node, service: Service) -> mpsc::UnboundedReceiver<(Addr, Message)> {
        let (tx, rx) = mpsc::unbounded_channel();
        node.spawn(service, Box::new(Recorder(tx)))
            .expect("spawn the recorder");
        rx
    }
}

impl Actor for Recorder {
    fn handle(&mut self, input: Input, _ctx: &mut Context<'_>) {
        if let Input::Message { from, msg } = input {
            let _ = self.0.send((from, msg));
        }
    }
}

/// A message telling tests apart: an announcement list with `n` in nothing but its length.
pub fn marker(n: usize) -> Message {
    Message::Request {
        id: cairn_actors::RequestId(n as u64),
        deadline: cairn_actors::Time(0),
        body: cairn_actors::Request::List {
            si: cairn_actors::StorageIndex([n as u8; 16]),
        },
    }
}

/// Waits until the client at `client` knows `servers` storage servers.
pub async fn learn_servers(client: &Node, servers: usize) {
    loop {
        let handle = client.request(Service::Client, LocalRequest::Status).await;
        let response = handle.expect("request").response().await.expect("reply");
        let LocalResponse::Status(report) = response else {
            panic!("not a status report: {response:?}");
        };
        if report.servers.len() >= servers {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Uploads `data` through `client` with `params` and `happy`; the client's answer.
pub async fn upload(
    client: &Node,
    data: &[u8],
    params: EncodingParams,
    happy: usize,
) -> LocalResponse {
    let size = data.len() as u64;
    let key = convergent_key(b"test secret", params, size, data).expect("key");
    let request = LocalRequest::Upload {
        key,
        params,
        happy,
        size,
    };
    let handle = client.request(Service::Client, request).await;
    handle
        .expect("request")
        .upload(&mut &data[..])
        .await
        .expect("upload response")
}

/// The cap of a successful upload.
pub fn cap_of(response: LocalResponse) -> ChkCap {
    match response {
        LocalResponse::Uploaded(Ok(receipt)) => receipt.cap,
        other => panic!("upload failed: {other:?}"),
    }
}

/// Downloads `cap` through `client`: the plaintext, and the client's answer.
pub async fn download(client: &Node, cap: ChkCap) -> (Vec<u8>, LocalResponse) {
    let handle = client.request(Service::Client, LocalRequest::Download { cap });
    let mut plaintext = Vec::new();
    let response = handle
        .await
        .expect("request")
        .download(&mut plaintext)
        .await
        .expect("download response");
    (plaintext, response)
}
