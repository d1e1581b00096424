//! The vdrive, driven through its inputs and judged by its effects.

use super::*;
use crate::actor::{Effect, Service};
use crate::ids::NodeId;
use crate::memstore::MemJournal;
use crate::protocol::MAX_MESSAGE_SIZE;
use crate::testing::driven::wraps_driven;
use crate::testing::strategies::{chk_cap_text, lit_cap_text, vdrive_op, wire};
use crate::testing::{Driven, FlakyJournal, JournalFault};
use cairn_codec::Cap;
use proptest::prelude::*;

const T0: Time = Time(5_000_000_000);
const CLIENT: Addr = Addr {
    node: NodeId([9; 32]),
    service: Service::Client,
};

/// A vdrive over a journal, with a switch to make the journal fail.
struct Harness {
    driven: Driven<Vdrive>,
    journal: MemJournal,
    flaky: FlakyJournal<MemJournal>,
    max_entries: usize,
}

wraps_driven!(Harness, Vdrive, driven);

impl Harness {
    fn new() -> Self {
        Self::over(MemJournal::new(), MAX_ENTRIES)
    }

    /// A started vdrive over `journal`.
    fn over(journal: MemJournal, max_entries: usize) -> Self {
        let flaky = FlakyJournal::new(journal.clone());
        let vdrive = Vdrive::with_max_entries(Box::new(flaky.clone()), max_entries);
        let me = Addr::new(NodeId([0; 32]), Service::Vdrive);
        let mut h = Harness {
            driven: Driven::new(vdrive, me, T0, 3),
            journal,
            flaky,
            max_entries,
        };
        assert!(h.input(Input::Start).is_empty());
        h
    }

    /// A new vdrive over the same journal, as after a crash.
    fn restart(&self) -> Self {
        Self::over(self.journal.clone(), self.max_entries)
    }

    /// Sends `body` from the client; returns the one answer.
    fn request(&mut self, body: Request) -> Response {
        self.driven.only_answer(CLIENT, body)
    }

    fn op(&mut self, op: VdriveOp) -> Result<VdriveReply, VdriveError> {
        match self.request(Request::Vdrive(op)) {
            Response::Vdrive(result) => result,
            other => panic!("expected a vdrive answer, got {other:?}"),
        }
    }

    fn mkdir(&mut self, path: &str) -> Result<VdriveReply, VdriveError> {
        self.op(VdriveOp::Mkdir { path: path.into() })
    }

    fn link(&mut self, path: &str, cap: &str, replace: bool) -> Result<VdriveReply, VdriveError> {
        self.op(VdriveOp::Link {
            path: path.into(),
            cap: cap.into(),
            replace,
        })
    }

