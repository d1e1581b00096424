//! Named fault scenarios on a simulated grid, each its own test, each deterministic.

use cairn::actors::local::{DownloadError, LocalResponse, UploadError};
use cairn::actors::vdrive::{EntryKind, VdriveOp, VdriveReply};
use cairn::actors::{Message, NodeId, Request, Service, ShareNum};
use cairn::codec::{verify, ChkCap};
use cairn::sim::faults::Fault;
use cairn::sim::scenario::Scenario;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(i as u8 >> 3))
        .collect()
}

/// One server per share: N=10 shares on 10 servers.
fn uploaded(seed: u64) -> (Scenario, Vec<u8>, ChkCap) {
    let mut s = Scenario::new(seed, 10);
    let data = file(20_000, 7);
    let receipt = s
        .upload(&data)
        .expect("an upload to a healthy grid succeeds");
    assert_eq!(receipt.happiness, 10);
    (s, data, receipt.cap)
}

/// The distinct servers holding shares of `cap`.
fn holders(s: &Scenario, cap: &ChkCap) -> Vec<NodeId> {
    let set: BTreeSet<NodeId> = s.holders(cap).into_values().flatten().collect();
    set.into_iter().collect()
}

#[test]
fn losing_n_minus_k_servers_after_an_upload_leaves_the_file_readable() {
    let (mut s, data, cap) = uploaded(1);
    for node in holders(&s, &cap).into_iter().take(7) {
        s.fault(Fault::Crash { node });
    }
    let (out, result) = s.download(&cap);
    result.expect("3 of 10 shares are enough");
    assert_eq!(out, data);
}

#[test]
fn losing_n_minus_k_plus_one_servers_is_a_clear_failure_never_wrong_bytes() {
    let (mut s, _, cap) = uploaded(2);
    for node in holders(&s, &cap).into_iter().take(8) {
        s.fault(Fault::Crash { node });
    }
    let (out, result) = s.download(&cap);
    let Err(err @ DownloadError::NotEnoughShares { needed: 3, .. }) = result else {
        panic!("{result:?}")
    };
    assert!(err.to_string().contains("the file needs 3"), "{err}");
    assert!(out.is_empty(), "no byte may come out of a failed download");
}

