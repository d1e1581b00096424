//! Directories named by caps, on the client's side: the tree logic lives here, the vdrive
//! server only stores records it cannot read ([`crate::vdrive`], `docs/dirnode.md`).
//!
//! A listing reads the directory's record, checks it against the cap and opens it. A change
//! reads the latest record, applies the change to its entries, seals them as the next
//! version and writes that as a compare-and-swap on the version read; if another writer got
//! there first, it reads again and re-applies the change, up to [`MAX_ATTEMPTS`] times. The
//! client remembers the highest version it has seen of each directory and refuses an older
//! one (a server rolling a directory back), within [`MAX_VERSIONS_REMEMBERED`] directories.

use super::{Client, Purpose};
use crate::actor::Context;
use crate::local::{DirChange, DirOpError, DirReply, DirRequest, LocalId, LocalResponse};
use crate::protocol::{RemoteError, Request, Response};
use cairn_codec::dirnode::{DirCap, DirVerifyCap, DirWriteCap, Entry, Record};
use cairn_codec::StorageIndex;
use rand::RngCore;
use std::collections::{BTreeMap, VecDeque};

/// How many times a change is tried against a directory other writers keep changing.
pub const MAX_ATTEMPTS: u32 = 8;
/// How many directories' latest versions a client remembers (the oldest go first).
pub const MAX_VERSIONS_REMEMBERED: usize = 100_000;

/// A directory operation under way.
pub(super) struct DirTask {
    job: Job,
    attempts: u32,
    /// The version being written, once a record is on its way.
    writing: Option<u64>,
}

/// What a directory operation does.
enum Job {
    /// Writes the first version of a new directory.
    Create(DirWriteCap),
    List(DirCap),
    Change(DirWriteCap, DirChange),
}

impl Job {
    fn verify_cap(&self) -> DirVerifyCap {
        match self {
            Job::Create(cap) | Job::Change(cap, _) => cap.verify_cap(),
            Job::List(cap) => cap.verify_cap(),
        }
    }
}

/// The versions of directories seen, bounded.
#[derive(Default)]
pub(super) struct Seen {
    versions: BTreeMap<StorageIndex, u64>,
    order: VecDeque<StorageIndex>,
}

impl Seen {
    fn get(&self, si: StorageIndex) -> u64 {
        self.versions.get(&si).copied().unwrap_or(0)
    }

    fn saw(&mut self, si: StorageIndex, version: u64) {
        match self.versions.get_mut(&si) {
            Some(v) => *v = (*v).max(version),
            None => {
                if self.order.len() == MAX_VERSIONS_REMEMBERED {
                    if let Some(oldest) = self.order.pop_front() {
                        self.versions.remove(&oldest);
                    }
                }
                self.versions.insert(si, version);
                self.order.push_back(si);
            }
        }
    }
}

impl Client {
    pub(super) fn dir_request(
        &mut self,
        local: LocalId,
        request: DirRequest,
        ctx: &mut Context<'_>,
    ) {
        if self.vdrive.is_none() {
            let why = "no vdrive server is configured for this node";
            return dir_reply(ctx, local, Err(DirOpError::Unreachable(why.into())));
        }
        let job = match request {
            DirRequest::Create { cap } => Job::Create(cap),
            DirRequest::List { cap } => Job::List(cap),
            DirRequest::Change { cap, change } => Job::Change(cap, change),
        };
        let create = match &job {
            Job::Create(cap) => Some(cap.clone()),
            _ => None,
        };
        let task = DirTask {
            job,
            attempts: 0,
            writing: None,
        };
        self.dir_tasks.insert(local, task);
        match create {
            Some(cap) => self.write_record(local, &cap, None, Vec::new(), ctx),
            None => self.read_record(local, ctx),
        }
    }

    fn read_record(&mut self, local: LocalId, ctx: &mut Context<'_>) {
        let (Some(task), Some(vdrive)) = (self.dir_tasks.get_mut(&local), self.vdrive) else {
            return;
        };
        task.writing = None;
        let si = task.job.verify_cap().storage_index;
        self.requests
            .send(ctx, vdrive, Request::DirRead { si }, Purpose::Dir(local));
    }

    /// Seals `entries` as the version after `read` (1 for a new directory) and writes it.
    fn write_record(
        &mut self,
        local: LocalId,
        cap: &DirWriteCap,
        read: Option<u64>,
        entries: Vec<Entry>,
        ctx: &mut Context<'_>,
    ) {
        let (Some(task), Some(vdrive)) = (self.dir_tasks.get_mut(&local), self.vdrive) else {
            return;
        };
        let version = read.map_or(1, |v| v + 1);
        let mut ivs = || {
            let mut iv = [0u8; 16];
            ctx.rng().fill_bytes(&mut iv);
            iv
        };
        let record = match Record::seal(cap, version, &entries, &mut ivs) {
            Ok(record) => record,
            Err(e) => {
                self.dir_tasks.remove(&local);
                return dir_reply(ctx, local, Err(DirOpError::Invalid(e.to_string())));
            }
        };
        task.writing = Some(version);
        // The vdrive node's id is what the write enabler is bound to.
        let body = Request::DirWrite {
            si: cap.verify_cap().storage_index,
            write_enabler: cap.write_enabler(&vdrive.node.0),
            expected: read,
            record: record.encode(),
        };
        self.requests.send(ctx, vdrive, body, Purpose::Dir(local));
    }

