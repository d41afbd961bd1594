//! The scheduler's state machine: apps, their instances and deployments.
//! Pure and synchronous: the framework loop feeds it offers, status
//! updates and API changes with the current [`Instant`], and carries out
//! what it decides. It never reads a clock: wall-clock timestamps (when a
//! task started, when a kill was sent) are derived from the `Instant`s it is
//! given and a [`WallClock`] anchor fixed when it was made.

use std::collections::BTreeMap;
use std::time::Instant;

use orchestrator_core::{AgentId, Attributes, TaskId, TaskState, TaskStatus};
use serde::{Deserialize, Serialize};

use super::app::{AppDefinition, KillSelection, VersionInfo};
use super::backoff::LaunchDelay;
use super::matcher::{Launch, Placement};
use super::plan::{plan, replace_step, Bounds, ReplaceState, Step};

mod clock;
mod deployments;
mod groups;
mod ports;

pub use clock::WallClock;
use deployments::Deployments;
pub use deployments::{Deployment, Locked};
pub use groups::{dependency_cycle, parent, resolve};
pub use ports::SERVICE_PORTS;

/// One instance (a task) of an app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// The task.
    pub task_id: TaskId,
    /// Its app.
    pub app_id: String,
    /// The app version it runs.
    pub version: String,
    /// Where.
    pub agent_id: AgentId,
    /// The agent's host name.
    pub hostname: String,
    /// The agent's attributes (for constraints).
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// Host ports.
    pub ports: Vec<u64>,
    /// Last known state.
    pub state: TaskState,
    /// Launch order (higher: younger).
    pub seq: u64,
    /// Health, when the app has health checks and a result came.
    pub healthy: Option<bool>,
    /// A kill was ordered by the scheduler.
    pub killing: bool,
    /// When the last kill was sent, ms since the epoch (kills are resent
    /// until the task ends: one can cross the task's launch on the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_sent_ms: Option<u64>,
    /// When it was first reported running, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it was launched, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_at_ms: Option<u64>,
}

/// The last task of an app that failed (Marathon's `lastTaskFailure`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// The task.
    pub task_id: TaskId,
    /// Where it ran.
    pub host: String,
    /// Its agent.
    pub agent_id: AgentId,
    /// How it ended.
    pub state: TaskState,
    /// What the agent said.
    pub message: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// The app version it ran.
    pub version: String,
}

/// An app with what the scheduler keeps beside its definition.
#[derive(Clone, Debug, PartialEq)]
pub struct AppState {
    /// The definition (with `version` set).
    pub def: AppDefinition,
    /// Its launch delay.
    pub delay: LaunchDelay,
    /// The last of its tasks that failed.
    pub last_failure: Option<TaskFailure>,
}

/// The scheduler's state.
#[derive(Debug, Default)]
pub struct Scheduler {
    clock: WallClock,
    apps: BTreeMap<String, AppState>,
    instances: BTreeMap<TaskId, Instance>,
    /// The instances of each app (so per-app questions do not scan all).
    by_app: BTreeMap<String, std::collections::BTreeSet<TaskId>>,
    deployments: Deployments,
    seq: u64,
}

/// How long a kill may go unanswered before it is sent again.
const KILL_RETRY_MS: u64 = 5_000;

fn ready(app: &AppDefinition, i: &Instance) -> bool {
    i.state == TaskState::Running && (app.health_checks.is_empty() || i.healthy == Some(true))
}

impl Scheduler {
    /// An empty scheduler on the system clock (read once, here).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty scheduler whose wall-clock times are derived from `clock`
    /// (tests pass a fixed one).
    pub fn with_clock(clock: WallClock) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    /// The apps.
    pub fn apps(&self) -> impl Iterator<Item = &AppState> {
        self.apps.values()
    }

    /// One app.
    pub fn app(&self, id: &str) -> Option<&AppState> {
        self.apps.get(id)
    }

