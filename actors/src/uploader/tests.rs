//! The uploader against real storage servers, honest and not (see `testing::grid`).

use super::*;
use crate::actor::{Addr, Service};
use crate::placement::happiness;
use crate::protocol::{Message, Request, RequestId, Response, MAX_DATA_PER_MESSAGE};
use crate::testing::grid::{plaintext, Fault, Grid, TestFile, START};
use proptest::prelude::*;

const SIZE: usize = 4321;
const CAPACITY: u64 = 1 << 20;

fn params(k: usize, n: usize) -> EncodingParams {
    EncodingParams::new(k, n, 1000).unwrap()
}

fn key() -> Key {
    Key([42; 16])
}

fn config() -> UploadConfig {
    UploadConfig {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(60),
        window: 4,
        lease_secret: [3; 32],
    }
}

/// Uploads the user's input (promising `size` bytes) to every server of the grid.
fn upload(grid: &mut Grid, params: EncodingParams, happy: usize, size: u64, config: UploadConfig) {
    let servers = grid.ids();
    let mut up = Uploader::new(LocalId(9), key(), params, happy, size, servers, config);
    grid.run(&mut up);
    assert!(grid.stopped.is_some(), "the uploader stops");
}

/// The servers in the order this test file's uploads ask them.
fn ring(grid: &Grid) -> Vec<NodeId> {
    permuted_ring(key().storage_index(), &grid.ids())
}

/// Checks a successful upload: the cap is the codec's, every share the receipt names is
/// complete where it says and byte-equal to the codec's share, and the file decodes.
fn assert_uploaded(grid: &Grid, params: EncodingParams, happy: usize) -> UploadReceipt {
    let LocalResponse::Uploaded(Ok(receipt)) = grid.reply().clone() else {
        panic!("upload failed: {:?}", grid.replies);
    };
    let file = TestFile::encode(key(), params, grid.user.input.clone());
    assert_eq!(receipt.cap, file.cap);
    assert!(receipt.happiness >= happy);
    let placement: Placement = receipt
        .placement
        .iter()
        .map(|(&s, servers)| (s, servers.iter().copied().collect()))
        .collect();
    assert_eq!(happiness(&placement), receipt.happiness);
    for (share, servers) in &receipt.placement {
        for server in servers {
            let stored = grid.share(*server, file.si, *share);
            let stored = stored.unwrap_or_else(|| panic!("share {share:?} is not complete"));
            let expected = &file.shares[share.index()];
            assert_eq!(&stored[..expected.len()], &expected[..], "share {share:?}");
            assert!(stored[expected.len()..].iter().all(|&b| b == 0));
        }
    }
    assert_eq!(grid.decode(&file.cap).unwrap(), grid.user.input);
    receipt
}

fn not_happy(grid: &Grid) -> (usize, usize, usize, usize, String) {
    match grid.reply() {
        LocalResponse::Uploaded(Err(UploadError::NotHappy {
            achieved,
            known,
            reachable,
            accepting,
            detail,
            ..
        })) => (*achieved, *known, *reachable, *accepting, detail.clone()),
        other => panic!("expected NotHappy, got {other:?}"),
    }
}

#[test]
fn uploads_one_share_per_server_and_the_shares_decode() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 1);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 7);
    assert_eq!(receipt.happiness, 10);
    assert!(receipt.placement.values().all(|s| s.len() == 1));
    assert_eq!(grid.incoming(), 0);
    // Five segments of 1002 bytes, read once each, then the probe past the end.
    let pulls: Vec<(u64, usize)> = (0..4).map(|s| (s * 1002, 1002)).collect();
    assert_eq!(grid.user.pulls[..4], pulls[..]);
    assert_eq!(grid.user.pulls[4..], [(4008, 313), (4321, 1)]);
}

#[test]
fn the_window_bounds_writes_in_flight() {
    for window in [1, 4] {
        let mut grid = Grid::new(10, CAPACITY);
        grid.user.input = plaintext(20_000, 2);
        let config = UploadConfig { window, ..config() };
        upload(&mut grid, params(3, 10), 7, 20_000, config);
        assert_uploaded(&grid, params(3, 10), 7);
        // Each share's header goes with its first block.
        let bound = (window + 1) * 10;
        assert!(grid.max_writes_in_flight <= bound, "window {window}");
        if window == 4 {
            assert!(grid.max_writes_in_flight > 20, "writes are pipelined");
        }
    }
}

