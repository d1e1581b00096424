//! Node identity: an Ed25519 key, whose public half's hash is the node id, and the types that
//! name shares.

use cairn_codec::base32;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A node's name: the SHA-256 of its Ed25519 public key. Whoever proves that key is that node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The id of the node with this public key.
    pub fn of_public_key(public_key: &[u8; 32]) -> Self {
        NodeId(Sha256::digest(public_key).into())
    }

    /// Parses the base32 form [`fmt::Display`] prints.
    pub fn parse(text: &str) -> Option<Self> {
        base32::decode(text)
            .and_then(|b| b.try_into().ok())
            .map(NodeId)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::encode(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        base32::write_short(&self.0, f)
    }
}

/// A node's private key.
pub struct NodeKey {
    signing: SigningKey,
}

impl NodeKey {
    /// The key with this 32-byte secret seed (from the OS's random source, or a simulation's
    /// seeded generator).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        NodeKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The secret seed, to store in the node's private directory.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The node id.
    pub fn id(&self) -> NodeId {
        NodeId::of_public_key(&self.public_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).to_bytes().to_vec()
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({:?})", self.id())
    }
}

/// Checks that `signature` is `public_key`'s signature of `message`.
pub fn verify_signature(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// A share's number within its file: `0 <= n < N <= 256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShareNum(pub u8);

impl ShareNum {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Where a file's shares are filed on storage servers: the codec's type (derived from the
/// file's key; see [`cairn_codec::Key::storage_index`]), the same on the wire.
pub use cairn_codec::StorageIndex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let key = NodeKey::from_seed([1; 32]);
        let other = NodeKey::from_seed([2; 32]);
        let sig = key.sign(b"hello");
        assert!(verify_signature(&key.public_key(), b"hello", &sig));
        assert!(!verify_signature(&key.public_key(), b"hellp", &sig));
        assert!(!verify_signature(&other.public_key(), b"hello", &sig));
        assert!(!verify_signature(&key.public_key(), b"hello", &sig[..63]));
        assert_ne!(key.id(), other.id());
        assert_eq!(NodeId::parse(&key.id().to_string()), Some(key.id()));
    }
}
