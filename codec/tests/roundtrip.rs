//! Encode-then-decode through the public API, for random sizes, encodings and segment sizes,
//! and what the decoder does with damaged shares: every flipped bit of a share it uses is
//! caught and pinned on that share, and the file still comes back whole when k good shares
//! remain.

use cairn_codec::{decode, encode_stream, Cap, ChkCap, Error, Key, MemoryShares, ShareCheck};
use cairn_codec::{EncodingParams, Geometry, ShareLayout};
use proptest::prelude::*;

fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn encode(data: &[u8], params: EncodingParams, key: [u8; 16]) -> (ChkCap, Vec<Vec<u8>>) {
    let mut shares = MemoryShares::default();
    let file = encode_stream(Key(key), params, data.len() as u64, data, &mut shares).unwrap();
    (file.cap, shares.into_shares())
}

/// A file's parameters and a pseudo-random order of its share numbers.
fn file_strategy() -> impl Strategy<Value = (EncodingParams, usize, u64, Vec<usize>)> {
    // Mostly small codes, but the whole range up to 256 shares (k = N included).
    let k = prop_oneof![3 => 1usize..=12, 1 => 1usize..=256];
    let extra = prop_oneof![1 => Just(0usize), 3 => 0usize..=255];
    (k, extra, 1u64..=3000).prop_flat_map(|(k, extra, max_seg)| {
        let n = (k + extra).min(256);
        let params = EncodingParams::new(k, n, max_seg).unwrap();
        // 1 byte up to a few segments and a tail of any residue.
        let size = 1usize..=(4 * max_seg as usize + 2 * k + 1);
        (
            Just(params),
            size,
            any::<u64>(),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_k_shares_give_back_the_file((params, size, seed, order) in file_strategy(), key in any::<[u8; 16]>()) {
        let original = data(size, seed);
        let (cap, shares) = encode(&original, params, key);
        prop_assert_eq!(shares.len(), params.n);
        // The cap round-trips through its string form.
        prop_assert_eq!(Cap::Chk(cap.clone()).to_string().parse::<Cap>().unwrap(), Cap::Chk(cap.clone()));
        let sources: Vec<(usize, Vec<u8>)> = order[..params.k].iter().map(|&s| (s, shares[s].clone())).collect();
        let mut out = Vec::new();
        let report = decode(&cap, sources, &mut out).unwrap();
        prop_assert!(report.faults.is_empty());
        prop_assert_eq!(out, original);
    }

    #[test]
    fn a_flipped_bit_is_caught_and_pinned_on_its_share(
        (params, size, seed, order) in file_strategy(),
        region in 0usize..7,
        victim in any::<prop::sample::Index>(),
        spot in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let original = data(size, seed);
        let (cap, mut shares) = encode(&original, params, [9; 16]);
        let k = params.k;
        let victim_pos = victim.index(k);
        let victim_share = order[victim_pos];
        let (range, allowed) = region_of(params, size as u64, region);
        let spot = range.start + spot.index(range.len());
        shares[victim_share][spot] ^= 1 << bit;

        let sources: Vec<(usize, Vec<u8>)> = order.iter().map(|&s| (s, shares[s].clone())).collect();
        let mut out = Vec::new();
        let result = decode(&cap, sources, &mut out);
        let faults = match &result {
            Ok(report) => report.faults.clone(),
            Err(Error::NotEnoughShares { faults, .. }) => faults.clone(),
            Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
        };
        prop_assert_eq!(faults.len(), 1, "{:?}", faults);
        prop_assert_eq!(faults[0].source, victim_pos);
        prop_assert_eq!(faults[0].share, victim_share);
        prop_assert!(allowed(faults[0].check), "region {} gave {:?}", region, faults[0]);
        if params.n > k {
            // A spare share stood in: the whole file, and only it, came out.
            prop_assert!(result.is_ok());
            prop_assert_eq!(out, original);
        } else {
            // No spare: a clear failure, and nothing unverified was written.
            let clear_failure = matches!(result, Err(Error::NotEnoughShares { needed, good, .. }) if needed == k && good == k - 1);
            prop_assert!(clear_failure);
            prop_assert!(original.starts_with(&out));
        }
    }

    #[test]
    fn truncated_shares_are_faults_not_panics(
        (params, size, seed, order) in file_strategy(),
        cut in any::<prop::sample::Index>(),
    ) {
        let original = data(size, seed);
        let (cap, mut shares) = encode(&original, params, [3; 16]);
        let victim = order[0];
        let len = cut.index(shares[victim].len());
        shares[victim].truncate(len);
        let sources: Vec<(usize, Vec<u8>)> = order.iter().map(|&s| (s, shares[s].clone())).collect();
        let mut out = Vec::new();
        match decode(&cap, sources, &mut out) {
            Ok(report) => {
                prop_assert_eq!(out, original);
                prop_assert!(report.faults.iter().all(|f| f.share == victim));
                prop_assert!(report.faults.len() <= 1);
            }
            Err(Error::NotEnoughShares { faults, .. }) => {
                prop_assert_eq!(params.n, params.k);
                prop_assert_eq!(faults[0].share, victim);
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
        }
    }
}

type Allowed = fn(ShareCheck) -> bool;

/// The byte range of region `which` in a share of this file, and the checks that may catch a
/// flip there: 0 header, 1 a block, 2 crypttext hash tree, 3 block hash tree, 4 share hash
/// chain, 5 UEB length, 6 UEB. (The unused plaintext hash tree is never read.)
fn region_of(params: EncodingParams, size: u64, which: usize) -> (std::ops::Range<usize>, Allowed) {
    let g = Geometry::new(params, size).unwrap();
    let l = ShareLayout::for_geometry(&g);
    let r = |a: u64, b: u64| a as usize..b as usize;
    let ueb_at = l.ueb + l.ueb_length_size();
    match which {
        0 => (r(0, l.data), |c| {
            matches!(
                c,
                ShareCheck::Header | ShareCheck::UebHash | ShareCheck::Read
            )
        }),
        1 => (r(l.data, l.data + l.data_size), |c| {
            matches!(c, ShareCheck::Block { .. })
        }),
        2 => (r(l.crypttext_hash_tree, l.block_hashes), |c| {
            c == ShareCheck::CrypttextHashTree
        }),
        3 => (r(l.block_hashes, l.share_hashes), |c| {
            matches!(c, ShareCheck::BlockHashTree | ShareCheck::ShareHashChain)
        }),
        4 => (r(l.share_hashes, l.ueb), |c| {
            c == ShareCheck::ShareHashChain
        }),
        5 => (r(l.ueb, ueb_at), |c| {
            matches!(c, ShareCheck::UebHash | ShareCheck::Read)
        }),
        _ => (r(ueb_at, ueb_at + 1), |c| c == ShareCheck::UebHash),
    }
}

#[test]
fn a_block_fault_names_its_segment() {
    let params = EncodingParams::new(2, 4, 64).unwrap();
    let original = data(64 * 3 + 5, 1);
    let (cap, mut shares) = encode(&original, params, [1; 16]);
    let g = Geometry::new(params, original.len() as u64).unwrap();
    let l = ShareLayout::for_geometry(&g);
    shares[1][l.block_offset(2) as usize] ^= 0x10;
    let sources: Vec<(usize, Vec<u8>)> = shares.into_iter().enumerate().collect();
    let mut out = Vec::new();
    let report = decode(&cap, sources, &mut out).unwrap();
    assert_eq!(out, original);
    assert_eq!(report.faults.len(), 1);
    assert_eq!(
        (report.faults[0].share, report.faults[0].check),
        (1, ShareCheck::Block { segment: 2 })
    );
}

#[test]
fn absurd_header_offsets_and_lengths_are_faults() {
    let params = EncodingParams::new(1, 2, 1000).unwrap();
    let original = data(2500, 2);
    let (cap, shares) = encode(&original, params, [2; 16]);
    let with_header_field = |field: usize, value: u32| {
        let mut s = shares[0].clone();
        s[4 + 4 * field..8 + 4 * field].copy_from_slice(&value.to_be_bytes());
        s
    };
    for (field, value) in [
        (7, u32::MAX),
        (6, u32::MAX),
        (0, u32::MAX),
        (1, u32::MAX),
        (2, 0),
    ] {
        let sources = vec![(0, with_header_field(field, value)), (1, shares[1].clone())];
        let mut out = Vec::new();
        let report = decode(&cap, sources, &mut out).unwrap();
        assert_eq!(out, original);
        assert_eq!(report.faults.len(), 1, "field {field}");
        assert_eq!(report.faults[0].share, 0);
    }
    // A UEB length of 4 GiB is refused before anything is allocated for it.
    let g = Geometry::new(params, original.len() as u64).unwrap();
    let l = ShareLayout::for_geometry(&g);
    let mut s = shares[0].clone();
    s[l.ueb as usize..l.ueb as usize + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decode(&cap, vec![(0, s)], &mut Vec::new()).unwrap_err();
    assert!(
        matches!(&err, Error::NotEnoughShares { faults, .. } if faults[0].check == ShareCheck::UebHash),
        "{err}"
    );
    assert!(
        err.to_string().contains("needs 1 but only 0 verified"),
        "{err}"
    );
}

#[test]
fn wrong_file_and_duplicate_shares() {
    let params = EncodingParams::new(2, 3, 100).unwrap();
    let (cap_a, shares_a) = encode(&data(300, 5), params, [5; 16]);
    let (_, shares_b) = encode(&data(300, 6), params, [6; 16]);
    // Shares of another file: each fails its UEB check.
    let sources: Vec<(usize, Vec<u8>)> = shares_b.into_iter().enumerate().collect();
    let err = decode(&cap_a, sources, &mut Vec::new()).unwrap_err();
    assert!(matches!(&err, Error::NotEnoughShares { good: 0, faults, .. } if faults.len() == 3));
    // The same share twice counts once.
    let sources = vec![(0, shares_a[0].clone()), (0, shares_a[0].clone())];
    let err = decode(&cap_a, sources, &mut Vec::new()).unwrap_err();
    assert!(matches!(
        err,
        Error::NotEnoughShares {
            needed: 2,
            good: 1,
            ..
        }
    ));
    // A share number the cap cannot have.
    let sources = vec![(0, shares_a[0].clone()), (7, shares_a[1].clone())];
    let err = decode(&cap_a, sources, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(&err, Error::NotEnoughShares { faults, .. } if faults[0].share == 7 && faults[0].check == ShareCheck::Header)
    );
    // A share claiming to be another number fails its hash chain.
    let sources = vec![(0, shares_a[0].clone()), (2, shares_a[1].clone())];
    let err = decode(&cap_a, sources, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(&err, Error::NotEnoughShares { faults, .. } if faults[0].check == ShareCheck::ShareHashChain)
    );
}

#[test]
fn input_shorter_or_longer_than_promised_is_an_error() {
    let params = EncodingParams::new(2, 3, 100).unwrap();
    let bytes = data(250, 1);
    let short = encode_stream(
        Key([0; 16]),
        params,
        300,
        &bytes[..],
        &mut MemoryShares::default(),
    );
    assert!(matches!(
        short,
        Err(Error::InputSizeMismatch { expected: 300, .. })
    ));
    let long = encode_stream(
        Key([0; 16]),
        params,
        200,
        &bytes[..],
        &mut MemoryShares::default(),
    );
    assert!(matches!(
        long,
        Err(Error::InputSizeMismatch { expected: 200, .. })
    ));
}

#[test]
fn slice_and_stream_encoding_agree() {
    let params = EncodingParams::new(3, 7, 1000).unwrap();
    let bytes = data(4321, 9);
    let (streamed, _) = encode(&bytes, params, [4; 16]);
    let mut encoder = cairn_codec::Encoder::new(Key([4; 16]), params, bytes.len() as u64).unwrap();
    let segment_size = encoder.geometry().segment_size as usize;
    for segment in bytes.chunks(segment_size) {
        encoder.encode_segment(segment).unwrap();
    }
    assert_eq!(encoder.finish().unwrap().cap, streamed);
    // A segment of the wrong length is refused, and so is one past the end.
    let mut encoder = cairn_codec::Encoder::new(Key([4; 16]), params, 10).unwrap();
    assert!(encoder.encode_segment(&bytes[..9]).is_err());
    encoder.encode_segment(&bytes[..10]).unwrap();
    assert!(encoder.encode_segment(&bytes[..10]).is_err());
}
