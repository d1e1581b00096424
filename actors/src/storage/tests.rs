//! The storage server, driven through its inputs and judged by its effects.

use super::*;
use crate::actor::{Effect, Service};
use crate::ids::NodeId;
use crate::memstore::{MemJournal, MemShareStore};
use crate::replies::MAX_REQUEST_LIFETIME;
use crate::testing::driven::wraps_driven;
use crate::testing::strategies::{upload_secret, wire};
use crate::testing::{Driven, FlakyJournal, FlakyStore, JournalFault};
use proptest::prelude::*;
use std::collections::BTreeSet;

const SI: StorageIndex = StorageIndex([4; 16]);
const OTHER_SI: StorageIndex = StorageIndex([5; 16]);
const LEASE: LeaseSecret = LeaseSecret([6; 32]);
const UPLOAD: UploadSecret = UploadSecret([7; 32]);
const CLIENT: Addr = Addr {
    node: NodeId([9; 32]),
    service: Service::Client,
};
const INTRODUCER: Addr = Addr {
    node: NodeId([8; 32]),
    service: Service::Introducer,
};
/// The harness's clock starts here (as the real host's, far from zero).
const T0: Time = Time(1_700_000_000_000_000_000);

/// The server's configuration in these tests: no minimum charge per share, so that space can
/// be counted to the byte with small shares (`a_small_share_is_charged_the_minimum` tests it).
fn config() -> StorageConfig {
    StorageConfig {
        min_share_charge: 1,
        ..StorageConfig::default()
    }
}

/// One server over handles to its store and journal, with switches to make them fail.
struct Harness {
    driven: Driven<StorageServer>,
    store: MemShareStore,
    journal: MemJournal,
    flaky_store: FlakyStore<MemShareStore>,
    flaky_journal: FlakyJournal<MemJournal>,
    config: StorageConfig,
}

wraps_driven!(Harness, StorageServer, driven);

impl Harness {
    fn new(capacity: u64, config: StorageConfig) -> Self {
        Self::over(MemShareStore::new(capacity), MemJournal::new(), config)
    }

    /// A server (not yet started) over existing storage, as after a restart.
    fn over(store: MemShareStore, journal: MemJournal, config: StorageConfig) -> Self {
        let flaky_store = FlakyStore::new(store.clone());
        let flaky_journal = FlakyJournal::new(journal.clone());
        let key = NodeKey::from_seed([1; 32]);
        let me = Addr::new(key.id(), Service::Storage);
        let server = StorageServer::new(
            key,
            "10.0.0.1:4000".into(),
            Some(INTRODUCER),
            Box::new(flaky_store.clone()),
            Box::new(flaky_journal.clone()),
            config.clone(),
        );
        Harness {
            driven: Driven::new(server, me, T0, 1),
            store,
            journal,
            flaky_store,
            flaky_journal,
            config,
        }
    }

    fn started(capacity: u64) -> Self {
        let mut h = Self::new(capacity, config());
        h.input(Input::Start);
        h
    }

    /// The same storage under a fresh server, started.
    fn restart(self) -> Self {
        let now = self.now.after(Duration::from_secs(5));
        let mut h = Self::over(self.store, self.journal, self.config);
        h.now = now;
        h.input(Input::Start);
        h
    }

    /// Sends `body` from the client; returns the one answer.
    fn request(&mut self, body: Request) -> Response {
        self.driven.only_answer(CLIENT, body)
    }

    fn allocate(&mut self, si: StorageIndex, shares: &[u8], size: u64) -> Response {
        self.request(Request::Allocate {
            si,
            shares: shares.iter().map(|&n| ShareNum(n)).collect(),
            share_size: size,
            lease: LEASE,
            upload: UPLOAD,
        })
    }

    fn write(&mut self, share: u8, offset: u64, data: &[u8]) -> Response {
        self.request(Request::Write {
            si: SI,
            share: ShareNum(share),
            offset,
            data: data.to_vec(),
            upload: UPLOAD,
        })
    }

    fn close(&mut self, share: u8) -> Response {
        self.request(Request::Close {
            si: SI,
            share: ShareNum(share),
            upload: UPLOAD,
        })
    }

    fn read(&mut self, share: u8, offset: u64, len: u64) -> Response {
        self.request(Request::Read {
            si: SI,
            share: ShareNum(share),
            offset,
            len,
        })
    }

    /// Uploads a complete share of `SI`.
    fn upload(&mut self, share: u8, data: &[u8]) {
        self.allocate(SI, &[share], data.len() as u64);
        assert_eq!(self.write(share, 0, data), Response::Ok);
        assert_eq!(self.close(share), Response::Ok);
    }
}

fn allocated(already_have: &[u8], allocated: &[u8]) -> Response {
    let nums = |v: &[u8]| v.iter().map(|&n| ShareNum(n)).collect();
    Response::Allocated {
        already_have: nums(already_have),
        allocated: nums(allocated),
    }
}

/// The announcements among `effects`, with where each went.
fn announced(effects: &[Effect]) -> Vec<(Addr, Announcement)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg:
                    Message::Request {
                        body: Request::Announce(a),
                        ..
                    },
            } => Some((*to, (**a).clone())),
            _ => None,
        })
        .collect()
}

/// The announcements among `effects` sent to the introducer.
fn announcements(effects: &[Effect]) -> Vec<Announcement> {
    let sent = announced(effects).into_iter();
    sent.filter(|(to, _)| *to == INTRODUCER)
        .map(|(_, a)| a)
        .collect()
}

