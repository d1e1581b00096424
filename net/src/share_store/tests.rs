//! The disk share store: the store contract (the suite every store passes), its layout, its
//! durability across reopening, its tolerance of a messy directory, and the real storage
//! server over it.

use super::*;
use crate::journal::FileJournal;
use cairn_actors::actor::{Addr, Input, Service, Time};
use cairn_actors::protocol::{LeaseSecret, RemoteError, Request, Response, UploadSecret};
use cairn_actors::storage::{StorageConfig, StorageServer};
use cairn_actors::testing::{share_store_suite, Driven};
use cairn_actors::{NodeId, NodeKey};
use tempfile::TempDir;

const SI: StorageIndex = StorageIndex([1; 16]);
const OTHER_SI: StorageIndex = StorageIndex([2; 16]);

fn kind<T: std::fmt::Debug>(result: io::Result<T>) -> io::ErrorKind {
    result.expect_err("the store should refuse").kind()
}

fn store(capacity: u64) -> (TempDir, DiskShareStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskShareStore::open(dir.path(), Some(capacity)).unwrap();
    (dir, store)
}

fn reopen(dir: &TempDir, capacity: u64) -> DiskShareStore {
    DiskShareStore::open(dir.path(), Some(capacity)).unwrap()
}

#[test]
fn the_disk_store_keeps_the_store_contract() {
    let dirs = std::cell::RefCell::new(Vec::new());
    share_store_suite(|capacity| {
        let (dir, store) = store(capacity);
        dirs.borrow_mut().push(dir);
        store
    });
}

#[test]
fn shares_sit_in_tahoes_layout() {
    let (dir, mut store) = store(1000);
    store.create(SI, ShareNum(3), 10).unwrap();
    store.write(SI, ShareNum(3), 0, b"hellworld\0").unwrap();
    store.commit(SI, ShareNum(3)).unwrap();
    assert_eq!(store.list(OTHER_SI).unwrap(), vec![]);
    let name = SI.to_string();
    let file = dir
        .path()
        .join("shares")
        .join(&name[..2])
        .join(&name)
        .join("3");
    assert_eq!(fs::read(file).unwrap(), b"hellworld\0");
    assert!(
        !dir.path().join("shares/incoming").join(&name).exists(),
        "no incoming bucket is left behind"
    );
}

#[test]
fn without_a_capacity_the_store_offers_what_the_disk_has_free() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DiskShareStore::open(dir.path(), None).unwrap();
    store.create(SI, ShareNum(0), 10).unwrap();
    let offered = store.available_bytes().unwrap();
    assert!(offered > 0 && offered < u64::MAX / 2, "{offered}");
    assert_eq!(
        kind(store.create(SI, ShareNum(1), u64::MAX / 2)),
        io::ErrorKind::StorageFull
    );
}

#[test]
fn a_sparse_incoming_share_counts_against_free_space_at_its_full_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DiskShareStore::open(dir.path(), None).unwrap();
    let before = store.available_bytes().unwrap();
    let size = 1 << 30; // a sparse file: the file system hardly notices it
    store.create(SI, ShareNum(0), size).unwrap();
    let slack = 1 << 20; // what else on this disk changed meanwhile
    let during = store.available_bytes().unwrap();
    assert!(during + size <= before + slack, "{before} then {during}");
    let reopened = DiskShareStore::open(dir.path(), None)
        .unwrap()
        .available_bytes()
        .unwrap();
    assert!(
        reopened + size <= before + slack,
        "counted again on reopening"
    );
    store.abort(SI, ShareNum(0)).unwrap();
    assert!(
        store.available_bytes().unwrap() + slack >= before,
        "given back"
    );
}