    pub(super) fn on_dir_answer(&mut self, local: LocalId, body: Response, ctx: &mut Context<'_>) {
        let Some(task) = self.dir_tasks.get(&local) else {
            return;
        };
        let result = match (task.writing, body) {
            (None, Response::DirRecord(record)) => self.on_record(local, record, ctx),
            (Some(version), Response::Ok) => {
                self.seen.saw(task.job.verify_cap().storage_index, version);
                match &task.job {
                    Job::Create(cap) => Some(Ok(DirReply::Created(cap.clone()))),
                    _ => Some(Ok(DirReply::Done { version })),
                }
            }
            // The directory exists already (created before, by this node or another).
            (Some(_), Response::Err(RemoteError::Conflict { .. }))
                if matches!(task.job, Job::Create(_)) =>
            {
                Some(Err(DirOpError::AlreadyExists("the directory".into())))
            }
            (Some(_), Response::Err(RemoteError::Conflict { .. })) => {
                let task = self.dir_tasks.get_mut(&local).expect("looked up above");
                task.attempts += 1;
                if task.attempts >= MAX_ATTEMPTS {
                    Some(Err(DirOpError::Busy(MAX_ATTEMPTS)))
                } else {
                    self.read_record(local, ctx);
                    None
                }
            }
            (_, Response::Err(e)) => Some(Err(DirOpError::Refused(e))),
            // Not an answer to this step: the request times out if nothing better comes.
            _ => return,
        };
        if let Some(result) = result {
            self.dir_tasks.remove(&local);
            dir_reply(ctx, local, result);
        }
    }

    /// A record read: the listing, or the change applied and written (`None`: under way).
    fn on_record(
        &mut self,
        local: LocalId,
        record: Option<Vec<u8>>,
        ctx: &mut Context<'_>,
    ) -> Option<Result<DirReply, DirOpError>> {
        let task = self.dir_tasks.get(&local)?;
        let cap = task.job.verify_cap();
        let seen = self.seen.get(cap.storage_index);
        let Some(bytes) = record else {
            return Some(Err(match seen {
                0 => DirOpError::NoSuchDirectory,
                _ => DirOpError::Rollback { seen, got: 0 },
            }));
        };
        let record = match Record::decode(&bytes) {
            Ok(record) => record,
            Err(e) => return Some(Err(DirOpError::Forged(e.to_string()))),
        };
        if record.version < seen {
            return Some(Err(DirOpError::Rollback {
                seen,
                got: record.version,
            }));
        }
        let opened = match &task.job {
            Job::List(DirCap::Write(w)) | Job::Change(w, _) | Job::Create(w) => {
                record.open_writable(w)
            }
            Job::List(DirCap::Read(r)) => record.open(r),
            Job::List(DirCap::Verify(v)) => record.check(v).map(|()| Vec::new()),
        };
        let entries = match opened {
            Ok(entries) => entries,
            Err(e) => return Some(Err(DirOpError::Forged(e.to_string()))),
        };
        self.seen.saw(cap.storage_index, record.version);
        let (cap, change) = match &task.job {
            Job::Change(cap, change) => (cap.clone(), change.clone()),
            _ => {
                return Some(Ok(DirReply::Entries {
                    version: record.version,
                    entries,
                }))
            }
        };
        match change.apply(entries) {
            Ok(entries) => {
                self.write_record(local, &cap, Some(record.version), entries, ctx);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// A directory request past its deadline.
    pub(super) fn dir_timed_out(&mut self, local: LocalId, ctx: &mut Context<'_>) {
        let Some(task) = self.dir_tasks.remove(&local) else {
            return;
        };
        let why = match task.writing {
            Some(_) => "the vdrive server did not answer a write (it may have made it)",
            None => "the vdrive server did not answer",
        };
        dir_reply(ctx, local, Err(DirOpError::Unreachable(why.into())));
    }
}

impl DirChange {
    /// The entries after the change.
    fn apply(&self, mut entries: Vec<Entry>) -> Result<Vec<Entry>, DirOpError> {
        let find = |entries: &[Entry], name: &str| entries.iter().position(|e| e.name == name);
        match self {
            DirChange::Add { entry, replace } => match find(&entries, &entry.name) {
                Some(_) if !replace => return Err(DirOpError::AlreadyExists(entry.name.clone())),
                Some(i) => entries[i] = entry.clone(),
                None => entries.push(entry.clone()),
            },
            DirChange::Remove { name } => match find(&entries, name) {
                Some(i) => {
                    entries.remove(i);
                }
                None => return Err(DirOpError::NotFound(name.clone())),
            },
            DirChange::Rename { from, to } => {
                let i = find(&entries, from).ok_or_else(|| DirOpError::NotFound(from.clone()))?;
                if find(&entries, to).is_some() {
                    return Err(DirOpError::AlreadyExists(to.clone()));
                }
                entries[i].name = to.clone();
            }
        }
        Ok(entries)
    }
}

fn dir_reply(ctx: &mut Context<'_>, to: LocalId, result: Result<DirReply, DirOpError>) {
    ctx.reply(to, LocalResponse::Dir(result));
}