#[test]
fn start_announces_signed_free_space_and_sets_the_timer() {
    let mut h = Harness::new(
        1000,
        StorageConfig {
            reserved_space: 100,
            ..config()
        },
    );
    let effects = h.input(Input::Start);
    let sent = announcements(&effects);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].verify());
    assert_eq!(sent[0].figures.free_space, 900);
    assert_eq!(sent[0].seq, T0.0);
    assert_eq!(sent[0].address, "10.0.0.1:4000");
    let timer_at = T0.after(Duration::from_secs(60));
    assert!(effects.iter().any(
        |e| matches!(e, Effect::SetTimer { id, at } if *id == ANNOUNCE_TIMER && *at == timer_at)
    ));
}

#[test]
fn the_timer_re_announces_with_a_newer_seq_and_current_free_space() {
    let mut h = Harness::started(1000);
    h.allocate(SI, &[0], 300);
    h.now = h.now.after(Duration::from_secs(60));
    let effects = h.input(Input::Timer(ANNOUNCE_TIMER));
    let sent = announcements(&effects);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].figures.free_space, 700);
    assert_eq!(sent[0].seq, h.now.0);
    // Even at the same instant, the seq still grows.
    let again = announcements(&h.input(Input::Timer(ANNOUNCE_TIMER)));
    assert_eq!(again[0].seq, h.now.0 + 1);
    // Timers that are not ours are ignored.
    assert!(h.input(Input::Timer(TimerId(77))).is_empty());
}

#[test]
fn without_an_introducer_nothing_is_announced() {
    let server = StorageServer::new(
        NodeKey::from_seed([1; 32]),
        "here".into(),
        None,
        Box::new(MemShareStore::new(10)),
        Box::new(MemJournal::new()),
        config(),
    );
    let mut h = Driven::new(server, CLIENT, T0, 0);
    assert!(h.input(Input::Start).is_empty());
}

#[test]
fn a_share_written_and_closed_reads_back() {
    let mut h = Harness::started(1000);
    assert_eq!(h.allocate(SI, &[2], 10), allocated(&[], &[2]));
    assert_eq!(h.write(2, 5, b"world"), Response::Ok);
    // Not readable until closed.
    assert_eq!(h.read(2, 0, 10), Response::Err(RemoteError::NoSuchShare));
    assert_eq!(h.write(2, 0, b"hello"), Response::Ok);
    assert_eq!(h.close(2), Response::Ok);
    assert_eq!(h.read(2, 0, 10), Response::Data(b"helloworld".to_vec()));
    assert_eq!(h.read(2, 8, 100), Response::Data(b"ld".to_vec()));
    assert_eq!(h.read(2, 10, 5), Response::Data(vec![]));
    assert_eq!(
        h.request(Request::List { si: SI }),
        Response::Shares(vec![(ShareNum(2), 10)])
    );
    assert_eq!(h.actor.status().incoming_shares, 0);
}

#[test]
fn allocate_reports_held_shares_and_skips_uploads_in_progress() {
    let mut h = Harness::started(1000);
    h.upload(1, b"done");
    let someone_else = Request::Allocate {
        si: SI,
        shares: vec![ShareNum(3)],
        share_size: 4,
        lease: LEASE,
        upload: UploadSecret([8; 32]),
    };
    assert_eq!(h.request(someone_else), allocated(&[], &[3]));
    // 1 is complete, 3 is being uploaded by someone, 0 and 2 are free; 2 is asked twice.
    assert_eq!(
        h.allocate(SI, &[2, 1, 3, 0, 2], 4),
        allocated(&[1], &[0, 2])
    );
    // Asked again by the same upload (a retry), its shares are allocated again, not twice.
    assert_eq!(h.allocate(SI, &[0, 2], 4), allocated(&[], &[0, 2]));
    assert_eq!(h.actor.status().incoming_shares, 3);
    // Every share in progress: nothing to give, but nothing full either.
    assert_eq!(h.allocate(SI, &[3], 4), allocated(&[], &[]));
    assert_eq!(h.allocate(SI, &[], 4), allocated(&[], &[]));
}

#[test]
fn allocation_keeps_the_reserve_counting_this_request() {
    let config = StorageConfig {
        reserved_space: 300,
        ..config()
    };
    let mut h = Harness::new(1000, config);
    h.input(Input::Start);
    // 700 bytes above the reserve: two 300-byte shares fit, the third does not.
    assert_eq!(h.allocate(SI, &[0, 1, 2], 300), allocated(&[], &[0, 1]));
    assert_eq!(
        h.allocate(OTHER_SI, &[0], 101),
        Response::Err(RemoteError::Full { free: 100 })
    );
    assert_eq!(h.allocate(OTHER_SI, &[0], 100), allocated(&[], &[0]));
    assert_eq!(h.store.available_bytes().unwrap(), 300);
}

#[test]
fn a_full_server_still_reports_what_it_has() {
    let mut h = Harness::started(10);
    h.upload(0, b"0123456789");
    assert_eq!(
        h.allocate(SI, &[1], 10),
        Response::Err(RemoteError::Full { free: 0 })
    );
    assert_eq!(h.allocate(SI, &[0, 1], 10), allocated(&[0], &[]));
}

#[test]
fn allocate_refuses_absurd_share_sizes() {
    let mut h = Harness::started(u64::MAX);
    for size in [0, MAX_SHARE_SIZE + 1, u64::MAX] {
        assert!(matches!(
            h.allocate(SI, &[0], size),
            Response::Err(RemoteError::Malformed(_))
        ));
    }
    assert_eq!(
        h.allocate(SI, &[255], MAX_SHARE_SIZE),
        allocated(&[], &[255])
    );
}

