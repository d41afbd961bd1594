//! The master's HTTP server: the Mesos v1 scheduler API at
//! `/api/v1/scheduler`, the agents' channel under `/api/v1/agents`, and
//! `/health` and `/master/state`; the other operator endpoints are in
//! `operator.rs`.
//!
//! The handlers only move data: every decision is the [`Master`](super::Master)
//! state machine's, and its effects are delivered by the [`MasterHandle`].

use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orchestrator_core::{AgentId, Allocator, FrameworkId, TaskId};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::handle::{lock, MasterHandle, Sink, STREAM_BUFFER};
use crate::api::agent::{AgentUpdate, AgentUpdates, RegisterAgent, ReregisterAgent, MAX_UPDATE_BATCH};
use crate::api::json::{error, refuse_non_json};
use crate::api::scheduler::{Call, SchedulerCall};
use crate::Error;

/// The largest request body accepted.
pub const MAX_BODY: usize = 16 << 20;

fn bad_request(e: Error) -> Response {
    error(StatusCode::BAD_REQUEST, e.to_string())
}

fn stream_response(rx: mpsc::Receiver<Bytes>, stream_id: Option<&str>) -> Response {
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = stream_id.and_then(|s| HeaderValue::from_str(s).ok()) {
        response.headers_mut().insert("Mesos-Stream-Id", id);
    }
    response
}

impl<A: Allocator + 'static> MasterHandle<A> {
    /// The HTTP routes.
    pub fn router(&self) -> Router {
        // What only the leader serves; a standby answers 307 to it.
        let leader_only = Router::new()
            .route("/api/v1", post(super::events::operator_call::<A>))
            .route("/api/v1/scheduler", post(scheduler::<A>))
            .route("/api/v1/agents/register", post(agent_register::<A>))
            .route("/api/v1/agents/reregister", post(agent_reregister::<A>))
            .route("/api/v1/agents/{agent_id}/commands", get(agent_commands::<A>))
            .route("/api/v1/agents/{agent_id}/heartbeat", post(agent_heartbeat::<A>))
            .route("/api/v1/agents/{agent_id}/unregister", post(agent_unregister::<A>))
            .route("/api/v1/agents/{agent_id}/update", post(agent_update::<A>))
            .route("/api/v1/agents/{agent_id}/updates", post(agent_updates::<A>))
            // As Mesos: a standby's state would be empty, so readers of the
            // state (Mesos-DNS, dashboards) are sent to the leader's.
            .route("/master/state", get(state::<A>))
            .merge(super::operator::leader_routes::<A>())
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                super::leading::leader_only::<A>,
            ));
        Router::new()
            .merge(leader_only)
            .route("/health", get(|| async { StatusCode::OK }))
            .route("/master/redirect", get(super::leading::redirect::<A>))
            .merge(super::operator::routes::<A>())
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }
}

/// The agent id of an `/api/v1/agents/{agent_id}/…` path, or the 400 to answer.
fn agent_id(raw: String) -> Result<AgentId, Box<Response>> {
    AgentId::new(raw).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e.to_string())))
}

/// 503 for a registry that could not be written: nothing was changed.
fn registry_failed(e: &Error) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The registry could not be written; nothing changed: {e}"),
    )
}

