//! The work queue: paths waiting to be reconciled, sharded over workers by
//! hash so one path is only ever handled by one worker, with the events for
//! a path that is already waiting coalesced into its entry.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Side;

/// Why a path waits: since when, which side spoke last, and whether a live
/// event (rather than a full reconcile) queued it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub since: Instant,
    pub last_side: Side,
    pub live: bool,
}

#[derive(Default)]
struct ShardQueue {
    order: VecDeque<String>,
    info: HashMap<String, Pending>,
}

#[derive(Default)]
struct Shard {
    queue: Mutex<ShardQueue>,
    notify: Notify,
}

/// The shards and how many paths wait or are in progress in all of them.
pub(super) struct WorkQueue {
    shards: Vec<Shard>,
    pending: AtomicUsize,
}

impl WorkQueue {
    /// A queue of `shards` shards (one per worker).
    pub(super) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            pending: AtomicUsize::new(0),
        }
    }

    pub(super) fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Paths waiting or being reconciled.
    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Queues `rel`, or updates its entry when it already waits.
    pub(super) fn push(&self, rel: &str, side: Side, live: bool) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        rel.hash(&mut h);
        let shard = &self.shards[usize::try_from(h.finish()).unwrap_or(0) % self.shards.len()];
        let mut q = shard.queue.lock();
        if let Some(p) = q.info.get_mut(rel) {
            p.last_side = side;
            p.live |= live;
            return;
        }
        q.info.insert(
            rel.to_string(),
            Pending {
                since: Instant::now(),
                last_side: side,
                live,
            },
        );
        q.order.push_back(rel.to_string());
        self.pending.fetch_add(1, Ordering::SeqCst);
        drop(q);
        shard.notify.notify_one();
    }

    /// The next path of `shard`, if one waits; call [`done`](Self::done)
    /// when it has been handled.
    pub(super) fn pop(&self, shard: usize) -> Option<(String, Pending)> {
        let mut q = self.shards[shard].queue.lock();
        while let Some(rel) = q.order.pop_front() {
            match q.info.remove(&rel) {
                Some(p) => return Some((rel, p)),
                None => self.done(),
            }
        }
        None
    }

    /// Waits until something may have been queued on `shard`.
    pub(super) async fn wait(&self, shard: usize) {
        self.shards[shard].notify.notified().await;
    }

    /// One path handled.
    pub(super) fn done(&self) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_for_a_waiting_path_are_coalesced() {
        let q = WorkQueue::new(1);
        q.push("/a", Side::Source, false);
        q.push("/b", Side::Source, true);
        q.push("/a", Side::Target, true);
        assert_eq!(q.pending(), 2);
        let (rel, p) = q.pop(0).unwrap();
        assert_eq!((rel.as_str(), p.last_side, p.live), ("/a", Side::Target, true));
        q.done();
        let (rel, _) = q.pop(0).unwrap();
        assert_eq!(rel, "/b");
        q.done();
        assert!(q.pop(0).is_none());
        assert_eq!(q.pending(), 0);
    }
}
