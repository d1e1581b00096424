//! The protocol's proptest strategies, once: any request, any response, remote errors,
//! announcements signed or forged, vdrive operations, caps, and bytes off the wire, damaged.
//!
//! Every fuzz test of an actor draws its inputs from here, so that a new message or error
//! variant is added in one place and every actor is fuzzed with it. A strategy that only
//! makes sense for one actor (which of its peers a message claims to come from, say) stays
//! with that actor's tests.

use crate::actor::Time;
use crate::ids::{NodeKey, ShareNum, StorageIndex};
use crate::protocol::{
    Announcement, LeaseSecret, Message, RemoteError, Request, RequestId, Response, UploadSecret,
};
use crate::vdrive::{DirEntry, EntryKind, VdriveError, VdriveOp, VdriveReply};
use cairn_codec::{Cap, ChkCap, Key, LitCap};
use proptest::prelude::*;
use proptest::sample::Index;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Any refusal a server may answer with.
pub fn remote_error() -> impl Strategy<Value = RemoteError> {
    prop_oneof![
        Just(RemoteError::NoSuchShare),
        Just(RemoteError::NotAllocated),
        any::<u64>().prop_map(|free| RemoteError::Full { free }),
        any::<u64>().prop_map(|size| RemoteError::OutOfBounds { size }),
        ".{0,20}".prop_map(RemoteError::Malformed),
        Just(RemoteError::Unsupported),
        ".{0,20}".prop_map(RemoteError::Disk),
        any::<Option<u64>>().prop_map(|current| RemoteError::Conflict { current }),
        ".{0,20}".prop_map(RemoteError::Forbidden),
    ]
}

/// A share number: mostly one a small test file has (so that it is tried), sometimes any.
pub fn share_num() -> impl Strategy<Value = ShareNum> {
    prop_oneof![4 => 0u8..12, 1 => any::<u8>()].prop_map(ShareNum)
}

/// What the actor under test mostly asks about, so that most fuzzed answers are of the kind
/// it expects (and get past its first checks) while the rest are of any kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// Share lists and bytes (a download, a check).
    Storage,
    /// The vdrive's answers (the client).
    Vdrive,
}

/// Any answer, of any kind: right or wrong for the request it claims to answer, weighted
/// towards `focus`.
pub fn response(focus: Focus) -> impl Strategy<Value = Response> {
    let (storage, vdrive) = match focus {
        Focus::Storage => (4, 1),
        Focus::Vdrive => (1, 3),
    };
    let data = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => (0usize..5000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ];
    let shares = || proptest::collection::vec(share_num(), 0..4);
    prop_oneof![
        vdrive => Just(Response::Ok),
        1 => (shares(), shares()).prop_map(|(already_have, allocated)| {
            Response::Allocated { already_have, allocated }
        }),
        storage => data.prop_map(Response::Data),
        storage => proptest::collection::vec((share_num(), any::<u64>()), 0..6)
            .prop_map(Response::Shares),
        vdrive => vdrive_result().prop_map(Response::Vdrive),
        1 => proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(Response::DirRecord),
        2 => remote_error().prop_map(Response::Err),
    ]
}

/// Any answer of the vdrive.
pub fn vdrive_result() -> impl Strategy<Value = Result<VdriveReply, VdriveError>> {
    let kind = prop_oneof![
        Just(EntryKind::Dir),
        ".{0,10}".prop_map(|cap| EntryKind::File { cap })
    ];
    let entry = (".{0,8}", kind.clone()).prop_map(|(name, kind)| DirEntry { name, kind });
    prop_oneof![
        Just(Ok(VdriveReply::Done)),
        proptest::collection::vec(entry, 0..4).prop_map(|e| Ok(VdriveReply::Entries(e))),
        kind.prop_map(|k| Ok(VdriveReply::Entry(k))),
        ".{0,10}".prop_map(|p| Err(VdriveError::NotFound(p))),
        ".{0,10}".prop_map(|p| Err(VdriveError::InvalidPath(p, "no".into()))),
        ".{0,10}".prop_map(|p| Err(VdriveError::Storage(p))),
        ".{0,10}".prop_map(|p| Err(VdriveError::Unreachable(p))),
    ]
}

/// A vdrive path: mostly over a few names, so that operations collide; sometimes anything.
pub fn path() -> impl Strategy<Value = String> {
    let name = prop_oneof![Just("a"), Just("b"), Just("c")];
    prop_oneof![
        8 => proptest::collection::vec(name, 0..4).prop_map(|parts| format!("/{}", parts.join("/"))),
        1 => ".{0,20}",
        1 => Just("/a/../b".to_string()),
    ]
}

/// The text of a cap to link: one of a few valid ones, so that links collide, or anything.
pub fn cap_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(chk_cap_text()),
        Just(lit_cap_text("x")),
        Just(lit_cap_text("y")),
        ".{0,10}"
    ]
}

