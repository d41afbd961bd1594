//! What a containerizer is asked to run, and the [`Containerizer`] seam.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ContainerId, ContainerType, DockerNetwork, Error, Result, TaskInfo, TaskReason, TaskState, VolumeMode};

/// Label carrying the task id on containers this project starts.
pub const LABEL_TASK_ID: &str = "orchestrator.task_id";
/// Label carrying the framework id.
pub const LABEL_FRAMEWORK_ID: &str = "orchestrator.framework_id";
/// Label carrying the Marathon app id, when an app launched the task.
pub const LABEL_APP_ID: &str = "orchestrator.app_id";

/// The command a container runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `/bin/sh -c <line>`.
    Shell(String),
    /// A program and its arguments (without argv\[0\]).
    Exec {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// The image's own entrypoint/command, with optional arguments.
    ImageDefault {
        /// Arguments appended to the entrypoint.
        args: Vec<String>,
    },
}

/// The network a container joins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The host's network namespace.
    Host,
    /// The default bridge; ports reach it through mappings.
    Bridge,
    /// No network.
    None,
    /// A named user network.
    User(String),
}

/// A host port forwarded into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A host directory mounted into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// Host path (relative paths are inside the sandbox).
    pub host_path: PathBuf,
    /// Path inside the container.
    pub container_path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Limits taken from the task's resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// CPU shares (1.0 = one core).
    pub cpus: Option<f64>,
    /// Memory in MB.
    pub mem_mb: Option<f64>,
    /// Maximum number of processes.
    pub pids: Option<u64>,
}

/// Everything a containerizer needs to start one container, independent of
/// how it does so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// What to run.
    pub command: Command,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// User to run as.
    pub user: Option<String>,
    /// Working directory (default: the sandbox).
    pub working_dir: Option<PathBuf>,
    /// Image to run in; `None` runs on the host's filesystem.
    pub image: Option<String>,
    /// Pull the image even when it is present.
    pub force_pull_image: bool,
    /// Network.
    pub network: NetworkMode,
    /// Port forwards (bridge and user networks).
    pub port_mappings: Vec<PortMapping>,
    /// Host ports allocated to the task (its `ports` resource, ascending);
    /// exported to the task as `PORT0..`, `PORTS` as Mesos does.
    pub ports: Vec<u16>,
    /// Mounts.
    pub volumes: Vec<VolumeMount>,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Labels to put on the container.
    pub labels: BTreeMap<String, String>,
    /// Which containerizer the task asked for.
    pub kind: ContainerType,
}

impl ContainerSpec {
    /// A shell command with no image, limits or labels.
    pub fn shell(line: impl Into<String>) -> Self {
        Self {
            command: Command::Shell(line.into()),
            env: BTreeMap::new(),
            user: None,
            working_dir: None,
            image: None,
            force_pull_image: false,
            network: NetworkMode::Host,
            port_mappings: Vec::new(),
            ports: Vec::new(),
            volumes: Vec::new(),
            limits: ResourceLimits::default(),
            labels: BTreeMap::new(),
            kind: ContainerType::Mesos,
        }
    }

