//! `cairn backup`: a local directory into the vdrive as dated snapshots, uploading only what
//! changed since the last backup (as `tahoe backup` does). Each run makes
//! `DEST/Archives/YYYY-MM-DDTHHMMSSZ/` holding the whole tree; a file whose path, size and
//! modification time match the backup database (`backupdb.json` in the node directory,
//! 0600: it holds caps) is linked by its known cap instead of uploaded again.

use crate::copy::Copier;
use crate::create::SharesArgs;
use crate::failure::{failure, Kind};
use crate::nodedir;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The backup database's file in the node directory.
const BACKUP_DB_FILE: &str = "backupdb.json";

/// Back up a local directory into the vdrive: a new dated snapshot under
/// DEST/Archives/, uploading only files changed since the last backup (same path, size and
/// modification time: linked by their known cap).
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The local directory.
    #[arg(value_name = "DIR")]
    source: PathBuf,
    /// Where the snapshots go: a vdrive path (`cairn:/backups/laptop`).
    #[arg(value_name = "cairn:/PATH")]
    dest: String,
    /// Uploads' encoding, over the node's.
    #[command(flatten)]
    shares: SharesArgs,
    #[command(flatten)]
    exclude: crate::copy::ExcludeArgs,
}

/// What was uploaded, by local path: enough to tell an unchanged file.
#[derive(Default, Serialize, Deserialize)]
pub struct BackupDb {
    files: BTreeMap<PathBuf, Known>,
}

#[derive(Serialize, Deserialize)]
struct Known {
    size: u64,
    mtime_ns: i128,
    cap: String,
}

impl BackupDb {
    fn load(path: &Path) -> Result<BackupDb> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is damaged; move it aside to back everything up again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BackupDb::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        nodedir::write_atomically(path, &serde_json::to_vec(self)?)
    }

    /// The cap of the file at (canonical) `path` if it is unchanged since it was uploaded.
    pub fn cap_of(&self, path: &Path, meta: &fs::Metadata) -> Option<String> {
        let known = self.files.get(path)?;
        let same = known.size == meta.len() && known.mtime_ns == mtime_ns(meta);
        same.then(|| known.cap.clone())
    }

    /// Records that the file at (canonical) `path`, as `meta` describes it, was uploaded as
    /// `cap`.
    pub fn remember(&mut self, path: PathBuf, meta: &fs::Metadata, cap: String) {
        let known = Known {
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            cap,
        };
        self.files.insert(path, known);
    }
}

fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// A snapshot's name: the UTC time, `2026-12-03T143000Z`.
fn snapshot_name() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn backup(dir: &Path, args: BackupArgs) -> Result<()> {
    let Some(dest) = args.dest.strip_prefix("cairn:") else {
        return Err(failure(
            Kind::BadInput,
            format!(
                "{}: the destination is a vdrive path, cairn:/PATH",
                args.dest
            ),
        ));
    };
    let dest = crate::commands::vdrive_path(dest)?.to_owned();
    if !args.source.is_dir() {
        return Err(failure(
            Kind::NotFound,
            format!("{} is not a directory", args.source.display()),
        ));
    }
    let db_path = dir.join(BACKUP_DB_FILE);
    let mut copier = Copier::new(dir, &args.shares)?;
    copier.known = Some(BackupDb::load(&db_path)?);
    copier.exclude = args.exclude.patterns()?;
    crate::commands::undo_on_interrupt(dir)?;
    let archives = format!("{}/Archives", dest.trim_end_matches('/'));
    copier.vdrive_mkdir_all(&archives)?;
    // Two backups in the same second get names of their own.
    let stamp = snapshot_name();
    let mut snapshot = format!("{archives}/{stamp}");
    for n in 2.. {
        if crate::commands::vdrive_kind(&copier.client, &snapshot)?.is_none() {
            break;
        }
        snapshot = format!("{archives}/{stamp}-{n}");
    }
    let total = crate::copy::local_bytes(&args.source, &copier.exclude);
    crate::commands::start_overall_progress(Some(total), "backing up");
    let done = copier.upload_tree(&args.source, &snapshot);
    crate::commands::finish_overall_progress();
    // What was uploaded stays known even if the backup stopped part-way.
    if let Some(db) = &copier.known {
        db.save(&db_path)?;
    }
    done?;
    let t = &copier.tally;
    eprintln!(
        "cairn: backed up {} files into cairn:{snapshot}: {} uploaded ({}), {} unchanged; {} \
         directories{}",
        t.files,
        t.files - t.unchanged,
        bytesize::ByteSize(t.bytes),
        t.unchanged,
        t.dirs,
        t.skipped_note()
    );
    t.ended("backed up")?;
    println!("cairn:{snapshot}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_database_is_empty_and_a_damaged_one_is_refused_with_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(BACKUP_DB_FILE);
        assert!(BackupDb::load(&path).unwrap().files.is_empty());
        fs::write(&path, b"{\"files\": [not json").unwrap();
        let error = format!("{:#}", BackupDb::load(&path).err().expect("refused"));
        assert!(error.contains("is damaged; move it aside"), "{error}");
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"files\": [not json",
            "left as it was"
        );
    }
}
