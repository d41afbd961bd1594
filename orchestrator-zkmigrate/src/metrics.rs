//! Prometheus exposition of a running sync (for `--metrics-listen`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::sync::SyncStats;

/// The sync's counters and lag quantiles in the Prometheus text format.
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
        "errors",
        "Paths given up on after repeated failures",
        stats.errors,
    );
    let pending: Gauge = Gauge::default();
    pending.set(i64::try_from(stats.pending).unwrap_or(i64::MAX));
    registry.register("pending", "Paths waiting to be reconciled", pending);
    let lag = Family::<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (q, us) in [
        ("0.5", stats.lag_p50_us),
        ("0.99", stats.lag_p99_us),
        ("1", stats.lag_max_us),
    ] {
        #[allow(clippy::cast_precision_loss)]
        lag.get_or_create(&vec![("quantile".to_string(), q.to_string())])
            .set(us as f64 / 1e6);
    }
    registry.register(
        "lag_seconds",
        "Time from a change on one side to its write on the other",
        lag,
    );
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_lag_quantiles() {
        let text = render(&SyncStats {
            applied: 7,
            lag_p99_us: 2500,
            ..SyncStats::default()
        });
        assert!(text.contains("zkmigrate_sync_applied_total 7"), "{text}");
        assert!(
            text.contains("zkmigrate_sync_lag_seconds{quantile=\"0.99\"} 0.0025"),
            "{text}"
        );
    }
}
