//! Containers, their images, pods and Marathon apps, from the Docker Engine
//! API (bollard, version negotiated).
//!
//! # Why inspect once and stats one-shot
//!
//! A probe that opens a stats stream per container holds a connection and
//! a daemon goroutine per container forever, and one that inspects every
//! container every cycle makes the daemon do the work the probe saved.
//! Here each cycle lists containers (one call); a container is inspected
//! when it first appears, when its state line changes, or when the events
//! stream says something happened to it; usage comes from one-shot stats
//! with a bounded number of calls in flight, by a background task, so a
//! cycle never waits on the engine. The
//! events stream also wakes the probe early ([`DockerCollector::changed`]),
//! so a stopped container shows as stopped without waiting a full interval.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, ContainerSummary};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder, StatsOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use orchestrator_core::report::{ids, ControlDef, Node, NodeControls, Report, TopologyKind};
use orchestrator_core::{LABEL_APP_ID, LABEL_TASK_ID};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{Error, Result};

/// Kubernetes labels the kubelet puts on the containers of a pod.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// The pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The pod's uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";

/// Container controls the probe can execute, by id.
pub const CONTROLS: [(&str, &str, &str, u32); 8] = [
    ("docker_start_container", "Start", "play", 1),
    ("docker_stop_container", "Stop", "stop", 2),
    ("docker_restart_container", "Restart", "redo", 3),
    ("docker_pause_container", "Pause", "pause", 4),
    ("docker_unpause_container", "Unpause", "play", 5),
    ("docker_remove_container", "Remove", "trash", 6),
    ("docker_logs", "Logs", "file-text", 7),
    ("docker_exec_container", "Exec shell", "terminal", 8),
];

/// Environment variables whose names contain one of these (case
/// insensitive) have their values masked in reports.
pub const SECRET_MARKERS: [&str; 8] = [
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
];

/// `NAME=value` with the value masked when the name looks like a secret.
pub fn mask_env(var: &str) -> String {
    let (name, _) = var.split_once('=').unwrap_or((var, ""));
    let upper = name.to_ascii_uppercase();
    if SECRET_MARKERS.iter().any(|m| upper.contains(m)) {
        format!("{name}=********")
    } else {
        var.to_string()
    }
}

/// The facts inspect gives, kept until the container changes.
#[derive(Clone, Debug, Default)]
struct Facts {
    status_line: String,
    name: String,
    hostname: String,
    created: String,
    pid: Option<u32>,
    env: Vec<String>,
    mounts: Vec<String>,
    network_mode: String,
    ips: Vec<String>,
    memory_limit: Option<i64>,
    cpu_limit: Option<f64>,
    cpu_shares: Option<i64>,
    pids_limit: Option<i64>,
    restart_count: i64,
    exit_code: Option<i64>,
}

/// The previous CPU counters of a container, for a percentage.
#[derive(Clone, Copy, Debug)]
struct CpuCounters {
    total: u64,
    system: u64,
}

/// A container's usage from its latest stats sample.
#[derive(Clone, Debug, Default)]
struct Usage {
    at_ms: u64,
    counters: Option<CpuCounters>,
    cpu_percent: Option<f64>,
    memory: Option<u64>,
    memory_limit: Option<u64>,
    net: Option<(u64, u64)>,
    block_io: Option<(u64, u64)>,
    processes: Option<u64>,
}

/// What the collection cycle and the stats task share: the cycle says
/// which containers run, the task keeps their latest usage.
#[derive(Debug, Default)]
struct StatsShared {
    running: Mutex<Vec<String>>,
    usage: Mutex<HashMap<String, Usage>>,
    wake: Notify,
}

/// Collects containers, images, pods and Marathon apps.
pub struct DockerCollector {
    docker: Docker,
    host: String,
    facts: HashMap<String, Facts>,
    dirty: Arc<Mutex<HashSet<String>>>,
    changed: Arc<Notify>,
    events: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<StatsShared>,
    stats_task: Option<tokio::task::JoinHandle<()>>,
    /// Inspect calls in flight at most.
    pub inspect_concurrency: usize,
}

impl std::fmt::Debug for DockerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerCollector")
            .field("host", &self.host)
            .field("containers", &self.facts.len())
            .finish_non_exhaustive()
    }
}

impl Drop for DockerCollector {
    fn drop(&mut self) {
        for t in [self.events.take(), self.stats_task.take()].into_iter().flatten() {
            t.abort();
        }
    }
}

