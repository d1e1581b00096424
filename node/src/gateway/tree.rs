//! The node's tree: paths over directories named by caps (`docs/dirnode.md`). A path is
//! `/a/b` (under the node's root, alias `cairn`) or `ALIAS:/a/b` (under an alias of
//! `private/aliases`); each step reads a directory's record from the vdrive server, checks
//! it against its cap and follows the child's write cap where the directory holds one (its
//! read cap otherwise: below a read-only directory everything is read-only).
//!
//! The vdrive endpoints (`/vdrive/list`, `lookup`, `mkdir`, `link`, `rename`, `unlink`) are
//! served here. A change of one directory is one compare-and-swap (retried by the client
//! actor on conflict); a move between two directories adds the entry to the new one before
//! it removes it from the old, so a failure in between leaves it in both, never in neither.

use super::{unexpected, ApiError, Gateway};
use crate::api;
use crate::nodedir;
use axum::http::StatusCode;
use cairn_actors::local::{
    DirChange, DirOpError, DirReply, DirRequest, LocalRequest, LocalResponse,
};
use cairn_actors::vdrive::{EntryKind, VdriveOp, VdriveReply};
use cairn_actors::Service;
use cairn_codec::dirnode::{ChildKind, DirCap, DirWriteCap, Entry};
use cairn_codec::Cap;
use rand::rngs::OsRng;
use rand::RngCore;
use std::path::{Path, PathBuf};

/// The node's side of its tree: where its root and aliases are kept.
pub struct Tree {
    dir: PathBuf,
    root: DirWriteCap,
    /// Held while the root is being stored for the first time; true once it is.
    storing_root: tokio::sync::Mutex<bool>,
}

/// A path in the tree, split: the directory it starts from, and the names below it.
struct TreePath {
    text: String,
    base: DirCap,
    names: Vec<String>,
}

impl Tree {
    /// The tree of the node in `dir` (its root cap made if it has none).
    pub fn open(dir: &Path) -> anyhow::Result<Tree> {
        Ok(Tree {
            dir: dir.to_owned(),
            root: nodedir::ensure_root_cap(dir)?,
            storing_root: tokio::sync::Mutex::new(false),
        })
    }

    /// The roots a path may start from: `cairn` (the node's own), then the added aliases.
    pub(super) fn roots(&self) -> Result<Vec<String>, ApiError> {
        let added =
            nodedir::added_aliases(&self.dir).map_err(|e| ApiError::internal(format!("{e:#}")))?;
        let mut roots = vec![nodedir::ROOT_ALIAS.to_owned()];
        roots.extend(added.into_keys());
        Ok(roots)
    }

    fn parse(&self, text: &str) -> Result<TreePath, ApiError> {
        let (alias, rest) = match text.split_once(':') {
            Some((alias, rest)) if !alias.contains('/') => (alias, rest),
            _ => (nodedir::ROOT_ALIAS, text),
        };
        // The root needs no disk; the other aliases are read afresh (the CLI adds them).
        let base = match alias {
            nodedir::ROOT_ALIAS => DirCap::Write(self.root.clone()),
            _ => nodedir::added_aliases(&self.dir)
                .map_err(|e| ApiError::internal(format!("{e:#}")))?
                .remove(alias)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no alias {alias:?} (`cairn alias list` shows them)"),
                    )
                })?,
        };
        cairn_actors::vdrive::check_path(rest).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let names = rest
            .split('/')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(TreePath {
            text: text.to_owned(),
            base,
            names,
        })
    }
}

impl TreePath {
    fn parent(&self) -> Result<(&[String], &str), ApiError> {
        match self.names.split_last() {
            Some((last, parent)) => Ok((parent, last)),
            None => Err(ApiError::bad_request(format!(
                "{} is a root: it cannot be made, moved or removed",
                self.text
            ))),
        }
    }
}

async fn dir_op(g: &Gateway, request: DirRequest) -> Result<DirReply, DirOpError> {
    let op = async {
        let handle = g
            .node
            .request(Service::Client, LocalRequest::Dir(request))
            .await?;
        match handle.response().await? {
            LocalResponse::Dir(result) => Ok(result),
            other => Err(unexpected(&other)),
        }
    };
    match op.await {
        Ok(result) => result,
        Err(e) => Err(DirOpError::Unreachable(e.message)),
    }
}

