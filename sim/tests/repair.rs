//! Checks and repairs on a simulated grid: servers leave for good, a check sees it, a repair
//! rebuilds the lost shares — byte for byte, read off the simulated disks — on servers that
//! held none, and the file stays readable after more departures than it could survive alone.

use cairn_codec::{ChkCap, ShareLayout};
use cairn_sim::actors::checker::{CheckError, CheckOptions, CheckReport};
use cairn_sim::actors::local::{LocalRequest, LocalResponse};
use cairn_sim::actors::repairer::{RepairError, RepairPolicy, RepairReport};
use cairn_sim::actors::{NodeId, ShareNum};
use cairn_sim::scenario::Scenario;
use cairn_sim::Fault;
use std::collections::{BTreeMap, BTreeSet};

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 9) as u8)
        .collect()
}

fn check(s: &mut Scenario, cap: &ChkCap) -> Result<CheckReport, CheckError> {
    let request = LocalRequest::Check {
        cap: cap.verifier(),
        happy: 7,
        options: CheckOptions::default(),
    };
    let id = s.start(request, None);
    match s.wait(id).0 {
        LocalResponse::Checked(result) => result,
        other => panic!("a check was answered with {other:?}"),
    }
}

fn repair(s: &mut Scenario, cap: &ChkCap) -> Result<RepairReport, RepairError> {
    repair_to(s, cap, 7)
}

fn repair_to(s: &mut Scenario, cap: &ChkCap, happy: usize) -> Result<RepairReport, RepairError> {
    let request = LocalRequest::Repair {
        cap: cap.verifier(),
        happy,
        options: CheckOptions::default(),
        distrusted: Vec::new(),
    };
    let id = s.start(request, None);
    match s.wait(id).0 {
        LocalResponse::Repaired(result) => result,
        other => panic!("a repair was answered with {other:?}"),
    }
}

/// Share `share` of `cap`'s file as `node`'s disk holds it.
fn on_disk(s: &Scenario, node: NodeId, cap: &ChkCap, share: ShareNum) -> Option<Vec<u8>> {
    let si = cap.key.storage_index();
    s.world.disk(node)?.share(si, share)
}

/// A share's length as written (header, blocks, trailer), from its header and UEB length;
/// the disk holds it padded to what was allocated.
fn written_len(share: &[u8]) -> u64 {
    let layout = ShareLayout::parse(share).expect("a share with a header");
    let at = layout.ueb as usize;
    let prefix = &share[at..at + layout.ueb_length_size() as usize];
    let ueb_len = prefix.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    layout.share_size(ueb_len)
}

/// The live servers holding shares of `cap`'s file.
fn live_holders(s: &Scenario, cap: &ChkCap) -> Vec<NodeId> {
    let set: BTreeSet<NodeId> = s
        .holders(cap)
        .into_values()
        .flatten()
        .filter(|n| s.world.is_up(*n))
        .collect();
    set.into_iter().collect()
}

