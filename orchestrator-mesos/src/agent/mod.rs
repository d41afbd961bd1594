//! The agent: registers with a master, runs the tasks it is sent through a
//! chain of [`Containerizer`]s, and reports their status until each update
//! is acknowledged.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use orchestrator_core::{
    AgentId, AgentInfo, Attributes, ContainerId, ContainerSpec, Containerizer, FrameworkId, FrameworkInfo, Resources,
    TaskId, TaskInfo, TaskReason, TaskSource, TaskState, TaskStatus, LABEL_FRAMEWORK_ID,
};

mod gc;
mod http;
mod journal;
mod recovery;
mod sandboxes;
mod updates;

use crate::api::agent::{AgentCommand, AgentUpdate, AgentUpdates, AgentUpdatesAnswer, RegisterAgent, MAX_UPDATE_BATCH};

/// How soon an update the master deferred (its framework was busy) is sent again.
const DEFERRED_RETRY: Duration = Duration::from_millis(200);
use crate::api::recordio::Records;
use crate::{Error, Result};

/// Settings of an [`Agent`].
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The master's base URL (`http://127.0.0.1:5050`).
    pub master: String,
    /// Follows the leading master on ZooKeeper instead (`--master
    /// zk://…/mesos`): the agent re-registers, its tasks intact, with every
    /// new leader.
    pub detector: Option<crate::zk::MasterDetector>,
    /// The host name advertised.
    pub hostname: String,
    /// The agent's HTTP port, advertised.
    pub port: u16,
    /// Resources offered (`--resources`).
    pub resources: Resources,
    /// Attributes (`--attributes`).
    pub attributes: Attributes,
    /// Sandboxes and checkpoints go here (`--work_dir`).
    pub work_dir: PathBuf,
    /// How often the agent says it is alive.
    pub heartbeat_interval: Duration,
    /// First wait before an unacknowledged update is sent again (it
    /// doubles up to ten minutes; Mesos starts at 10 s).
    pub update_retry: Duration,
    /// Grace period of a kill when neither the call nor the task gives one
    /// (Mesos: 3 s).
    pub default_kill_grace: Duration,
    /// How long the sandbox of an ended task is kept at most (Mesos's
    /// `--gc_delay`, one week); less when the disk fills.
    pub gc_delay: Duration,
    /// Share of the disk to keep free (`--gc_disk_headroom`, 0.1): with
    /// the disk `u` full, sandboxes stay `gc_delay × max(0, 1 − headroom −
    /// u)` at most.
    pub gc_disk_headroom: f64,
    /// How often the disk is checked and old sandboxes removed
    /// (`--disk_watch_interval`, one minute).
    pub disk_watch_interval: Duration,
}

impl AgentConfig {
    /// Settings with Mesos's defaults for everything but what must be given.
    pub fn new(master: impl Into<String>, resources: Resources, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            master: master.into(),
            detector: None,
            hostname: "localhost".into(),
            port: 5051,
            resources,
            attributes: Attributes::default(),
            work_dir: work_dir.into(),
            heartbeat_interval: Duration::from_secs(5),
            update_retry: Duration::from_secs(10),
            default_kill_grace: Duration::from_secs(3),
            gc_delay: Duration::from_secs(7 * 24 * 3600),
            gc_disk_headroom: 0.1,
            disk_watch_interval: Duration::from_secs(60),
        }
    }
}

struct Running {
    container: ContainerId,
    containerizer: usize,
    kill_grace: Option<Duration>,
    task: TaskInfo,
    sandbox: PathBuf,
    state: TaskState,
    framework: FrameworkInfo,
}

struct Books {
    tasks: HashMap<(FrameworkId, TaskId), Running>,
    /// Unacknowledged updates, a stream per task.
    updates: updates::UpdateStreams,
    /// Frameworks the master tore down while they had tasks here: their
    /// tasks are being killed and their updates are not sent. Forgotten
    /// when their last task is gone.
    shut_down: std::collections::HashSet<FrameworkId>,
}

