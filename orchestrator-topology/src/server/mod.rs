//! The app server: probes post reports and hold a control socket; people
//! and tools read views, search, follow live diffs and run controls.
//!
//! One [`App`] holds the [`ReportStore`] behind a lock. Reports are decoded
//! before the lock is taken, so the write section is only the incremental
//! merge; views render on blocking threads from a read lock and are cached
//! per store generation, so many readers of the same view cost one render.
//! Replaced reports and renders are dropped on a thread of their own, off
//! the request path (freeing a 500-node report is slower than merging it,
//! and freeing a 100,000-node render takes as long as making it).

mod api;
mod auth;
mod controls;
mod live;
mod metrics;
mod openapi;
mod replicas;
mod tls;
mod ui;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use orchestrator_core::report::{Limits, Report};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use serde_json::json;
use tokio::sync::watch;

pub use auth::{Role, Token, Tokens};
pub use controls::AuditEntry;
pub use tls::TlsListener;
pub use ui::built as ui_built;

use crate::error::{Result, TopologyError};
use crate::search::FilterStore;
use crate::store::{ReportStore, StoreConfig};
use crate::views::{render, Filters, Rendered, View};

/// What the app server runs with.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Windows and ages of the store.
    pub store: StoreConfig,
    /// How often stale data is dropped (`--cleanup-interval`, 5 m).
    pub cleanup_interval: Duration,
    /// Who may do what; empty runs open (on loopback only).
    pub tokens: Tokens,
    /// Refuse every control.
    pub read_only: bool,
    /// Only these controls run (all when `None`).
    pub allowed_controls: Option<BTreeSet<String>>,
    /// Append the audit log (JSON lines) here.
    pub audit_log: Option<PathBuf>,
    /// Keep saved filters here (`filters.json`).
    pub data_dir: Option<PathBuf>,
    /// Keep saved filters in a store the replicas of this app share
    /// (ZooKeeper with `--zk`) instead, so a filter saved on one is
    /// listed by all.
    pub shared: Option<SharedStore>,
    /// Origins allowed by CORS (none: no CORS headers).
    pub cors_origins: Vec<String>,
    /// Size limits of reports.
    pub limits: Limits,
    /// What registered agents are told to use.
    pub publish_interval: Duration,
    /// How long a control waits for its probe's answer.
    pub control_timeout: Duration,
    /// Reports decoded at once (`--max-concurrent-reports`); more wait,
    /// their bodies unread, so memory for reports stays bounded.
    pub max_concurrent_reports: usize,
    /// A live view's client that takes longer than this to take one
    /// message is disconnected (it reconnects to a reset), so a client
    /// that never reads holds no renders.
    pub ws_send_timeout: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            cleanup_interval: Duration::from_secs(300),
            tokens: Tokens::default(),
            read_only: false,
            allowed_controls: None,
            audit_log: None,
            data_dir: None,
            shared: None,
            cors_origins: Vec::new(),
            limits: Limits::default(),
            publish_interval: Duration::from_secs(15),
            control_timeout: Duration::from_secs(30),
            max_concurrent_reports: 2 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ws_send_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`StateStore`](orchestrator_core::StateStore) the replicas of one app share.
#[derive(Clone)]
pub struct SharedStore(pub Arc<dyn orchestrator_core::StateStore>);

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

/// Counters the app keeps about itself.
#[derive(Debug, Default)]
pub struct Counters {
    /// Reports taken.
    pub reports: AtomicU64,
    /// Reports refused (malformed, too large, out of sequence).
    pub rejected: AtomicU64,
    /// Bytes of reports received.
    pub bytes: AtomicU64,
    /// Controls run.
    pub controls: AtomicU64,
    /// Renders done (cache misses).
    pub renders: AtomicU64,
}