#[test]
fn writes_are_checked_against_the_allocation() {
    let mut h = Harness::started(1 << 30);
    h.allocate(SI, &[0], 8);
    assert_eq!(
        h.write(0, 4, b"12345"),
        Response::Err(RemoteError::OutOfBounds { size: 8 })
    );
    assert_eq!(
        h.write(0, u64::MAX, b"1"),
        Response::Err(RemoteError::OutOfBounds { size: 8 })
    );
    assert_eq!(h.write(0, 8, b""), Response::Ok);
    assert_eq!(
        h.write(1, 0, b"1"),
        Response::Err(RemoteError::NotAllocated)
    );
    let huge = vec![0; MAX_DATA_PER_MESSAGE as usize + 1];
    h.allocate(SI, &[1], 1 << 29);
    assert!(matches!(
        h.write(1, 0, &huge),
        Response::Err(RemoteError::Malformed(_))
    ));
    // Once closed, a share is immutable.
    assert_eq!(h.close(0), Response::Ok);
    assert_eq!(
        h.write(0, 0, b"x"),
        Response::Err(RemoteError::NotAllocated)
    );
    assert_eq!(h.close(0), Response::Err(RemoteError::NotAllocated));
}

#[test]
fn abort_gives_the_space_back_and_can_be_repeated() {
    let mut h = Harness::started(100);
    h.allocate(SI, &[0], 100);
    let abort = Request::Abort {
        si: SI,
        share: ShareNum(0),
        upload: UPLOAD,
    };
    assert_eq!(h.request(abort.clone()), Response::Ok);
    assert_eq!(h.request(abort), Response::Ok);
    assert_eq!(h.actor.status().leased_files, 0);
    assert_eq!(h.allocate(SI, &[0], 100), allocated(&[], &[0]));
    assert_eq!(h.close(0), Response::Ok);
}

#[test]
fn reads_are_bounded_and_checked() {
    let mut h = Harness::started(1000);
    h.upload(0, b"abc");
    assert_eq!(
        h.read(0, 4, 1),
        Response::Err(RemoteError::OutOfBounds { size: 3 })
    );
    assert_eq!(h.read(1, 0, 1), Response::Err(RemoteError::NoSuchShare));
    assert!(matches!(
        h.read(0, 0, MAX_DATA_PER_MESSAGE + 1),
        Response::Err(RemoteError::Malformed(_))
    ));
    assert_eq!(
        h.read(0, 1, MAX_DATA_PER_MESSAGE),
        Response::Data(b"bc".to_vec())
    );
}

#[test]
fn expired_requests_get_no_answer() {
    let mut h = Harness::started(1000);
    let msg = Message::Request {
        id: RequestId(1),
        deadline: Time(h.now.0 - 1),
        body: Request::List { si: SI },
    };
    assert!(h.input(Input::Message { from: CLIENT, msg }).is_empty());
    // A deadline of exactly now is still live.
    let msg = Message::Request {
        id: RequestId(2),
        deadline: h.now,
        body: Request::List { si: SI },
    };
    assert_eq!(h.input(Input::Message { from: CLIENT, msg }).len(), 1);
}

#[test]
fn other_services_are_unsupported_and_stray_messages_ignored() {
    let mut h = Harness::started(1000);
    let key = NodeKey::from_seed([3; 32]);
    for body in [
        Request::Subscribe,
        Request::Announce(Box::new(Announcement::new(&key, "x".into(), 1, 1))),
        Request::Vdrive(crate::vdrive::VdriveOp::List { path: "/".into() }),
    ] {
        assert_eq!(h.request(body), Response::Err(RemoteError::Unsupported));
    }
    let stray = [
        Message::Response {
            id: RequestId(1),
            body: Response::Ok,
        },
        Message::Announcements(vec![]),
    ];
    for msg in stray {
        assert!(h
            .input(Input::Message {
                from: INTRODUCER,
                msg
            })
            .is_empty());
    }
}

/// Sends `body` under request id `id` (as a network duplicating a request would); returns
/// every answer.
fn send_as(h: &mut Harness, id: u64, body: Request) -> Vec<Response> {
    h.send_as(CLIENT, RequestId(id), body)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send {
                msg: Message::Response { body, .. },
                ..
            } => Some(body),
            _ => None,
        })
        .collect()
}

#[test]
fn duplicated_changes_are_answered_as_before_and_duplicated_lists_anew() {
    let mut h = Harness::started(1000);
    let allocate = Request::Allocate {
        si: SI,
        shares: vec![ShareNum(0)],
        share_size: 3,
        lease: LEASE,
        upload: UPLOAD,
    };
    // Carried out again, the allocation would find share 0 being uploaded and allocate none.
    assert_eq!(
        send_as(&mut h, 500, allocate.clone()),
        [allocated(&[], &[0])]
    );
    assert_eq!(send_as(&mut h, 500, allocate), [allocated(&[], &[0])]);
    let list = Request::List { si: SI };
    assert_eq!(
        send_as(&mut h, 501, list.clone()),
        [Response::Shares(vec![])]
    );
    assert_eq!(h.write(0, 0, b"abc"), Response::Ok);
    assert_eq!(h.close(0), Response::Ok);
    // A list changes nothing: its duplicate is answered from the store as it is now.
    assert_eq!(
        send_as(&mut h, 501, list),
        [Response::Shares(vec![(ShareNum(0), 3)])]
    );
}

