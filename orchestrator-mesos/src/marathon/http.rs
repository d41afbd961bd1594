//! Marathon's REST API (`/v2`), so existing Marathon clients work unmodified.
//!
//! App ids hold slashes (`/prod/web`), so everything under `/v2/apps/` is
//! one wildcard route, told apart by its suffix (`/versions`, `/restart`,
//! `/tasks`) as Marathon does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use orchestrator_core::{TaskId, TaskState};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::app::{canonical_id, AppDefinition, Invalid};
use super::framework::{version_now, Marathon};
use super::iso8601::Iso8601;
use super::scheduler::{Deployment, Instance, Locked, Scheduler};

/// What `/v2/info` and `/v2/leader` tell about this scheduler.
#[derive(Clone, Debug)]
pub struct ApiInfo {
    /// The master it talks to (`host:port`).
    pub master: String,
    /// Where this API is served (`host:port`).
    pub http_address: String,
}

#[derive(Clone)]
pub(super) struct Api {
    pub(super) marathon: Marathon,
    pub(super) info: ApiInfo,
}

/// The `/v2` routes plus `/ping` and `/metrics`.
pub fn router(marathon: Marathon, info: ApiInfo) -> Router {
    Router::new()
        .route("/v2/apps", get(list_apps).post(create_app).put(put_apps))
        .route("/v2/apps/{*rest}", any(app_route))
        .route("/v2/groups", any(super::http_groups::root))
        .route("/v2/groups/{*rest}", any(super::http_groups::route))
        .route("/v2/tasks", get(list_tasks))
        .route("/v2/eventSubscriptions", any(event_subscriptions))
        .route("/v2/tasks/delete", post(delete_tasks))
        .route("/v2/deployments", get(list_deployments))
        .route("/v2/deployments/{id}", get(get_deployment).delete(delete_deployment))
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*rest}", any(queue_delay))
        .route("/v2/events", get(events))
        .route("/v2/info", get(info_handler))
        .route("/v2/leader", get(leader).delete(abdicate))
        .route("/ping", get(|| async { "pong" }))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .with_state(Api { marathon, info })
}

pub(super) fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "message": text.into() }))).into_response()
}

pub(super) fn invalid(e: &Invalid) -> Response {
    let status = if e.details.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(json!(e))).into_response()
}

pub(super) fn locked(l: &Locked) -> Response {
    let first = l.deployments.first().cloned().unwrap_or_default();
    (
        StatusCode::CONFLICT,
        Json(json!({
            "message": format!("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{first}'."),
            "deployments": l.deployments.iter().map(|d| json!({"id": d})).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

pub(super) fn storage(e: &crate::Error) -> Response {
    message(StatusCode::SERVICE_UNAVAILABLE, format!("state store failed: {e}"))
}

fn deployed(status: StatusCode, d: &Deployment) -> Response {
    let mut r = (status, Json(json!({"deploymentId": d.id, "version": d.version}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&d.id) {
        r.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    r
}

/// A boolean query flag: present and empty, or `true` in any case (Python
/// clients send `True`).
pub(super) fn flag(q: &[(String, String)], name: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == name && (v.is_empty() || v.eq_ignore_ascii_case("true")))
}

/// A task as Marathon's API shows it (its RAML `Task` type: the fields
/// Marathon clients parse, and no others, since some refuse unknown ones),
/// borrowed from the scheduler and serialised straight into the response:
/// no intermediate `Value` tree, so `GET /v2/apps?embed=apps.tasks` stays
/// fast at 100,000 tasks.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskView<'a> {
    id: &'a str,
    app_id: &'a str,
    host: &'a str,
    ip_addresses: Vec<IpAddressView>,
    ports: &'a [u64],
    service_ports: Vec<u32>,
    slave_id: &'a str,
    state: &'a TaskState,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    staged_at: Option<Iso8601>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Iso8601>,
    health_check_results: Vec<HealthView<'a>>,
    local_volumes: [(); 0],
}

/// One of a task's addresses (`{ipAddress, protocol}`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IpAddressView {
    ip_address: std::net::IpAddr,
    protocol: &'static str,
}

/// One entry of `healthCheckResults`, times in ISO 8601 as Marathon's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthView<'a> {
    alive: bool,
    consecutive_failures: u32,
    first_success: Option<Iso8601>,
    last_success: Option<Iso8601>,
    last_failure: Option<Iso8601>,
    last_failure_cause: Option<String>,
    task_id: &'a str,
    instance_id: &'a str,
}

/// An app with its counts, deployments and (embedded) tasks.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppView<'a> {
    #[serde(flatten)]
    def: &'a AppDefinition,
    tasks_staged: usize,
    tasks_running: usize,
    tasks_healthy: usize,
    tasks_unhealthy: usize,
    deployments: Vec<Keyed<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_task_failure: Option<TaskFailureView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<TaskView<'a>>>,
}

/// Marathon's `lastTaskFailure`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskFailureView<'a> {
    app_id: &'a str,
    host: &'a str,
    message: &'a str,
    state: TaskState,
    task_id: &'a str,
    timestamp: Iso8601,
    version: &'a str,
    slave_id: &'a str,
}

/// `{"<key>": value}` without building a `Value` tree.
struct Keyed<T>(&'static str, T);

impl<T: Serialize> Serialize for Keyed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

/// A JSON answer serialised from borrowed views.
fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("serialising the answer: {e}"),
        ),
    }
}

