//! The master's HTTP server: the Mesos v1 scheduler API at
//! `/api/v1/scheduler`, the agents' channel under `/api/v1/agents`, and
//! operator endpoints (`/health`, `/master/state`).
//!
//! The handlers only move data: every decision is the [`Master`] state
//! machine's, and its [`Effect`]s are delivered here — events to the
//! framework's subscription stream, commands to the agent's command stream.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orchestrator_core::{
    AgentId, AgentInfo, FrameworkId, FrameworkInfo, Resources, TaskId, TaskInfo, TaskStatus, Value,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::state::{Effect, Master};
use crate::api::recordio;
use crate::api::scheduler::{Call, Event, SchedulerCall};
use crate::Error;

/// Events or commands buffered per stream before the peer counts as gone
/// (reconciling 10,000s of tasks answers them all at once).
const STREAM_BUFFER: usize = 1 << 16;

/// The largest request body accepted.
pub const MAX_BODY: usize = 16 << 20;

/// What the master tells an agent, RecordIO-framed JSON on its command stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentCommand {
    /// Run a task.
    Launch {
        /// The framework.
        framework: Box<FrameworkInfo>,
        /// The task.
        task: Box<TaskInfo>,
    },
    /// Kill a task.
    Kill {
        /// The framework.
        framework_id: FrameworkId,
        /// The task.
        task_id: TaskId,
        /// Grace period override.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_seconds: Option<f64>,
    },
    /// An update was acknowledged: stop retrying it.
    Acknowledged {
        /// The framework.
        framework_id: FrameworkId,
        /// The task.
        task_id: TaskId,
        /// The update.
        uuid: String,
    },
}

/// An agent's status update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentUpdate {
    /// The task's framework.
    pub framework_id: FrameworkId,
    /// The status.
    pub status: TaskStatus,
}

/// Commands kept for an agent whose command stream is not open (it is
/// restarting or reconnecting); the oldest go first when the cap is hit.
const MAX_AGENT_BACKLOG: usize = 65_536;

/// The way to an agent: its command stream when open, and what waits for it.
#[derive(Default)]
struct AgentLink {
    tx: Option<mpsc::Sender<Bytes>>,
    backlog: std::collections::VecDeque<Bytes>,
}

impl AgentLink {
    /// Sends what waits, in order, as far as the stream takes it.
    fn flush(&mut self) {
        while let (Some(tx), Some(front)) = (&self.tx, self.backlog.front()) {
            match tx.try_send(front.clone()) {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
            }
        }
    }

    fn send(&mut self, command: Bytes) {
        self.backlog.push_back(command);
        if self.backlog.len() > MAX_AGENT_BACKLOG {
            self.backlog.pop_front();
        }
        self.flush();
    }
}

struct FrameworkStream {
    id: String,
    sink: Sink,
}

/// Where a framework's events go: RecordIO bytes on an HTTP response, or
/// events on a channel for a framework in the same process.
enum Sink {
    Http(mpsc::Sender<Bytes>),
    Local(mpsc::Sender<Event>),
}

impl Sink {
    /// `false` when the subscriber is gone or too slow to keep up.
    fn send(&self, event: &Event) -> bool {
        match self {
            Sink::Http(tx) => tx.try_send(Bytes::from(event.to_record())).is_ok(),
            Sink::Local(tx) => tx.try_send(event.clone()).is_ok(),
        }
    }
}

struct Shared {
    master: Mutex<Master>,
    streams: Mutex<HashMap<FrameworkId, FrameworkStream>>,
    agents: Mutex<HashMap<AgentId, AgentLink>>,
    allocation_interval: Duration,
    /// New agents and frameworks ask for an allocation before the next tick.
    allocate_soon: tokio::sync::Notify,
}

/// A running master: clone it freely; [`router`](Self::router) serves it and
/// [`run_loops`](Self::run_loops) drives allocation, heartbeats and checks.
#[derive(Clone)]
pub struct MasterHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MasterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterHandle").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Handlers never panic while holding these locks; recover regardless.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn stream_id() -> String {
    let a = RandomState::new().hash_one(Instant::now());
    let b = RandomState::new().hash_one(std::process::id());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A JSON error `{"message": ...}` with a status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

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

