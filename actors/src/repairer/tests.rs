//! The repairer against real storage servers, honest and not.

use super::*;
use crate::checker::ServerScope;
use crate::testing::grid::{file, node, Fault, Grid, TestFile};
use proptest::prelude::*;
use std::time::Duration;

fn config() -> UploadConfig {
    UploadConfig {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(600),
        window: 2,
        lease_secret: [3; 32],
    }
}

/// A 3-of-10 file on `servers` servers, share `i` on server `i + 1`, the holders of shares
/// `0..dead` silent (gone).
fn damaged(servers: u8, dead: usize) -> (Grid, TestFile) {
    let mut grid = Grid::new(servers, 1 << 20);
    let f = file(20_000, 3, 10, 4096);
    let placement: Vec<(usize, NodeId)> = (0..10).map(|i| (i, node(i as u8 + 1))).collect();
    f.place(&mut grid, &placement);
    for i in 0..dead {
        grid.fault(node(i as u8 + 1), Fault::Silent);
    }
    (grid, f)
}

fn repair_with(
    grid: &mut Grid,
    f: &TestFile,
    happy: usize,
    config: UploadConfig,
) -> Result<RepairReport, RepairError> {
    let options = CheckOptions::default();
    let mut repairer = Repairer::new(
        LocalId(1),
        f.cap.verifier(),
        happy,
        options,
        grid.ids(),
        config,
    );
    grid.run(&mut repairer);
    assert!(grid.stopped.is_some(), "a repair always ends");
    let quiet = grid.user.pulls.is_empty() && grid.user.output.is_empty();
    assert!(
        quiet && grid.spawned.is_empty(),
        "a repair has no plaintext and spawns nothing"
    );
    match grid.reply() {
        LocalResponse::Repaired(result) => result.clone(),
        other => panic!("a repair answered {other:?}"),
    }
}

fn repair(grid: &mut Grid, f: &TestFile, happy: usize) -> Result<RepairReport, RepairError> {
    repair_with(grid, f, happy, config())
}

/// Every repaired share is on its server, byte for byte the share the upload made.
fn assert_identical(grid: &Grid, f: &TestFile, repaired: &[(ShareNum, NodeId)]) {
    for &(share, server) in repaired {
        let stored = grid
            .share(server, f.si, share)
            .expect("the repaired share is there");
        assert!(
            stored == f.stored(share.index()),
            "share {} differs from the original",
            share.0
        );
    }
}

#[test]
fn lost_shares_are_rebuilt_byte_for_byte_on_fresh_servers() {
    let (mut grid, f) = damaged(15, 5);
    let r = repair(&mut grid, &f, 7).unwrap();
    assert_eq!((r.happiness_before, r.distinct_before), (5, 5));
    assert_eq!((r.happiness_after, r.distinct_after), (10, 10));
    let shares: Vec<ShareNum> = r.repaired.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        shares,
        (0..5).map(ShareNum).collect::<Vec<_>>(),
        "every lost share"
    );
    let fresh: BTreeSet<NodeId> = (11..=15).map(node).collect();
    let used: BTreeSet<NodeId> = r.repaired.iter().map(|(_, s)| *s).collect();
    assert_eq!(used, fresh, "one share on each server that held none");
    assert_identical(&grid, &f, &r.repaired);
    let share_size = f.shares[0].len() as u64;
    assert_eq!(
        r.bytes_uploaded,
        5 * share_size,
        "each new share written once, whole"
    );
    let data = 3 * 20_000_u64.div_ceil(3);
    assert!(
        r.bytes_downloaded > data && r.bytes_downloaded < data + 3 * share_size / 2,
        "{}",
        r.bytes_downloaded
    );
    assert!(r.faults.is_empty());
    assert_eq!(grid.incoming(), 0, "nothing left half-written");
    // The new shares alone, with any one old one, read the file.
    let mut from: Vec<NodeId> = used.into_iter().collect();
    from.truncate(2);
    from.push(node(9));
    assert_eq!(grid.decode_from(&f.cap, &from).unwrap(), f.data);
}

