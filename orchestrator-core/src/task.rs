//! Task, offer, agent and framework vocabulary with the Mesos v1 names and
//! JSON field spellings, so an existing framework's messages parse as they are.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{AgentId, Error, ExecutorId, FrameworkId, Labels, OfferId, Resources, Result, TaskId};

mod attributes;

pub use attributes::{Attribute, AttributeValue, Attributes};

/// The state of a task, with the Mesos names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum TaskState {
    /// Accepted by the master, not yet running on the agent.
    #[serde(rename = "TASK_STAGING")]
    Staging,
    /// The agent is starting it.
    #[serde(rename = "TASK_STARTING")]
    Starting,
    /// Running.
    #[serde(rename = "TASK_RUNNING")]
    Running,
    /// Asked to stop; within its kill grace period.
    #[serde(rename = "TASK_KILLING")]
    Killing,
    /// Exited with status 0.
    #[serde(rename = "TASK_FINISHED")]
    Finished,
    /// Exited with a non-zero status or hit a limit.
    #[serde(rename = "TASK_FAILED")]
    Failed,
    /// Stopped because it was asked to.
    #[serde(rename = "TASK_KILLED")]
    Killed,
    /// Could not be launched (invalid task).
    #[serde(rename = "TASK_ERROR")]
    Error,
    /// Lost, for frameworks that are not partition-aware.
    #[serde(rename = "TASK_LOST")]
    Lost,
    /// Never reached the agent.
    #[serde(rename = "TASK_DROPPED")]
    Dropped,
    /// Its agent stopped answering; it may come back.
    #[serde(rename = "TASK_UNREACHABLE")]
    Unreachable,
    /// Its agent is gone for good.
    #[serde(rename = "TASK_GONE")]
    Gone,
    /// The master knows nothing of it (a reconciliation answer).
    #[serde(rename = "TASK_UNKNOWN")]
    Unknown,
}

impl TaskState {
    /// Whether the task can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
        )
    }

    fn rank(self) -> u8 {
        match self {
            TaskState::Staging => 0,
            TaskState::Starting => 1,
            TaskState::Running => 2,
            TaskState::Killing => 3,
            _ => 4,
        }
    }

    /// Whether a task in this state may move to `next`: terminal states
    /// never move; otherwise a task moves forward through staging, starting,
    /// running and killing, may repeat a state (health updates repeat
    /// `RUNNING`), may become unreachable, and may return from unreachable.
    pub fn can_transition_to(self, next: TaskState) -> bool {
        if self.is_terminal() || next == TaskState::Staging && self != TaskState::Staging {
            return false;
        }
        match (self, next) {
            (_, TaskState::Unreachable | TaskState::Unknown) => true,
            (TaskState::Unreachable | TaskState::Unknown, _) => true,
            _ => next == self || next.rank() > self.rank(),
        }
    }

    /// `next`, when [`can_transition_to`](Self::can_transition_to) allows it.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] naming both states.
    pub fn transition(self, what: &TaskId, next: TaskState) -> Result<TaskState> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(Error::InvalidTransition {
                what: format!("task {what}"),
                from: self.to_string(),
                to: next.to_string(),
            })
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde names are the canonical text.
        let text = serde_json::to_value(self).ok();
        f.write_str(text.as_ref().and_then(|v| v.as_str()).unwrap_or("TASK_UNKNOWN"))
    }
}

/// Who sent a status update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskSource {
    /// The master (agent lost, invalid task, reconciliation).
    SourceMaster,
    /// The agent (launch failure, containerizer events).
    SourceAgent,
    /// The executor running the task.
    SourceExecutor,
}

/// Why a task reached its state (the Mesos reasons this project emits and
/// the common ones it may receive; anything else reads as `Other`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TaskReason {
    /// The agent was removed from the cluster.
    ReasonAgentRemoved,
    /// The agent restarted and the task did not survive.
    ReasonAgentRestarted,
    /// The agent stopped answering health checks.
    ReasonAgentUnreachable,
    /// The agent does not know the task.
    ReasonAgentUnknown,
    /// The command exited with a non-zero status.
    ReasonCommandExecutorFailed,
    /// The container hit its memory limit.
    ReasonContainerLimitationMemory,
    /// The container hit its disk limit.
    ReasonContainerLimitationDisk,
    /// The container could not be launched.
    ReasonContainerLaunchFailed,
    /// The containerizer was asked to stop it.
    ReasonContainerPreempted,
    /// The executor ended.
    ReasonExecutorTerminated,
    /// The framework was removed.
    ReasonFrameworkRemoved,
    /// The task failed its health check.
    ReasonTaskHealthCheckStatusUpdated,
    /// The task failed a check.
    ReasonTaskUnhealthy,
    /// The task definition was invalid.
    ReasonTaskInvalid,
    /// The task is not known (reconciliation).
    ReasonReconciliation,
    /// The task was killed without the executor's involvement.
    ReasonTaskKilledDuringLaunch,
    /// The agent's resources changed under the task.
    ReasonResourcesUnknown,
    /// Any reason this project does not name.
    #[serde(other)]
    Other,
}