#[test]
fn repair_after_permanent_departures_restores_happiness_with_the_original_bytes() {
    let mut s = Scenario::new(11, 12);
    let data = file(30_000, 7);
    let receipt = s.upload(&data).expect("a healthy grid takes the upload");
    let cap = receipt.cap;
    let before = s.holders(&cap);
    assert_eq!(before.len(), 10);
    let originals: BTreeMap<ShareNum, Vec<u8>> = before
        .iter()
        .map(|(&share, holders)| (share, on_disk(&s, holders[0], &cap, share).unwrap()))
        .collect();

    let healthy = check(&mut s, &cap).unwrap();
    assert!(
        healthy.healthy && healthy.distinct_shares == 10,
        "{healthy:?}"
    );

    // Five holders leave for good.
    let gone: Vec<NodeId> = live_holders(&s, &cap).into_iter().take(5).collect();
    for &node in &gone {
        s.fault(Fault::Crash { node });
    }
    let report = check(&mut s, &cap).unwrap();
    assert_eq!((report.distinct_shares, report.happiness), (5, 5));
    assert_eq!((report.servers_asked, report.servers_answered), (12, 7));
    assert!(!report.healthy && report.recoverable);

    let r = repair(&mut s, &cap).expect("five shares and two free servers are enough");
    assert_eq!((r.happiness_before, r.happiness_after), (5, 7));
    assert_eq!(
        r.repaired.len(),
        2,
        "one share on each server that held none"
    );
    let mut written = 0;
    for &(share, node) in &r.repaired {
        assert!(!gone.contains(&node) && !before.values().flatten().any(|h| *h == node));
        let bytes = on_disk(&s, node, &cap, share).expect("the new share is on disk");
        assert!(
            bytes == originals[&share],
            "share {} is not the original's bytes",
            share.0
        );
        written += written_len(&bytes);
    }
    assert_eq!(
        r.bytes_uploaded, written,
        "the repair's count is the bytes it placed"
    );
    let after = check(&mut s, &cap).unwrap();
    assert!(after.healthy && after.happiness == 7, "{after:?}");

    // The original servers stay gone; the file reads, byte for byte.
    let (out, result) = s.download(&cap);
    result.expect("the repaired file reads");
    assert_eq!(out, data);

    // All but k of the seven holders go too, keeping both new shares: still readable.
    let new: BTreeSet<NodeId> = r.repaired.iter().map(|(_, n)| *n).collect();
    let survivors: Vec<NodeId> = live_holders(&s, &cap)
        .into_iter()
        .filter(|n| !new.contains(n))
        .collect();
    assert_eq!(survivors.len(), 5);
    for &node in &survivors[1..] {
        s.fault(Fault::Crash { node });
    }
    let (out, result) = s.download(&cap);
    result.expect("two repaired shares and one old one read the file");
    assert_eq!(out, data);
}

#[test]
fn repair_with_fewer_than_k_shares_left_fails_clearly() {
    let mut s = Scenario::new(12, 12);
    let receipt = s.upload(&file(20_000, 3)).unwrap();
    for node in live_holders(&s, &receipt.cap).into_iter().take(8) {
        s.fault(Fault::Crash { node });
    }
    let err = repair(&mut s, &receipt.cap).unwrap_err();
    let RepairError::NotEnoughShares {
        needed: 3,
        found: 2,
        traffic,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(traffic.bytes_uploaded, 0);
    assert!(err.to_string().contains("needs 3 good shares"), "{err}");
}

/// Servers leave one at a time, a holder each time, ten in all (more than the N-k=7 a
/// 3-of-10 file survives), with a check after each departure and `policy` deciding on
/// repairs: whether the file is readable at the end, and the bytes the repairs wrote.
fn departures(policy: RepairPolicy) -> (bool, u64) {
    let mut s = Scenario::new(21, 24);
    let data = file(25_000, 5);
    let cap = s.upload(&data).unwrap().cap;
    let mut repair_bytes = 0;
    for _ in 0..10 {
        let Some(&node) = live_holders(&s, &cap).first() else {
            break;
        };
        s.fault(Fault::Crash { node });
        let report = check(&mut s, &cap).unwrap();
        if let Some(happy) = policy.repair_target(&report) {
            let r = repair_to(&mut s, &cap, happy).expect("enough shares and servers remain");
            assert!(r.happiness_after >= happy, "{r:?}");
            repair_bytes += r.bytes_uploaded;
        }
    }
    let (out, result) = s.download(&cap);
    (result.is_ok() && out == data, repair_bytes)
}

#[test]
fn periodic_repair_keeps_a_file_through_more_departures_than_it_survives_alone() {
    for policy in [
        RepairPolicy::Unhealthy,
        RepairPolicy::BelowDistinct { threshold: 9 },
    ] {
        let (kept, bytes) = departures(policy);
        assert!(kept, "with repair ({policy:?}) the file survives");
        assert!(bytes > 0);
    }
    let (kept, bytes) = departures(RepairPolicy::Never);
    assert!(!kept, "without repair ten departures lose a 3-of-10 file");
    assert_eq!(bytes, 0);
}
