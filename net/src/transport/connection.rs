//! One connection's life: the dialler's and the acceptor's handshakes (TLS, then the hello
//! with the FURL's secret), then a reader and a writer until either fails.

use super::frame::PROTOCOL_VERSION;
use super::frame::{self, Frame, FrameError, Hello, Welcome, MAX_HANDSHAKE_FRAME};
use super::furl::Furl;
use super::queue::Outgoing;
use super::tls::Identity;
use super::verifier::node_id_of;
use super::TransportConfig;
use cairn_actors::NodeId;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::time::timeout;
use tokio_rustls::TlsStream;

/// A connection whose peer has proved its key (and, if it dialled, shown the right secret).
pub struct Established {
    /// The peer: the node whose key it proved.
    pub peer: NodeId,
    /// Which side dialled.
    pub dialled_by: NodeId,
    /// The peer's socket address.
    pub remote: SocketAddr,
    pub stream: TlsStream<TcpStream>,
}

/// Why a connection could not be made, or ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// TCP or TLS failed (for a dialler, this includes a peer whose key is not the one its
    /// FURL names).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Connecting, the handshake or the hello took longer than the connect timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The acceptor closed the connection instead of welcoming us: our secret (from its
    /// FURL) is wrong, or it already has a connection to us.
    #[error("the peer refused our hello (wrong secret in its FURL, or a duplicate connection)")]
    Refused,
    /// The dialler showed a secret that is not this node's.
    #[error("wrong secret in the hello: the caller's FURL for this node is stale or forged")]
    WrongSecret,
    /// The peer speaks another version of this protocol.
    #[error("the peer speaks protocol version {0}; this node speaks {PROTOCOL_VERSION}")]
    Version(u16),
    /// The peer sent no certificate (rustls should have refused it already).
    #[error("the peer sent no certificate")]
    NoCertificate,
    /// TLS set-up failed on our side.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A bad frame, or the stream failed inside one.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// Nothing came from the peer, not even a keepalive, for this long.
    #[error("the peer sent nothing for {0:?}")]
    Idle(Duration),
}

impl LinkError {
    /// Whether the error suggests a misbehaving or impostor peer (worth a warning), rather
    /// than one that is down or unreachable.
    pub fn is_suspicious(&self) -> bool {
        match self {
            LinkError::Io(error) => error.kind() == std::io::ErrorKind::InvalidData,
            LinkError::WrongSecret | LinkError::Version(_) | LinkError::NoCertificate => true,
            LinkError::Frame(FrameError::TooLarge { .. } | FrameError::Malformed(_)) => true,
            _ => false,
        }
    }
}

/// Dials `furl` as node `me`: connects, checks the peer's key against the FURL's node id,
/// shows the FURL's secret, and waits to be welcomed.
pub async fn dial(
    identity: &Identity,
    me: NodeId,
    furl: &Furl,
    config: &TransportConfig,
) -> Result<Established, LinkError> {
    let dialling = async {
        let tcp = TcpStream::connect(furl.address()).await?;
        tcp.set_nodelay(true)?;
        let remote = tcp.peer_addr()?;
        let connector = identity.connector(furl.node)?;
        let mut tls = connector.connect(Identity::server_name(), tcp).await?;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            secret: furl.secret.clone(),
        };
        frame::write_value(&mut tls, &hello, MAX_HANDSHAKE_FRAME).await?;
        let welcome: Welcome = frame::read_value(&mut tls, MAX_HANDSHAKE_FRAME)
            .await
            .map_err(|_| LinkError::Refused)?;
        if welcome.version != PROTOCOL_VERSION {
            return Err(LinkError::Version(welcome.version));
        }
        Ok(Established {
            peer: furl.node,
            dialled_by: me,
            remote,
            stream: TlsStream::Client(tls),
        })
    };
    let patience = config.connect_timeout;
    timeout(patience, dialling)
        .await
        .map_err(|_| LinkError::Timeout(patience))?
}

/// Takes an incoming connection: the TLS handshake (the caller proves some key), then the
/// caller's hello, which must carry `secret`. On an error, the peer's id if it got that far.
pub async fn accept(
    identity: &Identity,
    tcp: TcpStream,
    remote: SocketAddr,
    secret: &str,
    config: &TransportConfig,
) -> Result<Established, (Option<NodeId>, LinkError)> {
    let mut peer = None;
    let accepting = async {
        tcp.set_nodelay(true)?;
        // A caller that connects and then says nothing holds a handshake slot: it gets a
        // short while for TLS, not the whole connect timeout.
        let quick = config.tls_timeout;
        let mut tls = timeout(quick, identity.acceptor().accept(tcp))
            .await
            .map_err(|_| LinkError::Timeout(quick))??;
        let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
        let id = node_id_of(cert.ok_or(LinkError::NoCertificate)?)?;
        peer = Some(id);
        let hello: Hello = frame::read_value(&mut tls, MAX_HANDSHAKE_FRAME).await?;
        if hello.version != PROTOCOL_VERSION {
            return Err(LinkError::Version(hello.version));
        }
        if !bool::from(hello.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(LinkError::WrongSecret);
        }
        Ok(Established {
            peer: id,
            dialled_by: id,
            remote,
            stream: TlsStream::Server(tls),
        })
    };
    let patience = config.connect_timeout;
    match timeout(patience, accepting).await {
        Ok(Ok(established)) => Ok(established),
        Ok(Err(error)) => Err((peer, error)),
        Err(_) => Err((peer, LinkError::Timeout(patience))),
    }
}