/// A valid CHK cap's text (of a file no test stores).
pub fn chk_cap_text() -> String {
    let cap = ChkCap {
        key: Key([1; 16]),
        ueb_hash: [2; 32],
        k: 3,
        n: 10,
        size: 1_000_000,
    };
    Cap::Chk(cap).to_string()
}

/// The text of the LIT cap holding `text`.
pub fn lit_cap_text(text: &str) -> String {
    let data = text.as_bytes().to_vec();
    Cap::Lit(LitCap { data }).to_string()
}

/// Any vdrive operation, over [`path`]s and [`cap_text`]s.
pub fn vdrive_op() -> impl Strategy<Value = VdriveOp> {
    prop_oneof![
        3 => path().prop_map(|path| VdriveOp::Mkdir { path }),
        3 => (path(), cap_text(), any::<bool>())
            .prop_map(|(path, cap, replace)| VdriveOp::Link { path, cap, replace }),
        2 => path().prop_map(|path| VdriveOp::Unlink { path }),
        2 => (path(), path()).prop_map(|(from, to)| VdriveOp::Rename { from, to }),
        1 => path().prop_map(|path| VdriveOp::List { path }),
        1 => path().prop_map(|path| VdriveOp::Lookup { path }),
    ]
}

/// One of two upload secrets: requests of two uploads, and of one upload, both happen.
pub fn upload_secret() -> impl Strategy<Value = UploadSecret> + Clone {
    prop_oneof![Just(UploadSecret([1; 32])), Just(UploadSecret([2; 32]))]
}

/// A request of any kind, to any file and share.
pub fn any_request() -> impl Strategy<Value = Request> {
    let si = any::<[u8; 16]>().prop_map(StorageIndex);
    let share = any::<u8>().prop_map(ShareNum);
    let data = proptest::collection::vec(any::<u8>(), 0..20);
    let upload = upload_secret();
    prop_oneof![
        announcement().prop_map(|a| Request::Announce(Box::new(a))),
        Just(Request::Subscribe),
        (
            si.clone(),
            proptest::collection::vec(share.clone(), 0..4),
            any::<u64>(),
            upload.clone(),
        )
            .prop_map(|(si, shares, share_size, upload)| Request::Allocate {
                si,
                shares,
                share_size,
                lease: LeaseSecret([3; 32]),
                upload,
            }),
        (
            si.clone(),
            share.clone(),
            any::<u64>(),
            data,
            upload.clone()
        )
            .prop_map(|(si, share, offset, data, upload)| Request::Write {
                si,
                share,
                offset,
                data,
                upload,
            }),
        (si.clone(), share.clone(), upload.clone())
            .prop_map(|(si, share, upload)| Request::Close { si, share, upload }),
        (si.clone(), share.clone(), upload).prop_map(|(si, share, upload)| Request::Abort {
            si,
            share,
            upload
        }),
        (si.clone(), share.clone(), any::<u64>(), any::<u64>()).prop_map(
            |(si, share, offset, len)| Request::Read {
                si,
                share,
                offset,
                len
            }
        ),
        si.clone().prop_map(|si| Request::List { si }),
        (si.clone(), any::<u64>()).prop_map(|(si, t)| Request::RenewLease {
            si,
            lease: LeaseSecret([4; 32]),
            expires: Time(t)
        }),
        (si.clone(), share, ".{0,20}").prop_map(|(si, share, reason)| Request::AdviseCorrupt {
            si,
            share,
            reason
        }),
        vdrive_op().prop_map(Request::Vdrive),
        si.clone().prop_map(|si| Request::DirRead { si }),
        (
            si,
            any::<[u8; 32]>(),
            any::<Option<u64>>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(si, write_enabler, expected, record)| Request::DirWrite {
                si,
                write_enabler,
                expected,
                record
            }),
    ]
}

/// Any message, as a fuzzed peer might send it, with random ids (a test that wants answers
/// to an actor's own requests picks their ids itself); answers weighted towards `focus`.
pub fn any_message(focus: Focus) -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any_request()).prop_map(|(id, deadline, body)| {
            Message::Request {
                id: RequestId(id),
                deadline: Time(deadline),
                body,
            }
        }),
        (any::<u64>(), response(focus)).prop_map(|(id, body)| Message::Response {
            id: RequestId(id),
            body
        }),
        proptest::collection::vec(announcement(), 0..3).prop_map(Message::Announcements),
    ]
}

/// The key of one of a few test servers (seeds 1 to 7), whose announcements
/// [`announcement`] makes.
pub fn server_key(seed: u8) -> NodeKey {
    NodeKey::from_seed([seed; 32])
}

