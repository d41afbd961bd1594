//! [`MasterHandle`]: the running master shared by its HTTP handlers, its
//! timers and in-process frameworks. It holds the [`Master`] state machine
//! behind a lock, the frameworks' event streams and the agents' command
//! streams, and delivers the state machine's [`Effect`]s to them.
//!
//! The HTTP routes are in `http.rs` and `operator.rs`; the in-process
//! [`MasterClient`] is implemented here, so a framework embedded next to the
//! master makes the same calls as one speaking HTTP.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use orchestrator_core::{AgentId, Allocator, FrameworkId, TaskId};
use tokio::sync::mpsc;

use super::state::{Effect, Master};
use crate::api::agent::AgentCommand;
use crate::api::client::{first_subscribed, MasterClient, Subscription};
use crate::api::recordio;
use crate::api::scheduler::{Call, Event, SchedulerCall};
use crate::{DrfAllocator, Error};

/// Events or commands buffered per stream before the peer counts as gone
/// (reconciling 10,000s of tasks answers them all at once).
pub(super) const STREAM_BUFFER: usize = 1 << 16;

/// Commands kept for an agent whose command stream is not open (it is
/// restarting or reconnecting); the oldest go first when the cap is hit.
const MAX_AGENT_BACKLOG: usize = 65_536;

/// The way to an agent: its command stream when open, and what waits for it.
#[derive(Default)]
pub(super) struct AgentLink {
    pub(super) tx: Option<mpsc::Sender<Bytes>>,
    /// Commands waiting, with the task each launches (if it does).
    backlog: std::collections::VecDeque<(Option<TaskId>, Bytes)>,
}

impl AgentLink {
    /// Sends what waits, in order, as far as the stream takes it.
    pub(super) fn flush(&mut self) {
        while let (Some(tx), Some((_, front))) = (&self.tx, self.backlog.front()) {
            match tx.try_send(front.clone()) {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
            }
        }
    }

    fn send(&mut self, launches: Option<TaskId>, command: Bytes) {
        self.backlog.push_back((launches, command));
        if self.backlog.len() > MAX_AGENT_BACKLOG {
            self.backlog.pop_front();
        }
        self.flush();
    }

    /// The agent re-registered: its old command stream is dead (what is
    /// queued from now on waits for the new one), and the launches of
    /// `lost` tasks, declared lost meanwhile, must never reach it.
    pub(super) fn reconnecting(&mut self, lost: &std::collections::HashSet<TaskId>) {
        self.tx = None;
        if !lost.is_empty() {
            self.backlog
                .retain(|(task, _)| task.as_ref().is_none_or(|t| !lost.contains(t)));
        }
    }
}

pub(super) struct FrameworkStream {
    pub(super) id: String,
    sink: Sink,
}

/// Where a framework's events go: RecordIO bytes on an HTTP response, or
/// events on a channel for a framework in the same process.
pub(super) enum Sink {
    Http(mpsc::Sender<Bytes>),
    Local(mpsc::Sender<Event>),
}

/// Room kept in a framework's stream for events other than status
/// updates (offers, rescinds, heartbeats) when updates are held back.
pub(super) const STREAM_RESERVE: usize = 1 << 10;

impl Sink {
    /// Events that can still be queued.
    fn room(&self) -> usize {
        match self {
            Sink::Http(tx) => tx.capacity(),
            Sink::Local(tx) => tx.capacity(),
        }
    }

    /// `false` when the subscriber is gone or too slow to keep up.
    fn send(&self, event: &Event) -> bool {
        match self {
            Sink::Http(tx) => tx.try_send(Bytes::from(event.to_record())).is_ok(),
            Sink::Local(tx) => tx.try_send(event.clone()).is_ok(),
        }
    }
}

pub(super) struct Shared<A: Allocator> {
    pub(super) master: Mutex<Master<A>>,
    pub(super) streams: Mutex<HashMap<FrameworkId, FrameworkStream>>,
    pub(super) agents: Mutex<HashMap<AgentId, AgentLink>>,
    allocation_interval: Duration,
    /// New agents and frameworks ask for an allocation before the next tick.
    pub(super) allocate_soon: tokio::sync::Notify,
    /// Operator events (`TASK_ADDED`, `TASK_UPDATED`), RecordIO-encoded,
    /// for `SUBSCRIBE`rs of `/api/v1`.
    pub(super) operator: tokio::sync::broadcast::Sender<Bytes>,
    /// Whether this master leads, and its registry.
    pub(super) leading: super::leading::Leading,
}

/// A running master: clone it freely; [`router`](Self::router) serves it and
/// [`run_loops`](Self::run_loops) drives allocation, heartbeats and checks.
///
/// It is generic over the [`Allocator`] seam; [`DrfAllocator`] unless said.
pub struct MasterHandle<A: Allocator = DrfAllocator> {
    pub(super) shared: Arc<Shared<A>>,
}

