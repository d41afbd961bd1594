//! Linux control groups for process containers, on cgroup v1 (separate
//! hierarchies per controller, as on these development machines) and v2
//! (the unified hierarchy of most production hosts).
//!
//! Containers live under the agent's own cgroup in each hierarchy
//! (`<agent cgroup>/<root name>/<container id>`), like Mesos's
//! `--cgroups_root`, so an agent confined by its supervisor confines its
//! tasks too.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orchestrator_core::{Error, ResourceLimits, ResourceStatistics, Result};

/// Which cgroup interface the host has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// Where container cgroups are made.
#[derive(Clone, Debug)]
pub struct Cgroups {
    version: CgroupVersion,
    /// v1: the parent directory per controller; v2: one parent.
    memory: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
    pids: Option<PathBuf>,
    /// Enforce a hard CPU cap (CFS quota) besides the proportional share.
    cfs_quota: bool,
}

/// The cgroups of one container.
#[derive(Clone, Debug)]
pub struct ContainerCgroup {
    version: CgroupVersion,
    memory: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
    pids: Option<PathBuf>,
}

fn io_err(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Container {
        container_id: path.display().to_string(),
        message: format!("cgroup {what} {}", path.display()),
        source: Some(Box::new(e)),
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| io_err(path, "write", e))
}

fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The controllers' mount points and this process's cgroup paths, as
/// read from `/proc/self/mounts` and `/proc/self/cgroup`.
#[derive(Debug, Default)]
struct Layout {
    v1: Vec<(Vec<String>, PathBuf)>,
    v2: Option<PathBuf>,
    /// (controllers, path) from /proc/self/cgroup; v2 has empty controllers.
    own: Vec<(Vec<String>, String)>,
}

impl Layout {
    fn parse(mounts: &str, self_cgroup: &str) -> Layout {
        let mut layout = Layout::default();
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            match f[2] {
                "cgroup" => {
                    let controllers = f[3].split(',').map(String::from).collect();
                    layout.v1.push((controllers, PathBuf::from(f[1])));
                }
                "cgroup2" => layout.v2 = Some(PathBuf::from(f[1])),
                _ => {}
            }
        }
        for line in self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
            if let (Some(c), Some(p)) = (controllers, path) {
                let list = c.split(',').filter(|x| !x.is_empty()).map(String::from).collect();
                layout.own.push((list, p.to_string()));
            }
        }
        layout
    }

    /// `<mount>/<own path>/<name>` for a v1 controller.
    fn v1_dir(&self, controller: &str, name: &str) -> Option<PathBuf> {
        let (_, mount) = self.v1.iter().find(|(c, _)| c.iter().any(|x| x == controller))?;
        let own = self
            .own
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map_or("/", |(_, p)| p.as_str());
        Some(mount.join(own.trim_start_matches('/')).join(name))
    }
}

impl Cgroups {
    /// Detects the host's cgroups; containers go under `<own cgroup>/<name>`.
    /// `None` when no usable memory and cpu controllers are mounted.
    pub fn detect(name: &str, cfs_quota: bool) -> Option<Cgroups> {
        let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        Self::from_layout(&Layout::parse(&mounts, &own), name, cfs_quota)
    }

    fn from_layout(layout: &Layout, name: &str, cfs_quota: bool) -> Option<Cgroups> {
        if let (Some(memory), Some(cpu)) = (layout.v1_dir("memory", name), layout.v1_dir("cpu", name)) {
            let cpuacct = layout.v1_dir("cpuacct", name).unwrap_or_else(|| cpu.clone());
            return Some(Cgroups {
                version: CgroupVersion::V1,
                memory,
                cpu,
                cpuacct,
                pids: layout.v1_dir("pids", name),
                cfs_quota,
            });
        }
        let mount = layout.v2.as_ref()?;
        let own = layout
            .own
            .iter()
            .find(|(c, _)| c.is_empty())
            .map_or("/", |(_, p)| p.as_str());
        let base = mount.join(own.trim_start_matches('/')).join(name);
        Some(Cgroups {
            version: CgroupVersion::V2,
            memory: base.clone(),
            cpu: base.clone(),
            cpuacct: base.clone(),
            pids: Some(base),
            cfs_quota,
        })
    }

