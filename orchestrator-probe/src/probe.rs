//! The probe loop: collect every spy interval, publish every publish
//! interval (a full report every [`ProbeConfig::full_every`] publishes,
//! deltas between), and account for its own cost.
//!
//! # Why sources refresh at their own pace
//!
//! On a busy host one source can cost more than the whole budget: ten
//! thousand connections are a 20,000-socket netlink dump, a thousand
//! processes a thousand `stat` reads, and nothing makes either cheaper
//! than that floor. A probe that refreshed everything every second would
//! cost several percent of a core whatever its code, so the probe keeps
//! each collector's last output (its *part*) and spends a CPU budget
//! ([`ProbeConfig::cpu_budget`], 1.5 % of a core by default): every spy
//! interval it refreshes the stalest sources the budget can pay for, as a
//! token bucket measured in the probe's own CPU time, and carries the
//! others, with the timestamps they were seen at. Cheap sources still
//! refresh every interval, costly ones as often as the budget allows, and
//! none less often than [`ProbeConfig::max_staleness`]. On a small host,
//! or at the default 15 s interval, nothing is ever deferred.
//!
//! A delta holds the nodes a refresh changed — a value seen again keeps
//! the time it was first seen, so ten thousand unchanged connections are
//! no change — and a full report merges every part.
//!
//! A collector that keeps state between cycles may write less than its
//! whole output ([`Collector::written`]): nothing when nothing changed, or
//! only the nodes that changed and the ids that are gone, which the probe
//! lays over the part in place ([`Report::merge_patch`]). The network
//! collector does: rebuilding ten thousand endpoints because one socket
//! closed held two copies of them at once, the probe's peak memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::report::{encode, encode_merged, ids, Header, Report, Topologies, TopologyKind};
use orchestrator_core::{BoxError, Collector, Written};
use parking_lot::Mutex;

use crate::apps::{Apps, Endpoint};
use crate::budget::{cpu_us, cpu_us_of, Budget, THREAD};
use crate::controls::{ControlPolicy, Executor, Sockets};
use crate::docker::DockerCollector;
use crate::host::HostCollector;
use crate::network::NetworkCollector;
use crate::process::ProcessCollector;
use crate::publish::{AppPublisher, PublishConfig, PublishStats};
use crate::{tag, Result};

/// What a probe does and where it reports.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Stable id of this probe (defaults to the host name).
    pub probe_id: String,
    /// The host name nodes are scoped by.
    pub hostname: String,
    /// Time between collections (15 s by default; down to 1 s).
    pub spy_interval: Duration,
    /// Time between publishes.
    pub publish_interval: Duration,
    /// A full report every this many publishes.
    pub full_every: u32,
    /// Apps to publish to (`http://host:4040`); a name is every address it
    /// resolves to (see [`crate::apps`]).
    pub apps: Vec<String>,
    /// The DNS server app names are resolved with (`IP:PORT`); the
    /// system's resolver when `None`.
    pub resolver: Option<SocketAddr>,
    /// How often app names are resolved again (10 s).
    pub resolve_interval: Duration,
    /// How to publish.
    pub publish: PublishConfig,
    /// The Docker engine (`unix:///var/run/docker.sock`), if any.
    pub docker_host: Option<String>,
    /// The procfs mount to read.
    pub proc_root: PathBuf,
    /// Which container controls the apps may run.
    pub controls: ControlPolicy,
    /// The share of one core the probe may spend (`0.015`, 1.5 %, by
    /// default: the probe's target is to stay below 2 %, and a refresh
    /// may overrun its estimate); `None` refreshes every source every spy
    /// interval whatever it costs.
    pub cpu_budget: Option<f64>,
    /// However tight the budget, every source is refreshed at least this
    /// often (15 s).
    pub max_staleness: Duration,
}

impl ProbeConfig {
    /// Defaults for this host: 15 s intervals, a full report every 4th
    /// publish, no apps.
    pub fn new(hostname: &str) -> ProbeConfig {
        ProbeConfig {
            probe_id: hostname.to_string(),
            hostname: hostname.to_string(),
            spy_interval: Duration::from_secs(15),
            publish_interval: Duration::from_secs(15),
            full_every: 4,
            apps: Vec::new(),
            resolver: None,
            resolve_interval: Duration::from_secs(10),
            publish: PublishConfig::default(),
            docker_host: None,
            proc_root: PathBuf::from("/proc"),
            controls: ControlPolicy::default(),
            cpu_budget: Some(0.015),
            max_staleness: Duration::from_secs(15),
        }
    }
}

