//! The framework loop: subscribes through a [`MasterClient`], turns offers
//! into launches and status updates into instance changes with the
//! [`Scheduler`], kills what the scheduler wants killed, suppresses offers
//! when nothing waits and revives them when work appears, and keeps apps,
//! instances and the framework id in a [`StateStore`] (through `persist.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orchestrator_core::{FrameworkId, StateStore, TaskState};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;

use super::app::AppDefinition;
use super::matcher::match_offer;
use super::persist::{Persistence, Unreadable};
use super::scheduler::{Deployment, Locked, Scheduler};
use crate::api::client::{MasterClient, Subscription};
use crate::api::scheduler::{Call, Event};
use crate::Result;

/// How the framework runs.
#[derive(Clone, Debug)]
pub struct MarathonConfig {
    /// Framework name shown by the master.
    pub name: String,
    /// User tasks run as.
    pub user: String,
    /// Role of the framework.
    pub role: String,
    /// How long the master keeps tasks while the framework is away.
    pub failover_timeout: Duration,
    /// Housekeeping period (kills, deployments, suppress/revive).
    pub tick: Duration,
    /// Filter on offers declined while work waits (they may fit later).
    pub decline_refuse: Duration,
}

impl Default for MarathonConfig {
    fn default() -> Self {
        MarathonConfig {
            name: "marathon".into(),
            user: "root".into(),
            role: "*".into(),
            failover_timeout: Duration::from_secs(7 * 24 * 3600),
            tick: Duration::from_millis(500),
            decline_refuse: Duration::from_secs(5),
        }
    }
}

struct Inner {
    sched: Mutex<Scheduler>,
    health: Mutex<super::health::Checks>,
    client: Arc<dyn MasterClient>,
    store: Persistence,
    /// Stored apps that did not load, by id: shown in the queue, removable.
    unreadable: Mutex<std::collections::BTreeMap<String, Unreadable>>,
    config: MarathonConfig,
    framework_id: Mutex<Option<FrameworkId>>,
    wake: Notify,
    events: broadcast::Sender<Value>,
    suppressed: AtomicBool,
    deployments: AtomicU64,
}

/// A running Marathon-style framework: cheap to clone, shared by the API.
#[derive(Clone)]
pub struct Marathon {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Marathon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marathon")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Marathon's version format: an ISO-8601 UTC time with milliseconds.
pub fn version_now() -> String {
    super::iso8601::Iso8601::now().to_string()
}

/// Events taken from the stream to be handled together.
const EVENT_BATCH: usize = 1024;

mod updates;

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn call(v: Value) -> Call {
    serde_json::from_value(v).expect("calls built here are valid JSON calls")
}

impl Marathon {
    /// Loads the apps kept in `store` and starts the framework loop.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn start(
        client: Arc<dyn MasterClient>,
        store: Arc<dyn StateStore>,
        config: MarathonConfig,
    ) -> Result<(Self, JoinHandle<()>)> {
        let store = Persistence::new(store);
        let loaded = store.load().await?;
        let mut sched = Scheduler::new();
        for def in loaded.apps {
            let version = def.version.clone().unwrap_or_else(version_now);
            let id = format!("recover-{}", def.id.trim_start_matches('/'));
            let _ = sched.put_app(def, &version, &id, true);
        }
        for u in &loaded.unreadable {
            tracing::warn!(app = %u.id, reason = %u.reason, "a stored app is not valid: it is not run; DELETE it or PUT a valid definition");
        }
        for instance in loaded.instances {
            sched.restore(instance);
        }
        let framework_id = loaded.framework_id;
        let inner = Arc::new(Inner {
            sched: Mutex::new(sched),
            health: Mutex::new(super::health::Checks::default()),
            client,
            store,
            unreadable: Mutex::new(loaded.unreadable.into_iter().map(|u| (u.id.clone(), u)).collect()),
            config,
            framework_id: Mutex::new(framework_id),
            wake: Notify::new(),
            events: broadcast::channel(4096).0,
            suppressed: AtomicBool::new(false),
            deployments: AtomicU64::new(0),
        });
        let m = Marathon { inner };
        let run = tokio::spawn({
            let m = m.clone();
            async move {
                // Aborting the returned handle ends the health checks too.
                let _checks = AbortOnDrop(tokio::spawn(m.clone().health_loop()));
                m.run().await;
            }
        });
        Ok((m, run))
    }

