//! FURLs: a node's address and the secret that lets a caller in, in one string,
//! `pb://<node id>@<host>:<port>/<secret>`.
//!
//! The node id pins the key the node must prove during the TLS handshake, so a FURL cannot be
//! answered by anyone else; the secret is what the caller shows once the channel is secure
//! (whoever knows the introducer's FURL may join the grid). The node id is printed in
//! lower-case, unpadded base32, as everywhere in cairn; an IPv6 host is written in brackets.

use cairn_actors::NodeId;
use cairn_codec::base32;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// How a FURL starts.
const SCHEME: &str = "pb://";
/// The fewest characters a secret may have (130 bits of base32).
pub const MIN_SECRET_LEN: usize = 26;
/// The most characters a secret may have.
pub const MAX_SECRET_LEN: usize = 128;
/// The longest host name a FURL may carry (DNS's limit).
pub const MAX_HOST_LEN: usize = 253;
/// Random bytes in a secret made by [`Furl::new_secret`] (160 bits: 32 base32 characters).
const SECRET_BYTES: usize = 20;

/// A node's address: who it is (its node id), where it listens, and the secret to show it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Furl {
    /// The node that must answer: the hash of the key it proves in the handshake.
    pub node: NodeId,
    /// A DNS name or an IP address (an IPv6 address without its brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// Lower-case base32, [`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`] characters.
    pub secret: String,
}

/// Why a string is not a FURL (or a secret not a FURL's secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FurlError {
    /// The text does not start with `pb://`.
    #[error("a FURL starts with `pb://`")]
    Scheme,
    /// No `@` between the node id and the host.
    #[error("a FURL names its node before an `@`: pb://<node id>@<host>:<port>/<secret>")]
    MissingAt,
    /// The node id is not 32 bytes of lower-case base32.
    #[error("`{0}` is not a node id (52 lower-case base32 characters)")]
    NodeId(String),
    /// No `/` before the secret.
    #[error("a FURL ends with `/<secret>`: pb://<node id>@<host>:<port>/<secret>")]
    MissingSecret,
    /// The host is empty, too long, holds characters a host name cannot, or is an IPv6
    /// address without brackets.
    #[error("`{0}` is not a host name or IP address (write IPv6 addresses in brackets)")]
    Host(String),
    /// No port, or not a number from 1 to 65535.
    #[error("`{0}` is not a TCP port (1 to 65535) after the host's `:`")]
    Port(String),
    /// The secret is too short or long, or not lower-case base32.
    #[error(
        "the secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} lower-case base32 characters \
         (a-z, 2-7); got {0} characters"
    )]
    Secret(usize),
}

impl Furl {
    /// A fresh random secret (from the OS's random source) for a new FURL. Panics if the OS
    /// has no randomness to give, as rand's own generators do.
    pub fn new_secret() -> String {
        let mut bytes = [0u8; SECRET_BYTES];
        if let Err(error) = crate::entropy::fill(&mut bytes) {
            panic!("the OS gave no randomness for a FURL secret: {error}");
        }
        base32::encode(&bytes)
    }

    /// Checks that `secret` can be a FURL's secret.
    pub fn check_secret(secret: &str) -> Result<(), FurlError> {
        let alphabet = |c: u8| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c);
        let len_ok = (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len());
        if len_ok && secret.bytes().all(alphabet) {
            Ok(())
        } else {
            Err(FurlError::Secret(secret.chars().count()))
        }
    }

    /// Checks that `host` can be a FURL's host: an IPv6 address, or a name or IPv4 address
    /// made of letters, digits, `-`, `.` and `_`.
    pub fn check_host(host: &str) -> Result<(), FurlError> {
        let name_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
        let is_name = !host.is_empty() && host.bytes().all(name_char);
        if host.len() <= MAX_HOST_LEN && (is_name || host.parse::<Ipv6Addr>().is_ok()) {
            Ok(())
        } else {
            Err(FurlError::Host(host.to_string()))
        }
    }

    /// `host:port` (with brackets around an IPv6 host): where to connect.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Furl {
    type Err = FurlError;

    fn from_str(text: &str) -> Result<Self, FurlError> {
        let rest = text.strip_prefix(SCHEME).ok_or(FurlError::Scheme)?;
        let (node, rest) = rest.split_once('@').ok_or(FurlError::MissingAt)?;
        let node = NodeId::parse(node).ok_or_else(|| FurlError::NodeId(node.to_string()))?;
        let (location, secret) = rest.split_once('/').ok_or(FurlError::MissingSecret)?;
        let (host, port) = split_location(location)?;
        Furl::check_host(host)?;
        Furl::check_secret(secret)?;
        Ok(Furl {
            node,
            host: host.to_string(),
            port,
            secret: secret.to_string(),
        })
    }
}

