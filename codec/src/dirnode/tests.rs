use super::*;
use crate::cap::Cap;
use proptest::prelude::*;

fn cap(seed: u8) -> DirWriteCap {
    DirWriteCap::from_write_key([seed; 16])
}

/// IVs counting up from `start`: deterministic, distinct.
fn ivs(start: u8) -> impl FnMut() -> [u8; 16] {
    let mut next = start;
    move || {
        next = next.wrapping_add(1);
        [next; 16]
    }
}

fn file(name: &str, cap: &str) -> Entry {
    Entry {
        name: name.to_owned(),
        kind: ChildKind::File,
        read_cap: cap.to_owned(),
        write_cap: None,
        size: Some(5),
        mtime: Some(1_700_000_000),
    }
}

fn dir(name: &str, child: &DirWriteCap) -> Entry {
    Entry {
        name: name.to_owned(),
        kind: ChildKind::Dir,
        read_cap: child.read_cap().to_string(),
        write_cap: Some(child.to_string()),
        size: None,
        mtime: None,
    }
}

const FILE_CAP: &str = "URI:LIT:nbswy3dp";

#[test]
fn caps_print_parse_and_derive_one_way() {
    let write = cap(1);
    let read = write.read_cap();
    let verify = read.verify_cap();
    assert_eq!(write.verify_cap(), verify);
    for (text, prefix) in [
        (write.to_string(), "URI:CAIRN-DIR:"),
        (read.to_string(), "URI:CAIRN-DIR-RO:"),
        (verify.to_string(), "URI:CAIRN-DIR-V:"),
    ] {
        assert!(text.starts_with(prefix), "{text}");
        let parsed = DirCap::parse(&text).unwrap().expect("a dir cap");
        assert_eq!(parsed.to_string(), text);
        assert_eq!(parsed.verify_cap(), verify);
        assert_eq!(
            text.parse::<Cap>().unwrap().to_string(),
            text,
            "the codec's caps too"
        );
    }
    assert_ne!(read.read_key, write.write_key);
    assert_ne!(cap(2).verify_cap(), verify, "each directory its own");
    // Debug output names the storage index only: caps are secrets.
    assert!(!format!("{write:?}").contains(&base32::encode(&write.write_key)));
}

#[test]
fn bad_and_foreign_cap_strings_are_refused_with_a_reason() {
    let write = cap(1).to_string();
    let other_fp = base32::encode(&cap(2).fingerprint);
    let (head, _) = write.rsplit_once(':').unwrap();
    let mismatched = format!("{head}:{other_fp}");
    for bad in [
        mismatched.as_str(),
        "URI:CAIRN-DIR:",
        "URI:CAIRN-DIR-RO:abc",
        "URI:CAIRN-DIR-V:aaaa:bbbb",
    ] {
        let error = DirCap::parse(bad).unwrap_err();
        assert!(
            matches!(error, DirError::MalformedCap { .. }),
            "{bad}: {error}"
        );
        assert!(bad.parse::<Cap>().is_err(), "{bad}");
    }
    // Tahoe's directories are another format: not taken for ours.
    assert_eq!(DirCap::parse("URI:DIR2:aaaa:bbbb").unwrap(), None);
    let error = "URI:DIR2:aaaa:bbbb".parse::<Cap>().unwrap_err().to_string();
    assert!(error.contains("not a cap cairn knows"), "{error}");
}

#[test]
fn a_sealed_record_opens_with_its_caps_and_hides_write_caps_from_readers() {
    let write = cap(1);
    let child = cap(2);
    let entries = vec![file("notes.txt", FILE_CAP), dir("sub", &child)];
    let record = Record::seal(&write, 7, &entries, &mut ivs(0)).unwrap();
    assert_eq!(record.version, 7);
    assert_eq!(record.open_writable(&write).unwrap(), entries);
    let read = record.open(&write.read_cap()).unwrap();
    assert_eq!(read[1].write_cap, None, "a reader learns read caps only");
    assert_eq!(read[1].read_cap, child.read_cap().to_string());
    assert_eq!(read[0], entries[0]);
    record.check(&write.verify_cap()).unwrap();
    // The wire form round-trips.
    assert_eq!(Record::decode(&record.encode()).unwrap(), record);
}

#[test]
fn the_server_sees_no_name_and_no_cap() {
    // Keys unlike the test's IVs (which the record carries in the clear).
    let write = cap(0xa1);
    let child = cap(0xb2);
    let entries = vec![
        file("diary-of-alice", FILE_CAP),
        dir("secret-plans", &child),
    ];
    let bytes = Record::seal(&write, 1, &entries, &mut ivs(0))
        .unwrap()
        .encode();
    let visible = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for secret in [
        "diary-of-alice".to_owned(),
        "secret-plans".to_owned(),
        FILE_CAP.to_owned(),
        child.to_string(),
        child.read_cap().to_string(),
        base32::encode(&child.write_key),
    ] {
        assert!(!visible(secret.as_bytes()), "{secret} is in the clear");
    }
    assert!(!visible(&child.write_key));
    assert!(!visible(&write.write_key));
}

