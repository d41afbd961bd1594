//! Processes, from `/proc/PID/*`.
//!
//! Every cycle reads each process's `stat` (one small file: parent, state,
//! CPU times, threads, RSS) and counts its open descriptors. What rarely
//! changes — command line, owner, cgroup (hence container), network
//! namespace, the task environment — is read once per process incarnation
//! (pid plus start time, so a recycled pid is a new process) and cached;
//! the working directory is re-read every [`REFRESH_EVERY`] cycles.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use orchestrator_core::report::{ids, Node, Report, TopologyKind};

use crate::users::Users;

/// Cycles between re-reads of a process's working directory.
pub const REFRESH_EVERY: u64 = 4;

/// The facts read once per process incarnation.
#[derive(Clone, Debug, Default)]
struct Cached {
    start_time: u64,
    cmdline: String,
    name: String,
    uid: Option<u32>,
    cgroup_container: Option<String>,
    netns: Option<u64>,
    task_id: Option<String>,
    app_id: Option<String>,
    cwd: Option<String>,
    cwd_read_at: u64,
    /// CPU ticks at the previous cycle, for the CPU percentage.
    ticks: u64,
    /// Open descriptors, when last counted by listing.
    fds: Option<usize>,
    fds_read_at: u64,
}

/// Open descriptors of a process. Linux 6.2+ gives the count as the size
/// of `/proc/PID/fd` (one `stat`); older kernels need a listing, which
/// for a process with thousands of sockets is costly, so it is redone
/// only every [`REFRESH_EVERY`] cycles.
fn open_files(dir: &Path, c: &mut Cached, cycle: u64) -> Option<usize> {
    let fd_dir = dir.join("fd");
    if let Some(n) = std::fs::metadata(&fd_dir).ok().map(|m| m.len()).filter(|n| *n > 0) {
        return usize::try_from(n).ok();
    }
    if c.fds.is_none() || cycle.saturating_sub(c.fds_read_at) >= REFRESH_EVERY {
        c.fds = std::fs::read_dir(&fd_dir).map(Iterator::count).ok();
        c.fds_read_at = cycle;
    }
    c.fds
}

/// Reads a small procfs file the kernel renders in one go (`stat`,
/// `sockstat`) into `buf`: open, one `read` (more only if the text does not
/// end its line), close. `read_to_string` would add a `statx` for a size
/// procfs does not know and a second `read` to see the end — two of five
/// system calls per process per cycle.
pub(crate) fn read_line_file<'a>(path: &Path, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    buf.clear();
    buf.resize(buf.capacity().max(1024), 0);
    let mut at = 0;
    loop {
        let n = f.read(&mut buf[at..]).ok()?;
        at += n;
        if n == 0 || buf[..at].ends_with(b"\n") {
            break;
        }
        if at == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    std::str::from_utf8(&buf[..at]).ok()
}

/// Collects the process topology.
#[derive(Debug)]
pub struct ProcessCollector {
    root: PathBuf,
    host: String,
    cache: HashMap<u32, Cached>,
    users: Users,
    cycle: u64,
    last_ms: u64,
    ticks_per_sec: u64,
    page_size: u64,
}

/// One line of `/proc/PID/stat`, the fields the probe uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `comm`, without parentheses.
    pub comm: String,
    /// One-letter state.
    pub state: char,
    /// Parent pid.
    pub ppid: u32,
    /// User plus system CPU ticks.
    pub ticks: u64,
    /// Threads.
    pub threads: u64,
    /// Start time in ticks after boot.
    pub start_time: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 2..)?.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: u32::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)?,
        threads: field(20)?,
        start_time: field(22)?,
        rss_pages: field(24)?,
    })
}

/// The container id in a process's `/proc/PID/cgroup`, for Docker,
/// containerd, CRI-O and systemd-style paths, cgroup v1 or v2.
pub fn container_of_cgroup(text: &str) -> Option<String> {
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for segment in path.split('/').rev() {
            let s = segment.strip_suffix(".scope").unwrap_or(segment);
            let s = s.rsplit(['-', ':']).next().unwrap_or(s);
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(s.to_ascii_lowercase());
            }
        }
    }
    None
}

