//! Prometheus exposition of the probe's own cost (for `--metrics-listen`).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::ProbeStats;

type Labels = Vec<(String, String)>;

/// The probe's counters, and each app endpoint's publisher's (labelled by
/// the app as given and the address it resolved to, empty when none), as
/// OpenMetrics text (serve it through
/// `orchestrator_core::exposition::negotiate`).
pub fn render(stats: &ProbeStats) -> String {
    let mut registry = Registry::with_prefix("probe");
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        registry.register(name, help, c);
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: f64| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(v);
        registry.register(name, help, g);
    };
    counter(&mut registry, "cycles", "Collection cycles run", get(&stats.cycles));
    counter(
        &mut registry,
        "collector_errors",
        "Collector failures",
        get(&stats.collector_errors),
    );
    counter(&mut registry, "published", "Reports published", get(&stats.published));
    gauge(
        &mut registry,
        "cpu_seconds",
        "CPU time used by the probe process",
        get(&stats.cpu_us) as f64 / 1e6,
    );
    gauge(
        &mut registry,
        "resident_memory_bytes",
        "Resident memory of the probe process",
        get(&stats.rss_bytes) as f64,
    );
    gauge(
        &mut registry,
        "cycle_seconds",
        "Duration of the last collection cycle",
        get(&stats.last_cycle_us) as f64 / 1e6,
    );
    gauge(
        &mut registry,
        "report_bytes",
        "Encoded size of the last report",
        get(&stats.last_report_bytes) as f64,
    );
    gauge(
        &mut registry,
        "report_nodes",
        "Nodes in the last full report",
        get(&stats.last_report_nodes) as f64,
    );
    let per_collector = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (name, us) in stats.collector_us.lock().iter() {
        per_collector
            .get_or_create(&vec![("collector".to_string(), (*name).to_string())])
            .set(*us as f64 / 1e6);
    }
    registry.register(
        "collector_seconds",
        "Time each collector took in the last cycle",
        per_collector,
    );
    counter(
        &mut registry,
        "refreshes_deferred",
        "Source refreshes the CPU budget deferred",
        get(&stats.deferred),
    );
    let ages = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (name, ms) in stats.source_age_ms.lock().iter() {
        ages.get_or_create(&vec![("collector".to_string(), (*name).to_string())])
            .set(*ms as f64 / 1e3);
    }
    registry.register(
        "source_age_seconds",
        "Age of each source's data at the end of the last cycle",
        ages,
    );
    let family = |registry: &mut Registry, name: &str, help: &str, f: &dyn Fn(&crate::PublishStats) -> u64| {
        let fam = Family::<Labels, Counter>::default();
        for (endpoint, s) in stats.apps.lock().iter() {
            let address = endpoint.address.map(|a| a.to_string()).unwrap_or_default();
            fam.get_or_create(&vec![
                ("app".to_string(), endpoint.url.clone()),
                ("address".to_string(), address),
            ])
            .inc_by(f(s));
        }
        registry.register(name, help, fam);
    };
    family(&mut registry, "reports_sent", "Reports an app accepted", &|s| {
        get(&s.sent)
    });
    family(
        &mut registry,
        "reports_dropped",
        "Reports dropped from a full queue",
        &|s| get(&s.dropped),
    );
    family(&mut registry, "publish_errors", "Failed publish attempts", &|s| {
        get(&s.errors)
    });
    family(&mut registry, "reports_rejected", "Reports an app refused", &|s| {
        get(&s.rejected)
    });
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn promtool_finds_nothing_to_object_to() {
        let stats = ProbeStats::default();
        stats.cycles.store(3, Ordering::Relaxed);
        stats.collector_us.lock().push(("process", 1500));
        let endpoint = crate::apps::Endpoint {
            url: "http://app-server:4040".to_string(),
            host: "app-server".to_string(),
            address: Some("10.0.0.7:4040".parse().unwrap()),
        };
        let publisher = Arc::new(crate::PublishStats::default());
        publisher.sent.store(5, Ordering::Relaxed);
        stats.apps.lock().push((endpoint, publisher));
        let om = render(&stats);
        assert!(
            om.contains(r#"probe_reports_sent_total{app="http://app-server:4040",address="10.0.0.7:4040"} 5"#),
            "{om}"
        );
        assert!(om.contains("probe_cycles_total 3"), "{om}");
        let text = orchestrator_core::exposition::to_prometheus_text(&om);
        orchestrator_testkit::promtool_check(&text, "probe metrics");
    }
}
