//! Encoding parameters, and the geometry of a file that follows from them: segment, tail and
//! block sizes.

use crate::Error;

/// The largest `N`: share numbers are bytes.
pub const MAX_SHARES: usize = 256;
/// Tahoe-LAFS's default (and cairn's) largest segment: 1 MiB.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 1 << 20;
/// Files of this many bytes or fewer live entirely in their `URI:LIT:` cap.
pub const LIT_THRESHOLD: u64 = 55;
/// The largest segment a file may have: 16 times the default. A reader buffers a segment's
/// `k` blocks and its plaintext, so this bounds what a crafted cap (whose UEB may declare any
/// segment size) can make a downloader allocate. Tahoe-LAFS writes 128 KiB segments.
pub const MAX_SEGMENT_SIZE: u64 = 16 << 20;

/// Which kind of cap a file of some size gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// `URI:LIT:`: the file is in the cap; nothing is stored, no key is made.
    Lit,
    /// `URI:CHK:`: encrypted under its convergent key, erasure coded, stored as shares.
    Chk,
}

impl CapKind {
    /// The kind of cap a file of `size` bytes gets (the one place this is decided: the
    /// gateway, `cairn cap` and the simulator's workloads all ask here).
    pub fn for_size(size: u64) -> CapKind {
        match size <= LIT_THRESHOLD {
            true => CapKind::Lit,
            false => CapKind::Chk,
        }
    }
}

/// The most segments a file may have (1 TiB at the default segment size). Encoder and decoder
/// keep 32 bytes per block of hash trees in memory; this bounds that, and what a hostile UEB
/// could make a downloader allocate.
pub const MAX_SEGMENTS: u64 = 1 << 20;

/// How a file is to be erasure coded: `k` of `n` shares, in segments of at most
/// `max_segment_size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingParams {
    pub k: usize,
    pub n: usize,
    pub max_segment_size: u64,
}

impl Default for EncodingParams {
    fn default() -> Self {
        EncodingParams {
            k: 3,
            n: 10,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
        }
    }
}

impl EncodingParams {
    /// Checks `1 <= k <= n <= 256` and a non-zero segment size.
    pub fn new(k: usize, n: usize, max_segment_size: u64) -> Result<Self, Error> {
        if k == 0 || k > n || n > MAX_SHARES {
            return Err(Error::InvalidParams(format!(
                "shares needed (k={k}) and total (N={n}) must satisfy 1 <= k <= N <= {MAX_SHARES}"
            )));
        }
        if max_segment_size == 0 {
            return Err(Error::InvalidParams(
                "the maximum segment size must be at least 1 byte".into(),
            ));
        }
        Ok(EncodingParams {
            k,
            n,
            max_segment_size,
        })
    }
}

/// The shape of one encoded file: everything that follows from its size and parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub size: u64,
    pub k: usize,
    pub n: usize,
    /// Every segment but the tail holds this many bytes (a multiple of `k`).
    pub segment_size: u64,
    pub num_segments: u64,
    /// The tail segment's bytes before padding.
    pub tail_size: u64,
    /// The tail segment's bytes after zero-padding to a multiple of `k`.
    pub padded_tail_size: u64,
}

impl Geometry {
    /// The geometry Tahoe-LAFS gives a CHK file of `size` bytes (`size >= 1`).
    pub fn new(params: EncodingParams, size: u64) -> Result<Self, Error> {
        let EncodingParams {
            k,
            n,
            max_segment_size,
        } = EncodingParams::new(params.k, params.n, params.max_segment_size)?;
        if size == 0 {
            return Err(Error::InvalidParams(
                "an empty file has no CHK encoding (its cap is URI:LIT:)".into(),
            ));
        }
        let segment_size = next_multiple(max_segment_size.min(size), k as u64);
        if segment_size > MAX_SEGMENT_SIZE {
            return Err(Error::InvalidParams(format!(
                "segments of {segment_size} bytes are over the limit of {MAX_SEGMENT_SIZE}: \
                 use a smaller maximum segment size"
            )));
        }
        let num_segments = size.div_ceil(segment_size);
        if num_segments > MAX_SEGMENTS {
            return Err(Error::InvalidParams(format!(
                "{size} bytes in segments of {segment_size} would make {num_segments} segments, over the limit of {MAX_SEGMENTS}: use a larger maximum segment size"
            )));
        }
        let tail_size = match size % segment_size {
            0 => segment_size,
            t => t,
        };
        Ok(Geometry {
            size,
            k,
            n,
            segment_size,
            num_segments,
            tail_size,
            padded_tail_size: next_multiple(tail_size, k as u64),
        })
    }

    /// Bytes of each full block.
    pub fn block_size(&self) -> u64 {
        self.segment_size / self.k as u64
    }

    /// Bytes of the tail segment's blocks.
    pub fn tail_block_size(&self) -> u64 {
        self.padded_tail_size / self.k as u64
    }

    /// Whether `segment` is the last one.
    pub fn is_tail(&self, segment: u64) -> bool {
        segment + 1 == self.num_segments
    }

    /// Bytes of crypttext in `segment`, before padding.
    pub fn segment_len(&self, segment: u64) -> u64 {
        if self.is_tail(segment) {
            self.tail_size
        } else {
            self.segment_size
        }
    }

    /// Bytes of each block of `segment`.
    pub fn block_len(&self, segment: u64) -> u64 {
        if self.is_tail(segment) {
            self.tail_block_size()
        } else {
            self.block_size()
        }
    }

    /// Bytes of blocks one share holds: `ceil(size / k)`.
    pub fn share_data_size(&self) -> u64 {
        (self.num_segments - 1) * self.block_size() + self.tail_block_size()
    }
}

fn next_multiple(x: u64, k: u64) -> u64 {
    x.div_ceil(k) * k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_padded_to_a_multiple_of_k() {
        let g = Geometry::new(EncodingParams::new(3, 10, 131072).unwrap(), 131073).unwrap();
        assert_eq!(g.segment_size, 131073);
        assert_eq!(g.num_segments, 1);
        let g = Geometry::new(EncodingParams::new(3, 10, 131072).unwrap(), 2 * 131073 + 1).unwrap();
        assert_eq!(g.segment_size, 131073, "rounded up to a multiple of k");
        assert_eq!((g.num_segments, g.tail_size, g.padded_tail_size), (3, 1, 3));
        assert_eq!(g.share_data_size(), (g.size).div_ceil(3));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(EncodingParams::new(0, 1, 1).is_err());
        assert!(EncodingParams::new(4, 3, 1).is_err());
        assert!(EncodingParams::new(1, 257, 1).is_err());
        assert!(EncodingParams::new(1, 1, 0).is_err());
        assert!(Geometry::new(EncodingParams::default(), 0).is_err());
        assert!(Geometry::new(EncodingParams::new(1, 1, 1).unwrap(), MAX_SEGMENTS + 1).is_err());
        assert!(Geometry::new(EncodingParams::new(1, 1, 1).unwrap(), MAX_SEGMENTS).is_ok());
    }
}
