//! The vdrive's namespace in memory: a tree of directories whose leaves are caps.
//!
//! Every mutation is split in two: [`Tree::check`] says whether it would succeed (and why
//! not), without changing anything; [`Tree::apply`] carries it out. The actor journals a
//! mutation between the two, so that what is in memory is never ahead of what is durable.

use super::{
    DirEntry, EntryKind, VdriveError, VdriveOp, VdriveReply, MAX_CAP_LEN, MAX_DIR_ENTRIES,
    MAX_NAME_LEN, MAX_PATH_LEN,
};
use std::collections::BTreeMap;

/// A directory: names, in byte order, to what they stand for.
type Dir = BTreeMap<String, Node>;

enum Node {
    Dir(Dir),
    File { cap: String },
}

impl Node {
    fn kind(&self) -> EntryKind {
        match self {
            Node::Dir(_) => EntryKind::Dir,
            Node::File { cap } => EntryKind::File { cap: cap.clone() },
        }
    }
}

/// The namespace: the root directory (which always exists) and all below it.
pub(super) struct Tree {
    root: Dir,
    /// Names in the whole tree (the root is not one).
    entries: usize,
    max_entries: usize,
}

impl Tree {
    /// An empty tree that will hold up to `max_entries` names.
    pub(super) fn new(max_entries: usize) -> Self {
        Tree {
            root: Dir::new(),
            entries: 0,
            max_entries,
        }
    }

    /// How many names the tree holds.
    pub(super) fn entries(&self) -> usize {
        self.entries
    }

    /// Answers a query (`List` or `Lookup`); `None` for a mutation.
    pub(super) fn query(&self, op: &VdriveOp) -> Option<Result<VdriveReply, VdriveError>> {
        match op {
            VdriveOp::List { path } => Some(self.list(path)),
            VdriveOp::Lookup { path } => Some(self.lookup(path)),
            _ => None,
        }
    }

    /// Whether `op`, a mutation, would succeed.
    pub(super) fn check(&self, op: &VdriveOp) -> Result<(), VdriveError> {
        match op {
            VdriveOp::Mkdir { path } => self.check_new(path),
            VdriveOp::Link { path, cap, replace } => self.check_link(path, cap, *replace),
            VdriveOp::Unlink { path } => self.check_unlink(path),
            VdriveOp::Rename { from, to } => self.check_rename(from, to),
            VdriveOp::List { path } | VdriveOp::Lookup { path } => Err(VdriveError::InvalidPath(
                abbreviate(path),
                "a query is not a change (this record was not written by a vdrive)".into(),
            )),
        }
    }

    /// Carries out `op`, a mutation, if it would succeed.
    pub(super) fn apply(&mut self, op: &VdriveOp) -> Result<(), VdriveError> {
        self.check(op)?;
        match op {
            VdriveOp::Mkdir { path } => self.insert(path, Node::Dir(Dir::new())),
            VdriveOp::Link { path, cap, .. } => self.insert(path, Node::File { cap: cap.clone() }),
            VdriveOp::Unlink { path } => self.remove(path).map(drop),
            VdriveOp::Rename { from, to } => {
                let node = self.remove(from)?;
                self.insert(to, node)
            }
            VdriveOp::List { .. } | VdriveOp::Lookup { .. } => Ok(()),
        }
    }

    fn list(&self, path: &str) -> Result<VdriveReply, VdriveError> {
        let dir = self.dir(&components(path)?, path)?;
        let entries = dir
            .iter()
            .map(|(name, node)| DirEntry {
                name: name.clone(),
                kind: node.kind(),
            })
            .collect();
        Ok(VdriveReply::Entries(entries))
    }

    fn lookup(&self, path: &str) -> Result<VdriveReply, VdriveError> {
        let Some((parent, name)) = split(path)? else {
            return Ok(VdriveReply::Entry(EntryKind::Dir));
        };
        let node = self.dir(&parent, path)?.get(name);
        let node = node.ok_or_else(|| VdriveError::NotFound(path.into()))?;
        Ok(VdriveReply::Entry(node.kind()))
    }