/// The inode of a `net:[4026531992]`-style namespace link.
pub fn namespace_inode(link: &Path) -> Option<u64> {
    let s = link.to_str()?;
    s.split_once('[')?.1.strip_suffix(']')?.parse().ok()
}

fn env_value<'a>(environ: &'a [u8], key: &str) -> Option<&'a str> {
    environ.split(|b| *b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        kv.strip_prefix(key)?.strip_prefix('=')
    })
}

impl ProcessCollector {
    /// Collects from `/proc` for the host named `host`.
    pub fn new(host: &str) -> ProcessCollector {
        ProcessCollector::with_root("/proc", host)
    }

    /// Collects from another procfs mount (a host's `/proc` seen from a
    /// container, or a fixture).
    pub fn with_root(root: impl Into<PathBuf>, host: &str) -> ProcessCollector {
        let root = root.into();
        ProcessCollector {
            users: Users::load(Path::new("/etc/passwd")),
            root,
            host: host.to_string(),
            cache: HashMap::new(),
            cycle: 0,
            last_ms: 0,
            ticks_per_sec: procfs::ticks_per_second().max(1),
            page_size: procfs::page_size().max(1),
        }
    }

    /// Processes known after the last cycle.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no process is known.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// One cycle: adds a node per process to `report`.
    pub fn collect_into(&mut self, report: &mut Report, now_ms: u64) -> std::io::Result<()> {
        self.cycle += 1;
        let elapsed_ticks = if self.last_ms == 0 {
            0
        } else {
            now_ms.saturating_sub(self.last_ms) * self.ticks_per_sec / 1000
        };
        self.last_ms = now_ms;
        let mut seen = HashSet::with_capacity(self.cache.len());
        let mut buf = Vec::with_capacity(1024);
        let topology = report.topologies.get_mut(TopologyKind::Process);
        for entry in std::fs::read_dir(&self.root)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let dir = entry.path();
            // A process may exit at any point below: skip it quietly.
            let Some(text) = read_line_file(&dir.join("stat"), &mut buf) else {
                continue;
            };
            let Some(stat) = parse_stat(text) else { continue };
            if stat.state == 'Z' {
                continue;
            }
            seen.insert(pid);
            // A new process under a reused pid has another start time; a
            // process that called exec keeps its start time but not its
            // `comm` (a fork caught before its exec showed its parent's
            // command line until then).
            let fresh = self
                .cache
                .get(&pid)
                .is_none_or(|c| c.start_time != stat.start_time || c.name != stat.comm);
            if fresh {
                self.cache.insert(pid, self.read_once(&dir, &stat));
            }
            let cycle = self.cycle;
            let Some(c) = self.cache.get_mut(&pid) else { continue };
            if cycle.saturating_sub(c.cwd_read_at) >= REFRESH_EVERY {
                c.cwd = std::fs::read_link(dir.join("cwd"))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned());
                c.cwd_read_at = cycle;
            }
            let cpu = (!fresh && elapsed_ticks > 0)
                .then(|| stat.ticks.saturating_sub(c.ticks) as f64 * 100.0 / elapsed_ticks as f64);
            c.ticks = stat.ticks;
            let fds = open_files(&dir, c, cycle);