    /// The interface in use.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    fn parents(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = vec![&self.memory, &self.cpu, &self.cpuacct];
        if let Some(p) = &self.pids {
            v.push(p);
        }
        v.sort();
        v.dedup();
        v
    }

    /// Names of the containers that have cgroups (for orphan clean-up).
    pub fn existing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.memory)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// Removes the parent directories when no container is left in them.
    pub fn remove_if_empty(&self) {
        for parent in self.parents() {
            let _ = fs::remove_dir(parent);
        }
    }

    /// The cgroup of container `id`, whether or not it exists yet.
    pub fn container(&self, id: &str) -> ContainerCgroup {
        ContainerCgroup {
            version: self.version,
            memory: self.memory.join(id),
            cpu: self.cpu.join(id),
            cpuacct: self.cpuacct.join(id),
            pids: self.pids.as_ref().map(|p| p.join(id)),
        }
    }

    /// Creates the cgroup of container `id` with `limits`.
    ///
    /// # Errors
    /// When a directory or limit cannot be written (the message names it).
    pub fn create(&self, id: &str, limits: &ResourceLimits) -> Result<ContainerCgroup> {
        for parent in self.parents() {
            fs::create_dir_all(parent).map_err(|e| io_err(parent, "create", e))?;
            if self.version == CgroupVersion::V2 {
                enable_v2_controllers(parent)?;
            }
        }
        let cg = self.container(id);
        for dir in cg.dirs() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, "create", e))?;
        }
        let shares = limits.cpus.map(|c| ((c * 1024.0).round() as u64).max(2));
        let quota = limits
            .cpus
            .filter(|_| self.cfs_quota)
            .map(|c| ((c * 100_000.0).round() as u64).max(1_000));
        match self.version {
            CgroupVersion::V1 => {
                if let Some(mb) = limits.mem_mb {
                    let bytes = ((mb * 1024.0 * 1024.0) as u64).to_string();
                    write(&cg.memory.join("memory.limit_in_bytes"), &bytes)?;
                    // With swap accounting, swap must not extend the limit.
                    let memsw = cg.memory.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &bytes)?;
                    }
                }
                if let Some(s) = shares {
                    write(&cg.cpu.join("cpu.shares"), &s.to_string())?;
                }
                if let Some(q) = quota {
                    write(&cg.cpu.join("cpu.cfs_period_us"), "100000")?;
                    write(&cg.cpu.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
                if let (Some(max), Some(p)) = (limits.pids, &cg.pids) {
                    write(&p.join("pids.max"), &max.to_string())?;
                }
            }
            CgroupVersion::V2 => {
                if let Some(mb) = limits.mem_mb {
                    write(
                        &cg.memory.join("memory.max"),
                        &((mb * 1024.0 * 1024.0) as u64).to_string(),
                    )?;
                    let swap = cg.memory.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                }
                if let Some(s) = shares {
                    // The kernel's own mapping of v1 shares to v2 weights.
                    let weight = 1 + (s.clamp(2, 262_144) - 2) * 9_999 / 262_142;
                    write(&cg.cpu.join("cpu.weight"), &weight.to_string())?;
                }
                if let Some(q) = quota {
                    write(&cg.cpu.join("cpu.max"), &format!("{q} 100000"))?;
                }
                if let (Some(max), Some(p)) = (limits.pids, &cg.pids) {
                    write(&p.join("pids.max"), &max.to_string())?;
                }
            }
        }
        Ok(cg)
    }
}

fn enable_v2_controllers(parent: &Path) -> Result<()> {
    let control = parent.join("cgroup.subtree_control");
    let current = fs::read_to_string(&control).unwrap_or_default();
    let wanted: Vec<&str> = ["memory", "cpu", "pids"]
        .into_iter()
        .filter(|c| !current.split_whitespace().any(|x| x == *c))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let line = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
    fs::write(&control, line).map_err(|e| Error::Container {
        container_id: parent.display().to_string(),
        message: format!(
            "cannot enable cgroup v2 controllers in {} (the agent's own cgroup must be a delegated \
             parent without processes of its own, e.g. run the agent in a leaf cgroup)",
            control.display()
        ),
        source: Some(Box::new(e)),
    })
}

impl ContainerCgroup {
    fn dirs(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = vec![&self.memory, &self.cpu, &self.cpuacct];
        if let Some(p) = &self.pids {
            v.push(p);
        }
        v.sort();
        v.dedup();
        v
    }

    /// The `cgroup.procs` files a process writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Processes in the container.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.memory.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether the kernel's OOM killer killed something in the container.
    pub fn oom_killed(&self) -> bool {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        read_key(&self.memory.join(file), "oom_kill").is_some_and(|n| n > 0)
    }