/// `{"<key>": [items]}` for long lists: the items are serialised in
/// parallel chunks (one per core; a 28 MB `/v2/apps?embed=apps.tasks`
/// takes half as long, and so does the scheduler lock it is built under)
/// and sent as they are, without joining them into one buffer.
fn json_list_response<T: Serialize + Sync>(key: &str, items: &[T], bytes_per_item: usize) -> Response {
    const PER_THREAD: usize = 1024;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8)
        .min(items.len().div_ceil(PER_THREAD).max(1));
    let chunk_len = items.len().div_ceil(threads).max(1);
    let serialise = |chunk: &[T]| -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(chunk.len() * bytes_per_item + 16);
        for (n, item) in chunk.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, item)?;
        }
        Ok(out)
    };
    let chunks: Vec<serde_json::Result<Vec<u8>>> = if threads == 1 {
        vec![serialise(items)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk_len)
                .map(|chunk| scope.spawn(move || serialise(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(serde::ser::Error::custom("serialiser panicked")))
                })
                .collect()
        })
    };
    let mut parts = Vec::with_capacity(chunks.len() * 2 + 1);
    parts.push(Bytes::from(format!("{{{}:[", Value::from(key))));
    for (n, chunk) in chunks.into_iter().enumerate() {
        match chunk {
            Ok(c) if c.is_empty() => {}
            Ok(c) => {
                if n > 0 {
                    parts.push(Bytes::from_static(b","));
                }
                parts.push(Bytes::from(c));
            }
            Err(e) => {
                return message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("serialising the answer: {e}"),
                )
            }
        }
    }
    parts.push(Bytes::from_static(b"]}"));
    let len: usize = parts.iter().map(Bytes::len).sum();
    let body = axum::body::Body::from_stream(futures_util::stream::iter(parts.into_iter().map(Ok::<_, Infallible>)));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        body,
    )
        .into_response()
}

fn task_view<'a>(m: &Marathon, s: &Scheduler, i: &'a Instance) -> TaskView<'a> {
    task_view_of(m, i, s.app(&i.app_id).map(|a| &a.def))
}

/// The ports a load balancer listens on for an app: its port definitions'
/// ports, or its port mappings' service ports.
fn service_ports(app: &AppDefinition) -> Vec<u32> {
    let mappings = app.container.as_ref().map(|c| {
        if c.port_mappings.is_empty() {
            c.docker
                .as_ref()
                .map(|d| d.port_mappings.as_slice())
                .unwrap_or_default()
        } else {
            c.port_mappings.as_slice()
        }
    });
    match mappings {
        Some(m) if !m.is_empty() => m.iter().map(|p| p.service_port).collect(),
        _ => app.port_definitions.iter().map(|p| p.port).collect(),
    }
}