#[test]
fn commits_survive_reopening_and_leftovers_are_listed() {
    let (dir, mut store) = store(1000);
    store.create(SI, ShareNum(0), 3).unwrap();
    store.write(SI, ShareNum(0), 0, b"abc").unwrap();
    store.commit(SI, ShareNum(0)).unwrap();
    store.create(SI, ShareNum(1), 4).unwrap();
    store.create(OTHER_SI, ShareNum(7), 5).unwrap();
    drop(store);

    let mut store = reopen(&dir, 1000);
    assert_eq!(store.read(SI, ShareNum(0), 0, 10).unwrap(), b"abc");
    assert_eq!(store.list(SI).unwrap(), vec![(ShareNum(0), 3)]);
    assert_eq!(
        store.incoming().unwrap(),
        vec![(SI, ShareNum(1)), (OTHER_SI, ShareNum(7))]
    );
    assert_eq!(store.used_bytes().unwrap(), 12);
    store.abort(SI, ShareNum(1)).unwrap();
    store.abort(OTHER_SI, ShareNum(7)).unwrap();
    assert_eq!(store.used_bytes().unwrap(), 3);
    assert_eq!(store.incoming().unwrap(), vec![]);
    assert_eq!(reopen(&dir, 1000).used_bytes().unwrap(), 3);
}

