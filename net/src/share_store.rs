//! [`DiskShareStore`]: a [`ShareStore`] over a directory, in Tahoe-LAFS's layout.
//!
//! ```text
//! <root>/shares/<prefix>/<si>/<n>     complete share n of the file with storage index si
//! <root>/shares/incoming/<si>/<n>     a share being uploaded
//! ```
//!
//! `<si>` is the storage index in lower-case base32 and `<prefix>` its first two characters
//! (which keeps directories small); `<n>` is the share number in decimal. A share is created
//! in `incoming/` at its full size, written in place, and committed by fsyncing it, renaming
//! it into place and fsyncing the directories on the way: a reader sees the whole share or
//! none of it, and a committed share survives a power loss. Incoming shares are not synced —
//! a crash may lose them, which breaks no promise, as nothing reads them.
//!
//! The directory is the node's own, but need not be tidy: names that are not storage indexes
//! or share numbers, directories where files belong and symlinks are skipped by listings and
//! refused by reads, with an error, never a panic.
//!
//! Space: the store counts the bytes of its shares (an incoming share at its full size from
//! the moment it is created) when it opens, and keeps the count as it goes. With a capacity,
//! it refuses shares beyond it. Either way it never offers more than the file system has
//! free, less the incoming shares' full sizes: they are sparse files, whose unwritten bytes
//! the file system does not count yet, but will (the storage server keeps its reserved space
//! on top of that).

use cairn_actors::store::ShareStore;
use cairn_actors::{ShareNum, StorageIndex};
use cairn_codec::base32;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The directory of incoming shares, beside the two-character prefix directories.
const INCOMING: &str = "incoming";

/// A [`ShareStore`] in a directory. See the module docs.
#[derive(Debug)]
pub struct DiskShareStore {
    /// `<root>/shares`.
    shares: PathBuf,
    capacity: Option<u64>,
    /// Bytes of all shares, complete and incoming.
    used: u64,
    /// Bytes of the incoming shares alone: promised, not yet taken from the file system.
    incoming: u64,
    /// How many complete shares there are.
    complete: u64,
}

impl DiskShareStore {
    /// Opens the store under `root` (creating its directories if missing), holding at most
    /// `capacity` bytes of shares; `None` sets no limit (see the module docs).
    pub fn open(root: impl AsRef<Path>, capacity: Option<u64>) -> io::Result<Self> {
        let root = root.as_ref();
        let shares = root.join("shares");
        let incoming = shares.join(INCOMING);
        fs::create_dir_all(&incoming).map_err(|e| context(e, "cannot create", &incoming))?;
        // Commits sync the directories below `shares`; these entries are synced once here.
        for dir in [root, &shares] {
            sync_dir(dir)?;
        }
        let mut store = DiskShareStore {
            shares,
            capacity,
            used: 0,
            incoming: 0,
            complete: 0,
        };
        (store.used, store.incoming, store.complete) = store.count_used()?;
        Ok(store)
    }

    /// The capacity, if any.
    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    /// Sums the sizes of every share the store can see, complete and incoming; and of the
    /// incoming ones alone; and counts the complete ones.
    fn count_used(&self) -> io::Result<(u64, u64, u64)> {
        let mut used = 0u64;
        let mut incoming = 0u64;
        let mut complete = 0u64;
        for (name, meta) in entries(&self.shares)? {
            if !meta.is_dir() {
                continue;
            }
            let dir = self.shares.join(&name);
            let buckets = match name.as_str() {
                INCOMING => buckets(&dir, |_| true)?,
                prefix => buckets(&dir, |si| si.starts_with(prefix))?,
            };
            for (_, bucket) in buckets {
                for (_, size) in share_files(&bucket)? {
                    used = used.saturating_add(size);
                    match name == INCOMING {
                        true => incoming = incoming.saturating_add(size),
                        false => complete += 1,
                    }
                }
            }
        }
        Ok((used, incoming, complete))
    }

    /// Room for new shares: below the capacity if there is one, and never more than the
    /// file system has free for this user.
    fn available(&self) -> io::Result<u64> {
        let on_disk = fs4::available_space(&self.shares)
            .map_err(|e| context(e, "cannot ask the free space of", &self.shares))?
            .saturating_sub(self.incoming);
        Ok(match self.capacity {
            Some(capacity) => capacity.saturating_sub(self.used).min(on_disk),
            None => on_disk,
        })
    }

    /// `<root>/shares/<prefix>/<si>`.
    fn bucket(&self, si: StorageIndex) -> PathBuf {
        let name = si.to_string();
        self.shares.join(&name[..2]).join(&name)
    }

    /// `<root>/shares/incoming/<si>`.
    fn incoming_bucket(&self, si: StorageIndex) -> PathBuf {
        self.shares.join(INCOMING).join(si.to_string())
    }

