//! The Docker containerizer: tasks whose container names an image run as
//! Docker containers, through the Engine API (bollard, version negotiated).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StatsOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use orchestrator_core::{
    Command, ContainerId, ContainerSpec, Containerizer, Error, NetworkMode, ResourceStatistics, Result, TaskReason,
    Termination,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// Prefix of the names of containers this containerizer starts (Mesos: `mesos-`).
pub const NAME_PREFIX: &str = "orchestrator-";
/// Label carrying the container id, for recovery.
pub const LABEL_CONTAINER_ID: &str = "orchestrator.container_id";
/// How long a container's watcher waits for an engine that went away (a
/// daemon restart) before reporting the container's end as unknown.
const ENGINE_OUTAGE: Duration = Duration::from_secs(600);

/// Label naming the agent (its work directory) that owns a container, so
/// agents sharing one engine never recover or remove each other's.
pub const LABEL_SCOPE: &str = "orchestrator.scope";

struct Running {
    killed: Arc<std::sync::atomic::AtomicBool>,
    exit: watch::Receiver<Option<Termination>>,
}

/// Runs containers on a Docker engine.
pub struct DockerContainerizer {
    docker: Docker,
    scope: String,
    containers: Mutex<HashMap<ContainerId, Running>>,
}

impl std::fmt::Debug for DockerContainerizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerContainerizer").finish_non_exhaustive()
    }
}

fn docker_err(id: &ContainerId, what: &str, e: bollard::errors::Error) -> Error {
    Error::container(id, format!("{what}: {e}"), e)
}

fn name(id: &ContainerId) -> String {
    format!("{NAME_PREFIX}{id}")
}

impl DockerContainerizer {
    /// Connects to the engine at `host` (`unix:///path/docker.sock`, or a
    /// plain socket path) and negotiates the API version. `scope` names the
    /// owner of the containers (the agent's work directory): recovery only
    /// ever touches containers of the same scope.
    ///
    /// # Errors
    /// When the engine does not answer.
    pub async fn connect(host: &str, scope: &str) -> Result<Self> {
        let path = host.trim_start_matches("unix://");
        let err = |e: bollard::errors::Error| Error::Container {
            container_id: host.to_string(),
            message: format!("cannot reach the Docker engine at {host}: {e}"),
            source: Some(Box::new(e)),
        };
        let docker = Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(err)?
            .negotiate_version()
            .await
            .map_err(err)?;
        Ok(Self {
            docker,
            scope: scope.to_string(),
            containers: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the engine has `image` locally (no pull is tried).
    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerId, Running>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn ensure_image(&self, id: &ContainerId, image: &str, force_pull: bool) -> Result<()> {
        let present = match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => false,
            // Not an answer about the image: the engine itself is in trouble.
            Err(e) => return Err(docker_err(id, "the Docker engine does not answer", e)),
        };
        if present && !force_pull {
            return Ok(());
        }
        let (repo, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_string(), t.to_string()),
            None => (image.to_string(), "latest".to_string()),
        };
        let opts = CreateImageOptionsBuilder::default().from_image(&repo).tag(&tag).build();
        let mut pull = self.docker.create_image(Some(opts), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                if present {
                    // A forced pull that fails still has the local image.
                    return Ok(());
                }
                return Err(docker_err(
                    id,
                    &format!("image {image} is not present and cannot be pulled"),
                    e,
                ));
            }
        }
        Ok(())
    }

