//! One file's holders in the ledger: (share number, node) pairs, the first few kept inline.
//!
//! The sampler walks every file's holders at every sample; with a heap list per file each
//! file costs cache misses, with the usual N shares inline the walk reads one array front to
//! back. Copies past the inline room (repairs of shares on nodes that were only down) spill
//! into a list.

use crate::churn::NodeNum;

/// Holders kept inline: room for 3-of-10 and a couple of repair copies (128 bytes a file).
const INLINE: usize = 12;

/// A share number and the node that holds it.
pub type Holder = (u8, NodeNum);

/// One file's holders, in the order they were added. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Holders {
    /// How many of `inline` are used; `more` is used only once `inline` is full.
    len: u8,
    inline: [Holder; INLINE],
    more: Vec<Holder>,
}

impl Holders {
    /// Adds a holder.
    pub fn push(&mut self, holder: Holder) {
        match usize::from(self.len) < INLINE {
            true => {
                self.inline[usize::from(self.len)] = holder;
                self.len += 1;
            }
            false => self.more.push(holder),
        }
    }

    /// Every holder, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &Holder> + '_ {
        self.inline[..usize::from(self.len)]
            .iter()
            .chain(self.more.iter())
    }

    /// How many holders there are.
    pub fn len(&self) -> usize {
        usize::from(self.len) + self.more.len()
    }

    /// Whether `holder` is one.
    pub fn contains(&self, holder: &Holder) -> bool {
        self.iter().any(|h| h == holder)
    }

    /// Keeps only the holders for which `keep` holds, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Holder) -> bool) {
        let kept: Vec<Holder> = self.iter().copied().filter(|h| keep(h)).collect();
        *self = Holders::default();
        for holder in kept {
            self.push(holder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_past_the_inline_room_and_through_removals() {
        let mut holders = Holders::default();
        let all: Vec<Holder> = (0..20u8).map(|s| (s, u32::from(s) * 3)).collect();
        for &h in &all {
            holders.push(h);
        }
        assert_eq!(holders.len(), 20);
        assert_eq!(holders.iter().copied().collect::<Vec<_>>(), all);
        assert!(holders.contains(&(15, 45)) && !holders.contains(&(15, 44)));
        holders.retain(|h| h.0 % 2 == 1);
        let odd: Vec<Holder> = all.iter().copied().filter(|h| h.0 % 2 == 1).collect();
        assert_eq!(holders.iter().copied().collect::<Vec<_>>(), odd);
        assert_eq!(holders.len(), 10);
    }
}