#[test]
fn disk_failures_are_answered_not_panicked() {
    let mut h = Harness::started(1000);
    h.upload(0, b"abc");
    h.allocate(SI, &[1], 3);
    h.flaky_store.fail(true);
    let is_disk = |r: Response| matches!(r, Response::Err(RemoteError::Disk(_)));
    assert!(is_disk(h.allocate(SI, &[2], 3)));
    assert!(is_disk(h.write(1, 0, b"x")));
    assert!(is_disk(h.read(0, 0, 1)));
    assert!(is_disk(h.request(Request::List { si: SI })));
    assert!(is_disk(h.close(1)));
    h.flaky_store.fail(false);
    // The failed close forgot the share; the store's copy is aborted at the next start.
    assert_eq!(
        h.write(1, 0, b"x"),
        Response::Err(RemoteError::NotAllocated)
    );
    let h = h.restart();
    assert_eq!(h.store.counts(), (0, 1));
}

#[test]
fn an_allocation_whose_lease_cannot_be_recorded_is_undone() {
    let mut h = Harness::started(1000);
    h.flaky_journal.set(JournalFault::LosesAppends);
    assert!(matches!(
        h.allocate(SI, &[0, 1], 10),
        Response::Err(RemoteError::Disk(_))
    ));
    assert_eq!(h.store.counts(), (0, 0));
    assert_eq!(h.actor.status().incoming_shares, 0);
    h.flaky_journal.set(JournalFault::None);
    assert_eq!(h.allocate(SI, &[0, 1], 10), allocated(&[], &[0, 1]));
}

#[test]
fn restart_aborts_unfinished_uploads_and_keeps_complete_shares_and_leases() {
    let mut h = Harness::started(1000);
    h.upload(0, b"kept");
    h.allocate(OTHER_SI, &[0], 100);
    assert_eq!(h.actor.status().leased_files, 2);
    let mut h = h.restart();
    assert_eq!(h.store.counts(), (0, 1));
    assert_eq!(h.store.available_bytes().unwrap(), 996);
    let status = h.actor.status();
    assert_eq!(
        (status.incoming_shares, status.leased_files, status.leases),
        (0, 1, 1)
    );
    assert_eq!(h.read(0, 0, 4), Response::Data(b"kept".to_vec()));
    assert_eq!(h.allocate(OTHER_SI, &[0], 100), allocated(&[], &[0]));
}

#[test]
fn leases_are_kept_only_for_files_held_and_bounded_per_file() {
    let mut h = Harness::started(1000);
    let renew = |si, secret: u8, expires| Request::RenewLease {
        si,
        lease: LeaseSecret([secret; 32]),
        expires,
    };
    let later = h.now.after(Duration::from_secs(3600));
    assert_eq!(
        h.request(renew(SI, 1, later)),
        Response::Err(RemoteError::NoSuchShare)
    );
    h.upload(0, b"x");
    for secret in 0..=(MAX_LEASES_PER_FILE as u8 + 5) {
        assert_eq!(h.request(renew(SI, secret, later)), Response::Ok);
    }
    // A lease already over is accepted and not kept.
    assert_eq!(h.request(renew(SI, 200, Time(0))), Response::Ok);
    let status = h.actor.status();
    assert_eq!(
        (status.leased_files, status.leases),
        (1, MAX_LEASES_PER_FILE)
    );
    let h = h.restart();
    assert_eq!(h.actor.status().leases, MAX_LEASES_PER_FILE);
}

#[test]
fn a_damaged_lease_journal_replays_up_to_the_damage() {
    let mut h = Harness::started(1000);
    h.upload(0, b"x");
    h.journal.clone().append(&[0xff; 3]).unwrap();
    let h = h.restart();
    assert_eq!(h.actor.status().leases, 1);
}

#[test]
fn corruption_advisories_are_logged_within_bounds() {
    let mut h = Harness::started(1000);
    for i in 0..(MAX_CORRUPTION_ADVISORIES + 3) {
        let reason = format!("{i}:{}", "é".repeat(1000));
        let advise = Request::AdviseCorrupt {
            si: SI,
            share: ShareNum(1),
            reason,
        };
        assert_eq!(h.request(advise), Response::Ok);
    }
    let status = h.actor.status();
    assert_eq!(
        status.advisories_received,
        MAX_CORRUPTION_ADVISORIES as u64 + 3
    );
    assert_eq!(status.recent_advisories.len(), MAX_CORRUPTION_ADVISORIES);
    assert!(status.recent_advisories[0].reason.starts_with("3:"));
    assert!(status
        .recent_advisories
        .iter()
        .all(|a| a.reason.len() <= MAX_ADVISORY_REASON));
}

