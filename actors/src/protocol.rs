//! The messages actors exchange, as they travel: serde types, encoded with postcard.
//!
//! Every request carries an id (so its answer can be matched) and a deadline (after which
//! nobody waits for it, so nobody should work on it). Every answer is checked by the
//! requester, never trusted. Everything decoded from the network is size-bounded: a frame by
//! [`MAX_MESSAGE_SIZE`], and each field by the checks of the actor that receives it.

use crate::actor::Time;
use crate::ids::{verify_signature, NodeId, NodeKey, ShareNum, StorageIndex};
use crate::vdrive::{VdriveError, VdriveOp, VdriveReply};
use serde::{Deserialize, Serialize};

/// The largest encoded message: a block of a 1 MiB segment at k=1, with room to spare.
pub const MAX_MESSAGE_SIZE: usize = 4 << 20;
/// The largest block a storage server accepts in one write, or returns in one read.
pub const MAX_DATA_PER_MESSAGE: u64 = 2 << 20;

/// The writes of `data` at `offset` of a share being uploaded, in pieces no bigger than a
/// server takes ([`MAX_DATA_PER_MESSAGE`]): each piece's request.
pub fn writes(
    si: StorageIndex,
    share: ShareNum,
    offset: u64,
    data: &[u8],
    upload: UploadSecret,
) -> impl Iterator<Item = Request> + '_ {
    let starts = (offset..).step_by(MAX_DATA_PER_MESSAGE as usize);
    data.chunks(MAX_DATA_PER_MESSAGE as usize)
        .zip(starts)
        .map(move |(piece, at)| Request::Write {
            si,
            share,
            offset: at,
            data: piece.to_vec(),
            upload,
        })
}

/// Matches an answer to its request; unique per requester.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// Everything that travels between actors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Request {
        id: RequestId,
        deadline: Time,
        body: Request,
    },
    Response {
        id: RequestId,
        body: Response,
    },
    /// From the introducer to a subscriber: the storage servers it knows (all of them on
    /// subscribing, then each change).
    Announcements(Vec<Announcement>),
}

/// What one actor asks of another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Storage server -> introducer: "I serve storage" (repeated periodically).
    Announce(Box<Announcement>),
    /// Client -> introducer: send me the storage servers, now and as they change.
    Subscribe,
    /// Client -> storage: reserve space for these shares of a file, `share_size` bytes each,
    /// for the upload that shows `upload` (as Tahoe's HTTPS protocol binds a bucket to its
    /// upload secret): only it may write, close or abort them.
    Allocate {
        si: StorageIndex,
        shares: Vec<ShareNum>,
        share_size: u64,
        lease: LeaseSecret,
        upload: UploadSecret,
    },
    /// Client -> storage: bytes of a share being uploaded.
    Write {
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        upload: UploadSecret,
    },
    /// Client -> storage: the share is complete; make it visible (atomically, durably).
    Close {
        si: StorageIndex,
        share: ShareNum,
        upload: UploadSecret,
    },
    /// Client -> storage: give up on a share being uploaded; free its space.
    Abort {
        si: StorageIndex,
        share: ShareNum,
        upload: UploadSecret,
    },
    /// Client -> storage: bytes of a complete share.
    Read {
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    },
    /// Client -> storage: which complete shares of this file do you hold?
    List { si: StorageIndex },
    /// Client -> storage: keep this file's shares until `expires` (adds or renews a lease).
    RenewLease {
        si: StorageIndex,
        lease: LeaseSecret,
        expires: Time,
    },
    /// Client -> storage: this share failed a check (for the operator; nothing is deleted).
    AdviseCorrupt {
        si: StorageIndex,
        share: ShareNum,
        reason: String,
    },
    /// Client -> vdrive.
    Vdrive(VdriveOp),
    /// Client -> vdrive server: the latest record of the directory stored at `si`.
    DirRead { si: StorageIndex },
    /// Client -> vdrive server: store `record` (an encoded [`cairn_codec::dirnode::Record`])
    /// as the directory at `si`, if the one stored now has version `expected` (`None`: if
    /// there is none yet) — a compare-and-swap. The write enabler shows the writer holds
    /// the directory's write cap.
    DirWrite {
        si: StorageIndex,
        write_enabler: [u8; 32],
        expected: Option<u64>,
        #[serde(with = "serde_bytes")]
        record: Vec<u8>,
    },
}

