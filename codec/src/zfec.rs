//! The Reed-Solomon code of zfec (and so of Tahoe-LAFS), byte for byte.
//!
//! zfec evaluates at the points 0, α^0, α^1, … of GF(2^8) (polynomial 0x11D, α = 2), and makes
//! the code systematic: `E = V · inv(V_top)`, so share `i < k` is piece `i` itself. The field
//! arithmetic comes from `reed-solomon-erasure`'s `galois_8` SIMD kernels; only the matrix is
//! zfec's (that crate's own `ReedSolomon` evaluates elsewhere and would not match Tahoe).

use reed_solomon_erasure::galois_8 as gf;
use std::ops::Range;

/// Bytes per pass of the multiply-accumulate loops: keeps each pass's inputs and outputs in
/// the core's cache while it works on them.
const CHUNK: usize = 16 * 1024;

/// A `k`-of-`n` zfec code.
#[derive(Clone, Debug)]
pub struct Zfec {
    k: usize,
    n: usize,
    /// The `n × k` encoding matrix, row-major.
    matrix: Vec<u8>,
}

/// Why a code could not be built or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZfecError {
    #[error("zfec needs 1 <= k <= n <= 256, got k={k} n={n}")]
    BadParameters { k: usize, n: usize },
    #[error("decoding needs {k} distinct share numbers below {n}, got {given:?}")]
    BadShareSet {
        k: usize,
        n: usize,
        given: Vec<usize>,
    },
}

impl Zfec {
    /// Builds the `k`-of-`n` code.
    pub fn new(k: usize, n: usize) -> Result<Self, ZfecError> {
        if k == 0 || k > n || n > 256 {
            return Err(ZfecError::BadParameters { k, n });
        }
        let vandermonde = vandermonde(k, n);
        let top_inverse = invert(&vandermonde[..k * k], k)
            .expect("a Vandermonde matrix over distinct points is invertible");
        let matrix = multiply(&vandermonde, &top_inverse, n, k, k);
        Ok(Zfec { k, n, matrix })
    }

    /// Shares needed.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Shares made.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Computes the `n - k` parity blocks of `pieces` (the `k` primary blocks, all the same
    /// length) into `parity`, which is resized to fit.
    pub fn encode_parity(&self, pieces: &[&[u8]], parity: &mut [Vec<u8>]) {
        let len = pieces.first().map_or(0, |p| p.len());
        for out in parity.iter_mut() {
            out.resize(len, 0);
        }
        self.encode_parity_range(pieces, parity, 0..len);
    }

    /// [`Zfec::encode_parity`] for bytes `range` of every block only, so that a caller can
    /// work through blocks in cache-sized stripes. `parity` must already have the pieces'
    /// length.
    pub fn encode_parity_range(
        &self,
        pieces: &[&[u8]],
        parity: &mut [Vec<u8>],
        range: Range<usize>,
    ) {
        assert_eq!(pieces.len(), self.k, "encode needs exactly k pieces");
        assert_eq!(
            parity.len(),
            self.n - self.k,
            "encode makes exactly n-k parity blocks"
        );
        let inputs: Vec<&[u8]> = pieces.iter().map(|p| &p[range.clone()]).collect();
        for (j, out) in parity.iter_mut().enumerate() {
            let row = &self.matrix[(self.k + j) * self.k..(self.k + j + 1) * self.k];
            multiply_accumulate(row, &inputs, &mut out[range.clone()]);
        }
    }

    /// Rebuilds the `k` primary pieces from `k` blocks of distinct shares. `blocks[i]` is the
    /// block of share `share_nums[i]`; piece `p` is written to `out[p*len..(p+1)*len]`.
    pub fn decode(
        &self,
        share_nums: &[usize],
        blocks: &[&[u8]],
        out: &mut [u8],
    ) -> Result<(), ZfecError> {
        let inverse = self.decoding_matrix(share_nums)?;
        self.decode_with(&inverse, share_nums, blocks, out);
        Ok(())
    }