struct Inner {
    config: AgentConfig,
    http: reqwest::Client,
    containerizers: Vec<Arc<dyn Containerizer>>,
    books: Mutex<Books>,
    /// Updates wait to be sent (or were acknowledged, so the next can go).
    updates_ready: tokio::sync::Notify,
    /// The task checkpoints; locked before `books` when both are.
    journal: Mutex<journal::Journal>,
    /// Sandboxes of ended tasks, removed when old enough.
    gc: Mutex<gc::SandboxGc>,
    agent_id: Mutex<Option<AgentId>>,
    /// Whether the master has confirmed the current id.
    registered: AtomicBool,
    /// Everything the agent spawned, aborted by `shutdown`.
    spawned: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Set by `shutdown`; ends `run`.
    stop: tokio::sync::watch::Sender<bool>,
    /// Set by `drain`: launches are refused.
    draining: AtomicBool,
}

/// A running agent; cheap to clone.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("master", &self.inner.config.master)
            .finish_non_exhaustive()
    }
}

fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&RandomState::new().hash_one(Instant::now()).to_le_bytes());
    bytes[8..].copy_from_slice(&RandomState::new().hash_one(std::process::id()).to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `name` when it is at most `max` bytes; else its first bytes and a hash
/// of all of it, `max` bytes in all. Task ids may be 255 bytes (Mesos's
/// limit), and names made from them (container ids, checkpoint files,
/// cgroups) add to that, so those take a bounded form.
pub(crate) fn bounded_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    // FNV-1a: the same name must map to the same file after an upgrade.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut keep = max.saturating_sub(17);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{hash:016x}", &name[..keep])
}

fn http_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("{what}: {e}"))
}

impl Agent {
    /// An agent trying `containerizers` in order for each task (the first
    /// that supports a task runs it, like `--containerizers docker,mesos`).
    pub fn new(config: AgentConfig, containerizers: Vec<Arc<dyn Containerizer>>) -> Self {
        let books = Books {
            tasks: HashMap::new(),
            updates: updates::UpdateStreams::new(config.update_retry),
            shut_down: std::collections::HashSet::new(),
        };
        let journal = journal::Journal::new(config.work_dir.join("tasks.journal"));
        let gc = gc::SandboxGc::new(config.gc_delay, config.gc_disk_headroom);
        Self {
            inner: Arc::new(Inner {
                config,
                http: reqwest::Client::new(),
                containerizers,
                books: Mutex::new(books),
                updates_ready: tokio::sync::Notify::new(),
                journal: Mutex::new(journal),
                gc: Mutex::new(gc),
                agent_id: Mutex::new(None),
                registered: AtomicBool::new(false),
                spawned: Mutex::new(Vec::new()),
                stop: tokio::sync::watch::channel(false).0,
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// Spawns work that belongs to this agent (stopped by [`shutdown`](Self::shutdown)).
    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut).abort_handle();
        let mut spawned = self.inner.spawned.lock().unwrap_or_else(|p| p.into_inner());
        // Finished work is swept out each time the list doubles: a sweep
        // per spawn made 10,000 launches on one agent quadratic.
        if spawned.len() >= 64 && spawned.len().is_power_of_two() {
            spawned.retain(|h| !h.is_finished());
        }
        spawned.push(handle);
    }

    /// Stops everything the agent runs in this process — commands,
    /// heartbeats, retries, task watchers — as a crash would; the tasks'
    /// processes keep running and a new agent on the same work directory
    /// recovers them. [`run`](Self::run) returns.
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        for h in self.inner.spawned.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            h.abort();
        }
    }