impl Request {
    /// Whether carrying the request out may change the server's state. Such a request is
    /// carried out once: a duplicate of it gets the first answer again, from the server's
    /// reply cache ([`crate::replies`]). Reads, lookups and listings are simply done again.
    pub fn changes(&self) -> bool {
        !matches!(
            self,
            Request::Read { .. }
                | Request::List { .. }
                | Request::Vdrive(VdriveOp::List { .. } | VdriveOp::Lookup { .. })
                | Request::DirRead { .. }
        )
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Ok,
    /// To [`Request::Allocate`]: shares already held complete, and shares now allocated.
    Allocated {
        already_have: Vec<ShareNum>,
        allocated: Vec<ShareNum>,
    },
    /// To [`Request::Read`].
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// To [`Request::List`]: each complete share and its size.
    Shares(Vec<(ShareNum, u64)>),
    /// To [`Request::Vdrive`].
    Vdrive(Result<VdriveReply, VdriveError>),
    /// The request failed.
    Err(RemoteError),
    /// To [`Request::DirRead`]: the encoded record, if the server has one.
    DirRecord(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
}

/// Why a remote actor refused or failed a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    #[error("the server has no such share")]
    NoSuchShare,
    #[error("that share was not allocated (or was already closed or aborted)")]
    NotAllocated,
    #[error("not enough space: {free} bytes free")]
    Full { free: u64 },
    #[error("the bytes asked for are outside the share ({size} bytes)")]
    OutOfBounds { size: u64 },
    #[error("the request is malformed: {0}")]
    Malformed(String),
    #[error("this node does not offer that service")]
    Unsupported,
    #[error("the node's disk failed: {0}")]
    Disk(String),
    #[error("that share is being uploaded by someone else (the upload secret does not match)")]
    NotYourUpload,
    #[error("a limit of the server was reached: {0}")]
    Limit(String),
    /// Said by the sender's own node, not the server: the request could not be sent.
    #[error("not sent: {0}")]
    Unreachable(String),
    /// A compare-and-swap found another version than the one expected.
    #[error("the directory changed meanwhile (it is at version {current:?} now)")]
    Conflict { current: Option<u64> },
    /// The request is not allowed: a wrong write enabler, a record not signed by the
    /// directory's key.
    #[error("not allowed: {0}")]
    Forbidden(String),
}

/// A secret that lets its holder renew (and, later, cancel) a lease on a file's shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseSecret(pub [u8; 32]);

impl LeaseSecret {
    /// The lease secret a client whose own lease secret is `client` shows `server` for the
    /// file `si`. Each server sees only its own (as Tahoe-LAFS derives its renew secrets), so
    /// no server can use what it saw on another; the client can derive them all again to
    /// renew its leases.
    pub fn derive(client: &[u8; 32], si: StorageIndex, server: NodeId) -> LeaseSecret {
        let mut input = Vec::with_capacity(32 + 16 + 32);
        input.extend_from_slice(client);
        input.extend_from_slice(&si.0);
        input.extend_from_slice(&server.0);
        LeaseSecret(cairn_codec::hash::tagged_hash(
            b"cairn lease renew v1",
            &input,
        ))
    }
}

/// The secret of one upload: drawn at random by its uploader, shown with every allocation,
/// write, close and abort, so that no one else (another storage server that learnt the
/// storage index from its own allocation, say) can touch the shares it is writing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UploadSecret(pub [u8; 32]);

impl std::fmt::Debug for UploadSecret {
    // A secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadSecret(…)")
    }
}

/// A storage server's signed claim to serve storage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub node: NodeId,
    pub public_key: [u8; 32],
    /// Where the node listens (a transport address: `host:port`, or a simulated name).
    pub address: String,
    /// The operator's name for the node (at most [`Announcement::MAX_NICKNAME_LEN`] bytes,
    /// no control characters): shown to people, never trusted as an identity.
    pub nickname: String,
    pub figures: StorageFigures,
    /// Increases with every announcement of the node: the newest wins.
    pub seq: u64,
    /// When the node (re)started: a new value says it restarted, which the introducer
    /// passes on at once, so that clients that gave up on it dial it again.
    pub started: u64,
    pub signature: Vec<u8>,
}

/// What a storage server holds and has room for: one schema, announced to the grid, and
/// shown by a node's status, its gateway and its metrics alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageFigures {
    /// Complete shares held.
    pub shares: u64,
    /// Bytes of shares held, complete and being uploaded.
    pub used_bytes: u64,
    /// Bytes it still takes for new shares (free disk, less the reserve).
    pub free_space: u64,
}

/// What a storage server says of itself in an announcement, before it is signed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announced {
    pub address: String,
    pub nickname: String,
    pub figures: StorageFigures,
    pub seq: u64,
    pub started: u64,
}

/// The bytes an announcement's signature covers.
#[derive(Serialize)]
struct SignedPart<'a> {
    domain: &'static str,
    node: NodeId,
    public_key: [u8; 32],
    address: &'a str,
    nickname: &'a str,
    figures: StorageFigures,
    seq: u64,
    started: u64,
}

impl Announcement {
    /// The largest address accepted.
    pub const MAX_ADDRESS_LEN: usize = 256;
    /// The largest nickname accepted, in bytes.
    pub const MAX_NICKNAME_LEN: usize = 64;

    /// A signed announcement by `key`'s node of `free_space` and nothing else.
    pub fn new(key: &NodeKey, address: String, free_space: u64, seq: u64) -> Self {
        Announcement::since(key, address, free_space, seq, 0)
    }

