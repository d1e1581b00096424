//! A node directory: `cairn.toml`, the secrets in `private/` (mode 0600), and the files a
//! running node writes for its users (`introducer.furl`, `node.url`, `transport.port`).

use crate::config::{NodeConfig, CONFIG_FILE};
use anyhow::{bail, Context, Result};
use cairn_actors::NodeKey;
use cairn_codec::base32;
use cairn_codec::dirnode::{DirCap, DirWriteCap};
use cairn_net::transport::Furl;
use rand::rngs::OsRng;
use rand::RngCore;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The node's Ed25519 key (its seed, base32): the node's identity.
const KEY_FILE: &str = "private/node.key";
/// The secret part of the node's FURL: who lacks it cannot use the node's services.
const FURL_SECRET_FILE: &str = "private/furl.secret";
/// The convergence secret, base32 on one line (as Tahoe-LAFS keeps it).
const CONVERGENCE_FILE: &str = "private/convergence";
/// The client's lease secret, from which the secret of each lease it holds on a server is
/// derived (base32): whoever has it can renew (and, later, cancel) the node's leases.
const LEASE_SECRET_FILE: &str = "private/lease.secret";
/// The gateway's API token: whoever shows it may use the node (as Tahoe's
/// `private/api_auth_token`).
const API_TOKEN_FILE: &str = "private/api_auth_token";
/// The write cap of the node's root directory (as Tahoe's `tahoe:` alias): whoever has it
/// can read and change the node's whole tree.
const ROOT_CAP_FILE: &str = "private/root.cap";
/// More aliases, one `NAME: CAP` per line (Tahoe's `private/aliases`).
const ALIASES_FILE: &str = "private/aliases";
/// The alias of the node's root.
pub const ROOT_ALIAS: &str = "cairn";
/// Written once the node's root directory is stored on the vdrive server: from then on, a
/// server that does not have it has lost it (it is never made again, empty, in its place).
pub const ROOT_STORED_FILE: &str = "vdrive-root-stored";
/// Written by a running introducer: the FURL that other nodes' configs name.
pub const INTRODUCER_FURL_FILE: &str = "introducer.furl";
/// Written by a running node: its gateway's base URL, for the CLI.
pub const NODE_URL_FILE: &str = "node.url";
/// The port the gateway bound when the config says port 0, kept for restarts so that the
/// node's URL stays the same.
pub const GATEWAY_PORT_FILE: &str = "gateway.port";
/// Written by a running node: its process id, for `cairn stop`.
pub const NODE_PID_FILE: &str = "node.pid";
/// The port the node's transport bound when the config says port 0, kept for restarts so
/// that the node's FURL stays the same.
pub const TRANSPORT_PORT_FILE: &str = "transport.port";

/// What a node keeps secret.
pub struct Identity {
    pub key: NodeKey,
    pub furl_secret: String,
    pub convergence: Vec<u8>,
    pub lease_secret: [u8; 32],
}

/// Makes a new node directory at `dir` (absent or empty) with `config` and fresh secrets.
pub fn create(dir: &Path, config: &NodeConfig) -> Result<()> {
    config.check()?;
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; choose a new directory",
            dir.display()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Everything in a node directory is the node's user's alone: journals hold caps,
    // introducer.furl is the grid's join secret.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    let private = dir.join("private");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("cannot create {}", private.display()))?;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    write_private(&dir.join(KEY_FILE), &base32::encode(&seed))?;
    write_private(&dir.join(FURL_SECRET_FILE), &Furl::new_secret())?;
    let mut convergence = [0u8; 32];
    OsRng.fill_bytes(&mut convergence);
    write_private(&dir.join(CONVERGENCE_FILE), &base32::encode(&convergence))?;
    write_private(&dir.join(API_TOKEN_FILE), &new_token())?;
    write_private(&dir.join(LEASE_SECRET_FILE), &new_token())?;
    if config.client.is_some() {
        ensure_root_cap(dir)?;
    }
    write_atomically(
        &dir.join(CONFIG_FILE),
        config.to_commented_toml().as_bytes(),
    )
}

