//! The process containerizer (Mesos's "mesos" containerizer without
//! images): each task is a process tree in its own process group (and
//! session, when it runs as another user), with a sandbox directory,
//! Mesos's environment, and cgroup limits.
//!
//! How a task is started matters at scale: `fork` copies the agent's page
//! tables, and an agent embedded in a big control plane (the all-in-one)
//! paid milliseconds per task for it. So tasks start through
//! `posix_spawn` (glibc's `clone(CLONE_VM|CLONE_VFORK)`, no copy), and
//! joining the container's cgroups — which must happen before the task's
//! own code runs, or its first children would escape them — is done by a
//! three-line `/bin/sh` launcher that writes itself into the cgroups and
//! `exec`s the task in place (Mesos uses its `mesos-containerizer launch`
//! helper for the same). Only a task run as another user still forks, to
//! change its ids in the child.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use orchestrator_core::{
    Command, ContainerId, ContainerSpec, Containerizer, Error, ResourceLimits, ResourceStatistics, Result, TaskReason,
    Termination, LABEL_TASK_ID,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::cgroups::{Cgroups, ContainerCgroup};

/// How often an adopted (recovered) process is checked for exit.
const RECOVERED_POLL: Duration = Duration::from_millis(200);

/// What is written to `<work dir>/containers/<id>.json` so a restarted
/// agent can find its processes again.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    pid: i32,
    /// Start time of the process (clock ticks since boot), to tell it from a
    /// later process that reused the pid.
    start_time: u64,
    sandbox: PathBuf,
    limits: ResourceLimits,
}

struct Container {
    pid: i32,
    cgroup: Option<ContainerCgroup>,
    limits: ResourceLimits,
    killed: Arc<AtomicBool>,
    exit: watch::Receiver<Option<Termination>>,
}

/// Runs tasks as plain processes, isolated by process group and cgroups
/// (v1 or v2). Tasks that name an image belong to another
/// containerizer.
pub struct ProcessContainerizer {
    checkpoints: PathBuf,
    cgroups: Option<Cgroups>,
    containers: Mutex<HashMap<ContainerId, Arc<Container>>>,
}

impl std::fmt::Debug for ProcessContainerizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessContainerizer")
            .field("checkpoints", &self.checkpoints)
            .field("cgroups", &self.cgroups)
            .finish_non_exhaustive()
    }
}

fn container_err(id: &ContainerId, message: impl Into<String>, source: std::io::Error) -> Error {
    Error::container(id, message, source)
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Joins the cgroups whose `cgroup.procs` files `ORCH_CGROUP_PROCS` lists
/// (writing "0" moves the writer), then becomes the task. Its arguments:
/// the task's program and arguments.
const LAUNCHER: &str = r#"IFS=:
for f in $ORCH_CGROUP_PROCS; do echo 0 > "$f" || { echo "cannot join the container's cgroup $f" >&2; exit 127; }; done
unset IFS ORCH_CGROUP_PROCS; exec "$@""#;

/// Whether `program` names an executable file (a bare name: on `PATH`).
fn executable(program: &str, path: Option<&str>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runs = |p: &Path| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return runs(Path::new(program));
    }
    path.unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
        .any(|dir| runs(&Path::new(dir).join(program)))
}

fn signal_group(pid: i32, signal: Signal) {
    // The task leads its own process group, so its pid is the group id;
    // an already-empty group is not an error here.
    let _ = killpg(Pid::from_raw(pid), signal);
}

impl ProcessContainerizer {
    /// A containerizer checkpointing into `<work_dir>/containers`, using the
    /// host's cgroups (under `<agent cgroup>/`[`cgroup_root`](Self::cgroup_root))
    /// when it has them.
    ///
    /// # Errors
    /// When the checkpoint directory cannot be created.
    pub fn new(work_dir: impl AsRef<Path>) -> Result<Self> {
        // Created first, so the name comes from the same canonical path on
        // the first start as on every restart.
        let _ = fs::create_dir_all(work_dir.as_ref());
        let root = Self::cgroup_root(work_dir.as_ref());
        Self::with_cgroups(work_dir, Cgroups::detect(&root, false))
    }

    /// The cgroup this agent's containers go under: `orchestrator-` and a
    /// hash of the (absolute) work directory. An agent kills the cgroups it
    /// finds there without a checkpoint of its own (orphans of a crash), so
    /// two agents on one host — in one service's cgroup, as the all-in-one
    /// beside a separate agent — must not share it; one work directory
    /// always maps to the same name, so a restarted agent finds its own.
    pub fn cgroup_root(work_dir: &Path) -> String {
        let absolute = fs::canonicalize(work_dir)
            .or_else(|_| std::env::current_dir().map(|d| d.join(work_dir)))
            .unwrap_or_else(|_| work_dir.to_path_buf());
        // FNV-1a: stable across builds and Rust versions, unlike `Hash`.
        let hash = absolute
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("orchestrator-{hash:016x}")
    }

