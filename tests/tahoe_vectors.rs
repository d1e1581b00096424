//! Every CHK entry of Tahoe-LAFS's published test vectors must give exactly Tahoe's cap.
//!
//! The vectors are found through `CAIRN_TAHOE_VECTORS` (a path to the YAML file) or at
//! `../shared/vectors/tahoe-test-vectors.yaml`. Where neither exists the test says so loudly
//! and skips, except under CI (`CI` set), where a missing file is a failure.

use base64::Engine;
use cairn::codec::{self, Cap, EncodingParams};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
struct VectorFile {
    vector: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    convergence: String,
    expected: String,
    format: Format,
    sample: Sample,
    zfec: Zfec,
}

#[derive(Deserialize)]
struct Format {
    kind: String,
}

#[derive(Deserialize)]
struct Sample {
    length: u64,
    seed: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Zfec {
    required: usize,
    total: usize,
    segment_size: u64,
}

fn vectors_path() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CAIRN_TAHOE_VECTORS").map(PathBuf::from),
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/vectors/tahoe-test-vectors.yaml"),
        ),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// Tahoe's sample data: the seed repeated, cut to the length.
fn sample_bytes(seed: &[u8], length: u64) -> Vec<u8> {
    seed.iter().copied().cycle().take(length as usize).collect()
}

fn cap_of(data: &[u8], secret: &[u8], params: EncodingParams) -> String {
    if let Some(lit) = codec::lit_cap(data) {
        return Cap::Lit(lit).to_string();
    }
    let size = data.len() as u64;
    let key = codec::convergent_key(secret, params, size, data).expect("key pass");
    let file =
        codec::encode_stream(key, params, size, data, &mut codec::DiscardShares).expect("encode");
    Cap::Chk(file.cap).to_string()
}

#[test]
fn every_chk_vector_reproduces_exactly() {
    let Some(path) = vectors_path() else {
        let msg = "Tahoe-LAFS test vectors not found: set CAIRN_TAHOE_VECTORS or provide ../shared/vectors/tahoe-test-vectors.yaml";
        if std::env::var_os("CI").is_some() {
            panic!("{msg} (required under CI)");
        }
        eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
        return;
    };
    let text = std::fs::read_to_string(&path).expect("read the vectors file");
    let file: VectorFile = serde_yaml_ng::from_str(&text).expect("parse the vectors file");
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut failures = Vec::new();
    let mut checked = 0;
    for v in file.vector.iter().filter(|v| v.format.kind == "chk") {
        let secret = b64
            .decode(&v.convergence)
            .expect("base64 convergence secret");
        let data = sample_bytes(
            &b64.decode(&v.sample.seed).expect("base64 seed"),
            v.sample.length,
        );
        let params = EncodingParams::new(v.zfec.required, v.zfec.total, v.zfec.segment_size)
            .expect("vector parameters");
        let got = cap_of(&data, &secret, params);
        // The expected cap must itself parse and print back unchanged.
        assert_eq!(
            v.expected
                .parse::<Cap>()
                .expect("expected cap parses")
                .to_string(),
            v.expected
        );
        if got != v.expected {
            failures.push(format!(
                "k={} N={} size={}: expected {}\n{:>w$}got      {got}",
                params.k,
                params.n,
                v.sample.length,
                v.expected,
                "",
                w = 0
            ));
        }
        checked += 1;
    }
    assert_eq!(checked, 120, "the vectors file should hold 120 CHK vectors");
    assert!(
        failures.is_empty(),
        "{} of {checked} CHK vectors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "all {checked} CHK vectors from {} reproduce exactly",
        path.display()
    );
}