/// A task's view when the caller has its app at hand (one app lookup per
/// app, not per task).
fn task_view_of<'a>(m: &Marathon, i: &'a Instance, app: Option<&AppDefinition>) -> TaskView<'a> {
    let health = if app.is_some_and(|a| !a.health_checks.is_empty()) {
        m.health_of(&i.task_id)
            .into_iter()
            .map(|r| HealthView {
                alive: r.alive,
                consecutive_failures: r.consecutive_failures,
                first_success: r.first_success.map(Iso8601),
                last_success: r.last_success.map(Iso8601),
                last_failure: r.last_failure.map(Iso8601),
                last_failure_cause: r.last_failure_cause,
                task_id: i.task_id.as_str(),
                instance_id: i.task_id.as_str(),
            })
            .collect()
    } else {
        Vec::new()
    };
    // The agent's address, as Marathon shows a host-networked task's.
    let ip_addresses = i
        .hostname
        .parse::<std::net::IpAddr>()
        .map(|ip| {
            vec![IpAddressView {
                ip_address: ip,
                protocol: if ip.is_ipv4() { "IPv4" } else { "IPv6" },
            }]
        })
        .unwrap_or_default();
    TaskView {
        id: i.task_id.as_str(),
        app_id: &i.app_id,
        host: &i.hostname,
        ip_addresses,
        ports: &i.ports,
        service_ports: app.map(service_ports).unwrap_or_default(),
        slave_id: i.agent_id.as_str(),
        state: &i.state,
        version: &i.version,
        staged_at: i.staged_at_ms.map(Iso8601),
        started_at: i.started_at_ms.map(Iso8601),
        health_check_results: health,
        local_volumes: [],
    }
}

/// An app as `/v2/groups` embeds it, as a JSON value.
pub(super) fn app_value(api: &Api, s: &Scheduler, def: &AppDefinition) -> Value {
    serde_json::to_value(app_view(&api.marathon, s, def, false)).unwrap_or(Value::Null)
}

fn app_view<'a>(m: &Marathon, s: &'a Scheduler, def: &'a AppDefinition, embed_tasks: bool) -> AppView<'a> {
    let (mut staged, mut running, mut healthy, mut unhealthy) = (0, 0, 0, 0);
    let instances: Vec<&Instance> = s.instances_of(&def.id).collect();
    for i in &instances {
        match i.state {
            TaskState::Staging | TaskState::Starting => staged += 1,
            TaskState::Running => running += 1,
            _ => {}
        }
        match i.healthy {
            Some(true) => healthy += 1,
            Some(false) => unhealthy += 1,
            None => {}
        }
    }
    AppView {
        def,
        tasks_staged: staged,
        tasks_running: running,
        tasks_healthy: healthy,
        tasks_unhealthy: unhealthy,
        deployments: s.deployments_of(&def.id).map(|d| Keyed("id", d.id.as_str())).collect(),
        last_task_failure: s
            .app(&def.id)
            .and_then(|a| a.last_failure.as_ref())
            .map(|f| TaskFailureView {
                app_id: &def.id,
                host: &f.host,
                message: &f.message,
                state: f.state,
                task_id: f.task_id.as_str(),
                timestamp: Iso8601(f.at_ms),
                version: &f.version,
                slave_id: f.agent_id.as_str(),
            }),
        tasks: embed_tasks.then(|| instances.iter().map(|i| task_view_of(m, i, Some(def))).collect()),
    }
}

fn deployment_json(d: &Deployment) -> Value {
    json!({
        "id": d.id, "version": d.version, "affectedApps": [d.app_id],
        "steps": d.steps.iter().map(|s| json!({"actions": [s]})).collect::<Vec<_>>(),
        "currentActions": d.steps.last().map(|s| vec![s.clone()]).unwrap_or_default(),
        "currentStep": d.steps.len(), "totalSteps": d.steps.len(),
    })
}

/// `label=key==value`, `label=key!=value` or `label=key`.
fn label_matches(def: &AppDefinition, selector: &str) -> bool {
    selector.split(',').all(|term| {
        if let Some((k, v)) = term.split_once("==") {
            def.labels.get(k.trim()).is_some_and(|x| x == v.trim())
        } else if let Some((k, v)) = term.split_once("!=") {
            def.labels.get(k.trim()).is_none_or(|x| x != v.trim())
        } else {
            def.labels.contains_key(term.trim())
        }
    })
}