/// Splits `host:port` or `[ipv6]:port`.
fn split_location(location: &str) -> Result<(&str, u16), FurlError> {
    let (host, port) = match location.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| FurlError::Host(location.to_string()))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(FurlError::Host(host.to_string()));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| FurlError::Port(after.to_string()))?;
            (host, port)
        }
        None => {
            let (host, port) = location
                .rsplit_once(':')
                .ok_or_else(|| FurlError::Port(String::new()))?;
            if host.contains(':') {
                return Err(FurlError::Host(host.to_string()));
            }
            (host, port)
        }
    };
    let digits = !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(number) if digits && number != 0 => Ok((host, number)),
        _ => Err(FurlError::Port(port.to_string())),
    }
}

impl fmt::Display for Furl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}@{}/{}",
            self.node,
            self.address(),
            self.secret
        )
    }
}

/// Shows where the FURL points, but not its secret (debug output lands in logs).
impl fmt::Debug for Furl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{:?}@{}/…", self.node, self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn furl(host: &str) -> Furl {
        Furl {
            node: NodeId([7; 32]),
            host: host.to_string(),
            port: 3456,
            secret: "abcdefghijklmnopqrstuvwxyz234567".to_string(),
        }
    }

    #[test]
    fn prints_and_parses_names_ipv4_and_ipv6() {
        for host in ["example.org", "127.0.0.1", "::1", "fe80::1:2"] {
            let f = furl(host);
            let text = f.to_string();
            assert_eq!(text.parse::<Furl>(), Ok(f), "{text}");
        }
        let text = furl("::1").to_string();
        assert!(text.contains("@[::1]:3456/"), "{text}");
        assert!(text.starts_with(&format!("pb://{}@", NodeId([7; 32]))));
    }

    #[test]
    fn new_secrets_are_valid_and_differ() {
        let (a, b) = (Furl::new_secret(), Furl::new_secret());
        assert_eq!(Furl::check_secret(&a), Ok(()));
        assert!(a.len() >= MIN_SECRET_LEN);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let f = furl("example.org");
        assert!(!format!("{f:?}").contains(&f.secret));
    }

    #[test]
    fn refuses_malformed_furls_with_the_reason() {
        let good = furl("example.org").to_string();
        let id = NodeId([7; 32]).to_string();
        let secret = "abcdefghijklmnopqrstuvwxyz234567";
        let cases = [
            (good.replace("pb://", "http://"), FurlError::Scheme),
            (
                format!("pb://{id}example.org:1/{secret}"),
                FurlError::MissingAt,
            ),
            (
                good.replace(&id, "nodeid"),
                FurlError::NodeId("nodeid".into()),
            ),
            (
                good.replace(&format!("/{secret}"), ""),
                FurlError::MissingSecret,
            ),
            (good.replace(":3456", ""), FurlError::Port(String::new())),
            (good.replace("3456", "0"), FurlError::Port("0".into())),
            (
                good.replace("3456", "65536"),
                FurlError::Port("65536".into()),
            ),
            (good.replace("3456", "+80"), FurlError::Port("+80".into())),
            (
                good.replace("example.org", ""),
                FurlError::Host(String::new()),
            ),
            (
                good.replace("example.org", "a b"),
                FurlError::Host("a b".into()),
            ),
            (
                good.replace("example.org", "::1"),
                FurlError::Host("::1".into()),
            ),
            (
                good.replace("example.org", "[nope]"),
                FurlError::Host("nope".into()),
            ),
            (good.replace(secret, "short"), FurlError::Secret(5)),
            (
                good.replace(secret, &secret.to_uppercase()),
                FurlError::Secret(32),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(text.parse::<Furl>(), Err(error), "{text}");
        }
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9][a-z0-9.-]{0,40}",
            any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
            any::<[u8; 16]>().prop_map(|b| Ipv6Addr::from(b).to_string()),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(
            node in any::<[u8; 32]>(),
            host in host(),
            port in 1u16..,
            secret in "[a-z2-7]{26,64}",
        ) {
            let f = Furl { node: NodeId(node), host, port, secret };
            prop_assert_eq!(f.to_string().parse::<Furl>(), Ok(f));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = text.parse::<Furl>();
        }
    }
}
