//! The REST handlers: reports and agents (probe side), views, queries,
//! search and saved filters (reader side).

// Helpers answer a ready error `Response`; its size does not matter on
// this path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use orchestrator_core::report::{ids, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Caller;
use super::{error, App};
use crate::search::{Query as SearchQuery, SavedFilter};
use crate::views::{details, Choice, Filters, View};
use crate::TopologyError;

type Params = Query<BTreeMap<String, String>>;

/// `POST /api/v1/reports`: one encoded report.
pub(super) async fn post_report(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.starts_with(CONTENT_TYPE) || ct.starts_with("application/octet-stream")) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("reports are `{CONTENT_TYPE}`, not `{ct}`"),
        );
    }
    let job = {
        let app = app.clone();
        move || app.ingest_bytes(&body)
    };
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(i)) => Json(json!({
            "probe": i.probe, "full": i.full, "nodes": i.nodes, "duplicate": i.duplicate,
        }))
        .into_response(),
        Ok(Err(e)) => {
            if !matches!(e, TopologyError::NeedFull { .. }) {
                tracing::debug!(error = %e, "report refused");
            }
            e.into_response()
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

/// A registered agent.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AgentInfo {
    agent_id: String,
    hostname: String,
    version: String,
    labels: BTreeMap<String, String>,
    registered_ms: u64,
    last_heartbeat_ms: u64,
}

/// Agents that registered.
#[derive(Debug, Default)]
pub(crate) struct Agents {
    map: BTreeMap<String, AgentInfo>,
}

const MAX_AGENTS: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Register {
    #[serde(default)]
    agent_id: Option<String>,
    hostname: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn config_for(app: &App, agent_id: &str) -> Value {
    let c = app.config();
    json!({
        "agent_id": agent_id,
        "publish_interval_secs": c.publish_interval.as_secs_f64(),
        "spy_interval_secs": c.publish_interval.as_secs_f64(),
        "reports_url": "/api/v1/reports",
        "control_socket": format!("/api/v1/ws?probe_id={agent_id}"),
        "max_report_bytes": c.limits.max_encoded,
        "controls_enabled": !c.read_only,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 253 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// `GET /api/whoami`: the caller's name and role, and what the app lets
/// anyone do (the UI hides what the caller may not use). Without a token,
/// on an app that has tokens, `role` is null and `token_required` true, so
/// a client knows to ask for one; an unknown token is a 401.
pub(super) async fn whoami(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    let c = app.config();
    Json(json!({
        "name": caller.name,
        "role": caller.role.map(super::Role::as_str),
        "token_required": caller.role.is_none(),
        "open": c.tokens.is_empty(),
        "read_only": c.read_only,
        "allowed_controls": c.allowed_controls,
    }))
    .into_response()
}

/// `POST /api/v1/agents/register`.
pub(super) async fn register(State(app): State<App>, body: Bytes) -> Response {
    let r: Register = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("registration: {e}")),
    };
    let id = r.agent_id.unwrap_or_else(|| r.hostname.clone());
    if !valid_id(&id) || r.hostname.is_empty() || r.hostname.len() > 253 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "agent_id and hostname must be 1–253 characters of letters, digits, `-_.:`",
        );
    }
    let now = crate::now_ms();
    {
        let mut agents = app.inner.agents.lock();
        if agents.map.len() >= MAX_AGENTS && !agents.map.contains_key(&id) {
            return error(StatusCode::INSUFFICIENT_STORAGE, "too many agents registered");
        }
        let registered_ms = agents.map.get(&id).map_or(now, |a| a.registered_ms);
        agents.map.insert(
            id.clone(),
            AgentInfo {
                agent_id: id.clone(),
                hostname: r.hostname,
                version: r.version,
                labels: r.labels,
                registered_ms,
                last_heartbeat_ms: now,
            },
        );
    }
    (
        StatusCode::CREATED,
        Json(json!({"agent_id": id, "config": config_for(&app, &id)})),
    )
        .into_response()
}

/// `POST /api/v1/agents/heartbeat/{agent_id}`.
pub(super) async fn heartbeat(State(app): State<App>, Path(id): Path<String>) -> Response {
    let now = crate::now_ms();
    match app.inner.agents.lock().map.get_mut(&id) {
        Some(a) => {
            a.last_heartbeat_ms = now;
            Json(json!({"agent_id": id, "ok": true})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("agent `{id}` is not registered")),
    }
}

/// `GET /api/v1/agents/config/{agent_id}`.
pub(super) async fn agent_config(State(app): State<App>, Path(id): Path<String>) -> Response {
    if !valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "bad agent id");
    }
    Json(config_for(&app, &id)).into_response()
}

