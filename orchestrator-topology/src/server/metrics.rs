//! `GET /metrics`: the nodes' latest metrics (hosts and containers) and
//! the app's own, in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use orchestrator_core::report::TopologyKind;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::App;

type Labels = Vec<(String, String)>;
type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;

pub(super) async fn render(State(app): State<App>) -> Response {
    let text = tokio::task::spawn_blocking(move || exposition(&app))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn exposition(app: &App) -> String {
    let mut registry = Registry::with_prefix("topology");
    let c = &app.inner.counters;
    for (name, help, v) in [
        ("reports_received", "Reports taken", &c.reports),
        (
            "reports_rejected",
            "Reports refused (malformed, too large, out of sequence)",
            &c.rejected,
        ),
        ("report_bytes", "Bytes of reports received", &c.bytes),
        ("controls", "Controls sent to probes", &c.controls),
        ("renders", "Views rendered", &c.renders),
    ] {
        let counter: Counter = Counter::default();
        counter.inc_by(v.load(Ordering::Relaxed));
        registry.register(name, help, counter);
    }
    let latency = GaugeFamily::default();
    {
        let lat = app.inner.latencies.lock();
        for (what, h) in [("ingest", &lat.ingest), ("render", &lat.render)] {
            for q in [0.5, 0.99, 1.0] {
                latency
                    .get_or_create(&vec![("op".into(), what.into()), ("quantile".into(), q.to_string())])
                    .set(h.value_at_quantile(q) as f64 / 1e6);
            }
        }
    }
    registry.register("latency_seconds", "The app's own latencies", latency);
    let probes: Gauge<f64, AtomicU64> = Gauge::default();
    let nodes = GaugeFamily::default();
    let cpu = GaugeFamily::default();
    let memory = GaugeFamily::default();
    app.with_store(|s| {
        let now = crate::now_ms();
        probes.set(s.live_probes(now).count() as f64);
        for (_, p) in s.live_probes(now) {
            for (kind, t) in p.report.topologies.iter() {
                nodes
                    .get_or_create(&vec![("topology".into(), kind.as_str().into())])
                    .inc_by(t.nodes.len() as f64);
            }
            for kind in [TopologyKind::Host, TopologyKind::Container] {
                for (id, n) in &p.report.topologies.get(kind).nodes {
                    let labels = vec![
                        ("topology".to_string(), kind.as_str().to_string()),
                        ("id".to_string(), id.clone()),
                        ("host".to_string(), p.report.header.hostname.clone()),
                    ];
                    let last = |m: &str| n.metrics.get(m).and_then(|m| m.last()).map(|s| s.value);
                    if let Some(v) = last("cpu_usage_percent") {
                        cpu.get_or_create(&labels).set(v);
                    }
                    if let Some(v) = last("memory_usage_bytes") {
                        memory.get_or_create(&labels).set(v);
                    }
                }
            }
        }
    });
    registry.register("probes", "Probes reporting", probes);
    registry.register("nodes", "Nodes by topology", nodes);
    registry.register("node_cpu_usage_percent", "CPU use of hosts and containers", cpu);
    registry.register("node_memory_usage_bytes", "Memory use of hosts and containers", memory);
    let mut out = String::new();
    let _ = encode(&mut out, &registry);
    out
}
