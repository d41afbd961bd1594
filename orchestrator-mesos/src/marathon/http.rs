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
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use orchestrator_core::{TaskId, TaskState};
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::app::{canonical_id, AppDefinition, Invalid};
use super::framework::{version_now, Marathon};
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
struct Api {
    marathon: Marathon,
    info: ApiInfo,
}

/// The `/v2` routes plus `/ping` and `/metrics`.
pub fn router(marathon: Marathon, info: ApiInfo) -> Router {
    Router::new()
        .route("/v2/apps", get(list_apps).post(create_app))
        .route("/v2/apps/{*rest}", any(app_route))
        .route("/v2/tasks", get(list_tasks))
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

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "message": text.into() }))).into_response()
}

fn invalid(e: &Invalid) -> Response {
    let status = if e.details.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(json!(e))).into_response()
}

fn locked(l: &Locked) -> Response {
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

fn storage(e: &crate::Error) -> Response {
    message(StatusCode::SERVICE_UNAVAILABLE, format!("state store failed: {e}"))
}

fn deployed(status: StatusCode, d: &Deployment) -> Response {
    let mut r = (status, Json(json!({"deploymentId": d.id, "version": d.version}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&d.id) {
        r.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    r
}

fn flag(q: &[(String, String)], name: &str) -> bool {
    q.iter().any(|(k, v)| k == name && (v.is_empty() || v == "true"))
}

fn task_json(m: &Marathon, i: &Instance) -> Value {
    let health: Vec<Value> = m
        .health_of(&i.task_id)
        .into_iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["taskId"] = json!(i.task_id);
            v["instanceId"] = json!(i.task_id);
            v
        })
        .collect();
    json!({
        "id": i.task_id, "appId": i.app_id, "host": i.hostname, "ports": i.ports,
        "slaveId": i.agent_id, "state": i.state, "version": i.version,
        "startedAt": i.started_at_ms, "healthCheckResults": health,
    })
}

fn app_json(m: &Marathon, s: &Scheduler, def: &AppDefinition, embed_tasks: bool) -> Value {
    let mut v = serde_json::to_value(def).unwrap_or_else(|_| json!({}));
    let tasks: Vec<&Instance> = s.instances().filter(|i| i.app_id == def.id).collect();
    let count = |f: &dyn Fn(&Instance) -> bool| tasks.iter().filter(|i| f(i)).count();
    if let Value::Object(obj) = &mut v {
        obj.insert(
            "tasksStaged".into(),
            json!(count(&|i| matches!(i.state, TaskState::Staging | TaskState::Starting))),
        );
        obj.insert("tasksRunning".into(), json!(count(&|i| i.state == TaskState::Running)));
        obj.insert("tasksHealthy".into(), json!(count(&|i| i.healthy == Some(true))));
        obj.insert("tasksUnhealthy".into(), json!(count(&|i| i.healthy == Some(false))));
        obj.insert(
            "deployments".into(),
            json!(s
                .deployments()
                .filter(|d| d.app_id == def.id)
                .map(|d| json!({"id": d.id}))
                .collect::<Vec<_>>()),
        );
        if embed_tasks {
            obj.insert(
                "tasks".into(),
                json!(tasks.iter().map(|i| task_json(m, i)).collect::<Vec<_>>()),
            );
        }
    }
    v
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
    let apps: Vec<Value> = api.marathon.with(|s| {
        s.apps()
            .map(|a| &a.def)
            .filter(|d| id.as_deref().is_none_or(|f| d.id.contains(f)))
            .filter(|d| label.as_deref().is_none_or(|sel| label_matches(d, sel)))
            .map(|d| app_json(&api.marathon, s, d, embed_tasks))
            .collect()
    });
    Json(json!({ "apps": apps })).into_response()
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
    match api.marathon.put_app(def.clone(), flag(&q, "force")).await {
        Err(e) => storage(&e),
        Ok(Err(l)) => locked(&l),
        Ok(Ok(d)) => {
            let body = api
                .marathon
                .with(|s| s.app(&def.id).map(|a| app_json(&api.marathon, s, &a.def, false)));
            let mut r = (StatusCode::CREATED, Json(body.unwrap_or(Value::Null))).into_response();
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
        (Method::GET, "") => match api
            .marathon
            .with(|s| s.app(&id).map(|a| app_json(&api.marathon, s, &a.def, true)))
        {
            Some(app) => Json(json!({ "app": app })).into_response(),
            None => missing(),
        },
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
            let existed = api.marathon.with(|s| s.app(&id).is_some());
            match api.marathon.put_app(def, force).await {
                Err(e) => storage(&e),
                Ok(Err(l)) => locked(&l),
                Ok(Ok(Some(d))) => deployed(if existed { StatusCode::OK } else { StatusCode::CREATED }, &d),
                Ok(Ok(None)) => Json(json!({"deploymentId": null, "version": version_now()})).into_response(),
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
            let tasks: Vec<Value> = api.marathon.with(|s| {
                s.instances()
                    .filter(|i| i.app_id == id)
                    .map(|i| task_json(&api.marathon, i))
                    .collect()
            });
            Json(json!({ "tasks": tasks })).into_response()
        }
        (Method::DELETE, "/tasks") => {
            let host = q.iter().find(|(k, _)| k == "host").map(|(_, v)| v.clone());
            let victims: Vec<(TaskId, Value)> = api.marathon.with(|s| {
                s.instances()
                    .filter(|i| i.app_id == id && host.as_deref().is_none_or(|h| h == i.hostname))
                    .map(|i| (i.task_id.clone(), task_json(&api.marathon, i)))
                    .collect()
            });
            let ids: Vec<TaskId> = victims.iter().map(|(t, _)| t.clone()).collect();
            api.marathon.kill_tasks(&ids, flag(&q, "scale")).await;
            Json(json!({ "tasks": victims.into_iter().map(|(_, v)| v).collect::<Vec<_>>() })).into_response()
        }
        (m, s) => message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not supported on /v2/apps/…{s}"),
        ),
    }
}

async fn list_tasks(State(api): State<Api>) -> Response {
    let tasks: Vec<Value> = api
        .marathon
        .with(|s| s.instances().map(|i| task_json(&api.marathon, i)).collect());
    Json(json!({ "tasks": tasks })).into_response()
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
    let killed: Vec<Value> = api.marathon.with(|s| {
        tasks
            .iter()
            .filter_map(|t| s.instance(t))
            .map(|i| task_json(&api.marathon, i))
            .collect()
    });
    api.marathon.kill_tasks(&tasks, flag(&q, "scale")).await;
    Json(json!({ "tasks": killed })).into_response()
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

async fn events(State(api): State<Api>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let types: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "event_type")
        .map(|(_, v)| v.clone())
        .collect();
    let stream = BroadcastStream::new(api.marathon.events()).filter_map(move |e| {
        let e = e.ok()?;
        let kind = e.get("eventType").and_then(Value::as_str).unwrap_or("").to_string();
        if !types.is_empty() && !types.contains(&kind) {
            return None;
        }
        Some(Ok::<_, Infallible>(SseEvent::default().event(kind).data(e.to_string())))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn info_handler(State(api): State<Api>) -> Response {
    Json(json!({
        "name": "marathon",
        "version": concat!("1.10.0-orchestrator-", env!("CARGO_PKG_VERSION")),
        "frameworkId": api.marathon.framework_id(),
        "leader": api.info.http_address,
        "elected": true,
        "http_config": {"http_port": api.info.http_address.rsplit(':').next()},
        "marathon_config": {"master": api.info.master, "framework_name": "marathon"},
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

async fn metrics(State(api): State<Api>) -> Response {
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