/// Latency histograms of the app's own work (µs).
#[derive(Debug)]
pub struct Latencies {
    /// Decoding and merging one report.
    pub ingest: hdrhistogram::Histogram<u64>,
    /// Rendering one view.
    pub render: hdrhistogram::Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        let h = || hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds");
        Self {
            ingest: h(),
            render: h(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: AppConfig,
    pub(crate) store: RwLock<ReportStore>,
    /// Default-filter renders by view, with the generation they are of.
    cache: Mutex<FxHashMap<View, Arc<Rendered>>>,
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) agents: Mutex<api::Agents>,
    pub(crate) filters: Mutex<FilterStore>,
    pub(crate) controls: controls::Controls,
    pub(crate) counters: Counters,
    pub(crate) latencies: Mutex<Latencies>,
    /// What `/metrics` exports of the app itself.
    pub(crate) instruments: metrics::Instruments,
    /// Permits to decode a report (`max_concurrent_reports`).
    ingest_permits: Arc<tokio::sync::Semaphore>,
    /// Replaced reports and renders, freed on a thread of their own.
    garbage: std::sync::mpsc::Sender<Garbage>,
}

/// What the dropper thread frees: a 100,000-node render or a replaced
/// report takes longer to free than to make, so requests never wait on it.
#[allow(dead_code)] // Held only to be dropped.
enum Garbage {
    Report(Box<Report>),
    Rendered(Arc<Rendered>),
}

/// The app: cheap to clone, shared by every handler.
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    /// Builds the app (loading saved filters and opening the audit log).
    ///
    /// # Errors
    /// When the saved filters or the audit log cannot be opened.
    pub fn new(config: AppConfig) -> Result<App> {
        let filters = FilterStore::open(config.data_dir.as_ref().map(|d| d.join("filters.json")))?;
        let controls = controls::Controls::new(config.audit_log.clone())?;
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("report-drop".into())
            .spawn(move || {
                for garbage in rx {
                    drop(garbage);
                }
            })
            .map_err(|e| TopologyError::Io {
                what: "starting the report dropper".into(),
                source: e,
            })?;
        Ok(App {
            inner: Arc::new(Inner {
                store: RwLock::new(ReportStore::new(config.store)),
                ingest_permits: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_reports.max(1))),
                config,
                cache: Mutex::new(FxHashMap::default()),
                generation: watch::channel(0).0,
                agents: Mutex::new(api::Agents::default()),
                filters: Mutex::new(filters),
                controls,
                counters: Counters::default(),
                latencies: Mutex::new(Latencies::default()),
                instruments: metrics::Instruments::default(),
                garbage: tx,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// Reads the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&ReportStore) -> R) -> R {
        f(&self.inner.store.read())
    }

    /// Takes one encoded report (what `POST /api/v1/reports` does).
    ///
    /// # Errors
    /// A report that does not decode, exceeds the limits or does not follow.
    pub fn ingest_bytes(&self, bytes: &[u8]) -> Result<crate::store::Ingested> {
        let started = std::time::Instant::now();
        let i = &self.inner;
        i.counters.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let report = match orchestrator_core::report::decode(bytes, i.config.limits) {
            Ok(r) => r,
            Err(e) => {
                i.counters.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        let outcome = i.store.write().ingest(report, crate::now_ms());
        match outcome {
            Ok((ingested, old)) => {
                if let Some(old) = old {
                    let _ = i.garbage.send(Garbage::Report(Box::new(old)));
                }
                i.counters.reports.fetch_add(1, Ordering::Relaxed);
                if !ingested.duplicate {
                    let generation = i.store.read().generation();
                    i.generation.send_replace(generation);
                }
                let took = started.elapsed();
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                let _ = i.latencies.lock().ingest.record(us.max(1));
                i.instruments.latency("ingest", took.as_secs_f64());
                Ok(ingested)
            }
            Err(e) => {
                i.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// A view with default filters, rendered once per store generation.
    pub async fn view(&self, view: View) -> Arc<Rendered> {
        let generation = self.with_store(ReportStore::generation);
        if let Some(r) = self.inner.cache.lock().get(&view) {
            if r.generation == generation {
                return r.clone();
            }
        }
        let rendered = Arc::new(self.render(view, Filters::default()).await);
        let old = self.inner.cache.lock().insert(view, rendered.clone());
        if let Some(old) = old {
            let _ = self.inner.garbage.send(Garbage::Rendered(old));
        }
        rendered
    }

    /// A view with any filters (the default ones from the cache).
    pub async fn view_filtered(&self, view: View, filters: Filters) -> Arc<Rendered> {
        if filters == Filters::default() {
            return self.view(view).await;
        }
        Arc::new(self.render(view, filters).await)
    }

    async fn render(&self, view: View, filters: Filters) -> Rendered {
        let app = self.clone();
        let job = move || {
            let started = std::time::Instant::now();
            let r = render(&app.inner.store.read(), view, &filters, crate::now_ms());
            app.inner.counters.renders.fetch_add(1, Ordering::Relaxed);
            let took = started.elapsed();
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            let _ = app.inner.latencies.lock().render.record(us.max(1));
            app.inner.instruments.latency("render", took.as_secs_f64());
            r
        };
        match tokio::task::spawn_blocking(job.clone()).await {
            Ok(r) => r,
            // Only when the runtime shuts down; render here then.
            Err(_) => job(),
        }
    }

    /// Drops silent probes and old series now (the cleanup loop's work).
    pub fn cleanup(&self) -> (usize, usize) {
        let out = self.inner.store.write().cleanup(crate::now_ms());
        if out != (0, 0) {
            let generation = self.with_store(ReportStore::generation);
            self.inner.generation.send_replace(generation);
        }
        out
    }

    /// Runs the cleanup every `cleanup_interval` until dropped.
    pub async fn cleanup_loop(self) {
        let mut tick = tokio::time::interval(self.inner.config.cleanup_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (probes, series) = self.cleanup();
            if probes + series > 0 {
                tracing::info!(probes, series, "cleanup dropped stale data");
            }
        }
    }

    /// The routes.
    pub fn router(&self) -> Router {
        let app = self.clone();
        let probe = Router::new()
            .route(
                "/api/v1/reports",
                post(api::post_report).layer(axum::middleware::from_fn_with_state(app.clone(), limit_ingest)),
            )
            .route("/api/v1/agents/register", post(api::register))
            .route("/api/v1/agents/heartbeat/{agent_id}", post(api::heartbeat))
            .route("/api/v1/agents/config/{agent_id}", get(api::agent_config))
            .route("/api/v1/ws", get(controls::probe_socket))
            .route_layer(axum::middleware::from_fn(auth::require_probe));
        let viewer = Router::new()
            .route("/api/v1/agents/list", get(api::agents_list))
            .route("/api/v1/query/topology", get(api::query_topology))
            .route("/api/v1/query/agents/{agent_id}/latest", get(api::agent_latest))
            .route("/api/v1/query/agents/{agent_id}/timeseries", get(api::agent_timeseries))
            .route("/api/v1/query/stats", get(api::stats))
            .route("/api/topology", get(api::topologies))
            .route("/api/topology/{view}", get(api::topology))
            .route("/api/topology/{view}/ws", get(live::view_socket))
            .route("/api/topology/{view}/{node}", get(api::node_details))
            .route("/api/search", get(api::search))
            .route("/api/filters", get(api::list_filters))
            .route("/api/filters/{id}", get(api::get_filter))
            .route("/api/openapi.json", get(openapi::document))
            .route("/metrics", get(metrics::render))
            // Checks the operator role itself, so refusals are audited too.
            .route("/api/control/{probe}/{node}/{control}", post(controls::control))
            .route_layer(axum::middleware::from_fn(auth::require_viewer));
        let operator = Router::new()
            .route("/api/pipe/{pipe}", get(controls::pipe_socket))
            .route("/api/filters", post(api::save_filter))
            .route("/api/filters/{id}", delete(api::delete_filter))
            .route_layer(axum::middleware::from_fn(auth::require_operator));
        let admin = Router::new()
            .route("/api/audit", get(controls::audit))
            .route_layer(axum::middleware::from_fn(auth::require_admin));
        let mut router = Router::new()
            .route("/", get(ui::index))
            .route("/ui/{file}", get(ui::file))
            .route("/api/whoami", get(api::whoami))
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route(
                "/api/v1/ping",
                get(|| async { Json(json!({"pong": true, "time_ms": crate::now_ms()})) }),
            )
            .merge(probe)
            .merge(viewer)
            .merge(operator)
            .merge(admin)
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint (see /api/openapi.json)") })
            .layer(axum::middleware::from_fn_with_state(app.clone(), auth::identify))
            .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::observe_http))
            .layer(axum::extract::DefaultBodyLimit::max(
                self.inner.config.limits.max_encoded,
            ))
            .with_state(app);
        if !self.inner.config.cors_origins.is_empty() {
            let origins: Vec<HeaderValue> = self
                .inner
                .config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            router = router.layer(
                tower_http::cors::CorsLayer::new()
                    .allow_origin(origins)
                    .allow_methods([Method::GET, Method::POST, Method::DELETE])
                    .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE]),
            );
        }
        router
    }
}

/// Lets a report's body be read only with a permit: at most
/// `max_concurrent_reports` are buffered and decoded at once.
///
/// A body declared larger than the limit is refused with 413 after it has
/// been read and dropped (up to [`LINGER_BYTES`], for [`LINGER`]): a
/// server that answers while the client is still sending, and closes,
/// makes the client's kernel reset the connection and lose the answer, so
/// the client would see a broken connection instead of the 413.
async fn limit_ingest(
    axum::extract::State(app): axum::extract::State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let max = app.inner.config.limits.max_encoded;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|&len| len > max as u64) {
        let mut body = req.into_body().into_data_stream();
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut body)).await {
                Ok(Some(Ok(chunk))) => drained += chunk.len(),
                _ => break,
            }
        }
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a report is at most {max} bytes; this one is {len}"),
        );
    }
    let Ok(_permit) = app.inner.ingest_permits.clone().acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    next.run(req).await
}

