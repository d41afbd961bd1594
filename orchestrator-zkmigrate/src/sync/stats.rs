//! The sync engine's counters, lag histogram and conflict log, and the
//! [`SyncStats`] snapshot made from them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::queue::Pending;
use super::{Conflict, ConflictPolicy, Side};
use crate::node::ZNode;

/// Conflicts kept for inspection (all are counted and logged).
const CONFLICTS_KEPT: usize = 1000;

/// Counters and lag of a running sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncStats {
    /// Node events received (both sides).
    pub events: u64,
    /// Writes applied to the other side.
    pub applied: u64,
    /// Conflicts met.
    pub conflicts: u64,
    /// Full re-reads of both trees (start, reconnects, expiries).
    pub full_reconciles: u64,
    /// Sessions that ended (expired or closed) and were replaced by new ones.
    pub sessions_renewed: u64,
    /// Paths given up on after repeated failures (retried on their next event).
    pub errors: u64,
    /// Events recognised as echoes of the engine's own writes and dropped.
    pub echoes: u64,
    /// Paths waiting or being reconciled.
    pub pending: usize,
    /// Changes measured for lag.
    pub lag_count: u64,
    /// Median lag, µs: from the change's modification time on its side to
    /// the write on the other side.
    pub lag_p50_us: u64,
    /// 99th percentile lag, µs.
    pub lag_p99_us: u64,
    /// Largest lag, µs.
    pub lag_max_us: u64,
    /// Sum of the lags measured, µs (with `lag_count`, a histogram's
    /// `_sum` and `_count`).
    pub lag_sum_us: u64,
    /// How many lags fell at or under each of [`LAG_BUCKETS_US`] (per
    /// bucket, not cumulative); one more entry for the rest.
    pub lag_buckets: Vec<u64>,
}

/// Upper bounds of the lag histogram's buckets, µs: half a millisecond to
/// ten seconds, as Prometheus histograms of latency usually are.
pub const LAG_BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// What the engine counts while it runs.
pub(super) struct Counters {
    pub events: AtomicU64,
    pub applied: AtomicU64,
    pub conflicts: AtomicU64,
    pub full_reconciles: AtomicU64,
    pub sessions_renewed: AtomicU64,
    pub errors: AtomicU64,
    pub echoes_dropped: AtomicU64,
    pub lag: Mutex<Histogram<u64>>,
    pub conflict_log: Mutex<VecDeque<Conflict>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            events: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            full_reconciles: AtomicU64::new(0),
            sessions_renewed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            echoes_dropped: AtomicU64::new(0),
            lag: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")),
            conflict_log: Mutex::new(VecDeque::new()),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn describe(n: Option<&ZNode>) -> Option<String> {
    n.map(|n| format!("{} bytes, {:?}, mtime {}", n.data.len(), n.kind, n.stat.mtime))
}

impl Counters {
    /// Counts a conflict, logs it and keeps it for inspection.
    pub(super) fn conflict(
        &self,
        rel: &str,
        s: Option<&ZNode>,
        t: Option<&ZNode>,
        winner: Option<Side>,
        policy: ConflictPolicy,
    ) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        let c = Conflict {
            path: rel.to_string(),
            source: describe(s),
            target: describe(t),
            winner,
            at_ms: now_ms(),
        };
        tracing::warn!(path = %c.path, source = ?c.source, target = ?c.target, winner = ?c.winner, ?policy, "sync conflict");
        let mut log = self.conflict_log.lock();
        if log.len() == CONFLICTS_KEPT {
            log.pop_front();
        }
        log.push_back(c);
    }

    /// Records the lag of a live change carried over: from its modification
    /// time on its side (or from its event, whichever is longer) to now.
    pub(super) fn lag(&self, from: Option<&ZNode>, pending: Pending) {
        if !pending.live {
            return;
        }
        let since = u64::try_from(pending.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let by_mtime = from
            .and_then(|n| u64::try_from(n.stat.mtime).ok())
            .map(|ms| now_us().saturating_sub(ms * 1000))
            .filter(|us| *us < 3_600_000_000);
        let lag = by_mtime.map_or(since, |m| m.max(since));
        let _ = self.lag.lock().record(lag.max(1));
    }

    /// The counters now, with `pending` paths waiting.
    pub(super) fn snapshot(&self, pending: usize) -> SyncStats {
        let lag = self.lag.lock();
        SyncStats {
            events: self.events.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            full_reconciles: self.full_reconciles.load(Ordering::Relaxed),
            sessions_renewed: self.sessions_renewed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            echoes: self.echoes_dropped.load(Ordering::Relaxed),
            pending,
            lag_count: lag.len(),
            lag_p50_us: lag.value_at_quantile(0.5),
            lag_p99_us: lag.value_at_quantile(0.99),
            lag_max_us: lag.max(),
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            lag_sum_us: (lag.mean() * lag.len() as f64) as u64,
            lag_buckets: {
                let mut buckets = vec![0; LAG_BUCKETS_US.len() + 1];
                for v in lag.iter_recorded() {
                    let i = LAG_BUCKETS_US.partition_point(|&bound| bound < v.value_iterated_to());
                    buckets[i] += v.count_at_value();
                }
                buckets
            },
        }
    }
}