#[test]
fn fewer_servers_than_shares_each_take_several() {
    let mut grid = Grid::new(4, CAPACITY);
    grid.user.input = plaintext(SIZE, 3);
    upload(&mut grid, params(3, 10), 4, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 4);
    assert_eq!(receipt.happiness, 4);
    assert_eq!(receipt.placement.len(), 10, "every share placed");
    for server in grid.ids() {
        let held = receipt
            .placement
            .values()
            .filter(|s| s.contains(&server))
            .count();
        assert!((2..=3).contains(&held), "shares spread evenly: {held}");
    }
}

#[test]
fn too_few_known_servers_fail_at_once() {
    let mut grid = Grid::new(3, CAPACITY);
    grid.user.input = plaintext(SIZE, 4);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let (achieved, known, reachable, _, detail) = not_happy(&grid);
    assert_eq!((achieved, known, reachable), (0, 3, 0));
    assert!(
        detail.contains("only 3 storage servers are known"),
        "{detail}"
    );
    assert!(grid.requests.is_empty());
}

#[test]
fn refusing_and_silent_servers_leave_it_not_happy_and_everything_is_aborted() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 5);
    let ring = ring(&grid);
    for &s in &ring[..4] {
        grid.server(s).store.set_capacity(0);
    }
    for &s in &ring[4..6] {
        grid.server(s).fault = Fault::Silent;
    }
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let (achieved, known, reachable, accepting, detail) = not_happy(&grid);
    assert_eq!((achieved, known, reachable, accepting), (4, 10, 8, 4));
    assert!(
        detail.starts_with("4 refused (full), 2 unreachable"),
        "{detail}"
    );
    let message = grid.reply().clone();
    let LocalResponse::Uploaded(Err(e)) = message else {
        unreachable!()
    };
    assert!(e.to_string().contains("upload needs 7 servers"), "{e}");
    assert_eq!(grid.incoming(), 0, "allocations aborted");
    assert_eq!(grid.complete(), 0);
}

#[test]
fn full_and_broken_servers_are_passed_over_when_enough_accept() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 6);
    let ring = ring(&grid);
    grid.server(ring[0]).store.set_capacity(100);
    grid.server(ring[5]).fault = Fault::RefusesAllocations;
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 7);
    assert_eq!(receipt.happiness, 8);
    assert_eq!(receipt.placement.len(), 10);
    let used: BTreeSet<NodeId> = receipt.placement.values().flatten().copied().collect();
    assert!(!used.contains(&ring[0]) && !used.contains(&ring[5]));
}

#[test]
fn a_server_dying_mid_upload_is_replaced_from_the_ring() {
    let mut grid = Grid::new(12, CAPACITY);
    grid.user.input = plaintext(SIZE, 7);
    let ring = ring(&grid);
    grid.server(ring[3]).fault = Fault::SilentAfterWrites(3);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 7);
    assert_eq!(receipt.happiness, 10);
    assert_eq!(receipt.placement[&ShareNum(3)], vec![ring[10]]);
    let restarts = grid
        .user
        .pulls
        .iter()
        .filter(|&&(offset, _)| offset == 0)
        .count();
    assert_eq!(restarts, 2, "the stream went back to the start once");
}

#[test]
fn a_failing_server_with_no_spare_hands_its_share_to_another() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 8);
    let ring = ring(&grid);
    grid.server(ring[2]).fault = Fault::RefusesWritesAfter(4);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 7);
    assert_eq!(receipt.happiness, 9);
    assert_eq!(receipt.placement.len(), 10, "share 2 found another home");
    assert!(!receipt.placement.values().flatten().any(|&s| s == ring[2]));
}

#[test]
fn a_server_dying_while_closing_is_replaced_after_the_trailers() {
    let mut grid = Grid::new(11, CAPACITY);
    grid.user.input = plaintext(SIZE, 9);
    let ring = ring(&grid);
    // Header, five blocks and the trailer: it dies before its Close.
    grid.server(ring[0]).fault = Fault::SilentAfterWrites(7);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 7);
    assert_eq!(receipt.placement[&ShareNum(0)], vec![ring[10]]);
}