fn dir_error(error: DirOpError, path: &str) -> ApiError {
    let status = match &error {
        DirOpError::NotFound(_) | DirOpError::NoSuchDirectory => StatusCode::NOT_FOUND,
        DirOpError::AlreadyExists(_) => StatusCode::CONFLICT,
        DirOpError::Invalid(_) => StatusCode::BAD_REQUEST,
        DirOpError::Forged(_) | DirOpError::Rollback { .. } => StatusCode::BAD_GATEWAY,
        DirOpError::Busy(_) | DirOpError::Refused(_) | DirOpError::Unreachable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let message = match error {
        DirOpError::NotFound(_) | DirOpError::NoSuchDirectory => {
            format!("no such file or directory: {path}")
        }
        DirOpError::AlreadyExists(_) => format!("already exists: {path}"),
        other => format!("{path}: {other}"),
    };
    ApiError::new(status, message)
}

/// The entries of the directory `cap`.
async fn entries(g: &Gateway, cap: &DirCap, path: &str) -> Result<Vec<Entry>, ApiError> {
    let request = DirRequest::List { cap: cap.clone() };
    match dir_op(g, request).await {
        Ok(DirReply::Entries { entries, .. }) => Ok(entries),
        Ok(other) => Err(ApiError::internal(format!("a listing answered {other:?}"))),
        Err(DirOpError::NoSuchDirectory) if is_root(g, cap) => {
            store_root(g).await?;
            Ok(Vec::new())
        }
        Err(e) => Err(dir_error(e, path)),
    }
}

fn is_root(g: &Gateway, cap: &DirCap) -> bool {
    let root = g.tree.as_ref().map(|t| t.root.verify_cap());
    root == Some(cap.verify_cap())
}

/// Stores the node's root for the first time, unless it was stored before: then the vdrive
/// server lost it, and making a new, empty one in its place would hide that.
async fn store_root(g: &Gateway) -> Result<(), ApiError> {
    let tree = g.tree.as_ref().ok_or_else(no_client)?;
    let mut stored = tree.storing_root.lock().await;
    let marker = tree.dir.join(nodedir::ROOT_STORED_FILE);
    if *stored {
        return Ok(());
    }
    if marker.exists() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the vdrive server does not have this node's root directory, which it stored \
             before: it lost it (restore the server's journal, or ask its operator)",
        ));
    }
    let cap = tree.root.clone();
    match dir_op(g, DirRequest::Create { cap }).await {
        Ok(_) | Err(DirOpError::AlreadyExists(_)) => {}
        Err(e) => return Err(dir_error(e, "/")),
    }
    nodedir::write_atomically(&marker, b"the root directory is on the vdrive server\n")
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    *stored = true;
    Ok(())
}

fn no_client() -> ApiError {
    ApiError::bad_request("this node runs no client, so it has no tree")
}

/// The directory at `names` below `base`.
async fn walk(
    g: &Gateway,
    base: &DirCap,
    names: &[String],
    text: &str,
) -> Result<DirCap, ApiError> {
    let mut cap = base.clone();
    for name in names {
        let found = entries(g, &cap, text)
            .await?
            .into_iter()
            .find(|e| &e.name == name);
        let entry = found.ok_or_else(|| dir_error(DirOpError::NotFound(name.clone()), text))?;
        if entry.kind != ChildKind::Dir {
            return Err(ApiError::bad_request(format!("not a directory: {text}")));
        }
        cap = child_cap(&entry)?;
    }
    Ok(cap)
}

/// The cap a directory entry gives: its write cap if held, else its read cap.
fn child_cap(entry: &Entry) -> Result<DirCap, ApiError> {
    let text = entry.write_cap.as_deref().unwrap_or(&entry.read_cap);
    match DirCap::parse(text) {
        Ok(Some(cap)) => Ok(cap),
        _ => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the directory {:?} holds a bad cap for it", entry.name),
        )),
    }
}

fn writable(cap: DirCap, path: &str) -> Result<DirWriteCap, ApiError> {
    match cap {
        DirCap::Write(cap) => Ok(cap),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{path} is in a read-only directory: you hold no write cap for it"),
        )),
    }
}

async fn change(
    g: &Gateway,
    cap: DirWriteCap,
    change: DirChange,
    path: &str,
) -> Result<(), ApiError> {
    match dir_op(
        g,
        DirRequest::Change {
            cap: cap.clone(),
            change: change.clone(),
        },
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(DirOpError::NoSuchDirectory) if is_root(g, &DirCap::Write(cap.clone())) => {
            store_root(g).await?;
            let retried = dir_op(g, DirRequest::Change { cap, change }).await;
            retried.map(drop).map_err(|e| dir_error(e, path))
        }
        Err(e) => Err(dir_error(e, path)),
    }
}