/// How much of a refused oversized body is read and dropped, and for how
/// long, before the 413 goes out.
const LINGER_BYTES: usize = 64 << 20;
const LINGER: Duration = Duration::from_secs(5);

/// Checks that the app may listen on `addr`: without tokens it runs open,
/// which is only allowed on a loopback address.
///
/// # Errors
/// [`TopologyError::Config`] for an open app on another address.
pub fn check_exposure(config: &AppConfig, addr: SocketAddr) -> Result<()> {
    if config.tokens.is_empty() && !addr.ip().is_loopback() {
        return Err(TopologyError::Config(format!(
            "no tokens are configured, so the app runs open and may only listen on 127.0.0.1 (not {addr}); give --tokens FILE"
        )));
    }
    Ok(())
}

/// A JSON error answer `{"error": …}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": message.into(), "status": status.as_u16() })),
    )
        .into_response()
}

impl IntoResponse for TopologyError {
    fn into_response(self) -> Response {
        use orchestrator_core::report::ReportError;
        let status = match &self {
            TopologyError::Report(ReportError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            TopologyError::Report(_) | TopologyError::NoProbeId | TopologyError::Query { .. } => {
                StatusCode::BAD_REQUEST
            }
            TopologyError::NeedFull { .. } => StatusCode::CONFLICT,
            TopologyError::UnknownView(_) => StatusCode::NOT_FOUND,
            TopologyError::Io { .. } | TopologyError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            TopologyError::Shared(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        error(status, self.to_string())
    }
}