/// A status update (Mesos `TaskStatus`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub task_id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TaskSource>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<TaskReason>,
    /// The agent running the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// The executor running the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    /// Seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// Identifies the update for acknowledgement (base64 on the wire, as
    /// Mesos sends bytes); absent on updates that need no acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The latest health check result, when the task has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl TaskStatus {
    /// A status with only the task and state set.
    pub fn new(task_id: TaskId, state: TaskState) -> Self {
        Self {
            task_id,
            state,
            message: None,
            source: None,
            reason: None,
            agent_id: None,
            executor_id: None,
            timestamp: None,
            uuid: None,
            healthy: None,
            labels: Labels::default(),
        }
    }
}

/// An environment variable of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Name.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// A command's environment (Mesos `Environment`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// The variables.
    #[serde(default)]
    pub variables: Vec<Variable>,
}

/// A file the agent fetches into the sandbox before launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandUri {
    /// Where to fetch it from.
    pub value: String,
    /// Mark it executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<bool>,
    /// Extract archives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<bool>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What to run (Mesos `CommandInfo`). With `shell` (the default) `value` is
/// run by `/bin/sh -c`; without it `value` is the program and `arguments`
/// its argv (the first being argv\[0\]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The shell command or the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Run `value` through the shell.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub shell: bool,
    /// argv, when not a shell command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// The user to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Files to fetch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<CommandUri>,
}

impl CommandInfo {
    /// A shell command.
    pub fn shell(command: impl Into<String>) -> Self {
        Self {
            value: Some(command.into()),
            shell: true,
            arguments: Vec::new(),
            environment: None,
            user: None,
            uris: Vec::new(),
        }
    }
}

/// The containerizer a task asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerType {
    /// The process containerizer (Mesos: the "mesos" containerizer).
    Mesos,
    /// The Docker containerizer.
    Docker,
}

/// Docker network modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DockerNetwork {
    /// Share the host's network namespace.
    Host,
    /// The default bridge with port mappings.
    Bridge,
    /// No networking.
    None,
    /// A user-defined network named in `network_infos`.
    User,
}

/// A host port mapped into a container.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DockerPortMapping {
    /// Port on the host (from the task's `ports` resource).
    pub host_port: u32,
    /// Port in the container.
    pub container_port: u32,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A `--key=value` passed to Docker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// Docker specifics of a container (Mesos `ContainerInfo.DockerInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerInfo {
    /// Image reference.
    pub image: String,
    /// Network mode (Mesos default: host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DockerNetwork>,
    /// Port mappings for bridge and user networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<DockerPortMapping>,
    /// Run privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Extra docker parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Pull even when the image is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull_image: Option<bool>,
}

/// Read-write or read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VolumeMode {
    /// Read-write.
    Rw,
    /// Read-only.
    Ro,
}

/// A host path mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Path inside the container.
    pub container_path: String,
    /// Path on the host (relative paths are inside the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Mode.
    pub mode: VolumeMode,
}

/// A network to join (the name of a Docker user network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// How a task is containerised (Mesos `ContainerInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Which containerizer.
    #[serde(rename = "type")]
    pub kind: ContainerType,
    /// Docker settings for `DOCKER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerInfo>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Host name inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Networks to join.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
}

/// A duration on the wire (Mesos `DurationInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationInfo {
    /// Nanoseconds.
    pub nanoseconds: i64,
}

/// How to kill a task (Mesos `KillPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillPolicy {
    /// Time between SIGTERM and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

/// A task to launch (Mesos `TaskInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// A name for people.
    pub name: String,
    /// The task id, unique within the framework.
    pub task_id: TaskId,
    /// The agent to run on (the offer's agent).
    pub agent_id: AgentId,
    /// What the task may use.
    #[serde(default)]
    pub resources: Resources,
    /// What to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// How to containerise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// Kill grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// One offer of an agent's resources to a framework (Mesos `Offer`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The offer, usable once.
    pub id: OfferId,
    /// Who it is for.
    pub framework_id: FrameworkId,
    /// Whose resources.
    pub agent_id: AgentId,
    /// The agent's host name.
    pub hostname: String,
    /// What is offered.
    pub resources: Resources,
    /// The agent's attributes.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// Executors of this framework already on the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_ids: Vec<ExecutorId>,
}

/// What an agent says about itself when it registers (Mesos `AgentInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Host name.
    pub hostname: String,
    /// HTTP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Total resources.
    #[serde(default)]
    pub resources: Resources,
    /// Attributes for placement constraints.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// Assigned by the master at first registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<AgentId>,
}

/// A framework capability (`MULTI_ROLE`, `PARTITION_AWARE`, …).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capability {
    /// The capability's Mesos name.
    #[serde(rename = "type")]
    pub kind: String,
}

