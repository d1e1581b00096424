//! Every input in the fuzz corpus (`fuzz/corpus/<target>/`: the seeds below, and whatever
//! `cargo fuzz` kept for reaching new code) through its target, as ordinary tests: CI replays
//! the fuzzers' findings without a nightly compiler. See `fuzz/README.md`.

use cairn::actors::protocol::{Message, Request, RequestId, Response};
use cairn::actors::{ShareNum, StorageIndex, Time};
use cairn::codec::dirnode::{ChildKind, DirWriteCap, Entry, Record};
use cairn::codec::{encode_stream, EncodingParams, Key, MemoryShares};
use cairn::fuzz::TARGETS;
use std::fs;
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (target, run) in TARGETS {
        let dir = corpus(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let data = fs::read(&path).expect("a corpus file");
            run(&data);
            count += 1;
        }
        assert!(count > 0, "the {target} corpus is empty");
    }
}

/// Writes the seed corpus: real inputs of each kind, from which a fuzzer mutates. Run by
/// hand when the formats change: `cargo test --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let (cap, shares) = sample_file();
    let write = |target: &str, name: &str, data: &[u8]| {
        fs::create_dir_all(corpus(target)).expect("corpus dir");
        fs::write(corpus(target).join(format!("seed-{name}")), data).expect("seed");
    };
    let message = Message::Request {
        id: RequestId(7),
        deadline: Time(9),
        body: Request::Read {
            si: StorageIndex([3; 16]),
            share: ShareNum(1),
            offset: 36,
            len: 1024,
        },
    };
    let answer = Message::Response {
        id: RequestId(7),
        body: Response::Shares(vec![(ShareNum(0), 100)]),
    };
    write("message", "read", &message.encode());
    write("message", "shares", &answer.encode());
    let frame = cairn::net::transport::frame::Frame::Deliver {
        from: cairn::actors::Service::Client,
        to: cairn::actors::Service::Storage,
        msg: message,
    };
    let framed = cairn::net::transport::frame::encode(&frame, usize::MAX).expect("encodes");
    write("frame", "deliver", &framed[4..]);
    let furl = "pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@127.0.0.1:4000/abcdefghijklmnopqrstuvwxyz";
    write("furl", "ipv4", furl.as_bytes());
    write(
        "furl",
        "ipv6",
        furl.replace("127.0.0.1", "[::1]").as_bytes(),
    );
    write("cap", "chk", cap.to_string().as_bytes());
    write("cap", "verifier", cap.verifier().to_string().as_bytes());
    write("cap", "lit", b"URI:LIT:nbswy3dpeb3w64tmmq");
    let layout = cairn::codec::ShareLayout::parse(&shares[0]).expect("a header");
    let ueb_at = (layout.ueb + layout.ueb_length_size()) as usize;
    write("ueb", "sample", &shares[0][ueb_at..]);
    for (i, share) in shares.iter().enumerate().take(3) {
        write("share", &format!("share{i}"), share);
    }
    let mut journal = Vec::new();
    for record in [&b"one"[..], b"", b"three"] {
        journal.extend(cairn::actors::store::framed::frame(record));
    }
    write("journal", "three", &journal);
    let torn = [
        &journal[..],
        &cairn::actors::store::framed::frame(b"torn")[..7],
    ]
    .concat();
    write("journal", "torn", &torn);
    write("config", "node", SAMPLE_CONFIG.as_bytes());
    let dir = DirWriteCap::from_write_key(cairn::fuzz::FUZZ_DIR_KEY);
    let child = DirWriteCap::from_write_key([7; 16]);
    let entries = [
        Entry {
            name: "a file".into(),
            kind: ChildKind::File,
            read_cap: cap.to_string(),
            write_cap: None,
            size: Some(5000),
            mtime: Some(1_700_000_000),
        },
        Entry {
            name: "sub".into(),
            kind: ChildKind::Dir,
            read_cap: child.read_cap().to_string(),
            write_cap: Some(child.to_string()),
            size: None,
            mtime: None,
        },
    ];
    let mut iv = 0u8;
    let mut ivs = || {
        iv += 1;
        [iv; 16]
    };
    let record = Record::seal(&dir, 3, &entries, &mut ivs).expect("seals");
    write("dirnode", "two-entries", &record.encode());
    let empty = Record::seal(&dir, 1, &[], &mut ivs).expect("seals");
    write("dirnode", "empty", &empty.encode());
    write("cap", "dir", dir.to_string().as_bytes());
    write("cap", "dir-ro", dir.read_cap().to_string().as_bytes());
}

fn sample_file() -> (cairn::codec::ChkCap, Vec<Vec<u8>>) {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let params = EncodingParams::new(2, 4, 1024).expect("params");
    let mut shares = MemoryShares::default();
    let file = encode_stream(
        Key([5; 16]),
        params,
        data.len() as u64,
        &data[..],
        &mut shares,
    )
    .expect("encodes");
    (file.cap, shares.into_shares())
}

const SAMPLE_CONFIG: &str = r#"[node]
nickname = "store1"
listen = "127.0.0.1:0"
gateway = "127.0.0.1:0"

[client]
introducer = "pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@127.0.0.1:4000/abcdefghijklmnopqrstuvwxyz"
shares_needed = 3
shares_happy = 7
shares_total = 10

[storage]
enabled = true
reserved_space = "1 GB"
"#;