    /// Checks that a new name can be made at `path`.
    fn check_new(&self, path: &str) -> Result<(), VdriveError> {
        let Some((parent, name)) = split(path)? else {
            return Err(VdriveError::AlreadyExists("/".into()));
        };
        let dir = self.dir(&parent, path)?;
        if dir.contains_key(name) {
            return Err(VdriveError::AlreadyExists(path.into()));
        }
        check_tree_room(self.entries, self.max_entries, path)?;
        check_dir_room(dir, path)
    }

    fn check_link(&self, path: &str, cap: &str, replace: bool) -> Result<(), VdriveError> {
        check_cap(cap)?;
        let Some((parent, name)) = split(path)? else {
            return Err(exists_or_dir("/", replace));
        };
        match self.dir(&parent, path)?.get(name) {
            None => self.check_new(path),
            Some(Node::File { .. }) if replace => Ok(()),
            Some(Node::File { .. }) => Err(VdriveError::AlreadyExists(path.into())),
            Some(Node::Dir(_)) => Err(exists_or_dir(path, replace)),
        }
    }

    fn check_unlink(&self, path: &str) -> Result<(), VdriveError> {
        match self.node(path, "the root directory cannot be unlinked")? {
            Node::Dir(dir) if !dir.is_empty() => Err(VdriveError::IsADirectory(format!(
                "{path} (it is not empty: unlink what it holds first)"
            ))),
            _ => Ok(()),
        }
    }

    fn check_rename(&self, from: &str, to: &str) -> Result<(), VdriveError> {
        let moving = self.node(from, "the root directory cannot be moved")?;
        let (from_parts, to_parts) = (components(from)?, components(to)?);
        let inside = to_parts.len() > from_parts.len() && to_parts.starts_with(&from_parts);
        if inside && matches!(moving, Node::Dir(_)) {
            return Err(VdriveError::InvalidPath(
                abbreviate(to),
                format!("{from} cannot be moved into itself"),
            ));
        }
        let Some((to_name, to_parent)) = to_parts.split_last() else {
            return Err(VdriveError::AlreadyExists("/".into()));
        };
        let dir = self.dir(to_parent, to)?;
        if dir.contains_key(*to_name) {
            return Err(VdriveError::AlreadyExists(to.into()));
        }
        // A move keeps the tree's count; only a different directory gains a name.
        let from_parent = &from_parts[..from_parts.len() - 1];
        match from_parent == to_parent {
            true => Ok(()),
            false => check_dir_room(dir, to),
        }
    }

    /// The node at `path`, which must not be the root (`why_not_root` says why).
    fn node(&self, path: &str, why_not_root: &str) -> Result<&Node, VdriveError> {
        let Some((parent, name)) = split(path)? else {
            return Err(VdriveError::InvalidPath("/".into(), why_not_root.into()));
        };
        let node = self.dir(&parent, path)?.get(name);
        node.ok_or_else(|| VdriveError::NotFound(path.into()))
    }

    /// The directory at `parts` (the first components of `path`).
    fn dir(&self, parts: &[&str], path: &str) -> Result<&Dir, VdriveError> {
        let mut dir = &self.root;
        for (depth, part) in parts.iter().enumerate() {
            dir = match dir.get(*part) {
                Some(Node::Dir(child)) => child,
                Some(Node::File { .. }) => return Err(not_a_dir(&parts[..=depth], path)),
                None => return Err(VdriveError::NotFound(join(&parts[..=depth]))),
            };
        }
        Ok(dir)
    }

    fn dir_mut(&mut self, parts: &[&str], path: &str) -> Result<&mut Dir, VdriveError> {
        let mut dir = &mut self.root;
        for (depth, part) in parts.iter().enumerate() {
            dir = match dir.get_mut(*part) {
                Some(Node::Dir(child)) => child,
                Some(Node::File { .. }) => return Err(not_a_dir(&parts[..=depth], path)),
                None => return Err(VdriveError::NotFound(join(&parts[..=depth]))),
            };
        }
        Ok(dir)
    }