async fn list_apps(State(api): State<Api>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let embed_tasks = q
        .iter()
        .any(|(k, v)| k == "embed" && (v == "apps.tasks" || v == "app.tasks"));
    let id = q.iter().find(|(k, _)| k == "id").map(|(_, v)| v.clone());
    let label = q.iter().find(|(k, _)| k == "label").map(|(_, v)| v.clone());
    // Serialised under the scheduler lock, straight from borrowed state
    // (about 0.5 µs per task).
    api.marathon.with(|s| {
        let apps: Vec<AppView<'_>> = s
            .apps()
            .map(|a| &a.def)
            .filter(|d| id.as_deref().is_none_or(|f| d.id.contains(f)))
            .filter(|d| label.as_deref().is_none_or(|sel| label_matches(d, sel)))
            .map(|d| app_view(&api.marathon, s, d, embed_tasks))
            .collect();
        // About 2 kB per app and 300 bytes per embedded task.
        let tasks: usize = apps.iter().filter_map(|a| a.tasks.as_ref().map(Vec::len)).sum();
        let per_app = 2048 + tasks.div_ceil(apps.len().max(1)) * 320;
        json_list_response("apps", &apps, per_app)
    })
}

/// `PUT /v2/apps`: several apps at once, each a partial update of the app
/// with its id or a new app (what `marathon-python`'s `update_apps` sends).
/// All are validated before any is changed.
async fn put_apps(State(api): State<Api>, Query(q): Query<Vec<(String, String)>>, body: Bytes) -> Response {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
        return message(StatusCode::BAD_REQUEST, "Invalid JSON: expected an array of apps");
    };
    let mut defs = Vec::with_capacity(items.len());
    for (i, mut item) in items.into_iter().enumerate() {
        let Some(id) = item
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| canonical_id(id).ok())
        else {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("app {i}: a valid id is required"),
            );
        };
        if let Value::Object(m) = &mut item {
            m.insert("id".into(), json!(id));
            m.remove("version");
            m.remove("versionInfo");
        }
        let current = api.marathon.with(|s| s.app(&id).map(|a| a.def.clone()));
        if let Some(current) = current {
            let mut base = serde_json::to_value(current).unwrap_or_default();
            if let (Value::Object(b), Value::Object(p)) = (&mut base, item) {
                b.extend(p);
            }
            item = base;
        }
        let def = match AppDefinition::from_value(item) {
            Ok(d) => d,
            Err(mut e) => {
                for v in &mut e.details {
                    v.path = format!("/{i}{}", v.path);
                }
                return invalid(&e);
            }
        };
        if let Some(r) = port_conflict(&api, &def) {
            return r;
        }
        defs.push(def);
    }
    if let Some(r) = super::http_groups::check_dependencies(&api, &defs) {
        return r;
    }
    let mut first: Option<Deployment> = None;
    for def in defs {
        match api.marathon.put_app(def, flag(&q, "force")).await {
            Err(e) => return storage(&e),
            Ok(Err(l)) => return locked(&l),
            Ok(Ok(d)) => first = first.or(d),
        }
    }
    match first {
        Some(d) => deployed(StatusCode::OK, &d),
        None => Json(json!({"deploymentId": null, "version": version_now()})).into_response(),
    }
}