    /// The spec of a task: command, environment, image and networking from
    /// its `command` and `container`, limits from its resources, and the
    /// task id (plus the task's own labels) as container labels.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a task that cannot run: no command and no
    /// image, an empty image, or a port that does not fit in 16 bits.
    pub fn from_task(task: &TaskInfo) -> Result<Self> {
        let invalid = |reason: String| Error::Invalid { what: "task", reason };
        let container = task.container.as_ref();
        let kind = container.map_or(ContainerType::Mesos, |c| c.kind);
        let docker = container.and_then(|c| c.docker.as_ref());
        let image = match (kind, docker) {
            (ContainerType::Docker, Some(d)) if !d.image.trim().is_empty() => Some(d.image.clone()),
            (ContainerType::Docker, _) => {
                return Err(invalid(format!("task {} is DOCKER but names no image", task.task_id)))
            }
            (ContainerType::Mesos, _) => None,
        };
        let cmd = task.command.as_ref();
        let command = match cmd {
            Some(c) if c.shell => match &c.value {
                Some(line) if !line.trim().is_empty() => Command::Shell(line.clone()),
                _ if image.is_some() => Command::ImageDefault {
                    args: c.arguments.clone(),
                },
                _ => return Err(invalid(format!("task {} has an empty shell command", task.task_id))),
            },
            Some(c) => match &c.value {
                Some(program) if !program.is_empty() => Command::Exec {
                    program: program.clone(),
                    args: c.arguments.iter().skip(1).cloned().collect(),
                },
                _ if image.is_some() => Command::ImageDefault {
                    args: c.arguments.clone(),
                },
                _ => return Err(invalid(format!("task {} names no program", task.task_id))),
            },
            None if image.is_some() => Command::ImageDefault { args: Vec::new() },
            None => {
                return Err(invalid(format!(
                    "task {} has neither a command nor an image",
                    task.task_id
                )))
            }
        };
        let env = cmd
            .and_then(|c| c.environment.as_ref())
            .map(|e| e.variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect())
            .unwrap_or_default();
        let network = match docker.and_then(|d| d.network) {
            Some(DockerNetwork::Bridge) => NetworkMode::Bridge,
            Some(DockerNetwork::None) => NetworkMode::None,
            Some(DockerNetwork::User) => {
                let name = container
                    .and_then(|c| c.network_infos.iter().find_map(|n| n.name.clone()))
                    .ok_or_else(|| invalid(format!("task {} asks for a USER network without a name", task.task_id)))?;
                NetworkMode::User(name)
            }
            Some(DockerNetwork::Host) | None => NetworkMode::Host,
        };
        let port = |p: u32, what: &str| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(format!("task {}: {what} port {p} is not in 1-65535", task.task_id)))
        };
        let offered_ports = task.resources.ports();
        let mut port_mappings = Vec::new();
        for m in docker.map(|d| d.port_mappings.as_slice()).unwrap_or_default() {
            let host_port = port(m.host_port, "host")?;
            // As Mesos requires, a host port must be one the task was given.
            if !offered_ports.contains_item(u64::from(host_port)) {
                return Err(invalid(format!(
                    "task {}: host port {host_port} is not in the task's ports resource",
                    task.task_id
                )));
            }
            port_mappings.push(PortMapping {
                host_port,
                container_port: port(m.container_port, "container")?,
                protocol: m.protocol.clone().unwrap_or_else(|| "tcp".into()),
            });
        }
        let volumes = container
            .map(|c| c.volumes.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|v| VolumeMount {
                host_path: PathBuf::from(v.host_path.clone().unwrap_or_else(|| v.container_path.clone())),
                container_path: PathBuf::from(&v.container_path),
                read_only: v.mode == VolumeMode::Ro,
            })
            .collect();
        let mut ports = Vec::new();
        for range in task.resources.ports().as_slice() {
            for p in range.begin..=range.end {
                let p = u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid(format!("task {}: port {p} is not in 1-65535", task.task_id)))?;
                // Bounded: the conversion fails past 65535.
                ports.push(p);
            }
        }
        let positive = |v: f64| (v > 0.0).then_some(v);
        let mut labels: BTreeMap<String, String> = task.labels.0.clone();
        labels.insert(LABEL_TASK_ID.into(), task.task_id.to_string());
        Ok(Self {
            command,
            env,
            user: cmd.and_then(|c| c.user.clone()),
            working_dir: None,
            image,
            force_pull_image: docker.and_then(|d| d.force_pull_image).unwrap_or(false),
            network,
            port_mappings,
            ports,
            volumes,
            limits: ResourceLimits {
                cpus: positive(task.resources.cpus()),
                mem_mb: positive(task.resources.mem()),
                pids: None,
            },
            labels,
            kind,
        })
    }
}

/// How a container ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// The exit status, when the process exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Whether it ended because it was killed on request.
    pub killed: bool,
    /// A limit or failure that explains the end.
    pub reason: Option<TaskReason>,
    /// Detail for people.
    pub message: String,
}

impl Termination {
    /// The task state this ending maps to: killed on request → `KILLED`,
    /// exit 0 → `FINISHED`, anything else → `FAILED`.
    pub fn task_state(&self) -> TaskState {
        if self.killed && self.reason.is_none() {
            TaskState::Killed
        } else if self.exit_code == Some(0) && self.reason.is_none() {
            TaskState::Finished
        } else {
            TaskState::Failed
        }
    }
}

/// Usage of one container (a subset of Mesos `ResourceStatistics`, same names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatistics {
    /// Seconds since the epoch when sampled.
    pub timestamp: f64,
    /// User CPU time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_user_time_secs: Option<f64>,
    /// System CPU time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_system_time_secs: Option<f64>,
    /// CPU limit in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_limit: Option<f64>,
    /// Resident memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_rss_bytes: Option<u64>,
    /// Memory in use including caches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit_bytes: Option<u64>,
    /// Bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes: Option<u64>,
    /// Bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes: Option<u64>,
    /// Bytes read from block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_write_bytes: Option<u64>,
    /// Processes in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

