//! JSON shapes both the master's and the agent's endpoints write.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use orchestrator_core::{Resources, Value};
use serde_json::json;

/// A JSON error `{"message": ...}` with a status, as Mesos answers.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

/// The `415` for a request whose body is not JSON (no `Content-Type`
/// counts as JSON), as the master's v1 endpoints answer other encodings.
pub(crate) fn refuse_non_json(headers: &axum::http::HeaderMap) -> Option<Response> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    (!content_type.starts_with("application/json")).then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type '{content_type}' is not supported: this master speaks application/json"),
        )
    })
}

/// Resources as `/master/state` shows them: `{"cpus": 4, "ports": "[31000-32000]"}`.
pub fn resources_json(resources: &Resources) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for r in resources {
        let entry = map.entry(r.name.to_string());
        match &r.value {
            Value::Scalar(s) => {
                let prev = match &entry {
                    serde_json::map::Entry::Occupied(o) => o.get().as_f64().unwrap_or(0.0),
                    serde_json::map::Entry::Vacant(_) => 0.0,
                };
                *entry.or_insert(json!(0)) = json!(prev + s.value());
            }
            other => {
                entry.or_insert(json!(other.to_string()));
            }
        }
    }
    serde_json::Value::Object(map)
}