async fn scheduler<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_non_json(&headers) {
        return refused;
    }
    let (framework_id, call) = match Call::from_json(&body).and_then(Call::validate) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let now = Instant::now();
    if let SchedulerCall::Subscribe(_) = call {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        return match h.subscribe_with(framework_id, call, Sink::Http(tx)) {
            Ok((_, id)) => stream_response(rx, Some(&id)),
            Err(e) => bad_request(e),
        };
    }
    let Some(fw) = framework_id else {
        return error(StatusCode::BAD_REQUEST, "Expecting 'framework_id' to be present");
    };
    let given = headers.get("Mesos-Stream-Id").and_then(|v| v.to_str().ok());
    let expected = lock(&h.shared.streams).get(&fw).map(|s| s.id.clone());
    match (given, expected) {
        (_, None) => return error(StatusCode::FORBIDDEN, format!("Framework {fw} is not subscribed")),
        (None, _) => {
            return error(StatusCode::BAD_REQUEST, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        }
        (Some(g), Some(e)) if g != e => {
            return error(StatusCode::BAD_REQUEST, format!("The stream ID '{g}' included in this request didn't match the stream ID currently associated with framework ID {fw}"))
        }
        _ => {}
    }
    let result = lock(&h.shared.master).call(Some(fw), call, now);
    match result {
        Ok(effects) => {
            h.dispatch(effects);
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn agent_register<A: Allocator + 'static>(State(h): State<MasterHandle<A>>, body: Bytes) -> Response {
    let req: RegisterAgent = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse agent registration: {e}"),
            )
        }
    };
    // The registry admits the agent before the master acts on it.
    let id = match lock(&h.shared.master).new_agent_id() {
        Ok(id) => id,
        Err(e) => return bad_request(e),
    };
    let mut info = req.agent_info;
    info.id = Some(id.clone());
    if let Some(registry) = h.registry() {
        if let Err(e) = registry.admit(&info).await {
            return registry_failed(&e);
        }
    }
    let registered = {
        let mut master = lock(&h.shared.master);
        let registered = master.add_agent(id.clone(), info, Instant::now());
        if registered.is_ok() {
            h.announce_agent(&master, &id);
        }
        registered
    };
    match registered {
        Ok(()) => {
            h.shared.allocate_soon.notify_one();
            Json(json!({ "agent_id": id })).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn agent_reregister<A: Allocator + 'static>(State(h): State<MasterHandle<A>>, body: Bytes) -> Response {
    let req: ReregisterAgent = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse agent re-registration: {e}"),
            )
        }
    };
    let id = req.agent_id.clone();
    let known = lock(&h.shared.master).agents().contains_key(&id);
    if let (false, Some(registry)) = (known, h.registry()) {
        let mut info = req.agent_info.clone();
        info.id = Some(id.clone());
        if let Err(e) = registry.admit(&info).await {
            return registry_failed(&e);
        }
    }
    let tasks = req.tasks;
    let result = {
        let mut master = lock(&h.shared.master);
        let result = master.reregister_agent(req.agent_id, req.agent_info, tasks, Instant::now());
        if let Ok(effects) = &result {
            h.announce_agent(&master, &id);
            // Under the master's lock: no launch for a lost task can be
            // queued after its removal from the backlog.
            let lost: std::collections::HashSet<TaskId> = effects
                .iter()
                .filter_map(|e| match e {
                    super::state::Effect::ToFramework { event, .. } => {
                        event.update.as_ref().map(|u| u.status.task_id.clone())
                    }
                    _ => None,
                })
                .collect();
            lock(&h.shared.agents)
                .entry(id.clone())
                .or_default()
                .reconnecting(&lost);
        }
        result
    };
    match result {
        Ok(effects) => {
            h.dispatch(effects);
            h.shared.allocate_soon.notify_one();
            Json(json!({ "agent_id": id })).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn agent_commands<A: Allocator + 'static>(State(h): State<MasterHandle<A>>, Path(raw): Path<String>) -> Response {
    let id = match agent_id(raw) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    if !lock(&h.shared.master).agents().contains_key(&id) {
        return error(StatusCode::NOT_FOUND, format!("Unknown agent {id}: register first"));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let mut agents = lock(&h.shared.agents);
    let link = agents.entry(id).or_default();
    link.tx = Some(tx);
    link.flush();
    drop(agents);
    stream_response(rx, None)
}

async fn agent_heartbeat<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    Path(raw): Path<String>,
) -> Response {
    let id = match agent_id(raw) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let result = lock(&h.shared.master).agent_heartbeat(&id, Instant::now());
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

/// A drained agent leaves for good: the registry forgets it first, then
/// the master (its tasks still listed end as gone) and its command stream.
async fn agent_unregister<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    Path(raw): Path<String>,
) -> Response {
    let id = match agent_id(raw) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    if let Some(registry) = h.registry() {
        if let Err(e) = registry.remove_agent(&id).await {
            return registry_failed(&e);
        }
    }
    let (known, effects) = lock(&h.shared.master).remove_agent(&id);
    if !known {
        return error(StatusCode::NOT_FOUND, format!("Unknown agent {id}"));
    }
    lock(&h.shared.agents).remove(&id);
    h.dispatch(effects);
    if h.shared.operator.receiver_count() > 0 {
        let _ = h.shared.operator.send(super::events::agent_removed(&id));
    }
    h.shared.allocate_soon.notify_one();
    StatusCode::OK.into_response()
}

async fn agent_update<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let id = match agent_id(raw) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let update: AgentUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Failed to parse status update: {e}")),
    };
    let result = lock(&h.shared.master).status_update(&id, &update.framework_id, update.status, Instant::now());
    match result {
        Ok(effects) => {
            h.dispatch(effects);
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// A batch of status updates, applied in order under one lock. Updates the
/// master cannot take (their framework is unknown) are listed in the
/// answer as `refused`; the agent sends them again later, as after a lost
/// request. Updates whose framework's stream is full are `deferred` by
/// uuid, not applied: the agent sends them again shortly.
async fn agent_updates<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let id = match agent_id(raw) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let batch: AgentUpdates = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Failed to parse status updates: {e}")),
    };
    if batch.updates.len() > MAX_UPDATE_BATCH {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} status updates in one request; at most {MAX_UPDATE_BATCH} are taken",
                batch.updates.len()
            ),
        );
    }
    let now = Instant::now();
    let mut effects = Vec::with_capacity(batch.updates.len());
    let mut refused = Vec::new();
    let mut deferred = Vec::new();
    let mut room: std::collections::HashMap<FrameworkId, Option<usize>> = std::collections::HashMap::new();
    for u in &batch.updates {
        room.entry(u.framework_id.clone())
            .or_insert_with(|| h.update_room(&u.framework_id));
    }
    {
        let mut master = lock(&h.shared.master);
        if !master.agents().contains_key(&id) {
            return error(StatusCode::NOT_FOUND, format!("Unknown agent {id}: register first"));
        }
        for u in batch.updates {
            if let Some(Some(left)) = room.get_mut(&u.framework_id) {
                if *left == 0 {
                    deferred.extend(u.status.uuid);
                    continue;
                }
                *left -= 1;
            }
            let task_id = u.status.task_id.clone();
            match master.status_update(&id, &u.framework_id, u.status, now) {
                Ok(e) => effects.extend(e),
                Err(e) => refused.push(json!({ "task_id": task_id, "message": e.to_string() })),
            }
        }
    }
    h.dispatch(effects);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "refused": refused, "deferred": deferred })),
    )
        .into_response()
}

async fn state<A: Allocator + 'static>(State(h): State<MasterHandle<A>>) -> Response {
    let who = super::state_json::Identity {
        me: h.info(),
        leader: h.leader(),
        elected_time: if h.leads() { h.elected_time() } else { None },
    };
    let body = super::state_json::render(&lock(&h.shared.master), &who);
    match body {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the state: {e}"),
        ),
    }
}
