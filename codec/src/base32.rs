//! Tahoe-LAFS's base32: the RFC 4648 alphabet in lower case, without `=` padding.

use data_encoding::{Encoding, Specification};
use std::sync::OnceLock;

fn encoding() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
        // Strict: unused trailing bits must be zero, so each byte string has exactly one
        // spelling and caps round-trip exactly.
        spec.check_trailing_bits = true;
        spec.encoding()
            .expect("the RFC 4648 base32 alphabet is a valid specification")
    })
}

/// Encodes bytes as lower-case, unpadded base32.
pub fn encode(bytes: &[u8]) -> String {
    encoding().encode(bytes)
}

/// Writes the first 8 base32 characters of `bytes` (its first 5 bytes), without allocating:
/// enough to tell ids apart in logs and traces.
pub fn write_short(bytes: &[u8], f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let mut buf = [0u8; 8];
    f.write_str(encode_into(&bytes[..bytes.len().min(5)], &mut buf).unwrap_or("?"))
}

/// Encodes bytes as lower-case, unpadded base32 into `buf`, without allocating; `None` if
/// `buf` is too short (it needs `ceil(8 * len / 5)` bytes).
pub fn encode_into<'a>(bytes: &[u8], buf: &'a mut [u8]) -> Option<&'a str> {
    let out = buf.get_mut(..encoding().encode_len(bytes.len()))?;
    encoding().encode_mut(bytes, out);
    std::str::from_utf8(out).ok()
}

/// Decodes lower-case, unpadded base32; `None` if `text` is not the canonical spelling of
/// some byte string.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    encoding().decode(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "my");
        assert_eq!(encode(b"foobar"), "mzxw6ytboi");
        let mut buf = [0u8; 10];
        assert_eq!(encode_into(b"foobar", &mut buf), Some("mzxw6ytboi"));
        assert_eq!(encode_into(b"foobar", &mut buf[..9]), None);
        assert_eq!(decode("mzxw6ytboi").as_deref(), Some(&b"foobar"[..]));
    }

    #[test]
    fn rejects_upper_case_padding_and_stray_bits() {
        assert_eq!(decode("MY"), None);
        assert_eq!(decode("my======"), None);
        assert_eq!(decode("mz"), None, "non-zero trailing bits");
        assert_eq!(decode("m"), None, "impossible length");
        assert_eq!(decode("m1"), None, "not in the alphabet");
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }
    }
}