/// `GET /api/v1/agents/list`: registered agents and probes that report.
pub(super) async fn agents_list(State(app): State<App>) -> Response {
    let now = crate::now_ms();
    let connected = app.inner.controls.connected();
    let mut out: BTreeMap<String, Value> = app
        .inner
        .agents
        .lock()
        .map
        .values()
        .map(|a| (a.agent_id.clone(), json!(a)))
        .collect();
    app.with_store(|s| {
        for (id, p) in s.probes() {
            let entry = out.entry(id.clone()).or_insert_with(|| json!({"agent_id": id}));
            if let Value::Object(m) = entry {
                m.insert("hostname".into(), json!(p.report.header.hostname));
                m.insert("last_report_ms".into(), json!(p.received_ms));
                m.insert("reports".into(), json!(p.reports));
                m.insert("nodes".into(), json!(p.report.topologies.node_count()));
                m.insert("stale".into(), json!(s.is_stale(p, now)));
            }
        }
    });
    for (id, v) in &mut out {
        if let Value::Object(m) = v {
            m.insert("control_socket".into(), json!(connected.contains(id)));
        }
    }
    Json(json!({"agents": out.into_values().collect::<Vec<_>>()})).into_response()
}

/// The view filters from query parameters (`system`, `stopped`,
/// `unconnected`, `pseudo`, `q`, `filter`).
pub(super) async fn filters(app: &App, q: &BTreeMap<String, String>) -> Result<Filters, Response> {
    if q.contains_key("filter") {
        // A filter saved on another replica applies here too.
        app.sync_filters().await.map_err(IntoResponse::into_response)?;
    }
    let choice = |key: &str, default: &str, other: &str| -> Result<Choice, Response> {
        match q.get(key).map(String::as_str) {
            None => Ok(Choice::Default),
            Some(v) if v == default => Ok(Choice::Default),
            Some(v) if v == other => Ok(Choice::Other),
            Some("both") => Ok(Choice::Both),
            Some(v) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("{key}={v}: expected {default}, {other} or both"),
            )),
        }
    };
    let show = |key: &str| -> Result<bool, Response> {
        match q.get(key).map(String::as_str) {
            None | Some("show") => Ok(false),
            Some("hide") => Ok(true),
            Some(v) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("{key}={v}: expected show or hide"),
            )),
        }
    };
    let mut text = q.get("q").cloned().unwrap_or_default();
    if let Some(id) = q.get("filter") {
        match app.inner.filters.lock().get(id) {
            Some(f) => text = format!("{} {text}", f.query),
            None => return Err(error(StatusCode::NOT_FOUND, format!("no saved filter `{id}`"))),
        }
    }
    Ok(Filters {
        system: choice("system", "application", "system")?,
        stopped: choice("stopped", "running", "stopped")?,
        hide_unconnected: show("unconnected")?,
        hide_pseudo: show("pseudo")?,
        query: SearchQuery::parse(&text).map_err(IntoResponse::into_response)?,
    })
}

fn view_of(name: &str) -> Result<View, Response> {
    View::from_str(name).map_err(IntoResponse::into_response)
}

/// A large JSON answer, serialised off the runtime threads.
async fn json_blocking<T: Serialize + Send + 'static>(value: T) -> Response {
    match tokio::task::spawn_blocking(move || serde_json::to_vec(&value)).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

/// A rendered view as `{"nodes": {id: node}}`.
struct ViewJson(std::sync::Arc<crate::Rendered>);

impl Serialize for ViewJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Nodes<'a>(&'a crate::Rendered);
        impl Serialize for Nodes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for n in self.0.nodes_json() {
                    m.serialize_entry(&n.summary.id, &n)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("view", self.0.view.id())?;
        m.serialize_entry("generation", &self.0.generation)?;
        m.serialize_entry("nodes", &Nodes(&self.0))?;
        m.end()
    }
}

