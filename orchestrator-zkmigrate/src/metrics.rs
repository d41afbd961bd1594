//! Prometheus exposition of a running sync (for `--metrics-listen`).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::sync::{SyncStats, LAG_BUCKETS_US};

/// The sync's lag as a Prometheus histogram, from the engine's own
/// (finer) one: buckets Prometheus can sum across syncs and take
/// `histogram_quantile` of, rather than precomputed quantiles.
#[derive(Debug)]
struct LagHistogram {
    sum: f64,
    count: u64,
    /// (upper bound in seconds, count in that bucket); the last is +Inf.
    buckets: Vec<(f64, u64)>,
}

impl LagHistogram {
    #[allow(clippy::cast_precision_loss)]
    fn of(stats: &SyncStats) -> Self {
        let mut buckets: Vec<(f64, u64)> = LAG_BUCKETS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain(std::iter::once(f64::MAX))
            .zip(stats.lag_buckets.iter().copied().chain(std::iter::repeat(0)))
            .collect();
        if stats.lag_buckets.is_empty() {
            // No measurement yet: every bucket empty.
            buckets.iter_mut().for_each(|b| b.1 = 0);
        }
        Self {
            sum: stats.lag_sum_us as f64 / 1e6,
            count: stats.lag_count,
            buckets,
        }
    }
}

impl EncodeMetric for LagHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The sync's counters and lag histogram (OpenMetrics text; see
/// `orchestrator_core::exposition` for the classic format).
pub fn render(stats: &SyncStats) -> String {
    let mut registry = Registry::with_prefix("zkmigrate_sync");
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        registry.register(name, help, c);
    };
    counter(
        &mut registry,
        "events",
        "Node events received from both sides",
        stats.events,
    );
    counter(
        &mut registry,
        "applied",
        "Changes written to the other side",
        stats.applied,
    );
    counter(
        &mut registry,
        "conflicts",
        "Paths changed on both sides since they last agreed",
        stats.conflicts,
    );
    counter(
        &mut registry,
        "full_reconciles",
        "Full re-reads of both trees (start, reconnect, expiry)",
        stats.full_reconciles,
    );
    counter(
        &mut registry,
        "sessions_renewed",
        "Sessions that expired or closed and were replaced",
        stats.sessions_renewed,
    );
    counter(
        &mut registry,
        "errors",
        "Paths given up on after repeated failures",
        stats.errors,
    );
    let pending: Gauge = Gauge::default();
    pending.set(i64::try_from(stats.pending).unwrap_or(i64::MAX));
    registry.register("pending", "Paths waiting to be reconciled", pending);
    registry.register(
        "lag_seconds",
        "Time from a change on one side to its write on the other",
        LagHistogram::of(stats),
    );
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_lag_histogram() {
        let mut lag_buckets = vec![0; LAG_BUCKETS_US.len() + 1];
        lag_buckets[0] = 2; // two at or under 0.5 ms
        lag_buckets[2] = 1; // one at or under 2.5 ms
        let text = render(&SyncStats {
            applied: 7,
            lag_count: 3,
            lag_sum_us: 2_900,
            lag_buckets,
            ..SyncStats::default()
        });
        assert!(text.contains("zkmigrate_sync_applied_total 7"), "{text}");
        assert!(text.contains("# TYPE zkmigrate_sync_lag_seconds histogram"), "{text}");
        assert!(
            text.contains("zkmigrate_sync_lag_seconds_bucket{le=\"0.0005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("zkmigrate_sync_lag_seconds_bucket{le=\"0.001\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("zkmigrate_sync_lag_seconds_bucket{le=\"0.0025\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("zkmigrate_sync_lag_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("zkmigrate_sync_lag_seconds_count 3"), "{text}");
        assert!(!text.contains("quantile"), "{text}");
    }
}