async fn create_app(State(api): State<Api>, Query(q): Query<Vec<(String, String)>>, body: Bytes) -> Response {
    let def = match AppDefinition::from_json(&body) {
        Ok(d) => d,
        Err(e) => return invalid(&e),
    };
    if api.marathon.with(|s| s.app(&def.id).is_some()) {
        return message(
            StatusCode::CONFLICT,
            format!("An app with id [{}] already exists.", def.id),
        );
    }
    if let Some(r) = port_conflict(&api, &def) {
        return r;
    }
    if let Some(r) = super::http_groups::check_dependencies(&api, std::slice::from_ref(&def)) {
        return r;
    }
    match api.marathon.put_app(def.clone(), flag(&q, "force")).await {
        Err(e) => storage(&e),
        Ok(Err(l)) => locked(&l),
        Ok(Ok(d)) => {
            let mut r = api.marathon.with(|s| match s.app(&def.id) {
                Some(a) => json_response(StatusCode::CREATED, &app_view(&api.marathon, s, &a.def, false)),
                None => json_response(StatusCode::CREATED, &Value::Null),
            });
            if let Some(d) = d {
                if let Ok(v) = HeaderValue::from_str(&d.id) {
                    r.headers_mut().insert("Marathon-Deployment-Id", v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&format!("/v2/apps{}", def.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
    }
}

async fn app_route(
    State(api): State<Api>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let rest = format!("/{}", rest.trim_matches('/'));
    let (id, suffix) = if let Some(i) = rest.rfind("/versions") {
        let (id, tail) = rest.split_at(i);
        (id.to_string(), tail.to_string())
    } else if let Some(id) = rest.strip_suffix("/restart") {
        (id.to_string(), "/restart".into())
    } else if let Some(id) = rest.strip_suffix("/tasks") {
        (id.to_string(), "/tasks".into())
    } else if let Some(i) = rest.rfind("/tasks/") {
        let (id, tail) = rest.split_at(i);
        (id.to_string(), tail.to_string())
    } else {
        (rest.clone(), String::new())
    };
    let id = match canonical_id(&id) {
        Ok(id) => id,
        Err(e) => return message(StatusCode::BAD_REQUEST, format!("invalid app id {id:?}: {e}")),
    };
    let force = flag(&q, "force");
    let missing = || message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist"));
    let is_patch = method == Method::PATCH;
    match (method, suffix.as_str()) {
        (Method::GET, "") => api.marathon.with(|s| match s.app(&id) {
            Some(a) => json_response(StatusCode::OK, &Keyed("app", app_view(&api.marathon, s, &a.def, true))),
            None => missing(),
        }),
        (Method::PUT | Method::PATCH, "") => {
            let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
                return message(StatusCode::BAD_REQUEST, "Invalid JSON");
            };
            if let Value::Object(m) = &mut v {
                m.insert("id".into(), json!(id));
                m.remove("version");
                m.remove("versionInfo");
            }
            let current = api.marathon.with(|s| s.app(&id).map(|a| a.def.clone()));
            if is_patch && current.is_none() {
                return missing();
            }
            // PATCH, and PUT unless `partialUpdate=false` (Marathon 1.x),
            // apply the body on top of the current definition.
            let partial = is_patch || !q.iter().any(|(k, v)| k == "partialUpdate" && v == "false");
            if let (true, Some(current)) = (partial, current) {
                let mut base = serde_json::to_value(current).unwrap_or_default();
                if let (Value::Object(b), Value::Object(p)) = (&mut base, v.clone()) {
                    for (k, val) in p {
                        b.insert(k, val);
                    }
                }
                v = base;
            }
            let def = match AppDefinition::from_value(v) {
                Ok(d) => d,
                Err(e) => return invalid(&e),
            };
            if let Some(r) = port_conflict(&api, &def) {
                return r;
            }
            if let Some(r) = super::http_groups::check_dependencies(&api, std::slice::from_ref(&def)) {
                return r;
            }
            let existed = api.marathon.with(|s| s.app(&id).is_some());
            match api.marathon.put_app(def, force).await {
                Err(e) => storage(&e),
                Ok(Err(l)) => locked(&l),
                Ok(Ok(Some(d))) => deployed(if existed { StatusCode::OK } else { StatusCode::CREATED }, &d),
                Ok(Ok(None)) => Json(json!({"deploymentId": null, "version": version_now()})).into_response(),
            }
        }
        (Method::DELETE, "") if api.marathon.with(|s| s.app(&id).is_none()) => {
            match api.marathon.delete_unreadable(&id).await {
                Err(e) => storage(&e),
                Ok(true) => Json(json!({"deploymentId": null, "version": version_now()})).into_response(),
                Ok(false) => missing(),
            }
        }
        (Method::DELETE, "") => match api.marathon.delete_app(&id, force).await {
            Err(e) => storage(&e),
            Ok(Err(l)) => locked(&l),
            Ok(Ok(Some(d))) => deployed(StatusCode::OK, &d),
            Ok(Ok(None)) => missing(),
        },
        (Method::GET, "/versions") => {
            if api.marathon.with(|s| s.app(&id).is_none()) {
                return missing();
            }
            match api.marathon.versions(&id).await {
                Ok(v) => Json(json!({ "versions": v })).into_response(),
                Err(e) => storage(&e),
            }
        }
        (Method::GET, v) if v.starts_with("/versions/") => {
            match api.marathon.version(&id, &v["/versions/".len()..]).await {
                Ok(Some(app)) => Json(app).into_response(),
                Ok(None) => message(
                    StatusCode::NOT_FOUND,
                    format!("App '{id}' does not exist in version {}", &v[10..]),
                ),
                Err(e) => storage(&e),
            }
        }
        (Method::POST, "/restart") => match api.marathon.restart_app(&id, force).await {
            Err(e) => storage(&e),
            Ok(Err(l)) => locked(&l),
            Ok(Ok(Some(d))) => deployed(StatusCode::OK, &d),
            Ok(Ok(None)) => missing(),
        },
        (Method::GET, "/tasks") => {
            if api.marathon.with(|s| s.app(&id).is_none()) {
                return missing();
            }
            api.marathon.with(|s| {
                let tasks: Vec<TaskView<'_>> = s.instances_of(&id).map(|i| task_view(&api.marathon, s, i)).collect();
                json_response(StatusCode::OK, &Keyed("tasks", tasks))
            })
        }
        (Method::DELETE, "/tasks") => {
            let host = q.iter().find(|(k, _)| k == "host").map(|(_, v)| v.clone());
            let (ids, answer): (Vec<TaskId>, Response) = api.marathon.with(|s| {
                let victims: Vec<&Instance> = s
                    .instances_of(&id)
                    .filter(|i| host.as_deref().is_none_or(|h| h == i.hostname))
                    .collect();
                let views: Vec<TaskView<'_>> = victims.iter().map(|i| task_view(&api.marathon, s, i)).collect();
                (
                    victims.iter().map(|i| i.task_id.clone()).collect(),
                    json_response(StatusCode::OK, &Keyed("tasks", views)),
                )
            });
            let (_, deployments) = api.marathon.kill_tasks(&ids, flag(&q, "scale")).await;
            // Marathon answers a scaling kill with the deployment it starts.
            match deployments.first() {
                Some(d) => deployed(StatusCode::OK, d),
                None => answer,
            }
        }
        (method @ (Method::GET | Method::DELETE), t) if t.starts_with("/tasks/") => {
            let task = &t["/tasks/".len()..];
            let found = api.marathon.with(|s| {
                s.instances_of(&id).find(|i| i.task_id.as_str() == task).map(|i| {
                    (
                        i.task_id.clone(),
                        json_response(StatusCode::OK, &Keyed("task", task_view(&api.marathon, s, i))),
                    )
                })
            });
            let Some((task_id, answer)) = found else {
                return message(StatusCode::NOT_FOUND, format!("Task '{task}' does not exist"));
            };
            if method == Method::GET {
                return answer;
            }
            let (_, deployments) = api.marathon.kill_tasks(&[task_id], flag(&q, "scale")).await;
            match deployments.first() {
                Some(d) => deployed(StatusCode::OK, d),
                None => answer,
            }
        }
        (m, s) => message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not supported on /v2/apps/…{s}"),
        ),
    }
}

/// A 422 when `def` asks for a service port another app holds.
pub(super) fn port_conflict(api: &Api, def: &AppDefinition) -> Option<Response> {
    let (port, other) = api.marathon.with(|s| s.service_port_conflict(def))?;
    let text = format!("Requested service port {port} conflicts with a service port in use by app {other}");
    Some(invalid(&Invalid {
        message: "Object is not valid".into(),
        details: vec![crate::marathon::Violation {
            path: "/portDefinitions".into(),
            errors: vec![text],
        }],
    }))
}

/// `GET /v2/tasks`: every task, or those of `?status=running|staging`
/// (repeatable); with `Accept: text/plain`, the text form old load balancers
/// read: one line per app and service port, `app_id<TAB>servicePort<TAB>
/// host:port<TAB>…`, over the running tasks.
async fn list_tasks(State(api): State<Api>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let wanted: Vec<TaskState> = q
        .iter()
        .filter(|(k, _)| k == "status")
        .filter_map(|(_, v)| match v.to_ascii_lowercase().as_str() {
            "running" => Some(TaskState::Running),
            "staging" => Some(TaskState::Staging),
            _ => None,
        })
        .collect();
    let keep = |i: &&Instance| {
        wanted.is_empty()
            || wanted.contains(&i.state)
            || (wanted.contains(&TaskState::Staging) && i.state == TaskState::Starting)
    };
    let text = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json"));
    api.marathon.with(|s| {
        if text {
            let mut out = String::new();
            for app in s.apps() {
                let running: Vec<&Instance> = s
                    .instances_of(&app.def.id)
                    .filter(|i| i.state == TaskState::Running)
                    .collect();
                for (j, service_port) in service_ports(&app.def).into_iter().enumerate() {
                    out.push_str(&app.def.id.trim_start_matches('/').replace('/', "_"));
                    out.push_str(&format!("\t{service_port}\t"));
                    for i in &running {
                        if let Some(port) = i.ports.get(j) {
                            out.push_str(&format!("{}:{port}\t", i.hostname));
                        }
                    }
                    out.push('\n');
                }
            }
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                out,
            )
                .into_response();
        }
        let tasks: Vec<TaskView<'_>> = s
            .instances()
            .filter(keep)
            .map(|i| task_view(&api.marathon, s, i))
            .collect();
        json_list_response("tasks", &tasks, 320)
    })
}

/// `/v2/eventSubscriptions` (HTTP callbacks) are not supported: events
/// stream from `/v2/events` instead. A clear answer rather than a 404.
async fn event_subscriptions() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "HTTP callback event subscriptions are not supported: read the event stream at /v2/events (Server-Sent Events) instead",
    )
}

