//! `GET /api/openapi.json`: the API described as OpenAPI 3.0, from one
//! table of endpoints (a test checks each is served).

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// Method, path, who may call it, what it does.
pub(crate) const ENDPOINTS: &[(&str, &str, &str, &str)] = &[
    ("get", "/", "anyone", "The web UI (its files under /ui/{file})"),
    ("get", "/ui/{file}", "anyone", "A file of the web UI"),
    (
        "get",
        "/api/whoami",
        "anyone",
        "The caller's name and role (null, with token_required, when no token was given), whether the app is open or read-only, the allowed controls",
    ),
    ("get", "/health", "anyone", "Liveness"),
    ("get", "/api/v1/ping", "anyone", "Ping with the server time"),
    (
        "post",
        "/api/v1/agents/register",
        "probe",
        "Register an agent; answers its id and config",
    ),
    (
        "post",
        "/api/v1/agents/heartbeat/{agent_id}",
        "probe",
        "Agent heartbeat",
    ),
    ("get", "/api/v1/agents/config/{agent_id}", "probe", "An agent's config"),
    (
        "get",
        "/api/v1/agents/list",
        "viewer",
        "Registered agents and reporting probes",
    ),
    (
        "post",
        "/api/v1/reports",
        "probe",
        "One encoded report (application/vnd.orchestrator.report); 409 asks for a full report",
    ),
    (
        "get",
        "/api/v1/query/topology",
        "viewer",
        "View counts, or one view with ?view=",
    ),
    (
        "get",
        "/api/v1/query/agents/{agent_id}/latest",
        "viewer",
        "A probe's latest state (?full=true for its whole report)",
    ),
    (
        "get",
        "/api/v1/query/agents/{agent_id}/timeseries",
        "viewer",
        "Series of a probe's host or container (?metric=&node=&from=&to=)",
    ),
    ("get", "/api/v1/query/stats", "viewer", "Ingest counters and latencies"),
    ("get", "/api/v1/ws", "probe", "A probe's control socket (?probe_id=)"),
    ("get", "/api/topology", "viewer", "Every view with node and edge counts"),
    (
        "get",
        "/api/topology/{view}",
        "viewer",
        "A view (?system=&stopped=&unconnected=&pseudo=&q=&filter=)",
    ),
    ("get", "/api/topology/{view}/{node}", "viewer", "A node's details"),
    (
        "get",
        "/api/topology/{view}/ws",
        "viewer",
        "A view's diffs over a WebSocket ({add, update, remove, reset})",
    ),
    ("get", "/api/search", "viewer", "Search every view (?q=&view=&limit=)"),
    ("get", "/api/filters", "viewer", "Saved filters"),
    ("post", "/api/filters", "operator", "Save a filter {name, query, view?}"),
    ("get", "/api/filters/{id}", "viewer", "A saved filter"),
    ("delete", "/api/filters/{id}", "operator", "Delete a saved filter"),
    (
        "post",
        "/api/control/{probe}/{node}/{control}",
        "operator",
        "Run a control on a node (JSON object of string arguments)",
    ),
    (
        "get",
        "/api/pipe/{pipe}",
        "operator",
        "A logs or exec pipe over a WebSocket",
    ),
    ("get", "/api/audit", "admin", "The latest audit log entries"),
    ("get", "/api/openapi.json", "viewer", "This document"),
    ("get", "/metrics", "viewer", "Prometheus metrics"),
];

pub(super) async fn document() -> Response {
    let mut paths = Map::new();
    for (method, path, role, summary) in ENDPOINTS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK (JSON)"},
                "400": {"description": "Bad request: {error, status}"},
                "401": {"description": "No or unknown token"},
                "403": {"description": "The token's role may not"},
                "404": {"description": "Not found"},
            },
            "x-role": role,
        });
        if *role != "anyone" {
            op["security"] = json!([{"bearer": []}]);
        }
        if path.starts_with("/api/control/") {
            op["responses"]["404"] = json!({"description": "No such probe, node or control"});
            op["responses"]["503"] = json!({"description": "The probe reports but has no control socket open now"});
            op["responses"]["504"] = json!({"description": "The probe did not answer in time"});
        }
        let entry = paths.entry((*path).to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "orchestrator topology app", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }))
    .into_response()
}