impl MasterHandle {
    /// A handle around `master`, allocating every `allocation_interval`.
    pub fn new(master: Master, allocation_interval: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                master: Mutex::new(master),
                streams: Mutex::new(HashMap::new()),
                agents: Mutex::new(HashMap::new()),
                allocation_interval,
                allocate_soon: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Runs `f` on the master (for tests and operator actions).
    pub fn with_master<R>(&self, f: impl FnOnce(&mut Master) -> R) -> R {
        f(&mut lock(&self.shared.master))
    }

    /// Delivers effects: events to framework streams, commands to agents.
    pub fn dispatch(&self, effects: Vec<Effect>) {
        let mut gone = Vec::new();
        for effect in effects {
            match effect {
                Effect::ToFramework { framework_id, event } => {
                    let streams = lock(&self.shared.streams);
                    let sent = streams.get(&framework_id).map(|s| s.sink.send(&event));
                    if sent == Some(false) {
                        // Closed, or too slow to keep up: a broken subscription.
                        gone.push(framework_id);
                    }
                }
                Effect::Launch {
                    agent_id,
                    framework,
                    task,
                } => {
                    self.to_agent(&agent_id, &AgentCommand::Launch { framework, task });
                }
                Effect::Kill {
                    agent_id,
                    framework_id,
                    task_id,
                    grace,
                } => {
                    let grace_seconds = grace.map(|g| g.as_secs_f64());
                    self.to_agent(
                        &agent_id,
                        &AgentCommand::Kill {
                            framework_id,
                            task_id,
                            grace_seconds,
                        },
                    );
                }
                Effect::Acknowledged {
                    agent_id,
                    framework_id,
                    task_id,
                    uuid,
                } => {
                    self.to_agent(
                        &agent_id,
                        &AgentCommand::Acknowledged {
                            framework_id,
                            task_id,
                            uuid,
                        },
                    );
                }
                Effect::Disconnect { framework_id } => {
                    lock(&self.shared.streams).remove(&framework_id);
                }
            }
        }
        for fw in gone {
            lock(&self.shared.streams).remove(&fw);
            lock(&self.shared.master).disconnect(&fw, Instant::now());
        }
    }

    /// Subscribes a framework (`call` is a `SUBSCRIBE`) with its events
    /// going to `sink`; returns the framework and the stream id.
    fn subscribe_with(
        &self,
        framework_id: Option<FrameworkId>,
        call: SchedulerCall,
        sink: Sink,
    ) -> Result<(FrameworkId, String), Error> {
        let id = stream_id();
        // Registered, given its stream and told SUBSCRIBED under the
        // master's lock: an allocation round on another thread cannot
        // slip an offer in before SUBSCRIBED, which a scheduler must see
        // first (an in-process Marathon gave up on such a stream and
        // subscribed again as a new framework).
        let mut master = lock(&self.shared.master);
        let mut effects = master.call(framework_id, call, Instant::now())?;
        let subscribed = effects
            .iter()
            .position(|e| matches!(e, Effect::ToFramework { event, .. } if event.subscribed.is_some()));
        let Some(Effect::ToFramework {
            framework_id: fw,
            event,
        }) = subscribed.map(|at| effects.remove(at))
        else {
            return Err(Error::bad_request("subscription produced no SUBSCRIBED event"));
        };
        let told = sink.send(&event);
        // A failover replaces the old stream, which is told and ends.
        let old = lock(&self.shared.streams).insert(fw.clone(), FrameworkStream { id: id.clone(), sink });
        if let Some(old) = old {
            old.sink.send(&Event::error("Framework failed over"));
        }
        if !told {
            lock(&self.shared.streams).remove(&fw);
            master.disconnect(&fw, Instant::now());
            return Err(Error::bad_request("the subscriber went away before SUBSCRIBED"));
        }
        drop(master);
        self.dispatch(effects);
        self.shared.allocate_soon.notify_one();
        Ok((fw, id))
    }

    /// Subscribes a framework running in this process: the in-process side
    /// of [`MasterClient`](crate::MasterClient). Its events (starting with
    /// `SUBSCRIBED`) arrive on the returned channel.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the call is not a valid `SUBSCRIBE`.
    pub fn subscribe_local(&self, call: Call) -> Result<(FrameworkId, mpsc::Receiver<Event>), Error> {
        let (framework_id, call) = call.validate()?;
        if !matches!(call, SchedulerCall::Subscribe(_)) {
            return Err(Error::bad_request("Expecting a SUBSCRIBE call"));
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (fw, _) = self.subscribe_with(framework_id, call, Sink::Local(tx))?;
        Ok((fw, rx))
    }

    /// Handles a non-`SUBSCRIBE` call of a framework running in this process.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the call is invalid or the framework is not subscribed.
    pub fn call_local(&self, call: Call) -> Result<(), Error> {
        let (framework_id, call) = call.validate()?;
        let Some(fw) = framework_id else {
            return Err(Error::bad_request("Expecting 'framework_id' to be present"));
        };
        if matches!(call, SchedulerCall::Subscribe(_)) {
            return Err(Error::bad_request("SUBSCRIBE goes through subscribe_local"));
        }
        if !lock(&self.shared.streams).contains_key(&fw) {
            return Err(Error::bad_request(format!("Framework {fw} is not subscribed")));
        }
        let effects = lock(&self.shared.master).call(Some(fw), call, Instant::now())?;
        self.dispatch(effects);
        Ok(())
    }

    /// Sends a command to an agent, or keeps it until the agent's command
    /// stream opens (a restarting agent must still get its kills).
    fn to_agent(&self, agent_id: &AgentId, command: &AgentCommand) {
        let Ok(json) = serde_json::to_vec(command) else { return };
        lock(&self.shared.agents)
            .entry(agent_id.clone())
            .or_default()
            .send(Bytes::from(recordio::encode(&json)));
    }

    /// Allocation rounds, framework heartbeats and agent/failover checks,
    /// until the returned future is dropped.
    pub async fn run_loops(self) {
        let heartbeat = lock(&self.shared.master).config().heartbeat_interval;
        let mut allocation = tokio::time::interval(self.shared.allocation_interval);
        let mut heartbeats = tokio::time::interval(heartbeat);
        let mut checks = tokio::time::interval(Duration::from_secs(1));
        for t in [&mut allocation, &mut heartbeats, &mut checks] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let effects = tokio::select! {
                _ = allocation.tick() => lock(&self.shared.master).allocate(Instant::now()),
                _ = self.shared.allocate_soon.notified() => lock(&self.shared.master).allocate(Instant::now()),
                _ = checks.tick() => lock(&self.shared.master).check(Instant::now()),
                _ = heartbeats.tick() => {
                    let ids: Vec<FrameworkId> = lock(&self.shared.streams).keys().cloned().collect();
                    ids.into_iter()
                        .map(|framework_id| Effect::ToFramework { framework_id, event: Box::new(Event::heartbeat()) })
                        .collect()
                }
            };
            self.dispatch(effects);
        }
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/scheduler", post(scheduler))
            .route("/api/v1/agents/register", post(agent_register))
            .route("/api/v1/agents/reregister", post(agent_reregister))
            .route("/api/v1/agents/{agent_id}/commands", get(agent_commands))
            .route("/api/v1/agents/{agent_id}/heartbeat", post(agent_heartbeat))
            .route("/api/v1/agents/{agent_id}/update", post(agent_update))
            .route("/health", get(|| async { StatusCode::OK }))
            .route("/master/state", get(state))
            .merge(super::operator::routes())
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }
}

async fn scheduler(State(h): State<MasterHandle>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.starts_with("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type '{content_type}' is not supported: this master speaks application/json"),
        );
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

#[derive(Deserialize)]
struct RegisterAgent {
    agent_info: AgentInfo,
}

async fn agent_register(State(h): State<MasterHandle>, body: Bytes) -> Response {
    let req: RegisterAgent = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse agent registration: {e}"),
            )
        }
    };
    let registered = lock(&h.shared.master).register_agent(req.agent_info, Instant::now());
    match registered {
        Ok(id) => {
            h.shared.allocate_soon.notify_one();
            Json(json!({ "agent_id": id })).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// A restarted agent's re-registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReregisterAgent {
    /// Its id from before.
    pub agent_id: AgentId,
    /// What it is now.
    pub agent_info: AgentInfo,
    /// The tasks it still runs.
    #[serde(default)]
    pub tasks: Vec<ReregisteredTask>,
}

/// A task a re-registering agent still runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReregisteredTask {
    /// Its framework.
    pub framework_id: FrameworkId,
    /// The task.
    pub task: TaskInfo,
    /// Its state on the agent.
    pub state: orchestrator_core::TaskState,
}