    /// Reads the scheduler's state.
    pub fn with<R>(&self, f: impl FnOnce(&Scheduler) -> R) -> R {
        f(&lock(&self.inner.sched))
    }

    /// How the framework runs.
    pub fn config(&self) -> &MarathonConfig {
        &self.inner.config
    }

    /// The framework id, once subscribed.
    pub fn framework_id(&self) -> Option<FrameworkId> {
        lock(&self.inner.framework_id).clone()
    }

    /// Marathon-style events (`deployment_info`, `status_update_event`, …).
    pub fn events(&self) -> broadcast::Receiver<Value> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event_type: &str, mut body: Value) {
        if let Value::Object(m) = &mut body {
            m.insert("eventType".into(), json!(event_type));
            m.insert("timestamp".into(), json!(version_now()));
        }
        let _ = self.inner.events.send(body);
    }

    fn next_deployment_id(&self) -> String {
        let n = self.inner.deployments.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:016x}-{n:04x}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        )
    }

    /// Creates or changes an app (validated by the caller) and starts its
    /// deployment; `Ok(None)` when nothing changes.
    ///
    /// # Errors
    /// `Ok(Err(Locked))` while a deployment holds the app and `force` is
    /// not set; `Err` when the store fails.
    pub async fn put_app(&self, def: AppDefinition, force: bool) -> Result<Result<Option<Deployment>, Locked>> {
        let version = version_now();
        let id = self.next_deployment_id();
        let outcome = lock(&self.inner.sched).put_app(def, &version, &id, force);
        if let Ok(Some(d)) = &outcome {
            self.record_version(&d.app_id).await?;
            if let Some(app) = self.with(|s| s.app(&d.app_id).map(|a| a.def.clone())) {
                self.emit("api_post_event", json!({"appDefinition": app}));
            }
            self.deployment_info(d);
            self.group_changed(&d.version);
        }
        self.inner.wake.notify_one();
        Ok(outcome)
    }

    /// Marathon's `deployment_info`: the plan (from the original to the
    /// target root group, in steps of actions) and its current step.
    fn deployment_info(&self, d: &Deployment) {
        let target = self.with(|s| s.app(&d.app_id).map(|a| a.def.clone()));
        let group = |app: Option<&AppDefinition>, version: &str| {
            json!({"id": "/", "apps": app.into_iter().collect::<Vec<_>>(), "groups": [],
                "dependencies": [], "version": version})
        };
        let original_version = d
            .original
            .as_ref()
            .and_then(|o| o.version.clone())
            .unwrap_or_else(|| d.version.clone());
        let steps: Vec<Value> = d.steps.iter().map(|s| json!({"actions": [s]})).collect();
        self.emit(
            "deployment_info",
            json!({
                "plan": {"id": d.id, "version": d.version, "steps": steps,
                    "original": group(d.original.as_ref(), &original_version),
                    "target": group(target.as_ref(), &d.version)},
                "currentStep": steps.first().cloned().unwrap_or_else(|| json!({"actions": []})),
            }),
        );
    }

    /// Marathon's `group_change_success`: the tree of apps (the root group)
    /// changed to `version`.
    fn group_changed(&self, version: &str) {
        self.emit("group_change_success", json!({"groupId": "/", "version": version}));
    }

    async fn record_version(&self, app_id: &str) -> Result<()> {
        let Some(app) = self.with(|s| s.app(app_id).map(|a| a.def.clone())) else {
            return Ok(());
        };
        self.inner.store.save_app(&app).await?;
        // A valid definition replaces one that did not load.
        lock(&self.inner.unreadable).remove(&app.id);
        Ok(())
    }

    /// Every recorded version of an app, newest first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn versions(&self, app_id: &str) -> Result<Vec<String>> {
        self.inner.store.versions(app_id).await
    }

    /// One recorded version of an app.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn version(&self, app_id: &str, version: &str) -> Result<Option<AppDefinition>> {
        self.inner.store.version(app_id, version).await
    }

    /// Stored apps that did not load (invalid or unparsable), which are not
    /// run until they are replaced or deleted.
    pub fn unreadable(&self) -> Vec<Unreadable> {
        lock(&self.inner.unreadable).values().cloned().collect()
    }

    /// Deletes a stored app that did not load; `false` when there is none
    /// by that id.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete_unreadable(&self, id: &str) -> Result<bool> {
        if !lock(&self.inner.unreadable).contains_key(id) {
            return Ok(false);
        }
        self.inner.store.delete_app(id).await?;
        lock(&self.inner.unreadable).remove(id);
        Ok(true)
    }

    /// Restarts every instance of an app as a new version.
    ///
    /// # Errors
    /// As [`put_app`](Self::put_app).
    pub async fn restart_app(&self, id: &str, force: bool) -> Result<Result<Option<Deployment>, Locked>> {
        let outcome = lock(&self.inner.sched).restart_app(id, &version_now(), &self.next_deployment_id(), force);
        if let Ok(Some(d)) = &outcome {
            self.record_version(id).await?;
            self.deployment_info(d);
        }
        self.inner.wake.notify_one();
        Ok(outcome)
    }

    /// Stops a deployment: with `force` it is only cancelled; otherwise a
    /// new deployment takes the app back to where it was. `None` when
    /// there is no such deployment.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn stop_deployment(&self, id: &str, force: bool) -> Result<Option<Option<Deployment>>> {
        let Some(d) = lock(&self.inner.sched).cancel_deployment(id) else {
            return Ok(None);
        };
        self.emit(
            "deployment_failed",
            json!({"id": d.id, "plan": {"id": d.id, "version": d.version}}),
        );
        if force {
            self.inner.wake.notify_one();
            return Ok(Some(None));
        }
        let back = match d.original {
            Some(original) => self.put_app(original, true).await?,
            None => self.delete_app(&d.app_id, true).await?,
        };
        Ok(Some(back.unwrap_or(None)))
    }

    /// Kills instances; with `scale` their apps shrink instead of replacing
    /// them. Returns the kills sent and, with `scale`, the deployments that
    /// record each app's scale-down.
    pub async fn kill_tasks(&self, tasks: &[orchestrator_core::TaskId], scale: bool) -> (usize, Vec<Deployment>) {
        let version = version_now();
        let (kills, deployments) = {
            let mut s = lock(&self.inner.sched);
            let mut originals: Vec<AppDefinition> = Vec::new();
            for t in tasks {
                if let Some(app) = s.instance(t).and_then(|i| s.app(&i.app_id)) {
                    if !originals.iter().any(|o| o.id == app.def.id) {
                        originals.push(app.def.clone());
                    }
                }
            }
            let kills = s.kill_instances(tasks, scale, Instant::now());
            let mut deployments = Vec::new();
            if scale {
                for original in originals {
                    let id = self.next_deployment_id();
                    deployments.extend(s.record_scale(original, &version, &id));
                }
            }
            (kills, deployments)
        };
        for d in &deployments {
            let _ = self.record_version(&d.app_id).await;
            self.deployment_info(d);
        }
        let n = kills.len();
        if let Some(fw) = self.framework_id() {
            for (task, agent) in kills {
                self.send(json!({"framework_id": fw, "type": "KILL", "kill": {"task_id": task, "agent_id": agent}}))
                    .await;
            }
        }
        self.inner.wake.notify_one();
        (n, deployments)
    }

    /// Clears an app's launch delay.
    pub fn reset_delay(&self, id: &str) -> bool {
        let ok = lock(&self.inner.sched).reset_delay(id);
        self.inner.wake.notify_one();
        ok
    }

    /// Removes an app (its instances are killed); `Ok(Ok(None))` when there is no such app.
    ///
    /// # Errors
    /// As [`put_app`](Self::put_app).
    pub async fn delete_app(&self, id: &str, force: bool) -> Result<Result<Option<Deployment>, Locked>> {
        let outcome = lock(&self.inner.sched).delete_app(id, &version_now(), &self.next_deployment_id(), force);
        if let Ok(Some(d)) = &outcome {
            self.inner.store.delete_app(id).await?;
            self.deployment_info(d);
            self.group_changed(&d.version);
        }
        self.inner.wake.notify_one();
        Ok(outcome)
    }

    /// Health checks of every running instance, each when it is due.
    async fn health_loop(self) {
        use super::health::{run_check, Verdict};
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let mut due = Vec::new();
            {
                let s = lock(&self.inner.sched);
                let mut checks = lock(&self.inner.health);
                // Only apps with checks matter: at 100,000 instances of
                // unchecked apps a tick must cost nothing.
                if !checks.results.is_empty() || !checks.due.is_empty() {
                    let live: std::collections::HashSet<&str> = s
                        .apps()
                        .filter(|a| !a.def.health_checks.is_empty())
                        .flat_map(|a| s.instances_of(&a.def.id))
                        .map(|i| i.task_id.as_str())
                        .collect();
                    checks.results.retain(|(t, _), _| live.contains(t.as_str()));
                    checks.due.retain(|(t, _), _| live.contains(t.as_str()));
                }
                let checked = s.apps().filter(|a| !a.def.health_checks.is_empty());
                let running = checked.flat_map(|a| s.instances_of(&a.def.id).map(move |i| (a, i)));
                for (app, i) in running.filter(|(_, i)| i.state == TaskState::Running && !i.killing) {
                    for (n, hc) in app.def.health_checks.iter().enumerate() {
                        let key = (i.task_id.to_string(), n);
                        if checks.due.get(&key).is_some_and(|d| *d > now) {
                            continue;
                        }
                        checks
                            .due
                            .insert(key, now + Duration::from_secs(u64::from(hc.interval_seconds.max(1))));
                        let grace_end = i.started_at_ms.unwrap_or(now_ms) + u64::from(hc.grace_period_seconds) * 1000;
                        due.push((i.clone(), n, hc.clone(), now_ms < grace_end));
                    }
                }
            }
            for (instance, n, hc, in_grace) in due {
                let permits = lock(&self.inner.health).permits.clone();
                let Ok(permit) = permits.acquire_owned().await else {
                    return;
                };
                let (m, http) = (self.clone(), http.clone());
                tokio::spawn(async move {
                    let outcome = run_check(&http, &hc, &instance.hostname, &instance.ports).await;
                    drop(permit);
                    let verdict = lock(&m.inner.health)
                        .results
                        .entry((instance.task_id.to_string(), n))
                        .or_default()
                        .record(outcome, in_grace, &hc);
                    let alive = match verdict {
                        Verdict::Same => return,
                        Verdict::Changed(alive) => alive,
                        Verdict::Kill => false,
                    };
                    lock(&m.inner.sched).set_health(&instance.task_id, alive);
                    m.emit(
                        "health_status_changed_event",
                        json!({"appId": instance.app_id, "taskId": instance.task_id.as_str(), "instanceId": instance.task_id.as_str(),
                            "version": instance.version, "alive": alive}),
                    );
                    if verdict == Verdict::Kill {
                        tracing::info!(task = %instance.task_id, "unhealthy: killing for replacement");
                        m.kill_tasks(std::slice::from_ref(&instance.task_id), false).await;
                    }
                    m.inner.wake.notify_one();
                });
            }
        }
    }

    /// The health check results of an instance (for `healthCheckResults`).
    pub fn health_of(&self, task: &orchestrator_core::TaskId) -> Vec<super::health::HealthResult> {
        let checks = lock(&self.inner.health);
        let task = task.to_string();
        checks
            .results
            .range((task.clone(), 0)..=(task, usize::MAX))
            .map(|(_, r)| r.clone())
            .collect()
    }

    async fn run(self) {
        let first = Duration::from_millis(100);
        let mut pause = first;
        loop {
            match self.subscribe().await {
                Ok(sub) => {
                    self.serve(sub).await;
                    pause = first;
                }
                Err(e) => tracing::warn!(error = %e, "marathon cannot subscribe; retrying"),
            }
            // Again after a pause that doubles up to a second, or as soon as
            // another master leads; a new leader may still be recovering
            // (503) for a moment, so the pauses start short again then.
            tokio::select! {
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_secs(1)),
                () = self.inner.client.leader_changed() => pause = first,
            }
        }
    }

    async fn subscribe(&self) -> Result<Subscription> {
        let c = &self.inner.config;
        let mut info = json!({"user": c.user, "name": c.name, "role": c.role,
            "failover_timeout": c.failover_timeout.as_secs_f64(), "checkpoint": true});
        if let Some(id) = self.framework_id() {
            info["id"] = json!(id);
        }
        let mut body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}});
        if let Some(id) = self.framework_id() {
            body["framework_id"] = json!(id);
        }
        let sub = self.inner.client.subscribe(call(body)).await?;
        *lock(&self.inner.framework_id) = Some(sub.framework_id.clone());
        self.inner.store.save_framework_id(&sub.framework_id).await?;
        self.inner.suppressed.store(false, Ordering::SeqCst);
        // Ask after every instance this scheduler knows (the lost come back
        // LOST and are replaced), then after every task the master knows
        // (the ones this scheduler does not know are killed).
        let known: Vec<Value> = self.with(|s| {
            s.instances()
                .map(|i| json!({"task_id": i.task_id, "agent_id": i.agent_id}))
                .collect()
        });
        let fw = &sub.framework_id;
        if !known.is_empty() {
            self.send(json!({"framework_id": fw, "type": "RECONCILE", "reconcile": {"tasks": known}}))
                .await;
        }
        self.send(json!({"framework_id": fw, "type": "RECONCILE", "reconcile": {"tasks": []}}))
            .await;
        Ok(sub)
    }

    async fn serve(&self, mut sub: Subscription) {
        let fw = sub.framework_id.clone();
        let mut tick = tokio::time::interval(self.inner.config.tick);
        // Housekeeping looks at every app and instance; woken by every
        // RUNNING update it would starve the event stream at 100,000
        // instances. So it runs when asked, but leaves the loop at least
        // four times its own cost for events in between.
        let mut pending = false;
        let mut next_allowed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                ev = sub.events.recv() => match ev {
                    Some(ev) => {
                        // What else has arrived is handled with it: a run
                        // of status updates as one batch (one lock, their
                        // writes and acknowledgements in parallel).
                        let mut batch = vec![ev];
                        while batch.len() < EVENT_BATCH {
                            match sub.events.try_recv() {
                                Ok(ev) => batch.push(ev),
                                Err(_) => break,
                            }
                        }
                        self.on_events(&fw, batch).await;
                    }
                    None => return,
                },
                _ = tick.tick() => pending = true,
                () = self.inner.wake.notified() => pending = true,
                () = tokio::time::sleep_until(next_allowed), if pending => {
                    let started = tokio::time::Instant::now();
                    self.housekeeping(&fw).await;
                    let cost = started.elapsed();
                    next_allowed = tokio::time::Instant::now() + (cost * 4).max(Duration::from_millis(5));
                    pending = false;
                }
            }
        }
    }

    async fn send(&self, body: Value) {
        if let Err(e) = self.inner.client.call(call(body)).await {
            tracing::warn!(error = %e, "marathon call refused");
        }
    }

    /// Handles events in order; runs of status updates together.
    async fn on_events(&self, fw: &FrameworkId, events: Vec<Event>) {
        let mut updates = Vec::new();
        for ev in events {
            match ev.update {
                Some(u) if ev.offers.is_none() => updates.push(u.status),
                _ => {
                    if !updates.is_empty() {
                        self.on_updates(fw, std::mem::take(&mut updates)).await;
                    }
                    self.on_event(fw, ev).await;
                }
            }
        }
        if !updates.is_empty() {
            self.on_updates(fw, updates).await;
        }
    }

    async fn on_event(&self, fw: &FrameworkId, ev: Event) {
        let now = Instant::now();
        if let Some(offers) = ev.offers {
            let mut accepts = Vec::new();
            let mut declines = Vec::new();
            let mut records = Vec::new();
            {
                let mut s = lock(&self.inner.sched);
                // What is wanted is computed once per event and drawn down
                // offer by offer (each offer's launches are recorded, so
                // constraints see them through `placed`).
                let mut wanted: Vec<(AppDefinition, u32)> = s
                    .launches_wanted(now)
                    .into_iter()
                    .map(|(a, n)| (a.clone(), n))
                    .collect();
                for offer in offers.offers {
                    let refs: Vec<(&AppDefinition, u32)> =
                        wanted.iter().filter(|(_, n)| *n > 0).map(|(a, n)| (a, *n)).collect();
                    if refs.is_empty() {
                        declines.push(offer.id);
                        continue;
                    }
                    let placed = s.placed();
                    let launches = match_offer(&offer, &refs, &placed, |a| s.next_task_id(a));
                    if launches.is_empty() {
                        declines.push(offer.id);
                        continue;
                    }
                    for l in &launches {
                        if let Some(w) = wanted.iter_mut().find(|(a, _)| a.id == l.app_id) {
                            w.1 = w.1.saturating_sub(1);
                        }
                    }
                    s.launched(&launches, &offer.hostname, &offer.attributes, now);
                    for l in &launches {
                        if let Some(i) = s.instance(&l.task.task_id) {
                            records.push(i.clone());
                        }
                    }
                    let tasks: Vec<_> = launches.into_iter().map(|l| l.task).collect();
                    accepts.push((offer.id, tasks));
                }
            }
            // Recorded before the launch, so a restart never forgets a task.
            let store = &self.inner.store;
            futures_util::stream::iter(&records)
                .for_each_concurrent(updates::IN_FLIGHT, |i| store.save_instance(i))
                .await;
            for (offer_id, tasks) in accepts {
                self.send(json!({"framework_id": fw, "type": "ACCEPT", "accept": {
                    "offer_ids": [offer_id],
                    "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                    "filters": {"refuse_seconds": self.inner.config.decline_refuse.as_secs_f64()}}}))
                    .await;
            }
            if !declines.is_empty() {
                self.send(json!({"framework_id": fw, "type": "DECLINE", "decline": {
                    "offer_ids": declines,
                    "filters": {"refuse_seconds": self.inner.config.decline_refuse.as_secs_f64()}}}))
                    .await;
            }
        }
        if let Some(update) = ev.update {
            self.on_updates(fw, vec![update.status]).await;
        }
    }

    async fn housekeeping(&self, fw: &FrameworkId) {
        let now = Instant::now();
        let (kills, finished, wanting, waiting) = {
            let mut s = lock(&self.inner.sched);
            let kills = s.kills_wanted(now);
            let finished = s.finish_deployments();
            let wanting = !s.launches_wanted(now).is_empty();
            // Delayed launches need offers again once their delay passes.
            let waiting = s.apps().any(|a| !a.delay.ready(now));
            (kills, finished, wanting, waiting)
        };
        for (task, agent) in kills {
            self.send(json!({"framework_id": fw, "type": "KILL", "kill": {"task_id": task, "agent_id": agent}}))
                .await;
        }
        for d in finished {
            self.emit(
                "deployment_success",
                json!({"id": d.id, "plan": {"id": d.id, "version": d.version}}),
            );
            if d.stops() {
                // Its last instance is gone: Marathon's AppTerminatedEvent.
                self.emit("app_terminated_event", json!({"appId": d.app_id}));
            }
        }
        let suppressed = self.inner.suppressed.load(Ordering::SeqCst);
        if wanting && suppressed {
            self.inner.suppressed.store(false, Ordering::SeqCst);
            self.send(json!({"framework_id": fw, "type": "REVIVE"})).await;
        } else if !wanting && !waiting && !suppressed {
            self.inner.suppressed.store(true, Ordering::SeqCst);
            self.send(json!({"framework_id": fw, "type": "SUPPRESS"})).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_iso_8601_utc_with_milliseconds() {
        let v = version_now();
        assert_eq!(v.len(), 24, "{v}");
        assert_eq!(
            (&v[4..5], &v[10..11], &v[19..20], &v[23..]),
            ("-", "T", ".", "Z"),
            "{v}"
        );
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let year = 1970 + secs / 31_556_952;
        assert_eq!(v[..4].parse::<u64>().unwrap(), year, "{v}");
    }
}
