//! The agent's HTTP endpoints: `/state`, `/metrics/snapshot`, `/health`,
//! and Mesos's sandbox file API (`/files/browse`, `/files/read`), confined
//! to the agent's work directory.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_core::TaskState;
use serde::Deserialize;
use serde_json::json;

use super::Agent;
use crate::api::json::resources_json;

/// The most `/files/read` returns at once (Mesos's default page size).
const MAX_READ: u64 = 1 << 20;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

impl Agent {
    /// The agent's HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/health", get(|| async { StatusCode::OK }))
            .route("/state", get(state))
            .route("/metrics/snapshot", get(metrics))
            .route("/files/browse", get(browse))
            .route("/files/read", get(read))
            .with_state(self.clone())
    }

    /// `path` when it lies inside the work directory (after resolving `..`
    /// and links), else the status to answer.
    fn confined(&self, path: &str) -> Result<PathBuf, (StatusCode, String)> {
        let root = self
            .inner
            .config
            .work_dir
            .canonicalize()
            .map_err(|e| (StatusCode::NOT_FOUND, e.to_string()))?;
        let wanted = Path::new(path);
        let full = if wanted.is_absolute() {
            wanted.to_path_buf()
        } else {
            root.join(wanted)
        };
        let real = full
            .canonicalize()
            .map_err(|_| (StatusCode::NOT_FOUND, format!("'{path}' does not exist")))?;
        if !real.starts_with(&root) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("'{path}' is outside the agent's sandboxes"),
            ));
        }
        Ok(real)
    }
}

async fn state(State(agent): State<Agent>) -> Response {
    let books = agent.books();
    let tasks: Vec<_> = books
        .tasks
        .iter()
        .map(|((fw, task), r)| {
            json!({
                "id": task.as_str(),
                "name": r.task.name,
                "framework_id": fw.as_str(),
                "state": r.state,
                "resources": resources_json(&r.task.resources),
                "container_id": r.container.as_str(),
                "sandbox": r.sandbox,
            })
        })
        .collect();
    let c = &agent.inner.config;
    Json(json!({
        "id": agent.id().map(|id| id.to_string()),
        "hostname": c.hostname,
        "port": c.port,
        "master": c.master,
        "resources": resources_json(&c.resources),
        "attributes": c.attributes,
        "tasks": tasks,
        "unacknowledged_updates": books.updates.len(),
    }))
    .into_response()
}

async fn metrics(State(agent): State<Agent>) -> Response {
    let gc = agent.inner.gc.lock().unwrap_or_else(|p| p.into_inner()).metrics();
    let books = agent.books();
    let count = |s: TaskState| books.tasks.values().filter(|r| r.state == s).count() as f64;
    let mut body = json!({
        "slave/registered": if agent.id().is_some() { 1.0 } else { 0.0 },
        "slave/tasks_staging": count(TaskState::Staging),
        "slave/tasks_starting": count(TaskState::Starting),
        "slave/tasks_running": count(TaskState::Running),
        "slave/tasks_killing": count(TaskState::Killing),
        "slave/status_updates_pending": books.updates.len() as f64,
        "slave/cpus_total": agent.inner.config.resources.cpus(),
        "slave/mem_total": agent.inner.config.resources.mem(),
    });
    for (name, value) in gc {
        body[name] = json!(value);
    }
    Json(body).into_response()
}

#[derive(Deserialize)]
struct BrowseQuery {
    path: String,
}

/// Runs file-system work off the runtime's threads (a slow disk or a big
/// directory must not stall the agent's other requests).
async fn blocking(work: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("file access failed: {e}")))
}

async fn browse(State(agent): State<Agent>, Query(q): Query<BrowseQuery>) -> Response {
    blocking(move || browse_blocking(&agent, &q)).await
}

fn browse_blocking(agent: &Agent, q: &BrowseQuery) -> Response {
    let dir = match agent.confined(&q.path) {
        Ok(d) => d,
        Err((status, message)) => return error(status, message),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot list '{}': {e}", q.path)),
    };
    let mut out: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_secs();
            Some(json!({
                "path": e.path(),
                "size": meta.len(),
                "mode": format!("{:o}", meta.mode()),
                "mtime": mtime,
                "nlink": meta.nlink(),
                "uid": meta.uid(),
                "gid": meta.gid(),
            }))
        })
        .collect();
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Json(out).into_response()
}

#[derive(Deserialize)]
struct ReadQuery {
    path: String,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    length: Option<u64>,
}

async fn read(State(agent): State<Agent>, Query(q): Query<ReadQuery>) -> Response {
    blocking(move || read_blocking(&agent, &q)).await
}

fn read_blocking(agent: &Agent, q: &ReadQuery) -> Response {
    let file = match agent.confined(&q.path) {
        Ok(f) => f,
        Err((status, message)) => return error(status, message),
    };
    let mut f = match std::fs::File::open(&file) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot open '{}': {e}", q.path)),
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if q.offset == -1 {
        // Mesos's way to ask for the size only.
        return Json(json!({ "data": "", "offset": size })).into_response();
    }
    let Ok(offset) = u64::try_from(q.offset) else {
        return error(StatusCode::BAD_REQUEST, format!("negative offset {}", q.offset));
    };
    let length = q.length.unwrap_or(MAX_READ).min(MAX_READ);
    let mut buf = Vec::new();
    if offset < size && (f.seek(SeekFrom::Start(offset)).is_err() || f.take(length).read_to_end(&mut buf).is_err()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read '{}'", q.path));
    }
    Json(json!({ "data": String::from_utf8_lossy(&buf), "offset": offset })).into_response()
}
