//! AES-128-CTR with an all-zero initial counter block: how CHK files are encrypted.

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The keystream of one file, applied at any byte position (encryption and decryption are
/// the same operation).
pub struct Cryptor {
    cipher: Aes128Ctr,
}

impl Cryptor {
    /// The keystream for `key`.
    pub fn new(key: &[u8; 16]) -> Self {
        Cryptor {
            cipher: Aes128Ctr::new(key.into(), &[0u8; 16].into()),
        }
    }

    /// Writes `input` XOR the keystream from file offset `position` into `output` (same
    /// length): encryption and a copy in one pass.
    pub fn apply_at_into(&mut self, position: u64, input: &[u8], output: &mut [u8]) {
        self.cipher.seek(position);
        self.cipher
            .apply_keystream_b2b(input, output)
            .expect("input and output have the same length");
    }

    /// XORs the keystream from file offset `position` into `data`.
    pub fn apply_at(&mut self, position: u64, data: &mut [u8]) {
        self.cipher.seek(position);
        self.cipher.apply_keystream(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_nist_ctr_vector_shape() {
        // FIPS-197 AES-128 key 000102…0f on block 0 (counter 0) gives c6a13b37…; CTR XORs it
        // into the data, so encrypting zeros yields the raw keystream.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut zeros = [0u8; 16];
        Cryptor::new(&key).apply_at(0, &mut zeros);
        assert_eq!(zeros[..4], [0xc6, 0xa1, 0x3b, 0x37]);
    }

    #[test]
    fn seeking_equals_streaming() {
        let key = [7u8; 16];
        let mut whole = vec![0u8; 1000];
        Cryptor::new(&key).apply_at(0, &mut whole);
        let mut part = vec![0u8; 333];
        Cryptor::new(&key).apply_at(555, &mut part);
        assert_eq!(part, whole[555..888]);
        let mut copied = vec![0u8; 333];
        Cryptor::new(&key).apply_at_into(555, &vec![0u8; 333], &mut copied);
        assert_eq!(copied, part);
    }
}