    /// Puts `node` at `path`, over a file if one is there.
    fn insert(&mut self, path: &str, node: Node) -> Result<(), VdriveError> {
        let (parent, name) = split(path)?.ok_or_else(|| VdriveError::AlreadyExists("/".into()))?;
        let old = self.dir_mut(&parent, path)?.insert(name.into(), node);
        if old.is_none() {
            self.entries += 1;
        }
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<Node, VdriveError> {
        let (parent, name) = split(path)?.ok_or_else(|| VdriveError::NotFound("/".into()))?;
        let node = self.dir_mut(&parent, path)?.remove(name);
        let node = node.ok_or_else(|| VdriveError::NotFound(path.into()))?;
        self.entries -= 1;
        Ok(node)
    }
}

/// The components of an absolute path (none for the root).
pub(super) fn components(path: &str) -> Result<Vec<&str>, VdriveError> {
    let invalid = |why: &str| VdriveError::InvalidPath(abbreviate(path), why.into());
    if path.len() > MAX_PATH_LEN {
        return Err(invalid(&format!("longer than {MAX_PATH_LEN} bytes")));
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| invalid("not absolute: a path starts with /"))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    for part in &parts {
        match *part {
            "" => return Err(invalid("empty component: a doubled or trailing /")),
            "." | ".." => return Err(invalid("`.` and `..` are not allowed")),
            p if p.len() > MAX_NAME_LEN => {
                return Err(invalid(&format!(
                    "a name is longer than {MAX_NAME_LEN} bytes"
                )))
            }
            p if p.contains('\0') => return Err(invalid("a name contains NUL")),
            _ => {}
        }
    }
    Ok(parts)
}

/// A path split into its parent's components and its last name (`None` for the root).
fn split(path: &str) -> Result<Option<(Vec<&str>, &str)>, VdriveError> {
    let mut parts = components(path)?;
    Ok(parts.pop().map(|name| (parts, name)))
}

fn check_cap(cap: &str) -> Result<(), VdriveError> {
    if cap.len() > MAX_CAP_LEN {
        return Err(VdriveError::InvalidCap(format!(
            "a {}-byte cap is over the {MAX_CAP_LEN}-byte limit",
            cap.len()
        )));
    }
    match cap.parse::<cairn_codec::Cap>() {
        Ok(_) => Ok(()),
        Err(e) => Err(VdriveError::InvalidCap(e.to_string())),
    }
}

// No variant says "full"; Storage is the nearest: it is the vdrive's space that ran out.

/// Checks that the tree has room for one more name.
fn check_tree_room(entries: usize, max: usize, path: &str) -> Result<(), VdriveError> {
    match entries < max {
        true => Ok(()),
        false => Err(VdriveError::Storage(format!(
            "the vdrive is full: it holds {max} names, its limit; unlink some to add {path}"
        ))),
    }
}

/// Checks that `dir` has room for one more name (`path`).
fn check_dir_room(dir: &Dir, path: &str) -> Result<(), VdriveError> {
    match dir.len() < MAX_DIR_ENTRIES {
        true => Ok(()),
        false => Err(VdriveError::Storage(format!(
            "the directory of {path} is full: it holds {MAX_DIR_ENTRIES} names, the most a \
             listing can carry; use a subdirectory"
        ))),
    }
}

/// Linking over an existing name: a file is refused without `replace`, a directory always.
fn exists_or_dir(path: &str, replace: bool) -> VdriveError {
    match replace {
        true => VdriveError::IsADirectory(path.into()),
        false => VdriveError::AlreadyExists(path.into()),
    }
}

fn not_a_dir(prefix: &[&str], path: &str) -> VdriveError {
    let prefix = join(prefix);
    match prefix == path {
        true => VdriveError::NotADirectory(prefix),
        false => VdriveError::NotADirectory(format!("{prefix} (in {path})")),
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .fold(String::new(), |path, part| path + "/" + part)
}

/// A path to quote in an error about it: cut short if it is long (it may be any size).
fn abbreviate(path: &str) -> String {
    const MAX: usize = 256;
    if path.len() <= MAX {
        return path.into();
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}