async fn delete_tasks(State(api): State<Api>, Query(q): Query<Vec<(String, String)>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Ids {
        ids: Vec<String>,
    }
    let Ok(ids) = serde_json::from_slice::<Ids>(&body) else {
        return message(StatusCode::BAD_REQUEST, "expected {\"ids\": [task ids]}");
    };
    let tasks: Vec<TaskId> = ids.ids.into_iter().filter_map(|t| TaskId::new(t).ok()).collect();
    let answer = api.marathon.with(|s| {
        let killed: Vec<TaskView<'_>> = tasks
            .iter()
            .filter_map(|t| s.instance(t))
            .map(|i| task_view(&api.marathon, s, i))
            .collect();
        json_response(StatusCode::OK, &Keyed("tasks", killed))
    });
    let (_, deployments) = api.marathon.kill_tasks(&tasks, flag(&q, "scale")).await;
    match deployments.first() {
        Some(d) => deployed(StatusCode::OK, d),
        None => answer,
    }
}

async fn list_deployments(State(api): State<Api>) -> Response {
    let all: Vec<Value> = api.marathon.with(|s| s.deployments().map(deployment_json).collect());
    Json(all).into_response()
}

async fn get_deployment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api
        .marathon
        .with(|s| s.deployments().find(|d| d.id == id).map(deployment_json))
    {
        Some(d) => Json(d).into_response(),
        None => message(StatusCode::NOT_FOUND, format!("DeploymentPlan {id} does not exist")),
    }
}