/// An entry as the API shows it.
pub(super) fn api_entry(entry: Entry) -> api::Entry {
    let (kind, cap, size) = match entry.kind {
        ChildKind::Dir => ("dir", None, None),
        ChildKind::File => {
            let size = entry.size.or_else(|| cap_size(&entry.read_cap));
            ("file", Some(entry.read_cap.clone()), size)
        }
    };
    let is_dir = entry.kind == ChildKind::Dir;
    api::Entry {
        name: entry.name,
        kind: kind.to_owned(),
        cap,
        size,
        mtime: entry.mtime,
        read_cap: is_dir.then_some(entry.read_cap),
        write_cap: entry.write_cap,
    }
}

/// A file's size, from its cap.
pub(super) fn cap_size(cap: &str) -> Option<u64> {
    match cap.parse::<Cap>() {
        Ok(Cap::Chk(c)) => Some(c.size),
        Ok(Cap::ChkVerifier(c)) => Some(c.size),
        Ok(Cap::Lit(c)) => Some(c.data.len() as u64),
        Ok(Cap::Dir(_)) | Err(_) => None,
    }
}

fn tree(g: &Gateway) -> Result<&Tree, ApiError> {
    g.tree.as_ref().ok_or_else(no_client)
}

pub(super) async fn list(g: &Gateway, text: &str) -> Result<Vec<api::Entry>, ApiError> {
    let path = tree(g)?.parse(text)?;
    let cap = walk(g, &path.base, &path.names, text).await?;
    let listed = entries(g, &cap, text).await?;
    Ok(listed.into_iter().map(api_entry).collect())
}

/// The entry at `text` (a root is a directory with no name).
pub(super) async fn lookup(g: &Gateway, text: &str) -> Result<api::Entry, ApiError> {
    let path = tree(g)?.parse(text)?;
    let Ok((parent, name)) = path.parent() else {
        let write_cap = match &path.base {
            DirCap::Write(w) => Some(w.to_string()),
            _ => None,
        };
        let read_cap = match &path.base {
            DirCap::Write(w) => w.read_cap().to_string(),
            other => other.to_string(),
        };
        return Ok(api::Entry {
            name: String::new(),
            kind: "dir".to_owned(),
            cap: None,
            size: None,
            mtime: None,
            read_cap: Some(read_cap),
            write_cap,
        });
    };
    let cap = walk(g, &path.base, parent, text).await?;
    let found = entries(g, &cap, text)
        .await?
        .into_iter()
        .find(|e| e.name == name);
    found
        .map(api_entry)
        .ok_or_else(|| dir_error(DirOpError::NotFound(name.to_owned()), text))
}

pub(super) async fn mkdir(g: &Gateway, text: &str) -> Result<(), ApiError> {
    let path = tree(g)?.parse(text)?;
    let (parent, name) = path.parent()?;
    let parent = writable(walk(g, &path.base, parent, text).await?, text)?;
    if entries(g, &DirCap::Write(parent.clone()), text)
        .await?
        .iter()
        .any(|e| e.name == name)
    {
        return Err(dir_error(DirOpError::AlreadyExists(name.to_owned()), text));
    }
    let mut key = [0u8; 16];
    OsRng.fill_bytes(&mut key);
    let child = DirWriteCap::from_write_key(key);
    dir_op(g, DirRequest::Create { cap: child.clone() })
        .await
        .map_err(|e| dir_error(e, text))?;
    let entry = Entry {
        name: name.to_owned(),
        kind: ChildKind::Dir,
        read_cap: child.read_cap().to_string(),
        write_cap: Some(child.to_string()),
        size: None,
        mtime: None,
    };
    let add = DirChange::Add {
        entry,
        replace: false,
    };
    change(g, parent, add, text).await
}

/// Links `cap` (a file's, or a directory's: a shared subtree) at `text`.
pub(super) async fn link(
    g: &Gateway,
    text: &str,
    cap: &str,
    replace: bool,
    mtime: Option<u64>,
) -> Result<(), ApiError> {
    let path = tree(g)?.parse(text)?;
    let (parent, name) = path.parent()?;
    let entry = match cap.parse::<Cap>() {
        Ok(Cap::Dir(dir)) => Entry {
            name: name.to_owned(),
            kind: ChildKind::Dir,
            read_cap: match &dir {
                DirCap::Write(w) => w.read_cap().to_string(),
                DirCap::Read(r) => r.to_string(),
                DirCap::Verify(_) => {
                    return Err(ApiError::bad_request(
                        "a verify cap cannot be linked: it reads nothing",
                    ))
                }
            },
            write_cap: matches!(dir, DirCap::Write(_)).then(|| dir.to_string()),
            size: None,
            mtime: None,
        },
        Ok(Cap::ChkVerifier(_)) => {
            return Err(ApiError::bad_request(
                "a verify cap cannot be linked: it reads nothing (give the file's read cap)",
            ))
        }
        Ok(_) => Entry {
            name: name.to_owned(),
            kind: ChildKind::File,
            read_cap: cap.to_owned(),
            write_cap: None,
            size: cap_size(cap),
            mtime,
        },
        Err(e) => return Err(ApiError::bad_request(format!("{cap:?} is not a cap: {e}"))),
    };
    let parent = writable(walk(g, &path.base, parent, text).await?, text)?;
    if replace {
        let listed = entries(g, &DirCap::Write(parent.clone()), text).await?;
        if listed
            .iter()
            .any(|e| e.name == name && e.kind == ChildKind::Dir)
        {
            return Err(ApiError::bad_request(format!("is a directory: {text}")));
        }
    }
    change(g, parent, DirChange::Add { entry, replace }, text).await
}

