//! Codec throughput on one 64 MiB file, 3-of-10, 1 MiB segments, against its building blocks.
//!
//! Measures, each over the same 64 MiB of pseudo-random bytes:
//! - `memcpy`: copying the buffer (the memory-bandwidth ceiling);
//! - `aes128ctr`: AES-128-CTR over the buffer (what encryption alone costs);
//! - `sha256`: SHA-256 over the buffer (one hashing pass, streaming from memory);
//! - `sha256_in_cache`: SHA-256 over as many bytes from a 1 MiB buffer that stays in cache
//!   (the hash's own speed; the faster of the two sets the encode limit);
//! - `encode`: the whole upload computation, as `cairn cap` does it: the convergent-key pass,
//!   then encryption, hashing and erasure coding with the shares discarded;
//! - `decode_parity`: decoding the file from the parity-only shares 7, 8 and 9 (held in
//!   memory, prepared before timing), with every check, to a sink.
//!
//! Then prints a summary in MB/s (10^6 bytes/s), read back from criterion's results of this
//! run, with the targets: encode within 90% of its hash-bound limit (SHA-256 speed / 6.33,
//! the bytes a 3-of-10 encode hashes per input byte), and decode_parity at 700 MB/s or more.
//! Targets are reported, never enforced: a slow run still exits 0.
//!
//! Run with `cargo bench --bench codec` (about a minute; pass a name, e.g.
//! `cargo bench --bench codec -- encode`, to run only matching functions).

use aes::cipher::{KeyIvInit, StreamCipher};
use cairn::codec::{self, ChkCap, EncodingParams};
use criterion::{Criterion, SamplingMode, Throughput};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Input size: 64 MiB.
const SIZE: usize = 64 << 20;
/// The criterion group every function is in (and so the results directory).
const GROUP: &str = "codec";
/// Bytes hashed per input byte by a 3-of-10 encode: key pass, crypttext, segments, N/k blocks.
const HASH_PASSES: f64 = 1.0 + 1.0 + 1.0 + 10.0 / 3.0;
/// Share numbers `decode_parity` decodes from: parity only, so every piece is recomputed.
const PARITY_SHARES: [usize; 3] = [7, 8, 9];
/// Bytes `sha256_in_cache` hashes at a time.
const IN_CACHE: usize = 1 << 20;
/// Any fixed secret: its length and value do not change the work.
const CONVERGENCE_SECRET: &[u8] = b"cairn codec benchmark secret....";

fn params() -> EncodingParams {
    EncodingParams::new(3, 10, 1 << 20).expect("valid parameters")
}

/// Deterministic pseudo-random bytes (xorshift64).
fn input() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = vec![0u8; SIZE];
    for word in data.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    data
}

/// The convergent key of a buffer: one hashing pass over it.
fn key_of(data: &[u8]) -> codec::Key {
    let mut keyer = codec::ConvergentKeyer::new(CONVERGENCE_SECRET, params(), data.len() as u64)
        .expect("valid parameters");
    keyer.update(data);
    keyer.finish()
}

/// What an upload computes: the convergent key, then the full encode, segment by segment
/// straight from the buffer (the blocks are dropped, as `cairn cap` drops them).
fn encode(data: &[u8]) -> ChkCap {
    let size = data.len() as u64;
    let mut encoder = codec::Encoder::new(key_of(data), params(), size).expect("valid parameters");
    let segment_size = encoder.geometry().segment_size as usize;
    for segment in data.chunks(segment_size) {
        encoder.encode_segment(segment).expect("encode");
    }
    encoder.finish().expect("encode").cap
}

/// Encodes `data` once, keeping the shares; returns the cap and the parity-only shares.
fn parity_shares(data: &[u8]) -> (ChkCap, Vec<(usize, Vec<u8>)>) {
    let size = data.len() as u64;
    let key = key_of(data);
    let mut out = codec::MemoryShares::default();
    let file = codec::encode_stream(key, params(), size, data, &mut out).expect("encode");
    let mut all = out.into_shares();
    let shares = PARITY_SHARES
        .iter()
        .map(|&n| (n, std::mem::take(&mut all[n])))
        .collect();
    (file.cap, shares)
}

