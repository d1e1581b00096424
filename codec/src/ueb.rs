//! The URI extension block (UEB): the file's parameters and root hashes, stored in every share
//! and pinned by the cap through its hash.

use crate::hash::{tagged_hash, tags, Hash};
use crate::params::Geometry;
use crate::Error;
use std::collections::BTreeMap;

/// The largest UEB a share may claim. Tahoe's are about 400 bytes; this bounds what a peer can
/// make a downloader allocate.
pub const MAX_UEB_SIZE: u64 = 64 * 1024;

/// A UEB's content. Building one fixes its bytes; parsing one checks that it describes a
/// consistent file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ueb {
    pub geometry: Geometry,
    pub crypttext_hash: Hash,
    pub crypttext_root_hash: Hash,
    pub share_root_hash: Hash,
}

impl Ueb {
    /// The UEB's bytes: entries sorted by key, each `key:netstring(value)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let g = &self.geometry;
        let entries: [(&str, Vec<u8>); 11] = [
            ("codec_name", b"crs".to_vec()),
            (
                "codec_params",
                format!("{}-{}-{}", g.segment_size, g.k, g.n).into_bytes(),
            ),
            ("crypttext_hash", self.crypttext_hash.to_vec()),
            ("crypttext_root_hash", self.crypttext_root_hash.to_vec()),
            ("needed_shares", g.k.to_string().into_bytes()),
            ("num_segments", g.num_segments.to_string().into_bytes()),
            ("segment_size", g.segment_size.to_string().into_bytes()),
            ("share_root_hash", self.share_root_hash.to_vec()),
            ("size", g.size.to_string().into_bytes()),
            (
                "tail_codec_params",
                format!("{}-{}-{}", g.padded_tail_size, g.k, g.n).into_bytes(),
            ),
            ("total_shares", g.n.to_string().into_bytes()),
        ];
        let mut out = Vec::with_capacity(512);
        for (key, value) in entries {
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            out.extend_from_slice(&crate::hash::netstring(&value));
        }
        out
    }

    /// `tagged_hash("allmydata_uri_extension_v1", bytes)`: what a cap pins.
    pub fn hash(bytes: &[u8]) -> Hash {
        tagged_hash(tags::UEB, bytes)
    }

    /// Parses UEB bytes and checks that they describe one consistent file: the codec is
    /// `crs`, and the segment, tail and share counts agree with the size. Keys this version
    /// does not use (older Tahoe wrote plaintext hashes) are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let fields = parse_fields(bytes)?;
        let get = |key: &str| {
            fields
                .get(key)
                .ok_or_else(|| malformed(format!("no `{key}` entry")))
        };
        let text = |key: &str| -> Result<&str, Error> {
            std::str::from_utf8(get(key)?).map_err(|_| malformed(format!("`{key}` is not text")))
        };
        let number = |key: &str| -> Result<u64, Error> { parse_decimal(text(key)?, key) };
        let hash = |key: &str| -> Result<Hash, Error> {
            get(key)?
                .as_slice()
                .try_into()
                .map_err(|_| malformed(format!("`{key}` is not 32 bytes")))
        };

        if get("codec_name")? != b"crs" {
            return Err(malformed("`codec_name` is not `crs`".into()));
        }
        let k = number("needed_shares")?;
        let n = number("total_shares")?;
        let size = number("size")?;
        let segment_size = number("segment_size")?;
        if !(1..=n).contains(&k) || n > crate::params::MAX_SHARES as u64 {
            return Err(malformed(format!(
                "needed_shares={k} and total_shares={n} are impossible"
            )));
        }
        if size == 0
            || segment_size == 0
            || segment_size % k != 0
            || size
                .checked_next_multiple_of(k)
                .is_none_or(|padded| segment_size > padded)
        {
            return Err(malformed(format!(
                "segment_size={segment_size} does not fit size={size} and k={k}"
            )));
        }
        let params = crate::EncodingParams::new(k as usize, n as usize, segment_size)?;
        // Limits a reader keeps to (segment size, segment count) are the UEB's too: a file
        // past them is refused as unreadable, not buffered.
        let geometry = Geometry::new(params, size)
            .map_err(|e| malformed(format!("an unreadable file: {e}")))?;
        debug_assert_eq!(geometry.segment_size, segment_size);
        let expect = |key: &str, want: String| -> Result<(), Error> {
            match text(key)? == want {
                true => Ok(()),
                false => Err(malformed(format!(
                    "`{key}` is {:?} but the file's geometry gives {want:?}",
                    text(key)?
                ))),
            }
        };
        expect("codec_params", format!("{segment_size}-{k}-{n}"))?;
        expect(
            "tail_codec_params",
            format!("{}-{k}-{n}", geometry.padded_tail_size),
        )?;
        expect("num_segments", geometry.num_segments.to_string())?;
        Ok(Ueb {
            geometry,
            crypttext_hash: hash("crypttext_hash")?,
            crypttext_root_hash: hash("crypttext_root_hash")?,
            share_root_hash: hash("share_root_hash")?,
        })
    }
}