    fn complete_path(&self, si: StorageIndex, share: ShareNum) -> PathBuf {
        self.bucket(si).join(share.0.to_string())
    }

    fn incoming_path(&self, si: StorageIndex, share: ShareNum) -> PathBuf {
        self.incoming_bucket(si).join(share.0.to_string())
    }

    /// Refuses a share that is already there, complete or incoming (or junk in its place).
    fn check_absent(&self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        for path in [self.complete_path(si, share), self.incoming_path(si, share)] {
            match fs::symlink_metadata(&path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "share {si:?} #{} already exists: {}",
                            share.0,
                            path.display()
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(context(e, "cannot inspect", &path)),
            }
        }
        Ok(())
    }

    fn check_room(&self, size: u64) -> io::Result<()> {
        let available = self.available()?;
        if size > available {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("a {size}-byte share does not fit: {available} bytes available"),
            ));
        }
        Ok(())
    }

    /// Makes the rename that committed a share into `bucket` durable: its entry, and the
    /// entries of the directories that may have been made for it.
    fn sync_commit(&self, si: StorageIndex, bucket: &Path) -> io::Result<()> {
        sync_dir(bucket)?;
        if let Some(prefix) = bucket.parent() {
            sync_dir(prefix)?;
        }
        sync_dir(&self.shares)?;
        // Also the removal from incoming/, so that a power loss cannot bring back a second
        // name for the share (which would be counted, and aborted, as a leftover).
        sync_dir(&self.incoming_bucket(si))
    }
}

impl ShareStore for DiskShareStore {
    fn create(&mut self, si: StorageIndex, share: ShareNum, size: u64) -> io::Result<()> {
        self.check_absent(si, share)?;
        self.check_room(size)?;
        let bucket = self.incoming_bucket(si);
        fs::create_dir_all(&bucket).map_err(|e| context(e, "cannot create", &bucket))?;
        let path = self.incoming_path(si, share);
        // create_new: a share that appeared since the check is still refused.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| context(e, "cannot create share", &path))?;
        // The file takes its full size now (sparse where the file system allows), so that
        // a restart counts it as the space it was promised.
        if let Err(e) = file.set_len(size) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(context(e, "cannot size share", &path));
        }
        self.used = self.used.saturating_add(size);
        self.incoming = self.incoming.saturating_add(size);
        Ok(())
    }

    fn write(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let path = self.incoming_path(si, share);
        let (mut file, size) = open_share(&path, true, "incoming", si, share)?;
        let fits = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= size);
        if !fits {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write of {} bytes at {offset} is outside the {size}-byte share",
                    data.len()
                ),
            ));
        }
        let io_err = |e| context(e, "cannot write share", &path);
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        file.write_all(data).map_err(io_err)
    }

    fn commit(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let incoming = self.incoming_path(si, share);
        let (file, size) = open_share(&incoming, true, "incoming", si, share)?;
        file.sync_all()
            .map_err(|e| context(e, "cannot sync share", &incoming))?;
        drop(file);
        let complete = self.complete_path(si, share);
        if fs::symlink_metadata(&complete).is_ok() {
            // rename would silently replace it.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("cannot commit: {} already exists", complete.display()),
            ));
        }
        let bucket = self.bucket(si);
        fs::create_dir_all(&bucket).map_err(|e| context(e, "cannot create", &bucket))?;
        fs::rename(&incoming, &complete)
            .map_err(|e| context(e, "cannot move share into", &complete))?;
        self.incoming = self.incoming.saturating_sub(size);
        self.complete += 1;
        self.sync_commit(si, &bucket)?;
        remove_if_empty(&self.incoming_bucket(si));
        Ok(())
    }

    fn abort(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let path = self.incoming_path(si, share);
        let size = share_len(&path, "incoming", si, share)?;
        fs::remove_file(&path).map_err(|e| context(e, "cannot delete share", &path))?;
        self.used = self.used.saturating_sub(size);
        self.incoming = self.incoming.saturating_sub(size);
        remove_if_empty(&self.incoming_bucket(si));
        Ok(())
    }

    fn delete(&mut self, si: StorageIndex, share: ShareNum) -> io::Result<()> {
        let path = self.complete_path(si, share);
        let size = share_len(&path, "complete", si, share)?;
        fs::remove_file(&path).map_err(|e| context(e, "cannot delete share", &path))?;
        self.used = self.used.saturating_sub(size);
        self.complete = self.complete.saturating_sub(1);
        let bucket = self.bucket(si);
        // Durable before `Ok`: a power loss must not bring a collected share back, with a
        // lease journal that no longer knows it.
        sync_dir(&bucket)?;
        remove_if_empty(&bucket);
        Ok(())
    }

    fn read(
        &mut self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> io::Result<Vec<u8>> {
        let path = self.complete_path(si, share);
        let (file, size) = open_share(&path, false, "complete", si, share)?;
        if offset > size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("read at {offset} is past the end of the {size}-byte share"),
            ));
        }
        let io_err = |e| context(e, "cannot read share", &path);
        let mut reader = io::BufReader::new(file);
        reader.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let mut out = Vec::new();
        // Bounded by the share's size, not by the caller's `len`.
        let want = len.min(size - offset);
        reader.take(want).read_to_end(&mut out).map_err(io_err)?;
        Ok(out)
    }

    fn list(&mut self, si: StorageIndex) -> io::Result<Vec<(ShareNum, u64)>> {
        share_files(&self.bucket(si))
    }

    fn incoming(&mut self) -> io::Result<Vec<(StorageIndex, ShareNum)>> {
        let mut found = Vec::new();
        for (si, bucket) in buckets(&self.shares.join(INCOMING), |_| true)? {
            for (share, _) in share_files(&bucket)? {
                found.push((si, share));
            }
        }
        Ok(found)
    }

    fn used_bytes(&mut self) -> io::Result<u64> {
        Ok(self.used)
    }

    fn share_count(&mut self) -> io::Result<u64> {
        Ok(self.complete)
    }

    fn available_bytes(&mut self) -> io::Result<u64> {
        self.available()
    }
}