async fn agent_reregister(State(h): State<MasterHandle>, body: Bytes) -> Response {
    let req: ReregisterAgent = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse agent re-registration: {e}"),
            )
        }
    };
    let tasks = req
        .tasks
        .into_iter()
        .map(|t| (t.framework_id, t.task, t.state))
        .collect();
    let id = req.agent_id.clone();
    let result = lock(&h.shared.master).reregister_agent(req.agent_id, req.agent_info, tasks, Instant::now());
    match result {
        Ok(()) => Json(json!({ "agent_id": id })).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn agent_commands(State(h): State<MasterHandle>, Path(raw): Path<String>) -> Response {
    let id = match AgentId::new(raw) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
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

async fn agent_heartbeat(State(h): State<MasterHandle>, Path(raw): Path<String>) -> Response {
    let id = match AgentId::new(raw) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let result = lock(&h.shared.master).agent_heartbeat(&id, Instant::now());
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn agent_update(State(h): State<MasterHandle>, Path(raw): Path<String>, body: Bytes) -> Response {
    let id = match AgentId::new(raw) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
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

async fn state(State(h): State<MasterHandle>) -> Response {
    let master = lock(&h.shared.master);
    let task_json = |fw: &FrameworkId, t: &super::state::TaskEntry| {
        json!({
            "id": t.info.task_id.as_str(),
            "name": t.info.name,
            "framework_id": fw.as_str(),
            "slave_id": t.info.agent_id.as_str(),
            "state": t.state,
            "resources": resources_json(&t.info.resources),
            "statuses": t.status.iter().collect::<Vec<_>>(),
        })
    };
    let slaves: Vec<_> = master
        .agents()
        .iter()
        .map(|(id, a)| {
            json!({
                "id": id.as_str(),
                "hostname": a.info.hostname,
                "port": a.info.port,
                "resources": resources_json(&a.info.resources),
                "attributes": a.info.attributes,
                "active": a.state == super::state::AgentState::Active,
            })
        })
        .collect();
    let frameworks: Vec<_> = master
        .frameworks()
        .iter()
        .map(|(id, f)| {
            let offers: Vec<_> = master
                .offers()
                .filter(|o| o.framework_id == *id)
                .map(|o| o.id.as_str())
                .collect();
            json!({
                "id": id.as_str(),
                "name": f.info.name,
                "user": f.info.user,
                "roles": f.info.effective_roles(),
                "active": f.connected,
                "connected": f.connected,
                "failover_timeout": f.info.failover_timeout.unwrap_or(0.0),
                "tasks": f.tasks.values().map(|t| task_json(id, t)).collect::<Vec<_>>(),
                "completed_tasks": f.completed.iter().map(|t| task_json(id, t)).collect::<Vec<_>>(),
                "offers": offers,
            })
        })
        .collect();
    let active = master
        .agents()
        .values()
        .filter(|a| a.state == super::state::AgentState::Active)
        .count();
    Json(json!({
        "id": master.config().master_id,
        "activated_slaves": active,
        "deactivated_slaves": master.agents().len() - active,
        "slaves": slaves,
        "frameworks": frameworks,
    }))
    .into_response()
}