    /// The matrix [`Zfec::decode_with`] needs for this set of shares; a caller decoding many
    /// segments from the same shares computes it once.
    pub fn decoding_matrix(&self, share_nums: &[usize]) -> Result<DecodingMatrix, ZfecError> {
        let k = self.k;
        let mut seen = vec![false; self.n];
        let distinct = share_nums.len() == k
            && share_nums
                .iter()
                .all(|&s| s < self.n && !std::mem::replace(&mut seen[s], true));
        if !distinct {
            return Err(ZfecError::BadShareSet {
                k,
                n: self.n,
                given: share_nums.to_vec(),
            });
        }
        let mut sub = Vec::with_capacity(k * k);
        for &s in share_nums {
            sub.extend_from_slice(&self.matrix[s * k..(s + 1) * k]);
        }
        let inverse =
            invert(&sub, k).expect("any k rows of a systematic zfec matrix are independent");
        Ok(DecodingMatrix {
            share_nums: share_nums.to_vec(),
            inverse,
        })
    }

    /// The decoding matrix for `share_nums`, kept in `cache` and remade only when the set of
    /// shares changes (as it does when a bad share is replaced part-way through a file).
    pub fn cached_decoding_matrix<'a>(
        &self,
        cache: &'a mut Option<DecodingMatrix>,
        share_nums: &[usize],
    ) -> Result<&'a DecodingMatrix, ZfecError> {
        let matrix = match cache.take() {
            Some(kept) if kept.share_nums() == share_nums => kept,
            _ => self.decoding_matrix(share_nums)?,
        };
        Ok(cache.insert(matrix))
    }

    /// [`Zfec::decode`] with a precomputed matrix; `share_nums` must be the ones it was made for.
    pub fn decode_with(
        &self,
        matrix: &DecodingMatrix,
        share_nums: &[usize],
        blocks: &[&[u8]],
        out: &mut [u8],
    ) {
        let len = blocks.first().map_or(0, |b| b.len());
        assert_eq!(out.len(), self.k * len);
        for (p, piece) in out.chunks_mut(len.max(1)).take(self.k).enumerate() {
            self.decode_piece_range(matrix, share_nums, blocks, p, 0..len, piece);
        }
    }

    /// Rebuilds bytes `range` of primary piece `piece` into `out` (`range.len()` bytes), so
    /// that a caller can decode in cache-sized stripes.
    pub fn decode_piece_range(
        &self,
        matrix: &DecodingMatrix,
        share_nums: &[usize],
        blocks: &[&[u8]],
        piece: usize,
        range: Range<usize>,
        out: &mut [u8],
    ) {
        let k = self.k;
        assert_eq!(
            matrix.share_nums, share_nums,
            "decoding matrix made for other shares"
        );
        assert_eq!(blocks.len(), k);
        if let Some(i) = share_nums.iter().position(|&s| s == piece) {
            // A primary share carries its piece as is.
            out.copy_from_slice(&blocks[i][range]);
        } else {
            let inputs: Vec<&[u8]> = blocks.iter().map(|b| &b[range.clone()]).collect();
            multiply_accumulate(&matrix.inverse[piece * k..(piece + 1) * k], &inputs, out);
        }
    }
}

/// The inverse of the encoding rows of one set of `k` shares.
#[derive(Clone, Debug)]
pub struct DecodingMatrix {
    share_nums: Vec<usize>,
    inverse: Vec<u8>,
}

impl DecodingMatrix {
    /// The shares this matrix decodes from, in the order the blocks must come.
    pub fn share_nums(&self) -> &[usize] {
        &self.share_nums
    }
}

/// `out = Σ_c row[c] · inputs[c]`, cache-chunked.
fn multiply_accumulate(row: &[u8], inputs: &[&[u8]], out: &mut [u8]) {
    for start in (0..out.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(out.len());
        let out = &mut out[start..end];
        // The first term writes `out`, the others add to it: no pass to zero it first.
        let mut written = false;
        for (&c, input) in row.iter().zip(inputs) {
            let input = &input[start..end];
            match (c, written) {
                (0, _) => continue,
                (1, false) => out.copy_from_slice(input),
                (1, true) => xor_into(input, out),
                (c, false) => gf::mul_slice(c, input, out),
                (c, true) => gf::mul_slice_xor(c, input, out),
            }
            written = true;
        }
        if !written {
            out.fill(0);
        }
    }
}

fn xor_into(input: &[u8], out: &mut [u8]) {
    for (o, i) in out.iter_mut().zip(input) {
        *o ^= i;
    }
}

