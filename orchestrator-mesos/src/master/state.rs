//! The master's state machine, without I/O: calls and agent messages go
//! in with the current time, [`Effect`]s come out for the HTTP layer to
//! deliver. Every Mesos rule about offers, tasks and updates lives here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use orchestrator_core::{
    AgentId, AgentInfo, Allocator, FrameworkId, FrameworkInfo, Offer, OfferId, Resources, TaskId, TaskInfo, TaskReason,
    TaskSource, TaskState, TaskStatus,
};

use super::registry::Recovered;
use crate::api::agent::ReregisteredTask;
use crate::api::scheduler::{Acknowledge, Event, Failure, Kill, ReconcileTask, SchedulerCall, Subscribed};
use crate::{DrfAllocator, Error, Result};

/// Settings of a [`Master`].
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Prefix of every id this master hands out.
    pub master_id: String,
    /// How often frameworks get a `HEARTBEAT` (Mesos: 15 s).
    pub heartbeat_interval: Duration,
    /// An agent not heard from for this long, `max_agent_ping_timeouts`
    /// times over, is unreachable (Mesos: 15 s × 5).
    pub agent_ping_timeout: Duration,
    /// See `agent_ping_timeout`.
    pub max_agent_ping_timeouts: u32,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            master_id: "master".into(),
            heartbeat_interval: Duration::from_secs(15),
            agent_ping_timeout: Duration::from_secs(15),
            max_agent_ping_timeouts: 5,
        }
    }
}

/// Something the master wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send `event` on the framework's subscription stream.
    ToFramework {
        /// The framework.
        framework_id: FrameworkId,
        /// The event.
        event: Box<Event>,
    },
    /// Ask an agent to run a task.
    Launch {
        /// The agent.
        agent_id: AgentId,
        /// The framework.
        framework: Box<FrameworkInfo>,
        /// The task.
        task: Box<TaskInfo>,
    },
    /// Ask an agent to kill a task.
    Kill {
        /// The agent.
        agent_id: AgentId,
        /// The framework.
        framework_id: FrameworkId,
        /// The task.
        task_id: TaskId,
        /// Grace period overriding the task's.
        grace: Option<Duration>,
    },
    /// Tell an agent its update was acknowledged, so it stops retrying.
    Acknowledged {
        /// The agent.
        agent_id: AgentId,
        /// The framework.
        framework_id: FrameworkId,
        /// The task.
        task_id: TaskId,
        /// The update.
        uuid: String,
    },
    /// Tell an agent that a framework is gone: it kills the framework's
    /// tasks and drops their status updates.
    ShutdownFramework {
        /// The agent.
        agent_id: AgentId,
        /// The framework torn down.
        framework_id: FrameworkId,
    },
    /// Close the framework's subscription stream.
    Disconnect {
        /// The framework.
        framework_id: FrameworkId,
    },
}

/// A task the master knows.
#[derive(Clone, Debug)]
pub struct TaskEntry {
    /// What was launched.
    pub info: TaskInfo,
    /// The latest state.
    pub state: TaskState,
    /// The latest status.
    pub status: Option<TaskStatus>,
    /// Whether the framework acknowledged `status` (by its uuid): a retry
    /// of it that crossed the acknowledgement is not forwarded again.
    pub acknowledged: bool,
}

impl TaskEntry {
    /// A task the master has no status of yet.
    pub fn new(info: TaskInfo, state: TaskState) -> TaskEntry {
        TaskEntry {
            info,
            state,
            status: None,
            acknowledged: false,
        }
    }

    /// Whether `uuid` is the latest status's and the framework acknowledged it.
    fn acknowledged(&self, uuid: &str) -> bool {
        self.acknowledged
            && self
                .status
                .as_ref()
                .and_then(|s| s.uuid.as_deref())
                .is_some_and(|u| u == uuid)
    }
}

/// A registered framework.
#[derive(Clone, Debug)]
pub struct FrameworkEntry {
    /// What it said about itself.
    pub info: FrameworkInfo,
    /// Whether its stream is open.
    pub connected: bool,
    /// When its stream closed (for the failover timeout).
    pub disconnected_at: Option<Instant>,
    /// Tasks not yet terminal.
    pub tasks: BTreeMap<TaskId, TaskEntry>,
    /// Terminal tasks, oldest first (the newest 1,000).
    pub completed: VecDeque<TaskEntry>,
}

