//! What one framework (in one role) holds on one agent.
//!
//! Kept as the chunks it was given, merged only when a give-back does not
//! match a chunk: a declined offer or a finished task returns exactly what
//! was handed out, so the common path never merges ranges. The first chunk
//! is held inline, so the usual single holding costs no extra allocation.

use orchestrator_core::Resources;

#[derive(Debug, Default)]
pub(crate) struct Holdings {
    /// Empty only when everything is.
    first: Resources,
    /// Further non-empty chunks.
    more: Vec<Resources>,
}

impl Holdings {
    pub(crate) fn of(resources: Resources) -> Self {
        Self {
            first: resources,
            more: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, resources: Resources) {
        if resources.is_empty() {
            return;
        }
        if self.first.is_empty() {
            self.first = resources;
        } else {
            self.more.push(resources);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    fn chunks(&self) -> impl Iterator<Item = &Resources> {
        std::iter::once(&self.first).chain(&self.more)
    }

    /// Everything held, as one collection.
    pub(crate) fn total(&self) -> Resources {
        let mut total = Resources::new();
        for c in self.chunks() {
            total += c;
        }
        total
    }

    fn set(&mut self, resources: Resources) {
        self.first = resources;
        self.more.clear();
    }

    /// Takes back what of `wanted` is held (never more) and returns it.
    pub(crate) fn take(&mut self, wanted: &Resources) -> Resources {
        if self.first == *wanted {
            let taken = std::mem::take(&mut self.first);
            if let Some(next) = self.more.pop() {
                self.first = next;
            }
            return taken;
        }
        if let Some(pos) = self.more.iter().position(|c| c == wanted) {
            return self.more.swap_remove(pos);
        }
        let total = self.total();
        let returned = &total - &(&total - wanted);
        self.set(&total - &returned);
        returned
    }

    /// Replaces `from` by `to`; `None` (and no change) when `from` is not held.
    pub(crate) fn replace(&mut self, from: &Resources, to: &Resources) -> Option<()> {
        let rest = self.total().checked_sub(from).ok()?;
        self.set(rest);
        self.add(to.clone());
        if self.first.is_empty() {
            if let Some(next) = self.more.pop() {
                self.first = next;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Resources {
        s.parse().unwrap()
    }

    #[test]
    fn exact_chunks_come_back_without_merging_and_others_are_cut() {
        let mut h = Holdings::of(r("cpus:1;ports:[1-2]"));
        h.add(r("cpus:2;ports:[5-6]"));
        assert_eq!(h.take(&r("cpus:2;ports:[5-6]")), r("cpus:2;ports:[5-6]"));
        assert_eq!(h.total(), r("cpus:1;ports:[1-2]"));
        // More than held: only what is held comes back.
        assert_eq!(h.take(&r("cpus:5;ports:[2-3]")), r("cpus:1;ports:[2-2]"));
        assert_eq!(h.total(), r("ports:[1-1]"));
        assert!(h.replace(&r("cpus:1"), &r("cpus:1")).is_none());
        assert!(h.replace(&r("ports:[1-1]"), &r("disk:1")).is_some());
        assert_eq!(h.total(), r("disk:1"));
        assert_eq!(h.take(&r("disk:1")), r("disk:1"));
        assert!(h.is_empty());
    }

    #[test]
    fn taking_the_first_chunk_promotes_the_next() {
        let mut h = Holdings::of(r("cpus:1"));
        h.add(r("mem:10"));
        h.add(r("disk:5"));
        assert_eq!(h.take(&r("cpus:1")), r("cpus:1"));
        assert!(!h.is_empty());
        assert_eq!(h.total(), r("mem:10;disk:5"));
        assert_eq!(h.take(&r("mem:10;disk:5")), r("mem:10;disk:5"));
        assert!(h.is_empty());
    }
}