/// Puts junk where the store looks: odd names, directories for files, files for
/// directories, a symlink, a misfiled bucket.
fn litter(shares: &Path) {
    let name = SI.to_string();
    let bucket = shares.join(&name[..2]).join(&name);
    fs::create_dir_all(bucket.join("4")).unwrap(); // a directory named like a share
    for junk in ["07", "+5", "256", "-1", "x", ".tmp"] {
        fs::write(bucket.join(junk), b"junk").unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/hostname", bucket.join("6")).unwrap();
    fs::write(shares.join("zz"), b"a file where a prefix directory goes").unwrap();
    fs::create_dir_all(shares.join("ab/not-base32")).unwrap();
    let other = OTHER_SI.to_string();
    fs::create_dir_all(shares.join("aa").join(&other)).unwrap(); // misfiled bucket
    fs::write(shares.join("aa").join(&other).join("0"), b"x").unwrap();
    fs::write(shares.join("incoming/stray"), b"x").unwrap();
    fs::create_dir_all(shares.join("incoming").join(&name).join("9")).unwrap();
    fs::write(shares.join("incoming").join(&name).join("junk"), b"x").unwrap();
}

#[test]
fn junk_in_the_tree_is_ignored_and_never_read() {
    let (dir, mut store) = store(1000);
    store.create(SI, ShareNum(2), 3).unwrap();
    store.commit(SI, ShareNum(2)).unwrap();
    litter(&dir.path().join("shares"));

    let mut store = reopen(&dir, 1000);
    assert_eq!(store.list(SI).unwrap(), vec![(ShareNum(2), 3)]);
    assert_eq!(store.list(OTHER_SI).unwrap(), vec![]);
    assert_eq!(store.incoming().unwrap(), vec![]);
    assert_eq!(store.used_bytes().unwrap(), 3);
    assert_eq!(
        kind(store.read(SI, ShareNum(4), 0, 1)),
        io::ErrorKind::InvalidData
    );
    #[cfg(unix)]
    assert_eq!(
        kind(store.read(SI, ShareNum(6), 0, 1)),
        io::ErrorKind::InvalidData
    );
    // Junk where a share would go blocks that share, with an error.
    assert_eq!(
        kind(store.create(SI, ShareNum(4), 1)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(store.create(SI, ShareNum(9), 1)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(store.abort(SI, ShareNum(9))),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn a_file_where_a_bucket_goes_is_an_error_not_a_panic() {
    let (dir, mut store) = store(1000);
    let name = SI.to_string();
    let prefix = dir.path().join("shares").join(&name[..2]);
    fs::create_dir_all(&prefix).unwrap();
    fs::write(prefix.join(&name), b"not a directory").unwrap();
    assert_eq!(store.list(SI).unwrap(), vec![]);
    let err = store.create(SI, ShareNum(0), 1).unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(store.used_bytes().unwrap(), 0);
    // If the junk appears between create and commit, the commit fails and the share stays
    // incoming, to be aborted.
    fs::remove_file(prefix.join(&name)).unwrap();
    store.create(SI, ShareNum(0), 1).unwrap();
    fs::write(prefix.join(&name), b"not a directory").unwrap();
    let err = store.commit(SI, ShareNum(0)).unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(store.incoming().unwrap(), vec![(SI, ShareNum(0))]);
    store.abort(SI, ShareNum(0)).unwrap();
    assert_eq!(store.used_bytes().unwrap(), 0);
}

#[test]
fn storage_indexes_and_share_numbers_parse_only_in_canonical_form() {
    assert_eq!(parse_si(&SI.to_string()), Some(SI));
    assert_eq!(parse_si(&SI.to_string().to_uppercase()), None);
    assert_eq!(parse_si("aaaa"), None);
    assert_eq!(parse_share_num("0"), Some(ShareNum(0)));
    assert_eq!(parse_share_num("255"), Some(ShareNum(255)));
    for bad in ["", "00", "01", "+1", "256", "-0", " 1"] {
        assert_eq!(parse_share_num(bad), None, "{bad:?}");
    }
}

/// Drives a real storage server over a disk store and a file journal.
const CLIENT: Addr = Addr {
    node: NodeId([9; 32]),
    service: Service::Client,
};
const LEASE: LeaseSecret = LeaseSecret([6; 32]);
const UPLOAD: UploadSecret = UploadSecret([12; 32]);

/// The real storage server over the disk store and a file journal, driven by hand.
fn started_server(dir: &Path) -> Driven<StorageServer> {
    let store = DiskShareStore::open(dir, Some(10_000)).unwrap();
    let journal = FileJournal::open(dir.join("leases")).unwrap();
    let key = NodeKey::from_seed([1; 32]);
    let me = Addr::new(key.id(), Service::Storage);
    let actor = StorageServer::new(
        key,
        "127.0.0.1:4000".into(),
        None,
        Box::new(store),
        Box::new(journal),
        StorageConfig::default(),
    );
    let mut server = Driven::new(actor, me, Time(1_700_000_000_000_000_000), 1);
    server.input(Input::Start);
    server
}

fn read(server: &mut Driven<StorageServer>, share: u8, offset: u64, len: u64) -> Response {
    let read = Request::Read {
        si: SI,
        share: ShareNum(share),
        offset,
        len,
    };
    server.only_answer(CLIENT, read)
}

#[test]
fn the_storage_server_runs_over_the_disk_store_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = started_server(dir.path());
    let allocate = Request::Allocate {
        si: SI,
        shares: vec![ShareNum(0), ShareNum(1)],
        share_size: 10,
        lease: LEASE,
        upload: UPLOAD,
    };
    assert_eq!(
        server.only_answer(CLIENT, allocate.clone()),
        Response::Allocated {
            already_have: vec![],
            allocated: vec![ShareNum(0), ShareNum(1)],
        }
    );
    let write = |share, offset, data: &[u8]| Request::Write {
        si: SI,
        share: ShareNum(share),
        offset,
        data: data.to_vec(),
        upload: UPLOAD,
    };
    assert_eq!(
        server.only_answer(CLIENT, write(0, 0, b"hello")),
        Response::Ok
    );
    assert_eq!(
        server.only_answer(CLIENT, write(0, 5, b"world")),
        Response::Ok
    );
    assert_eq!(
        read(&mut server, 0, 0, 10),
        Response::Err(RemoteError::NoSuchShare)
    );
    let close = Request::Close {
        si: SI,
        share: ShareNum(0),
        upload: UPLOAD,
    };
    assert_eq!(server.only_answer(CLIENT, close), Response::Ok);
    assert_eq!(
        read(&mut server, 0, 0, 100),
        Response::Data(b"helloworld".to_vec())
    );
    assert_eq!(read(&mut server, 0, 5, 3), Response::Data(b"wor".to_vec()));
    assert_eq!(
        server.only_answer(CLIENT, write(1, 0, b"left")),
        Response::Ok
    );
    drop(server);

    // Share 1 was never closed: the new server aborts it, and it can be allocated again.
    let mut server = started_server(dir.path());
    assert_eq!(
        read(&mut server, 0, 0, 100),
        Response::Data(b"helloworld".to_vec())
    );
    assert_eq!(
        server.only_answer(CLIENT, Request::List { si: SI }),
        Response::Shares(vec![(ShareNum(0), 10)])
    );
    assert_eq!(
        server.only_answer(CLIENT, allocate),
        Response::Allocated {
            already_have: vec![ShareNum(0)],
            allocated: vec![ShareNum(1)],
        }
    );
    assert_eq!(
        DiskShareStore::open(dir.path(), None)
            .unwrap()
            .incoming()
            .unwrap(),
        vec![(SI, ShareNum(1))]
    );
}