impl FrameworkEntry {
    /// Ends a task with the master's `status` (it moves to the completed
    /// ones, which are bounded); returns its resources and the update for
    /// the framework, or `None` when the framework has no such task.
    fn end_task(&mut self, framework_id: &FrameworkId, status: TaskStatus) -> Option<(Resources, Effect)> {
        let mut done = self.tasks.remove(&status.task_id)?;
        let resources = done.info.resources.clone();
        done.state = status.state;
        done.status = Some(status.clone());
        done.acknowledged = false;
        self.complete(done);
        let event = Box::new(Event::update(status));
        Some((
            resources,
            Effect::ToFramework {
                framework_id: framework_id.clone(),
                event,
            },
        ))
    }

    /// Keeps an ended task among the completed, forgetting the oldest
    /// beyond `COMPLETED_KEPT`.
    fn complete(&mut self, done: TaskEntry) {
        if self.completed.len() >= COMPLETED_KEPT {
            self.completed.pop_front();
        }
        self.completed.push_back(done);
    }

    /// The task, live or among the recently completed (newest first).
    fn task_mut(&mut self, task_id: &TaskId) -> Option<&mut TaskEntry> {
        match self.tasks.get_mut(task_id) {
            Some(t) => Some(t),
            None => self.completed.iter_mut().rev().find(|t| t.info.task_id == *task_id),
        }
    }
}

/// Whether an agent is reachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// Heard from recently.
    Active,
    /// Missed its pings; its tasks were reported unreachable or lost.
    Unreachable,
}

/// A registered agent.
#[derive(Clone, Debug)]
pub struct AgentEntry {
    /// What it said about itself, with its id.
    pub info: AgentInfo,
    /// When it was last heard from.
    pub last_seen: Instant,
    /// Reachability.
    pub state: AgentState,
}

/// How many terminal tasks a framework keeps for `/master/state`.
pub(super) const COMPLETED_KEPT: usize = 1000;

/// The master's state: agents, frameworks, offers and tasks, around an
/// [`Allocator`].
pub struct Master<A: Allocator = DrfAllocator> {
    pub(super) config: MasterConfig,
    pub(super) allocator: A,
    pub(super) agents: BTreeMap<AgentId, AgentEntry>,
    pub(super) frameworks: BTreeMap<FrameworkId, FrameworkEntry>,
    pub(super) offers: HashMap<OfferId, Offer>,
    pub(super) next_id: u64,
    pub(super) started: Instant,
    /// Agents the registry lists that have not re-registered with this
    /// master yet, with the time they have until they count as gone.
    pub(super) recovering: BTreeMap<AgentId, (AgentInfo, Instant)>,
    /// Recovered agents that did not come back in time, for the registry
    /// to forget (drained by [`take_expired_agents`](Self::take_expired_agents)).
    pub(super) expired: Vec<AgentId>,
}

impl<A: Allocator> std::fmt::Debug for Master<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("config", &self.config)
            .field("agents", &self.agents.len())
            .field("frameworks", &self.frameworks.len())
            .field("offers", &self.offers.len())
            .finish_non_exhaustive()
    }
}

pub(super) fn partition_aware(info: &FrameworkInfo) -> bool {
    info.has_capability("PARTITION_AWARE")
}

pub(super) fn without_roles(resources: &Resources) -> Resources {
    let mut r = resources.clone();
    r.set_allocation_role(None);
    r
}

pub(super) fn master_update(
    task_id: TaskId,
    agent_id: Option<AgentId>,
    state: TaskState,
    reason: TaskReason,
    message: String,
) -> TaskStatus {
    let mut s = TaskStatus::new(task_id, state);
    s.agent_id = agent_id;
    s.source = Some(TaskSource::SourceMaster);
    s.reason = Some(reason);
    s.message = Some(message);
    s
}

impl<A: Allocator> Master<A> {
    /// A master around `allocator`.
    pub fn new(config: MasterConfig, allocator: A) -> Self {
        Self {
            config,
            allocator,
            agents: BTreeMap::new(),
            frameworks: BTreeMap::new(),
            offers: HashMap::new(),
            next_id: 0,
            started: Instant::now(),
            recovering: BTreeMap::new(),
            expired: Vec::new(),
        }
    }