    /// Every instance.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// The instances of one app, from the per-app index.
    pub fn instances_of<'a>(&'a self, app_id: &str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.by_app
            .get(app_id)
            .into_iter()
            .flatten()
            .filter_map(|t| self.instances.get(t))
    }

    /// One instance.
    pub fn instance(&self, task: &TaskId) -> Option<&Instance> {
        self.instances.get(task)
    }

    /// Deployments in progress.
    pub fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.values()
    }

    /// The deployments in progress for one app.
    pub fn deployments_of<'a>(&'a self, app_id: &str) -> impl Iterator<Item = &'a Deployment> + 'a {
        self.deployments.of_app(app_id)
    }

    /// Frees an app from the deployments holding it when `force` is set.
    fn unlock(&mut self, app_id: &str, force: bool) -> Result<(), Locked> {
        let holders = self.holders(app_id);
        if holders.is_empty() {
            return Ok(());
        }
        if !force {
            return Err(Locked { deployments: holders });
        }
        for h in holders {
            self.deployments.remove(&h);
        }
        Ok(())
    }

    fn holders(&self, app_id: &str) -> Vec<String> {
        self.deployments.of_app(app_id).map(|d| d.id.clone()).collect()
    }

    /// Creates or changes an app. A change of `instances` alone scales; any
    /// other change restarts; an unchanged definition starts nothing.
    /// `force` cancels a deployment that holds the app.
    ///
    /// # Errors
    /// [`Locked`] when a deployment holds the app and `force` is not set.
    pub fn put_app(
        &mut self,
        mut def: AppDefinition,
        version: &str,
        deployment_id: &str,
        force: bool,
    ) -> Result<Option<Deployment>, Locked> {
        self.unlock(&def.id, force)?;
        // Service ports given as 0 get one (the same as before, if the app
        // had one there); an exhausted range leaves them 0: no service port.
        let _ = self.assign_service_ports(&mut def);
        let current = self.apps.get(&def.id).map(|a| &a.def);
        let steps = plan(current, Some(&def));
        if steps.is_empty() {
            return Ok(None);
        }
        let scale_only = steps.iter().all(|s| matches!(s, Step::ScaleApplication { .. })) && current.is_some();
        let mut delay = self.apps.get(&def.id).map(|a| a.delay).unwrap_or_default();
        if scale_only {
            // A scale keeps the version the instances run.
            def.version.clone_from(&current.and_then(|c| c.version.clone()));
            let changed = current
                .and_then(|c| c.version_info.as_ref().map(|v| v.last_config_change_at.clone()))
                .or_else(|| def.version.clone())
                .unwrap_or_else(|| version.to_string());
            def.version_info = Some(VersionInfo {
                last_scaling_at: version.to_string(),
                last_config_change_at: changed,
            });
        } else {
            def.version = Some(version.to_string());
            def.version_info = Some(VersionInfo {
                last_scaling_at: version.to_string(),
                last_config_change_at: version.to_string(),
            });
            delay.reset();
        }
        let deployment = Deployment {
            id: deployment_id.to_string(),
            version: version.to_string(),
            app_id: def.id.clone(),
            steps,
            original: current.cloned(),
        };
        let last_failure = self.apps.get(&def.id).and_then(|a| a.last_failure.clone());
        self.apps.insert(
            def.id.clone(),
            AppState {
                def,
                delay,
                last_failure,
            },
        );
        self.deployments.insert(deployment.id.clone(), deployment.clone());
        Ok(Some(deployment))
    }

    /// Removes an app: its instances are killed, and it is forgotten when
    /// none is left. `None` when there is no such app.
    ///
    /// # Errors
    /// [`Locked`] as for [`put_app`](Self::put_app).
    pub fn delete_app(
        &mut self,
        id: &str,
        version: &str,
        deployment_id: &str,
        force: bool,
    ) -> Result<Option<Deployment>, Locked> {
        if !self.apps.contains_key(id) {
            return Ok(None);
        }
        self.unlock(id, force)?;
        let app = &self.apps[id];
        let deployment = Deployment {
            id: deployment_id.to_string(),
            version: version.to_string(),
            app_id: id.to_string(),
            steps: plan(Some(&app.def), None),
            original: Some(app.def.clone()),
        };
        self.deployments.insert(deployment.id.clone(), deployment.clone());
        Ok(Some(deployment))
    }

    /// Restarts every instance of an app under a new version, within its
    /// upgrade bounds. `Ok(None)` when there is no such app.
    ///
    /// # Errors
    /// [`Locked`] as for [`put_app`](Self::put_app).
    pub fn restart_app(
        &mut self,
        id: &str,
        version: &str,
        deployment_id: &str,
        force: bool,
    ) -> Result<Option<Deployment>, Locked> {
        if !self.apps.contains_key(id) {
            return Ok(None);
        }
        self.unlock(id, force)?;
        let app = &self.apps[id];
        let original = app.def.clone();
        let mut def = original.clone();
        def.version = Some(version.to_string());
        def.version_info = Some(VersionInfo {
            last_scaling_at: version.to_string(),
            last_config_change_at: version.to_string(),
        });
        let deployment = Deployment {
            id: deployment_id.to_string(),
            version: version.to_string(),
            app_id: id.to_string(),
            steps: vec![Step::RestartApplication { app: id.to_string() }],
            original: Some(original),
        };
        let delay = LaunchDelay::default();
        let last_failure = self.apps.get(id).and_then(|a| a.last_failure.clone());
        self.apps.insert(
            id.to_string(),
            AppState {
                def,
                delay,
                last_failure,
            },
        );
        self.deployments.insert(deployment.id.clone(), deployment.clone());
        Ok(Some(deployment))
    }

    /// Cancels a deployment (the app keeps its target; nothing is rolled back).
    pub fn cancel_deployment(&mut self, id: &str) -> Option<Deployment> {
        self.deployments.remove(id)
    }

    /// Clears an app's launch delay (`DELETE /v2/queue/{id}/delay`).
    pub fn reset_delay(&mut self, id: &str) -> bool {
        self.apps.get_mut(id).map(|a| a.delay.reset()).is_some()
    }

    fn active<'a>(&'a self, app_id: &str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances_of(app_id)
            .filter(|i| !i.killing && !i.state.is_terminal())
    }

    fn insert(&mut self, instance: Instance) {
        self.by_app
            .entry(instance.app_id.clone())
            .or_default()
            .insert(instance.task_id.clone());
        self.instances.insert(instance.task_id.clone(), instance);
    }

    fn remove(&mut self, task: &TaskId) -> Option<Instance> {
        let i = self.instances.remove(task)?;
        if let Some(set) = self.by_app.get_mut(&i.app_id) {
            set.remove(task);
            if set.is_empty() {
                self.by_app.remove(&i.app_id);
            }
        }
        Some(i)
    }

    fn stopping(&self, app_id: &str) -> bool {
        self.deployments.of_app(app_id).any(Deployment::stops)
    }

    fn restarting(&self, app_id: &str) -> bool {
        self.deployments.of_app(app_id).any(Deployment::restarts)
    }

    /// How many new instances each app wants now (launch delays respected).
    pub fn launches_wanted(&self, now: Instant) -> Vec<(&AppDefinition, u32)> {
        let mut out = Vec::new();
        for (id, app) in &self.apps {
            if self.stopping(id) || !app.delay.ready(now) {
                continue;
            }
            // Started only once what it depends on runs (Marathon's order).
            if !app.def.dependencies.is_empty() && !self.dependencies_ready(&app.def) {
                continue;
            }
            let n = app.def.instances;
            let version = app.def.version.as_deref().unwrap_or("");
            let want = if self.restarting(id) {
                let active: Vec<&Instance> = self.active(id).collect();
                let state = self.replace_state(&app.def, &active, version);
                replace_step(&state, &Bounds::new(n, &app.def.upgrade_strategy)).launch
            } else {
                n.saturating_sub(u32::try_from(self.active(id).count()).unwrap_or(u32::MAX))
            };
            if want > 0 {
                out.push((&app.def, want));
            }
        }
        out
    }

    fn replace_state(&self, app: &AppDefinition, active: &[&Instance], version: &str) -> ReplaceState {
        let count = |f: &dyn Fn(&Instance) -> bool| u32::try_from(active.iter().filter(|i| f(i)).count()).unwrap_or(0);
        ReplaceState {
            target: app.instances,
            old: count(&|i| i.version != version),
            new_started: count(&|i| i.version == version),
            new_ready: count(&|i| i.version == version && ready(app, i)),
        }
    }

    /// Orders the kills the apps need now (scale-down, stop, rolling
    /// restart) and marks those instances as killing; kills sent more than
    /// five seconds before `now` and not answered go again.
    pub fn kills_wanted(&mut self, now: Instant) -> Vec<(TaskId, AgentId)> {
        let mut victims: Vec<TaskId> = Vec::new();
        for (id, app) in &self.apps {
            let version = app.def.version.as_deref().unwrap_or("");
            let (stopping, restarting) = (self.stopping(id), self.restarting(id));
            // The common case, an app at or below its count: nothing to kill.
            if !stopping && !restarting && self.active(id).count() <= app.def.instances as usize {
                continue;
            }
            let mut active: Vec<&Instance> = self.active(id).collect();
            if stopping {
                victims.extend(active.iter().map(|i| i.task_id.clone()));
                continue;
            }
            // Youngest first: highest launch sequence first.
            active.sort_by_key(|i| std::cmp::Reverse(i.seq));
            if app.def.kill_selection == KillSelection::OldestFirst {
                active.reverse();
            }
            if restarting {
                let state = self.replace_state(&app.def, &active, version);
                let k = replace_step(&state, &Bounds::new(app.def.instances, &app.def.upgrade_strategy)).kill_old;
                victims.extend(
                    active
                        .iter()
                        .filter(|i| i.version != version)
                        .take(k as usize)
                        .map(|i| i.task_id.clone()),
                );
            } else {
                let excess = active.len().saturating_sub(app.def.instances as usize);
                // Instances that are not running yet go first, then by kill selection.
                active.sort_by_key(|i| i.state == TaskState::Running);
                victims.extend(active.iter().take(excess).map(|i| i.task_id.clone()));
            }
        }
        let now = self.clock.ms_at(now);
        // Kills not answered by a terminal update within the retry time go again.
        victims.extend(
            self.instances
                .values()
                .filter(|i| i.killing && i.kill_sent_ms.is_some_and(|t| now.saturating_sub(t) >= KILL_RETRY_MS))
                .map(|i| i.task_id.clone()),
        );
        victims
            .into_iter()
            .filter_map(|t| {
                let i = self.instances.get_mut(&t)?;
                i.killing = true;
                i.kill_sent_ms = Some(now);
                Some((t, i.agent_id.clone()))
            })
            .collect()
    }

    /// Where the instances of apps with constraints run (the only apps
    /// whose placement matters).
    pub fn placed(&self) -> BTreeMap<String, Vec<Placement>> {
        let mut out: BTreeMap<String, Vec<Placement>> = BTreeMap::new();
        let constrained = |id: &str| self.apps.get(id).is_some_and(|a| !a.def.constraints.is_empty());
        for i in self
            .instances
            .values()
            .filter(|i| !i.state.is_terminal() && constrained(&i.app_id))
        {
            out.entry(i.app_id.clone()).or_default().push(Placement {
                hostname: i.hostname.clone(),
                attributes: i.attributes.clone(),
            });
        }
        out
    }

    /// A task id for a new instance of `app`.
    pub fn next_task_id(&mut self, app: &AppDefinition) -> TaskId {
        self.seq += 1;
        let name = app.id.trim_start_matches('/').replace('/', "_");
        TaskId::new(format!("{name}.{:08}", self.seq)).expect("app ids make valid task ids")
    }

    /// Records instances just launched from an offer.
    pub fn launched(&mut self, launches: &[Launch], hostname: &str, attributes: &Attributes, now: Instant) {
        let staged = self.clock.ms_at(now);
        for l in launches {
            let version = self
                .apps
                .get(&l.app_id)
                .and_then(|a| a.def.version.clone())
                .unwrap_or_default();
            self.seq += 1;
            self.insert(Instance {
                task_id: l.task.task_id.clone(),
                app_id: l.app_id.clone(),
                version,
                agent_id: l.task.agent_id.clone(),
                hostname: hostname.to_string(),
                attributes: attributes.clone(),
                ports: l.ports.clone(),
                state: TaskState::Staging,
                seq: self.seq,
                healthy: None,
                killing: false,
                started_at_ms: None,
                kill_sent_ms: None,
                staged_at_ms: Some(staged),
            });
        }
    }

    /// Applies a status update. An instance that ends is forgotten; one
    /// that failed (not killed by the scheduler) grows its app's launch
    /// delay. Returns the instance as it was updated, or `None` for a task
    /// the scheduler does not know (which the caller should kill).
    pub fn update(&mut self, status: &TaskStatus, now: Instant) -> Option<Instance> {
        let inst = self.instances.get_mut(&status.task_id)?;
        // Updates can arrive out of order (an agent's STARTING and RUNNING
        // race over HTTP): a stale one does not move the state back.
        if inst.state.can_transition_to(status.state) {
            inst.state = status.state;
        }
        if status.state == TaskState::Running && inst.started_at_ms.is_none() {
            inst.started_at_ms = Some(self.clock.ms_at(now));
        }
        if let Some(h) = status.healthy {
            inst.healthy = Some(h);
        }
        let snapshot = inst.clone();
        if status.state.is_terminal() {
            self.remove(&status.task_id);
            let failed = matches!(
                status.state,
                TaskState::Failed | TaskState::Finished | TaskState::Error | TaskState::Lost | TaskState::Dropped
            );
            if failed && !snapshot.killing {
                let at_ms = self.clock.ms_at(now);
                if let Some(app) = self.apps.get_mut(&snapshot.app_id) {
                    app.delay.failed(&app.def, now);
                    app.last_failure = Some(TaskFailure {
                        task_id: snapshot.task_id.clone(),
                        host: snapshot.hostname.clone(),
                        agent_id: snapshot.agent_id.clone(),
                        state: status.state,
                        message: status.message.clone().unwrap_or_default(),
                        at_ms,
                        version: snapshot.version.clone(),
                    });
                }
            }
        }
        Some(snapshot)
    }

    /// Kills the given instances (they are replaced unless `scale`, which
    /// lowers their apps' instance counts instead). Returns what to kill.
    pub fn kill_instances(&mut self, tasks: &[TaskId], scale: bool, now: Instant) -> Vec<(TaskId, AgentId)> {
        let sent = self.clock.ms_at(now);
        let mut out = Vec::new();
        for t in tasks {
            let Some(i) = self.instances.get_mut(t) else { continue };
            if i.killing || i.state.is_terminal() {
                continue;
            }
            i.killing = true;
            i.kill_sent_ms = Some(sent);
            out.push((t.clone(), i.agent_id.clone()));
            if scale {
                if let Some(app) = self.apps.get_mut(&i.app_id) {
                    app.def.instances = app.def.instances.saturating_sub(1);
                }
            }
        }
        out
    }

    /// Records the scale-down that killing tasks with `scale` made
    /// (their app's count already lowered by [`Scheduler::kill_instances`])
    /// as a deployment, as Marathon answers `?scale=true` with one.
    /// `original` is the app before the kills.
    pub fn record_scale(&mut self, original: AppDefinition, version: &str, deployment_id: &str) -> Option<Deployment> {
        let app = self.apps.get(&original.id)?;
        if app.def.instances == original.instances {
            return None;
        }
        let deployment = Deployment {
            id: deployment_id.to_string(),
            version: version.to_string(),
            app_id: original.id.clone(),
            steps: vec![Step::ScaleApplication {
                app: original.id.clone(),
                instances: app.def.instances,
            }],
            original: Some(original),
        };
        self.deployments.insert(deployment.id.clone(), deployment.clone());
        Some(deployment)
    }

    /// Puts back an instance known from an earlier run (before the
    /// master's reconciliation answers for it).
    pub fn restore(&mut self, instance: Instance) {
        self.seq = self.seq.max(instance.seq);
        self.insert(instance);
    }

    /// Sets an instance's health (from the health checks).
    pub fn set_health(&mut self, task: &TaskId, healthy: bool) -> bool {
        self.instances
            .get_mut(task)
            .map(|i| i.healthy = Some(healthy))
            .is_some()
    }

    /// Removes and returns the deployments that reached their target;
    /// forgets apps whose stop completed.
    pub fn finish_deployments(&mut self) -> Vec<Deployment> {
        let done: Vec<String> = self
            .deployments
            .values()
            .filter(|d| self.deployment_done(d))
            .map(|d| d.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in done {
            if let Some(d) = self.deployments.remove(&id) {
                if d.stops() {
                    self.apps.remove(&d.app_id);
                }
                out.push(d);
            }
        }
        out
    }

    fn deployment_done(&self, d: &Deployment) -> bool {
        let all = || self.instances_of(&d.app_id);
        if d.stops() {
            return all().next().is_none();
        }
        let Some(app) = self.apps.get(&d.app_id) else {
            return true;
        };
        let version = app.def.version.as_deref().unwrap_or("");
        let n = all().count();
        n == app.def.instances as usize && all().all(|i| i.version == version && !i.killing && ready(&app.def, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::{FrameworkId, Offer, OfferId};

    use crate::marathon::matcher::match_offer;

    fn app(json: &str) -> AppDefinition {
        AppDefinition::from_json(json.as_bytes()).unwrap()
    }

    fn offer(n: usize) -> Offer {
        Offer {
            id: OfferId::new(format!("o{n}")).unwrap(),
            framework_id: FrameworkId::new("f").unwrap(),
            agent_id: AgentId::new("a1").unwrap(),
            hostname: "h1".into(),
            resources: "cpus:16;mem:16000;ports:[31000-32000]".parse().unwrap(),
            attributes: Attributes::default(),
            executor_ids: Vec::new(),
        }
    }

    /// One round: offers in, launches recorded, every launch reported running.
    fn round(s: &mut Scheduler, now: Instant) -> usize {
        let wanted: Vec<(AppDefinition, u32)> = s
            .launches_wanted(now)
            .into_iter()
            .map(|(a, n)| (a.clone(), n))
            .collect();
        let refs: Vec<(&AppDefinition, u32)> = wanted.iter().map(|(a, n)| (a, *n)).collect();
        let placed = s.placed();
        let mut ids = Vec::new();
        for (a, n) in &refs {
            for _ in 0..*n {
                ids.push(s.next_task_id(a));
            }
        }
        let mut it = ids.into_iter();
        let o = offer(0);
        let launches = match_offer(&o, &refs, &placed, |_| it.next().unwrap());
        s.launched(&launches, "h1", &Attributes::default(), now);
        for l in &launches {
            s.update(&TaskStatus::new(l.task.task_id.clone(), TaskState::Running), now);
        }
        let kills = s.kills_wanted(now);
        for (t, _) in &kills {
            s.update(&TaskStatus::new(t.clone(), TaskState::Killed), now);
        }
        launches.len() + kills.len()
    }

    fn count(s: &Scheduler, id: &str) -> usize {
        s.instances().filter(|i| i.app_id == id).count()
    }

    #[test]
    fn deploys_scales_up_and_down_and_finishes_deployments() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        let d = s
            .put_app(
                app(r#"{"id": "web", "cmd": "x", "cpus": 0.1, "mem": 10}"#),
                "v1",
                "d1",
                false,
            )
            .unwrap()
            .unwrap();
        assert_eq!(d.steps.len(), 2);
        round(&mut s, now);
        assert_eq!(count(&s, "/web"), 1);
        assert_eq!(s.finish_deployments().len(), 1);

        let mut five = s.app("/web").unwrap().def.clone();
        five.instances = 5;
        s.put_app(five.clone(), "v2", "d2", false).unwrap();
        assert_eq!(
            s.app("/web").unwrap().def.version.as_deref(),
            Some("v1"),
            "a scale keeps the version"
        );
        // Locked while the deployment runs.
        let mut two = five.clone();
        two.instances = 2;
        assert_eq!(
            s.put_app(two.clone(), "v3", "d3", false).unwrap_err().deployments,
            vec!["d2"]
        );
        round(&mut s, now);
        assert_eq!(count(&s, "/web"), 5);
        assert_eq!(s.finish_deployments().len(), 1);
        let mut before: Vec<u64> = s.instances().map(|i| i.seq).collect();
        before.sort_unstable();
        s.put_app(two, "v3", "d3", false).unwrap();
        round(&mut s, now);
        assert_eq!(count(&s, "/web"), 2);
        // Youngest first: the two oldest remain.
        let mut seqs: Vec<u64> = s.instances().map(|i| i.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, before[..2], "youngest first keeps the oldest");
        assert_eq!(s.finish_deployments().len(), 1);

        s.delete_app("/web", "v4", "d4", false).unwrap().unwrap();
        round(&mut s, now);
        assert_eq!(count(&s, "/web"), 0);
        assert_eq!(s.finish_deployments().len(), 1);
        assert!(s.app("/web").is_none());
    }

    #[test]
    fn failed_instances_are_replaced_after_a_growing_delay() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        s.put_app(
            app(r#"{"id": "w", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2, "backoffSeconds": 10}"#),
            "v1",
            "d1",
            false,
        )
        .unwrap();
        round(&mut s, now);
        let victim = s.instances().next().unwrap().task_id.clone();
        s.update(&TaskStatus::new(victim.clone(), TaskState::Failed), now);
        assert_eq!(count(&s, "/w"), 1);
        assert!(s.launches_wanted(now).is_empty(), "delayed");
        assert_eq!(round(&mut s, now + std::time::Duration::from_secs(10)), 1);
        assert_eq!(count(&s, "/w"), 2);
        // A kill ordered by the scheduler does not grow the delay.
        let other = s.instances().next().unwrap().task_id.clone();
        let before = s.app("/w").unwrap().delay.failures;
        s.instances.get_mut(&other).unwrap().killing = true;
        s.update(&TaskStatus::new(other, TaskState::Killed), now);
        assert_eq!(s.app("/w").unwrap().delay.failures, before);
    }

    #[test]
    fn a_config_change_restarts_within_the_bounds_and_force_cancels() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        let v1 = app(r#"{"id": "w", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 4,
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}}"#);
        s.put_app(v1.clone(), "v1", "d1", false).unwrap();
        round(&mut s, now);
        s.finish_deployments();
        let mut v2 = v1.clone();
        v2.cmd = Some("y".into());
        let d = s.put_app(v2, "v2", "d2", false).unwrap().unwrap();
        assert_eq!(d.steps, vec![Step::RestartApplication { app: "/w".into() }]);
        for _ in 0..10 {
            let running = s
                .instances()
                .filter(|i| i.state == TaskState::Running && !i.killing)
                .count();
            assert!(running >= 2, "below minimum health: {running}");
            assert!(count(&s, "/w") <= 4, "over capacity");
            round(&mut s, now);
        }
        assert!(s.instances().all(|i| i.version == "v2"));
        assert_eq!(s.finish_deployments().len(), 1);

        // A stuck deployment (no offers) is cancelled by a forced change.
        let mut v3 = s.app("/w").unwrap().def.clone();
        v3.cmd = Some("z".into());
        s.put_app(v3.clone(), "v3", "d3", false).unwrap();
        v3.cmd = Some("zz".into());
        assert!(s.put_app(v3.clone(), "v4", "d4", false).is_err());
        s.put_app(v3, "v4", "d4", true).unwrap();
        assert_eq!(s.deployments().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["d4"]);
    }
}
