//! The checker against real storage servers, honest and not.

use super::*;
use crate::protocol::RemoteError;
use crate::testing::grid::{file, node, Fault, Grid, TestFile};
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(1);

/// A 3-of-10 file on servers 1..=10 of 12, share `i` on server `i + 1`.
fn spread() -> (Grid, TestFile) {
    let mut grid = Grid::new(12, 1 << 20);
    let f = file(20_000, 3, 10, 4096);
    let placement: Vec<(usize, NodeId)> = (0..10).map(|i| (i, node(i as u8 + 1))).collect();
    f.place(&mut grid, &placement);
    (grid, f)
}

fn check(
    grid: &mut Grid,
    f: &TestFile,
    happy: usize,
    options: CheckOptions,
) -> Result<CheckReport, CheckError> {
    let mut checker = Checker::new(
        LocalId(1),
        f.cap.verifier(),
        happy,
        options,
        grid.ids(),
        TIMEOUT,
    );
    grid.run(&mut checker);
    assert!(grid.stopped.is_some(), "a check always ends");
    let quiet = grid.user.pulls.is_empty() && grid.user.output.is_empty();
    assert!(
        quiet && grid.spawned.is_empty(),
        "a check has no plaintext and spawns nothing"
    );
    match grid.reply() {
        LocalResponse::Checked(result) => result.clone(),
        other => panic!("a check answered {other:?}"),
    }
}

#[test]
fn a_healthy_file_is_reported_healthy() {
    let (mut grid, f) = spread();
    let r = check(&mut grid, &f, 7, CheckOptions::default()).unwrap();
    assert_eq!((r.k, r.n, r.happy), (3, 10, 7));
    assert_eq!((r.distinct_shares, r.happiness), (10, 10));
    assert_eq!((r.servers_asked, r.servers_answered), (12, 12));
    assert!(r.healthy && r.recoverable);
    assert_eq!(r.holders[&ShareNum(4)], vec![node(5)]);
    assert_eq!(r.storage_index, f.si);
    let lists = grid
        .requests
        .iter()
        .filter(|(_, r)| matches!(r, Request::List { .. }))
        .count();
    assert_eq!(lists, 12, "one List per server, nothing else");
    assert_eq!(grid.requests.len(), 12);
}

#[test]
fn silent_and_malformed_servers_count_as_unanswered() {
    let (mut grid, f) = spread();
    grid.fault(node(1), Fault::Silent);
    grid.fault(node(2), Fault::Late);
    grid.fault(node(3), Fault::Answers(Response::Ok));
    grid.fault(node(4), Fault::Answers(Response::Data(vec![1, 2, 3])));
    grid.fault(
        node(5),
        Fault::Answers(Response::Err(RemoteError::Disk("x".into()))),
    );
    grid.fault(node(6), Fault::Duplicating);
    let r = check(&mut grid, &f, 7, CheckOptions::default()).unwrap();
    assert_eq!((r.servers_asked, r.servers_answered), (12, 7));
    assert_eq!((r.distinct_shares, r.happiness), (5, 5));
    assert!(!r.healthy && r.recoverable);
    assert!(!r.holders.contains_key(&ShareNum(0)));
}

#[test]
fn the_ring_scope_asks_a_prefix_of_the_permuted_ring() {
    let (mut grid, f) = spread();
    let options = CheckOptions {
        servers: ServerScope::Ring { extra: 0 },
        verify: false,
        add_lease: false,
    };
    let r = check(&mut grid, &f, 7, options).unwrap();
    assert_eq!(r.servers_asked, 10);
    let ring = permuted_ring(f.si, &grid.ids());
    let asked: Vec<NodeId> = grid.requests.iter().map(|(s, _)| *s).collect();
    assert_eq!(asked, ring[..10].to_vec());
    assert_eq!(ServerScope::All.select(f.si, 10, &grid.ids()), ring);
}

#[test]
fn without_verify_a_lying_server_is_believed_with_verify_it_is_not() {
    let (mut grid, f) = spread();
    // Server 11 holds nothing but claims all ten shares; server 2 serves rotten bytes.
    grid.fault(node(11), Fault::ClaimsAll(10));
    grid.fault(node(2), Fault::CorruptsReads);
    let believed = check(&mut grid, &f, 7, CheckOptions::default()).unwrap();
    assert_eq!(believed.holders[&ShareNum(0)], {
        let mut v = vec![node(1), node(11)];
        v.sort();
        v
    });

    let (mut grid, f) = spread();
    grid.fault(node(11), Fault::ClaimsAll(10));
    grid.fault(node(2), Fault::CorruptsReads);
    let options = CheckOptions {
        verify: true,
        ..CheckOptions::default()
    };
    let r = check(&mut grid, &f, 7, options).unwrap();
    assert_eq!(
        r.distinct_shares, 9,
        "share 1 is only on the corrupting server"
    );
    assert!(r
        .holders
        .values()
        .flatten()
        .all(|&s| s != node(11) && s != node(2)));
    assert_eq!(r.faults.len(), 11, "{:#?}", r.faults);
    // Corrupt bytes earn an advisory; a share that is not there (a failed read) does not.
    let advised: Vec<NodeId> = grid
        .requests
        .iter()
        .filter(|(_, r)| matches!(r, Request::AdviseCorrupt { .. }))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(advised, vec![node(2)]);
}

