//! `GET /metrics`: the nodes' latest metrics (hosts and containers) and
//! the app's own, in the format the scraper asks for (OpenMetrics for
//! Prometheus, the classic text format otherwise).
//!
//! The app's latencies and its HTTP requests are histograms and counters,
//! not precomputed quantiles: Prometheus sums histograms across replicas
//! (`histogram_quantile(0.99, sum by (le) (rate(…_bucket[1m])))`), which is
//! what a canary analysis of several app servers needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orchestrator_core::exposition::negotiate;
use orchestrator_core::report::TopologyKind;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::App;

type Labels = Vec<(String, String)>;
type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Bucket bounds in seconds: half a millisecond to ten seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The app's own instruments, kept for its life and registered (cheap
/// clones of the same counters) into each scrape's registry.
pub(crate) struct Instruments {
    /// `topology_latency_seconds{op="ingest"|"render"}`.
    latency: HistogramFamily,
    /// `topology_http_requests_total{method, code}`.
    requests: Family<Labels, Counter>,
    /// `topology_http_request_duration_seconds{method}`: until the
    /// response head (a WebSocket's handshake, a stream's first byte).
    request_seconds: HistogramFamily,
}

impl Default for Instruments {
    fn default() -> Self {
        Self {
            latency: Family::new_with_constructor(histogram),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(histogram),
        }
    }
}

impl Instruments {
    /// Records one ingest or render (`op`) that took `seconds`.
    pub(crate) fn latency(&self, op: &str, seconds: f64) {
        self.latency
            .get_or_create(&vec![("op".to_string(), op.to_string())])
            .observe(seconds);
    }
}

/// Middleware: counts every request by method and status code and times it.
pub(super) async fn observe_http(State(app): State<App>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let i = &app.inner.instruments;
    i.request_seconds
        .get_or_create(&vec![("method".to_string(), method.clone())])
        .observe(started.elapsed().as_secs_f64());
    i.requests
        .get_or_create(&vec![
            ("method".to_string(), method),
            ("code".to_string(), response.status().as_u16().to_string()),
        ])
        .inc();
    response
}

pub(super) async fn render(State(app): State<App>, headers: HeaderMap) -> Response {
    let text = tokio::task::spawn_blocking(move || exposition(&app))
        .await
        .unwrap_or_default();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = negotiate(accept, text);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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
    let i = &app.inner.instruments;
    registry.register(
        "latency_seconds",
        "The app's own latencies: decoding and merging a report (op=ingest), rendering a view (op=render)",
        i.latency.clone(),
    );
    registry.register(
        "http_requests",
        "HTTP requests answered, by method and status code",
        i.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer an HTTP request (to the response head)",
        i.request_seconds.clone(),
    );
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