    /// Stops the agent for good, leaving nothing running: refuses new
    /// launches, kills every task (SIGTERM, then SIGKILL after `grace`),
    /// waits until each has ended, its container is destroyed and its end is
    /// reported to the master, then [`shutdown`](Self::shutdown)s. What a
    /// Mesos agent does when it is drained before maintenance, and what
    /// stopping a whole single-machine platform needs.
    ///
    /// Containers still present after `grace` plus ten seconds are
    /// destroyed directly. Returns how many tasks were running.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.inner.draining.store(true, Ordering::SeqCst);
        let running: Vec<(FrameworkId, TaskId)> = self.books().tasks.keys().cloned().collect();
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        let mut killed = std::collections::HashSet::new();
        loop {
            let left: Vec<(ContainerId, usize)> = {
                let books = self.books();
                books
                    .tasks
                    .values()
                    .map(|r| (r.container.clone(), r.containerizer))
                    .collect()
            };
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                // The watchers did not see these end: destroy them here.
                for (container, index) in &left {
                    let _ = self.inner.containerizers[*index].destroy(container).await;
                }
                break;
            }
            // A task still launching has no container to kill yet: its
            // kill fails and is tried again on the next pass.
            let kills = left
                .into_iter()
                .filter(|(c, _)| !killed.contains(c))
                .map(|(container, index)| {
                    let c = self.inner.containerizers[index].clone();
                    async move {
                        let ok = c.kill(&container, grace).await.is_ok();
                        (container, ok)
                    }
                });
            for (container, ok) in futures_util::future::join_all(kills).await {
                if ok {
                    killed.insert(container);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Give the last status updates a moment to reach the master.
        let flush = Instant::now() + Duration::from_secs(2);
        while self.unacknowledged() > 0 && Instant::now() < flush {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.unregister().await;
        self.shutdown();
        running.len()
    }

    /// Tells the master this agent leaves for good, so the registry forgets
    /// it and a master elected later does not wait for it to come back; the
    /// checkpointed id is forgotten too, so a restart registers afresh.
    /// Best effort: a master that cannot be reached learns it from the
    /// missing heartbeats.
    async fn unregister(&self) {
        let Some(id) = self.id() else { return };
        let Ok(url) = self.url(&format!("/api/v1/agents/{id}/unregister")) else {
            return;
        };
        match self.inner.http.post(&url).send().await {
            Ok(resp) if resp.status().is_success() => {
                *self.inner.agent_id.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.checkpoint();
            }
            Ok(resp) => tracing::warn!(status = %resp.status(), "the master did not take the agent's unregistration"),
            Err(e) => tracing::warn!(error = %e, "could not unregister from the master"),
        }
    }

    /// The journal; taken before `books` when both are.
    fn journal(&self) -> std::sync::MutexGuard<'_, journal::Journal> {
        self.inner.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends to the journal; a failure is logged (the change stands in
    /// memory, but a restarted agent will not know it).
    fn journal_append(&self, journal: &mut journal::Journal, entry: journal::Entry) {
        if let Err(e) = journal.append(std::slice::from_ref(&entry)) {
            tracing::warn!(path = %journal.path().display(), error = %e, "cannot write to the agent's journal: a restarted agent will not know this change");
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.inner.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id the master gave this agent, once registered.
    pub fn id(&self) -> Option<AgentId> {
        self.inner.agent_id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the master has confirmed this agent (registered or
    /// re-registered) since it started.
    pub fn registered(&self) -> bool {
        self.inner.registered.load(Ordering::SeqCst)
    }

    /// Updates not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.books().updates.len()
    }

    /// `path` on the master: the leader's when following ZooKeeper.
    pub(super) fn url(&self, path: &str) -> Result<String> {
        let c = &self.inner.config;
        match &c.detector {
            None => Ok(format!("{}{path}", c.master)),
            Some(d) => d
                .leader_url()
                .map(|base| format!("{base}{path}"))
                .ok_or_else(|| Error::Transport {
                    message: "no master is leading".into(),
                }),
        }
    }

    /// Resolves when the leading master changes (never without a detector).
    async fn leader_changed(&self) {
        match &self.inner.config.detector {
            None => std::future::pending().await,
            Some(d) => {
                let mut rx = d.subscribe();
                rx.borrow_and_update();
                let _ = rx.changed().await;
            }
        }
    }

    /// Waits `backoff` before the next attempt, or less when a new master
    /// leads (then the agent re-registers at once); returns the next backoff.
    async fn pause(&self, backoff: Duration) -> Duration {
        tokio::select! {
            () = tokio::time::sleep(backoff) => (backoff * 2).min(Duration::from_secs(10)),
            () = self.leader_changed() => {
                self.inner.registered.store(false, Ordering::SeqCst);
                Duration::from_millis(100)
            }
        }
    }

    /// Sends every unacknowledged update again now (to a new leader).
    fn resend_pending(&self) {
        self.books().updates.resend_all();
        self.inner.updates_ready.notify_one();
    }

    async fn register(&self) -> Result<AgentId> {
        let c = &self.inner.config;
        let info = AgentInfo {
            hostname: c.hostname.clone(),
            port: Some(c.port),
            resources: c.resources.clone(),
            attributes: c.attributes.clone(),
            id: None,
        };
        let url = self.url("/api/v1/agents/register")?;
        let resp = self
            .inner
            .http
            .post(&url)
            .json(&RegisterAgent { agent_info: info })
            .send()
            .await
            .map_err(|e| http_err("registering with the master", e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(Error::bad_request(format!(
                "the master refused registration ({status}): {text}"
            )));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| http_err("reading the registration answer", e))?;
        let id: AgentId = serde_json::from_value(body["agent_id"].clone())
            .map_err(|e| http_err("the master's registration answer has no agent id", e))?;
        *self.inner.agent_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        Ok(id)
    }

    /// Recovers what the work directory says this agent ran, registers
    /// (or re-registers under its old id), then serves the master's
    /// commands, heartbeats and update retries until the future is dropped.
    /// Reconnects with a backoff, re-registering when the master forgot it.
    ///
    /// # Errors
    /// Only when the work directory cannot be created.
    pub async fn run(self) -> Result<()> {
        let mut stop = self.inner.stop.subscribe();
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => Ok(()),
            r = self.clone().serve() => r,
        }
    }

    async fn serve(self) -> Result<()> {
        std::fs::create_dir_all(&self.inner.config.work_dir).map_err(|e| {
            Error::Core(orchestrator_core::Error::Store {
                path: self.inner.config.work_dir.display().to_string(),
                message: "cannot create the work directory".into(),
                source: Some(Box::new(e)),
            })
        })?;
        self.recover().await;
        // Off the async threads: a work dir may hold many old sandboxes.
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.collect_leftover_sandboxes()).await;
        self.spawn(self.clone().collect_garbage());
        self.spawn(self.clone().heartbeats());
        self.spawn(self.clone().send_updates());
        let mut backoff = Duration::from_millis(100);
        loop {
            // A draining agent is leaving: it must not register again when
            // the master, told of its unregistration, closes its stream.
            if self.inner.draining.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let registered = self.inner.registered.load(Ordering::SeqCst);
            let attempt = match self.id() {
                Some(id) if registered => Ok(id),
                Some(id) => self.reregister(&id).await.map(|()| {
                    self.resend_pending();
                    id
                }),
                None => self.register().await,
            };
            let id = match attempt {
                Ok(id) => {
                    self.inner.registered.store(true, Ordering::SeqCst);
                    self.checkpoint();
                    id
                }
                Err(_) => {
                    backoff = self.pause(backoff).await;
                    continue;
                }
            };
            let served = tokio::select! {
                r = self.serve_commands(&id) => r,
                // A new leader: re-register with it, tasks intact.
                () = self.leader_changed() => Err(true),
            };
            match served {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(forgotten) => {
                    if forgotten {
                        // Keep the id: the tasks still run under it.
                        self.inner.registered.store(false, Ordering::SeqCst);
                    }
                    backoff = self.pause(backoff).await;
                }
            }
        }
    }

    /// Reads the command stream until it ends; `Err(true)` when the master
    /// does not know this agent any more.
    async fn serve_commands(&self, id: &AgentId) -> std::result::Result<(), bool> {
        let url = self.url(&format!("/api/v1/agents/{id}/commands")).map_err(|_| false)?;
        let resp = self.inner.http.get(&url).send().await.map_err(|_| false)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(true);
        }
        if !resp.status().is_success() {
            return Err(false);
        }
        let mut records = Records::new(resp.bytes_stream(), 16 << 20);
        while let Some(record) = records.next().await {
            match serde_json::from_slice::<AgentCommand>(&record.map_err(|_| false)?) {
                Ok(command) => self.handle(command),
                Err(e) => tracing::warn!(error = %e, "a command from the master does not parse; ignored"),
            }
        }
        Ok(())
    }

    fn handle(&self, command: AgentCommand) {
        match command {
            AgentCommand::Launch { framework, task } => {
                self.spawn(self.clone().launch(*framework, *task));
            }
            AgentCommand::Kill {
                framework_id,
                task_id,
                grace_seconds,
            } => {
                let grace = grace_seconds
                    .filter(|g| g.is_finite() && *g >= 0.0)
                    .map(Duration::from_secs_f64);
                tracing::info!(framework = %framework_id, task = %task_id, "the master asks to kill a task");
                self.spawn(self.clone().kill(framework_id, task_id, grace));
            }
            AgentCommand::Acknowledged {
                framework_id,
                task_id,
                uuid,
            } => {
                let mut journal = self.journal();
                let mut books = self.books();
                if books.updates.acknowledge(&framework_id, &task_id, &uuid) {
                    let more = books.updates.has_ready();
                    drop(books);
                    journal.note_ack(uuid);
                    if more {
                        self.inner.updates_ready.notify_one();
                    }
                }
            }
            AgentCommand::ShutdownFramework { framework_id } => self.shutdown_framework(&framework_id),
        }
    }

    /// The master tore `framework_id` down: its updates are dropped (the
    /// master would never acknowledge them) and its tasks are killed.
    fn shutdown_framework(&self, framework_id: &FrameworkId) {
        let tasks: Vec<TaskId> = {
            let mut journal = self.journal();
            let dropped = journal::Entry::DropFramework {
                framework_id: framework_id.clone(),
            };
            self.journal_append(&mut journal, dropped);
            let mut books = self.books();
            books.updates.drop_framework(framework_id);
            let tasks: Vec<TaskId> = books
                .tasks
                .keys()
                .filter(|(f, _)| f == framework_id)
                .map(|(_, t)| t.clone())
                .collect();
            if !tasks.is_empty() {
                books.shut_down.insert(framework_id.clone());
            }
            tasks
        };
        if !tasks.is_empty() {
            tracing::info!(framework = %framework_id, tasks = tasks.len(), "framework torn down: killing its tasks");
        }
        for task_id in tasks {
            self.spawn(self.clone().kill(framework_id.clone(), task_id, None));
        }
    }

    async fn heartbeats(self) {
        let mut tick = tokio::time::interval(self.inner.config.heartbeat_interval);
        loop {
            tick.tick().await;
            if let Some(id) = self.id() {
                if let Ok(url) = self.url(&format!("/api/v1/agents/{id}/heartbeat")) {
                    let _ = self.inner.http.post(&url).send().await;
                }
            }
        }
    }

    /// Sends what the update streams have ready, in batches: one request
    /// at a time, so what becomes ready meanwhile goes in the next, and
    /// the order of one task's updates is the order they are sent in.
    /// Retries come due on a 250 ms tick.
    async fn send_updates(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.inner.updates_ready.notified() => {}
                _ = tick.tick() => self.books().updates.retry_due(Instant::now()),
            }
            loop {
                // The acknowledgements that made these heads ready are
                // written first: a restarted agent must never take an
                // update that was acknowledged (and followed by the next)
                // for pending, or it would send it again after the next.
                self.flush_acks();
                let batch = self.books().updates.take_ready(Instant::now(), MAX_UPDATE_BATCH);
                if batch.is_empty() {
                    break;
                }
                self.post_updates(batch).await;
            }
        }
    }

    fn flush_acks(&self) {
        let mut journal = self.journal();
        if let Err(e) = journal.flush() {
            tracing::warn!(path = %journal.path().display(), error = %e, "cannot write acknowledgements to the agent's journal; a restarted agent sends those updates again");
        }
    }

    /// Posts a batch of updates; what is not acknowledged is sent again
    /// when its retry comes.
    async fn post_updates(&self, updates: Vec<AgentUpdate>) {
        let Some(id) = self.id() else { return };
        let Ok(url) = self.url(&format!("/api/v1/agents/{id}/updates")) else {
            return;
        };
        let n = updates.len();
        let body = AgentUpdates { updates };
        match self.inner.http.post(&url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                let answer: AgentUpdatesAnswer = resp.json().await.unwrap_or_default();
                if !answer.deferred.is_empty() {
                    let at = Instant::now() + DEFERRED_RETRY;
                    let deferred: std::collections::HashSet<&str> =
                        answer.deferred.iter().map(String::as_str).collect();
                    let mut books = self.books();
                    for u in &body.updates {
                        if let Some(uuid) = u.status.uuid.as_deref().filter(|x| deferred.contains(x)) {
                            books.updates.defer(&u.framework_id, &u.status.task_id, uuid, at);
                        }
                    }
                }
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                tracing::warn!(%status, updates = n, answer = %text, "the master did not take status updates; they are sent again later");
            }
            Err(e) => {
                tracing::debug!(error = %e, updates = n, "status updates not delivered; they are sent again later")
            }
        }
    }

    /// Queues a status update on its task's stream, kept until acknowledged.
    fn report(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        state: TaskState,
        reason: Option<TaskReason>,
        message: impl Into<String>,
    ) {
        let message = message.into();
        if state.is_terminal() {
            tracing::info!(framework = %framework_id, task = %task_id, ?state, ?reason, %message, "task ended");
        }
        let mut status = TaskStatus::new(task_id.clone(), state);
        status.source = Some(TaskSource::SourceExecutor);
        status.reason = reason;
        status.message = Some(message);
        status.agent_id = self.id();
        status.timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64());
        status.uuid = Some(new_uuid());
        // The journal is locked first (and held while the update is
        // queued), so the updates are journaled in the order they queue.
        let mut journal = self.journal();
        {
            let mut books = self.books();
            if let Some(running) = books.tasks.get_mut(&(framework_id.clone(), task_id.clone())) {
                running.state = state;
            }
            if books.shut_down.contains(framework_id) {
                // Nobody will acknowledge it; once the framework's last task
                // is gone, the agent forgets the framework too.
                if !books.tasks.keys().any(|(f, _)| f == framework_id) {
                    books.shut_down.remove(framework_id);
                }
                return;
            }
            let update = AgentUpdate {
                framework_id: framework_id.clone(),
                status,
            };
            books.updates.push(update.clone());
            drop(books);
            self.journal_append(&mut journal, journal::Entry::Update(Box::new(update)));
        }
        drop(journal);
        self.inner.updates_ready.notify_one();
    }