async fn delete_deployment(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    match api.marathon.stop_deployment(&id, flag(&q, "force")).await {
        Err(e) => storage(&e),
        Ok(None) => message(StatusCode::NOT_FOUND, format!("DeploymentPlan {id} does not exist")),
        Ok(Some(None)) => StatusCode::ACCEPTED.into_response(),
        Ok(Some(Some(rollback))) => deployed(StatusCode::OK, &rollback),
    }
}

async fn queue(State(api): State<Api>) -> Response {
    let now = Instant::now();
    let items: Vec<Value> = api.marathon.with(|s| {
        let wanted: BTreeMap<String, u32> = s
            .launches_wanted(now)
            .into_iter()
            .map(|(a, n)| (a.id.clone(), n))
            .collect();
        s.apps()
            .filter(|a| wanted.contains_key(&a.def.id) || !a.delay.ready(now))
            .map(|a| {
                let running = s.instances().filter(|i| i.app_id == a.def.id).count();
                json!({
                    "app": serde_json::to_value(&a.def).unwrap_or_default(),
                    "count": (a.def.instances as usize).saturating_sub(running),
                    "delay": a.delay.view(now),
                })
            })
            .collect()
    });
    // Stored apps that no longer load wait here for an operator, never run.
    let unreadable = api.marathon.unreadable().into_iter().map(|u| {
        json!({
            "app": {"id": u.id},
            "count": 0,
            "delay": {"overdue": false, "timeLeftSeconds": 0},
            "unreadable": true,
            "lastFailure": u.reason,
        })
    });
    let items: Vec<Value> = items.into_iter().chain(unreadable).collect();
    Json(json!({ "queue": items })).into_response()
}

async fn queue_delay(State(api): State<Api>, method: Method, Path(rest): Path<String>) -> Response {
    let Some(id) = rest.trim_end_matches('/').strip_suffix("/delay") else {
        return message(StatusCode::NOT_FOUND, "expected /v2/queue/{appId}/delay");
    };
    if method != Method::DELETE {
        return message(StatusCode::METHOD_NOT_ALLOWED, "only DELETE /v2/queue/{appId}/delay");
    }
    let Ok(id) = canonical_id(id) else {
        return message(StatusCode::BAD_REQUEST, format!("invalid app id {id:?}"));
    };
    if api.marathon.reset_delay(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist"))
    }
}

