//! The balancer's own state, for health checks and Prometheus: whether it
//! has read the scheduler's apps (and when it last did), and each service
//! port's counters.
//!
//! A balancer that cannot reach the scheduler keeps balancing over the
//! backends it last read (tasks rarely all move at once), so it stays
//! *alive*; it is *ready* once it has read the apps at all. Health checks
//! should therefore restart it on the first, and route to it on the
//! second (`lb --status-listen`: `/health`, marathon-lb's
//! `/_haproxy_health_check`, `/ready`, `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::proxy::PortStats;
use super::services::Services;

/// How the balancer's reading of the scheduler goes.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// When the apps were last read, ms since the epoch (0: never).
    read_at_ms: AtomicU64,
    /// Reads that failed.
    failures: AtomicU64,
    last_error: Mutex<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl SyncStatus {
    pub(crate) fn read(&self) {
        self.read_at_ms.store(now_ms(), Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            e.clear();
        }
    }

    pub(crate) fn failed(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            error.clone_into(&mut e);
        }
    }

    /// How long ago the apps were last read; `None` before the first read.
    pub fn read_ago(&self) -> Option<Duration> {
        match self.read_at_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// Reads that failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the last read failed, if the last read failed.
    pub fn last_error(&self) -> Option<String> {
        let e = self.last_error.lock().map(|e| e.clone()).unwrap_or_default();
        (!e.is_empty()).then_some(e)
    }
}

/// The balancer's metrics as OpenMetrics text: per service port the
/// connections accepted, proxied, failed (no backend took them) and the
/// backend attempts passed over, the backends each port has, and the
/// scheduler reads.
pub fn render_metrics(services: &Services, ports: &[(u16, Arc<PortStats>)], status: &SyncStatus) -> String {
    type Labels = Vec<(String, String)>;
    let mut registry = Registry::with_prefix("lb");
    let port_label = |port: u16| vec![("port".to_string(), port.to_string())];
    let per_port = |registry: &mut Registry, name: &str, help: &str, f: &dyn Fn(&PortStats) -> u64| {
        let family = Family::<Labels, Counter>::default();
        for (port, stats) in ports {
            family.get_or_create(&port_label(*port)).inc_by(f(stats));
        }
        registry.register(name, help, family);
    };
    per_port(
        &mut registry,
        "connections_accepted",
        "Connections accepted on a service port",
        &|s| s.accepted.load(Ordering::Relaxed),
    );
    per_port(
        &mut registry,
        "connections_proxied",
        "Connections that reached a backend",
        &|s| s.proxied.load(Ordering::Relaxed),
    );
    per_port(
        &mut registry,
        "connections_failed",
        "Connections no backend took",
        &|s| s.failed.load(Ordering::Relaxed),
    );
    per_port(
        &mut registry,
        "backend_attempts_skipped",
        "Backend connection attempts that failed and were passed over",
        &|s| s.skipped.load(Ordering::Relaxed),
    );
    let backends = Family::<Labels, Gauge>::default();
    for service in services.values() {
        let labels = vec![
            ("app".to_string(), service.app_id.clone()),
            ("port".to_string(), service.service_port.to_string()),
        ];
        backends
            .get_or_create(&labels)
            .set(i64::try_from(service.backends.len()).unwrap_or(i64::MAX));
    }
    registry.register("backends", "Running, healthy tasks behind a service port", backends);
    let failures: Counter = Counter::default();
    failures.inc_by(status.failures());
    registry.register(
        "scheduler_reads_failed",
        "Reads of the scheduler's apps that failed",
        failures,
    );
    let read_at = Gauge::<f64, AtomicU64>::default();
    read_at.set(status.read_at_ms.load(Ordering::Relaxed) as f64 / 1e3);
    registry.register(
        "scheduler_last_read_timestamp_seconds",
        "When the scheduler's apps were last read (0: never)",
        read_at,
    );
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}
