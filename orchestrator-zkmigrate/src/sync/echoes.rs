//! Echo suppression: the events the engine's own writes will cause, counted
//! per side and path, so they can be dropped without reading anything.
//! ZooKeeper delivers a path's events in order and every write is
//! conditional on the version just read, so a client's change never hides
//! behind an expected echo; counts are forgotten whenever a disconnection
//! may have lost events.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::Side;

/// Expected echoes by side and path.
#[derive(Debug, Default)]
pub(super) struct Echoes(Mutex<HashMap<(Side, String), u32>>);

impl Echoes {
    /// A write about to be made at `rel` on `side` will cause `n` events.
    pub(super) fn expect(&self, side: Side, rel: &str, n: u32) {
        *self.0.lock().entry((side, rel.to_string())).or_insert(0) += n;
    }

    /// Undoes [`expect`](Self::expect) for a write that failed.
    pub(super) fn cancel(&self, side: Side, rel: &str, n: u32) {
        let mut echoes = self.0.lock();
        let key = (side, rel.to_string());
        if let Some(c) = echoes.get_mut(&key) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                echoes.remove(&key);
            }
        }
    }

    /// Whether this event is the echo of the engine's own write (and
    /// counts it off).
    pub(super) fn take(&self, side: Side, rel: &str) -> bool {
        let mut echoes = self.0.lock();
        if echoes.is_empty() {
            return false;
        }
        let key = (side, rel.to_string());
        match echoes.get_mut(&key) {
            Some(c) => {
                *c -= 1;
                if *c == 0 {
                    echoes.remove(&key);
                }
                true
            }
            None => false,
        }
    }

    /// Forgets every echo expected on `side` (its events may be lost).
    pub(super) fn forget(&self, side: Side) {
        self.0.lock().retain(|(s, _), _| *s != side);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_counted_off_per_side_and_path() {
        let e = Echoes::default();
        e.expect(Side::Target, "/a", 2);
        assert!(!e.take(Side::Source, "/a"));
        assert!(e.take(Side::Target, "/a"));
        e.cancel(Side::Target, "/a", 1);
        assert!(!e.take(Side::Target, "/a"));
        e.expect(Side::Source, "/b", 1);
        e.forget(Side::Source);
        assert!(!e.take(Side::Source, "/b"));
    }
}
