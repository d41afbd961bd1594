//! Typed slot indices and the tables they index.
//!
//! The allocator keeps agents, frameworks, *role clients* (a framework in
//! one of its roles) and roles in flat tables and refers to them by index,
//! so bitsets and per-round arrays stay plain arrays. Each kind of index is
//! its own type ([`AgentIx`], [`FrameworkIx`], [`ClientIx`], [`RoleIx`]):
//! an agent's index cannot be used where a client's is meant, and the
//! compiler says so. They cost nothing at run time.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// An index into one kind of table.
pub(crate) trait Ix: Copy + Eq + fmt::Debug {
    fn new(i: usize) -> Self;
    fn ix(self) -> usize;
}

macro_rules! typed_index {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(usize);

        impl Ix for $name {
            #[inline]
            fn new(i: usize) -> Self {
                Self(i)
            }
            #[inline]
            fn ix(self) -> usize {
                self.0
            }
        }
    };
}

typed_index!(
    /// An agent's slot: also its bit in the availability and filter bitsets.
    AgentIx
);
typed_index!(
    /// A framework's slot.
    FrameworkIx
);
typed_index!(
    /// A role client's slot: a framework in one of its roles, what DRF
    /// sorts within a role.
    ClientIx
);
typed_index!(
    /// A role in the role tree; a child's index is larger than its parent's.
    RoleIx
);

/// A vector indexed by `I` only.
#[derive(Clone)]
pub(crate) struct IxVec<I, T> {
    items: Vec<T>,
    _ix: PhantomData<fn(I)>,
}

impl<I: Ix, T: fmt::Debug> fmt::Debug for IxVec<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

impl<I, T> Default for IxVec<I, T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            _ix: PhantomData,
        }
    }
}

impl<I: Ix, T> IxVec<I, T> {
    pub(crate) fn from_vec(items: Vec<T>) -> Self {
        Self {
            items,
            _ix: PhantomData,
        }
    }

    /// `n` copies of `value`.
    pub(crate) fn filled(value: T, n: usize) -> Self
    where
        T: Clone,
    {
        Self::from_vec(vec![value; n])
    }

    /// `n` values made by `make`.
    pub(crate) fn with(n: usize, make: impl FnMut() -> T) -> Self {
        Self::from_vec(std::iter::repeat_with(make).take(n).collect())
    }

    /// Appends `value` and returns its index.
    pub(crate) fn push(&mut self, value: T) -> I {
        self.items.push(value);
        I::new(self.items.len() - 1)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub(crate) fn get(&self, i: I) -> Option<&T> {
        self.items.get(i.ix())
    }

    /// The value at `i`, made with `make` (and every one before it) if
    /// the vector is shorter.
    pub(crate) fn get_or_grow(&mut self, i: I, make: impl FnMut() -> T) -> &mut T {
        if self.items.len() <= i.ix() {
            self.items.resize_with(i.ix() + 1, make);
        }
        &mut self.items[i.ix()]
    }

    /// Every index, in order.
    pub(crate) fn indices(&self) -> impl DoubleEndedIterator<Item = I> + Clone {
        (0..self.items.len()).map(I::new)
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Every value with its index.
    pub(crate) fn iter_enumerated(&self) -> impl Iterator<Item = (I, &T)> {
        self.items.iter().enumerate().map(|(i, v)| (I::new(i), v))
    }
}

impl<I: Ix, T> Index<I> for IxVec<I, T> {
    type Output = T;
    #[inline]
    fn index(&self, i: I) -> &T {
        &self.items[i.ix()]
    }
}

impl<I: Ix, T> IndexMut<I> for IxVec<I, T> {
    #[inline]
    fn index_mut(&mut self, i: I) -> &mut T {
        &mut self.items[i.ix()]
    }
}

/// A table whose freed slots are reused, so indices into bitsets stay
/// dense: `slots[i]` is `None` for a free slot.
pub(crate) struct Slots<I, T> {
    slots: IxVec<I, Option<T>>,
    free: Vec<I>,
}

impl<I: Ix, T: fmt::Debug> fmt::Debug for Slots<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("slots", &self.slots)
            .field("free", &self.free)
            .finish()
    }
}

impl<I, T> Default for Slots<I, T> {
    fn default() -> Self {
        Self {
            slots: IxVec::default(),
            free: Vec::new(),
        }
    }
}

impl<I: Ix, T> Slots<I, T> {
    /// Puts `value` in a freed slot or a new one and returns its index.
    pub(crate) fn insert(&mut self, value: T) -> I {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(value);
                i
            }
            None => self.slots.push(Some(value)),
        }
    }

    /// Frees slot `i`, returning what it held.
    pub(crate) fn remove(&mut self, i: I) -> Option<T> {
        let value = self.slots.items.get_mut(i.ix())?.take();
        if value.is_some() {
            self.free.push(i);
        }
        value
    }

    #[inline]
    pub(crate) fn get(&self, i: I) -> Option<&T> {
        self.slots.items.get(i.ix())?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: I) -> Option<&mut T> {
        self.slots.items.get_mut(i.ix())?.as_mut()
    }

    /// How many slots there are, free ones included: one past the largest index.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The occupied slots with their indices.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.slots
            .iter_enumerated()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
    }

    /// The occupied slots.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_and_typed_vectors_index_by_their_type() {
        let mut slots: Slots<AgentIx, &str> = Slots::default();
        let a = slots.insert("a");
        let b = slots.insert("b");
        assert_eq!((a.ix(), b.ix()), (0, 1));
        assert_eq!(slots.remove(a), Some("a"));
        assert_eq!(slots.remove(a), None, "a slot is freed once");
        assert!(slots.get(a).is_none());
        let c = slots.insert("c");
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(slots.capacity(), 2);
        assert_eq!(
            slots.iter().map(|(i, v)| (i.ix(), *v)).collect::<Vec<_>>(),
            [(0, "c"), (1, "b")]
        );
        assert!(slots.remove(AgentIx::new(7)).is_none());

        let mut v: IxVec<RoleIx, u32> = IxVec::filled(0, 2);
        v[RoleIx::new(1)] += 5;
        *v.get_or_grow(RoleIx::new(3), || 9) += 1;
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), [0, 5, 9, 10]);
        assert_eq!(v.indices().next_back(), Some(RoleIx::new(3)));
    }
}