            let mut node = Node::default();
            node.set_latest("pid", pid.to_string(), now_ms);
            node.set_latest("ppid", stat.ppid.to_string(), now_ms);
            node.set_latest("name", c.name.clone(), now_ms);
            node.set_latest("cmdline", c.cmdline.clone(), now_ms);
            node.set_latest("threads", stat.threads.to_string(), now_ms);
            if let Some(uid) = c.uid {
                node.set_latest("uid", uid.to_string(), now_ms);
                if let Some(user) = self.users.name(uid) {
                    node.set_latest("user", user, now_ms);
                }
            }
            if let Some(cwd) = &c.cwd {
                node.set_latest("cwd", cwd.clone(), now_ms);
            }
            if let Some(id) = &c.cgroup_container {
                node.set_latest("cgroup_container_id", id.clone(), now_ms);
            }
            if let Some(ns) = c.netns {
                node.set_latest("netns", ns.to_string(), now_ms);
            }
            if let Some(t) = &c.task_id {
                node.set_latest("task_id", t.clone(), now_ms);
            }
            if let Some(a) = &c.app_id {
                node.set_latest("app_id", a.clone(), now_ms);
            }
            if let Some(cpu) = cpu {
                node.set_metric("cpu_usage_percent", now_ms, cpu);
            }
            node.set_metric("memory_usage_bytes", now_ms, (stat.rss_pages * self.page_size) as f64);
            if let Some(fds) = fds {
                node.set_metric("open_files_count", now_ms, fds as f64);
            }
            node = node.with_parent(TopologyKind::Host, ids::host(&self.host));
            topology.insert(ids::process(&self.host, pid), node);
        }
        self.cache.retain(|pid, _| seen.contains(pid));
        Ok(())
    }

    fn read_once(&self, dir: &Path, stat: &Stat) -> Cached {
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|raw| {
                let parts: Vec<String> = raw
                    .split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                parts.join(" ")
            })
            .unwrap_or_default();
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        Cached {
            start_time: stat.start_time,
            // Kernel threads have no command line: show `[kthreadd]`.
            cmdline: if cmdline.is_empty() {
                format!("[{}]", stat.comm)
            } else {
                cmdline
            },
            name: stat.comm.clone(),
            uid: std::fs::metadata(dir).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.uid()
            }),
            cgroup_container: std::fs::read_to_string(dir.join("cgroup"))
                .ok()
                .and_then(|t| container_of_cgroup(&t)),
            netns: std::fs::read_link(dir.join("ns/net"))
                .ok()
                .and_then(|l| namespace_inode(&l)),
            task_id: env_value(&environ, "MESOS_TASK_ID").map(str::to_string),
            app_id: env_value(&environ, "MARATHON_APP_ID").map(str::to_string),
            cwd: std::fs::read_link(dir.join("cwd"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            cwd_read_at: self.cycle,
            ticks: stat.ticks,
            fds: None,
            fds_read_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_name() {
        let text = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 8888 10000 42 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.comm, "my (odd) prog");
        assert_eq!(
            (s.state, s.ppid, s.ticks, s.threads, s.start_time, s.rss_pages),
            ('S', 1, 10, 5, 8888, 42)
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "3f4e".repeat(16);
        for text in [
            format!("12:memory:/docker/{id}\n"),
            format!("0::/system.slice/docker-{id}.scope\n"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope\n"),
            format!("11:cpu:/kubepods/besteffort/pod1/{id}\n"),
            format!("0::/machine.slice/crio-{id}.scope\n"),
        ] {
            assert_eq!(container_of_cgroup(&text).as_deref(), Some(id.as_str()), "{text}");
        }
        assert_eq!(
            container_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n"),
            None
        );
    }

    #[test]
    fn environment_lookup() {
        let env = b"A=1\0MARATHON_APP_ID=/web\0MESOS_TASK_ID=web.1\0";
        assert_eq!(env_value(env, "MARATHON_APP_ID"), Some("/web"));
        assert_eq!(env_value(env, "MESOS_TASK_ID"), Some("web.1"));
        assert_eq!(env_value(env, "B"), None);
    }

    #[test]
    fn collects_this_process_with_its_parent() {
        let mut c = ProcessCollector::new("h");
        let mut r = Report::new("p", "h", 0);
        c.collect_into(&mut r, 1_000).unwrap();
        let me = std::process::id();
        let node = &r.topologies.process.nodes[&ids::process("h", me)];
        assert_eq!(node.latest("pid"), Some(me.to_string().as_str()));
        let ppid = std::os::unix::process::parent_id();
        assert_eq!(node.latest("ppid"), Some(ppid.to_string().as_str()));
        assert!(node.metrics["memory_usage_bytes"].last().unwrap().value > 0.0);
        assert!(!c.is_empty());
        // The second cycle has a CPU percentage.
        let mut r2 = Report::new("p", "h", 0);
        c.collect_into(&mut r2, 2_000).unwrap();
        assert!(r2.topologies.process.nodes[&ids::process("h", me)]
            .metrics
            .contains_key("cpu_usage_percent"));
    }
}
