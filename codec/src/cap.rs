//! Capabilities: the strings that name (and grant access to) a file. `URI:LIT:` holds a small
//! file itself; `URI:CHK:` holds the key and the UEB hash of an erasure-coded file;
//! `URI:CHK-Verifier:` lets its holder check shares without being able to read them.

use crate::dirnode::{DirCap, DirError};
use crate::hash::{tagged_hash, tags, Hash};
use crate::{base32, Error};
use std::fmt;
use std::str::FromStr;

/// A file's AES-128 key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 16]);

impl Key {
    /// The storage index: where servers file this file's shares.
    pub fn storage_index(&self) -> StorageIndex {
        let h = tagged_hash(tags::STORAGE_INDEX, &self.0);
        StorageIndex(h[..16].try_into().expect("16 of 32 bytes"))
    }
}

impl fmt::Debug for Key {
    // A key is a secret: never log it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

/// Names a file's shares on storage servers; derived from the key, reveals nothing of it.
/// On the wire (serde) it is its 16 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct StorageIndex(pub [u8; 16]);

impl fmt::Display for StorageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::encode(&self.0))
    }
}

impl fmt::Debug for StorageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SI(")?;
        base32::write_short(&self.0, f)?;
        f.write_str(")")
    }
}

/// A literal file: the cap is the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LitCap {
    pub data: Vec<u8>,
}

/// The read cap of an immutable file: the key, the UEB hash, and the encoding that the UEB
/// must confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChkCap {
    pub key: Key,
    pub ueb_hash: Hash,
    pub k: usize,
    pub n: usize,
    pub size: u64,
}

impl ChkCap {
    /// The verify cap of the same file.
    pub fn verifier(&self) -> VerifierCap {
        VerifierCap {
            storage_index: self.key.storage_index(),
            ueb_hash: self.ueb_hash,
            k: self.k,
            n: self.n,
            size: self.size,
        }
    }
}

/// The verify cap of an immutable file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierCap {
    pub storage_index: StorageIndex,
    pub ueb_hash: Hash,
    pub k: usize,
    pub n: usize,
    pub size: u64,
}

/// Any capability cairn understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cap {
    Lit(LitCap),
    Chk(ChkCap),
    ChkVerifier(VerifierCap),
    /// A directory's write, read or verify cap ([`crate::dirnode`]).
    Dir(DirCap),
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Lit(c) => c.fmt(f),
            Cap::Chk(c) => c.fmt(f),
            Cap::ChkVerifier(c) => c.fmt(f),
            Cap::Dir(c) => c.fmt(f),
        }
    }
}

impl fmt::Display for LitCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "URI:LIT:{}", base32::encode(&self.data))
    }
}

impl fmt::Display for ChkCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, hash) = (base32::encode(&self.key.0), base32::encode(&self.ueb_hash));
        write!(
            f,
            "URI:CHK:{key}:{hash}:{}:{}:{}",
            self.k, self.n, self.size
        )
    }
}

impl fmt::Display for VerifierCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (si, hash) = (
            base32::encode(&self.storage_index.0),
            base32::encode(&self.ueb_hash),
        );
        write!(
            f,
            "URI:CHK-Verifier:{si}:{hash}:{}:{}:{}",
            self.k, self.n, self.size
        )
    }
}

impl FromStr for Cap {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::MalformedCap {
            cap: abbreviate(s),
            reason: reason.to_string(),
        };
        match DirCap::parse(s) {
            Ok(Some(dir)) => return Ok(Cap::Dir(dir)),
            Ok(None) => {}
            Err(DirError::MalformedCap { cap, reason }) => {
                return Err(Error::MalformedCap { cap, reason })
            }
            Err(other) => return Err(bad(&other.to_string())),
        }
        if let Some(rest) = s.strip_prefix("URI:LIT:") {
            let data = base32::decode(rest)
                .ok_or_else(|| bad("the data after URI:LIT: is not lower-case unpadded base32"))?;
            return Ok(Cap::Lit(LitCap { data }));
        }
        if let Some(rest) = s.strip_prefix("URI:CHK:") {
            let f = ChkFields::parse(rest).map_err(|r| bad(&r))?;
            return Ok(Cap::Chk(ChkCap {
                key: Key(f.first),
                ueb_hash: f.ueb_hash,
                k: f.k,
                n: f.n,
                size: f.size,
            }));
        }
        if let Some(rest) = s.strip_prefix("URI:CHK-Verifier:") {
            let f = ChkFields::parse(rest).map_err(|r| bad(&r))?;
            return Ok(Cap::ChkVerifier(VerifierCap {
                storage_index: StorageIndex(f.first),
                ueb_hash: f.ueb_hash,
                k: f.k,
                n: f.n,
                size: f.size,
            }));
        }
        Err(bad(
            "not a cap cairn knows: expected URI:LIT:, URI:CHK:, URI:CHK-Verifier: or a \
             directory's URI:CAIRN-DIR:, URI:CAIRN-DIR-RO: or URI:CAIRN-DIR-V:",
        ))
    }
}