    async fn launch(self, framework: FrameworkInfo, task: TaskInfo) {
        let Some(framework_id) = framework.id.clone() else {
            return;
        };
        let task_id = task.task_id.clone();
        let failed = |msg: String| (TaskState::Failed, Some(TaskReason::ReasonContainerLaunchFailed), msg);
        let outcome = async {
            if self.inner.draining.load(Ordering::SeqCst) {
                return Err((
                    TaskState::Failed,
                    Some(TaskReason::ReasonAgentRestarted),
                    "the agent is draining".to_string(),
                ));
            }
            let mut spec = ContainerSpec::from_task(&task).map_err(|e| failed(e.to_string()))?;
            spec.labels.insert(LABEL_FRAMEWORK_ID.into(), framework_id.to_string());
            if spec.user.is_none() && !framework.user.is_empty() && framework.user != "root" {
                spec.user = Some(framework.user.clone());
            }
            let index = self
                .inner
                .containerizers
                .iter()
                .position(|c| c.supports(&spec))
                .ok_or_else(|| failed("no containerizer of this agent can run the task".into()))?;
            let container = ContainerId::new(format!(
                "{}-{}",
                bounded_name(task_id.as_str(), 200),
                &new_uuid()[..8].replace(['/', '+'], "x")
            ))
            .map_err(|e| failed(e.to_string()))?;
            // One directory per run, named by its container (the task's id
            // and a suffix): a directory per task around it doubled the
            // directory creations, which are most of a launch's cost here.
            let sandbox = self
                .inner
                .config
                .work_dir
                .join("sandboxes")
                .join(framework_id.as_str())
                .join(container.as_str());
            std::fs::create_dir_all(&sandbox).map_err(|e| failed(format!("cannot create the sandbox: {e}")))?;
            let grace = task
                .kill_policy
                .and_then(|k| k.grace_period)
                .map(|g| Duration::from_nanos(g.nanoseconds.max(0) as u64));
            self.books().tasks.insert(
                (framework_id.clone(), task_id.clone()),
                Running {
                    container: container.clone(),
                    containerizer: index,
                    kill_grace: grace,
                    task: task.clone(),
                    sandbox: sandbox.clone(),
                    state: TaskState::Staging,
                    framework: framework.clone(),
                },
            );
            self.checkpoint_task(&framework_id, &task_id);
            self.report(&framework_id, &task_id, TaskState::Starting, None, "launching");
            let c = self.inner.containerizers[index].clone();
            if let Err(e) = c.launch(&container, &spec, &sandbox).await {
                self.books().tasks.remove(&(framework_id.clone(), task_id.clone()));
                self.collect_sandbox(sandbox);
                self.forget_task(&framework_id, &task_id);
                return Err(failed(e.to_string()));
            }
            self.report(
                &framework_id,
                &task_id,
                TaskState::Running,
                None,
                format!("running in {}", c.name()),
            );
            Ok((container, index))
        }
        .await;
        match outcome {
            Ok((container, index)) => self.watch(framework_id, task_id, container, index).await,
            Err((state, reason, message)) => self.report(&framework_id, &task_id, state, reason, message),
        }
    }