    /// Takes over what a registry kept: the roles' weights and quotas at
    /// once, and the admitted agents as *recovering*, each with until
    /// `now + reregister_timeout` to re-register with its tasks. Ids
    /// handed out from now on carry `epoch`, so they never repeat an
    /// earlier leader's.
    ///
    /// # Errors
    /// When the allocator refuses a stored weight or quota.
    pub fn recover(&mut self, recovered: Recovered, reregister_timeout: Duration, now: Instant) -> Result<()> {
        self.config.master_id = format!("{}-e{}", self.config.master_id, recovered.epoch);
        for (role, weight) in &recovered.weights {
            self.allocator.set_weight(role, *weight)?;
        }
        for (role, quota) in recovered.quotas {
            self.allocator.set_quota(&role, quota.into())?;
        }
        let deadline = now + reregister_timeout;
        for info in recovered.agents {
            if let Some(id) = info.id.clone() {
                self.recovering.insert(id, (info, deadline));
            }
        }
        Ok(())
    }

    /// Agents the registry lists that have not re-registered yet.
    pub fn recovering_agents(&self) -> &BTreeMap<AgentId, (AgentInfo, Instant)> {
        &self.recovering
    }

    /// Recovered agents that did not re-register in time, since the last call.
    pub fn take_expired_agents(&mut self) -> Vec<AgentId> {
        std::mem::take(&mut self.expired)
    }

    /// A fresh id for an agent about to be admitted (the registry writes
    /// it before [`add_agent`](Self::add_agent) acts on it).
    ///
    /// # Errors
    /// Never for ids this master makes.
    pub fn new_agent_id(&mut self) -> Result<AgentId> {
        AgentId::new(self.next("S")).map_err(Error::Core)
    }

    pub(super) fn next(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{}-{kind}{}", self.config.master_id, self.next_id)
    }

    /// The settings.
    pub fn config(&self) -> &MasterConfig {
        &self.config
    }

    /// Registered agents.
    pub fn agents(&self) -> &BTreeMap<AgentId, AgentEntry> {
        &self.agents
    }

    /// Registered frameworks.
    pub fn frameworks(&self) -> &BTreeMap<FrameworkId, FrameworkEntry> {
        &self.frameworks
    }