    /// Follows the container's output into the sandbox files.
    fn copy_logs(&self, id: &ContainerId, sandbox: &Path) {
        let docker = self.docker.clone();
        let (name, sandbox) = (name(id), sandbox.to_path_buf());
        tokio::spawn(async move {
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).append(true);
            let (Ok(mut out), Ok(mut err)) = (
                options.open(sandbox.join("stdout")).await,
                options.open(sandbox.join("stderr")).await,
            ) else {
                return;
            };
            let give_up = tokio::time::Instant::now() + ENGINE_OUTAGE;
            let mut since = 0;
            loop {
                let opts = LogsOptionsBuilder::default()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .since(since)
                    .build();
                let mut logs = docker.logs(&name, Some(opts));
                let mut broken = false;
                while let Some(chunk) = logs.next().await {
                    let Ok(chunk) = chunk else {
                        broken = true;
                        break;
                    };
                    let _ = match chunk {
                        bollard::container::LogOutput::StdErr { message } => err.write_all(&message).await,
                        other => out.write_all(&other.into_bytes()).await,
                    };
                }
                // The stream ends with the container, or breaks with the
                // engine: then follow again from where it broke.
                let running = docker
                    .inspect_container(&name, None)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running)
                    .unwrap_or(broken);
                if !running || tokio::time::Instant::now() >= give_up {
                    break;
                }
                since = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i32);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let _ = out.flush().await;
            let _ = err.flush().await;
        });
    }

    /// Waits for the container in the background and publishes how it ended.
    fn watch(&self, id: &ContainerId) -> Running {
        let (tx, rx) = watch::channel(None);
        let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (docker, name, killed_w) = (self.docker.clone(), name(id), killed.clone());
        tokio::spawn(async move {
            let give_up = tokio::time::Instant::now() + ENGINE_OUTAGE;
            let code = loop {
                let waited = docker.wait_container(&name, None::<WaitContainerOptions>).next().await;
                // A non-zero exit arrives as an error value carrying the code.
                match waited {
                    Some(Ok(r)) => break Some(r.status_code),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => break Some(code),
                    Some(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => {
                        break None
                    }
                    // The engine went away (a restart; with live-restore the
                    // container runs on): wait for it and wait again.
                    _ if tokio::time::Instant::now() < give_up => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    _ => break None,
                }
            };
            let killed = killed_w.load(std::sync::atomic::Ordering::SeqCst);
            let (oom, exit) = ended_state(&docker, &name, code, killed).await;
            let exit_code = exit.and_then(|c| i32::try_from(c).ok());
            let (reason, message) = if oom {
                (
                    Some(TaskReason::ReasonContainerLimitationMemory),
                    "memory limit exceeded: the container was OOM-killed".into(),
                )
            } else if killed {
                (None, "killed on request".to_string())
            } else {
                match exit_code {
                    Some(0) => (None, "exited with status 0".into()),
                    Some(c) => (
                        Some(TaskReason::ReasonCommandExecutorFailed),
                        format!("exited with status {c}"),
                    ),
                    None => (
                        Some(TaskReason::ReasonExecutorTerminated),
                        "the container ended; its status is unknown".into(),
                    ),
                }
            };
            let _ = tx.send(Some(Termination {
                exit_code,
                signal: None,
                killed: killed && !oom,
                reason,
                message,
            }));
        });
        Running { killed, exit: rx }
    }
}

/// How long a SIGKILLed container with a memory limit is looked at again
/// for the engine's OOM flag (see [`ended_state`]).
const OOM_FLAG_GRACE: Duration = Duration::from_secs(3);

