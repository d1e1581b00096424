//! `cairn cap`: a file's cap, computed exactly as an upload would, without any network.

use anyhow::{bail, Context, Result};
use cairn_codec::{self as codec, Cap, CapKind, EncodingParams, DEFAULT_MAX_SEGMENT_SIZE};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Print the cap a file would get if uploaded (runs the whole encoding, stores nothing).
///
/// Files of 55 bytes or fewer get a `URI:LIT:` cap holding the data itself; larger ones a
/// `URI:CHK:` cap. The same file, secret and encoding always give the same cap (convergent
/// encryption), which is what lets a grid store identical files once.
#[derive(clap::Args)]
pub struct CapArgs {
    /// Shares needed to rebuild the file (k). Default: the node's with -d (as `put` would
    /// encode it), else 3.
    #[arg(long, value_name = "K")]
    shares_needed: Option<usize>,
    /// Shares made (N, at most 256). Default: the node's with -d, else 10.
    #[arg(long, value_name = "N")]
    shares_total: Option<usize>,
    /// Largest segment, in bytes; the file is encoded one segment at a time.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_SEGMENT_SIZE)]
    max_segment_size: u64,
    /// Convergence secret, base32. Default: the node's (with -d), else all zeros, with a
    /// warning: with a shared secret anyone holding a file can tell whether you stored it.
    #[arg(long, value_name = "BASE32")]
    convergence_secret: Option<String>,
    /// The file, or `-` for standard input (spooled to a temporary file for the key pass).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: CapArgs, node_dir: Option<&Path>) -> Result<()> {
    let node_encoding = match node_dir {
        Some(dir) if dir.join(crate::config::CONFIG_FILE).exists() => {
            let config = crate::config::NodeConfig::load(dir)?;
            config.client.map(|c| (c.shares_needed, c.shares_total))
        }
        _ => None,
    };
    let (k, n) = node_encoding.unwrap_or((3, 10));
    let k = args.shares_needed.unwrap_or(k);
    let n = args.shares_total.unwrap_or(n);
    let params = EncodingParams::new(k, n, args.max_segment_size)?;
    let secret = convergence_secret(args.convergence_secret.as_deref(), node_dir)?;
    let mut input = open_seekable(&args.file)?;
    let size = input.seek(SeekFrom::End(0))?;
    input.rewind()?;
    let cap = file_cap(&mut input, size, &secret, params)
        .with_context(|| format!("computing the cap of {}", args.file.display()))?;
    println!("{cap}");
    Ok(())
}

/// The cap of `size` bytes read from `input`, which is read twice (key pass, then encoding).
fn file_cap(input: &mut File, size: u64, secret: &[u8], params: EncodingParams) -> Result<Cap> {
    if CapKind::for_size(size) == CapKind::Lit {
        let mut data = Vec::with_capacity(size as usize);
        input.take(size).read_to_end(&mut data)?;
        let lit = codec::lit_cap(&data).context("the file grew while it was read")?;
        return Ok(Cap::Lit(lit));
    }
    let key = codec::convergent_key(secret, params, size, &mut *input)?;
    input.rewind()?;
    let file = codec::encode_stream(key, params, size, input, &mut codec::DiscardShares)?;
    Ok(Cap::Chk(file.cap))
}

fn convergence_secret(given: Option<&str>, node_dir: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(text) = given {
        return match codec::base32::decode(text.trim()) {
            Some(secret) if !secret.is_empty() => Ok(secret),
            _ => bail!("--convergence-secret must be non-empty lower-case base32 (RFC 4648 alphabet, no padding)"),
        };
    }
    if let Some(dir) = node_dir {
        return crate::nodedir::convergence_secret(dir);
    }
    eprintln!(
        "cairn: warning: no convergence secret (--convergence-secret or -d NODEDIR): using the all-zero \
         secret, so anyone with the same file can tell that it is the one you hold"
    );
    Ok(vec![0; 32])
}

/// The file itself, or for `-` standard input spooled to an anonymous temporary file.
fn open_seekable(path: &Path) -> Result<File> {
    if path.as_os_str() == "-" {
        let mut spool =
            tempfile::tempfile().context("creating a temporary file to spool standard input")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .context("spooling standard input")?;
        return Ok(spool);
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata()?.is_dir() {
        bail!("{} is a directory, not a file", path.display());
    }
    Ok(file)
}