#[test]
fn forged_spliced_or_altered_records_are_refused() {
    let write = cap(1);
    let record = Record::seal(&write, 3, &[file("a", FILE_CAP)], &mut ivs(0)).unwrap();
    let read = write.read_cap();
    let forged = |change: &dyn Fn(&mut Record)| {
        let mut r = record.clone();
        change(&mut r);
        r
    };
    let cases: Vec<(&str, Record)> = vec![
        (
            "a flipped ciphertext bit",
            forged(&|r| r.ciphertext[0] ^= 1),
        ),
        ("a newer version claimed", forged(&|r| r.version = 4)),
        ("another IV", forged(&|r| r.iv[0] ^= 1)),
        (
            "a truncated signature",
            forged(&|r| r.signature.truncate(10)),
        ),
        (
            "another directory's record",
            Record::seal(&cap(9), 3, &[file("a", FILE_CAP)], &mut ivs(0)).unwrap(),
        ),
        (
            "another key with this directory's storage index",
            forged(&|r| r.public_key = cap(9).signing_key().verifying_key().to_bytes()),
        ),
    ];
    for (what, bad) in cases {
        let error = bad.open(&read).unwrap_err();
        assert!(matches!(error, DirError::Forged(_)), "{what}: {error}");
        assert!(bad.check(&write.verify_cap()).is_err(), "{what}");
    }
}

#[test]
fn a_writer_cannot_store_what_is_no_directory() {
    let write = cap(1);
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let long_cap = "U".repeat(MAX_CHILD_CAP_LEN + 1);
    let cases = vec![
        vec![file("a", FILE_CAP), file("a", FILE_CAP)],
        vec![file("a/b", FILE_CAP)],
        vec![file("..", FILE_CAP)],
        vec![file("", FILE_CAP)],
        vec![file("bell\u{7}", FILE_CAP)],
        vec![file(&long, FILE_CAP)],
        vec![file("a", &long_cap)],
        (0..=MAX_ENTRIES)
            .map(|i| file(&i.to_string(), FILE_CAP))
            .collect(),
    ];
    for entries in cases {
        let error = Record::seal(&write, 1, &entries, &mut ivs(0)).unwrap_err();
        assert!(matches!(error, DirError::Invalid(_)), "{error}");
    }
    // The largest directory of the longest names and caps still fits a record.
    let full: Vec<Entry> = (0..MAX_ENTRIES)
        .map(|i| file(&format!("{i:0>255}"), &"U".repeat(MAX_CHILD_CAP_LEN)))
        .collect();
    match Record::seal(&write, 1, &full, &mut ivs(0)) {
        Ok(record) => assert!(record.encode().len() <= MAX_RECORD_LEN),
        Err(e) => assert!(e.to_string().contains("over"), "{e}"),
    }
}

#[test]
fn write_enablers_are_per_directory_and_per_server() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let write = cap(1);
    assert_ne!(write.write_enabler(&a), write.write_enabler(&b));
    assert_ne!(write.write_enabler(&a), cap(2).write_enabler(&a));
    assert_eq!(write.write_enabler(&a), cap(1).write_enabler(&a));
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(record) = Record::decode(&bytes) {
            let _ = record.open(&cap(1).read_cap());
        }
    }

    #[test]
    fn any_cap_text_parses_or_fails_without_panicking(text in "URI:CAIRN-DIR(-RO|-V)?:[a-z2-7:]{0,120}") {
        let _ = DirCap::parse(&text);
    }
}

/// `docs/vectors/dirnode.json`: caps and records made from fixed keys and IVs, so that
/// another implementation can check it derives and seals the same bytes. Regenerate with
/// `CAIRN_WRITE_VECTORS=1 cargo test -p cairn-codec dirnode` (and say why in the commit).
#[test]
fn the_checked_in_test_vectors_are_what_the_code_makes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/vectors/dirnode.json");
    let made = vectors();
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        std::fs::write(path, &made).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).expect("docs/vectors/dirnode.json");
    assert_eq!(checked_in, made, "the format changed: see this test's docs");
}

fn vectors() -> String {
    let server = [0x5a; 32];
    let mut out = String::from("[\n");
    for seed in [0u8, 1, 0xff] {
        let write = cap(seed);
        let child = cap(seed.wrapping_add(1));
        let entries = vec![file("a file", FILE_CAP), dir("a directory", &child)];
        let record = Record::seal(&write, 1, &entries, &mut ivs(seed)).unwrap();
        let fields = [
            ("write_key", base32::encode(&write.write_key)),
            ("write_cap", write.to_string()),
            ("read_cap", write.read_cap().to_string()),
            ("verify_cap", write.verify_cap().to_string()),
            ("public_key", base32::encode(&record.public_key)),
            (
                "write_enabler_for_server_5a5a",
                base32::encode(&write.write_enabler(&server)),
            ),
            ("child_write_cap", child.to_string()),
            ("record", base32::encode(&record.encode())),
        ];
        out += "  {\n";
        for (i, (name, value)) in fields.iter().enumerate() {
            let comma = if i + 1 < fields.len() { "," } else { "" };
            out += &format!("    \"{name}\": \"{value}\"{comma}\n");
        }
        out += if seed == 0xff { "  }\n" } else { "  },\n" };
    }
    out + "]\n"
}