/// Opens a share file and returns it with its size.
fn open_share(
    path: &Path,
    write: bool,
    state: &str,
    si: StorageIndex,
    share: ShareNum,
) -> io::Result<(File, u64)> {
    let size = share_len(path, state, si, share)?;
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| context(e, "cannot open share", path))?;
    Ok((file, size))
}

/// The size of a share file. A missing share is `NotFound`; anything but a regular file in
/// its place (a directory, a symlink) is `InvalidData`.
fn share_len(path: &Path, state: &str, si: StorageIndex, share: ShareNum) -> io::Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {state} share {si:?} #{}", share.0),
            ))
        }
        Err(e) => return Err(context(e, "cannot inspect", path)),
    };
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(meta.len())
}

/// The share files in a bucket directory, by number, with their sizes. Anything else there
/// is skipped; a missing bucket (or junk in its place) holds no shares.
fn share_files(bucket: &Path) -> io::Result<Vec<(ShareNum, u64)>> {
    let mut shares: Vec<(ShareNum, u64)> = entries(bucket)?
        .into_iter()
        .filter(|(_, meta)| meta.is_file())
        .filter_map(|(name, meta)| Some((parse_share_num(&name)?, meta.len())))
        .collect();
    shares.sort();
    Ok(shares)
}

/// The bucket directories in `dir` whose names are storage indexes that `keep` accepts, by
/// storage index.
fn buckets(dir: &Path, keep: impl Fn(&str) -> bool) -> io::Result<Vec<(StorageIndex, PathBuf)>> {
    let mut found: Vec<(StorageIndex, PathBuf)> = entries(dir)?
        .into_iter()
        .filter(|(name, meta)| meta.is_dir() && keep(name))
        .filter_map(|(name, _)| Some((parse_si(&name)?, dir.join(name))))
        .collect();
    found.sort();
    Ok(found)
}

/// The entries of `dir` that have UTF-8 names, with their own metadata (symlinks are not
/// followed). A missing `dir`, or anything but a directory in its place, has none.
fn entries(dir: &Path) -> io::Result<Vec<(String, Metadata)>> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            tracing::warn!(path = %dir.display(), "share store: not a directory, skipped");
            return Ok(Vec::new());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(context(e, "cannot inspect", dir)),
    }
    let io_err = |e| context(e, "cannot list", dir);
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) => found.push((name, meta)),
            // Deleted since the listing: it is simply not there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(context(e, "cannot inspect", &entry.path())),
        }
    }
    Ok(found)
}

/// A storage index spelled exactly as [`StorageIndex`]'s `Display` spells it.
fn parse_si(name: &str) -> Option<StorageIndex> {
    let si = StorageIndex(base32::decode(name)?.try_into().ok()?);
    (si.to_string() == name).then_some(si)
}

/// A share number spelled exactly as the store spells it (no sign, no leading zeros).
fn parse_share_num(name: &str) -> Option<ShareNum> {
    let n: u8 = name.parse().ok()?;
    (n.to_string() == name).then_some(ShareNum(n))
}

/// Removes `dir` if it is empty; leaves it otherwise (it is tidiness, not correctness).
fn remove_if_empty(dir: &Path) {
    let _ = fs::remove_dir(dir);
}

/// Makes the entries of `dir` durable (on Unix, by fsyncing it; elsewhere a directory cannot
/// be opened to sync, and renames are durable by other means).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| context(e, "cannot sync directory", dir))?;
    }
    Ok(())
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