    /// A containerizer with explicit cgroups (`None`: no resource limits).
    ///
    /// # Errors
    /// When the checkpoint directory cannot be created.
    pub fn with_cgroups(work_dir: impl AsRef<Path>, cgroups: Option<Cgroups>) -> Result<Self> {
        let checkpoints = work_dir.as_ref().join("containers");
        fs::create_dir_all(&checkpoints).map_err(|e| Error::Store {
            path: checkpoints.display().to_string(),
            message: "cannot create the checkpoint directory".into(),
            source: Some(Box::new(e)),
        })?;
        Ok(Self {
            checkpoints,
            cgroups,
            containers: Mutex::new(HashMap::new()),
        })
    }

    /// The cgroups in use, if any.
    pub fn cgroups(&self) -> Option<&Cgroups> {
        self.cgroups.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerId, Arc<Container>>> {
        // Every critical section is a single map operation.
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &ContainerId) -> Result<Arc<Container>> {
        self.lock().get(id).cloned().ok_or_else(|| Error::UnknownContainer {
            container_id: id.to_string(),
        })
    }

    fn checkpoint_path(&self, id: &str) -> PathBuf {
        self.checkpoints.join(format!("{id}.json"))
    }

    /// Builds the command, its environment and its isolation.
    fn command(
        &self,
        id: &ContainerId,
        spec: &ContainerSpec,
        sandbox: &Path,
        cgroup: Option<&ContainerCgroup>,
    ) -> Result<tokio::process::Command> {
        let argv: Vec<&str> = match &spec.command {
            Command::Shell(line) => vec!["/bin/sh", "-c", line],
            Command::Exec { program, args } => std::iter::once(program.as_str())
                .chain(args.iter().map(String::as_str))
                .collect(),
            Command::ImageDefault { .. } => {
                return Err(Error::Container {
                    container_id: id.to_string(),
                    message: "a task without a command needs an image (use the docker containerizer)".into(),
                    source: None,
                })
            }
        };
        // Forks only to change users (see the module's doc); then the
        // child also joins the cgroups itself.
        let forks = spec.user.is_some();
        let procs_files = cgroup.map(ContainerCgroup::procs_files).unwrap_or_default();
        let launcher = !forks && !procs_files.is_empty();
        let mut cmd = if launcher {
            // The launcher's `exec` would fail inside the task's sandbox,
            // after the launch was reported good: check the program here.
            let path = spec.env.get("PATH").map(String::as_str);
            let program = argv[0];
            if !executable(program, path.or(std::env::var("PATH").ok().as_deref())) {
                return Err(container_err(
                    id,
                    format!("cannot start `{program}`"),
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such executable"),
                ));
            }
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(LAUNCHER).arg("orchestrator-launch").args(&argv);
            let joined: Vec<String> = procs_files.iter().map(|p| p.display().to_string()).collect();
            c.env("ORCH_CGROUP_PROCS", joined.join(":"));
            c
        } else {
            let mut c = tokio::process::Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        if !forks {
            cmd.process_group(0);
        }
        let open = |name: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(sandbox.join(name))
                .map_err(|e| container_err(id, format!("cannot open {name} in the sandbox"), e))
        };
        cmd.stdin(Stdio::null()).stdout(open("stdout")?).stderr(open("stderr")?);
        let workdir = match &spec.working_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => sandbox.join(d),
            None => sandbox.to_path_buf(),
        };
        cmd.current_dir(workdir);
        cmd.envs(&spec.env);
        cmd.env("MESOS_SANDBOX", sandbox)
            .env("MESOS_DIRECTORY", sandbox)
            .env("MESOS_CONTAINER_ID", id.as_str());
        if let Some(task) = spec.labels.get(LABEL_TASK_ID) {
            cmd.env("MESOS_TASK_ID", task);
        }
        for (i, port) in spec.ports.iter().enumerate() {
            cmd.env(format!("PORT{i}"), port.to_string());
        }
        if let Some(first) = spec.ports.first() {
            cmd.env("PORT", first.to_string());
            let all: Vec<String> = spec.ports.iter().map(u16::to_string).collect();
            cmd.env("PORTS", all.join(","));
        }
        if let Some(user) = &spec.user {
            let found = nix::unistd::User::from_name(user)
                .map_err(|e| container_err(id, format!("cannot look up user {user}"), e.into()))?
                .ok_or_else(|| Error::Container {
                    container_id: id.to_string(),
                    message: format!("user {user} does not exist on this agent"),
                    source: None,
                })?;
            cmd.uid(found.uid.as_raw()).gid(found.gid.as_raw());
        }
        if !forks {
            return Ok(cmd);
        }
        let procs: Vec<CString> = procs_files
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .collect();
        #[allow(unsafe_code)]
        // SAFETY: runs in the forked child before exec; it calls only
        // async-signal-safe functions (setsid, open, write, close) on data
        // prepared before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for path in &procs {
                    // Writing "0" moves the writing process itself.
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// The termination of a process that ended with `status`.
    fn termination(status: Option<std::process::ExitStatus>, killed: bool, oom: bool) -> Termination {
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status.and_then(|s| s.code());
        let signal = status.and_then(|s| s.signal());
        let (reason, message) = if oom {
            (
                Some(TaskReason::ReasonContainerLimitationMemory),
                "memory limit exceeded: the task was OOM-killed".into(),
            )
        } else if killed {
            (None, "killed on request".to_string())
        } else {
            match (exit_code, signal, status) {
                (Some(0), _, _) => (None, "exited with status 0".into()),
                (Some(c), _, _) => (
                    Some(TaskReason::ReasonCommandExecutorFailed),
                    format!("exited with status {c}"),
                ),
                (None, Some(s), _) => (
                    Some(TaskReason::ReasonCommandExecutorFailed),
                    format!("terminated by signal {s}"),
                ),
                (None, None, _) => (None, "exited while the agent was away; its status is unknown".into()),
            }
        };
        Termination {
            exit_code,
            signal,
            killed: killed && !oom,
            reason,
            message,
        }
    }

    fn register(&self, id: ContainerId, container: Container) {
        self.lock().insert(id, Arc::new(container));
    }
}

#[async_trait]
impl Containerizer for ProcessContainerizer {
    fn name(&self) -> &'static str {
        "mesos"
    }

