//! The probe loop: collect every spy interval, publish every publish
//! interval (a full report every [`ProbeConfig::full_every`] publishes,
//! deltas between), and account for its own cost.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::report::{encode, ids, Report};
use orchestrator_core::{BoxError, Collector};
use parking_lot::Mutex;

use crate::controls::{ControlPolicy, Executor};
use crate::docker::DockerCollector;
use crate::host::HostCollector;
use crate::network::NetworkCollector;
use crate::process::ProcessCollector;
use crate::publish::{AppPublisher, PublishConfig};
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
    /// Apps to publish to (`http://host:4040`).
    pub apps: Vec<String>,
    /// How to publish.
    pub publish: PublishConfig,
    /// The Docker engine (`unix:///var/run/docker.sock`), if any.
    pub docker_host: Option<String>,
    /// The procfs mount to read.
    pub proc_root: PathBuf,
    /// Which container controls the apps may run.
    pub controls: ControlPolicy,
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
            publish: PublishConfig::default(),
            docker_host: None,
            proc_root: PathBuf::from("/proc"),
            controls: ControlPolicy::default(),
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
    /// Nodes in the last report.
    pub last_report_nodes: AtomicU64,
    /// Wall time of each collector (and `tag`) in the last cycle, µs.
    pub collector_us: Mutex<Vec<(&'static str, u64)>>,
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

#[async_trait]
impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError> {
        Ok(self.collect_into(report, now_ms)?)
    }
}

#[async_trait]
impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError> {
        Ok(self.collect_into(report, now_ms)?)
    }
}

#[async_trait]
impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError> {
        Ok(self.collect_into(report, now_ms)?)
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

/// A running probe.
pub struct Probe {
    config: ProbeConfig,
    collectors: Vec<Box<dyn Collector>>,
    publishers: Vec<AppPublisher>,
    stats: Arc<ProbeStats>,
    last_published: Option<Report>,
    pending: Option<Report>,
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
                &self.collectors.iter().map(|c| c.name()).collect::<Vec<_>>(),
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
        let http = reqwest::Client::new();
        let publishers = config
            .apps
            .iter()
            .map(|a| AppPublisher::start(a, http.clone(), config.publish.clone()))
            .collect();
        Probe {
            config,
            collectors,
            publishers,
            stats: Arc::default(),
            last_published: None,
            pending: None,
            seq: 0,
            wake: None,
            docker: None,
            last_errors: Mutex::new(Vec::new()),
        }
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

    /// Runs every collector once and joins their facts.
    pub async fn collect(&mut self) -> Report {
        let started = Instant::now();
        let now = crate::now_ms();
        let mut report = Report::new(&self.config.probe_id, &self.config.hostname, now);
        let mut errors = Vec::new();
        let mut timings = Vec::with_capacity(self.collectors.len() + 1);
        let micros = |t: Instant| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        for c in &mut self.collectors {
            let at = Instant::now();
            let outcome = c.collect(&mut report, now).await;
            timings.push((c.name(), micros(at)));
            if let Err(e) = outcome {
                self.stats.collector_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(collector = c.name(), error = %e, "collection failed");
                errors.push(format!("{}: {e}", c.name()));
            }
        }
        *self.last_errors.lock() = errors;
        let at = Instant::now();
        tag::tag(&mut report, &self.config.hostname, now);
        timings.push(("tag", micros(at)));
        *self.stats.collector_us.lock() = timings;
        let took = started.elapsed();
        let s = &self.stats;
        s.cycles.fetch_add(1, Ordering::Relaxed);
        s.last_cycle_us
            .store(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        let (cpu, rss) = self_usage();
        s.cpu_us.store(cpu, Ordering::Relaxed);
        s.rss_bytes.store(rss, Ordering::Relaxed);
        // The probe's own cost, in its host's node.
        let host = report
            .topologies
            .host
            .nodes
            .entry(ids::host(&self.config.hostname))
            .or_default();
        host.set_metric("probe_cpu_seconds", now, cpu as f64 / 1e6);
        host.set_metric("probe_rss_bytes", now, rss as f64);
        host.set_metric("probe_cycle_seconds", now, took.as_secs_f64());
        let dropped: u64 = self
            .publishers
            .iter()
            .map(|p| p.stats().dropped.load(Ordering::Relaxed))
            .sum();
        host.set_metric("probe_reports_dropped", now, dropped as f64);
        report
    }

    /// Sends `report` to every app: full when due or when the app needs
    /// one, otherwise the delta since the previous publish.
    pub fn publish(&mut self, mut report: Report) {
        self.seq += 1;
        report.header.seq = self.seq;
        let due_full = self.last_published.is_none() || self.seq % u64::from(self.config.full_every.max(1)) == 1;
        let mut full_bytes: Option<Arc<Vec<u8>>> = None;
        let mut delta_bytes: Option<Arc<Vec<u8>>> = None;
        let encode_or_log = |r: &Report| match encode(r) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode report");
                None
            }
        };
        for p in &self.publishers {
            let full = due_full || p.needs_full();
            let bytes = if full {
                if full_bytes.is_none() {
                    full_bytes = encode_or_log(&report);
                }
                full_bytes.clone()
            } else {
                if delta_bytes.is_none() {
                    let previous = self.last_published.as_ref().unwrap_or(&report);
                    delta_bytes = encode_or_log(&report.delta_since(previous));
                }
                delta_bytes.clone()
            };
            if let Some(b) = bytes {
                self.stats.last_report_bytes.store(b.len() as u64, Ordering::Relaxed);
                p.enqueue(b, full);
            }
        }
        self.stats
            .last_report_nodes
            .store(report.topologies.node_count() as u64, Ordering::Relaxed);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        self.last_published = Some(report);
    }

    /// Collects every spy interval and publishes every publish interval
    /// (what was collected in between is merged) until `shutdown` resolves.
    /// Container events trigger an early collection, at most once a second.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // One control socket per app, while the probe runs.
        let (stop_controls, controls_stopped) = tokio::sync::watch::channel(false);
        let mut control_tasks = Vec::new();
        if let Some(docker) = self.docker.clone().filter(|_| !self.config.controls.disabled) {
            let executor = Arc::new(Executor::new(docker, self.config.controls.clone()));
            for app in &self.config.apps {
                let (app, token) = (app.clone(), self.config.publish.token.clone());
                let (id, host) = (self.config.probe_id.clone(), self.config.hostname.clone());
                let (executor, mut stopped) = (executor.clone(), controls_stopped.clone());
                control_tasks.push(tokio::spawn(async move {
                    crate::controls::connect(&app, token.as_deref(), &id, &host, executor, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
                }));
            }
        }
        self.cycle_loop(&mut shutdown).await;
        let _ = stop_controls.send(true);
        for t in control_tasks {
            let _ = t.await;
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
            let report = self.collect().await;
            match &mut self.pending {
                Some(p) => p.merge(&report),
                None => self.pending = Some(report),
            }
            let due = is_early
                || last_publish.is_none_or(|t| t.elapsed() + Duration::from_millis(50) >= self.config.publish_interval);
            if due {
                if let Some(r) = self.pending.take() {
                    self.publish(r);
                    last_publish = Some(Instant::now());
                }
            }
        }
    }
}