/// `GET /api/topology/{view}`.
pub(super) async fn topology(State(app): State<App>, Path(view): Path<String>, Query(q): Params) -> Response {
    let view = match view_of(&view) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let filters = match filters(&app, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    json_blocking(ViewJson(app.view_filtered(view, filters).await)).await
}

/// `GET /api/topology`: every view with its counts.
pub(super) async fn topologies(State(app): State<App>) -> Response {
    let mut out = Vec::new();
    for view in View::ALL {
        let r = app.view(view).await;
        out.push(json!({
            "id": view.id(),
            "name": view.label(),
            "url": format!("/api/topology/{}", view.id()),
            "stats": {
                "node_count": r.nodes().filter(|n| !n.pseudo).count(),
                "pseudo_node_count": r.nodes().filter(|n| n.pseudo).count(),
                "edge_count": r.edge_count(),
            },
        }));
    }
    Json(out).into_response()
}

/// `GET /api/topology/{view}/{node}`.
pub(super) async fn node_details(
    State(app): State<App>,
    Path((view, node)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let view = match view_of(&view) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut f = match filters(&app, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // A node shown under any filter has details.
    f.system = Choice::Both;
    f.stopped = Choice::Both;
    let rendered = app.view_filtered(view, f).await;
    let found = app.with_store(|s| details(s, &rendered, &node, crate::now_ms()));
    match found {
        Some(d) => Json(json!({ "node": d })).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no node `{node}` in {}", view.id())),
    }
}

/// `GET /api/v1/query/topology`: one view (`?view=`, with filters) or the
/// counts of all.
pub(super) async fn query_topology(state: State<App>, q: Params) -> Response {
    match q.get("view").cloned() {
        Some(view) => topology(state, Path(view), q).await,
        None => topologies(state).await,
    }
}

/// `GET /api/v1/query/agents/{agent_id}/latest`: a probe's host node and
/// counts, or its whole current report with `?full=true`.
pub(super) async fn agent_latest(State(app): State<App>, Path(id): Path<String>, Query(q): Params) -> Response {
    let full = q.get("full").is_some_and(|v| v == "true");
    let now = crate::now_ms();
    let found = app.with_store(|s| {
        let p = s.probes().get(&id)?;
        if full {
            return serde_json::to_value(&p.report).ok();
        }
        let counts: BTreeMap<&str, usize> = p
            .report
            .topologies
            .iter()
            .map(|(k, t)| (k.as_str(), t.nodes.len()))
            .collect();
        Some(json!({
            "agent_id": id,
            "header": p.report.header,
            "received_ms": p.received_ms,
            "stale": s.is_stale(p, now),
            "reports": p.reports,
            "counts": counts,
            "host": p.report.topologies.host.nodes.get(&ids::host(&p.report.header.hostname)),
        }))
    });
    match found {
        Some(v) => json_blocking(v).await,
        None => error(StatusCode::NOT_FOUND, format!("no reports from agent `{id}`")),
    }
}

/// `GET /api/v1/query/agents/{agent_id}/timeseries?metric=&node=&from=&to=`:
/// series of the agent's host (or of `node`, one of its containers).
pub(super) async fn agent_timeseries(State(app): State<App>, Path(id): Path<String>, Query(q): Params) -> Response {
    let now = i64::try_from(crate::now_ms()).unwrap_or(i64::MAX);
    let num = |k: &str, d: i64| -> Result<i64, Response> {
        q.get(k).map_or(Ok(d), |v| {
            v.parse()
                .map_err(|_| error(StatusCode::BAD_REQUEST, format!("{k}={v}: expected milliseconds")))
        })
    };
    let (from, to) = match (num("from", now - 3_600_000), num("to", now)) {
        (Ok(f), Ok(t)) if f <= t => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
        _ => return error(StatusCode::BAD_REQUEST, "from must not be after to"),
    };
    let out = app.with_store(|s| {
        let p = s.probes().get(&id)?;
        let node = q
            .get("node")
            .cloned()
            .unwrap_or_else(|| ids::host(&p.report.header.hostname));
        let owned =
            node == ids::host(&p.report.header.hostname) || p.report.topologies.container.nodes.contains_key(&node);
        if !owned {
            return Some(Err(node));
        }
        let series = s.series(&node);
        let metrics: BTreeMap<&String, Vec<crate::Point>> = series
            .map(|ns| {
                ns.metrics
                    .iter()
                    .filter(|(name, _)| q.get("metric").is_none_or(|m| m == *name))
                    .map(|(name, ts)| (name, ts.query(from, to)))
                    .collect()
            })
            .unwrap_or_default();
        Some(Ok(
            json!({"agent_id": id, "node": node, "from": from, "to": to, "metrics": metrics}),
        ))
    });
    match out {
        Some(Ok(v)) => Json(v).into_response(),
        Some(Err(node)) => error(StatusCode::NOT_FOUND, format!("agent `{id}` has no node `{node}`")),
        None => error(StatusCode::NOT_FOUND, format!("no reports from agent `{id}`")),
    }
}

/// `GET /api/v1/query/stats`.
pub(super) async fn stats(State(app): State<App>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &app.inner.counters;
    let (probes, generation, series, owned, nodes) = app.with_store(|s| {
        let mut nodes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for p in s.probes().values() {
            for (k, t) in p.report.topologies.iter() {
                *nodes.entry(k.as_str()).or_default() += t.nodes.len();
            }
        }
        (
            s.probes().len(),
            s.generation(),
            s.series_count(),
            s.owned_endpoints(),
            nodes,
        )
    });
    let lat = app.inner.latencies.lock();
    let q = |h: &hdrhistogram::Histogram<u64>| json!({"count": h.len(), "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99), "max_us": h.max()});
    Json(json!({
        "probes": probes,
        "generation": generation,
        "nodes": nodes,
        "series": series,
        "owned_endpoints": owned,
        "reports_received": c.reports.load(Relaxed),
        "reports_rejected": c.rejected.load(Relaxed),
        "report_bytes": c.bytes.load(Relaxed),
        "controls": c.controls.load(Relaxed),
        "renders": c.renders.load(Relaxed),
        "control_sockets": app.inner.controls.connected().len(),
        "ingest_latency": q(&lat.ingest),
        "render_latency": q(&lat.render),
    }))
    .into_response()
}

/// `GET /api/search?q=&view=&limit=`: matching nodes of every view (or one).
pub(super) async fn search(State(app): State<App>, Query(q): Params) -> Response {
    let text = q.get("q").cloned().unwrap_or_default();
    if text.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "q= is required");
    }
    let query = match SearchQuery::parse(&text) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let views = match q.get("view") {
        Some(v) => match view_of(v) {
            Ok(v) => vec![v],
            Err(r) => return r,
        },
        None => View::ALL.to_vec(),
    };
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100).min(10_000);
    let mut results = Vec::new();
    let mut total = 0;
    for view in views {
        let f = Filters {
            system: Choice::Both,
            stopped: Choice::Both,
            hide_pseudo: true,
            query: query.clone(),
            ..Filters::default()
        };
        let r = app.view_filtered(view, f).await;
        total += r.len();
        for n in r.nodes().take(limit.saturating_sub(results.len())) {
            results.push(json!({
                "view": view.id(), "id": n.id, "label": n.label, "labelMinor": n.label_minor,
                "probe": n.probe.as_deref(),
            }));
        }
    }
    Json(json!({"query": text, "total": total, "results": results})).into_response()
}

/// `GET /api/filters`.
pub(super) async fn list_filters(State(app): State<App>) -> Response {
    if let Err(e) = app.sync_filters().await {
        return e.into_response();
    }
    let list: Vec<SavedFilter> = app.inner.filters.lock().list().cloned().collect();
    Json(json!({ "filters": list })).into_response()
}

/// `GET /api/filters/{id}`.
pub(super) async fn get_filter(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Err(e) = app.sync_filters().await {
        return e.into_response();
    }
    match app.inner.filters.lock().get(&id) {
        Some(f) => Json(f.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no saved filter `{id}`")),
    }
}

/// `POST /api/filters`: `{name, query, view?}`.
pub(super) async fn save_filter(State(app): State<App>, Extension(caller): Extension<Caller>, body: Bytes) -> Response {
    let mut f: SavedFilter = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("filter: {e}")),
    };
    if let Some(v) = &f.view {
        if let Err(r) = view_of(v) {
            return r;
        }
    }
    f.created_by = caller.name;
    match app.save_filter(f, crate::now_ms()).await {
        Ok(saved) => (StatusCode::CREATED, Json(saved)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/filters/{id}`.
pub(super) async fn delete_filter(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.delete_filter(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no saved filter `{id}`")),
        Err(e) => e.into_response(),
    }
}
