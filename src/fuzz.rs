//! What the fuzz targets (`fuzz/`, run with `cargo fuzz`) feed arbitrary bytes to: every
//! parser of input from a peer, a disk or a user. Each function must return on any input —
//! never panic, never allocate without bound — and what parses must print back to itself.
//!
//! The same functions run over the checked-in corpus (`fuzz/corpus/<target>/`) in the test
//! suite (`tests/fuzz_corpus.rs`), so CI replays every input a fuzzer ever kept.

use cairn_actors::protocol::Message;
use cairn_actors::store::{FramedJournal, Journal, Medium};
use cairn_codec::verify;
use cairn_codec::{Cap, ShareLayout, Ueb, VerifierCap};
use cairn_net::transport::frame::{self, Frame, Hello};
use cairn_net::transport::Furl;
use std::io;

/// A fuzz target: arbitrary bytes in, a panic only for a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", transport_frame),
    ("message", message),
    ("furl", furl),
    ("cap", cap),
    ("ueb", ueb),
    ("share", share),
    ("journal", journal),
    ("config", config),
    ("dirnode", dirnode),
];

/// A frame off a connection: the handshake's and every later one.
pub fn transport_frame(data: &[u8]) {
    if let Ok(f) = frame::decode::<Frame>(data) {
        let again = frame::encode(&f, usize::MAX).expect("a decoded frame encodes");
        assert_eq!(frame::decode::<Frame>(&again[4..]).ok(), Some(f));
    }
    let _ = frame::decode::<Hello>(data);
}

/// An actor message off the wire.
pub fn message(data: &[u8]) {
    if let Ok(msg) = Message::decode(data) {
        assert_eq!(Message::decode(&msg.encode()), Ok(msg));
    }
}

/// A FURL, as a user or a config file gives it.
pub fn furl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(furl) = text.parse::<Furl>() {
        assert_eq!(furl.to_string().parse::<Furl>().ok(), Some(furl));
    }
}

/// A cap, as anyone may hand one over.
pub fn cap(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cap) = text.parse::<Cap>() {
        assert_eq!(cap.to_string().parse::<Cap>().ok(), Some(cap));
    }
}

/// A directory record from a vdrive server, opened with the write cap of the directory
/// the seeds were sealed for (a server can answer anything for any directory).
pub fn dirnode(data: &[u8]) {
    use cairn_codec::dirnode::{DirWriteCap, Record};
    let Ok(record) = Record::decode(data) else {
        return;
    };
    let cap = DirWriteCap::from_write_key(FUZZ_DIR_KEY);
    if let Ok(entries) = record.open_writable(&cap) {
        let read = record
            .open(&cap.read_cap())
            .expect("what opens writable opens readable");
        assert_eq!(read.len(), entries.len());
    }
}

/// The write key of the directory the `dirnode` seeds are records of.
pub const FUZZ_DIR_KEY: [u8; 16] = [0x42; 16];

/// A UEB (whatever its hash: a crafted cap can pin any UEB).
pub fn ueb(data: &[u8]) {
    if let Ok(ueb) = Ueb::parse(data) {
        assert_eq!(Ueb::parse(&ueb.to_bytes()).ok(), Some(ueb));
    }
}

/// A share as a server returns it, checked against a cap made to match its own UEB (so the
/// fuzzer gets past the UEB's hash to the trees and blocks).
pub fn share(data: &[u8]) {
    let Ok(layout) = ShareLayout::parse(data) else {
        return;
    };
    let cap = cap_for(data, &layout);
    let share = data.get(4).map_or(0, |&b| usize::from(b));
    let _ = verify::check_whole_share(&cap, share, data);
}

/// The verify cap a share's own UEB would have.
fn cap_for(data: &[u8], layout: &ShareLayout) -> VerifierCap {
    let (offset, len) = verify::ueb_region(layout);
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = usize::try_from(offset.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(data.len());
    let prefix = layout.ueb_length_size() as usize;
    let region = &data[start..end];
    let ueb = region.get(prefix..).unwrap_or_default();
    let claimed = region
        .get(..prefix)
        .map(|p| p.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b)))
        .unwrap_or(0)
        .min(ueb.len());
    let bytes = &ueb[..claimed];
    let (k, n, size) = match Ueb::parse(bytes) {
        Ok(u) => (u.geometry.k, u.geometry.n, u.geometry.size),
        Err(_) => (1, 1, 1),
    };
    VerifierCap {
        storage_index: cairn_codec::StorageIndex([0; 16]),
        ueb_hash: Ueb::hash(bytes),
        k,
        n,
        size,
    }
}

/// A journal file as a crash, bit rot or a vandal left it: reading it either refuses it as
/// damaged or gives records after which an append is read back last.
pub fn journal(data: &[u8]) {
    let mut journal = FramedJournal::new(Bytes(data.to_vec()));
    let Ok(records) = journal.records() else {
        return;
    };
    journal
        .append(b"appended")
        .expect("appending to a recovered journal");
    let mut reopened = FramedJournal::new(Bytes(journal.medium().0.clone()));
    let after = reopened
        .records()
        .expect("a journal just written reads back");
    assert_eq!(after.len(), records.len() + 1);
    assert_eq!(after[..records.len()], records[..]);
    assert_eq!(after.last().map(Vec::as_slice), Some(&b"appended"[..]));
}

/// A `cairn.toml` as a person may write it.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = cairn_node::config::NodeConfig::parse(text) {
            let again = cairn_node::config::NodeConfig::parse(&config.to_commented_toml());
            assert_eq!(again.ok(), Some(config));
        }
    }
}

/// A journal's medium in memory.
struct Bytes(Vec<u8>);

impl Medium for Bytes {
    type Reader<'a> = &'a [u8];

    fn read_from(&mut self, offset: u64) -> io::Result<Self::Reader<'_>> {
        let at = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        Ok(&self.0[at..])
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let at = usize::try_from(offset).map_err(io::Error::other)?;
        self.0.truncate(at);
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }

    fn replace(&mut self, data: &[u8]) -> io::Result<()> {
        self.0 = data.to_vec();
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn name(&self) -> String {
        "the fuzzed journal".into()
    }
}
