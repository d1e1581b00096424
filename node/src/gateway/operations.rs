//! Operations a client can cancel. An HTTP server does not reliably notice a client that
//! left once the request's body is read, so a client names its upload
//! (`X-Cairn-Operation: ID`, an id it made up) and cancels it by name
//! (`POST /operations/cancel?id=ID`) when its user presses Ctrl-C: the node then aborts the
//! upload's shares on every server at once, rather than finish an upload nobody waits for.

use cairn_actors::local::LocalId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The header that names an operation.
pub const OPERATION_HEADER: &str = "x-cairn-operation";
/// The longest operation id accepted.
const MAX_ID_LEN: usize = 64;
/// The most operations tracked at once, and the most cancellations remembered for operations
/// that had not started (the oldest are forgotten first).
const MAX_RUNNING: usize = 1024;
const MAX_CANCELLED: usize = 256;

/// The named operations of one gateway.
#[derive(Default)]
pub struct Operations {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, LocalId>,
    /// Cancelled before they started (the body still arriving): refused when they start.
    cancelled: VecDeque<String>,
}

/// An operation id from a request's header, if it has a usable one.
pub fn operation_id(value: Option<&str>) -> Option<String> {
    let id = value?.trim();
    let usable = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    usable.then(|| id.to_owned())
}

impl Operations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that operation `id` is local request `local`; false if it was cancelled
    /// already (then it must not start).
    pub fn started(&self, id: &str, local: LocalId) -> bool {
        let mut inner = self.lock();
        if let Some(at) = inner.cancelled.iter().position(|c| c == id) {
            inner.cancelled.remove(at);
            return false;
        }
        if inner.running.len() < MAX_RUNNING {
            inner.running.insert(id.to_owned(), local);
        }
        true
    }

    /// Whether operation `id` was cancelled before it started.
    pub fn cancelled_before_start(&self, id: &str) -> bool {
        self.lock().cancelled.iter().any(|c| c == id)
    }

    pub fn ended(&self, id: &str) {
        self.lock().running.remove(id);
    }

    /// Cancels operation `id`: the local request to cancel, if it is running.
    pub fn cancel(&self, id: &str) -> Option<LocalId> {
        let mut inner = self.lock();
        if let Some(local) = inner.running.remove(id) {
            return Some(local);
        }
        if inner.cancelled.len() >= MAX_CANCELLED {
            inner.cancelled.pop_front();
        }
        inner.cancelled.push_back(id.to_owned());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_cancelled_before_it_starts_never_starts_and_ids_are_checked() {
        let ops = Operations::default();
        assert_eq!(ops.cancel("early"), None);
        assert!(ops.cancelled_before_start("early"));
        assert!(!ops.started("early", LocalId(1)), "cancelled first");
        assert!(ops.started("late", LocalId(2)));
        assert_eq!(ops.cancel("late"), Some(LocalId(2)));
        assert_eq!(operation_id(Some(" abc-123 ")), Some("abc-123".into()));
        for bad in ["", "a b", "x;y", &"a".repeat(65)] {
            assert_eq!(operation_id(Some(bad)), None, "{bad:?}");
        }
    }
}