#[test]
fn losing_a_server_below_happy_fails_and_aborts() {
    let mut grid = Grid::new(7, CAPACITY);
    grid.user.input = plaintext(SIZE, 10);
    let ring = ring(&grid);
    grid.server(ring[1]).fault = Fault::SilentAfterWrites(2);
    upload(&mut grid, params(3, 7), 7, SIZE as u64, config());
    let (achieved, known, reachable, accepting, detail) = not_happy(&grid);
    assert_eq!((achieved, known, reachable, accepting), (6, 7, 7, 6));
    assert!(detail.contains("1 failed during the upload"), "{detail}");
    for (id, server) in &grid.servers {
        if *id != ring[1] {
            assert_eq!(server.store.counts(), (0, 0), "nothing left on {id:?}");
        }
    }
}

#[test]
fn input_shorter_than_promised_fails() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(3000, 11);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let LocalResponse::Uploaded(Err(UploadError::Input(msg))) = grid.reply() else {
        panic!("{:?}", grid.replies);
    };
    assert!(
        msg.contains("ended after 3000 of the promised 4321 bytes"),
        "{msg}"
    );
    assert_eq!(grid.incoming(), 0);
    assert_eq!(grid.complete(), 0);
}

#[test]
fn input_longer_than_promised_fails() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE + 1, 12);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let LocalResponse::Uploaded(Err(UploadError::Input(msg))) = grid.reply() else {
        panic!("{:?}", grid.replies);
    };
    assert!(msg.contains("more than the promised 4321 bytes"), "{msg}");
    assert_eq!(grid.complete(), 0);
}

#[test]
fn input_that_changes_while_a_share_is_rebuilt_fails() {
    let mut grid = Grid::new(11, CAPACITY);
    grid.user.input = plaintext(SIZE, 19);
    let ring = ring(&grid);
    grid.server(ring[0]).fault = Fault::SilentAfterWrites(7);
    // Five segments and the probe past the end; the rebuild then reads other bytes.
    grid.user.changes_input = Some((6, plaintext(SIZE, 20)));
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let LocalResponse::Uploaded(Err(UploadError::Input(msg))) = grid.reply() else {
        panic!("{:?}", grid.replies);
    };
    assert!(msg.contains("the input changed during the upload"), "{msg}");
    let rebuilt = &grid.servers[&ring[10]];
    assert_eq!(rebuilt.store.counts(), (0, 0), "aborted");
}

#[test]
fn the_deadline_ends_the_upload() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 13);
    grid.user.answers_pulls = false;
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    assert_eq!(
        grid.reply(),
        &LocalResponse::Uploaded(Err(UploadError::Deadline))
    );
    assert_eq!(grid.stopped, Some(START.after(config().deadline)));
    assert_eq!(grid.incoming(), 0);
}

#[test]
fn shares_already_on_the_servers_are_not_uploaded_again() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 14);
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let first = assert_uploaded(&grid, params(3, 10), 7);
    grid.replies.clear();
    grid.requests.clear();
    grid.stopped = None;
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let second = assert_uploaded(&grid, params(3, 10), 7);
    assert_eq!(second.cap, first.cap);
    assert_eq!(second.happiness, 10);
    let writes = grid.requests.iter();
    assert!(!writes
        .into_iter()
        .any(|(_, r)| matches!(r, Request::Write { .. })));
}

#[test]
fn blocks_bigger_than_a_message_are_split() {
    let size = 2 * (MAX_DATA_PER_MESSAGE as usize) + 10;
    let params = EncodingParams::new(1, 2, size as u64 - 5).unwrap();
    let mut grid = Grid::new(2, 3 * size as u64);
    grid.user.input = plaintext(size, 15);
    upload(&mut grid, params, 2, size as u64, config());
    assert_uploaded(&grid, params, 2);
    for (_, r) in &grid.requests {
        if let Request::Write { data, .. } = r {
            assert!(data.len() as u64 <= MAX_DATA_PER_MESSAGE);
        }
    }
}