/// A request a fuzzer might send: mostly plausible, over a few files and shares so that they
/// collide, with sizes and offsets around the limits.
fn request() -> impl Strategy<Value = Request> {
    let si = (0u8..2).prop_map(|b| StorageIndex([b; 16]));
    let share = prop_oneof![8 => 0u8..3, 1 => any::<u8>()].prop_map(ShareNum);
    let size = prop_oneof![
        8 => 1u64..40,
        1 => Just(0),
        1 => Just(MAX_SHARE_SIZE + 1),
        1 => any::<u64>()
    ];
    let offset = prop_oneof![8 => 0u64..40, 1 => any::<u64>()];
    let len = prop_oneof![
        8 => 0u64..50,
        1 => Just(MAX_DATA_PER_MESSAGE + 1),
        1 => any::<u64>()
    ];
    let data = proptest::collection::vec(any::<u8>(), 0..30);
    let secret = (0u8..40).prop_map(|b| LeaseSecret([b; 32]));
    let upload = upload_secret();
    prop_oneof![
        3 => (
            si.clone(),
            proptest::collection::vec(share.clone(), 0..6),
            size,
            secret.clone(),
            upload.clone(),
        )
            .prop_map(|(si, shares, share_size, lease, upload)| Request::Allocate {
                si,
                shares,
                share_size,
                lease,
                upload,
            }),
        4 => (si.clone(), share.clone(), offset.clone(), data, upload.clone()).prop_map(
            |(si, share, offset, data, upload)| Request::Write {
                si,
                share,
                offset,
                data,
                upload,
            }
        ),
        2 => (si.clone(), share.clone(), upload.clone())
            .prop_map(|(si, share, upload)| Request::Close { si, share, upload }),
        1 => (si.clone(), share.clone(), upload)
            .prop_map(|(si, share, upload)| Request::Abort { si, share, upload }),
        3 => (si.clone(), share.clone(), offset, len).prop_map(|(si, share, offset, len)| {
            Request::Read {
                si,
                share,
                offset,
                len,
            }
        }),
        1 => si.clone().prop_map(|si| Request::List { si }),
        1 => (si.clone(), secret, any::<u64>()).prop_map(|(si, lease, t)| Request::RenewLease {
            si,
            lease,
            expires: Time(t)
        }),
        1 => (si, share, ".{0,300}").prop_map(|(si, share, reason)| Request::AdviseCorrupt {
            si,
            share,
            reason
        }),
        1 => Just(Request::Subscribe),
    ]
}

/// One input to the server in a fuzzed run.
#[derive(Clone, Debug)]
enum Step {
    /// A request, with a deadline that may have passed, after `wait` seconds.
    Request {
        body: Request,
        expired: bool,
        wait: u8,
    },
    /// Bytes off the wire: delivered only if they decode.
    Bytes(Vec<u8>),
    Timer(u64),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (request(), prop::bool::weighted(0.15), 0u8..3)
            .prop_map(|(body, expired, wait)| Step::Request { body, expired, wait }),
        2 => wire(request()).prop_map(Step::Bytes),
        1 => (0u64..2).prop_map(Step::Timer),
        1 => Just(Step::Restart),
    ]
}

/// Checks what the server keeps in memory against what its store holds.
fn assert_bounded(h: &mut Harness) -> Result<(), TestCaseError> {
    let status = h.actor.status();
    let incoming = h.store.incoming().unwrap();
    prop_assert_eq!(status.incoming_shares, incoming.len());
    let files: BTreeSet<StorageIndex> = (0u8..2)
        .map(|b| StorageIndex([b; 16]))
        .filter(|si| !h.store.list(*si).unwrap().is_empty())
        .chain(incoming.iter().map(|(si, _)| *si))
        .collect();
    prop_assert!(status.leased_files <= files.len());
    prop_assert!(status.leases <= files.len() * MAX_LEASES_PER_FILE);
    prop_assert!(status.recent_advisories.len() <= MAX_CORRUPTION_ADVISORIES);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fuzzed_requests_get_one_answer_each_and_memory_stays_bounded(
        steps in proptest::collection::vec(step(), 1..120),
        capacity in 0u64..600,
        reserved_space in 0u64..100,
    ) {
        let config = StorageConfig { reserved_space, ..config() };
        let mut h = Harness::new(capacity, config);
        h.input(Input::Start);
        for (n, step) in steps.into_iter().enumerate() {
            let id = RequestId(n as u64);
            let msg = match step {
                Step::Request { body, expired, wait } => {
                    h.now = h.now.after(Duration::from_secs(wait.into()));
                    let deadline = match expired {
                        true => Time(h.now.0 - 1),
                        false => h.now.after(Duration::from_secs(1)),
                    };
                    Message::Request { id, deadline, body }
                }
                Step::Bytes(bytes) => match Message::decode(&bytes) {
                    Ok(msg) => msg,
                    Err(_) => continue,
                },
                Step::Timer(t) => {
                    h.input(Input::Timer(TimerId(t)));
                    continue;
                }
                Step::Restart => {
                    h = h.restart();
                    assert_bounded(&mut h)?;
                    continue;
                }
            };
            let live = match &msg {
                Message::Request { id, deadline, .. } => (h.now <= *deadline).then_some(*id),
                _ => None,
            };
            let effects = h.input(Input::Message { from: CLIENT, msg });
            let answers: Vec<_> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Send { to, msg: Message::Response { id, body } } if *to == CLIENT => {
                        Some((*id, body))
                    }
                    _ => None,
                })
                .collect();
            prop_assert_eq!(answers.len(), usize::from(live.is_some()));
            for effect in &effects {
                let answer_or_idle_timer = matches!(
                    effect,
                    Effect::Send { msg: Message::Response { .. }, .. }
                        | Effect::SetTimer { id: IDLE_TIMER, .. }
                );
                prop_assert!(answer_or_idle_timer, "{:?}", effect);
            }
            if let (Some(id), Some((got, body))) = (live, answers.first()) {
                prop_assert_eq!(id, *got);
                if let Response::Data(data) = body {
                    prop_assert!(data.len() as u64 <= MAX_DATA_PER_MESSAGE);
                }
            }
            assert_bounded(&mut h)?;
            let used = h.store.used_bytes().unwrap();
            prop_assert!(used <= capacity);
        }
    }
}

