//! What travels on a connection once TLS is up: length-prefixed postcard frames.
//!
//! Every frame is a `u32` big-endian length followed by that many bytes of postcard. The
//! first frame from the dialler is a [`Hello`] (the secret of the FURL it dialled), answered
//! by a [`Welcome`] if the secret was right; after that both sides send [`Frame`]s: a message
//! between two services, or a keepalive [`Frame::Ping`]. The sending node is never in a
//! frame: it is the peer that proved its key in the handshake.
//!
//! A reader checks the length against its limit before allocating anything, and refuses a
//! frame with bytes left over after its value: either closes the connection.

use cairn_actors::{Message, Service};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The version of this protocol, sent in the [`Hello`] and [`Welcome`].
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest hello or welcome frame.
pub const MAX_HANDSHAKE_FRAME: usize = 512;
/// Bytes in the length prefix.
const PREFIX: usize = 4;

/// The dialler's first frame: which protocol it speaks and the secret of the FURL it dialled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub secret: String,
}

/// The acceptor's answer to a good [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
}

/// A frame after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// `msg` from the peer's actor at service `from` to this node's actor at service `to`.
    Deliver {
        from: Service,
        to: Service,
        msg: Message,
    },
    /// Nothing: sent when a connection is idle, so that a dead peer is noticed.
    Ping,
}

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended inside a frame.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// A length prefix over the limit.
    #[error("the peer announced a {len}-byte frame; the limit is {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// A frame that is not what it should be.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes `value` as one frame, prefix included; refuses one larger than `max` bytes.
pub fn encode<T: Serialize>(value: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let bytes = postcard::to_extend(value, vec![0u8; PREFIX])
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = bytes.len() - PREFIX;
    let prefix = u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or(FrameError::TooLarge { len, max })?;
    let mut bytes = bytes;
    bytes[..PREFIX].copy_from_slice(&prefix.to_be_bytes());
    Ok(bytes)
}

/// Decodes a frame's body (without its prefix) as exactly one `T`.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        let extra = rest.len();
        Err(FrameError::Malformed(format!(
            "{extra} bytes after the frame's value"
        )))
    }
}

/// Reads one frame's body; `None` if the stream ended cleanly before a frame began.
pub async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; PREFIX];
    // A peer that closes without TLS's close_notify ends the stream with an error; between
    // frames, that is an ordinary close.
    let first = match reader.read(&mut prefix).await {
        Ok(n) => n,
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => 0,
        Err(error) => return Err(error.into()),
    };
    if first == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut prefix[first..]).await?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Reads one frame and decodes it as a `T`; a clean end of stream is an error here.
pub async fn read_value<R, T>(reader: &mut R, max: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    match read(reader, max).await? {
        Some(body) => decode(&body),
        None => Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Writes `value` as one frame and flushes it.
pub async fn write_value<W, T>(writer: &mut W, value: &T, max: usize) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    writer.write_all(&encode(value, max)?).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_actors::protocol::{Request, RequestId};
    use cairn_actors::{OpId, StorageIndex, Time};
    use proptest::prelude::*;

    fn deliver(data: Vec<u8>) -> Frame {
        Frame::Deliver {
            from: Service::Upload(OpId(3)),
            to: Service::Storage,
            msg: Message::Request {
                id: RequestId(9),
                deadline: Time(77),
                body: Request::List {
                    si: StorageIndex([data.len() as u8; 16]),
                },
            },
        }
    }

    async fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Option<Vec<u8>>, String>> {
        let mut reader = bytes;
        let mut out = Vec::new();
        loop {
            let next = read(&mut reader, max).await.map_err(|e| e.to_string());
            let done = !matches!(next, Ok(Some(_)));
            out.push(next);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_round_trip_back_to_back() {
        let frames = [deliver(vec![1; 10]), Frame::Ping, deliver(vec![])];
        let mut wire = Vec::new();
        for frame in &frames {
            wire.extend(encode(frame, 1 << 20).expect("encode"));
        }
        let read = read_all(&wire, 1 << 20).await;
        assert_eq!(read.len(), frames.len() + 1, "{read:?}");
        for (frame, body) in frames.iter().zip(&read) {
            let body = body.clone().expect("read").expect("a frame");
            assert_eq!(&decode::<Frame>(&body).expect("decode"), frame);
        }
        assert_eq!(read.last(), Some(&Ok(None)), "a clean end");
    }

    #[tokio::test]
    async fn a_length_over_the_limit_is_refused_before_reading_the_body() {
        let wire = u32::MAX.to_be_bytes();
        let error = read(&mut &wire[..], 1000).await.expect_err("too large");
        assert!(
            matches!(error, FrameError::TooLarge { max: 1000, .. }),
            "{error}"
        );
        let big = encode(&deliver(vec![0; 10]), 5).expect_err("over the limit");
        assert!(matches!(big, FrameError::TooLarge { max: 5, .. }), "{big}");
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_an_error() {
        let wire = encode(&Frame::Ping, 100).expect("encode");
        for cut in 1..wire.len() {
            let error = read(&mut &wire[..cut], 100).await;
            assert!(matches!(error, Err(FrameError::Io(_))), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_bytes_and_garbage_are_malformed() {
        let mut body = postcard::to_stdvec(&Frame::Ping).expect("encode");
        body.push(0);
        assert!(matches!(
            decode::<Frame>(&body),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Frame>(&[0xff; 8]),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Frame>(&[]),
            Err(FrameError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Frame>(&body);
            let _ = decode::<Hello>(&body);
        }

        #[test]
        fn hellos_round_trip(version in any::<u16>(), secret in "[a-z2-7]{0,64}") {
            let hello = Hello { version, secret };
            let wire = encode(&hello, MAX_HANDSHAKE_FRAME).expect("encode");
            prop_assert_eq!(decode::<Hello>(&wire[PREFIX..]).expect("decode"), hello);
        }
    }
}