/// `/v2/events`: Server-Sent Events, opened (as Marathon does) with an
/// `event_stream_attached` naming the client, filtered by `event_type`.
/// Up to 4,096 events wait for a client; one further behind is cut off.
async fn events(
    State(api): State<Api>,
    Query(q): Query<Vec<(String, String)>>,
    parts: axum::http::request::Parts,
) -> Response {
    let types: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "event_type")
        .map(|(_, v)| v.clone())
        .collect();
    let remote = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(String::new, |c| c.0.ip().to_string());
    let attached = json!({"remoteAddress": remote, "eventType": "event_stream_attached",
        "timestamp": super::framework::version_now()});
    // A client so far behind that events it has not read were dropped
    // loses its stream (it would otherwise miss them silently), as
    // Marathon closes slow event-stream consumers; it reconnects and reads
    // the state afresh. Nobody ever waits for a slow client.
    let client = remote.clone();
    let live = BroadcastStream::new(api.marathon.events()).map_while(move |e| match e {
        Ok(e) => Some(e),
        Err(lagged) => {
            tracing::info!(%client, error = %lagged, "an event-stream client fell behind: its stream is closed");
            None
        }
    });
    let stream = tokio_stream::iter([attached]).chain(live).filter_map(move |e| {
        let kind = e.get("eventType").and_then(Value::as_str).unwrap_or("").to_string();
        if !types.is_empty() && !types.contains(&kind) {
            return None;
        }
        Some(Ok::<_, Infallible>(SseEvent::default().event(kind).data(e.to_string())))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// `/v2/info` in Marathon's shape (its RAML `MarathonInfo`): the framework
/// id as a string, and every config section present, as clients read them.
async fn info_handler(State(api): State<Api>) -> Response {
    let port: Option<u16> = api.info.http_address.rsplit(':').next().and_then(|p| p.parse().ok());
    let host = api.info.http_address.rsplit_once(':').map_or("", |(h, _)| h);
    let config = api.marathon.config();
    Json(json!({
        "name": "marathon",
        "version": concat!("1.10.0-orchestrator-", env!("CARGO_PKG_VERSION")),
        "buildref": concat!("orchestrator-", env!("CARGO_PKG_VERSION")),
        "frameworkId": api.marathon.framework_id().map(|f| f.to_string()),
        "leader": api.info.http_address,
        "elected": true,
        "http_config": {"http_port": port, "https_port": null},
        "marathon_config": {
            "master": api.info.master,
            "framework_name": config.name,
            "mesos_role": config.role,
            "mesos_user": config.user,
            "hostname": host,
            "failover_timeout": config.failover_timeout.as_secs(),
            "local_port_min": super::scheduler::SERVICE_PORTS.start(),
            "local_port_max": super::scheduler::SERVICE_PORTS.end(),
            "max_instances_per_offer": super::matcher::MAX_LAUNCHES_PER_OFFER,
            "decline_offer_duration": u64::try_from(config.decline_refuse.as_millis()).unwrap_or(u64::MAX),
            "ha": false,
            "checkpoint": true,
            "features": [],
        },
        "zookeeper_config": {},
    }))
    .into_response()
}

async fn leader(State(api): State<Api>) -> Response {
    Json(json!({ "leader": api.info.http_address })).into_response()
}

async fn abdicate() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Leader election is not configured: this scheduler is the only one and cannot abdicate",
    )
}

/// `/metrics`: the scheduler's gauges, as OpenMetrics to Prometheus and in
/// the classic text format to everyone else.
async fn metrics(State(api): State<Api>, headers: axum::http::HeaderMap) -> Response {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    let (apps, tasks, running, deployments, queued) = api.marathon.with(|s| {
        (
            s.apps().count(),
            s.instances().count(),
            s.instances().filter(|i| i.state == TaskState::Running).count(),
            s.deployments().count(),
            s.launches_wanted(Instant::now())
                .iter()
                .map(|(_, n)| *n as usize)
                .sum::<usize>(),
        )
    });
    let mut registry = Registry::with_prefix("marathon");
    for (name, help, v) in [
        ("apps", "Apps defined", apps),
        ("tasks", "Instances known", tasks),
        ("tasks_running", "Instances running", running),
        ("deployments", "Deployments in progress", deployments),
        ("launch_queue", "Instances waiting for an offer", queued),
    ] {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    }
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = orchestrator_core::exposition::negotiate(accept, out);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