pub(super) async fn unlink(g: &Gateway, text: &str) -> Result<(), ApiError> {
    let path = tree(g)?.parse(text)?;
    let (parent, name) = path.parent()?;
    let parent = writable(walk(g, &path.base, parent, text).await?, text)?;
    let listed = entries(g, &DirCap::Write(parent.clone()), text).await?;
    let entry = listed
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| dir_error(DirOpError::NotFound(name.to_owned()), text))?;
    if entry.kind == ChildKind::Dir && !entries(g, &child_cap(&entry)?, text).await?.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("the directory {text} is not empty (rm -r removes it with what it holds)"),
        ));
    }
    let remove = DirChange::Remove {
        name: name.to_owned(),
    };
    change(g, parent, remove, text).await
}

pub(super) async fn rename(g: &Gateway, from_text: &str, to_text: &str) -> Result<(), ApiError> {
    let tree = tree(g)?;
    let (from, to) = (tree.parse(from_text)?, tree.parse(to_text)?);
    let ((from_parent, from_name), (to_parent, to_name)) = (from.parent()?, to.parent()?);
    let same_base = from.base.verify_cap() == to.base.verify_cap();
    if same_base && to.names.starts_with(&from.names) {
        return Err(ApiError::bad_request(format!(
            "cannot move {from_text} into itself ({to_text})"
        )));
    }
    let old = writable(
        walk(g, &from.base, from_parent, from_text).await?,
        from_text,
    )?;
    let new = writable(walk(g, &to.base, to_parent, to_text).await?, to_text)?;
    if old.verify_cap() == new.verify_cap() {
        let rename = DirChange::Rename {
            from: from_name.to_owned(),
            to: to_name.to_owned(),
        };
        return match change(g, old, rename, from_text).await {
            Err(e) if e.status == StatusCode::CONFLICT => Err(dir_error(
                DirOpError::AlreadyExists(to_name.to_owned()),
                to_text,
            )),
            other => other,
        };
    }
    let listed = entries(g, &DirCap::Write(old.clone()), from_text).await?;
    let mut entry = listed
        .into_iter()
        .find(|e| e.name == from_name)
        .ok_or_else(|| dir_error(DirOpError::NotFound(from_name.to_owned()), from_text))?;
    entry.name = to_name.to_owned();
    let add = DirChange::Add {
        entry,
        replace: false,
    };
    change(g, new, add, to_text).await?;
    let remove = DirChange::Remove {
        name: from_name.to_owned(),
    };
    change(g, old, remove, from_text).await
}

/// Copies the old global tree (kept by the vdrive server beside the directories) under `to`
/// in the node's tree: each directory made (or reused, if it is there already) and each file
/// linked (kept, if a file of that name is there already). Safe to run again.
pub(super) async fn import(g: &Gateway, to: &str) -> Result<api::Imported, ApiError> {
    let mut imported = api::Imported {
        directories: 0,
        files: 0,
    };
    let target = to.trim_end_matches('/');
    let mut dirs = vec![String::from("/")];
    while let Some(dir) = dirs.pop() {
        let here = match dir.as_str() {
            "/" => target.to_owned(),
            sub => format!("{target}{sub}"),
        };
        if !here.is_empty() && !here.ends_with(':') {
            match mkdir(g, &here).await {
                Ok(()) => imported.directories += 1,
                Err(e) if e.status == StatusCode::CONFLICT => {}
                Err(e) => return Err(e),
            }
        }
        let listed = match super::vdrive(g, VdriveOp::List { path: dir.clone() }).await? {
            VdriveReply::Entries(entries) => entries,
            other => return Err(ApiError::internal(format!("the vdrive answered {other:?}"))),
        };
        for entry in listed {
            let old = crate::commands::vdrive_join(&dir, &entry.name);
            match entry.kind {
                EntryKind::Dir => dirs.push(old),
                EntryKind::File { cap } => {
                    let new = format!("{target}{old}");
                    match link(g, &new, &cap, false, None).await {
                        Ok(()) => imported.files += 1,
                        Err(e) if e.status == StatusCode::CONFLICT => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(imported)
}