    /// A signed announcement by `key`'s node, which started at `started`, of `free_space`
    /// and nothing else.
    pub fn since(key: &NodeKey, address: String, free_space: u64, seq: u64, started: u64) -> Self {
        let figures = StorageFigures {
            free_space,
            ..StorageFigures::default()
        };
        let announced = Announced {
            address,
            nickname: String::new(),
            figures,
            seq,
            started,
        };
        Announcement::sign(key, announced)
    }

    /// `announced`, signed by `key`'s node.
    pub fn sign(key: &NodeKey, announced: Announced) -> Self {
        let mut a = Announcement {
            node: key.id(),
            public_key: key.public_key(),
            address: announced.address,
            nickname: announced.nickname,
            figures: announced.figures,
            seq: announced.seq,
            started: announced.started,
            signature: Vec::new(),
        };
        a.signature = key.sign(&a.signed_bytes());
        a
    }

    /// Whether `nickname` may be announced: short, and free of control characters (which
    /// could rewrite a terminal showing it).
    pub fn nickname_ok(nickname: &str) -> bool {
        nickname.len() <= Self::MAX_NICKNAME_LEN && !nickname.chars().any(char::is_control)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let part = SignedPart {
            domain: "cairn announcement v3",
            node: self.node,
            public_key: self.public_key,
            address: &self.address,
            nickname: &self.nickname,
            figures: self.figures,
            seq: self.seq,
            started: self.started,
        };
        postcard::to_stdvec(&part).expect("serialising to memory cannot fail")
    }

    /// Whether the announcement is well-formed and signed by the key its node id names.
    pub fn verify(&self) -> bool {
        self.address.len() <= Self::MAX_ADDRESS_LEN
            && Self::nickname_ok(&self.nickname)
            && NodeId::of_public_key(&self.public_key) == self.node
            && verify_signature(&self.public_key, &self.signed_bytes(), &self.signature)
    }
}

impl Message {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("serialising to memory cannot fail")
    }

    /// Parses the wire form; refuses anything over [`MAX_MESSAGE_SIZE`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(DecodeError::TooLarge { size: bytes.len() });
        }
        postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// Why bytes from the network are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a {size}-byte message is over the {MAX_MESSAGE_SIZE}-byte limit")]
    TooLarge { size: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_server_sees_a_lease_secret_of_its_own() {
        let (client, si) = ([9; 32], StorageIndex([4; 16]));
        let (a, b) = (NodeId([1; 32]), NodeId([2; 32]));
        let secret = LeaseSecret::derive(&client, si, a);
        assert_eq!(
            secret,
            LeaseSecret::derive(&client, si, a),
            "the client can derive it again"
        );
        assert_ne!(
            secret,
            LeaseSecret::derive(&client, si, b),
            "another server's differs"
        );
        assert_ne!(
            secret,
            LeaseSecret::derive(&client, StorageIndex([5; 16]), a)
        );
        assert_ne!(
            secret,
            LeaseSecret::derive(&[8; 32], si, a),
            "another client's differs"
        );
        assert_ne!(secret.0, client, "the client's own secret is not shown");
    }

    #[test]
    fn announcements_verify_and_tampering_is_caught() {
        let key = NodeKey::from_seed([7; 32]);
        let a = Announcement::new(&key, "10.0.0.1:99".into(), 1000, 1);
        assert!(a.verify());
        let mut more_space = a.clone();
        more_space.figures.free_space += 1;
        assert!(!more_space.verify());
        let mut renamed = a.clone();
        renamed.nickname = "mallory".into();
        assert!(!renamed.verify(), "the nickname is signed");
        let announced = |nickname: &str| Announced {
            address: "10.0.0.1:99".into(),
            nickname: nickname.into(),
            ..Announced::default()
        };
        assert!(Announcement::sign(&key, announced("alice's box ✓")).verify());
        assert!(
            !Announcement::sign(&key, announced("evil\x1b[2J")).verify(),
            "control characters would reach terminals"
        );
        let long = "n".repeat(Announcement::MAX_NICKNAME_LEN + 1);
        assert!(!Announcement::sign(&key, announced(&long)).verify());
        let mut other_node = a.clone();
        other_node.node = NodeKey::from_seed([8; 32]).id();
        assert!(!other_node.verify());
    }

    #[test]
    fn messages_round_trip() {
        let msg = Message::Request {
            id: RequestId(5),
            deadline: Time(77),
            body: Request::Write {
                si: StorageIndex([3; 16]),
                share: ShareNum(2),
                offset: 9,
                data: vec![1, 2, 3],
                upload: UploadSecret([4; 32]),
            },
        };
        assert_eq!(Message::decode(&msg.encode()), Ok(msg));
        assert!(matches!(
            Message::decode(&vec![0; MAX_MESSAGE_SIZE + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&bytes);
        }
    }
}