/// The five fields after `URI:CHK:` or `URI:CHK-Verifier:`.
struct ChkFields {
    first: [u8; 16],
    ueb_hash: Hash,
    k: usize,
    n: usize,
    size: u64,
}

impl ChkFields {
    fn parse(rest: &str) -> Result<Self, String> {
        let parts: Vec<&str> = rest.split(':').collect();
        let [first, hash, k, n, size] = parts[..] else {
            return Err(format!(
                "expected 5 fields separated by `:` after the prefix, found {}",
                parts.len()
            ));
        };
        let first = base32::decode(first)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or("the key / storage index is not 16 bytes of base32 (26 characters)")?;
        let ueb_hash = base32::decode(hash)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("the UEB hash is not 32 bytes of base32 (52 characters)")?;
        let k = decimal(k, "k (shares needed)")?;
        let n = decimal(n, "N (total shares)")?;
        let size = decimal(size, "the size")?;
        if k == 0 || k > n || n > crate::params::MAX_SHARES as u64 {
            return Err(format!(
                "k={k} and N={n} are impossible: need 1 <= k <= N <= 256"
            ));
        }
        if size == 0 {
            return Err(
                "a CHK file has at least one byte (the empty file's cap is URI:LIT:)".into(),
            );
        }
        Ok(ChkFields {
            first,
            ueb_hash,
            k: k as usize,
            n: n as usize,
            size,
        })
    }
}

fn decimal(text: &str, what: &str) -> Result<u64, String> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse().ok())
        .flatten()
        .ok_or_else(|| format!("{what} is {text:?}, not a decimal number without leading zeros"))
}

/// Keeps error messages readable when someone pastes a megabyte.
pub(crate) fn abbreviate(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CHK: &str = "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56";

    #[test]
    fn parses_and_prints_each_kind() {
        for s in [CHK, "URI:LIT:", "URI:LIT:nbswy3dp"] {
            assert_eq!(s.parse::<Cap>().unwrap().to_string(), s);
        }
        let Cap::Chk(chk) = CHK.parse().unwrap() else {
            panic!("not CHK")
        };
        let verifier = Cap::ChkVerifier(chk.verifier()).to_string();
        assert!(verifier.starts_with("URI:CHK-Verifier:"));
        assert_eq!(
            verifier.parse::<Cap>().unwrap(),
            Cap::ChkVerifier(chk.verifier())
        );
    }

    #[test]
    fn malformed_caps_say_what_is_wrong() {
        let cases = [
            ("URI:SSK:abc:def", "not a cap cairn knows"),
            ("URI:LIT:NBSWY3DP", "base32"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:1:1:56", "5 fields"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56", "16 bytes"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef:1:1:56", "32 bytes"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:3:2:56", "impossible"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:056", "leading zeros"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:-5", "decimal"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:0", "at least one byte"),
            ("URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:99999999999999999999999", "decimal"),
        ];
        for (cap, why) in cases {
            let err = cap.parse::<Cap>().unwrap_err().to_string();
            assert!(err.contains(why), "{cap}: {err}");
        }
    }

    proptest! {
        #[test]
        fn any_cap_round_trips(key in any::<[u8; 16]>(), hash in any::<[u8; 32]>(), k in 1usize..=256, extra in 0usize..256, size in 1u64..) {
            let n = (k + extra).min(256);
            let cap = Cap::Chk(ChkCap { key: Key(key), ueb_hash: hash, k, n, size });
            prop_assert_eq!(cap.to_string().parse::<Cap>().unwrap(), cap);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "URI:(CHK|LIT|CHK-Verifier):[a-z2-7:0-9]{0,120}") {
            let _ = s.parse::<Cap>();
        }
    }
}