    /// Waits for a running container to end, then reports how it ended.
    async fn watch(self, framework_id: FrameworkId, task_id: TaskId, container: ContainerId, index: usize) {
        let c = self.inner.containerizers[index].clone();
        let end = c.wait(&container).await;
        let _ = c.destroy(&container).await;
        let ended = self.books().tasks.remove(&(framework_id.clone(), task_id.clone()));
        if let Some(ended) = ended {
            self.collect_sandbox(ended.sandbox);
        }
        self.forget_task(&framework_id, &task_id);
        let (state, reason, message) = match end {
            Ok(t) => (t.task_state(), t.reason, t.message),
            Err(e) => (
                TaskState::Failed,
                Some(TaskReason::ReasonExecutorTerminated),
                e.to_string(),
            ),
        };
        self.report(&framework_id, &task_id, state, reason, message);
    }

    async fn kill(self, framework_id: FrameworkId, task_id: TaskId, grace: Option<Duration>) {
        let found = self
            .books()
            .tasks
            .get(&(framework_id.clone(), task_id.clone()))
            .map(|r| (r.container.clone(), r.containerizer, r.kill_grace));
        let Some((container, index, task_grace)) = found else {
            self.report(
                &framework_id,
                &task_id,
                TaskState::Lost,
                Some(TaskReason::ReasonAgentUnknown),
                "the agent does not know this task",
            );
            return;
        };
        self.report(&framework_id, &task_id, TaskState::Killing, None, "killing");
        let grace = grace.or(task_grace).unwrap_or(self.inner.config.default_kill_grace);
        // The launch flow reports the terminal state when the container ends.
        let _ = self.inner.containerizers[index].kill(&container, grace).await;
    }
}

#[cfg(test)]
mod tests {
    use super::bounded_name;

    #[test]
    fn long_names_are_bounded_and_stay_apart() {
        assert_eq!(bounded_name("web.1", 200), "web.1");
        let a = bounded_name(&"a".repeat(255), 200);
        let b = bounded_name(&format!("{}b", "a".repeat(254)), 200);
        assert_eq!(a.len(), 200);
        assert_ne!(a, b);
        assert_eq!(a, bounded_name(&"a".repeat(255), 200));
        // Never split inside a character.
        assert!(bounded_name(&"é".repeat(200), 100).len() <= 100);
    }
}
