//! A peer's outgoing queue: encoded frames waiting for the peer's connection to write them,
//! bounded in frames and in bytes, and drawing its bytes from a budget all the node's queues
//! share, so that slow or absent peers together cost a known amount of memory. Pushing never
//! waits: a full queue (or an exhausted budget) refuses the frame.
//!
//! The queue belongs to the peer, not to a connection, so frames sent while a connection is
//! being dialled, or swapped for another, wait for whichever connection comes up next; the
//! connection's writer holds the receiving end while it runs.

use std::sync::Arc;
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};

/// An encoded frame (length prefix included) and its share of the queue's byte budget.
pub struct Outgoing {
    pub bytes: Vec<u8>,
    _budget: OwnedSemaphorePermit,
    _shared: OwnedSemaphorePermit,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its most frames or bytes already.
    Full,
}

/// A bounded queue of frames for one peer.
pub struct Queue {
    tx: mpsc::Sender<Outgoing>,
    rx: Arc<Mutex<mpsc::Receiver<Outgoing>>>,
    budget: Arc<Semaphore>,
    shared: Arc<Semaphore>,
}

/// A byte budget for many queues ([`Queue::new`]).
pub fn shared_budget(bytes: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS)))
}

impl Queue {
    /// A queue of at most `frames` frames and `bytes` bytes, its bytes also counted against
    /// `shared`.
    pub fn new(frames: usize, bytes: usize, shared: Arc<Semaphore>) -> Queue {
        let (tx, rx) = mpsc::channel(frames.max(1));
        Queue {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            budget: shared_budget(bytes),
            shared,
        }
    }

    /// Queues `bytes`, or refuses them at once if the queue is full.
    pub fn push(&self, bytes: Vec<u8>) -> Result<(), Refused> {
        let cost = u32::try_from(bytes.len()).map_err(|_| Refused::Full)?;
        let budget = self
            .budget
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| Refused::Full)?;
        let shared = self
            .shared
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| Refused::Full)?;
        let frame = Outgoing {
            bytes,
            _budget: budget,
            _shared: shared,
        };
        self.tx.try_send(frame).map_err(|_| Refused::Full)
    }

    /// Drops every queued frame (when the peer became unreachable: they would be stale by
    /// the time it is back); returns how many there were. Does nothing while a connection's
    /// writer holds the receiving end.
    pub fn clear(&self) -> usize {
        let Ok(mut rx) = self.rx.try_lock() else {
            return 0;
        };
        let mut dropped = 0;
        while rx.try_recv().is_ok() {
            dropped += 1;
        }
        dropped
    }

    /// The receiving end, for a connection's writer to lock while it runs.
    pub fn receiver(&self) -> Arc<Mutex<mpsc::Receiver<Outgoing>>> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_frames_and_bytes_and_frees_room_as_frames_leave() {
        let queue = Queue::new(3, 100, shared_budget(1000));
        assert_eq!(queue.push(vec![0; 60]), Ok(()));
        assert_eq!(
            queue.push(vec![0; 60]),
            Err(Refused::Full),
            "over 100 bytes"
        );
        assert_eq!(queue.push(vec![0; 20]), Ok(()));
        assert_eq!(queue.push(vec![0; 10]), Ok(()));
        assert_eq!(queue.push(vec![0; 1]), Err(Refused::Full), "over 3 frames");
        let mut rx = queue.receiver().lock_owned().await;
        let first = rx.recv().await.expect("a frame");
        assert_eq!(first.bytes.len(), 60);
        drop(first);
        assert_eq!(queue.push(vec![0; 60]), Ok(()), "room again");
        drop(rx);
        assert_eq!(queue.clear(), 3);
        assert_eq!(queue.push(vec![0; 100]), Ok(()));
    }

    #[tokio::test]
    async fn queues_share_one_budget() {
        let shared = shared_budget(150);
        let (one, two) = (
            Queue::new(9, 100, shared.clone()),
            Queue::new(9, 100, shared),
        );
        assert_eq!(one.push(vec![0; 100]), Ok(()));
        assert_eq!(two.push(vec![0; 60]), Err(Refused::Full), "150 in all");
        assert_eq!(two.push(vec![0; 50]), Ok(()));
        assert_eq!(one.clear(), 1);
        assert_eq!(two.push(vec![0; 50]), Ok(()), "room again");
    }
}