// ---- uploads belong to their uploader; limits a peer cannot choose ----

const THIEF: Addr = Addr {
    node: NodeId([13; 32]),
    service: Service::Storage,
};

/// `body` for share 0 of `SI`, as the upload with secret `upload` would send it.
fn as_upload(upload: UploadSecret, kind: &str) -> Request {
    let (si, share) = (SI, ShareNum(0));
    match kind {
        "write" => Request::Write {
            si,
            share,
            offset: 0,
            data: b"garbage".to_vec(),
            upload,
        },
        "close" => Request::Close { si, share, upload },
        _ => Request::Abort { si, share, upload },
    }
}

#[test]
fn no_one_but_its_uploader_writes_closes_or_aborts_a_share() {
    let mut h = Harness::started(1000);
    assert_eq!(h.allocate(SI, &[0], 10), allocated(&[], &[0]));
    // Another server, which learnt the storage index from its own allocation, tries every
    // way to spoil the upload.
    let stolen = UploadSecret([66; 32]);
    for kind in ["write", "close", "abort"] {
        let answer = h.only_answer(THIEF, as_upload(stolen, kind));
        assert_eq!(answer, Response::Err(RemoteError::NotYourUpload), "{kind}");
    }
    let again = Request::Allocate {
        si: SI,
        shares: vec![ShareNum(0)],
        share_size: 10,
        lease: LEASE,
        upload: stolen,
    };
    assert_eq!(
        h.only_answer(THIEF, again),
        allocated(&[], &[]),
        "not the thief's"
    );
    // The uploader's share is untouched: it finishes and reads back its own bytes.
    assert_eq!(h.write(0, 0, b"0123456789"), Response::Ok);
    assert_eq!(h.close(0), Response::Ok);
    assert_eq!(h.read(0, 0, 10), Response::Data(b"0123456789".to_vec()));
}

#[test]
fn an_upload_left_idle_is_dropped_and_its_space_given_back() {
    let mut h = Harness::started(1000);
    assert_eq!(h.allocate(SI, &[0, 1], 400), allocated(&[], &[0, 1]));
    let full = h.allocate(OTHER_SI, &[0], 400);
    assert!(
        matches!(full, Response::Err(RemoteError::Full { .. })),
        "{full:?}"
    );
    let idle_check = h
        .timers
        .get(&IDLE_TIMER)
        .copied()
        .expect("a timer for idle uploads");
    assert_eq!(idle_check, T0.after(INCOMING_IDLE_LIMIT));
    // Share 1 is written to half way: it is not idle yet when share 0 is.
    h.now = T0.after(INCOMING_IDLE_LIMIT / 2);
    assert_eq!(h.write(1, 0, b"busy"), Response::Ok);
    h.now = idle_check;
    let effects = h.input(Input::Timer(IDLE_TIMER));
    assert!(
        matches!(effects[..], [Effect::SetTimer { id: IDLE_TIMER, .. }]),
        "{effects:?}"
    );
    assert_eq!(h.actor.status().incoming_shares, 1);
    assert_eq!(
        h.write(0, 0, b"late"),
        Response::Err(RemoteError::NotAllocated)
    );
    assert_eq!(
        h.allocate(OTHER_SI, &[0], 400),
        allocated(&[], &[0]),
        "room again"
    );
}

#[test]
fn a_node_uploads_only_so_many_shares_at_once_and_others_are_not_held_up() {
    let mut h = Harness::started(1 << 30);
    let files = MAX_INCOMING_PER_NODE / 256;
    for f in 0..files {
        let all: Vec<u8> = (0..=255).collect();
        let answer = h.allocate(StorageIndex([f as u8; 16]), &all, 1);
        assert!(
            matches!(answer, Response::Allocated { ref allocated, .. } if allocated.len() == 256)
        );
    }
    let over = h.allocate(StorageIndex([200; 16]), &[0], 1);
    assert!(
        matches!(over, Response::Err(RemoteError::Limit(_))),
        "{over:?}"
    );
    let someone = Request::Allocate {
        si: StorageIndex([200; 16]),
        shares: vec![ShareNum(0)],
        share_size: 1,
        lease: LEASE,
        upload: UploadSecret([3; 32]),
    };
    assert_eq!(h.only_answer(THIEF, someone), allocated(&[], &[0]));
}

#[test]
fn a_small_share_is_charged_the_minimum() {
    let mut h = Harness::new(3 * MIN_SHARE_CHARGE - 1, StorageConfig::default());
    h.input(Input::Start);
    assert_eq!(h.allocate(SI, &[0, 1], 1), allocated(&[], &[0, 1]));
    let full = h.allocate(SI, &[2], 1);
    assert!(
        matches!(full, Response::Err(RemoteError::Full { .. })),
        "{full:?}"
    );
}

#[test]
fn an_answer_is_remembered_no_longer_than_the_request_lifetime() {
    let mut h = Harness::started(1000);
    let allocate = Request::Allocate {
        si: SI,
        shares: vec![ShareNum(0)],
        share_size: 10,
        lease: LEASE,
        upload: UPLOAD,
    };
    let forever = Message::Request {
        id: RequestId(77),
        deadline: Time(u64::MAX),
        body: allocate,
    };
    h.message(CLIENT, forever);
    assert_eq!(h.actor.answered.len(), 1);
    h.now = h.now.after(MAX_REQUEST_LIFETIME + Duration::from_secs(1));
    h.read(0, 0, 1); // any request: the server forgets what has expired
    assert_eq!(
        h.actor.answered.len(),
        0,
        "a peer does not choose how long it is kept"
    );
}