/// How a forged announcement differs from a signed one.
#[derive(Clone, Debug)]
enum Forgery {
    FreeSpace,
    Address,
    Seq,
    /// Claims to be another node (whose id it does not hash to).
    Node(u8),
    /// Another node's key, signature left as it was.
    PublicKey(u8),
    SignatureBit(Index, u8),
    NoSignature,
    /// Validly signed, but over the address length limit.
    LongAddress,
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        Just(Forgery::FreeSpace),
        Just(Forgery::Address),
        Just(Forgery::Seq),
        (1u8..8).prop_map(Forgery::Node),
        (1u8..8).prop_map(Forgery::PublicKey),
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Forgery::SignatureBit(i, x)),
        Just(Forgery::NoSignature),
        Just(Forgery::LongAddress),
    ]
}

/// An announcement by one of a few servers ([`server_key`] 1 to 7): mostly signed, sometimes
/// forged in one of the ways a verifier must catch.
pub fn announcement() -> impl Strategy<Value = Announcement> {
    let seq = prop_oneof![4 => 0u64..5, 1 => any::<u64>()];
    (1u8..8, seq, prop::option::weighted(0.3, forgery()))
        .prop_map(|(seed, seq, forgery)| forged(seed, seq, forgery))
}

thread_local! {
    /// Signed announcements by (seed, seq): signing is the costly part of making one.
    static SIGNED: RefCell<BTreeMap<(u8, u64), Announcement>> =
        const { RefCell::new(BTreeMap::new()) };
}

/// Server `seed`'s announcement number `seq`, signed (of `10.0.0.{seed}:9000`, with
/// `1000 * seed` bytes free).
pub fn signed_announcement(seed: u8, seq: u64) -> Announcement {
    SIGNED.with(|cache| {
        let mut cache = cache.borrow_mut();
        let sign = || {
            let address = format!("10.0.0.{seed}:9000");
            Announcement::new(&server_key(seed), address, 1000 * u64::from(seed), seq)
        };
        cache.entry((seed, seq)).or_insert_with(sign).clone()
    })
}

/// Server `seed`'s announcement number `seq`, signed, then changed by `forgery`.
fn forged(seed: u8, seq: u64, forgery: Option<Forgery>) -> Announcement {
    let mut a = signed_announcement(seed, seq);
    match forgery {
        None => {}
        Some(Forgery::FreeSpace) => a.figures.free_space ^= 1,
        Some(Forgery::Address) => a.address.push('0'),
        Some(Forgery::Seq) => a.seq = a.seq.wrapping_add(1),
        Some(Forgery::Node(n)) => a.node = server_key(n).id(),
        Some(Forgery::PublicKey(n)) => {
            a.public_key = server_key(n).public_key();
            a.node = server_key(n).id();
        }
        Some(Forgery::SignatureBit(at, x)) => {
            let at = at.index(a.signature.len());
            a.signature[at] ^= x;
        }
        Some(Forgery::NoSignature) => a.signature.clear(),
        Some(Forgery::LongAddress) => {
            let address = "x".repeat(Announcement::MAX_ADDRESS_LEN + 1);
            a = Announcement::new(&server_key(seed), address, 1, seq);
        }
    }
    a
}

/// A cap to download: mostly one a parser accepts, sometimes one it would have refused
/// (k = 0, k > N, N > 256).
pub fn chk_cap() -> impl Strategy<Value = ChkCap> {
    let shape = prop_oneof![
        8 => (1usize..12).prop_flat_map(|n| (1..=n, Just(n))),
        1 => prop_oneof![
            (0usize..300).prop_map(|n| (0, n)),
            (1usize..12).prop_map(|n| (n + 1, n)),
            (257usize..300).prop_map(|n| (3, n)),
        ],
    ];
    (any::<[u8; 16]>(), any::<[u8; 32]>(), shape, any::<u64>()).prop_map(
        |(key, ueb_hash, (k, n), size)| ChkCap {
            key: Key(key),
            ueb_hash,
            k,
            n,
            size,
        },
    )
}

/// Bytes off the wire: noise, or the encoding of `body` (as a request with some id and
/// deadline) damaged by [`damaged`].
pub fn wire(body: impl Strategy<Value = Request>) -> impl Strategy<Value = Vec<u8>> {
    let request = (body, any::<u64>()).prop_map(|(body, deadline)| Message::Request {
        id: RequestId(deadline.rotate_left(7)),
        deadline: Time(deadline),
        body,
    });
    damaged(request)
}

/// Bytes off the wire: noise, or the encoding of `msg` with a few bytes flipped and maybe
/// cut short (which often still decodes, into something odd).
pub fn damaged(msg: impl Strategy<Value = Message>) -> impl Strategy<Value = Vec<u8>> {
    let flips = proptest::collection::vec((any::<Index>(), 1..=u8::MAX), 0..4);
    let damaged = (msg, flips, any::<Option<Index>>()).prop_map(|(msg, flips, cut)| {
        let mut bytes = msg.encode();
        for (at, x) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= x;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes
    });
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), damaged]
}