#[test]
fn with_few_free_servers_happiness_is_restored_but_not_every_share() {
    let (mut grid, f) = damaged(12, 5);
    let r = repair(&mut grid, &f, 7).unwrap();
    assert_eq!((r.happiness_before, r.happiness_after), (5, 7));
    assert_eq!(r.repaired.len(), 2);
    assert_identical(&grid, &f, &r.repaired);
    assert_eq!(r.bytes_uploaded, 2 * f.shares[0].len() as u64);
}

#[test]
fn a_healthy_file_is_left_alone() {
    let (mut grid, f) = damaged(12, 0);
    let r = repair(&mut grid, &f, 7).unwrap();
    assert!(r.repaired.is_empty());
    assert_eq!((r.bytes_downloaded, r.bytes_uploaded), (0, 0));
    assert_eq!((r.happiness_before, r.happiness_after), (10, 10));
    assert!(grid
        .requests
        .iter()
        .all(|(_, r)| matches!(r, Request::List { .. })));
}

#[test]
fn fewer_than_k_shares_fail_before_anything_is_written() {
    let (mut grid, f) = damaged(12, 8);
    let err = repair(&mut grid, &f, 7).unwrap_err();
    let RepairError::NotEnoughShares {
        needed: 3,
        found: 2,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(err.to_string().contains("needs 3"), "{err}");
    assert!(!grid
        .requests
        .iter()
        .any(|(_, r)| matches!(r, Request::Allocate { .. } | Request::Write { .. })));
}

#[test]
fn a_corrupt_source_is_advised_and_replaced() {
    let (mut grid, f) = damaged(15, 5);
    // The holder of share 5, the first source tried, serves rotten bytes.
    grid.fault(node(6), Fault::CorruptsReads);
    let r = repair(&mut grid, &f, 7).unwrap();
    assert_eq!(r.faults.len(), 1, "{:?}", r.faults);
    assert!(
        r.faults[0].starts_with("share 5 on server"),
        "{:?}",
        r.faults
    );
    assert!(grid
        .requests
        .iter()
        .any(|(s, r)| *s == node(6) && matches!(r, Request::AdviseCorrupt { .. })));
    assert_identical(&grid, &f, &r.repaired);
    // Its copy does not count: share 5 is rebuilt, elsewhere.
    assert!(r
        .repaired
        .iter()
        .any(|&(share, s)| share == ShareNum(5) && s != node(6)));
    assert_eq!((r.distinct_after, r.happiness_after), (10, 10));
}

#[test]
fn a_server_claiming_shares_it_lacks_is_found_out_when_read() {
    let (mut grid, f) = damaged(15, 5);
    // A server that holds nothing says it holds every share: never offered a share, and if
    // read from, set aside.
    grid.fault(node(11), Fault::ClaimsAll(10));
    let r = repair(&mut grid, &f, 7).unwrap();
    assert!(r.happiness_after >= 7);
    assert!(!r.repaired.iter().any(|&(_, s)| s == node(11)));
    assert_identical(&grid, &f, &r.repaired);
}

#[test]
fn no_server_accepting_is_a_typed_failure_with_nothing_left_behind() {
    let mut grid = Grid::new(12, 60_000);
    let f = file(20_000, 3, 10, 4096);
    let placement: Vec<(usize, NodeId)> = (0..10).map(|i| (i, node(i as u8 + 1))).collect();
    f.place(&mut grid, &placement);
    for i in 0..5 {
        grid.fault(node(i + 1), Fault::Silent);
    }
    grid.fault(node(11), Fault::RefusesWritesAfter(0));
    // Server 12 is too small for a share.
    grid.server(node(12)).store.set_capacity(1000);
    let err = repair(&mut grid, &f, 7).unwrap_err();
    let RepairError::NotHappy {
        happy: 7,
        achieved: 5,
        repaired,
        traffic,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(repaired.is_empty());
    assert!(traffic.bytes_uploaded > 0, "the refused writes were tried");
    assert!(grid
        .requests
        .iter()
        .any(|(s, r)| *s == node(11) && matches!(r, Request::Abort { .. })));
    assert_eq!(grid.incoming(), 0, "the refused home was aborted");
}

#[test]
fn a_deadline_ends_the_repair_and_frees_what_it_reserved() {
    let (mut grid, f) = damaged(15, 5);
    grid.latency = Duration::from_millis(300);
    let config = UploadConfig {
        deadline: Duration::from_secs(3),
        ..config()
    };
    let err = repair_with(&mut grid, &f, 7, config).unwrap_err();
    assert!(matches!(err, RepairError::Deadline { .. }), "{err:?}");
    assert!(err.traffic().bytes_downloaded > 0);
    assert_eq!(grid.incoming(), 0);
}

#[test]
fn bad_arguments_are_refused_at_once() {
    let (mut grid, f) = damaged(12, 5);
    let err = repair(&mut grid, &f, 0).unwrap_err();
    assert!(matches!(err, RepairError::Invalid(_)), "{err:?}");
    assert!(grid.requests.is_empty());
}

#[test]
fn a_holder_past_the_survey_says_so_when_offered_its_share() {
    // The survey asks the first N=10 servers of the ring: nine hold shares 1..=9, the tenth
    // is gone. Share 0 is on the eleventh, which the survey did not ask.
    let mut grid = Grid::new(11, 1 << 20);
    let f = file(20_000, 3, 10, 4096);
    let ring = permuted_ring(f.si, &grid.ids());
    let mut placement: Vec<(usize, NodeId)> = (0..9).map(|i| (i + 1, ring[i])).collect();
    placement.push((0, ring[10]));
    f.place(&mut grid, &placement);
    grid.fault(ring[9], Fault::Silent);
    let options = CheckOptions {
        servers: ServerScope::Ring { extra: 0 },
        verify: false,
        add_lease: false,
    };
    let mut repairer = Repairer::new(
        LocalId(1),
        f.cap.verifier(),
        10,
        options,
        grid.ids(),
        config(),
    );
    grid.run(&mut repairer);
    let LocalResponse::Repaired(Ok(r)) = grid.reply() else {
        panic!("{:?}", grid.reply())
    };
    let listed: Vec<NodeId> = grid
        .requests
        .iter()
        .filter(|(_, r)| matches!(r, Request::List { .. }))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(listed, ring[..10].to_vec());
    assert_eq!((r.happiness_before, r.happiness_after), (9, 10));
    assert!(
        r.repaired.is_empty(),
        "share 0 was found, not rebuilt: {:?}",
        r.repaired
    );
    assert_eq!(r.bytes_uploaded, 0);
    assert_eq!(grid.incoming(), 0);
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        5 => Just(Fault::None),
        1 => Just(Fault::Silent),
        1 => Just(Fault::Late),
        1 => Just(Fault::Duplicating),
        1 => Just(Fault::CorruptsReads),
        1 => Just(Fault::RefusesWritesAfter(0)),
        1 => (0u8..=255).prop_map(Fault::ClaimsAll),
        1 => Just(Fault::Answers(Response::Ok)),
        1 => Just(Fault::Answers(Response::Data(vec![0; 40]))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Whatever the servers do, a repair ends with one answer, leaves no share half-written,
    /// and every share it says it placed is there, byte for byte the original.
    #[test]
    fn any_server_behaviour_ends_in_one_answer_and_only_good_shares(
        faults in proptest::collection::vec(fault(), 8),
        placement in proptest::collection::vec(0u8..8, 5),
        happy in 1usize..=5,
    ) {
        let mut grid = Grid::new(8, 1 << 20);
        let f = file(5000, 2, 5, 2048);
        let placed: Vec<(usize, NodeId)> = placement.iter().enumerate().map(|(s, &i)| (s, node(i + 1))).collect();
        f.place(&mut grid, &placed);
        for (i, fault) in faults.into_iter().enumerate() {
            grid.fault(node(i as u8 + 1), fault);
        }
        let result = repair(&mut grid, &f, happy);
        prop_assert_eq!(grid.incoming(), 0);
        let repaired = match &result {
            Ok(r) => {
                prop_assert!(r.happiness_after >= happy);
                r.repaired.clone()
            }
            Err(RepairError::NotHappy { repaired, .. } | RepairError::Deadline { repaired, .. }) => repaired.clone(),
            Err(_) => Vec::new(),
        };
        for (share, server) in repaired {
            let stored = grid.share(server, f.si, share);
            prop_assert!(stored == Some(f.stored(share.index())));
        }
    }
}
