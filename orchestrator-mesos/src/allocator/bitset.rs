//! A plain growable bitset over agent slots, with the word-at-a-time scan
//! the allocation round relies on.

use super::index::{AgentIx, Ix};

#[derive(Clone, Debug, Default)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub(crate) fn set(&mut self, a: AgentIx) {
        let i = a.ix();
        let w = i / 64;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (i % 64);
    }

    pub(crate) fn clear(&mut self, a: AgentIx) {
        let i = a.ix();
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    pub(crate) fn get(&self, a: AgentIx) -> bool {
        let i = a.ix();
        self.words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn word(&self, w: usize) -> u64 {
        self.words.get(w).copied().unwrap_or(0)
    }

    pub(crate) fn clear_all(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let mut b = BitSet::default();
        assert!(b.is_empty());
        let a = AgentIx::new;
        b.set(a(3));
        b.set(a(200));
        assert!(b.get(a(3)) && b.get(a(200)) && !b.get(a(4)) && !b.get(a(10_000)));
        assert_eq!(b.word(0), 8);
        b.clear(a(3));
        b.clear(a(100_000));
        assert!(!b.get(a(3)));
        b.clear_all();
        assert!(b.is_empty());
    }
}
