//! What one framework (in one role) holds on one agent.
//!
//! Kept as the chunks it was given, merged only when a give-back does not
//! match a chunk: a declined offer or a finished task returns exactly what
//! was handed out, so the common path never merges ranges.

use orchestrator_core::Resources;

#[derive(Debug, Default)]
pub(crate) struct Holdings {
    /// Never empty chunks.
    chunks: Vec<Resources>,
}

impl Holdings {
    pub(crate) fn of(resources: Resources) -> Self {
        let mut h = Self::default();
        h.add(resources);
        h
    }

    pub(crate) fn add(&mut self, resources: Resources) {
        if !resources.is_empty() {
            self.chunks.push(resources);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Everything held, as one collection.
    pub(crate) fn total(&self) -> Resources {
        let mut total = Resources::new();
        for c in &self.chunks {
            total += c;
        }
        total
    }

    fn consolidate(&mut self) -> Resources {
        let total = self.total();
        self.chunks.clear();
        total
    }

    /// Takes back what of `wanted` is held (never more) and returns it.
    pub(crate) fn take(&mut self, wanted: &Resources) -> Resources {
        if let Some(pos) = self.chunks.iter().position(|c| c == wanted) {
            return self.chunks.swap_remove(pos);
        }
        let total = self.consolidate();
        let returned = &total - &(&total - wanted);
        self.add(&total - &returned);
        returned
    }

    /// Replaces `from` by `to`; `None` (and no change) when `from` is not held.
    pub(crate) fn replace(&mut self, from: &Resources, to: &Resources) -> Option<()> {
        let total = self.total();
        let rest = total.checked_sub(from).ok()?;
        self.chunks.clear();
        self.add(rest);
        self.add(to.clone());
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
}