impl DockerCollector {
    /// Connects to the engine at `host_uri` (`unix:///var/run/docker.sock`
    /// or a socket path), negotiates the API version and starts following
    /// its events.
    ///
    /// # Errors
    /// [`Error::Docker`] when the engine does not answer.
    pub async fn connect(host_uri: &str, hostname: &str) -> Result<DockerCollector> {
        let path = host_uri.trim_start_matches("unix://");
        let err = |e: bollard::errors::Error| Error::Docker {
            what: format!("cannot reach the Docker engine at {host_uri}"),
            source: e,
        };
        let docker = Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)
            .map_err(err)?
            .negotiate_version()
            .await
            .map_err(err)?;
        docker.ping().await.map_err(err)?;
        let mut c = DockerCollector {
            docker,
            host: hostname.to_string(),
            facts: HashMap::new(),
            dirty: Arc::default(),
            changed: Arc::default(),
            events: None,
            stats: Arc::default(),
            stats_task: None,
            inspect_concurrency: 8,
        };
        c.follow_events();
        c.stats_task = Some(tokio::spawn(stats_loop(
            c.docker.clone(),
            c.stats.clone(),
            STATS_CONCURRENCY,
            Duration::from_secs(5),
        )));
        Ok(c)
    }

    /// The engine client (shared with the control executor).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Notified when the events stream reports a container change.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    fn follow_events(&mut self) {
        let (docker, dirty, changed) = (self.docker.clone(), self.dirty.clone(), self.changed.clone());
        self.events = Some(tokio::spawn(async move {
            loop {
                let mut filters = HashMap::new();
                filters.insert("type".to_string(), vec!["container".to_string()]);
                let mut stream = docker.events(Some(EventsOptionsBuilder::default().filters(&filters).build()));
                while let Some(ev) = stream.next().await {
                    let Ok(ev) = ev else { break };
                    if let Some(id) = ev.actor.and_then(|a| a.id) {
                        dirty.lock().insert(id);
                        changed.notify_one();
                    }
                }
                // The engine restarted or the stream broke: polls still
                // work; follow again shortly.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    /// One cycle: adds containers, images, pods and services to `report`.
    ///
    /// # Errors
    /// [`Error::Docker`] when the engine cannot list containers.
    pub async fn collect_into(&mut self, report: &mut Report) -> Result<()> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| Error::Docker {
                what: "listing containers".into(),
                source: e,
            })?;
        let dirty: HashSet<String> = std::mem::take(&mut *self.dirty.lock());
        let mut to_inspect = Vec::new();
        for c in &list {
            let Some(id) = &c.id else { continue };
            let line = format!("{:?}|{}", c.state, c.status.as_deref().unwrap_or(""));
            let stale = self.facts.get(id).is_none_or(|f| {
                // "Up 5 minutes" changes every minute; only the first word matters.
                f.status_line.split(' ').next() != line.split(' ').next()
            });
            if stale || dirty.contains(id) {
                to_inspect.push((id.clone(), line));
            }
        }
        let docker = &self.docker;
        let inspected: Vec<(String, String, Option<ContainerInspectResponse>)> =
            futures_util::stream::iter(to_inspect.into_iter().map(|(id, line)| async move {
                let r = docker.inspect_container(&id, None).await.ok();
                (id, line, r)
            }))
            .buffer_unordered(self.inspect_concurrency.max(1))
            .collect()
            .await;
        for (id, line, r) in inspected {
            match r {
                Some(r) => {
                    self.facts.insert(id, facts_of(&r, line));
                }
                None => {
                    self.facts.remove(&id);
                }
            }
        }
        let present: HashSet<&str> = list.iter().filter_map(|c| c.id.as_deref()).collect();
        self.facts.retain(|id, _| present.contains(id.as_str()));
        // Usage comes from the stats task, which samples the running
        // containers in the background: a cycle never waits on the engine.
        let running: Vec<String> = list
            .iter()
            .filter(|c| c.state.map(|s| s.to_string()) == Some("running".into()))
            .filter_map(|c| c.id.clone())
            .collect();
        *self.stats.running.lock() = running;
        self.stats.wake.notify_one();
        let usage = self.stats.usage.lock().clone();

        let now = crate::now_ms();
        self.add_definitions(report);
        for c in &list {
            let Some(id) = &c.id else { continue };
            let facts = self.facts.get(id).cloned().unwrap_or_default();
            let mut node = self.container_node(c, &facts, now);
            if let Some(u) = usage.get(id) {
                add_usage(&mut node, u);
            }
            self.add_groups(report, c, now, &mut node);
            report.topologies.container.insert(ids::container(id), node);
        }
        Ok(())
    }

    fn add_definitions(&self, report: &mut Report) {
        let t = report.topologies.get_mut(TopologyKind::Container);
        for (id, human, icon, rank) in CONTROLS {
            t.controls.insert(
                id.to_string(),
                ControlDef {
                    human: human.to_string(),
                    icon: icon.to_string(),
                    rank,
                },
            );
        }
    }

    fn container_node(&self, c: &ContainerSummary, f: &Facts, now: u64) -> Node {
        let state = c.state.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
        let name = if f.name.is_empty() {
            c.names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default()
        } else {
            f.name.clone()
        };
        let image = c.image.clone().unwrap_or_default();
        let (image_name, image_tag) = split_image(&image);
        let mut n = Node::default()
            .with_latest("docker_container_id", c.id.clone().unwrap_or_default(), now)
            .with_latest("docker_container_name", name, now)
            .with_latest("docker_container_state", state.clone(), now)
            .with_latest("docker_container_status", c.status.clone().unwrap_or_default(), now)
            .with_latest("docker_image_name", image_name, now)
            .with_latest("docker_image_tag", image_tag, now)
            .with_latest("docker_image_id", c.image_id.clone().unwrap_or_default(), now)
            .with_latest("docker_container_command", c.command.clone().unwrap_or_default(), now)
            .with_latest("docker_container_created", f.created.clone(), now)
            .with_latest("docker_container_network_mode", f.network_mode.clone(), now)
            .with_latest("docker_container_restart_count", f.restart_count.to_string(), now)
            .with_parent(TopologyKind::Host, ids::host(&self.host));
        if !f.hostname.is_empty() {
            n.set_latest("docker_container_hostname", f.hostname.clone(), now);
        }
        if let Some(pid) = f.pid.filter(|p| *p > 0) {
            n.set_latest("docker_container_pid", pid.to_string(), now);
        }
        if let Some(code) = f.exit_code {
            n.set_latest("docker_container_exit_code", code.to_string(), now);
        }
        if let Some(m) = f.memory_limit.filter(|m| *m > 0) {
            n.set_latest("docker_memory_limit_bytes", m.to_string(), now);
        }
        if let Some(c) = f.cpu_limit {
            n.set_latest("docker_cpu_limit", format!("{c}"), now);
        }
        if let Some(s) = f.cpu_shares.filter(|s| *s > 0) {
            n.set_latest("docker_cpu_shares", s.to_string(), now);
        }
        if let Some(p) = f.pids_limit.filter(|p| *p > 0) {
            n.set_latest("docker_pids_limit", p.to_string(), now);
        }
        for (k, v) in c.labels.iter().flatten() {
            n.set_latest(&format!("label_{k}"), v.clone(), now);
        }
        for e in &f.env {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            n.set_latest(&format!("env_{k}"), v, now);
        }
        for p in c.ports.iter().flatten() {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            let text = match p.public_port {
                Some(public) => format!(
                    "{}:{public}->{}/{proto}",
                    p.ip.as_deref().unwrap_or("0.0.0.0"),
                    p.private_port
                ),
                None => format!("{}/{proto}", p.private_port),
            };
            n.add_to_set("docker_container_ports", text);
        }
        for m in &f.mounts {
            n.add_to_set("docker_container_mounts", m.clone());
        }
        for ip in &f.ips {
            n.add_to_set("docker_container_ips", ip.clone());
        }
        let controls: &[&str] = match state.as_str() {
            "running" => &[
                "docker_stop_container",
                "docker_restart_container",
                "docker_pause_container",
                "docker_logs",
                "docker_exec_container",
            ],
            "paused" => &["docker_unpause_container", "docker_stop_container", "docker_logs"],
            _ => &["docker_start_container", "docker_remove_container", "docker_logs"],
        };
        n.controls = Some(NodeControls {
            ts: now,
            ids: controls.iter().map(|s| (*s).to_string()).collect(),
        });
        n
    }

    /// Image, pod and service nodes for a container, and its parents in them.
    fn add_groups(&self, report: &mut Report, c: &ContainerSummary, now: u64, node: &mut Node) {
        let host = ids::host(&self.host);
        if let Some(image_id) = c.image_id.as_deref().filter(|i| !i.is_empty()) {
            let (name, tag) = split_image(c.image.as_deref().unwrap_or(""));
            let image = Node::default()
                .with_latest("docker_image_id", image_id, now)
                .with_latest("docker_image_name", name, now)
                .with_latest("docker_image_tag", tag, now)
                .with_parent(TopologyKind::Host, host.clone());
            report
                .topologies
                .container_image
                .insert(ids::container_image(image_id), image);
            node.parents
                .entry(TopologyKind::ContainerImage)
                .or_default()
                .insert(ids::container_image(image_id));
        }
        let labels: BTreeMap<&str, &str> = c
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(uid) = labels.get(LABEL_POD_UID) {
            let mut pod = Node::default()
                .with_latest("kubernetes_uid", *uid, now)
                .with_parent(TopologyKind::Host, host.clone());
            if let Some(name) = labels.get(LABEL_POD_NAME) {
                pod.set_latest("kubernetes_name", *name, now);
            }
            if let Some(ns) = labels.get(LABEL_POD_NAMESPACE) {
                pod.set_latest("kubernetes_namespace", *ns, now);
            }
            report.topologies.pod.insert(ids::pod(uid), pod);
            node.parents.entry(TopologyKind::Pod).or_default().insert(ids::pod(uid));
        }
        if let Some(app) = labels.get(LABEL_APP_ID) {
            let id = ids::service("marathon", app);
            let svc = Node::default()
                .with_latest("name", *app, now)
                .with_latest("service_kind", "marathon", now)
                .with_parent(TopologyKind::Host, host);
            report.topologies.service.insert(id.clone(), svc);
            node.parents.entry(TopologyKind::Service).or_default().insert(id);
        }
        if let Some(task) = labels.get(LABEL_TASK_ID) {
            node.set_latest("task_id", *task, now);
        }
    }
}

/// Stats calls in flight at most.
const STATS_CONCURRENCY: usize = 8;

/// Samples the running containers' stats, one round per collection cycle
/// (at most one a second), with bounded concurrency.
async fn stats_loop(docker: Docker, shared: Arc<StatsShared>, concurrency: usize, timeout: Duration) {
    loop {
        shared.wake.notified().await;
        let started = tokio::time::Instant::now();
        let running = shared.running.lock().clone();
        let docker = &docker;
        let samples: Vec<(String, ContainerStatsResponse)> =
            futures_util::stream::iter(running.iter().cloned().map(|id| async move {
                let opts = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
                let s = tokio::time::timeout(timeout, docker.stats(&id, Some(opts)).next()).await;
                (id, s.ok().flatten().and_then(|r| r.ok()))
            }))
            .buffer_unordered(concurrency.max(1))
            .filter_map(|(id, s)| async move { s.map(|s| (id, s)) })
            .collect()
            .await;
        let now = crate::now_ms();
        {
            let mut usage = shared.usage.lock();
            for (id, s) in samples {
                let previous = usage.get(&id).and_then(|u| u.counters);
                usage.insert(id, usage_of(&s, previous, now));
            }
            usage.retain(|id, _| running.contains(id));
        }
        tokio::time::sleep_until(started + Duration::from_secs(1)).await;
    }
}

fn usage_of(s: &ContainerStatsResponse, previous: Option<CpuCounters>, now: u64) -> Usage {
    let mut u = Usage {
        at_ms: now,
        ..Usage::default()
    };
    if let Some(cpu) = &s.cpu_stats {
        let total = cpu.cpu_usage.as_ref().and_then(|c| c.total_usage).unwrap_or(0);
        let system = cpu.system_cpu_usage.unwrap_or(0);
        let cpus = f64::from(cpu.online_cpus.unwrap_or(1).max(1));
        u.counters = Some(CpuCounters { total, system });
        if let Some(prev) = previous {
            let (dt, ds) = (total.saturating_sub(prev.total), system.saturating_sub(prev.system));
            if ds > 0 {
                u.cpu_percent = Some(dt as f64 / ds as f64 * cpus * 100.0);
            }
        }
    }
    if let Some(m) = &s.memory_stats {
        // Page cache is reclaimable: report what `docker stats` shows.
        let cache = m
            .stats
            .as_ref()
            .and_then(|st| {
                st.get("inactive_file")
                    .or_else(|| st.get("total_inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        u.memory = m.usage.map(|usage| usage.saturating_sub(cache));
        u.memory_limit = m.limit;
    }
    if let Some(nets) = &s.networks {
        u.net = Some((
            nets.values().filter_map(|x| x.rx_bytes).sum(),
            nets.values().filter_map(|x| x.tx_bytes).sum(),
        ));
    }
    if let Some(entries) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
    {
        let sum = |op: &str| -> u64 {
            entries
                .iter()
                .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                .filter_map(|e| e.value)
                .sum()
        };
        u.block_io = Some((sum("read"), sum("write")));
    }
    u.processes = s.pids_stats.as_ref().and_then(|p| p.current);
    u
}

fn add_usage(n: &mut Node, u: &Usage) {
    let at = u.at_ms;
    if let Some(c) = u.cpu_percent {
        n.set_metric("cpu_usage_percent", at, c);
    }
    if let Some(m) = u.memory {
        n.set_metric("memory_usage_bytes", at, m as f64);
    }
    if let Some(l) = u.memory_limit {
        n.set_latest("memory_limit_bytes", l.to_string(), at);
    }
    if let Some((rx, tx)) = u.net {
        n.set_metric("network_rx_bytes", at, rx as f64);
        n.set_metric("network_tx_bytes", at, tx as f64);
    }
    if let Some((r, w)) = u.block_io {
        n.set_metric("block_io_read_bytes", at, r as f64);
        n.set_metric("block_io_write_bytes", at, w as f64);
    }
    if let Some(p) = u.processes {
        n.set_metric("processes", at, p as f64);
    }
}

/// `registry:5000/app:1.2` → (`registry:5000/app`, `1.2`); no tag → `latest`;
/// `name@sha256:…` keeps the digest as the tag.
pub fn split_image(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

fn facts_of(r: &ContainerInspectResponse, status_line: String) -> Facts {
    let hc = r.host_config.as_ref();
    let cpu_limit = hc.and_then(|h| {
        h.nano_cpus
            .filter(|n| *n > 0)
            .map(|n| n as f64 / 1e9)
            .or_else(|| match (h.cpu_quota, h.cpu_period) {
                (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
                _ => None,
            })
    });
    let ips = r
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|nets| {
            nets.values()
                .filter_map(|e| e.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Facts {
        status_line,
        name: r.name.as_deref().unwrap_or("").trim_start_matches('/').to_string(),
        hostname: r.config.as_ref().and_then(|c| c.hostname.clone()).unwrap_or_default(),
        created: r.created.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        pid: r.state.as_ref().and_then(|s| s.pid).and_then(|p| u32::try_from(p).ok()),
        env: r
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .map(|e| e.iter().map(|v| mask_env(v)).collect())
            .unwrap_or_default(),
        mounts: r
            .mounts
            .iter()
            .flatten()
            .map(|m| {
                format!(
                    "{}:{}{}",
                    m.source.as_deref().or(m.name.as_deref()).unwrap_or(""),
                    m.destination.as_deref().unwrap_or(""),
                    if m.rw == Some(false) { ":ro" } else { "" }
                )
            })
            .collect(),
        network_mode: hc.and_then(|h| h.network_mode.clone()).unwrap_or_default(),
        ips,
        memory_limit: hc.and_then(|h| h.memory),
        cpu_limit,
        cpu_shares: hc.and_then(|h| h.cpu_shares),
        pids_limit: hc.and_then(|h| h.pids_limit),
        restart_count: r.restart_count.unwrap_or(0),
        exit_code: r
            .state
            .as_ref()
            .filter(|s| s.running != Some(true))
            .and_then(|s| s.exit_code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask_env("DB_PASSWORD=hunter2"), "DB_PASSWORD=********");
        assert_eq!(mask_env("api_token=abc"), "api_token=********");
        assert_eq!(mask_env("AWS_SECRET_ACCESS_KEY=x"), "AWS_SECRET_ACCESS_KEY=********");
        assert_eq!(mask_env("PATH=/bin"), "PATH=/bin");
        assert_eq!(mask_env("EMPTY"), "EMPTY");
    }

    #[test]
    fn image_names_and_tags() {
        assert_eq!(split_image("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_image("busybox:1.36"), ("busybox".into(), "1.36".into()));
        assert_eq!(
            split_image("registry:5000/team/app:2"),
            ("registry:5000/team/app".into(), "2".into())
        );
        assert_eq!(
            split_image("registry:5000/app"),
            ("registry:5000/app".into(), "latest".into())
        );
        assert_eq!(split_image("app@sha256:ab"), ("app".into(), "sha256:ab".into()));
    }
}
