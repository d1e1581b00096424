//! The event queue: what happens next, ordered by (virtual time, sequence number).
//!
//! The sequence number breaks ties in the order events were scheduled, which is what makes
//! a run deterministic. The heap holds only small keys; the events themselves (messages may
//! carry blocks of hundreds of KiB) sit still in a slab, so sifting the heap never moves them.
//! It is a 4-ary heap: a large run keeps hundreds of thousands of events waiting, and half
//! the levels of a binary heap is half the cache misses per pop.

use cairn_actors::Time;
use dary_heap::QuaternaryHeap;
use std::cmp::Reverse;

/// A priority queue of `T`s by time, first scheduled first among equals.
pub struct Agenda<T> {
    heap: QuaternaryHeap<Reverse<(Time, u64, u32)>>,
    slab: Vec<Option<T>>,
    free: Vec<u32>,
    next_seq: u64,
}

impl<T> Default for Agenda<T> {
    fn default() -> Self {
        Agenda {
            heap: QuaternaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
        }
    }
}

impl<T> Agenda<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `item` at `at`; returns its sequence number.
    pub fn push(&mut self, at: Time, item: T) -> u64 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(item);
                slot
            }
            None => {
                self.slab.push(Some(item));
                (self.slab.len() - 1) as u32
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((at, seq, slot)));
        seq
    }

    /// Takes the earliest item, with its time.
    pub fn pop(&mut self) -> Option<(Time, T)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        let item = self.slab[slot as usize].take()?;
        Some((at, item))
    }

    /// The next item, and a guess at the one after it (the earliest of the next one's
    /// children in the heap; an item pushed meanwhile may come first): for prefetching.
    pub fn upcoming(&self) -> (Option<&T>, Option<&T>) {
        let heap = self.heap.as_slice();
        let item = |i: usize| {
            let Reverse((_, _, slot)) = heap.get(i)?;
            self.slab.get(*slot as usize)?.as_ref()
        };
        let children = heap.get(1..heap.len().min(5)).unwrap_or(&[]);
        let after = children.iter().enumerate().max_by_key(|(_, key)| *key);
        (item(0), after.and_then(|(i, _)| item(i + 1)))
    }

    /// When the earliest item is due.
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// How many items are waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_by_scheduling_order() {
        let mut agenda = Agenda::new();
        agenda.push(Time(5), "c");
        agenda.push(Time(1), "a");
        agenda.push(Time(5), "d");
        agenda.push(Time(2), "b");
        let order: Vec<_> = std::iter::from_fn(|| agenda.pop()).collect();
        assert_eq!(
            order,
            vec![
                (Time(1), "a"),
                (Time(2), "b"),
                (Time(5), "c"),
                (Time(5), "d")
            ]
        );
        agenda.push(Time(9), "e");
        assert_eq!(agenda.len(), 1);
        assert_eq!(agenda.slab.len(), 4, "slots are reused");
    }

    #[test]
    fn upcoming_names_the_next_two_items_while_nothing_is_pushed() {
        let mut agenda = Agenda::new();
        assert_eq!(agenda.upcoming(), (None, None));
        for (t, name) in [(7, "g"), (3, "c"), (9, "i"), (1, "a"), (5, "e"), (2, "b")] {
            agenda.push(Time(t), name);
        }
        while let (Some(&next), after) = agenda.upcoming() {
            let after = after.copied();
            assert_eq!(agenda.pop().map(|(_, item)| item), Some(next));
            assert_eq!(agenda.upcoming().0.copied(), after);
        }
        assert_eq!(agenda.len(), 0);
    }
}