impl<A: Allocator> Clone for MasterHandle<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<A: Allocator> std::fmt::Debug for MasterHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterHandle").finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

impl<A: Allocator + 'static> MasterHandle<A> {
    /// A handle around `master`, allocating every `allocation_interval`.
    pub fn new(master: Master<A>, allocation_interval: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                master: Mutex::new(master),
                streams: Mutex::new(HashMap::new()),
                agents: Mutex::new(HashMap::new()),
                allocation_interval,
                allocate_soon: tokio::sync::Notify::new(),
                operator: tokio::sync::broadcast::channel(super::events::OPERATOR_BUFFER).0,
                leading: super::leading::Leading::default(),
            }),
        }
    }

    /// Runs `f` on the master (for tests and operator actions).
    pub fn with_master<R>(&self, f: impl FnOnce(&mut Master<A>) -> R) -> R {
        f(&mut lock(&self.shared.master))
    }

    /// Delivers effects: events to framework streams, commands to agents.
    pub fn dispatch(&self, effects: Vec<Effect>) {
        let mut gone = Vec::new();
        let watched = self.shared.operator.receiver_count() > 0;
        for effect in effects {
            match effect {
                Effect::ToFramework { framework_id, event } => {
                    if let (true, Some(update)) = (watched, &event.update) {
                        let _ = self
                            .shared
                            .operator
                            .send(super::events::task_updated(&framework_id, &update.status));
                    }
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
                    if watched {
                        let _ = self.shared.operator.send(super::events::task_added(&framework, &task));
                    }
                    let launches = Some(task.task_id.clone());
                    self.send_to_agent(&agent_id, launches, &AgentCommand::Launch { framework, task });
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
                Effect::ShutdownFramework { agent_id, framework_id } => {
                    self.to_agent(&agent_id, &AgentCommand::ShutdownFramework { framework_id });
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

    /// How many status updates `framework_id`'s stream takes now (keeping
    /// [`STREAM_RESERVE`] for other events); `None` when it has no stream.
    /// Updates beyond it are not forwarded but deferred to the agent, which
    /// sends them again shortly: a framework slower than its agents slows
    /// its own updates, never the master, and is not cut off for it.
    pub(super) fn update_room(&self, framework_id: &FrameworkId) -> Option<usize> {
        lock(&self.shared.streams)
            .get(framework_id)
            .map(|s| s.sink.room().saturating_sub(STREAM_RESERVE))
    }

    /// Subscribes a framework (`call` is a `SUBSCRIBE`) with its events
    /// going to `sink`; returns the framework and the stream id.
    pub(super) fn subscribe_with(
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
        self.send_to_agent(agent_id, None, command);
    }

    fn send_to_agent(&self, agent_id: &AgentId, launches: Option<TaskId>, command: &AgentCommand) {
        let Ok(json) = serde_json::to_vec(command) else { return };
        lock(&self.shared.agents)
            .entry(agent_id.clone())
            .or_default()
            .send(launches, Bytes::from(recordio::encode(&json)));
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
                _ = checks.tick() => {
                    let mut master = lock(&self.shared.master);
                    let active = |m: &Master<A>| -> Vec<AgentId> {
                        m.agents().iter().filter(|(_, a)| a.state == super::state::AgentState::Active).map(|(id, _)| id.clone()).collect()
                    };
                    let before = active(&master);
                    let effects = master.check(Instant::now());
                    let expired = master.take_expired_agents();
                    if let (false, Some(registry)) = (expired.is_empty(), self.registry()) {
                        tracing::warn!(agents = expired.len(), "recovered agents did not re-register in time; the registry forgets them");
                        tokio::spawn(async move {
                            for id in expired {
                                if let Err(e) = registry.remove_agent(&id).await {
                                    tracing::warn!(agent = %id, error = %e, "could not remove an agent from the registry");
                                }
                            }
                        });
                    }
                    if self.shared.operator.receiver_count() > 0 {
                        let after = active(&master);
                        for gone in before.iter().filter(|id| !after.contains(id)) {
                            let _ = self.shared.operator.send(super::events::agent_removed(gone));
                        }
                    }
                    effects
                }
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
}

/// The in-process client: calls go straight to the master's state machine.
#[async_trait]
impl<A: Allocator + 'static> MasterClient for MasterHandle<A> {
    async fn subscribe(&self, call: Call) -> crate::Result<Subscription> {
        let (framework_id, mut events) = self.subscribe_local(call)?;
        let subscribed = first_subscribed(&mut events).await?;
        Ok(Subscription {
            framework_id,
            subscribed,
            events,
        })
    }

    async fn call(&self, call: Call) -> crate::Result<()> {
        self.call_local(call)
    }
}