/// Runs containers: the seam between an agent and the way tasks are
/// isolated (processes with cgroups, Docker, …). An agent may chain several
/// and give each task to the first that [`supports`](Self::supports) it.
///
/// Every method is safe to call concurrently for different containers.
#[async_trait]
pub trait Containerizer: Send + Sync {
    /// A short name (`mesos`, `docker`) as in the agent's `--containerizers` flag.
    fn name(&self) -> &'static str;

    /// Whether this containerizer can run `spec`.
    fn supports(&self, spec: &ContainerSpec) -> bool;

    /// Starts a container with its sandbox directory (which exists).
    /// Returns once it runs; a spec that cannot start is an error.
    async fn launch(&self, id: &ContainerId, spec: &ContainerSpec, sandbox: &Path) -> Result<()>;

    /// Waits until the container ends. May be called more than once and
    /// after it ended; every caller sees the same [`Termination`].
    async fn wait(&self, id: &ContainerId) -> Result<Termination>;

    /// Asks the container to stop (SIGTERM or its equivalent), and forces
    /// it (SIGKILL) when it is still running after `grace`.
    async fn kill(&self, id: &ContainerId, grace: Duration) -> Result<()>;

    /// Current usage.
    async fn usage(&self, id: &ContainerId) -> Result<ResourceStatistics>;

    /// Kills (if needed) and releases everything the container holds,
    /// keeping the sandbox for inspection.
    async fn destroy(&self, id: &ContainerId) -> Result<()>;

    /// After the agent restarts: takes back the `known` containers that
    /// are still running, cleans up orphans this containerizer started that
    /// are not known, and returns the ids it recovered.
    async fn recover(&self, known: &[ContainerId]) -> Result<Vec<ContainerId>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(json: &str) -> TaskInfo {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_docker_task_becomes_a_spec() {
        let t = task(
            r#"{"name":"w","task_id":{"value":"w.1"},"agent_id":{"value":"a"},
            "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},{"name":"mem","type":"SCALAR","scalar":{"value":64}},
                         {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}],
            "command":{"value":"echo hi","environment":{"variables":[{"name":"A","value":"1"}]}},
            "container":{"type":"DOCKER","docker":{"image":"busybox","network":"BRIDGE",
              "port_mappings":[{"host_port":31000,"container_port":80}]}}}"#,
        );
        let spec = ContainerSpec::from_task(&t).unwrap();
        assert_eq!(spec.command, Command::Shell("echo hi".into()));
        assert_eq!(spec.image.as_deref(), Some("busybox"));
        assert_eq!(spec.network, NetworkMode::Bridge);
        assert_eq!(spec.port_mappings[0].protocol, "tcp");
        assert_eq!(spec.limits.mem_mb, Some(64.0));
        assert_eq!(spec.env["A"], "1");
        assert_eq!(spec.labels[LABEL_TASK_ID], "w.1");
    }

    #[test]
    fn impossible_tasks_are_rejected_with_the_reason() {
        for (json, says) in [
            (
                r#"{"name":"x","task_id":{"value":"x"},"agent_id":{"value":"a"}}"#,
                "neither a command nor an image",
            ),
            (
                r#"{"name":"x","task_id":{"value":"x"},"agent_id":{"value":"a"},"container":{"type":"DOCKER"}}"#,
                "names no image",
            ),
            (
                r#"{"name":"x","task_id":{"value":"x"},"agent_id":{"value":"a"},"container":{"type":"DOCKER",
                 "docker":{"image":"b","port_mappings":[{"host_port":70000,"container_port":80}]}}}"#,
                "not in 1-65535",
            ),
            (
                r#"{"name":"x","task_id":{"value":"x"},"agent_id":{"value":"a"},"container":{"type":"DOCKER",
                 "docker":{"image":"b","port_mappings":[{"host_port":31000,"container_port":80}]}}}"#,
                "host port 31000 is not in the task's ports resource",
            ),
        ] {
            let err = ContainerSpec::from_task(&task(json)).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn terminations_map_to_task_states() {
        let t = |exit_code, killed, reason| Termination {
            exit_code,
            signal: None,
            killed,
            reason,
            message: String::new(),
        };
        assert_eq!(t(Some(0), false, None).task_state(), TaskState::Finished);
        assert_eq!(t(Some(3), false, None).task_state(), TaskState::Failed);
        assert_eq!(t(None, true, None).task_state(), TaskState::Killed);
        let oom = t(None, true, Some(TaskReason::ReasonContainerLimitationMemory));
        assert_eq!(oom.task_state(), TaskState::Failed);
    }
}