    fn supports(&self, spec: &ContainerSpec) -> bool {
        spec.image.is_none() && !matches!(spec.command, Command::ImageDefault { .. })
    }

    async fn launch(&self, id: &ContainerId, spec: &ContainerSpec, sandbox: &Path) -> Result<()> {
        if self.lock().contains_key(id) {
            return Err(Error::Container {
                container_id: id.to_string(),
                message: "a container with this id is already running".into(),
                source: None,
            });
        }
        if !self.supports(spec) {
            return Err(Error::Container {
                container_id: id.to_string(),
                message: "the process containerizer runs no images".into(),
                source: None,
            });
        }
        // Build the command first: a task that cannot start leaves no cgroup.
        let planned = self.cgroups.as_ref().map(|c| c.container(id.as_str()));
        let mut cmd = self.command(id, spec, sandbox, planned.as_ref())?;
        let cgroup = match &self.cgroups {
            Some(cgroups) => Some(cgroups.create(id.as_str(), &spec.limits)?),
            None => None,
        };
        let program = match &spec.command {
            Command::Exec { program, .. } => program.clone(),
            _ => "/bin/sh".into(),
        };
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                if let Some(cg) = &cgroup {
                    let _ = cg.remove_async().await;
                }
                return Err(container_err(id, format!("cannot start `{program}`"), e));
            }
        };
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| Error::Container {
                container_id: id.to_string(),
                message: "the process exited before its pid was read".into(),
                source: None,
            })?;
        let checkpoint = Checkpoint {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            sandbox: sandbox.to_path_buf(),
            limits: spec.limits,
        };
        let path = self.checkpoint_path(id.as_str());
        let json = serde_json::to_vec(&checkpoint)?;
        fs::write(&path, json).map_err(|e| container_err(id, "cannot write the checkpoint", e))?;

        let (tx, rx) = watch::channel(None);
        let killed = Arc::new(AtomicBool::new(false));
        let (killed_w, cgroup_w) = (killed.clone(), cgroup.clone());
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            // The main process is gone: nothing else of the task may stay.
            signal_group(pid, Signal::SIGKILL);
            if let Some(cg) = &cgroup_w {
                cg.kill_all();
            }
            let oom = cgroup_w.as_ref().is_some_and(ContainerCgroup::oom_killed);
            let _ = tx.send(Some(Self::termination(status, killed_w.load(Ordering::SeqCst), oom)));
        });
        self.register(
            id.clone(),
            Container {
                pid,
                cgroup,
                limits: spec.limits,
                killed,
                exit: rx,
            },
        );
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<Termination> {
        let mut rx = self.get(id)?.exit.clone();
        loop {
            if let Some(t) = rx.borrow_and_update().clone() {
                return Ok(t);
            }
            if rx.changed().await.is_err() {
                return Err(Error::Container {
                    container_id: id.to_string(),
                    message: "the process watcher stopped".into(),
                    source: None,
                });
            }
        }
    }

    async fn kill(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let c = self.get(id)?;
        if c.exit.borrow().is_some() {
            return Ok(());
        }
        c.killed.store(true, Ordering::SeqCst);
        if !grace.is_zero() {
            signal_group(c.pid, Signal::SIGTERM);
            if tokio::time::timeout(grace, self.wait(id)).await.is_ok() {
                return Ok(());
            }
        }
        signal_group(c.pid, Signal::SIGKILL);
        if let Some(cg) = &c.cgroup {
            cg.kill_all();
        }
        tokio::time::timeout(Duration::from_secs(10), self.wait(id))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("container {id} to exit after SIGKILL"),
                after: Duration::from_secs(10),
            })??;
        Ok(())
    }

    async fn usage(&self, id: &ContainerId) -> Result<ResourceStatistics> {
        let c = self.get(id)?;
        let mut s = match &c.cgroup {
            Some(cg) => cg.stats(),
            None => {
                // Without cgroups only the main process is measured.
                let mut s = ResourceStatistics::default();
                if let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", c.pid)) {
                    if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) {
                        let f: Vec<&str> = rest.split_whitespace().collect();
                        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).map(|t| t as f64 / 100.0);
                        s.cpus_user_time_secs = tick(11);
                        s.cpus_system_time_secs = tick(12);
                        s.mem_rss_bytes = f.get(21).and_then(|v| v.parse::<u64>().ok()).map(|p| p * 4096);
                    }
                }
                s
            }
        };
        s.timestamp = now_secs();
        s.cpus_limit = c.limits.cpus;
        Ok(s)
    }

    async fn destroy(&self, id: &ContainerId) -> Result<()> {
        let c = self.get(id)?;
        if c.exit.borrow().is_none() {
            self.kill(id, Duration::ZERO).await?;
        }
        if let Some(cg) = &c.cgroup {
            cg.remove_async().await?;
        }
        let _ = fs::remove_file(self.checkpoint_path(id.as_str()));
        self.lock().remove(id);
        Ok(())
    }

    async fn recover(&self, known: &[ContainerId]) -> Result<Vec<ContainerId>> {
        let mut recovered = Vec::new();
        let mut checkpointed = Vec::new();
        let entries = fs::read_dir(&self.checkpoints).map_err(|e| Error::Store {
            path: self.checkpoints.display().to_string(),
            message: "cannot read checkpoints".into(),
            source: Some(Box::new(e)),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(String::from) else {
                continue;
            };
            let Ok(id) = ContainerId::new(name.clone()) else {
                continue;
            };
            checkpointed.push(name.clone());
            let checkpoint: Option<Checkpoint> = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let cgroup = self.cgroups.as_ref().map(|c| c.container(&name));
            let alive = checkpoint
                .as_ref()
                .is_some_and(|cp| start_time(cp.pid).is_some_and(|t| t == cp.start_time || cp.start_time == 0));
            match checkpoint {
                Some(cp) if alive && known.contains(&id) => {
                    let (tx, rx) = watch::channel(None);
                    let killed = Arc::new(AtomicBool::new(false));
                    let (killed_w, cgroup_w, pid, started) = (killed.clone(), cgroup.clone(), cp.pid, cp.start_time);
                    tokio::spawn(async move {
                        // Not our child any more: watch for the pid to go.
                        while start_time(pid).is_some_and(|t| t == started || started == 0) {
                            tokio::time::sleep(RECOVERED_POLL).await;
                        }
                        if let Some(cg) = &cgroup_w {
                            cg.kill_all();
                        }
                        let oom = cgroup_w.as_ref().is_some_and(ContainerCgroup::oom_killed);
                        let _ = tx.send(Some(Self::termination(None, killed_w.load(Ordering::SeqCst), oom)));
                    });
                    self.register(
                        id.clone(),
                        Container {
                            pid,
                            cgroup,
                            limits: cp.limits,
                            killed,
                            exit: rx,
                        },
                    );
                    recovered.push(id);
                }
                other => {
                    // An orphan (unknown to the agent) or a dead process.
                    if let Some(cp) = other.filter(|_| alive) {
                        signal_group(cp.pid, Signal::SIGKILL);
                        let _ = kill(Pid::from_raw(cp.pid), Signal::SIGKILL);
                    }
                    if let Some(cg) = &cgroup {
                        cg.kill_all();
                        let _ = cg.remove_async().await;
                    }
                    let _ = fs::remove_file(&path);
                }
            }
        }
        // Cgroups left without a checkpoint (a crash between the two).
        if let Some(cgroups) = &self.cgroups {
            for name in cgroups.existing() {
                if !checkpointed.contains(&name) {
                    let cg = cgroups.container(&name);
                    cg.kill_all();
                    let _ = cg.remove_async().await;
                }
            }
        }
        Ok(recovered)
    }
}