/// The probe's own cost and progress.
#[derive(Debug, Default)]
pub struct ProbeStats {
    /// Collection cycles run.
    pub cycles: AtomicU64,
    /// Duration of the last cycle, µs.
    pub last_cycle_us: AtomicU64,
    /// CPU time the probe process used, µs.
    pub cpu_us: AtomicU64,
    /// Resident memory, bytes.
    pub rss_bytes: AtomicU64,
    /// Collector failures.
    pub collector_errors: AtomicU64,
    /// Reports published (to all apps).
    pub published: AtomicU64,
    /// Size of the last encoded report, bytes.
    pub last_report_bytes: AtomicU64,
    /// Nodes in the last full report.
    pub last_report_nodes: AtomicU64,
    /// Wall time of each collector refreshed (and of the join, `tag`) in
    /// the last cycle, µs.
    pub collector_us: Mutex<Vec<(&'static str, u64)>>,
    /// Source refreshes the CPU budget deferred to a later cycle.
    pub deferred: AtomicU64,
    /// Age of each source's data at the end of the last cycle, ms.
    pub source_age_ms: Mutex<Vec<(&'static str, u64)>>,
    /// Every app endpoint published to now, with its publisher's counters.
    pub apps: Mutex<Vec<(Endpoint, Arc<PublishStats>)>>,
}

/// A collector and what it last produced.
struct Source {
    collector: Box<dyn Collector>,
    /// Its last output, joined; carried while a refresh is deferred.
    part: Report,
    /// When it last ran (ms since the epoch); 0 before its first run.
    ran_ms: u64,
    /// CPU its last run cost, µs.
    cost_us: u64,
}

/// CPU time (µs) and RSS (bytes) of this process.
pub fn self_usage() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let ticks = crate::process::parse_stat(&stat).map_or(0, |s| s.ticks);
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let rss_pages: u64 = statm
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let hz = procfs::ticks_per_second().max(1);
    (ticks * 1_000_000 / hz, rss_pages * procfs::page_size())
}

/// Runs a `/proc` walk where it does not stall other tasks: on a
/// multi-threaded runtime the worker hands its other tasks off first
/// (`block_in_place`); on a single-threaded one (tests, small embeddings)
/// there is no other worker to hand them to, and it runs in place.
fn off_the_reactor<R>(walk: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(walk),
        _ => walk(),
    }
}

#[async_trait]
impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError> {
        Ok(off_the_reactor(|| self.collect_into(report, now_ms))?)
    }
}

#[async_trait]
impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError> {
        Ok(off_the_reactor(|| self.collect_into(report, now_ms))?)
    }
}

#[async_trait]
impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError> {
        Ok(off_the_reactor(|| self.collect_changes(report, now_ms))?)
    }
    fn written(&mut self) -> Written {
        NetworkCollector::written(self)
    }
}

#[async_trait]
impl Collector for DockerCollector {
    fn name(&self) -> &'static str {
        "docker"
    }
    async fn collect(&mut self, report: &mut Report, _now_ms: u64) -> Result<(), BoxError> {
        Ok(self.collect_into(report).await?)
    }
}

/// The nodes a source no longer sees ([`Written::Changes`]).
type Gone = Vec<(TopologyKind, String)>;

/// Which sources a cycle refreshes.
#[derive(Clone, Copy)]
enum Refresh<'a> {
    All,
    Budgeted(Option<&'a str>),
}