    fn unlink(&mut self, path: &str) -> Result<VdriveReply, VdriveError> {
        self.op(VdriveOp::Unlink { path: path.into() })
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<VdriveReply, VdriveError> {
        self.op(VdriveOp::Rename {
            from: from.into(),
            to: to.into(),
        })
    }

    fn lookup(&mut self, path: &str) -> Result<VdriveReply, VdriveError> {
        self.op(VdriveOp::Lookup { path: path.into() })
    }

    fn list(&mut self, path: &str) -> Result<VdriveReply, VdriveError> {
        self.op(VdriveOp::List { path: path.into() })
    }

    /// Every path in the tree with what it stands for, depth first, in name order.
    fn dump(&mut self) -> Vec<(String, EntryKind)> {
        let mut out = Vec::new();
        let mut todo = vec!["".to_string()];
        while let Some(dir) = todo.pop() {
            let path = if dir.is_empty() { "/" } else { &dir };
            let Ok(VdriveReply::Entries(entries)) = self.list(path) else {
                panic!("cannot list {path}");
            };
            for entry in entries.into_iter().rev() {
                let child = format!("{dir}/{}", entry.name);
                if entry.kind == EntryKind::Dir {
                    todo.push(child.clone());
                }
                out.push((child, entry.kind));
            }
        }
        out.sort();
        out
    }
}

const DONE: Result<VdriveReply, VdriveError> = Ok(VdriveReply::Done);

fn entry(kind: EntryKind) -> Result<VdriveReply, VdriveError> {
    Ok(VdriveReply::Entry(kind))
}

fn file(cap: &str) -> EntryKind {
    EntryKind::File { cap: cap.into() }
}

fn not_found(path: &str) -> Result<VdriveReply, VdriveError> {
    Err(VdriveError::NotFound(path.into()))
}

fn exists(path: &str) -> Result<VdriveReply, VdriveError> {
    Err(VdriveError::AlreadyExists(path.into()))
}

fn is_invalid_path(result: Result<VdriveReply, VdriveError>) -> bool {
    matches!(result, Err(VdriveError::InvalidPath(..)))
}

#[test]
fn directories_and_links_list_in_name_order() {
    let mut h = Harness::new();
    assert_eq!(h.mkdir("/docs"), DONE);
    assert_eq!(h.link("/docs/b", &chk_cap_text(), false), DONE);
    assert_eq!(h.link("/docs/a", &lit_cap_text("hi"), false), DONE);
    assert_eq!(h.mkdir("/docs/z"), DONE);
    let names = |r: Result<VdriveReply, VdriveError>| -> Vec<String> {
        match r {
            Ok(VdriveReply::Entries(e)) => e.into_iter().map(|e| e.name).collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(names(h.list("/docs")), vec!["a", "b", "z"]);
    assert_eq!(names(h.list("/")), vec!["docs"]);
    assert_eq!(h.lookup("/docs/b"), entry(file(&chk_cap_text())));
    assert_eq!(h.lookup("/docs/z"), entry(EntryKind::Dir));
    assert_eq!(h.lookup("/"), entry(EntryKind::Dir));
    assert_eq!(h.lookup("/nothing"), not_found("/nothing"));
    assert_eq!(
        h.list("/docs/a"),
        Err(VdriveError::NotADirectory("/docs/a".into()))
    );
    assert_eq!(h.actor.entries(), 4);
}

#[test]
fn malformed_paths_are_refused() {
    let mut h = Harness::new();
    h.mkdir("/d").unwrap();
    let long_name = format!("/{}", "n".repeat(MAX_NAME_LEN + 1));
    let long_path = "/abc".repeat(MAX_PATH_LEN / 4 + 1);
    let bad = [
        "", "d", "//", "/d/", "/d//e", "/.", "/..", "/d/./e", "/d/../e", "/d/\0", &long_name,
        &long_path,
    ];
    for path in bad {
        assert!(is_invalid_path(h.mkdir(path)), "mkdir {path:?}");
        assert!(is_invalid_path(h.lookup(path)), "lookup {path:?}");
        assert!(
            is_invalid_path(h.link(path, &chk_cap_text(), true)),
            "link {path:?}"
        );
        assert!(is_invalid_path(h.rename("/d", path)), "rename to {path:?}");
    }
    // Errors quote long paths only in part.
    let Err(VdriveError::InvalidPath(quoted, _)) = h.lookup(&"/x".repeat(100_000)) else {
        panic!("a long path is invalid");
    };
    assert!(quoted.len() < 300);
    let longest_name = format!("/{}", "n".repeat(MAX_NAME_LEN));
    assert_eq!(h.mkdir(&longest_name), DONE);
    assert_eq!(
        h.mkdir("/with space/"),
        Err(VdriveError::InvalidPath(
            "/with space/".into(),
            "empty component: a doubled or trailing /".into()
        ))
    );
}

#[test]
fn the_root_always_exists_and_cannot_be_removed_or_moved() {
    let mut h = Harness::new();
    assert_eq!(h.mkdir("/"), exists("/"));
    assert_eq!(h.link("/", &chk_cap_text(), false), exists("/"));
    assert_eq!(
        h.link("/", &chk_cap_text(), true),
        Err(VdriveError::IsADirectory("/".into()))
    );
    assert!(is_invalid_path(h.unlink("/")));
    assert!(is_invalid_path(h.rename("/", "/x")));
    h.mkdir("/x").unwrap();
    assert_eq!(h.rename("/x", "/"), exists("/"));
}

#[test]
fn caps_are_parsed_before_they_are_linked() {
    let mut h = Harness::new();
    let too_long = lit_cap_text(&"x".repeat(MAX_CAP_LEN));
    for cap in ["", "URI:CHK:nope", "hello", &too_long] {
        assert!(matches!(
            h.link("/f", cap, false),
            Err(VdriveError::InvalidCap(_))
        ));
    }
    assert_eq!(h.lookup("/f"), not_found("/f"));
    let verifier = match chk_cap_text().parse::<Cap>() {
        Ok(Cap::Chk(c)) => Cap::ChkVerifier(c.verifier()).to_string(),
        _ => unreachable!(),
    };
    assert_eq!(h.link("/v", &verifier, false), DONE);
}

#[test]
fn mkdir_needs_its_parent() {
    let mut h = Harness::new();
    assert_eq!(h.mkdir("/a/b"), not_found("/a"));
    h.link("/f", &chk_cap_text(), false).unwrap();
    assert_eq!(
        h.mkdir("/f/b"),
        Err(VdriveError::NotADirectory("/f (in /f/b)".into()))
    );
    h.mkdir("/a").unwrap();
    assert_eq!(h.mkdir("/a"), exists("/a"));
    assert_eq!(h.mkdir("/a/b/c"), not_found("/a/b"));
}

#[test]
fn link_replaces_a_file_only_when_asked_and_never_a_directory() {
    let mut h = Harness::new();
    h.mkdir("/d").unwrap();
    h.link("/f", &lit_cap_text("one"), false).unwrap();
    assert_eq!(h.link("/f", &lit_cap_text("two"), false), exists("/f"));
    assert_eq!(h.link("/f", &lit_cap_text("two"), true), DONE);
    assert_eq!(h.lookup("/f"), entry(file(&lit_cap_text("two"))));
    assert_eq!(h.link("/d", &lit_cap_text("x"), false), exists("/d"));
    assert_eq!(
        h.link("/d", &lit_cap_text("x"), true),
        Err(VdriveError::IsADirectory("/d".into()))
    );
    assert_eq!(h.link("/new", &lit_cap_text("x"), true), DONE);
    assert_eq!(h.actor.entries(), 3);
}

#[test]
fn unlink_removes_files_and_empty_directories() {
    let mut h = Harness::new();
    h.mkdir("/d").unwrap();
    h.link("/d/f", &chk_cap_text(), false).unwrap();
    assert!(matches!(h.unlink("/d"), Err(VdriveError::IsADirectory(m)) if m.contains("not empty")));
    assert_eq!(h.unlink("/d/f"), DONE);
    assert_eq!(h.unlink("/d/f"), not_found("/d/f"));
    assert_eq!(h.unlink("/d"), DONE);
    assert_eq!(h.dump(), vec![]);
    assert_eq!(h.actor.entries(), 0);
}

#[test]
fn rename_moves_files_and_trees_but_replaces_nothing() {
    let mut h = Harness::new();
    h.mkdir("/a").unwrap();
    h.mkdir("/a/sub").unwrap();
    h.link("/a/sub/f", &chk_cap_text(), false).unwrap();
    h.mkdir("/b").unwrap();
    assert_eq!(h.rename("/a/sub", "/b/moved"), DONE);
    assert_eq!(h.lookup("/b/moved/f"), entry(file(&chk_cap_text())));
    assert_eq!(h.lookup("/a/sub"), not_found("/a/sub"));
    assert_eq!(h.rename("/b/moved/f", "/g"), DONE);
    assert_eq!(h.rename("/g", "/b"), exists("/b"));
    assert_eq!(h.rename("/g", "/g"), exists("/g"));
    assert_eq!(h.rename("/missing", "/h"), not_found("/missing"));
    assert_eq!(h.rename("/g", "/nowhere/h"), not_found("/nowhere"));
    assert!(is_invalid_path(h.rename("/b", "/b/moved/inside")));
    assert_eq!(
        h.rename("/g", "/g/inside"),
        Err(VdriveError::NotADirectory("/g (in /g/inside)".into()))
    );
    // /a, /b, /b/moved and /g.
    assert_eq!(h.actor.entries(), 4);
}

#[test]
fn acknowledged_changes_survive_a_restart_exactly() {
    let mut h = Harness::new();
    h.mkdir("/a").unwrap();
    h.link("/a/f", &lit_cap_text("x"), false).unwrap();
    h.link("/a/f", &lit_cap_text("y"), true).unwrap();
    h.mkdir("/b").unwrap();
    h.rename("/a", "/b/a").unwrap();
    h.link("/g", &chk_cap_text(), false).unwrap();
    h.unlink("/g").unwrap();
    h.mkdir("/b").unwrap_err();
    let before = h.dump();
    assert_eq!(
        h.journal.len(),
        1 + 7,
        "the format's header, and only changes that succeeded"
    );
    let mut again = h.restart();
    assert_eq!(again.dump(), before);
    assert_eq!(again.actor.entries(), h.actor.entries());
    assert_eq!(again.actor.fault(), None);
}

#[test]
fn a_change_the_journal_refused_is_not_made() {
    let mut h = Harness::new();
    h.mkdir("/a").unwrap();
    h.flaky.set(JournalFault::LosesAppends);
    assert!(matches!(h.mkdir("/b"), Err(VdriveError::Storage(_))));
    assert!(matches!(h.unlink("/a"), Err(VdriveError::Storage(_))));
    h.flaky.set(JournalFault::None);
    assert_eq!(h.dump(), vec![("/a".into(), EntryKind::Dir)]);
    assert_eq!(h.mkdir("/b"), DONE);
}

#[test]
fn a_change_of_unknown_fate_is_settled_by_the_journal() {
    let mut h = Harness::new();
    h.flaky.set(JournalFault::AppendsButFails);
    assert!(matches!(h.mkdir("/a"), Err(VdriveError::Storage(_))));
    h.flaky.set(JournalFault::None);
    // The record did land: the vdrive re-read the journal and knows it, as a restart would.
    assert_eq!(h.mkdir("/a"), exists("/a"));
    assert_eq!(h.restart().dump(), h.dump());
}

#[test]
fn an_unreadable_journal_is_retried_and_nothing_is_answered_from_an_empty_tree() {
    let journal = MemJournal::new();
    let mut first = Harness::over(journal.clone(), MAX_ENTRIES);
    first.mkdir("/a").unwrap();
    let mut h = first.restart();
    h.flaky.set(JournalFault::Unreadable);
    h.input(Input::Start);
    assert!(matches!(h.lookup("/a"), Err(VdriveError::Storage(_))));
    assert!(matches!(h.mkdir("/b"), Err(VdriveError::Storage(_))));
    assert!(h.actor.fault().is_some());
    h.flaky.set(JournalFault::None);
    assert_eq!(h.lookup("/a"), entry(EntryKind::Dir));
    assert_eq!(h.mkdir("/b"), DONE);
    assert_eq!(h.actor.fault(), None);
}

#[test]
fn a_damaged_journal_leaves_a_read_only_prefix() {
    let mut h = Harness::new();
    h.mkdir("/a").unwrap();
    let mut raw = h.journal.clone();
    raw.append(&[0xff, 0xff, 0xff]).unwrap();
    let valid_later = postcard::to_stdvec(&VdriveOp::Mkdir { path: "/b".into() }).unwrap();
    raw.append(&valid_later).unwrap();
    let mut h = h.restart();
    assert_eq!(h.dump(), vec![("/a".into(), EntryKind::Dir)]);
    assert!(matches!(h.mkdir("/c"), Err(VdriveError::Storage(m)) if m.contains("read-only")));
    assert!(h.actor.fault().is_some());
    assert_eq!(h.journal.len(), 4, "the header, /a, the damage, /b");

    // Records that decode but were not written by a vdrive are refused the same way.
    for record in [
        postcard::to_stdvec(&VdriveOp::Lookup { path: "/".into() }).unwrap(),
        postcard::to_stdvec(&VdriveOp::Unlink { path: "/x".into() }).unwrap(),
        [valid_later.clone(), vec![0]].concat(),
    ] {
        let mut journal = MemJournal::new();
        journal.append(&record).unwrap();
        let mut h = Harness::over(journal, MAX_ENTRIES);
        assert!(h.actor.fault().is_some());
        assert!(matches!(h.mkdir("/c"), Err(VdriveError::Storage(_))));
    }
}

#[test]
fn the_tree_is_bounded_but_full_trees_can_still_rename_and_unlink() {
    let mut h = Harness::over(MemJournal::new(), 3);
    h.mkdir("/a").unwrap();
    h.mkdir("/b").unwrap();
    h.link("/a/f", &chk_cap_text(), false).unwrap();
    assert!(matches!(h.mkdir("/c"), Err(VdriveError::Storage(m)) if m.contains("full")));
    assert!(matches!(
        h.link("/c", &chk_cap_text(), false),
        Err(VdriveError::Storage(_))
    ));
    assert_eq!(h.link("/a/f", &lit_cap_text("z"), true), DONE);
    assert_eq!(h.rename("/a/f", "/b/f"), DONE);
    assert_eq!(h.unlink("/b/f"), DONE);
    assert_eq!(h.mkdir("/c"), DONE);
    assert_eq!(h.restart().dump(), h.dump());
}

#[test]
fn a_directory_is_bounded_so_its_listing_fits() {
    let mut h = Harness::new();
    h.mkdir("/d").unwrap();
    for i in 0..MAX_DIR_ENTRIES {
        assert_eq!(h.link(&format!("/d/{i}"), &chk_cap_text(), false), DONE);
    }
    let full = |r| matches!(r, Err(VdriveError::Storage(m)) if m.contains("full"));
    assert!(full(h.mkdir("/d/last")));
    assert!(full(h.link("/d/last", &chk_cap_text(), false)));
    h.link("/z", &chk_cap_text(), false).unwrap();
    assert!(full(h.rename("/z", "/d/z")));
    assert_eq!(
        h.link("/d/0", &lit_cap_text("z"), true),
        DONE,
        "replacing adds no name"
    );
    assert_eq!(
        h.rename("/d/0", "/d/zero"),
        DONE,
        "a rename within a full directory"
    );
    assert_eq!(h.rename("/d/zero", "/zero"), DONE);
    assert_eq!(h.rename("/z", "/d/z"), DONE);
}

#[test]
fn a_full_directory_listing_fits_a_message() {
    let worst = DirEntry {
        name: "n".repeat(MAX_NAME_LEN),
        kind: EntryKind::File {
            cap: "c".repeat(MAX_CAP_LEN),
        },
    };
    let msg = Message::Response {
        id: RequestId(u64::MAX),
        body: Response::Vdrive(Ok(VdriveReply::Entries(vec![worst; MAX_DIR_ENTRIES]))),
    };
    assert!(msg.encode().len() <= MAX_MESSAGE_SIZE);
}

#[test]
fn expired_foreign_and_stray_messages() {
    let mut h = Harness::new();
    let expired = Message::Request {
        id: RequestId(1),
        deadline: Time(T0.0 - 1),
        body: Request::Vdrive(VdriveOp::Mkdir { path: "/a".into() }),
    };
    assert!(h
        .input(Input::Message {
            from: CLIENT,
            msg: expired
        })
        .is_empty());
    assert_eq!(h.lookup("/a"), not_found("/a"));
    assert_eq!(
        h.request(Request::Subscribe),
        Response::Err(RemoteError::Unsupported)
    );
    let stray = Message::Announcements(vec![]);
    assert!(h
        .input(Input::Message {
            from: CLIENT,
            msg: stray
        })
        .is_empty());
    assert!(h.input(Input::Timer(crate::actor::TimerId(1))).is_empty());
}

#[derive(Clone, Debug)]
enum Step {
    Op { op: VdriveOp, expired: bool },
    Bytes(Vec<u8>),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (vdrive_op(), prop::bool::weighted(0.1)).prop_map(|(op, expired)| Step::Op { op, expired }),
        2 => wire(vdrive_op().prop_map(Request::Vdrive)).prop_map(Step::Bytes),
        1 => Just(Step::Restart),
    ]
}

/// What an acknowledged change must have done, checked right after it.
fn check_effect(h: &mut Harness, op: &VdriveOp) -> Result<(), TestCaseError> {
    match op {
        VdriveOp::Mkdir { path } => prop_assert_eq!(h.lookup(path), entry(EntryKind::Dir)),
        VdriveOp::Link { path, cap, .. } => prop_assert_eq!(h.lookup(path), entry(file(cap))),
        VdriveOp::Unlink { path } => prop_assert_eq!(h.lookup(path), not_found(path)),
        VdriveOp::Rename { from, to } => {
            prop_assert_eq!(h.lookup(from), not_found(from));
            prop_assert!(h.lookup(to).is_ok());
        }
        VdriveOp::List { .. } | VdriveOp::Lookup { .. } => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fuzzed_operations_are_answered_once_bounded_and_replayed_exactly(
        steps in proptest::collection::vec(step(), 1..60),
        max_entries in 1usize..8,
    ) {
        let mut h = Harness::over(MemJournal::new(), max_entries);
        let mut answered = std::collections::BTreeMap::new();
        for (n, step) in steps.into_iter().enumerate() {
            let (msg, op) = match step {
                Step::Op { op, expired } => {
                    let deadline = if expired { Time(T0.0 - 1) } else { T0 };
                    let body = Request::Vdrive(op.clone());
                    // Far from the harness's own ids (used by `dump`).
                    (Message::Request { id: RequestId(1 << 40 | n as u64), deadline, body }, Some(op))
                }
                Step::Bytes(bytes) => match Message::decode(&bytes) {
                    Ok(msg) => (msg, None),
                    Err(_) => continue,
                },
                Step::Restart => {
                    let before = h.dump();
                    h = h.restart();
                    answered.clear(); // a restarted vdrive remembers no answers
                    prop_assert_eq!(h.dump(), before);
                    continue;
                }
            };
            let live = match &msg {
                Message::Request { id, deadline, .. } => (h.now <= *deadline).then_some(*id),
                _ => None,
            };
            let records = h.journal.len();
            let effects = h.input(Input::Message { from: CLIENT, msg });
            let answers: Vec<(RequestId, Response)> = effects
                .into_iter()
                .filter_map(|e| match e {
                    Effect::Send { to, msg: Message::Response { id, body } } if to == CLIENT => Some((id, body)),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(answers.iter().map(|a| a.0).collect::<Vec<_>>(), live.into_iter().collect::<Vec<_>>());
            if let Some((id, body)) = answers.first() {
                if let Some(before) = answered.insert(*id, body.clone()) {
                    // A repeated request id: the same answer again, and no second change.
                    prop_assert_eq!(body, &before);
                    prop_assert_eq!(h.journal.len(), records);
                    continue;
                }
            }
            let done = matches!(answers.first(), Some((_, Response::Vdrive(Ok(VdriveReply::Done)))));
            prop_assert_eq!(h.journal.len(), records + usize::from(done), "a record per change");
            if let (true, Some(op)) = (done, op) {
                check_effect(&mut h, &op)?;
            }
            prop_assert!(h.actor.entries() <= max_entries);
            prop_assert_eq!(h.actor.fault(), None);
        }
        let before = h.dump();
        prop_assert_eq!(h.restart().dump(), before);
    }
}

mod directories {
    //! The store of directories named by caps: checked writes, compare-and-swap, nothing
    //! learned, everything durable.

    use super::*;
    use cairn_codec::dirnode::{ChildKind, DirWriteCap, Entry, Record};

    const SERVER: [u8; 32] = [0; 32];

    fn dir(seed: u8) -> DirWriteCap {
        DirWriteCap::from_write_key([seed; 16])
    }

    fn sealed(cap: &DirWriteCap, version: u64, names: &[&str]) -> Vec<u8> {
        let entries: Vec<Entry> = names
            .iter()
            .map(|name| Entry {
                name: (*name).to_owned(),
                kind: ChildKind::File,
                read_cap: "URI:LIT:nbswy3dp".into(),
                write_cap: None,
                size: Some(5),
                mtime: None,
            })
            .collect();
        let mut iv = version as u8;
        let mut ivs = || {
            iv = iv.wrapping_add(1);
            [iv; 16]
        };
        Record::seal(cap, version, &entries, &mut ivs)
            .unwrap()
            .encode()
    }

    impl Harness {
        fn write_dir(
            &mut self,
            cap: &DirWriteCap,
            expected: Option<u64>,
            record: Vec<u8>,
        ) -> Response {
            self.request(Request::DirWrite {
                si: cap.verify_cap().storage_index,
                write_enabler: cap.write_enabler(&SERVER),
                expected,
                record,
            })
        }

        fn read_dir(&mut self, cap: &DirWriteCap) -> Option<Vec<u8>> {
            let si = cap.verify_cap().storage_index;
            match self.request(Request::DirRead { si }) {
                Response::DirRecord(record) => record,
                other => panic!("{other:?}"),
            }
        }
    }

    fn names(record: &[u8], cap: &DirWriteCap) -> Vec<String> {
        let entries = Record::decode(record)
            .unwrap()
            .open(&cap.read_cap())
            .unwrap();
        entries.into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn a_directory_is_created_then_changed_by_compare_and_swap_and_survives_a_restart() {
        let mut h = Harness::new();
        let cap = dir(1);
        assert_eq!(h.read_dir(&cap), None);
        assert_eq!(
            h.write_dir(&cap, None, sealed(&cap, 1, &["a"])),
            Response::Ok
        );
        assert_eq!(
            h.write_dir(&cap, Some(1), sealed(&cap, 2, &["a", "b"])),
            Response::Ok
        );
        // A writer who read version 1 and was overtaken learns of it, and loses nothing.
        let stale = h.write_dir(&cap, Some(1), sealed(&cap, 2, &["a", "c"]));
        assert_eq!(
            stale,
            Response::Err(RemoteError::Conflict { current: Some(2) })
        );
        let created_twice = h.write_dir(&cap, None, sealed(&cap, 1, &["z"]));
        assert_eq!(
            created_twice,
            Response::Err(RemoteError::Conflict { current: Some(2) })
        );
        let record = h.read_dir(&cap).unwrap();
        assert_eq!(names(&record, &cap), ["a", "b"]);
        let mut again = h.restart();
        assert_eq!(again.read_dir(&cap), Some(record));
        assert_eq!(again.actor.directories(), 1);
        // The tree of the old vdrive goes on beside the directories.
        assert_eq!(again.mkdir("/x"), DONE);
    }

    #[test]
    fn writes_without_the_write_enabler_or_the_directory_key_are_refused() {
        let mut h = Harness::new();
        let cap = dir(1);
        let mallory = dir(2);
        h.write_dir(&cap, None, sealed(&cap, 1, &["a"]));
        let si = cap.verify_cap().storage_index;
        let forbidden = |r: &Response| matches!(r, Response::Err(RemoteError::Forbidden(_)));
        // Mallory's enabler, her record.
        let r = h.request(Request::DirWrite {
            si,
            write_enabler: mallory.write_enabler(&SERVER),
            expected: Some(1),
            record: sealed(&mallory, 2, &["evil"]),
        });
        assert!(forbidden(&r), "{r:?}");
        // The right enabler (replayed from elsewhere, say) with a record of another key.
        let r = h.write_dir(&cap, Some(1), sealed(&mallory, 2, &["evil"]));
        assert!(forbidden(&r), "{r:?}");
        // An enabler meant for another server.
        let r = h.request(Request::DirWrite {
            si,
            write_enabler: cap.write_enabler(&[7; 32]),
            expected: Some(1),
            record: sealed(&cap, 2, &["b"]),
        });
        assert!(forbidden(&r), "{r:?}");
        // An old record replayed as new.
        let r = h.write_dir(&cap, Some(1), sealed(&cap, 1, &["a"]));
        assert!(
            matches!(r, Response::Err(RemoteError::Malformed(_))),
            "{r:?}"
        );
        let garbage = h.write_dir(&cap, Some(1), vec![1, 2, 3]);
        assert!(
            matches!(garbage, Response::Err(RemoteError::Malformed(_))),
            "{garbage:?}"
        );
        assert_eq!(names(&h.read_dir(&cap).unwrap(), &cap), ["a"]);
        // Creating a directory needs a record signed for its storage index.
        let r = h.request(Request::DirWrite {
            si: dir(3).verify_cap().storage_index,
            write_enabler: mallory.write_enabler(&SERVER),
            expected: None,
            record: sealed(&mallory, 1, &[]),
        });
        assert!(forbidden(&r), "{r:?}");
    }

    #[test]
    fn the_server_keeps_no_plaintext_and_bounds_what_it_holds() {
        let journal = MemJournal::new();
        let vdrive = Vdrive::new(Box::new(journal.clone())).with_dir_limits(2000, 2000);
        let me = Addr::new(NodeId([0; 32]), Service::Vdrive);
        let mut h = Driven::new(vdrive, me, T0, 3);
        h.input(Input::Start);
        let cap = dir(1);
        let write = |h: &mut Driven<Vdrive>, expected, version, names: &[&str]| {
            h.only_answer(
                CLIENT,
                Request::DirWrite {
                    si: cap.verify_cap().storage_index,
                    write_enabler: cap.write_enabler(&SERVER),
                    expected,
                    record: sealed(&cap, version, names),
                },
            )
        };
        assert_eq!(write(&mut h, None, 1, &["secret-diary"]), Response::Ok);
        let many: Vec<String> = (0..100).map(|i| format!("file-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let full = write(&mut h, Some(1), 2, &many);
        assert!(
            matches!(full, Response::Err(RemoteError::Full { .. })),
            "{full:?}"
        );
        let stored: Vec<u8> = journal.clone().records().unwrap().concat();
        let visible = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
        assert!(!visible(b"secret-diary"));
        assert!(!visible(b"URI:LIT:"));
        assert!(!visible(&cap.write_enabler(&SERVER)), "only what checks it");
    }

    #[test]
    fn one_node_cannot_take_the_whole_server() {
        let vdrive = Vdrive::new(Box::new(MemJournal::new())).with_dir_limits(100_000, 3000);
        let me = Addr::new(NodeId([0; 32]), Service::Vdrive);
        let mut h = Driven::new(vdrive, me, T0, 3);
        h.input(Input::Start);
        let create = |h: &mut Driven<Vdrive>, from: Addr, seed: u8| {
            let cap = dir(seed);
            let body = Request::DirWrite {
                si: cap.verify_cap().storage_index,
                write_enabler: cap.write_enabler(&SERVER),
                expected: None,
                record: sealed(&cap, 1, &["a-file-with-a-name"]),
            };
            h.only_answer(from, body)
        };
        let mallory = Addr::new(NodeId([66; 32]), Service::Client);
        let mut made = 0;
        let refused = loop {
            match create(&mut h, mallory, made) {
                Response::Ok => made += 1,
                other => break other,
            }
            assert!(made < 100, "never refused");
        };
        assert!(
            matches!(refused, Response::Err(RemoteError::Limit(_))),
            "{refused:?}"
        );
        assert!(made > 0);
        // Another node is not held back by mallory's directories.
        assert_eq!(create(&mut h, CLIENT, 200), Response::Ok);
    }

    #[test]
    fn superseded_records_are_compacted_away() {
        let mut h = Harness::new();
        let cap = dir(1);
        h.mkdir("/kept").unwrap();
        h.write_dir(&cap, None, sealed(&cap, 1, &[]));
        for version in 2..(COMPACTION_SLACK as u64 + 10) {
            assert_eq!(
                h.write_dir(&cap, Some(version - 1), sealed(&cap, version, &["a"])),
                Response::Ok
            );
        }
        assert!(h.journal.len() < COMPACTION_SLACK + 10);
        let mut again = h.restart();
        assert_eq!(again.lookup("/kept"), entry(EntryKind::Dir));
        let latest = Record::decode(&again.read_dir(&cap).unwrap()).unwrap();
        assert_eq!(latest.version, COMPACTION_SLACK as u64 + 9);
    }

    #[test]
    fn a_journal_of_the_first_format_is_read_and_rewritten() {
        let mut journal = MemJournal::new();
        for op in [
            VdriveOp::Mkdir {
                path: "/old".into(),
            },
            VdriveOp::Mkdir {
                path: "/old/sub".into(),
            },
        ] {
            journal.append(&postcard::to_stdvec(&op).unwrap()).unwrap();
        }
        let mut h = Harness::over(journal.clone(), MAX_ENTRIES);
        assert_eq!(h.lookup("/old/sub"), entry(EntryKind::Dir));
        assert_eq!(journal.clone().records().unwrap()[0], HEADER);
        let cap = dir(1);
        assert_eq!(h.write_dir(&cap, None, sealed(&cap, 1, &[])), Response::Ok);
        let mut again = h.restart();
        assert_eq!(again.lookup("/old/sub"), entry(EntryKind::Dir));
        assert!(again.read_dir(&cap).is_some());
    }
}