/// Garbage collection: a lease period of a minute, files examined all at once, a pass at
/// most every ten seconds.
fn collecting(expiry: Expiry) -> StorageConfig {
    StorageConfig {
        expiry,
        lease_period: Duration::from_secs(60),
        crawl_rate: 1000,
        crawl_interval: Duration::from_secs(10),
        ..config()
    }
}

fn si(n: u8) -> StorageIndex {
    StorageIndex([n; 16])
}

impl Harness {
    /// Uploads complete shares `shares` of `si`, of `size` bytes each.
    fn upload_file(&mut self, si: StorageIndex, shares: &[u8], size: u64) {
        assert_eq!(self.allocate(si, shares, size), allocated(&[], shares));
        for &share in shares {
            let (share, upload) = (ShareNum(share), UPLOAD);
            let data = vec![share.0; size as usize];
            let write = Request::Write {
                si,
                share,
                offset: 0,
                data,
                upload,
            };
            assert_eq!(self.request(write), Response::Ok);
            assert_eq!(
                self.request(Request::Close { si, share, upload }),
                Response::Ok
            );
        }
    }

    fn renew(&mut self, si: StorageIndex) {
        let renew = Request::RenewLease {
            si,
            lease: LEASE,
            expires: Time(u64::MAX),
        };
        assert_eq!(self.request(renew), Response::Ok);
    }

    /// Moves the clock on by `secs` and lets the collector take its step.
    fn crawl_after(&mut self, secs: u64) -> CollectorStatus {
        self.now = self.now.after(Duration::from_secs(secs));
        self.input(Input::Timer(CRAWL_TIMER));
        self.actor.report().collector
    }

    fn held(&mut self, si: StorageIndex) -> Vec<(ShareNum, u64)> {
        self.store.list(si).unwrap()
    }
}

#[test]
fn lapsed_files_are_collected_and_renewed_ones_kept() {
    let mut h = Harness::new(10_000, collecting(Expiry::Leases));
    h.input(Input::Start);
    h.upload_file(si(1), &[0, 1], 100);
    h.upload_file(si(2), &[3], 100);
    assert_eq!(h.actor.report().figures.shares, 3);
    // Half a period on, one file's lease is renewed (for a period from then).
    h.now = h.now.after(Duration::from_secs(30));
    h.renew(si(2));
    let status = h.crawl_after(40);
    let pass = status.last.expect("a pass finished");
    assert_eq!(
        (pass.files_examined, pass.shares_removed, pass.bytes_freed),
        (2, 2, 200)
    );
    assert_eq!(h.held(si(1)), vec![], "its only lease lapsed");
    assert_eq!(h.held(si(2)), vec![(ShareNum(3), 100)], "renewed");
    let report = h.actor.report();
    assert_eq!(report.figures.used_bytes, 100, "space given back");
    assert_eq!((report.status.leased_files, report.figures.shares), (1, 1));
    // What is gone is gone for clients too, and a new upload of it starts afresh.
    assert_eq!(
        h.request(Request::List { si: si(1) }),
        Response::Shares(vec![])
    );
    h.upload_file(si(1), &[0], 100);
}

#[test]
fn nothing_is_collected_with_expiry_off_or_while_a_share_is_uploaded() {
    let mut off = Harness::new(10_000, collecting(Expiry::Off));
    off.input(Input::Start);
    off.upload_file(si(1), &[0], 100);
    let status = off.crawl_after(3600);
    assert_eq!(
        (status.current, status.last, status.next_pass),
        (None, None, None)
    );
    assert_eq!(off.held(si(1)).len(), 1);

    let mut h = Harness::new(10_000, collecting(Expiry::Leases));
    h.input(Input::Start);
    h.upload_file(si(1), &[0], 100);
    // A second share of the same file is still being uploaded when its lease lapses.
    assert_eq!(h.allocate(si(1), &[1], 100), allocated(&[], &[1]));
    let pass = h.crawl_after(120).last.expect("a pass finished");
    assert_eq!((pass.files_examined, pass.shares_removed), (1, 0));
    assert_eq!(h.held(si(1)).len(), 1);
}

#[test]
fn a_restart_in_the_middle_of_a_pass_resumes_it_where_it_stopped() {
    let config = StorageConfig {
        crawl_rate: 2,
        ..collecting(Expiry::Leases)
    };
    let mut h = Harness::new(10_000, config);
    h.input(Input::Start);
    for n in 1..=5 {
        h.upload_file(si(n), &[0], 10);
    }
    let status = h.crawl_after(120);
    let pass = status.current.expect("under way");
    let started = pass.started;
    assert_eq!((pass.files_examined, pass.shares_removed), (2, 2));
    assert_eq!(pass.cursor, Some(si(2)));
    let mut h = h.restart();
    let status = h.actor.report().collector;
    assert_eq!(status.current.as_ref().map(|p| p.files_examined), Some(2));
    h.crawl_after(1);
    let pass = h.crawl_after(1).last.expect("finished");
    assert_eq!(pass.started, started, "the same pass, resumed");
    assert_eq!(
        (pass.files_examined, pass.shares_removed),
        (5, 5),
        "no file examined twice"
    );
    assert!((1..=5).all(|n| h.held(si(n)).is_empty()));
    // The next pass waits for the interval, from the start of the last.
    let status = h.actor.report().collector;
    assert_eq!(
        status.next_pass,
        Some(started.after(Duration::from_secs(10)))
    );
}