/// Reads the node's secrets.
pub fn identity(dir: &Path) -> Result<Identity> {
    let seed: [u8; 32] = read_base32(dir, KEY_FILE, "the node's key")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold a 32-byte key", dir.join(KEY_FILE).display()))?;
    Ok(Identity {
        key: NodeKey::from_seed(seed),
        furl_secret: read_line(dir, FURL_SECRET_FILE, "the node's FURL secret")?,
        convergence: convergence_secret(dir)?,
        lease_secret: ensure_lease_secret(dir)?,
    })
}

/// The client's lease secret, made now if the node directory predates lease secrets.
fn ensure_lease_secret(dir: &Path) -> Result<[u8; 32]> {
    if !dir.join(LEASE_SECRET_FILE).exists() {
        write_private(&dir.join(LEASE_SECRET_FILE), &new_token())?;
    }
    read_base32(dir, LEASE_SECRET_FILE, "the node's lease secret")?
        .try_into()
        .map_err(|_| {
            let path = dir.join(LEASE_SECRET_FILE);
            anyhow::anyhow!("{} must hold a 32-byte secret", path.display())
        })
}

/// The gateway's API token, made now if the node directory predates tokens.
pub fn ensure_api_token(dir: &Path) -> Result<String> {
    if !dir.join(API_TOKEN_FILE).exists() {
        write_private(&dir.join(API_TOKEN_FILE), &new_token())?;
    }
    api_token(dir)
}

/// The node's root directory's write cap (made, never yet stored, if the node has none:
/// nodes made before roots existed).
pub fn ensure_root_cap(dir: &Path) -> Result<DirWriteCap> {
    let path = dir.join(ROOT_CAP_FILE);
    if !path.exists() {
        let mut key = [0u8; 16];
        OsRng.fill_bytes(&mut key);
        write_private(&path, &DirWriteCap::from_write_key(key).to_string())?;
    }
    let text = read_line(dir, ROOT_CAP_FILE, "the node's root directory cap")?;
    match DirCap::parse(&text) {
        Ok(Some(DirCap::Write(cap))) => Ok(cap),
        _ => bail!("{} does not hold a directory write cap", path.display()),
    }
}

/// The node's aliases: its root's (`cairn`) and those in `private/aliases`, by name.
pub fn aliases(dir: &Path) -> Result<BTreeMap<String, DirCap>> {
    let mut aliases = added_aliases(dir)?;
    aliases.insert(ROOT_ALIAS.to_owned(), DirCap::Write(ensure_root_cap(dir)?));
    Ok(aliases)
}