fn malformed(reason: String) -> Error {
    Error::MalformedUeb(reason)
}

fn parse_decimal(text: &str, what: &str) -> Result<u64, Error> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match canonical.then(|| text.parse::<u64>().ok()).flatten() {
        Some(v) => Ok(v),
        None => Err(malformed(format!(
            "`{what}` is {text:?}, not a decimal number"
        ))),
    }
}

/// Splits `key:len:value,key:len:value,…` into its entries.
fn parse_fields(mut rest: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    if rest.len() as u64 > MAX_UEB_SIZE {
        return Err(malformed(format!(
            "{} bytes is larger than the {MAX_UEB_SIZE}-byte limit",
            rest.len()
        )));
    }
    let mut fields = BTreeMap::new();
    while !rest.is_empty() {
        let colon = rest
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| malformed("an entry has no `:` after its key".into()))?;
        let key = std::str::from_utf8(&rest[..colon])
            .ok()
            .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| malformed("an entry's key is not printable ASCII".into()))?
            .to_string();
        rest = &rest[colon + 1..];
        let colon = rest
            .iter()
            .take(8)
            .position(|&b| b == b':')
            .ok_or_else(|| malformed(format!("`{key}` has no netstring length")))?;
        let len = std::str::from_utf8(&rest[..colon])
            .map_err(|_| malformed(format!("`{key}` has a bad length")))?;
        let len = parse_decimal(len, &key)? as usize;
        rest = &rest[colon + 1..];
        if rest.len() < len + 1 || rest[len] != b',' {
            return Err(malformed(format!(
                "`{key}`'s value overruns the block or lacks its closing `,`"
            )));
        }
        if fields.insert(key.clone(), rest[..len].to_vec()).is_some() {
            return Err(malformed(format!("`{key}` appears twice")));
        }
        rest = &rest[len + 1..];
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncodingParams;

    fn sample() -> Ueb {
        Ueb {
            geometry: Geometry::new(EncodingParams::new(3, 10, 131072).unwrap(), 1_000_000)
                .unwrap(),
            crypttext_hash: [1; 32],
            crypttext_root_hash: [2; 32],
            share_root_hash: [3; 32],
        }
    }

    #[test]
    fn round_trips() {
        let ueb = sample();
        assert_eq!(Ueb::parse(&ueb.to_bytes()).unwrap(), ueb);
        assert!(ueb
            .to_bytes()
            .starts_with(b"codec_name:3:crs,codec_params:11:131073-3-10,"));
    }

    /// `ueb` with some entries replaced, written back as netstrings.
    fn with_entries(ueb: &Ueb, changes: &[(&str, &str)]) -> Vec<u8> {
        let mut fields = parse_fields(&ueb.to_bytes()).unwrap();
        for (key, value) in changes {
            fields.insert((*key).to_owned(), value.as_bytes().to_vec());
        }
        let mut out = Vec::new();
        for (key, value) in fields {
            out.extend_from_slice(format!("{key}:{}:", value.len()).as_bytes());
            out.extend_from_slice(&value);
            out.push(b',');
        }
        out
    }

    #[test]
    fn a_segment_over_the_limit_is_unreadable() {
        let g = |segment: u64| {
            let params = EncodingParams::new(1, 1, segment).unwrap();
            Geometry::new(params, 1 << 30)
        };
        assert!(g(crate::params::MAX_SEGMENT_SIZE).is_ok());
        assert!(g(crate::params::MAX_SEGMENT_SIZE + 1).is_err());
        let huge = with_entries(
            &sample(),
            &[
                ("needed_shares", "1"),
                ("total_shares", "1"),
                ("size", "1073741824"),
                ("segment_size", "1073741824"),
                ("codec_params", "1073741824-1-1"),
                ("tail_codec_params", "1073741824-1-1"),
                ("num_segments", "1"),
            ],
        );
        let error = Ueb::parse(&huge).unwrap_err().to_string();
        assert!(error.contains("over the limit"), "{error}");
        let overflow = with_entries(&sample(), &[("size", "18446744073709551615")]);
        assert!(matches!(Ueb::parse(&overflow), Err(Error::MalformedUeb(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = Ueb::parse(&bytes);
        }
    }

    #[test]
    fn rejects_inconsistent_or_broken_blocks() {
        let good = sample().to_bytes();
        let swap = |from: &str, to: &str| {
            String::from_utf8_lossy(&good)
                .replace(from, to)
                .into_bytes()
        };
        for bad in [
            swap("num_segments:1:8", "num_segments:1:9"),
            swap("codec_name:3:crs", "codec_name:3:xyz"),
            swap("size:7:1000000", "size:7:9000000"),
            swap("needed_shares:1:3", "needed_shares:1:0"),
            swap("size:7:1000000", "size:7:01000000"),
            good[..good.len() - 1].to_vec(),
            [&good[..], b"size:1:1,"].concat(),
            b"nonsense".to_vec(),
            vec![b'a'; MAX_UEB_SIZE as usize + 1],
        ] {
            assert!(
                matches!(Ueb::parse(&bad), Err(Error::MalformedUeb(_))),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
    }
}
