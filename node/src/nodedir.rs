//! What the CLI reads from a node directory.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Where a node keeps its convergence secret, base32 on one line (as Tahoe-LAFS does).
const CONVERGENCE_FILE: &str = "private/convergence";

/// The node's convergence secret.
pub fn convergence_secret(node_dir: &Path) -> Result<Vec<u8>> {
    let path = node_dir.join(CONVERGENCE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the node's convergence secret at {}",
            path.display()
        )
    })?;
    match cairn_codec::base32::decode(text.trim()) {
        Some(secret) if !secret.is_empty() => Ok(secret),
        _ => bail!(
            "{} does not hold a base32 convergence secret",
            path.display()
        ),
    }
}