/// Decoding must give back the input: checked once, before anything is timed.
fn check_round_trip(data: &[u8], cap: &ChkCap, shares: &[(usize, Vec<u8>)]) {
    let mut decoded = Vec::with_capacity(data.len());
    let report = codec::decode(cap, shares.to_vec(), &mut decoded).expect("decode");
    assert!(report.faults.is_empty(), "faults: {:?}", report.faults);
    assert!(decoded == data, "decoding did not return the input");
    assert_eq!(*cap, encode(data), "keeping the shares changed the cap");
}

fn bench_codec(c: &mut Criterion, data: &[u8], cap: &ChkCap, shares: &[(usize, Vec<u8>)]) {
    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::Bytes(SIZE as u64))
        .sampling_mode(SamplingMode::Flat);
    let mut scratch = vec![0u8; SIZE];
    group.bench_function("memcpy", |b| b.iter(|| scratch.copy_from_slice(data)));
    group.bench_function("aes128ctr", |b| {
        b.iter(|| {
            let mut cipher = ctr::Ctr128BE::<aes::Aes128>::new(&[1u8; 16].into(), &[0; 16].into());
            cipher.apply_keystream(&mut scratch);
        })
    });
    group.bench_function("sha256", |b| b.iter(|| Sha256::digest(data)));
    // The same amount hashed from a 1 MiB buffer that stays in cache, as the codec's
    // segment-at-a-time hashing does: the hash's own speed, and so the stricter limit.
    group.bench_function("sha256_in_cache", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            for _ in 0..SIZE / IN_CACHE {
                h.update(&data[..IN_CACHE]);
            }
            h.finalize()
        })
    });
    group.bench_function("encode", |b| b.iter(|| encode(data)));
    group.bench_function("decode_parity", |b| {
        b.iter(|| {
            let sources: Vec<(usize, &[u8])> = shares.iter().map(|(n, s)| (*n, &s[..])).collect();
            codec::decode(cap, sources, &mut std::io::sink()).expect("decode")
        })
    });
    group.finish();
}

/// Where criterion writes its results: its own lookup order, less its `cargo metadata` query
/// (with a `build.target-dir` in a cargo config, the summary reports "not measured").
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion")
}

/// The mean MB/s criterion measured for `function` in this run (`None` if it did not run:
/// filtered out, `--test` mode, or results written elsewhere).
fn measured_mbps(function: &str, run_start: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(function)
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= run_start);
    if !fresh {
        return None;
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    let ns_per_iter = json["mean"]["point_estimate"].as_f64()?;
    Some(SIZE as f64 / ns_per_iter * 1e3)
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "BELOW"
    }
}

fn print_summary(run_start: SystemTime) {
    let functions = [
        "memcpy",
        "aes128ctr",
        "sha256",
        "sha256_in_cache",
        "encode",
        "decode_parity",
    ];
    let mbps = functions.map(|f| measured_mbps(f, run_start));
    println!("\n== cairn codec: 64 MiB, k=3 N=10, 1 MiB segments (MB = 10^6 bytes) ==");
    for (function, speed) in functions.iter().zip(&mbps) {
        match speed {
            Some(s) => println!("  {function:<15} {s:>9.1} MB/s"),
            None => println!("  {function:<15} {:>9}  (not measured in this run)", "-"),
        }
    }
    let [_, _, sha256, sha256_in_cache, encode, decode] = mbps;
    let hash_speed = sha256.into_iter().chain(sha256_in_cache).reduce(f64::max);
    if let (Some(hash_speed), Some(encode)) = (hash_speed, encode) {
        let limit = hash_speed / HASH_PASSES;
        let ratio = encode / limit;
        println!("  hash-bound encode limit (fastest sha256 / {HASH_PASSES:.2}): {limit:.1} MB/s");
        println!(
            "  encode / limit: {:.1}%  (target >= 90%)  {}",
            ratio * 100.0,
            verdict(ratio >= 0.9)
        );
    }
    if let Some(decode) = decode {
        println!(
            "  decode_parity: {decode:.1} MB/s  (target >= 700 MB/s)  {}",
            verdict(decode >= 700.0)
        );
    }
}

fn main() {
    let run_start = SystemTime::now();
    let data = input();
    let (cap, shares) = parity_shares(&data);
    check_round_trip(&data, &cap, &shares);

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .without_plots()
        .configure_from_args();
    bench_codec(&mut criterion, &data, &cap, &shares);
    criterion.final_summary();
    print_summary(run_start);
}
