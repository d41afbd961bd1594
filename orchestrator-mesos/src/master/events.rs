//! The v1 operator API's `POST /api/v1`: `GET_STATE`, and `SUBSCRIBE`, a
//! RecordIO stream that starts with `SUBSCRIBED` (the whole state) and
//! goes on with `TASK_ADDED` and `TASK_UPDATED` as they happen, and a
//! `HEARTBEAT` every 15 s, in Mesos's JSON shapes. Watchers (DNS, load
//! balancers, dashboards) follow the cluster from it instead of polling
//! `/master/state`.
//!
//! `AGENT_ADDED` and `AGENT_REMOVED` are sent as agents register and
//! become unreachable; framework events are not sent yet (`GET_STATE`
//! has the frameworks).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use orchestrator_core::{AgentId, Allocator, FrameworkId, FrameworkInfo, TaskInfo, TaskState, TaskStatus};
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::handle::{lock, MasterHandle};
use super::state::{AgentEntry, AgentState, Master, TaskEntry};
use crate::api::json::{error, refuse_non_json};
use crate::api::recordio;

/// Events an operator subscriber may fall behind by before its stream is
/// closed (it subscribes again and gets the state afresh).
pub(super) const OPERATOR_BUFFER: usize = 16_384;

/// How often a subscriber hears a `HEARTBEAT` (Mesos: 15 s).
const HEARTBEAT: Duration = Duration::from_secs(15);

fn id(value: &str) -> Value {
    json!({ "value": value })
}

/// A task in the v1 `Task` shape.
fn task_json(framework_id: &str, info: &TaskInfo, state: TaskState, statuses: &[&TaskStatus]) -> Value {
    let mut task = json!({
        "name": info.name,
        "task_id": id(info.task_id.as_str()),
        "framework_id": id(framework_id),
        "agent_id": id(info.agent_id.as_str()),
        "state": state,
        "statuses": statuses,
    });
    if let Ok(Value::Object(wire)) = serde_json::to_value(info) {
        for key in ["resources", "container", "labels", "discovery"] {
            if let Some(v) = wire.get(key) {
                task[key] = v.clone();
            }
        }
    }
    task
}

fn entry_json(framework_id: &FrameworkId, t: &TaskEntry) -> Value {
    let statuses: Vec<&TaskStatus> = t.status.iter().collect();
    task_json(framework_id.as_str(), &t.info, t.state, &statuses)
}

/// The `GET_STATE` answer's body.
fn get_state<A: Allocator>(master: &Master<A>) -> Value {
    let mut tasks = Vec::new();
    let mut completed = Vec::new();
    let mut frameworks = Vec::new();
    for (fid, f) in master.frameworks() {
        tasks.extend(f.tasks.values().map(|t| entry_json(fid, t)));
        completed.extend(f.completed.iter().map(|t| entry_json(fid, t)));
        let mut info = serde_json::to_value(&f.info).unwrap_or(Value::Null);
        info["id"] = id(fid.as_str());
        frameworks
            .push(json!({"framework_info": info, "active": f.connected, "connected": f.connected, "recovered": false}));
    }
    let agents: Vec<Value> = master.agents().iter().map(|(aid, a)| agent_json(aid, a)).collect();
    json!({
        "get_tasks": {"tasks": tasks, "completed_tasks": completed},
        "get_executors": {},
        "get_frameworks": {"frameworks": frameworks},
        "get_agents": {"agents": agents},
    })
}

/// An agent in the v1 `GetAgents.Agent` shape.
fn agent_json(aid: &AgentId, a: &AgentEntry) -> Value {
    let port = a.info.port.unwrap_or(5051);
    json!({
        "agent_info": {"id": id(aid.as_str()), "hostname": a.info.hostname, "port": port},
        "active": a.state == AgentState::Active,
        "pid": format!("slave(1)@{}:{port}", a.info.hostname),
    })
}

fn record(event: &Value) -> Bytes {
    Bytes::from(recordio::encode(&serde_json::to_vec(event).unwrap_or_default()))
}

/// The `AGENT_ADDED` record of an agent that (re)registered.
pub(super) fn agent_added(aid: &AgentId, a: &AgentEntry) -> Bytes {
    record(&json!({"type": "AGENT_ADDED", "agent_added": {"agent": agent_json(aid, a)}}))
}

/// The `AGENT_REMOVED` record of an agent that left.
pub(super) fn agent_removed(aid: &AgentId) -> Bytes {
    record(&json!({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": id(aid.as_str())}}))
}

/// The `TASK_ADDED` record of a launch.
pub(super) fn task_added(framework: &FrameworkInfo, task: &TaskInfo) -> Bytes {
    let fid = framework.id.as_ref().map_or("", |f| f.as_str());
    let event = json!({"type": "TASK_ADDED", "task_added": {"task": task_json(fid, task, TaskState::Staging, &[])}});
    Bytes::from(recordio::encode(&serde_json::to_vec(&event).unwrap_or_default()))
}

/// The `TASK_UPDATED` record of a status update.
pub(super) fn task_updated(framework_id: &FrameworkId, status: &TaskStatus) -> Bytes {
    let event = json!({"type": "TASK_UPDATED", "task_updated": {
        "framework_id": id(framework_id.as_str()), "status": status, "state": status.state,
    }});
    Bytes::from(recordio::encode(&serde_json::to_vec(&event).unwrap_or_default()))
}

/// `POST /api/v1`.
pub(super) async fn operator_call<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_non_json(&headers) {
        return refused;
    }
    let call: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Failed to parse body into Call: {e}")),
    };
    match call["type"].as_str() {
        Some("GET_STATE") => {
            let state = get_state(&lock(&h.shared.master));
            Json(json!({"type": "GET_STATE", "get_state": state})).into_response()
        }
        Some("SUBSCRIBE") => subscribe(&h),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("operator call {other} is not supported by this master (GET_STATE and SUBSCRIBE are)"),
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "Failed to validate master::Call: Expecting 'type' to be present",
        ),
    }
}

impl<A: Allocator + 'static> MasterHandle<A> {
    /// Tells operator subscribers about an agent that (re)registered.
    pub(super) fn announce_agent(&self, master: &Master<A>, aid: &AgentId) {
        if self.shared.operator.receiver_count() == 0 {
            return;
        }
        if let Some(a) = master.agents().get(aid) {
            let _ = self.shared.operator.send(agent_added(aid, a));
        }
    }
}

fn subscribe<A: Allocator + 'static>(h: &MasterHandle<A>) -> Response {
    // Listening before the state is read: an event between the two comes
    // twice (harmless) rather than never.
    let events = h.shared.operator.subscribe();
    let state = get_state(&lock(&h.shared.master));
    let subscribed = json!({"type": "SUBSCRIBED", "subscribed": {
        "get_state": state, "heartbeat_interval_seconds": HEARTBEAT.as_secs_f64(),
    }});
    let first = Bytes::from(recordio::encode(&serde_json::to_vec(&subscribed).unwrap_or_default()));
    let heartbeat = Bytes::from(recordio::encode(br#"{"type":"HEARTBEAT"}"#));
    let beats = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT,
        HEARTBEAT,
    ))
    .map(move |_| Some(heartbeat.clone()));
    // A subscriber that falls too far behind loses its stream (and
    // subscribes again), as Mesos drops slow subscribers.
    let events = BroadcastStream::new(events).map(|e| e.ok()).take_while(Option::is_some);
    let rest = events.merge(beats).take_while(Option::is_some).filter_map(|b| b);
    let stream = tokio_stream::once(first).chain(rest).map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