/// The aliases in `private/aliases` (without the root's), by name.
pub fn added_aliases(dir: &Path) -> Result<BTreeMap<String, DirCap>> {
    let mut aliases = BTreeMap::new();
    let path = dir.join(ALIASES_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(aliases),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, cap)| {
            let cap = DirCap::parse(cap.trim()).ok()??;
            Some((name.trim().to_owned(), cap))
        });
        match parsed {
            Some((name, cap)) if check_alias(&name).is_ok() => {
                aliases.insert(name, cap);
            }
            _ => bail!(
                "{} line {}: not `NAME: DIRECTORY-CAP`",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(aliases)
}

/// Adds `name` for the directory `cap` (refusing a name in use).
pub fn add_alias(dir: &Path, name: &str, cap: &DirCap) -> Result<()> {
    check_alias(name)?;
    if aliases(dir)?.contains_key(name) {
        bail!("the alias {name:?} is taken (`cairn alias list` shows them)");
    }
    let path = dir.join(ALIASES_FILE);
    let mut text = fs::read_to_string(&path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text += &format!("{name}: {cap}\n");
    write_atomically(&path, text.as_bytes())
}

/// An alias is a short name of letters, digits, `-` and `_`.
pub fn check_alias(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("{name:?} is not an alias: use 1-64 letters, digits, `-` or `_`");
    }
    Ok(())
}

/// The gateway's API token, for the CLI.
pub fn api_token(dir: &Path) -> Result<String> {
    read_line(dir, API_TOKEN_FILE, "the node's API token").with_context(|| {
        format!(
            "{} is not a node directory that has been run (no API token in private/)",
            dir.display()
        )
    })
}

fn new_token() -> String {
    let mut token = [0u8; 32];
    OsRng.fill_bytes(&mut token);
    base32::encode(&token)
}

/// The node's convergence secret.
pub fn convergence_secret(dir: &Path) -> Result<Vec<u8>> {
    read_base32(dir, CONVERGENCE_FILE, "the node's convergence secret")
}

fn read_base32(dir: &Path, name: &str, what: &str) -> Result<Vec<u8>> {
    let text = read_line(dir, name, what)?;
    match base32::decode(&text) {
        Some(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => bail!("{} does not hold base32", dir.join(name).display()),
    }
}

fn read_line(dir: &Path, name: &str, what: &str) -> Result<String> {
    let path = dir.join(name);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {what} at {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// Writes a new secret file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    Ok(())
}

/// Replaces `path` with `bytes` so that readers see the old file or the new one, never half.
/// The file is the node's user's alone (mode 0600).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The gateway URL a running node wrote, or a clear error saying the node is not running.
pub fn node_url(dir: &Path) -> Result<String> {
    let path = dir.join(NODE_URL_FILE);
    match fs::read_to_string(&path) {
        Ok(url) => Ok(url.trim().trim_end_matches('/').to_owned()),
        Err(_) => Err(crate::failure::failure(
            crate::failure::Kind::NodeDown,
            format!(
                "{} has no node.url: is the node running? Start it with `cairn run {}`",
                dir.display(),
                dir.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IntroducerSection, NodeSection, StorageSection};

    fn introducer_config() -> NodeConfig {
        NodeConfig {
            node: NodeSection {
                nickname: "intro".to_owned(),
                listen: "127.0.0.1:0".parse().unwrap(),
                advertise_host: None,
                gateway: "127.0.0.1:0".parse().unwrap(),
            },
            introducer: IntroducerSection {
                enabled: true,
                vdrive: true,
            },
            client: None,
            storage: StorageSection::default(),
            gateway: Default::default(),
            repair: Default::default(),
        }
    }

    #[test]
    fn a_new_node_directory_has_private_secrets_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("intro");
        create(&dir, &introducer_config()).unwrap();
        assert_eq!(NodeConfig::load(&dir).unwrap(), introducer_config());
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("private"), 0o700);
        assert_eq!(mode(""), 0o700, "the node directory");
        assert_eq!(mode(CONFIG_FILE), 0o600);
        for file in [
            KEY_FILE,
            FURL_SECRET_FILE,
            CONVERGENCE_FILE,
            API_TOKEN_FILE,
            LEASE_SECRET_FILE,
        ] {
            assert_eq!(mode(file), 0o600, "{file}");
        }
        let first = identity(&dir).unwrap();
        let again = identity(&dir).unwrap();
        assert_eq!(first.key.id(), again.key.id());
        assert_eq!(first.furl_secret, again.furl_secret);

        let other = tmp.path().join("other");
        create(&other, &introducer_config()).unwrap();
        assert_ne!(identity(&other).unwrap().key.id(), first.key.id());
    }

    #[test]
    fn a_used_directory_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("precious"), b"x").unwrap();
        let error = create(tmp.path(), &introducer_config()).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
        assert_eq!(fs::read(tmp.path().join("precious")).unwrap(), b"x");
    }

    #[test]
    fn a_node_that_is_not_running_is_named_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let error = node_url(tmp.path()).unwrap_err().to_string();
        assert!(error.contains("cairn run"), "{error}");
    }
}