/// What an established connection's reader does with each message.
pub trait Inbox: Send + Sync {
    /// Handles a frame from `peer`; returns once it has been handed on (awaiting room in the
    /// receiving actor's mailbox, which is how a slow node slows its senders).
    fn receive(&self, peer: NodeId, frame: Frame) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs an admitted connection until it fails or ends: welcomes the dialler first if this
/// side accepted it, then reads frames into `inbox` and writes the peer's queued frames.
pub async fn run<I: Inbox>(
    link: Established,
    welcome: bool,
    queue: Arc<Mutex<mpsc::Receiver<Outgoing>>>,
    inbox: &I,
    config: &TransportConfig,
) -> Result<(), LinkError> {
    let peer = link.peer;
    let mut stream = link.stream;
    if welcome {
        let hi = Welcome {
            version: PROTOCOL_VERSION,
        };
        frame::write_value(&mut stream, &hi, MAX_HANDSHAKE_FRAME).await?;
    }
    let (reader, writer) = tokio::io::split(stream);
    // `biased`: poll in a fixed order rather than tokio's random one, which draws on
    // process-wide state that a simulation cannot seed.
    tokio::select! {
        biased;
        read = read_loop(reader, peer, inbox, config) => read,
        written = write_loop(writer, queue, (config.keepalive, config.write_timeout)) => written,
    }
}

async fn read_loop<R: AsyncRead + Unpin, I: Inbox>(
    mut reader: ReadHalf<R>,
    peer: NodeId,
    inbox: &I,
    config: &TransportConfig,
) -> Result<(), LinkError> {
    loop {
        let next = timeout(
            config.idle_timeout,
            frame::read(&mut reader, config.max_frame),
        );
        let body = match next.await {
            Err(_) => return Err(LinkError::Idle(config.idle_timeout)),
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(error)) => return Err(error.into()),
        };
        match frame::decode::<Frame>(&body)? {
            Frame::Ping => {}
            frame => inbox.receive(peer, frame).await,
        }
    }
}

/// Writes the peer's queued frames (a keepalive when there are none) until the queue closes.
/// A peer that stops reading stalls the writes: after `patience` without progress the
/// connection is closed, and what was queued for the peer is given back.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: WriteHalf<W>,
    queue: Arc<Mutex<mpsc::Receiver<Outgoing>>>,
    (keepalive, patience): (Duration, Duration),
) -> Result<(), LinkError> {
    let ping = frame::encode(&Frame::Ping, MAX_HANDSHAKE_FRAME)?;
    let mut queue = queue.lock_owned().await;
    loop {
        let written = async {
            match timeout(keepalive, queue.recv()).await {
                Err(_) => writer.write_all(&ping).await?,
                Ok(None) => return Ok(false),
                Ok(Some(first)) => {
                    writer.write_all(&first.bytes).await?;
                    // Write whatever else is queued before flushing: fewer, fuller records.
                    while let Ok(next) = queue.try_recv() {
                        writer.write_all(&next.bytes).await?;
                    }
                }
            }
            writer.flush().await?;
            Ok::<bool, LinkError>(true)
        };
        match timeout(keepalive + patience, written).await {
            Err(_) => return Err(LinkError::Timeout(patience)),
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Ok(()),
            Ok(Err(error)) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::queue::{shared_budget, Queue};

    /// A peer that stops reading holds a writer for its patience, and no longer: then the
    /// connection ends, and with it what its queue held.
    #[tokio::test]
    async fn a_writer_stalled_by_a_peer_that_never_reads_gives_up() {
        let (ours, _theirs) = tokio::io::duplex(4096); // `_theirs` is never read
        let (_, writer) = tokio::io::split(ours);
        let queue = Queue::new(16, 1 << 20, shared_budget(1 << 20));
        for _ in 0..4 {
            queue.push(vec![7; 64 << 10]).expect("room in the queue");
        }
        // Short, so that the test is quick; the defaults are 20 s and 30 s.
        let patience = Duration::from_millis(100);
        let keepalive = Duration::from_millis(50);
        let ended = write_loop(writer, queue.receiver(), (keepalive, patience)).await;
        assert!(
            matches!(ended, Err(LinkError::Timeout(p)) if p == patience),
            "{ended:?}"
        );
    }

    /// A peer that reads, however slowly within its patience, keeps its connection.
    #[tokio::test]
    async fn a_writer_whose_peer_reads_keeps_writing() {
        use tokio::io::AsyncReadExt;
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let (_, writer) = tokio::io::split(ours);
        let queue = Queue::new(16, 1 << 20, shared_budget(1 << 20));
        for _ in 0..4 {
            queue.push(vec![7; 64 << 10]).expect("room in the queue");
        }
        let reader = tokio::spawn(async move {
            let mut buf = vec![0; 4 << 10 << 10];
            let mut total = 0;
            while total < 4 * (64 << 10) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                total += theirs.read(&mut buf).await.expect("read");
            }
            total
        });
        let writer = tokio::spawn(write_loop(
            writer,
            queue.receiver(),
            (Duration::from_secs(20), Duration::from_secs(30)),
        ));
        assert_eq!(reader.await.expect("reader"), 4 * (64 << 10));
        assert!(
            !writer.is_finished(),
            "the writer is still up, waiting for frames"
        );
        writer.abort();
    }
}