    /// Outstanding offers.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.offers.values()
    }

    /// The allocator, for weights and quota.
    pub fn allocator_mut(&mut self) -> &mut A {
        &mut self.allocator
    }

    /// The allocator, to inspect.
    pub fn allocator(&self) -> &A {
        &self.allocator
    }

    /// When the master was created.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Registers an agent and returns its new id.
    ///
    /// # Errors
    /// When its resources are invalid for the allocator.
    pub fn register_agent(&mut self, info: AgentInfo, now: Instant) -> Result<AgentId> {
        let id = self.new_agent_id()?;
        self.add_agent(id.clone(), info, now)?;
        Ok(id)
    }

    /// Adds a new agent under `id` (from [`new_agent_id`](Self::new_agent_id)).
    ///
    /// # Errors
    /// When its resources are invalid for the allocator.
    pub fn add_agent(&mut self, id: AgentId, mut info: AgentInfo, now: Instant) -> Result<()> {
        info.id = Some(id.clone());
        self.allocator.add_agent(id.clone(), &info, &[])?;
        self.agents.insert(
            id,
            AgentEntry {
                info,
                last_seen: now,
                state: AgentState::Active,
            },
        );
        Ok(())
    }

    /// An agent that restarted (or a master that restarted) comes back with
    /// its id and the tasks it still runs. A known agent becomes active
    /// again, and its tasks it does not list end `TASK_LOST` (the returned
    /// effects tell their frameworks); an unknown or recovering one is added with those tasks'
    /// resources in use. A framework this master does not know yet (it
    /// failed over and the framework has not re-subscribed) is recovered
    /// from the task's framework info: disconnected, with its tasks, and
    /// with its failover timeout to come back.
    ///
    /// # Errors
    /// When the agent's resources do not cover its tasks.
    pub fn reregister_agent(
        &mut self,
        agent_id: AgentId,
        mut info: AgentInfo,
        tasks: Vec<ReregisteredTask>,
        now: Instant,
    ) -> Result<Vec<Effect>> {
        info.id = Some(agent_id.clone());
        if self.agents.contains_key(&agent_id) {
            self.agent_heartbeat(&agent_id, now)?;
            return Ok(self.reconcile_known_agent(&agent_id, &tasks));
        }
        for t in &tasks {
            if self.frameworks.contains_key(&t.framework_id) {
                continue;
            }
            let Some(mut fw_info) = t.framework.clone() else {
                continue;
            };
            fw_info.id = Some(t.framework_id.clone());
            self.allocator.add_framework(t.framework_id.clone(), &fw_info, &[])?;
            self.allocator.suppress(&t.framework_id, &[]);
            self.frameworks.insert(
                t.framework_id.clone(),
                FrameworkEntry {
                    info: fw_info,
                    connected: false,
                    disconnected_at: Some(now),
                    tasks: BTreeMap::new(),
                    completed: VecDeque::new(),
                },
            );
        }
        let mut used = Vec::new();
        for t in &tasks {
            if let Some(f) = self.frameworks.get(&t.framework_id) {
                let role = f
                    .info
                    .effective_roles()
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "*".into());
                used.push(orchestrator_core::Allocation {
                    framework_id: t.framework_id.clone(),
                    agent_id: agent_id.clone(),
                    role: role.as_str().into(),
                    resources: t.task.resources.clone(),
                });
            }
        }
        self.allocator.add_agent(agent_id.clone(), &info, &used)?;
        self.recovering.remove(&agent_id);
        for t in tasks {
            if let Some(f) = self.frameworks.get_mut(&t.framework_id) {
                f.tasks.insert(t.task.task_id.clone(), TaskEntry::new(t.task, t.state));
            }
        }
        self.agents.insert(
            agent_id,
            AgentEntry {
                info,
                last_seen: now,
                state: AgentState::Active,
            },
        );
        Ok(Vec::new())
    }

    /// A known agent came back (it restarted): tasks this master placed on
    /// it that it does not list never ran there or did not survive — their
    /// launch was lost with the agent's old command stream, or the agent
    /// crashed before checkpointing them. They end `TASK_LOST` (reason
    /// agent restarted), their resources return, and their frameworks are
    /// told, as Mesos's master reconciles a re-registering agent. Returns
    /// the effects: one `TASK_LOST` update per task.
    fn reconcile_known_agent(&mut self, agent_id: &AgentId, reported: &[ReregisteredTask]) -> Vec<Effect> {
        let listed: std::collections::HashSet<(&FrameworkId, &TaskId)> =
            reported.iter().map(|t| (&t.framework_id, &t.task.task_id)).collect();
        let mut effects = Vec::new();
        let mut freed = Vec::new();
        for (fw_id, f) in &mut self.frameworks {
            let gone: Vec<TaskId> = f
                .tasks
                .values()
                .filter(|t| &t.info.agent_id == agent_id && !listed.contains(&(fw_id, &t.info.task_id)))
                .map(|t| t.info.task_id.clone())
                .collect();
            for id in gone {
                let s = master_update(
                    id,
                    Some(agent_id.clone()),
                    TaskState::Lost,
                    TaskReason::ReasonAgentRestarted,
                    "The agent restarted without this task".into(),
                );
                if let Some((resources, effect)) = f.end_task(fw_id, s) {
                    freed.push((fw_id.clone(), resources));
                    effects.push(effect);
                }
            }
        }
        for (fw_id, resources) in freed {
            self.allocator
                .recover_resources(&fw_id, agent_id, &resources, None, Instant::now());
        }
        effects
    }

    /// Notes that an agent is alive; an unreachable agent becomes active again.
    ///
    /// # Errors
    /// For an unknown agent (it must register).
    pub fn agent_heartbeat(&mut self, agent_id: &AgentId, now: Instant) -> Result<()> {
        let agent = self
            .agents
            .get_mut(agent_id)
            .ok_or_else(|| Error::bad_request(format!("Unknown agent {agent_id}: register first")))?;
        agent.last_seen = now;
        if agent.state == AgentState::Unreachable {
            agent.state = AgentState::Active;
            self.allocator.activate_agent(agent_id);
        }
        Ok(())
    }

    /// An agent that left for good (it was drained and unregistered, as a
    /// Mesos agent sends `UnregisterSlaveMessage` when it shuts down): its
    /// offers are rescinded, tasks it still had end as `TASK_GONE`
    /// (`TASK_LOST` for frameworks that are not partition-aware), and it is
    /// forgotten. Returns whether the agent was known, and the effects.
    pub fn remove_agent(&mut self, agent_id: &AgentId) -> (bool, Vec<Effect>) {
        self.recovering.remove(agent_id);
        if self.agents.remove(agent_id).is_none() {
            return (false, Vec::new());
        }
        let mut effects = Vec::new();
        let offers: Vec<OfferId> = self
            .offers
            .values()
            .filter(|o| &o.agent_id == agent_id)
            .map(|o| o.id.clone())
            .collect();
        for id in offers {
            if let Some(o) = self.offers.remove(&id) {
                effects.push(Effect::ToFramework {
                    framework_id: o.framework_id,
                    event: Box::new(Event::rescind(id)),
                });
            }
        }
        for (fw_id, f) in &mut self.frameworks {
            let state = if partition_aware(&f.info) {
                TaskState::Gone
            } else {
                TaskState::Lost
            };
            let ids: Vec<TaskId> = f
                .tasks
                .values()
                .filter(|t| &t.info.agent_id == agent_id)
                .map(|t| t.info.task_id.clone())
                .collect();
            for id in ids {
                let s = master_update(
                    id,
                    Some(agent_id.clone()),
                    state,
                    TaskReason::ReasonAgentRemoved,
                    "The agent was shut down and unregistered".into(),
                );
                effects.extend(f.end_task(fw_id, s).map(|(_, effect)| effect));
            }
        }
        // The allocator forgets the agent with whatever it had allotted.
        self.allocator.remove_agent(agent_id);
        (true, effects)
    }

    pub(super) fn framework_mut(&mut self, id: &FrameworkId) -> Result<&mut FrameworkEntry> {
        self.frameworks
            .get_mut(id)
            .ok_or_else(|| Error::bad_request(format!("Framework {id} is not subscribed")))
    }

    /// Runs a validated scheduler call from framework `framework_id`
    /// (`None` only for a first `SUBSCRIBE`).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for calls from unknown frameworks and invalid
    /// requests; nothing changes then.
    pub fn call(
        &mut self,
        framework_id: Option<FrameworkId>,
        call: SchedulerCall,
        now: Instant,
    ) -> Result<Vec<Effect>> {
        if let SchedulerCall::Subscribe(s) = call {
            return self
                .subscribe(s.framework_info, &s.suppressed_roles, now)
                .map(|(_, effects)| effects);
        }
        let fw = framework_id.ok_or_else(|| Error::bad_request("Expecting 'framework_id' to be present"))?;
        self.framework_mut(&fw)?;
        Ok(match call {
            SchedulerCall::Subscribe(_) => Vec::new(),
            SchedulerCall::Teardown => self.teardown(&fw, now),
            SchedulerCall::Accept {
                offer_ids,
                operations,
                refuse,
            } => self.accept(&fw, &offer_ids, operations, refuse, now),
            SchedulerCall::Decline { offer_ids, refuse } => {
                self.decline(&fw, &offer_ids, refuse, now);
                Vec::new()
            }
            SchedulerCall::Revive(roles) => {
                self.allocator.revive(&fw, &roles);
                Vec::new()
            }
            SchedulerCall::Suppress(roles) => {
                self.allocator.suppress(&fw, &roles);
                Vec::new()
            }
            SchedulerCall::Kill(kill) => self.kill(&fw, kill),
            SchedulerCall::Acknowledge(ack) => self.acknowledge(&fw, ack)?,
            SchedulerCall::Reconcile(tasks) => self.reconcile(&fw, &tasks),
            SchedulerCall::Shutdown(_) | SchedulerCall::Message(_) => Vec::new(),
        })
    }

    /// `SUBSCRIBE`: a new framework, or one failing over (its id known):
    /// then its tasks are kept and its old offers rescinded.
    ///
    /// # Errors
    /// When a role name is invalid.
    pub fn subscribe(
        &mut self,
        mut info: FrameworkInfo,
        suppressed_roles: &[String],
        now: Instant,
    ) -> Result<(FrameworkId, Vec<Effect>)> {
        let mut effects = Vec::new();
        let id = match info.id.clone() {
            Some(id) if self.frameworks.contains_key(&id) => {
                effects.extend(self.rescind_all(&id, now));
                self.allocator.update_framework(&id, &info, suppressed_roles)?;
                let entry = self.framework_mut(&id)?;
                entry.info = info;
                entry.connected = true;
                entry.disconnected_at = None;
                id
            }
            known => {
                let id = match known {
                    Some(id) => id,
                    None => FrameworkId::new(self.next("")).map_err(Error::Core)?,
                };
                info.id = Some(id.clone());
                self.allocator.add_framework(id.clone(), &info, suppressed_roles)?;
                self.frameworks.insert(
                    id.clone(),
                    FrameworkEntry {
                        info,
                        connected: true,
                        disconnected_at: None,
                        tasks: BTreeMap::new(),
                        completed: VecDeque::new(),
                    },
                );
                id
            }
        };
        effects.insert(
            0,
            Effect::ToFramework {
                framework_id: id.clone(),
                event: Box::new(Event::subscribed(Subscribed {
                    framework_id: id.clone(),
                    heartbeat_interval_seconds: Some(self.config.heartbeat_interval.as_secs_f64()),
                    master_info: None,
                })),
            },
        );
        Ok((id, effects))
    }

    /// The framework's stream closed: its offers go back, offers stop, and
    /// the failover timeout starts.
    pub fn disconnect(&mut self, framework_id: &FrameworkId, now: Instant) {
        let _ = self.rescind_all(framework_id, now);
        self.allocator.suppress(framework_id, &[]);
        if let Some(f) = self.frameworks.get_mut(framework_id) {
            f.connected = false;
            f.disconnected_at = Some(now);
        }
    }

    fn rescind_all(&mut self, framework_id: &FrameworkId, now: Instant) -> Vec<Effect> {
        let ids: Vec<OfferId> = self
            .offers
            .values()
            .filter(|o| o.framework_id == *framework_id)
            .map(|o| o.id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in ids {
            if let Some(offer) = self.offers.remove(&id) {
                self.allocator
                    .recover_resources(framework_id, &offer.agent_id, &offer.resources, None, now);
                effects.push(Effect::ToFramework {
                    framework_id: framework_id.clone(),
                    event: Box::new(Event::rescind(id)),
                });
            }
        }
        effects
    }

    /// One allocation round: new offers, one `OFFERS` event per framework.
    pub fn allocate(&mut self, now: Instant) -> Vec<Effect> {
        let mut by_framework: BTreeMap<FrameworkId, Vec<Offer>> = BTreeMap::new();
        let mut merged: BTreeMap<(FrameworkId, AgentId), Resources> = BTreeMap::new();
        for a in self.allocator.allocate(now) {
            *merged.entry((a.framework_id, a.agent_id)).or_default() += a.resources;
        }
        for ((framework_id, agent_id), resources) in merged {
            let Some((hostname, attributes)) = self
                .agents
                .get(&agent_id)
                .map(|a| (a.info.hostname.clone(), a.info.attributes.clone()))
            else {
                continue;
            };
            let connected = self.frameworks.get(&framework_id).is_some_and(|f| f.connected);
            if !connected {
                self.allocator
                    .recover_resources(&framework_id, &agent_id, &resources, None, now);
                continue;
            }
            let Ok(id) = OfferId::new(self.next("O")) else { continue };
            let offer = Offer {
                id: id.clone(),
                framework_id: framework_id.clone(),
                agent_id: agent_id.clone(),
                hostname,
                resources,
                attributes,
                executor_ids: Vec::new(),
            };
            self.offers.insert(id, offer.clone());
            by_framework.entry(framework_id).or_default().push(offer);
        }
        by_framework
            .into_iter()
            .map(|(framework_id, offers)| Effect::ToFramework {
                framework_id,
                event: Box::new(Event::offers(offers)),
            })
            .collect()
    }

    pub(super) fn update(&self, framework_id: &FrameworkId, status: TaskStatus) -> Effect {
        Effect::ToFramework {
            framework_id: framework_id.clone(),
            event: Box::new(Event::update(status)),
        }
    }

    /// `DECLINE`: the offers go back with a filter. Unknown offers are
    /// ignored, as Mesos does.
    pub fn decline(&mut self, fw: &FrameworkId, offer_ids: &[OfferId], refuse: Duration, now: Instant) {
        for id in offer_ids {
            if self.offers.get(id).is_some_and(|o| o.framework_id == *fw) {
                if let Some(o) = self.offers.remove(id) {
                    self.allocator
                        .recover_resources(fw, &o.agent_id, &o.resources, Some(refuse), now);
                }
            }
        }
    }

    fn kill(&mut self, fw: &FrameworkId, kill: Kill) -> Vec<Effect> {
        let grace = kill
            .kill_policy
            .and_then(|p| p.grace_period)
            .map(|g| Duration::from_nanos(g.nanoseconds.max(0) as u64));
        let task = self.frameworks.get(fw).and_then(|f| f.tasks.get(&kill.task_id));
        match task {
            Some(t) => vec![Effect::Kill {
                agent_id: t.info.agent_id.clone(),
                framework_id: fw.clone(),
                task_id: kill.task_id,
                grace,
            }],
            None => {
                // Mesos answers a kill of an unknown task with its state.
                let partition_aware = self.frameworks.get(fw).is_some_and(|f| partition_aware(&f.info));
                let state = if partition_aware {
                    TaskState::Unknown
                } else {
                    TaskState::Lost
                };
                let s = master_update(
                    kill.task_id,
                    kill.agent_id,
                    state,
                    TaskReason::ReasonReconciliation,
                    "Attempted to kill an unknown task".into(),
                );
                vec![self.update(fw, s)]
            }
        }
    }

    fn acknowledge(&mut self, fw: &FrameworkId, ack: Acknowledge) -> Result<Vec<Effect>> {
        if !self.agents.contains_key(&ack.agent_id) {
            // As Mesos: accepted and dropped (the agent left, or has not
            // re-registered with this leader; it will send the update again).
            tracing::warn!(agent = %ack.agent_id, task = %ack.task_id, "acknowledgement for an agent that is not registered; dropped");
            return Ok(Vec::new());
        }
        if let Some(t) = self.frameworks.get_mut(fw).and_then(|f| f.task_mut(&ack.task_id)) {
            if t.status.as_ref().and_then(|s| s.uuid.as_deref()) == Some(ack.uuid.as_str()) {
                t.acknowledged = true;
            }
        }
        Ok(vec![Effect::Acknowledged {
            agent_id: ack.agent_id,
            framework_id: fw.clone(),
            task_id: ack.task_id,
            uuid: ack.uuid,
        }])
    }

    fn reconcile(&self, fw: &FrameworkId, tasks: &[ReconcileTask]) -> Vec<Effect> {
        let Some(f) = self.frameworks.get(fw) else {
            return Vec::new();
        };
        let answer = |t: &TaskEntry| {
            let mut s = t
                .status
                .clone()
                .unwrap_or_else(|| TaskStatus::new(t.info.task_id.clone(), t.state));
            s.uuid = None;
            s.source = Some(TaskSource::SourceMaster);
            s.reason = Some(TaskReason::ReasonReconciliation);
            s.agent_id = Some(t.info.agent_id.clone());
            s
        };
        if tasks.is_empty() {
            return f.tasks.values().map(|t| self.update(fw, answer(t))).collect();
        }
        tasks
            .iter()
            // As Mesos: a task this master does not know on an agent that
            // has yet to re-register after a failover gets no answer now
            // (the agent brings it back, or its timeout settles it).
            .filter(|asked| {
                f.tasks.contains_key(&asked.task_id)
                    || match &asked.agent_id {
                        Some(agent) => !self.recovering.contains_key(agent),
                        None => self.recovering.is_empty(),
                    }
            })
            .map(|asked| {
                let status = match f.tasks.get(&asked.task_id) {
                    Some(t) => answer(t),
                    None => {
                        let state = if partition_aware(&f.info) {
                            TaskState::Unknown
                        } else {
                            TaskState::Lost
                        };
                        master_update(
                            asked.task_id.clone(),
                            asked.agent_id.clone(),
                            state,
                            TaskReason::ReasonReconciliation,
                            "Reconciliation: task is unknown".into(),
                        )
                    }
                };
                self.update(fw, status)
            })
            .collect()
    }

    fn teardown(&mut self, fw: &FrameworkId, now: Instant) -> Vec<Effect> {
        let mut effects = self.rescind_all(fw, now);
        effects.retain(|e| !matches!(e, Effect::ToFramework { .. }));
        if self.frameworks.remove(fw).is_some() {
            // Every agent hears of it, as in Mesos: one may run tasks of the
            // framework that the master has not heard of yet, and each
            // must stop retrying the framework's status updates.
            for agent_id in self.agents.keys() {
                effects.push(Effect::ShutdownFramework {
                    agent_id: agent_id.clone(),
                    framework_id: fw.clone(),
                });
            }
        }
        self.allocator.remove_framework(fw);
        effects.push(Effect::ToFramework {
            framework_id: fw.clone(),
            event: Box::new(Event::error("Framework has been removed")),
        });
        effects.push(Effect::Disconnect {
            framework_id: fw.clone(),
        });
        effects
    }

    /// A status update from an agent: recorded, forwarded to the framework
    /// (with its uuid, to be acknowledged), and for a terminal state the
    /// task's resources go back to the allocator.
    ///
    /// # Errors
    /// For unknown agents and frameworks; an update for an unknown task or
    /// an impossible transition is forwarded as is (the agent knows best)
    /// but changes nothing here.
    pub fn status_update(
        &mut self,
        agent_id: &AgentId,
        framework_id: &FrameworkId,
        mut status: TaskStatus,
        now: Instant,
    ) -> Result<Vec<Effect>> {
        self.agent_heartbeat(agent_id, now)?;
        let f = self.framework_mut(framework_id)?;
        status.agent_id = Some(agent_id.clone());
        // A retry that crossed the framework's acknowledgement (the agent
        // sent it again before the acknowledgement reached it): the agent
        // hears the acknowledgement again, the framework nothing.
        if let Some(uuid) = &status.uuid {
            if f.task_mut(&status.task_id).is_some_and(|t| t.acknowledged(uuid)) {
                return Ok(vec![Effect::Acknowledged {
                    agent_id: agent_id.clone(),
                    framework_id: framework_id.clone(),
                    task_id: status.task_id,
                    uuid: uuid.clone(),
                }]);
            }
        }
        let mut recovered = None;
        if let Some(task) = f.tasks.get_mut(&status.task_id) {
            if task.state.can_transition_to(status.state) {
                task.state = status.state;
                task.status = Some(status.clone());
                task.acknowledged = false;
                if status.state.is_terminal() {
                    if let Some(done) = f.tasks.remove(&status.task_id) {
                        recovered = Some(done.info.resources.clone());
                        f.complete(done);
                    }
                }
            }
        }
        if let Some(resources) = recovered {
            self.allocator
                .recover_resources(framework_id, agent_id, &resources, None, now);
        }
        Ok(vec![self.update(framework_id, status)])
    }

    /// Periodic checks: agents silent for too long become unreachable
    /// (their tasks `TASK_UNREACHABLE`, or `TASK_LOST` for frameworks that
    /// are not partition-aware), and frameworks disconnected for longer than
    /// their failover timeout are removed.
    pub fn check(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let late: Vec<AgentId> = self
            .recovering
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            self.recovering.remove(&id);
            self.expired.push(id);
        }
        let limit = self.config.agent_ping_timeout * self.config.max_agent_ping_timeouts;
        let silent: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| a.state == AgentState::Active && now.saturating_duration_since(a.last_seen) > limit)
            .map(|(id, _)| id.clone())
            .collect();
        for agent_id in silent {
            if let Some(a) = self.agents.get_mut(&agent_id) {
                a.state = AgentState::Unreachable;
            }
            self.allocator.deactivate_agent(&agent_id);
            let offers: Vec<OfferId> = self
                .offers
                .values()
                .filter(|o| o.agent_id == agent_id)
                .map(|o| o.id.clone())
                .collect();
            for id in offers {
                if let Some(o) = self.offers.remove(&id) {
                    self.allocator
                        .recover_resources(&o.framework_id, &agent_id, &o.resources, None, now);
                    effects.push(Effect::ToFramework {
                        framework_id: o.framework_id,
                        event: Box::new(Event::rescind(id)),
                    });
                }
            }
            for (fw_id, f) in &mut self.frameworks {
                let aware = partition_aware(&f.info);
                for t in f.tasks.values_mut().filter(|t| t.info.agent_id == agent_id) {
                    let state = if aware { TaskState::Unreachable } else { TaskState::Lost };
                    let s = master_update(
                        t.info.task_id.clone(),
                        Some(agent_id.clone()),
                        state,
                        TaskReason::ReasonAgentUnreachable,
                        "Agent stopped answering its pings".into(),
                    );
                    t.state = state;
                    t.status = Some(s.clone());
                    t.acknowledged = false;
                    effects.push(Effect::ToFramework {
                        framework_id: fw_id.clone(),
                        event: Box::new(Event::update(s)),
                    });
                }
                effects.push(Effect::ToFramework {
                    framework_id: fw_id.clone(),
                    event: Box::new(Event::failure(Failure {
                        agent_id: Some(agent_id.clone()),
                        executor_id: None,
                        status: None,
                    })),
                });
            }
        }
        let expired: Vec<FrameworkId> = self
            .frameworks
            .iter()
            .filter(|(_, f)| {
                let timeout = Duration::from_secs_f64(f.info.failover_timeout.unwrap_or(0.0).clamp(0.0, 1e9));
                f.disconnected_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for fw in expired {
            effects.extend(self.teardown(&fw, now));
        }
        effects
    }
}
