//! The authenticated transport over real TCP on 127.0.0.1: messages both ways, impostors and
//! wrong secrets refused, hostile bytes survived, reconnection after a restart, addresses
//! learnt only from the introducer, and a whole grid (introducer, ten storage servers on disk,
//! a client) uploading and downloading.
#![cfg(not(madsim))]

mod support;

use cairn_actors::client::{Client, ClientConfig};
use cairn_actors::introducer::Introducer;
use cairn_actors::local::{LocalRequest, LocalResponse};
use cairn_actors::protocol::Announcement;
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::{Message, NodeKey, Service};
use cairn_codec::EncodingParams;
use cairn_net::transport::{Furl, PeerState};
use cairn_net::{DiskShareStore, FileJournal, Outbound};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::time::Duration;
use support::{marker, Recorder, TestNode, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("an address")
}

/// Waits until `node`'s transport stands `state` with `peer`.
async fn wait_for_state(node: &TestNode, id: cairn_actors::NodeId, state: PeerState) {
    let reached = async {
        while !node
            .transport
            .peers()
            .iter()
            .any(|p| p.id == id && p.state == state)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(PATIENCE, reached)
        .await
        .unwrap_or_else(|_| panic!("never {state}: {:?}", node.transport.peers()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways() {
    let a = TestNode::start(1, any_port()).await;
    let b = TestNode::start(2, any_port()).await;
    let mut at_a = Recorder::spawn(&a.node, Service::Client);
    let mut at_b = Recorder::spawn(&b.node, Service::Storage);
    a.transport.add_peer(b.transport.furl());

    // Sent while the connection is being made: queued, then delivered.
    let (client, storage) = (a.addr(Service::Client), b.addr(Service::Storage));
    let _ = a.transport.send(client, storage, marker(1));
    let (from, msg) = timeout(PATIENCE, at_b.recv())
        .await
        .expect("delivered")
        .expect("open");
    assert_eq!(
        (from, msg),
        (client, marker(1)),
        "from the authenticated node"
    );

    // B knows A only from its connection: the reply goes back over it.
    let _ = b.transport.send(storage, client, marker(2));
    let (from, msg) = timeout(PATIENCE, at_a.recv())
        .await
        .expect("delivered")
        .expect("open");
    assert_eq!((from, msg), (storage, marker(2)));

    let a_sees = a.transport.peers();
    assert_eq!(a_sees.len(), 1);
    assert_eq!(a_sees[0].state, PeerState::Connected);
    assert_eq!(a_sees[0].address, Some(b.transport.furl().address()));
    let b_sees = b.transport.peers();
    assert_eq!(
        (b_sees[0].id, b_sees[0].state),
        (a.key.id(), PeerState::Connected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dialling_each_other_at_once_settle_on_one_connection() {
    for round in 0..5 {
        let a = TestNode::start(1, any_port()).await;
        let b = TestNode::start(2, any_port()).await;
        let mut at_a = Recorder::spawn(&a.node, Service::Client);
        let mut at_b = Recorder::spawn(&b.node, Service::Client);
        a.transport.add_peer(b.transport.furl());
        b.transport.add_peer(a.transport.furl());
        // Whichever connection each side saw first, both end up on the same one and stay
        // there: messages keep flowing both ways.
        for n in 0..20 {
            let (from_a, from_b) = (a.addr(Service::Client), b.addr(Service::Client));
            let resend = async {
                loop {
                    let _ = a.transport.send(from_a, from_b, marker(n));
                    let _ = b.transport.send(from_b, from_a, marker(n));
                    let both = async { (at_a.recv().await, at_b.recv().await) };
                    if let Ok(got) = timeout(Duration::from_millis(200), both).await {
                        return got;
                    }
                }
            };
            let (got_a, got_b) = timeout(PATIENCE, resend).await.expect("both ways");
            assert_eq!(got_a.map(|(from, _)| from), Some(from_b), "round {round}");
            assert_eq!(got_b.map(|(from, _)| from), Some(from_a), "round {round}");
        }
        wait_for_state(&a, b.key.id(), PeerState::Connected).await;
        wait_for_state(&b, a.key.id(), PeerState::Connected).await;
        a.stop();
        b.stop();
    }
}

/// Proves that nothing reached `rx` before `a`'s next, legitimate message: the first
/// message `b` gets must be that one.
async fn first_delivery_is_the_marker(a: &TestNode, b: &TestNode, rx: &mut Recv, n: usize) {
    a.transport.add_peer(b.transport.furl());
    let _ = a
        .transport
        .send(a.addr(Service::Client), b.addr(Service::Storage), marker(n));
    let (from, msg) = timeout(PATIENCE, rx.recv())
        .await
        .expect("delivered")
        .expect("open");
    assert_eq!((from, msg), (a.addr(Service::Client), marker(n)));
}

type Recv = tokio::sync::mpsc::UnboundedReceiver<(cairn_actors::Addr, Message)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_furl_naming_another_node_is_refused() {
    let a = TestNode::start(1, any_port()).await;
    let b = TestNode::start(2, any_port()).await;
    let mut at_b = Recorder::spawn(&b.node, Service::Storage);
    // A FURL with B's address and secret but C's node id: B cannot prove C's key.
    let impostor = NodeKey::from_seed([3; 32]).id();
    let forged = Furl {
        node: impostor,
        ..b.transport.furl()
    };
    a.transport.add_peer(forged);
    let to = cairn_actors::Addr::new(impostor, Service::Storage);
    let _ = a.transport.send(a.addr(Service::Client), to, marker(1));
    wait_for_state(&a, impostor, PeerState::Backoff).await;
    assert!(b.transport.peers().is_empty(), "B never admitted A");
    first_delivery_is_the_marker(&a, &b, &mut at_b, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_secret_is_refused() {
    for (n, secret) in [(1, Furl::new_secret()), (3, String::new())] {
        let a = TestNode::start(1, any_port()).await;
        let b = TestNode::start(2, any_port()).await;
        let mut at_b = Recorder::spawn(&b.node, Service::Storage);
        let wrong = Furl {
            secret,
            ..b.transport.furl()
        };
        a.transport.add_peer(wrong);
        let _ = a
            .transport
            .send(a.addr(Service::Client), b.addr(Service::Storage), marker(n));
        wait_for_state(&a, b.key.id(), PeerState::Backoff).await;
        assert!(b.transport.peers().is_empty(), "B never admitted A");
        first_delivery_is_the_marker(&a, &b, &mut at_b, n + 1).await;
        a.stop();
        b.stop();
    }
}

mod raw {
    //! A hand-made client: completes the TLS handshake and hello as a real node would, then
    //! writes whatever a test wants.
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use std::sync::Arc;
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    /// Believes any server (this client attacks it; it does not care who it is).
    #[derive(Debug)]
    struct Credulous;

    impl ServerCertVerifier for Credulous {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }
    }

    /// Connects to `furl` as the node with `key` and says hello with the FURL's secret.
    pub async fn connect(key: &NodeKey, furl: &Furl) -> TlsStream<TcpStream> {
        let pkcs8 = ed25519_dalek::SigningKey::from_bytes(&key.seed())
            .to_pkcs8_der()
            .expect("pkcs8");
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)
            .expect("key pair");
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&pair)
            .expect("cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Credulous))
            .with_client_auth_cert(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(der))
            .expect("client config");
        let tcp = TcpStream::connect(furl.address()).await.expect("connect");
        let name = ServerName::try_from("cairn.invalid").expect("a name");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        // The hello: protocol version 1 and the secret, as postcard, length-prefixed.
        let hello = postcard::to_stdvec(&(1u16, furl.secret.as_str())).expect("hello");
        tls.write_all(&(hello.len() as u32).to_be_bytes())
            .await
            .expect("write");
        tls.write_all(&hello).await.expect("write");
        tls.flush().await.expect("flush");
        let mut welcome = [0u8; 4 + 1];
        tls.read_exact(&mut welcome).await.expect("welcomed");
        tls
    }
}

/// Writes `bytes` on an admitted raw connection and checks that the node closes it.
async fn node_closes_after(b: &TestNode, bytes: &[u8]) {
    let intruder = NodeKey::from_seed([9; 32]);
    let mut tls = raw::connect(&intruder, &b.transport.furl()).await;
    tls.write_all(bytes).await.expect("write");
    tls.flush().await.expect("flush");
    let mut rest = Vec::new();
    let closed = timeout(PATIENCE, tls.read_to_end(&mut rest)).await;
    // Either a clean end or a reset: the node hung up, whatever the bytes were.
    assert!(closed.is_ok(), "the node kept the connection open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_close_that_connection_and_the_node_serves_on() {
    let a = TestNode::start(1, any_port()).await;
    let b = TestNode::start(2, any_port()).await;
    let mut at_b = Recorder::spawn(&b.node, Service::Storage);
    node_closes_after(&b, &u32::MAX.to_be_bytes()).await;
    node_closes_after(&b, &(64u32 << 20).to_be_bytes()).await;
    let mut garbage = 16u32.to_be_bytes().to_vec();
    garbage.extend([0xff; 16]);
    node_closes_after(&b, &garbage).await;
    node_closes_after(&b, &[0, 0, 0, 0]).await;
    // The listener still serves honest nodes, and nothing from the intruder was delivered.
    first_delivery_is_the_marker(&a, &b, &mut at_b, 1).await;
}

/// Binds `addr` again once the stopped node's listener has let go of it.
async fn restart(seed: u8, addr: SocketAddr) -> TestNode {
    let key = NodeKey::from_seed([seed; 32]);
    let secret = cairn_net::Furl::new_secret();
    let rebind = async {
        loop {
            let bound =
                cairn_net::Transport::bind(&key, secret.clone(), addr, None, support::config());
            match bound.await {
                Ok(transport) => return transport,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    let transport = timeout(PATIENCE, rebind)
        .await
        .expect("the port comes free");
    let node = cairn_net::Node::new(key.id(), transport.clone());
    transport.serve(node.clone());
    TestNode {
        key,
        transport,
        node,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_reconnected_on_the_same_port() {
    let a = TestNode::start(1, any_port()).await;
    let b = TestNode::start(2, any_port()).await;
    let mut at_b = Recorder::spawn(&b.node, Service::Storage);
    a.transport.add_peer(b.transport.furl());
    first_delivery_is_the_marker(&a, &b, &mut at_b, 1).await;

    let port = b.transport.local_addr();
    let old_furl = b.transport.furl();
    b.stop();
    let b = restart(2, port).await;
    let mut at_b = Recorder::spawn(&b.node, Service::Storage);
    // Its new secret: A learns it as it would from a new announcement.
    assert_ne!(b.transport.furl(), old_furl);
    a.transport.add_peer(b.transport.furl());
    // Messages sent while A notices the drop and backs off are lost: send until one lands.
    let resend = async {
        for n in 2.. {
            let (from, to) = (a.addr(Service::Client), b.addr(Service::Storage));
            let _ = a.transport.send(from, to, marker(n));
            if let Ok(Some(got)) = timeout(Duration::from_millis(50), at_b.recv()).await {
                return got;
            }
        }
        unreachable!()
    };
    let (from, _) = timeout(PATIENCE, resend).await.expect("reconnected");
    assert_eq!(from, a.addr(Service::Client));
}

/// The storage servers `node`'s client knows, once it has handled everything queued before.
async fn servers_known(node: &TestNode) -> usize {
    let handle = node.node.request(Service::Client, LocalRequest::Status);
    let handle = handle.await.expect("request");
    let response = timeout(PATIENCE, handle.response()).await;
    match response.expect("no hang").expect("reply") {
        LocalResponse::Status(report) => report.servers.len(),
        other => panic!("not a status report: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_from_a_peer_that_is_not_the_introducer_make_the_node_dial_nothing() {
    let introducer = TestNode::start(30, any_port()).await;
    let node = TestNode::start(31, any_port()).await;
    let mallory = TestNode::start(32, any_port()).await;
    let target = TestNode::start(33, any_port()).await;
    let introducer_addr = introducer.addr(Service::Introducer);
    let client = Client::new(Some(introducer_addr), None, ClientConfig::default());
    node.node
        .spawn(Service::Client, Box::new(client))
        .expect("client");
    let mut at_node = Recorder::spawn(&node.node, Service::Storage);
    // A genuine, signed announcement of a real node at its real FURL: only its sender is
    // wrong. Mallory sends it as if from an introducer service (its own).
    let furl = target.transport.furl().to_string();
    let announcements = Message::Announcements(vec![Announcement::new(&target.key, furl, 1, 1)]);
    let to = node.addr(Service::Client);
    mallory.transport.add_peer(node.transport.furl());
    let from = mallory.addr(Service::Introducer);
    let _ = mallory.transport.send(from, to, announcements.clone());
    // Frames of one connection arrive in order: once the marker is in, the announcements are
    // in the client's mailbox, and the status request queues behind them.
    let from = mallory.addr(Service::Client);
    let _ = mallory
        .transport
        .send(from, node.addr(Service::Storage), marker(1));
    let delivered = timeout(PATIENCE, at_node.recv()).await;
    delivered.expect("the marker comes").expect("open");
    assert_eq!(servers_known(&node).await, 0, "the client believed mallory");
    let target_id = target.key.id();
    let peers = node.transport.peers();
    assert!(!peers.iter().any(|p| p.id == target_id), "{peers:?}");
    assert!(
        target.transport.peers().is_empty(),
        "the node dialled the target"
    );

    // The same announcement from the introducer is believed, and the node dials the target.
    introducer.transport.add_peer(node.transport.furl());
    let _ = introducer
        .transport
        .send(introducer_addr, to, announcements);
    wait_for_state(&node, target_id, PeerState::Connected).await;
    assert_eq!(servers_known(&node).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grid_over_tcp_uploads_and_downloads_byte_exact() {
    const SERVERS: u8 = 10;
    let introducer = TestNode::start(100, any_port()).await;
    let introducer_addr = introducer.addr(Service::Introducer);
    introducer
        .node
        .spawn(Service::Introducer, Box::new(Introducer::new()))
        .expect("introducer");
    let dirs = tempfile::tempdir().expect("temp dir");
    let mut servers = Vec::new();
    for i in 0..SERVERS {
        let server = TestNode::start(i + 1, any_port()).await;
        server.transport.add_peer(introducer.transport.furl());
        let root = dirs.path().join(format!("server-{i}"));
        let store = DiskShareStore::open(root.join("shares"), None).expect("share store");
        let leases = FileJournal::open(root.join("leases")).expect("journal");
        let actor = StorageServer::new(
            NodeKey::from_seed([i + 1; 32]),
            server.transport.furl().to_string(),
            Some(introducer_addr),
            Box::new(store),
            Box::new(leases),
            StorageConfig::default(),
        );
        server
            .node
            .spawn(Service::Storage, Box::new(actor))
            .expect("server");
        servers.push(server);
    }
    let client = TestNode::start(200, any_port()).await;
    client.transport.add_peer(introducer.transport.furl());
    let actor = Client::new(Some(introducer_addr), None, ClientConfig::default());
    client
        .node
        .spawn(Service::Client, Box::new(actor))
        .expect("client");

    timeout(
        PATIENCE,
        support::learn_servers(&client.node, SERVERS.into()),
    )
    .await
    .expect("the client learns every server");
    // Four segments of 64 KiB, the last one short.
    let mut data = vec![0u8; 200_000];
    ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut data);
    let params = EncodingParams::new(3, 10, 65536).expect("params");
    let uploaded = timeout(PATIENCE, support::upload(&client.node, &data, params, 7))
        .await
        .expect("the upload finishes");
    let cap = support::cap_of(uploaded);
    let (back, response) = timeout(PATIENCE, support::download(&client.node, cap))
        .await
        .expect("the download finishes");
    assert!(
        matches!(
            response,
            cairn_actors::local::LocalResponse::Downloaded(Ok(_))
        ),
        "{response:?}"
    );
    assert!(back == data, "the download differs from the upload");
    let connected = client.transport.peers();
    let up = connected.iter().filter(|p| p.state == PeerState::Connected);
    assert_eq!(up.count(), usize::from(SERVERS) + 1, "{connected:?}");
}

/// A host that opens connections and never speaks (from 127.0.0.2) holds handshake slots: it
/// cannot hold enough of them to keep a real node (from 127.0.0.1) out, and the slots it
/// holds run out after the TLS timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_from_one_address_does_not_keep_others_out() {
    let a = TestNode::start(1, any_port()).await;
    let b = TestNode::start(2, any_port()).await;
    let target = a.transport.local_addr();
    let mut idle = Vec::new();
    for _ in 0..200 {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("127.0.0.2:0".parse().expect("an address"))
            .expect("127.0.0.2 is loopback");
        match socket.connect(target).await {
            Ok(stream) => idle.push(stream),
            Err(_) => break,
        }
    }
    assert!(
        idle.len() > 100,
        "the flood got in: {} connections",
        idle.len()
    );
    let mut at_a = Recorder::spawn(&a.node, Service::Storage);
    b.transport.add_peer(a.transport.furl());
    let (client, storage) = (b.addr(Service::Client), a.addr(Service::Storage));
    let _ = b.transport.send(client, storage, marker(7));
    let (from, msg) = timeout(PATIENCE, at_a.recv())
        .await
        .expect("the real node got through")
        .expect("open");
    assert_eq!((from, msg), (client, marker(7)));
    let b_sees = b.transport.peers();
    assert_eq!(
        (b_sees[0].dials, b_sees[0].failures),
        (1, 0),
        "in at the first dial"
    );
    // The flood's connections are closed: at once past the per-address limit, the rest at
    // the TLS timeout.
    let closed = async {
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
        }
    };
    timeout(PATIENCE, closed)
        .await
        .expect("every idle connection is closed");
}

/// A learnt address that keeps failing is forgotten (until announced again); the configured
/// introducer's never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learnt_peer_that_keeps_failing_is_forgotten_but_a_configured_one_is_kept() {
    let a = TestNode::start(1, any_port()).await;
    let gone = TestNode::start(2, any_port()).await;
    let configured = TestNode::start(3, any_port()).await;
    let (gone_furl, configured_furl) = (gone.transport.furl(), configured.transport.furl());
    gone.stop();
    configured.stop();
    drop((gone, configured));
    a.transport.learn(gone_furl.node, &gone_furl.to_string());
    a.transport.add_peer(configured_furl.clone());
    let forgotten = async {
        while a.transport.peers().iter().any(|p| p.id == gone_furl.node) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(PATIENCE, forgotten)
        .await
        .expect("the failing learnt peer is forgotten");
    // The configured peer fails past the limit too, and is kept all the while.
    let limit = u64::from(support::config().forget_after_failures);
    let past_the_limit = async {
        loop {
            let configured = a
                .transport
                .peers()
                .into_iter()
                .find(|p| p.id == configured_furl.node);
            match configured {
                Some(peer) if peer.dials > limit => return,
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                None => panic!("the configured peer was forgotten"),
            }
        }
    };
    timeout(PATIENCE, past_the_limit)
        .await
        .expect("the configured peer is dialled past the limit, and kept");
}