#[test]
fn a_partition_during_upload_still_reaches_happiness_or_fails_clearly() {
    // 4 of 12 servers cut off from the client while it uploads: 8 remain, enough for happy=7.
    let mut s = Scenario::new(3, 12);
    let (client, servers) = (s.client(), s.storage());
    let cut = |n: usize| Fault::Partition {
        a: vec![client],
        b: servers[..n].to_vec(),
        one_way: false,
    };
    s.fault(cut(4));
    let data = file(30_000, 3);
    let receipt = s
        .upload(&data)
        .expect("8 reachable servers are enough for happy=7");
    assert!(receipt.happiness >= 7);
    s.fault(Fault::Heal);
    let (out, result) = s.download(&receipt.cap);
    result.expect("the file is readable once healed");
    assert_eq!(out, data);

    // 8 of 12 cut off: only 4 reachable, so happy=7 cannot be reached: a clear failure.
    s.fault(cut(8));
    let err = s
        .upload(&file(30_000, 4))
        .expect_err("4 servers cannot make happy=7");
    let UploadError::NotHappy {
        happy: 7,
        achieved,
        known: 12,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(*achieved <= 4);
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[test]
fn servers_serving_corrupt_blocks_are_detected_routed_around_and_advised() {
    let (mut s, data, cap) = uploaded(4);
    let si = cap.key.storage_index();
    // Rot many bits of the servers holding shares 0 to 6: whichever shares the download
    // starts with, most are corrupt; the 3 others are enough.
    let holders = s.holders(&cap);
    let victims: BTreeSet<NodeId> = (0..7).map(|i| holders[&ShareNum(i)][0]).collect();
    for &node in &victims {
        s.fault(Fault::BitRot { node, count: 64 });
    }
    let advised = Rc::new(RefCell::new(Vec::new()));
    let seen = advised.clone();
    s.world.set_tap(move |_, from, to, msg| {
        if let Message::Request {
            body: Request::AdviseCorrupt { si: advised_si, .. },
            ..
        } = msg
        {
            seen.borrow_mut().push((from.service, to.node, *advised_si));
        }
    });
    let (out, result) = s.download(&cap);
    let receipt = result.expect("3 good shares remain");
    assert_eq!(out, data, "only verified bytes come out");
    assert!(!receipt.faults.is_empty(), "corrupt shares were read");
    let advised = advised.borrow();
    for fault in &receipt.faults {
        let victim = victims
            .iter()
            .find(|v| fault.contains(&format!("on server {v}")))
            .unwrap_or_else(|| panic!("a fault on a server that was not rotted: {fault}"));
        assert!(
            advised.iter().any(|(from, to, a)| {
                matches!(from, Service::Download(_)) && to == victim && *a == si
            }),
            "{victim} received a corruption advisory: {advised:?}"
        );
    }
}

#[test]
fn a_crash_mid_write_never_leaves_a_partial_share_visible() {
    let mut s = Scenario::new(5, 10);
    let data = file(200_000, 5);
    let servers = s.storage();
    let victims: Vec<NodeId> = servers[..3].to_vec();
    // Count the blocks written to the victims, to strike while shares are half written.
    let writes = Rc::new(Cell::new(0u32));
    let counter = writes.clone();
    let watched = victims.clone();
    s.world.set_tap(move |_, _, to, msg| {
        if let Message::Request {
            body: Request::Write { .. },
            ..
        } = msg
        {
            if watched.contains(&to.node) {
                counter.set(counter.get() + 1);
            }
        }
    });
    let id = s.start_upload(&data);
    let limit = s.world.now().after(Duration::from_secs(60));
    s.world.run_until_or(limit, |_| writes.get() >= 6);
    assert!(writes.get() >= 6, "the upload reached the victims");
    for &node in &victims {
        s.fault(Fault::LoseUnsyncedWrites { node });
        s.fault(Fault::Crash { node });
    }
    s.world.run_for(Duration::from_secs(5));
    for &node in &victims {
        s.fault(Fault::Restart { node });
    }
    let (response, _) = s.wait(id);
    s.world.run_for(Duration::from_secs(30));
    let LocalResponse::Uploaded(result) = response else {
        panic!("{response:?}")
    };
    let cap = result
        .expect("7 healthy servers remain, so the upload re-places and succeeds")
        .cap;
    // Every complete share on every disk, the crashed ones included, passes every check.
    let si = cap.key.storage_index();
    let mut complete = 0;
    for node in &servers {
        let disk = s.world.disk(*node).expect("a disk");
        for share in 0..cap.n {
            if let Some(bytes) = disk.share(si, ShareNum(share as u8)) {
                verify::check_whole_share(&cap.verifier(), share, &bytes)
                    .unwrap_or_else(|e| panic!("share {share} on {node:?}: {e:?}"));
                complete += 1;
            }
        }
    }
    assert!(
        complete >= 10,
        "all ten shares were placed somewhere ({complete})"
    );
    let (out, result) = s.download(&cap);
    result.expect("readable");
    assert_eq!(out, data);
}

#[test]
fn with_the_introducer_down_known_servers_are_still_used() {
    let (mut s, data, cap) = uploaded(6);
    let introducer = s.introducer();
    s.fault(Fault::Crash { node: introducer });
    s.world.run_for(Duration::from_secs(120));
    let (out, result) = s.download(&cap);
    result.expect("the client still knows the servers");
    assert_eq!(out, data);
    let more = file(10_000, 9);
    let receipt = s
        .upload(&more)
        .expect("uploads still work from the known servers");
    let (out, result) = s.download(&receipt.cap);
    result.expect("and read back");
    assert_eq!(out, more);
}

#[test]
fn the_vdrive_crashing_right_after_an_acknowledgement_keeps_the_change() {
    let (mut s, _, cap) = uploaded(7);
    let cap_text = cairn::codec::Cap::Chk(cap).to_string();
    s.vdrive(VdriveOp::Mkdir {
        path: "/docs".into(),
    })
    .expect("mkdir");
    let link = VdriveOp::Link {
        path: "/docs/report".into(),
        cap: cap_text.clone(),
        replace: false,
    };
    assert_eq!(s.vdrive(link), Ok(VdriveReply::Done));
    // Power loss the moment the acknowledgement is out.
    let vdrive = s.introducer();
    s.fault(Fault::LoseUnsyncedWrites { node: vdrive });
    s.fault(Fault::Crash { node: vdrive });
    s.fault(Fault::Restart { node: vdrive });
    let found = s.vdrive(VdriveOp::Lookup {
        path: "/docs/report".into(),
    });
    assert_eq!(
        found,
        Ok(VdriveReply::Entry(EntryKind::File { cap: cap_text }))
    );
    let listed = s
        .vdrive(VdriveOp::List {
            path: "/docs".into(),
        })
        .expect("list");
    let VdriveReply::Entries(entries) = listed else {
        panic!("{listed:?}")
    };
    assert_eq!(entries.len(), 1);
}

#[test]
fn byzantine_peers_neither_corrupt_nor_lose_an_acknowledged_upload() {
    // 12 honest servers, 2 byzantine ones (claiming every share, keeping none, serving
    // garbage, attacking the uploads they are offered on every other server) and a byzantine
    // client flooding everyone.
    let mut s = Scenario::with_attackers(21, 12, 2, 1);
    let honest: BTreeSet<NodeId> = s.storage().into_iter().collect();
    let files: Vec<Vec<u8>> = (0..6)
        .map(|i| file(3_000 + 9_000 * i, i as u8 + 2))
        .collect();
    let mut uploads = Vec::new();
    for data in &files {
        let receipt = s
            .upload(data)
            .expect("12 honest servers are enough for happy=7");
        uploads.push(receipt);
    }
    // Let the attacks on the last upload run their course.
    s.world.run_for(Duration::from_secs(30));

    let mut placed_on_attackers = 0;
    for (receipt, data) in uploads.iter().zip(&files) {
        let (cap, si) = (&receipt.cap, receipt.cap.key.storage_index());
        for (share, servers) in &receipt.placement {
            for server in servers {
                if !honest.contains(server) {
                    placed_on_attackers += 1;
                    continue;
                }
                // Every share the upload placed on an honest server is there, whole.
                let disk = s.world.disk(*server).expect("a storage node's disk");
                let bytes = disk
                    .share(si, *share)
                    .unwrap_or_else(|| panic!("{share:?} of {si} is missing from {server}"));
                verify::check_whole_share(&cap.verifier(), share.index(), &bytes)
                    .unwrap_or_else(|e| panic!("{share:?} of {si} on {server} is corrupt: {e:?}"));
            }
        }
        let (out, result) = s.download(cap);
        result.expect("an acknowledged upload downloads, whatever the attackers serve");
        assert!(&out == data, "a download returned other bytes");
    }
    assert!(placed_on_attackers > 0, "the attackers were offered shares");

    let ledger = s.attacks();
    assert!(ledger.breaches.is_empty(), "{:?}", ledger.breaches);
    for kind in [
        "write into another's upload",
        "close of another's upload",
        "abort of another's upload",
        "replayed stale announcement",
        "forged announcement",
        "subscription flood",
        "tiny allocation flood",
        "endless read",
        "listing kept forever",
        "false share list",
        "write thrown away",
    ] {
        assert!(
            ledger.attacks.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} was tried: {:?}",
            ledger.attacks
        );
    }
}

#[test]
fn a_download_with_servers_down_waits_on_none_of_them() {
    let (mut s, data, cap) = uploaded(8);
    for node in holders(&s, &cap).into_iter().take(4) {
        s.fault(Fault::Crash { node });
    }
    for _ in 0..2 {
        let started = s.world.now();
        let (out, result) = s.download(&cap);
        result.expect("6 of 10 shares remain");
        assert_eq!(out, data);
        // Simulated time: the 4 silent servers' requests would take the client's whole
        // request timeout to give up on; 6 answering servers hold more than k=3 shares.
        let took = s.world.now().since(started);
        assert!(
            took < cairn::sim::chaos::REQUEST_TIMEOUT / 2,
            "the download waited {took:?} on servers that are down"
        );
    }
}

mod directories {
    //! Directories named by caps, end to end on the simulated grid: a client creates,
    //! changes and lists them on the vdrive server, which holds only what it cannot read.

    use super::*;
    use cairn::actors::local::{DirChange, DirOpError, DirReply, DirRequest};
    use cairn::codec::dirnode::{ChildKind, DirCap, DirWriteCap, Entry};

    fn create(s: &mut Scenario, seed: u8) -> DirWriteCap {
        let cap = DirWriteCap::from_write_key([seed; 16]);
        match s.dir(DirRequest::Create { cap: cap.clone() }) {
            Ok(DirReply::Created(created)) => assert_eq!(created, cap),
            other => panic!("{other:?}"),
        }
        let twice = s.dir(DirRequest::Create { cap: cap.clone() });
        assert!(
            matches!(twice, Err(DirOpError::AlreadyExists(_))),
            "{twice:?}"
        );
        cap
    }

    fn list(s: &mut Scenario, cap: DirCap) -> Vec<Entry> {
        match s.dir(DirRequest::List { cap }) {
            Ok(DirReply::Entries { entries, .. }) => entries,
            other => panic!("{other:?}"),
        }
    }

    fn add(entry: Entry) -> DirChange {
        DirChange::Add {
            entry,
            replace: false,
        }
    }

    fn file(name: &str) -> Entry {
        Entry {
            name: name.into(),
            kind: ChildKind::File,
            read_cap: "URI:LIT:nbswy3dp".into(),
            write_cap: None,
            size: Some(5),
            mtime: Some(1_700_000_000),
        }
    }

    #[test]
    fn a_tree_of_directories_is_made_shared_read_only_and_survives_the_servers_crash() {
        let mut s = Scenario::new(31, 5);
        let root = create(&mut s, 1);
        let docs = create(&mut s, 2);
        let change = |cap: &DirWriteCap, change| DirRequest::Change {
            cap: cap.clone(),
            change,
        };
        let sub = Entry {
            name: "docs".into(),
            kind: ChildKind::Dir,
            read_cap: docs.read_cap().to_string(),
            write_cap: Some(docs.to_string()),
            size: None,
            mtime: None,
        };
        assert!(matches!(
            s.dir(change(&root, add(sub))),
            Ok(DirReply::Done { version: 2 })
        ));
        s.dir(change(&docs, add(file("report")))).expect("add");
        let again = s.dir(change(&docs, add(file("report"))));
        assert_eq!(again, Err(DirOpError::AlreadyExists("report".into())));
        let gone = s.dir(change(
            &docs,
            DirChange::Remove {
                name: "nope".into(),
            },
        ));
        assert_eq!(gone, Err(DirOpError::NotFound("nope".into())));

        // The writer sees the child's write cap; a holder of the read cap does not.
        let by_writer = list(&mut s, DirCap::Write(root.clone()));
        assert_eq!(by_writer[0].write_cap, Some(docs.to_string()));
        let by_reader = list(&mut s, DirCap::Read(root.read_cap()));
        assert_eq!(by_reader[0].write_cap, None);
        assert_eq!(by_reader[0].read_cap, docs.read_cap().to_string());
        let inside = list(&mut s, DirCap::Read(docs.read_cap()));
        assert_eq!(inside, vec![file("report")]);

        // Power loss at the vdrive server right after the acknowledgements.
        let vdrive = s.introducer();
        s.fault(Fault::LoseUnsyncedWrites { node: vdrive });
        s.fault(Fault::Crash { node: vdrive });
        s.fault(Fault::Restart { node: vdrive });
        assert_eq!(
            list(&mut s, DirCap::Read(docs.read_cap())),
            vec![file("report")]
        );
        let renamed = s.dir(change(
            &docs,
            DirChange::Rename {
                from: "report".into(),
                to: "report-2026".into(),
            },
        ));
        assert!(
            matches!(renamed, Ok(DirReply::Done { version: 3 })),
            "{renamed:?}"
        );
        // An unknown directory is not there.
        let stranger = DirWriteCap::from_write_key([9; 16]);
        let none = s.dir(DirRequest::List {
            cap: DirCap::Write(stranger),
        });
        assert_eq!(none, Err(DirOpError::NoSuchDirectory));
    }

    #[test]
    fn concurrent_writers_to_one_directory_lose_no_update() {
        let mut s = Scenario::new(32, 5);
        let dir = create(&mut s, 3);
        let writers: Vec<_> = (0..6)
            .map(|i| {
                let change = DirRequest::Change {
                    cap: dir.clone(),
                    change: add(file(&format!("from-writer-{i}"))),
                };
                s.start(cairn::actors::local::LocalRequest::Dir(change), None)
            })
            .collect();
        for id in writers {
            let (answer, _) = s.wait(id);
            assert!(
                matches!(answer, LocalResponse::Dir(Ok(DirReply::Done { .. }))),
                "{answer:?}"
            );
        }
        let names: Vec<String> = list(&mut s, DirCap::Write(dir))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names.len(), 6, "every writer's entry is there: {names:?}");
    }
}