    /// Usage read from the container's cgroups.
    pub fn stats(&self) -> ResourceStatistics {
        let mut s = ResourceStatistics::default();
        match self.version {
            CgroupVersion::V1 => {
                // cpuacct.stat counts USER_HZ ticks, 100 per second on Linux.
                let stat = self.cpuacct.join("cpuacct.stat");
                s.cpus_user_time_secs = read_key(&stat, "user").map(|t| t as f64 / 100.0);
                s.cpus_system_time_secs = read_key(&stat, "system").map(|t| t as f64 / 100.0);
                s.mem_total_bytes = read_u64(&self.memory.join("memory.usage_in_bytes"));
                s.mem_rss_bytes = read_key(&self.memory.join("memory.stat"), "total_rss");
                s.mem_limit_bytes = read_u64(&self.memory.join("memory.limit_in_bytes")).filter(|l| *l < 1 << 62);
            }
            CgroupVersion::V2 => {
                let stat = self.cpu.join("cpu.stat");
                s.cpus_user_time_secs = read_key(&stat, "user_usec").map(|u| u as f64 / 1e6);
                s.cpus_system_time_secs = read_key(&stat, "system_usec").map(|u| u as f64 / 1e6);
                s.mem_total_bytes = read_u64(&self.memory.join("memory.current"));
                s.mem_rss_bytes = read_key(&self.memory.join("memory.stat"), "anon");
                s.mem_limit_bytes = read_u64(&self.memory.join("memory.max"));
            }
        }
        s.processes = self.pids.as_ref().and_then(|p| read_u64(&p.join("pids.current")));
        s
    }

    /// Kills every process in the container with SIGKILL.
    pub fn kill_all(&self) {
        let kill_file = self.memory.join("cgroup.kill");
        if self.version == CgroupVersion::V2 && kill_file.exists() && fs::write(&kill_file, "1").is_ok() {
            return;
        }
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// [`remove`](Self::remove) on a blocking thread, for async callers:
    /// it may wait up to 5 s for the kernel.
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    pub async fn remove_async(&self) -> Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.remove())
            .await
            .unwrap_or_else(|e| Err(io_err(&self.memory, "remove", io::Error::other(e))))
    }

    /// Kills what is left and removes the cgroups (waiting up to 5 s for
    /// the kernel to release them). Blocking: async code calls
    /// [`remove_async`](Self::remove_async).
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in self.dirs() {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        self.kill_all();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(io_err(dir, "remove", e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_layout_nests_under_the_agents_own_cgroups() {
        let mounts = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
                      cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n";
        let own = "5:pids:/\n4:memory:/sandbox/abc\n2:cpu,cpuacct:/\n0::/\n";
        let cg = Cgroups::from_layout(&Layout::parse(mounts, own), "orchestrator", false).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V1);
        let c = cg.container("task-1");
        assert_eq!(
            c.memory,
            Path::new("/sys/fs/cgroup/memory/sandbox/abc/orchestrator/task-1")
        );
        assert_eq!(c.cpu, Path::new("/sys/fs/cgroup/cpu,cpuacct/orchestrator/task-1"));
        assert_eq!(c.cpu, c.cpuacct);
        assert_eq!(c.procs_files().len(), 3, "memory, cpu+cpuacct, pids");
    }

    #[test]
    fn v2_layout_uses_one_directory() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        let own = "0::/system.slice/agent.service\n";
        let cg = Cgroups::from_layout(&Layout::parse(mounts, own), "orchestrator", true).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V2);
        let c = cg.container("t");
        assert_eq!(
            c.memory,
            Path::new("/sys/fs/cgroup/system.slice/agent.service/orchestrator/t")
        );
        assert_eq!(c.procs_files().len(), 1);
    }

    #[test]
    fn v2_limits_and_stats_use_the_unified_files() {
        let dir = std::env::temp_dir().join(format!("orch-cg2-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let cg = Cgroups {
            version: CgroupVersion::V2,
            memory: dir.clone(),
            cpu: dir.clone(),
            cpuacct: dir.clone(),
            pids: Some(dir.clone()),
            cfs_quota: true,
        };
        let limits = ResourceLimits {
            cpus: Some(0.5),
            mem_mb: Some(64.0),
            pids: Some(10),
        };
        let c = cg.create("t", &limits).unwrap();
        let t = dir.join("t");
        assert_eq!(fs::read_to_string(t.join("memory.max")).unwrap(), "67108864");
        assert_eq!(fs::read_to_string(t.join("cpu.max")).unwrap(), "50000 100000");
        assert_eq!(fs::read_to_string(t.join("cpu.weight")).unwrap(), "20");
        assert_eq!(fs::read_to_string(t.join("pids.max")).unwrap(), "10");
        assert_eq!(
            fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu +pids"
        );
        fs::write(t.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        fs::write(t.join("cpu.stat"), "usage_usec 300\nuser_usec 200\nsystem_usec 100\n").unwrap();
        fs::write(t.join("memory.current"), "4096\n").unwrap();
        assert!(c.oom_killed());
        let s = c.stats();
        assert_eq!((s.cpus_user_time_secs, s.mem_total_bytes), (Some(0.0002), Some(4096)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