#[test]
fn each_pass_counts_what_will_lapse_within_a_week() {
    let config = StorageConfig {
        lease_period: Duration::from_secs(3 * 24 * 3600),
        ..collecting(Expiry::Leases)
    };
    let mut h = Harness::new(10_000, config);
    h.input(Input::Start);
    h.upload_file(si(1), &[0, 1, 2], 100);
    let pass = h.crawl_after(1).last.expect("finished");
    assert_eq!(
        (pass.shares_lapsing, pass.bytes_lapsing, pass.shares_removed),
        (3, 300, 0)
    );
}

#[test]
fn the_rules_say_when_a_lease_lets_its_file_go() {
    let period = Duration::from_secs(100);
    let ends = Time(1_000_000_000_000); // renewed 100 s before
    let renewed = Time(ends.0 - 100_000_000_000);
    assert_eq!(Expiry::Off.lapse(ends, period), None);
    assert_eq!(Expiry::Leases.lapse(ends, period), Some(ends));
    let age = Duration::from_secs(500);
    assert_eq!(
        Expiry::Age(age).lapse(ends, period),
        Some(renewed.after(age))
    );
    assert_eq!(
        Expiry::Cutoff(Time(renewed.0 + 1)).lapse(ends, period),
        Some(Time(0))
    );
    assert_eq!(Expiry::Cutoff(renewed).lapse(ends, period), None);
}

#[test]
fn the_age_rule_keeps_a_file_past_its_leases_end_when_asked_to() {
    let age = Duration::from_secs(3600);
    let mut h = Harness::new(10_000, collecting(Expiry::Age(age)));
    h.input(Input::Start);
    h.upload_file(si(1), &[0], 100);
    h.crawl_after(120);
    assert_eq!(
        h.held(si(1)).len(),
        1,
        "its lease ended, but it is younger than the age"
    );
    let h = h.restart(); // the ended lease is still known after a restart
    let mut h = h;
    h.crawl_after(3600);
    assert_eq!(h.held(si(1)), vec![]);
}

#[test]
fn announcements_carry_the_nickname_and_the_figures() {
    let config = StorageConfig {
        nickname: "rack 3, shelf 2".into(),
        ..config()
    };
    let mut h = Harness::new(1000, config);
    h.input(Input::Start);
    h.upload_file(si(1), &[0, 1], 100);
    let sent = announcements(&h.input(Input::Timer(ANNOUNCE_TIMER)));
    assert!(sent[0].verify());
    assert_eq!(sent[0].nickname, "rack 3, shelf 2");
    let figures = StorageFigures {
        shares: 2,
        used_bytes: 200,
        free_space: 800,
    };
    assert_eq!(sent[0].figures, figures);
    assert_eq!(h.actor.report().figures, figures, "one schema for both");
}

#[test]
fn the_walk_records_where_it_is_every_few_steps_not_at_each() {
    let config = StorageConfig {
        crawl_rate: 1,
        lease_period: Duration::from_secs(30 * 24 * 3600),
        ..collecting(Expiry::Leases)
    };
    let mut h = Harness::new(100_000, config);
    h.input(Input::Start);
    for n in 1..=50 {
        h.upload_file(si(n), &[0], 10);
    }
    let before = h.journal.len();
    let mut steps = 0;
    while h.crawl_after(1).last.is_none() {
        steps += 1;
    }
    let records = h.journal.len() - before;
    assert_eq!(steps, 50, "a file a step");
    assert!(
        records <= 2 + 50 / CHECKPOINT_STEPS as usize,
        "{records} records for {steps} steps"
    );
}

#[test]
fn a_server_announces_itself_to_each_of_its_introducers() {
    let second = Addr::new(NodeId([18; 32]), Service::Introducer);
    let key = NodeKey::from_seed([1; 32]);
    let server = StorageServer::new(
        key,
        "10.0.0.1:4000".into(),
        Some(INTRODUCER),
        Box::new(MemShareStore::new(1000)),
        Box::new(MemJournal::new()),
        config(),
    )
    .with_more_introducers([second, INTRODUCER]);
    let me = Addr::new(NodeKey::from_seed([1; 32]).id(), Service::Storage);
    let mut h = Driven::new(server, me, T0, 1);
    let to: Vec<Addr> = announced(&h.input(Input::Start))
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(to, vec![INTRODUCER, second]);
}

#[test]
fn a_disk_failing_under_the_collector_loses_no_lease_and_the_next_pass_finishes_the_job() {
    let mut h = Harness::new(10_000, collecting(Expiry::Leases));
    h.input(Input::Start);
    h.upload_file(si(1), &[0, 1], 100);
    h.flaky_store.fail(true);
    let pass = h.crawl_after(120).last.expect("the pass ends");
    assert_eq!((pass.shares_removed, pass.errors), (0, 1), "{pass:?}");
    h.flaky_store.fail(false);
    assert_eq!(h.held(si(1)).len(), 2, "nothing deleted");
    assert_eq!(
        h.actor.status().leased_files,
        1,
        "its leases kept for the next pass"
    );
    let pass = h.crawl_after(10).last.expect("the next pass ends");
    assert_eq!((pass.shares_removed, pass.errors), (2, 0));
    assert_eq!(h.held(si(1)), vec![]);
}