/// zfec's `n × k` Vandermonde matrix: row 0 is the point 0, row `r+1` the point `α^r`.
fn vandermonde(k: usize, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n * k];
    v[0] = 1;
    for r in 0..n - 1 {
        for c in 0..k {
            v[(r + 1) * k + c] = gf::exp(2, (r * c) % 255);
        }
    }
    v
}

/// `a (rows × inner) · b (inner × cols)`.
fn multiply(a: &[u8], b: &[u8], rows: usize, inner: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] =
                (0..inner).fold(0, |acc, i| acc ^ gf::mul(a[r * inner + i], b[i * cols + c]));
        }
    }
    out
}

/// Gauss-Jordan inverse of a `k × k` matrix; `None` if it is singular.
fn invert(m: &[u8], k: usize) -> Option<Vec<u8>> {
    let mut a = m.to_vec();
    let mut inv = vec![0u8; k * k];
    for i in 0..k {
        inv[i * k + i] = 1;
    }
    for col in 0..k {
        let pivot = (col..k).find(|&r| a[r * k + col] != 0)?;
        if pivot != col {
            for c in 0..k {
                a.swap(pivot * k + c, col * k + c);
                inv.swap(pivot * k + c, col * k + c);
            }
        }
        let scale = gf::div(1, a[col * k + col]);
        for c in 0..k {
            a[col * k + c] = gf::mul(a[col * k + c], scale);
            inv[col * k + c] = gf::mul(inv[col * k + c], scale);
        }
        for r in (0..k).filter(|&r| r != col) {
            let factor = a[r * k + col];
            if factor != 0 {
                for c in 0..k {
                    a[r * k + c] ^= gf::mul(factor, a[col * k + c]);
                    inv[r * k + c] ^= gf::mul(factor, inv[col * k + c]);
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn top_rows_are_the_identity() {
        let z = Zfec::new(3, 10).unwrap();
        assert_eq!(&z.matrix[..9], &[1, 0, 0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn rejects_impossible_parameters() {
        assert!(Zfec::new(0, 3).is_err());
        assert!(Zfec::new(4, 3).is_err());
        assert!(Zfec::new(3, 257).is_err());
        let z = Zfec::new(2, 4).unwrap();
        let mut out = vec![0; 4];
        assert!(z.decode(&[1, 1], &[&[0, 0], &[0, 0]], &mut out).is_err());
        assert!(z.decode(&[1, 4], &[&[0, 0], &[0, 0]], &mut out).is_err());
    }

    #[test]
    fn two_of_three_parity_row_follows_the_spec() {
        // V = [[1,0],[1,1],[1,α]]; inv(V_top) = [[1,0],[1,1]] (char 2), so the parity row is
        // [1,α]·inv = [1^α, α] = [3, 2]: parity = 3·a + 2·b.
        let z = Zfec::new(2, 3).unwrap();
        assert_eq!(&z.matrix[4..], &[3, 2]);
        let mut parity = vec![Vec::new()];
        z.encode_parity(&[&[1, 0], &[0, 1]], &mut parity);
        assert_eq!(parity[0], vec![3, 2]);
    }

    proptest! {
        #[test]
        fn any_k_shares_rebuild_the_pieces(
            (k, n) in (1usize..=20).prop_flat_map(|k| (Just(k), k..=24)),
            len in 0usize..50,
            seed in any::<u64>(),
            pick_seed in any::<u64>(),
        ) {
            let z = Zfec::new(k, n).unwrap();
            let data: Vec<u8> = (0..k * len).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 7) as u8).collect();
            let pieces: Vec<&[u8]> = if len == 0 { vec![&[][..]; k] } else { data.chunks(len).collect() };
            let mut parity = vec![Vec::new(); n - k];
            z.encode_parity(&pieces, &mut parity);
            let all: Vec<&[u8]> = pieces.iter().copied().chain(parity.iter().map(|p| &p[..])).collect();
            // A pseudo-random k-subset, in a pseudo-random order.
            let mut nums: Vec<usize> = (0..n).collect();
            let mut x = pick_seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                nums.swap(i, (x % (i as u64 + 1)) as usize);
            }
            nums.truncate(k);
            let blocks: Vec<&[u8]> = nums.iter().map(|&s| all[s]).collect();
            let mut out = vec![0u8; k * len];
            z.decode(&nums, &blocks, &mut out).unwrap();
            prop_assert_eq!(out, data);
        }
    }
}