/// A running probe.
pub struct Probe {
    config: ProbeConfig,
    sources: Vec<Source>,
    /// The probe's own host node when no collector reports the host.
    own: Report,
    /// What changed since the last publish: the next delta.
    pending: Report,
    budget: Budget,
    /// The join the parts were last tagged with.
    join: tag::Join,
    publishers: Vec<AppPublisher>,
    apps: Arc<Apps>,
    http: reqwest::Client,
    /// The endpoints the resolution follower last found (while running).
    endpoints: Option<tokio::sync::watch::Receiver<Vec<Endpoint>>>,
    stats: Arc<ProbeStats>,
    published_any: bool,
    seq: u64,
    wake: Option<Arc<tokio::sync::Notify>>,
    docker: Option<bollard::Docker>,
    last_errors: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("probe_id", &self.config.probe_id)
            .field(
                "collectors",
                &self.sources.iter().map(|s| s.collector.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// A probe with the standard collectors: host, processes, network and,
    /// when `docker_host` is set and answers, containers. A Docker engine
    /// that does not answer is logged and skipped (`docker()` is `None`).
    pub async fn start(config: ProbeConfig) -> Probe {
        let host = config.hostname.clone();
        let mut collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(HostCollector::new(&host)),
            Box::new(ProcessCollector::with_root(&config.proc_root, &host)),
            Box::new(NetworkCollector::with_root(&config.proc_root, &host)),
        ];
        let (mut wake, mut docker) = (None, None);
        if let Some(uri) = &config.docker_host {
            match DockerCollector::connect(uri, &host).await {
                Ok(d) => {
                    wake = Some(d.changed());
                    docker = Some(d.client().clone());
                    collectors.push(Box::new(d));
                }
                Err(e) => tracing::warn!(error = %e, "no container collection"),
            }
        }
        let mut p = Probe::with_collectors(config, collectors);
        p.wake = wake;
        p.docker = docker;
        p
    }

    /// A probe with the given collectors (embedding, tests).
    pub fn with_collectors(config: ProbeConfig, collectors: Vec<Box<dyn Collector>>) -> Probe {
        let apps = Arc::new(Apps::new(&config.apps, config.resolver));
        let empty = Report::new(&config.probe_id, &config.hostname, 0);
        let mut p = Probe {
            sources: collectors
                .into_iter()
                .map(|collector| Source {
                    collector,
                    part: empty.clone(),
                    ran_ms: 0,
                    cost_us: 0,
                })
                .collect(),
            own: empty.clone(),
            pending: empty,
            budget: Budget::default(),
            join: tag::Join::default(),
            config,
            publishers: Vec::new(),
            http: reqwest::Client::new(),
            endpoints: None,
            stats: Arc::default(),
            published_any: false,
            seq: 0,
            wake: None,
            docker: None,
            last_errors: Mutex::new(Vec::new()),
            apps,
        };
        let given = p.apps.as_given();
        p.set_endpoints(&given);
        p
    }

    /// Publishes to exactly `wanted`: publishers of endpoints gone are
    /// dropped, new endpoints get one (whose first report is full).
    fn set_endpoints(&mut self, wanted: &[Endpoint]) {
        self.publishers.retain(|p| wanted.contains(p.endpoint()));
        for e in wanted {
            if !self.publishers.iter().any(|p| p.endpoint() == e) {
                let p = AppPublisher::start_at(e.clone(), self.http.clone(), self.config.publish.clone());
                self.publishers.push(p);
            }
        }
        *self.stats.apps.lock() = self
            .publishers
            .iter()
            .map(|p| (p.endpoint().clone(), p.shared_stats()))
            .collect();
    }

    /// The engine client when containers are collected (for controls).
    pub fn docker(&self) -> Option<&bollard::Docker> {
        self.docker.as_ref()
    }

    /// The probe's counters.
    pub fn stats(&self) -> Arc<ProbeStats> {
        self.stats.clone()
    }

    /// The publishers, one per app.
    pub fn publishers(&self) -> &[AppPublisher] {
        &self.publishers
    }

    /// The configuration.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Errors of the last cycle's collectors.
    pub fn last_errors(&self) -> Vec<String> {
        self.last_errors.lock().clone()
    }

    /// Refreshes every source now, whatever the budget, and returns the
    /// whole view (every part merged, as a full report would carry it).
    pub async fn collect(&mut self) -> Report {
        self.refresh_all().await;
        self.view()
    }

    /// Refreshes every source now, whatever the budget: one full cycle of
    /// the running probe (what `probe/full_cycle_cpu` measures).
    pub async fn refresh_all(&mut self) {
        self.refresh(Refresh::All).await;
    }

    /// One cycle of the running probe: refreshes the sources the CPU
    /// budget can pay for (stalest first; `force` names a collector to
    /// refresh regardless) and joins them. What changed waits for
    /// [`Probe::publish`].
    pub async fn cycle(&mut self, force: Option<&str>) {
        self.refresh(Refresh::Budgeted(force)).await;
    }

    async fn refresh(&mut self, how: Refresh<'_>) {
        let started = Instant::now();
        let now = crate::now_ms();
        let cpu_at_start = cpu_us();
        let budget = match how {
            Refresh::Budgeted(_) => self.config.cpu_budget.filter(|b| *b > 0.0),
            Refresh::All => None,
        };
        let mut available = budget.map_or(f64::INFINITY, |b| self.budget.update(b, started, cpu_at_start));
        let stale_ms = u64::try_from(self.config.max_staleness.as_millis()).unwrap_or(u64::MAX);
        // A source costing under a tenth of what the budget earns in an
        // interval is not worth deferring.
        let trifle_us = budget.map_or(0.0, |b| b * self.config.spy_interval.as_secs_f64() * 1e6 / 10.0);
        let burst_us = budget.map_or(f64::INFINITY, Budget::cap_us);
        // Stalest first, so a tight budget rotates through the sources.
        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        order.sort_by_key(|&i| self.sources[i].ran_ms);
        let mut errors = Vec::new();
        let mut timings = Vec::with_capacity(self.sources.len() + 1);
        let micros = |t: Instant| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut fresh: Vec<(usize, Report)> = Vec::new();
        // Sources that wrote only what changed, and what they no longer see.
        let mut patches: Vec<(usize, Report, Gone)> = Vec::new();
        // Once the stalest source waits for the budget, younger ones wait
        // too (trifles aside): cheap sources must not starve a costly one.
        let mut saving = false;
        for i in order {
            let s = &mut self.sources[i];
            let name = s.collector.name();
            // A source costing more than the bucket holds runs when it is full.
            let cost = (s.cost_us as f64).min(burst_us);
            let due = s.ran_ms == 0
                || cost <= trifle_us
                || (!saving && available >= cost)
                || now.saturating_sub(s.ran_ms) >= stale_ms
                || matches!(how, Refresh::Budgeted(Some(f)) if f == name);
            if !due {
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                saving = true;
                continue;
            }
            let (at, thread) = (Instant::now(), std::thread::current().id());
            let (cpu_thread, cpu_all) = (cpu_us_of(THREAD), cpu_us());
            let mut part = Report::new(&self.config.probe_id, &self.config.hostname, now);
            let outcome = s.collector.collect(&mut part, now).await;
            // This thread's CPU: what the rest of the process does
            // meanwhile is not this source's cost (the budget still pays
            // for it). A collector resumed on another thread is charged
            // the whole process's.
            s.cost_us = if std::thread::current().id() == thread {
                cpu_us_of(THREAD).saturating_sub(cpu_thread)
            } else {
                cpu_us().saturating_sub(cpu_all)
            };
            s.ran_ms = now;
            available -= s.cost_us as f64;
            timings.push((name, micros(at)));
            if let Err(e) = outcome {
                self.stats.collector_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(collector = name, error = %e, "collection failed");
                errors.push(format!("{name}: {e}"));
            }
            match s.collector.written() {
                // Nothing new: its last output stands.
                Written::Nothing => {}
                Written::All => fresh.push((i, part)),
                Written::Changes { gone } => patches.push((i, part, gone)),
            }
        }
        *self.last_errors.lock() = errors;

        // The join indexes every part, fresh or carried, and tags the fresh.
        let at = Instant::now();
        let join = {
            // A patched source's part is indexed as it was, with its
            // changes: a node it no longer sees may still be joined once.
            let mut parts: Vec<&Report> = fresh.iter().map(|(_, p)| p).collect();
            parts.extend(patches.iter().map(|(_, p, _)| p));
            parts.extend(
                self.sources
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !fresh.iter().any(|(j, _)| j == i))
                    .map(|(_, s)| &s.part),
            );
            tag::Join::of(&parts)
        };
        // A join that changed (a container came or went) re-tags the
        // carried parts too.
        if join != self.join {
            for (i, s) in self.sources.iter_mut().enumerate() {
                if fresh.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                let pending = &mut self.pending;
                join.apply_with(&mut s.part, &self.config.hostname, now, |kind, id, node| {
                    pending.topologies.get_mut(kind).insert(id.to_string(), node.clone());
                });
            }
        }
        for (i, mut part) in fresh {
            join.apply(&mut part, &self.config.hostname, now);
            // A value seen again keeps the time it was first seen, so an
            // unchanged node is no change and stays out of the delta.
            self.pending.merge_refresh(&mut part, &self.sources[i].part);
            self.sources[i].part = part;
        }
        for (i, mut patch, gone) in patches {
            join.apply(&mut patch, &self.config.hostname, now);
            self.pending.merge_patch(&mut self.sources[i].part, patch, &gone);
        }
        self.join = join;
        timings.push(("tag", micros(at)));
        *self.stats.collector_us.lock() = timings;
        *self.stats.source_age_ms.lock() = self
            .sources
            .iter()
            .map(|s| (s.collector.name(), now.saturating_sub(s.ran_ms)))
            .collect();

        let took = started.elapsed();
        let s = &self.stats;
        s.cycles.fetch_add(1, Ordering::Relaxed);
        s.last_cycle_us
            .store(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        let (cpu, rss) = self_usage();
        s.cpu_us.store(cpu, Ordering::Relaxed);
        s.rss_bytes.store(rss, Ordering::Relaxed);
        let dropped: u64 = self
            .publishers
            .iter()
            .map(|p| p.stats().dropped.load(Ordering::Relaxed))
            .sum();
        // The probe's own cost, in its host's node (in the part that has
        // it, so the node published whole stays whole).
        let host_id = ids::host(&self.config.hostname);
        let Probe { sources, own, .. } = self;
        let holder = sources
            .iter_mut()
            .map(|s| &mut s.part)
            .find(|p| p.topologies.host.nodes.contains_key(&host_id))
            .unwrap_or(own);
        let host = holder.topologies.host.nodes.entry(host_id.clone()).or_default();
        host.set_metric("probe_cpu_seconds", now, cpu as f64 / 1e6);
        host.set_metric("probe_rss_bytes", now, rss as f64);
        host.set_metric("probe_cycle_seconds", now, took.as_secs_f64());
        host.set_metric("probe_reports_dropped", now, dropped as f64);
        let host = host.clone();
        self.pending.topologies.host.insert(host_id, host);
        self.pending.header.ts = self.pending.header.ts.max(now);
    }

    /// What a full report would carry now: every part merged, with what
    /// changed since the last publish laid over (the metric samples of
    /// the cycles in between).
    pub fn view(&self) -> Report {
        let mut full = Report::new(&self.config.probe_id, &self.config.hostname, self.pending.header.ts);
        for s in &self.sources {
            full.topologies.merge(&s.part.topologies);
        }
        full.topologies.merge(&self.own.topologies);
        full.topologies.merge(&self.pending.topologies);
        full
    }

    /// Sends what was collected to every app: a full report when due or
    /// when the app needs one, otherwise the delta since the previous
    /// publish.
    pub fn publish(&mut self) {
        if let Some(rx) = &mut self.endpoints {
            if rx.has_changed().unwrap_or(false) {
                let wanted = rx.borrow_and_update().clone();
                self.set_endpoints(&wanted);
            }
        }
        self.seq += 1;
        let due_full = !self.published_any || self.seq % u64::from(self.config.full_every.max(1)) == 1;
        let mut full_bytes: Option<Arc<Vec<u8>>> = None;
        let mut delta_bytes: Option<Arc<Vec<u8>>> = None;
        let encode_or_log = |r: &Report| match encode(r) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode report");
                None
            }
        };
        let mut nodes = 0;
        for p in &self.publishers {
            let full = due_full || p.needs_full();
            let bytes = if full {
                if full_bytes.is_none() {
                    // Encoded from the parts in place: a merged copy
                    // would double the probe's memory at every full publish.
                    let header = Header {
                        seq: self.seq,
                        full: true,
                        ..self.pending.header.clone()
                    };
                    let mut parts: Vec<&Topologies> = self.sources.iter().map(|s| &s.part.topologies).collect();
                    parts.push(&self.own.topologies);
                    nodes = parts.iter().map(|t| t.node_count()).sum();
                    parts.push(&self.pending.topologies);
                    full_bytes = match encode_merged(&header, &parts) {
                        Ok(b) => Some(Arc::new(b)),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode report");
                            None
                        }
                    };
                }
                full_bytes.clone()
            } else {
                if delta_bytes.is_none() {
                    self.pending.header.seq = self.seq;
                    self.pending.header.full = false;
                    delta_bytes = encode_or_log(&self.pending);
                }
                delta_bytes.clone()
            };
            if let Some(b) = bytes {
                self.stats.last_report_bytes.store(b.len() as u64, Ordering::Relaxed);
                p.enqueue(b, full);
            }
        }
        if nodes > 0 {
            self.stats.last_report_nodes.store(nodes as u64, Ordering::Relaxed);
        }
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        self.published_any = true;
        let ts = self.pending.header.ts;
        self.pending = Report::new(&self.config.probe_id, &self.config.hostname, ts);
    }

    /// Collects every spy interval and publishes every publish interval
    /// (what was collected in between is merged) until `shutdown` resolves.
    /// Container events trigger an early collection, at most once a second.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // One control socket per app endpoint, while the probe runs.
        let mut sockets = self
            .docker
            .clone()
            .filter(|_| !self.config.controls.disabled)
            .map(|docker| {
                let executor = Arc::new(Executor::new(docker, self.config.controls.clone()));
                let token = self.config.publish.token.clone();
                Sockets::new(
                    executor,
                    token,
                    &self.config.probe_id,
                    &self.config.hostname,
                    stopped.clone(),
                )
            });
        let mut current: Vec<Endpoint> = self.publishers.iter().map(|p| p.endpoint().clone()).collect();
        let mut follower = None;
        if self.apps.has_names() {
            // Resolved before the first publish, so every replica gets the
            // first full report.
            if let Ok(found) = tokio::time::timeout(Duration::from_secs(5), self.apps.resolve(&current)).await {
                current = found;
            }
            self.set_endpoints(&current);
            let (found_tx, found_rx) = tokio::sync::watch::channel(current.clone());
            self.endpoints = Some(found_rx);
            let (apps, every, mut stopped) = (self.apps.clone(), self.config.resolve_interval, stopped.clone());
            let mut sockets = sockets.take();
            if let Some(s) = &mut sockets {
                s.set(&current);
            }
            follower = Some(tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        _ = stopped.wait_for(|s| *s) => break,
                        next = async {
                            tokio::time::sleep(every).await;
                            apps.resolve(&current).await
                        } => next,
                    };
                    if next != current {
                        tracing::info!(
                            endpoints = ?next.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            "app endpoints changed"
                        );
                        if let Some(s) = &mut sockets {
                            s.set(&next);
                        }
                        let _ = found_tx.send(next.clone());
                        current = next;
                    }
                }
                sockets
            }));
        } else if let Some(s) = &mut sockets {
            s.set(&current);
        }
        self.cycle_loop(&mut shutdown).await;
        let _ = stop.send(true);
        let sockets = match follower {
            Some(f) => f.await.ok().flatten(),
            None => sockets,
        };
        if let Some(s) = sockets {
            s.closed().await;
        }
    }

    async fn cycle_loop(&mut self, shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>) {
        let mut spy = tokio::time::interval(self.config.spy_interval.max(Duration::from_millis(100)));
        spy.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_publish: Option<Instant> = None;
        let mut last_early = Instant::now();
        let wake = self.wake.clone();
        loop {
            let early = async {
                match &wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            };
            let is_early = tokio::select! {
                () = shutdown.as_mut() => return,
                _ = spy.tick() => false,
                () = early => true,
            };
            if is_early {
                if last_early.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                last_early = Instant::now();
            }
            // Container events refresh the containers at once.
            self.cycle(is_early.then_some("docker")).await;
            let due = is_early
                || last_publish.is_none_or(|t| t.elapsed() + Duration::from_millis(50) >= self.config.publish_interval);
            if due {
                self.publish();
                last_publish = Some(Instant::now());
            }
        }
    }
}