/// Whether an ended container was OOM-killed, and its exit code.
///
/// The engine learns of the kernel's OOM kill and of the exit through two
/// events that race (containerd's shim reads the memory cgroup's OOM eventfd
/// and reaps the process separately; moby#15621, kubernetes#19825): under
/// load the exit can be handled first, and `State.OOMKilled` turns true only
/// a moment after the wait returned. So a container that died of SIGKILL
/// (exit 137) that nobody asked for, and that had a memory limit, is
/// inspected again for a short while before it is reported as a plain
/// failure.
async fn ended_state(docker: &Docker, name: &str, code: Option<i64>, killed: bool) -> (bool, Option<i64>) {
    let give_up = tokio::time::Instant::now() + OOM_FLAG_GRACE;
    loop {
        let inspected = docker.inspect_container(name, None).await.ok();
        let limited = inspected
            .as_ref()
            .and_then(|c| c.host_config.as_ref())
            .and_then(|h| h.memory)
            .is_some_and(|m| m > 0);
        let state = inspected.and_then(|c| c.state);
        let oom = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        let exit = state.as_ref().and_then(|s| s.exit_code).or(code);
        let sigkilled = exit == Some(128 + 9);
        if oom || killed || !limited || !sigkilled || tokio::time::Instant::now() >= give_up {
            return (oom, exit);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[async_trait]
impl Containerizer for DockerContainerizer {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn supports(&self, spec: &ContainerSpec) -> bool {
        spec.image.is_some()
    }

    async fn launch(&self, id: &ContainerId, spec: &ContainerSpec, sandbox: &Path) -> Result<()> {
        let Some(image) = spec.image.clone() else {
            return Err(Error::Container {
                container_id: id.to_string(),
                message: "the docker containerizer needs an image".into(),
                source: None,
            });
        };
        if self.lock().contains_key(id) {
            return Err(Error::Container {
                container_id: id.to_string(),
                message: "a container with this id is already running".into(),
                source: None,
            });
        }
        self.ensure_image(id, &image, spec.force_pull_image).await?;
        let (entrypoint, cmd) = match &spec.command {
            Command::Shell(line) => (
                Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
                Some(vec![line.clone()]),
            ),
            Command::Exec { program, args } => (Some(vec![program.clone()]), Some(args.clone())),
            Command::ImageDefault { args } => (None, (!args.is_empty()).then(|| args.clone())),
        };
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push("MESOS_SANDBOX=/mnt/mesos/sandbox".into());
        for (i, port) in spec.ports.iter().enumerate() {
            env.push(format!("PORT{i}={port}"));
        }
        let mut labels = spec.labels.clone();
        labels.insert(LABEL_CONTAINER_ID.into(), id.to_string());
        labels.insert(LABEL_SCOPE.into(), self.scope.clone());
        let network_mode = match &spec.network {
            NetworkMode::Host => "host".to_string(),
            NetworkMode::Bridge => "bridge".to_string(),
            NetworkMode::None => "none".to_string(),
            NetworkMode::User(name) => name.clone(),
        };
        let mut port_bindings = HashMap::new();
        let mut exposed: Vec<String> = Vec::new();
        for m in &spec.port_mappings {
            let key = format!("{}/{}", m.container_port, m.protocol);
            port_bindings.insert(
                key.clone(),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(m.host_port.to_string()),
                }]),
            );
            exposed.push(key);
        }
        let mut binds = vec![format!("{}:/mnt/mesos/sandbox", sandbox.display())];
        for v in &spec.volumes {
            let host = if v.host_path.is_absolute() {
                v.host_path.clone()
            } else {
                sandbox.join(&v.host_path)
            };
            binds.push(format!(
                "{}:{}:{}",
                host.display(),
                v.container_path.display(),
                if v.read_only { "ro" } else { "rw" }
            ));
        }
        let memory = spec.limits.mem_mb.map(|mb| (mb * 1024.0 * 1024.0) as i64);
        let host_config = HostConfig {
            network_mode: Some(network_mode),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            binds: Some(binds),
            memory,
            // No swap beyond the limit, so the limit holds as on Mesos.
            memory_swap: memory,
            cpu_shares: spec.limits.cpus.map(|c| ((c * 1024.0) as i64).max(2)),
            pids_limit: spec.limits.pids.and_then(|p| i64::try_from(p).ok()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image),
            entrypoint,
            cmd,
            env: Some(env),
            labels: Some(labels.into_iter().collect()),
            user: spec.user.clone(),
            working_dir: spec.working_dir.as_ref().map(|d| d.display().to_string()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name(id)).build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| docker_err(id, "cannot create the container", e))?;
        if let Err(e) = self.docker.start_container(&name(id), None).await {
            let rm = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = self.docker.remove_container(&name(id), Some(rm)).await;
            return Err(docker_err(id, "cannot start the container", e));
        }
        self.copy_logs(id, sandbox);
        let running = self.watch(id);
        self.lock().insert(id.clone(), running);
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<Termination> {
        let mut rx = self
            .lock()
            .get(id)
            .map(|r| r.exit.clone())
            .ok_or_else(|| Error::UnknownContainer {
                container_id: id.to_string(),
            })?;
        loop {
            if let Some(t) = rx.borrow_and_update().clone() {
                return Ok(t);
            }
            rx.changed().await.map_err(|_| Error::Container {
                container_id: id.to_string(),
                message: "the container watcher stopped".into(),
                source: None,
            })?;
        }
    }

    async fn kill(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let killed = self
            .lock()
            .get(id)
            .map(|r| r.killed.clone())
            .ok_or_else(|| Error::UnknownContainer {
                container_id: id.to_string(),
            })?;
        killed.store(true, std::sync::atomic::Ordering::SeqCst);
        // Docker sends SIGTERM, then SIGKILL after `t` whole seconds: round
        // up, so a task never gets less than its grace period (an 800 ms
        // grace rounded down was an immediate SIGKILL).
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let t = i32::try_from(secs).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::default().t(t).build();
        match self.docker.stop_container(&name(id), Some(opts)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(docker_err(id, "cannot stop the container", e)),
        }
        tokio::time::timeout(grace + Duration::from_secs(10), self.wait(id))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("container {id} to stop"),
                after: grace + Duration::from_secs(10),
            })??;
        Ok(())
    }

    async fn usage(&self, id: &ContainerId) -> Result<ResourceStatistics> {
        let opts = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
        let stats = self
            .docker
            .stats(&name(id), Some(opts))
            .next()
            .await
            .ok_or_else(|| Error::UnknownContainer {
                container_id: id.to_string(),
            })?
            .map_err(|e| docker_err(id, "cannot read stats", e))?;
        let mut s = ResourceStatistics {
            timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            ..Default::default()
        };
        if let Some(cpu) = stats.cpu_stats.and_then(|c| c.cpu_usage) {
            s.cpus_user_time_secs = cpu.usage_in_usermode.map(|n| n as f64 / 1e9);
            s.cpus_system_time_secs = cpu.usage_in_kernelmode.map(|n| n as f64 / 1e9);
        }
        if let Some(mem) = stats.memory_stats {
            s.mem_total_bytes = mem.usage;
            s.mem_limit_bytes = mem.limit;
        }
        if let Some(nets) = stats.networks {
            s.net_rx_bytes = Some(nets.values().filter_map(|n| n.rx_bytes).sum());
            s.net_tx_bytes = Some(nets.values().filter_map(|n| n.tx_bytes).sum());
        }
        if let Some(entries) = stats.blkio_stats.and_then(|b| b.io_service_bytes_recursive) {
            let sum = |op: &str| {
                entries
                    .iter()
                    .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                    .filter_map(|e| e.value)
                    .sum::<u64>()
            };
            s.blkio_read_bytes = Some(sum("read"));
            s.blkio_write_bytes = Some(sum("write"));
        }
        s.processes = stats.pids_stats.and_then(|p| p.current);
        Ok(s)
    }

    async fn destroy(&self, id: &ContainerId) -> Result<()> {
        let rm = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(&name(id), Some(rm)).await {
            // Gone already, or being removed: either way it will be gone.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409, ..
            }) => {}
            Err(e) => return Err(docker_err(id, "cannot remove the container", e)),
        }
        self.lock().remove(id);
        Ok(())
    }

    async fn recover(&self, known: &[ContainerId]) -> Result<Vec<ContainerId>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![LABEL_CONTAINER_ID.to_string(), format!("{LABEL_SCOPE}={}", self.scope)],
        );
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| Error::Container {
                container_id: "*".into(),
                message: format!("cannot list containers: {e}"),
                source: Some(Box::new(e)),
            })?;
        let mut recovered = Vec::new();
        for c in list {
            let Some(id) = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_CONTAINER_ID))
                .and_then(|v| ContainerId::new(v.clone()).ok())
            else {
                continue;
            };
            let running = c
                .state
                .as_ref()
                .is_some_and(|s| format!("{s:?}").eq_ignore_ascii_case("running"));
            if known.contains(&id) && running {
                let watched = self.watch(&id);
                self.lock().insert(id.clone(), watched);
                recovered.push(id);
            } else {
                // An orphan, or a known container that is gone: remove it.
                let rm = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                let _ = self.docker.remove_container(&name(&id), Some(rm)).await;
            }
        }
        Ok(recovered)
    }
}