#[test]
fn invalid_uploads_are_refused() {
    let bad = [
        (params(3, 10), 7, 0, "empty file"),
        (params(3, 10), 0, 100, "happy=0"),
        (params(3, 10), 11, 100, "happy=11"),
        (
            EncodingParams {
                k: 4,
                n: 3,
                max_segment_size: 10,
            },
            1,
            100,
            "encoding parameters",
        ),
    ];
    for (params, happy, size, what) in bad {
        let mut grid = Grid::new(10, CAPACITY);
        upload(&mut grid, params, happy, size, config());
        let LocalResponse::Uploaded(Err(UploadError::Invalid(msg))) = grid.reply() else {
            panic!("{what}: {:?}", grid.replies);
        };
        assert!(msg.contains(what), "{msg}");
    }
}

#[test]
fn stray_and_malformed_answers_are_ignored() {
    let mut grid = Grid::new(10, CAPACITY);
    grid.user.input = plaintext(SIZE, 16);
    let ring = ring(&grid);
    let storage = |n| Addr::new(n, Service::Storage);
    let junk = [
        // Wrong kind of answer to the first Allocate (id 1, to ring[0]).
        (storage(ring[0]), 1, Response::Data(vec![1, 2, 3])),
        // The right kind from the wrong server.
        (storage(ring[5]), 1, Response::Ok),
        (Addr::new(ring[0], Service::Client), 1, Response::Ok),
        // Nobody asked.
        (storage(ring[0]), 999, Response::Ok),
        // Shares it was not asked for, and a share past N.
        (
            storage(ring[1]),
            2,
            Response::Allocated {
                already_have: vec![ShareNum(200)],
                allocated: vec![ShareNum(7)],
            },
        ),
    ];
    // Right after the start, before any real answer.
    let soon = |ns| START.after(Duration::from_nanos(ns));
    for (from, id, body) in junk {
        let msg = Message::Response {
            id: RequestId(id),
            body,
        };
        grid.schedule(soon(1), Input::Message { from, msg });
    }
    grid.schedule(
        soon(2),
        Input::Plaintext {
            offset: 77,
            data: vec![0; 5],
        },
    );
    grid.schedule(soon(3), Input::Timer(TimerId(12345)));
    upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
    let receipt = assert_uploaded(&grid, params(3, 10), 7);
    assert!(!receipt.placement.contains_key(&ShareNum(200)));
}

#[test]
fn runs_are_deterministic() {
    let run = || {
        let mut grid = Grid::new(12, CAPACITY);
        grid.user.input = plaintext(SIZE, 17);
        let ring = ring(&grid);
        grid.server(ring[4]).fault = Fault::SilentAfterWrites(2);
        upload(&mut grid, params(3, 10), 7, SIZE as u64, config());
        format!("{:?} {:?} {:?}", grid.requests, grid.replies, grid.now)
    };
    assert_eq!(run(), run());
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => Just(Fault::Silent),
        1 => Just(Fault::RefusesAllocations),
        1 => Just(Fault::Late),
        1 => Just(Fault::Duplicating),
        2 => (0usize..9).prop_map(Fault::SilentAfterWrites),
        2 => (0usize..9).prop_map(Fault::RefusesWritesAfter),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the servers do, the upload ends with one answer; a success always decodes
    /// and every share it names is complete where it says.
    #[test]
    fn any_faults_give_a_decodable_success_or_an_error(
        faults in proptest::collection::vec(fault(), 4..12),
        small in any::<bool>(),
        happy in 1usize..=6,
        size in 1usize..6000,
        window in 1usize..4,
    ) {
        let mut grid = Grid::new(faults.len() as u8, CAPACITY);
        for (server, f) in grid.servers.values_mut().zip(&faults) {
            server.fault = f.clone();
            if small && f == &Fault::None {
                server.store.set_capacity(9000);
            }
        }
        grid.user.input = plaintext(size, 18);
        let config = UploadConfig { window, ..config() };
        upload(&mut grid, params(2, 6), happy, size as u64, config);
        match grid.reply() {
            LocalResponse::Uploaded(Ok(_)) => {
                assert_uploaded(&grid, params(2, 6), happy);
            }
            LocalResponse::Uploaded(Err(UploadError::NotHappy { achieved, detail, .. })) => {
                prop_assert!(*achieved < happy || detail.contains("reading the file needs 2"));
                for server in grid.servers.values() {
                    if matches!(server.fault, Fault::None | Fault::RefusesAllocations | Fault::Duplicating) {
                        prop_assert_eq!(server.store.counts().0, 0, "allocations aborted");
                    }
                }
            }
            other => prop_assert!(false, "unexpected answer {:?}", other),
        }
    }
}