#[test]
fn verifying_reads_every_block_of_every_share() {
    let (mut grid, f) = spread();
    let options = CheckOptions {
        verify: true,
        ..CheckOptions::default()
    };
    let r = check(&mut grid, &f, 7, options).unwrap();
    assert!(r.healthy && r.faults.is_empty());
    let read: u64 = grid
        .requests
        .iter()
        .filter_map(|(_, r)| match r {
            Request::Read { offset, len, .. } if *offset >= 0x24 && *offset < 0x24 + 7000 => {
                Some(*len)
            }
            _ => None,
        })
        .sum();
    assert_eq!(
        read,
        10 * 20_000_u64.div_ceil(3),
        "every block of every share"
    );
}

#[test]
fn bad_arguments_are_refused_at_once() {
    let (mut grid, f) = spread();
    let mut cap = f.cap.verifier();
    cap.k = 0;
    let mut checker = Checker::new(
        LocalId(1),
        cap,
        7,
        CheckOptions::default(),
        grid.ids(),
        TIMEOUT,
    );
    grid.run(&mut checker);
    assert!(matches!(
        grid.reply(),
        LocalResponse::Checked(Err(CheckError::Invalid(_)))
    ));
    assert!(grid.requests.is_empty());
    let (mut grid, f) = spread();
    let err = check(&mut grid, &f, 11, CheckOptions::default()).unwrap_err();
    assert!(err.to_string().contains("happy=11"), "{err}");
}

#[test]
fn no_servers_is_an_unhealthy_report() {
    let f = file(1000, 3, 10, 4096);
    let mut grid = Grid::new(0, 0);
    let r = check(&mut grid, &f, 7, CheckOptions::default()).unwrap();
    assert_eq!((r.servers_asked, r.distinct_shares), (0, 0));
    assert!(!r.healthy && !r.recoverable);
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::None),
        1 => Just(Fault::Silent),
        1 => Just(Fault::Late),
        1 => Just(Fault::Duplicating),
        1 => Just(Fault::CorruptsReads),
        1 => (0u8..=255).prop_map(Fault::ClaimsAll),
        1 => Just(Fault::Answers(Response::Ok)),
        1 => proptest::collection::vec((0u8..=255, any::<u64>()), 0..20)
            .prop_map(|s| Fault::Answers(Response::Shares(s.into_iter().map(|(n, z)| (ShareNum(n), z)).collect()))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Whatever the servers do, a check ends with one report; when verifying, it counts only
    /// shares that a server really holds intact.
    #[test]
    fn any_server_behaviour_ends_in_one_honest_report(
        faults in proptest::collection::vec(fault(), 6),
        placement in proptest::collection::vec(0u8..6, 5),
        verify in any::<bool>(),
    ) {
        let mut grid = Grid::new(6, 1 << 20);
        let f = file(5000, 2, 5, 2048);
        let placed: Vec<(usize, NodeId)> = placement.iter().enumerate().map(|(s, &i)| (s, node(i + 1))).collect();
        f.place(&mut grid, &placed);
        let faults: BTreeMap<NodeId, Fault> = faults.into_iter().enumerate().map(|(i, f)| (node(i as u8 + 1), f)).collect();
        for (&server, fault) in &faults {
            grid.fault(server, fault.clone());
        }
        let options = CheckOptions { verify, ..CheckOptions::default() };
        let r = check(&mut grid, &f, 3, options).unwrap();
        prop_assert!(r.distinct_shares <= 5 && r.happiness <= r.distinct_shares);
        prop_assert!(r.servers_answered <= r.servers_asked);
        if verify {
            for (share, holders) in &r.holders {
                for server in holders {
                    // Only servers whose reads are honest can pass a share off.
                    let fault = &faults[server];
                    let honest = matches!(fault, Fault::None | Fault::Duplicating | Fault::ClaimsAll(_));
                    prop_assert!(honest, "{:?} counted on {:?}", share, fault);
                    prop_assert!(placed.contains(&(share.index(), *server)));
                }
            }
        }
    }
}