/// What a framework says about itself when it subscribes (Mesos `FrameworkInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    /// The user tasks run as by default.
    pub user: String,
    /// A name for people.
    pub name: String,
    /// Set when re-subscribing after a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FrameworkId>,
    /// Seconds the master keeps the framework's tasks after it disconnects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_timeout: Option<f64>,
    /// Whether agents checkpoint its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// The single role of a framework without `MULTI_ROLE` (deprecated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The roles of a `MULTI_ROLE` framework.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Host the scheduler runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Authenticated principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The framework's web UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    /// Capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl FrameworkInfo {
    /// A framework for `user` named `name`, in role `*`.
    pub fn new(user: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            name: name.into(),
            id: None,
            failover_timeout: None,
            checkpoint: None,
            role: None,
            roles: Vec::new(),
            hostname: None,
            principal: None,
            webui_url: None,
            capabilities: Vec::new(),
            labels: Labels::default(),
        }
    }

    /// The roles the framework acts in: `roles` when it is multi-role,
    /// else its single `role`, else `*`.
    pub fn effective_roles(&self) -> Vec<String> {
        if self.has_capability("MULTI_ROLE") && !self.roles.is_empty() {
            return self.roles.clone();
        }
        vec![self.role.clone().unwrap_or_else(|| crate::ANY_ROLE.to_string())]
    }

    /// Whether the framework declared `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c.kind == capability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> TaskId {
        TaskId::new("t").unwrap()
    }

    #[test]
    fn task_states_use_mesos_names() {
        assert_eq!(
            serde_json::to_string(&TaskState::Unreachable).unwrap(),
            r#""TASK_UNREACHABLE""#
        );
        assert_eq!(TaskState::Killing.to_string(), "TASK_KILLING");
        let s: TaskState = serde_json::from_str(r#""TASK_GONE""#).unwrap();
        assert!(s.is_terminal());
        assert!(serde_json::from_str::<TaskState>(r#""TASK_BOGUS""#).is_err());
    }

    #[test]
    fn lifecycle_guards_name_the_states() {
        let s = TaskState::Staging;
        let s = s.transition(&id(), TaskState::Running).unwrap();
        let s = s.transition(&id(), TaskState::Running).unwrap();
        let s = s.transition(&id(), TaskState::Unreachable).unwrap();
        let s = s.transition(&id(), TaskState::Running).unwrap();
        let s = s.transition(&id(), TaskState::Finished).unwrap();
        let err = s.transition(&id(), TaskState::Running).unwrap_err().to_string();
        assert_eq!(err, "invalid transition of task t from TASK_FINISHED to TASK_RUNNING");
        assert!(!TaskState::Running.can_transition_to(TaskState::Starting));
        assert!(!TaskState::Running.can_transition_to(TaskState::Staging));
    }

    #[test]
    fn status_reads_a_mesos_update() {
        let json = r#"{"task_id":{"value":"t1"},"state":"TASK_FAILED","source":"SOURCE_AGENT",
            "reason":"REASON_CONTAINER_LIMITATION_MEMORY","message":"oom","agent_id":{"value":"a1"},
            "timestamp":1700000000.5,"uuid":"AAECAwQFBgcICQoLDA0ODw==","healthy":false,"future_field":1}"#;
        let s: TaskStatus = serde_json::from_str(json).unwrap();
        assert_eq!(s.state, TaskState::Failed);
        assert_eq!(s.reason, Some(TaskReason::ReasonContainerLimitationMemory));
        assert_eq!(s.source, Some(TaskSource::SourceAgent));
        let unknown: TaskReason = serde_json::from_str(r#""REASON_SOMETHING_NEW""#).unwrap();
        assert_eq!(unknown, TaskReason::Other);
    }

    #[test]
    fn task_info_reads_a_docker_launch() {
        let json = r#"{"name":"web","task_id":{"value":"web.1"},"agent_id":{"value":"a1"},
            "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],
            "command":{"shell":false,"value":"/bin/httpd","arguments":["httpd","-f"]},
            "container":{"type":"DOCKER","docker":{"image":"busybox","network":"BRIDGE",
              "port_mappings":[{"host_port":31000,"container_port":80,"protocol":"tcp"}]},
              "volumes":[{"container_path":"/data","host_path":"/srv","mode":"RO"}]},
            "kill_policy":{"grace_period":{"nanoseconds":3000000000}},
            "labels":{"labels":[{"key":"app","value":"web"}]}}"#;
        let t: TaskInfo = serde_json::from_str(json).unwrap();
        assert_eq!(t.resources.cpus(), 0.5);
        let docker = t.container.as_ref().and_then(|c| c.docker.as_ref()).unwrap();
        assert_eq!(docker.network, Some(DockerNetwork::Bridge));
        assert_eq!(docker.port_mappings[0].container_port, 80);
        assert!(!t.command.as_ref().unwrap().shell);
        assert_eq!(t.labels.get("app"), Some("web"));
        let again: TaskInfo = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn framework_roles_follow_mesos() {
        let mut f = FrameworkInfo::new("root", "m");
        assert_eq!(f.effective_roles(), vec!["*"]);
        f.role = Some("web".into());
        assert_eq!(f.effective_roles(), vec!["web"]);
        f.roles = vec!["a".into(), "b".into()];
        assert_eq!(f.effective_roles(), vec!["web"], "roles need MULTI_ROLE");
        f.capabilities.push(Capability {
            kind: "MULTI_ROLE".into(),
        });
        assert_eq!(f.effective_roles(), vec!["a", "b"]);
    }
}
