//! The all-in-one's command line, and the work directory it decides on.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use orchestrator::core::Resources;

use crate::{demo, support};

/// Run a master, an agent, the Marathon-style scheduler, a probe and the
/// topology app in one process.
#[derive(Parser)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    pub helper: Option<demo::Helper>,
    /// Address every server listens on (and the agent advertises).
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Port of the master (Mesos v1 API, /master/state).
    #[arg(long = "master-port", default_value_t = 5050)]
    pub master_port: u16,
    /// Port of the agent (/state, sandboxes).
    #[arg(long = "agent-port", default_value_t = 5051)]
    pub agent_port: u16,
    /// Port of the scheduler's Marathon API (/v2/apps).
    #[arg(long = "marathon-port", default_value_t = 8080)]
    pub marathon_port: u16,
    /// Port of the topology app (/api/topology).
    #[arg(long = "app-port", default_value_t = 4040)]
    pub app_port: u16,
    /// Port of the Mesos-DNS-compatible DNS server (UDP and TCP).
    #[arg(long = "dns-port", default_value_t = 8053)]
    pub dns_port: u16,
    /// Port of the DNS server's Mesos-DNS HTTP API (/v1/hosts, /v1/services).
    #[arg(long = "dns-http-port", default_value_t = 8123)]
    pub dns_http_port: u16,
    /// Run no DNS server.
    #[arg(long = "no-dns")]
    pub no_dns: bool,
    /// Run no load balancer on the apps' service ports.
    #[arg(long = "no-lb")]
    pub no_lb: bool,
    /// Keep state here between runs: the scheduler's apps, the agent's
    /// sandboxes, the topology app's saved filters and audit log. Without
    /// it everything lives in a temporary directory removed at exit.
    #[arg(long = "work-dir")]
    pub work_dir: Option<PathBuf>,
    /// Keep the scheduler's state in ZooKeeper and elect the master and the
    /// scheduler there (`zk://HOST:PORT[,HOST:PORT]/path`).
    #[arg(long)]
    pub zk: Option<String>,
    /// Masters to run (with --zk): more than one run as processes of their
    /// own on --master-port, --master-port + 1, …, elected on ZooKeeper in
    /// Mesos's layout, so `kill -9` of the leader shows a failover.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub masters: u16,
    /// ZooKeeper session timeout of the replicated masters: how long a dead
    /// leader goes unnoticed (`10secs`, as Mesos).
    #[arg(long = "zk-session-timeout", default_value = "10secs", value_parser = support::parse_duration)]
    pub zk_session_timeout: Duration,
    /// Internal: run only a replicated master on this port (how the
    /// all-in-one starts its masters).
    #[arg(long = "run-master", hide = true)]
    pub run_master: Option<u16>,
    /// What the agent offers, in the Mesos flag form (default: this
    /// machine's cores and memory less 1 GB, 10 GB of disk, ports 31000-32000).
    #[arg(long)]
    pub resources: Option<Resources>,
    /// The Docker engine; without an answer there, tasks run as processes.
    #[arg(
        long = "docker-host",
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Do not use Docker at all.
    #[arg(long = "no-docker")]
    pub no_docker: bool,
    /// Time between the probe's collections (and publishes).
    #[arg(long = "spy-interval", default_value = "3s", value_parser = support::parse_duration)]
    pub spy_interval: Duration,
    /// Tokens file for the topology app (`TOKEN ROLE [NAME]` lines); needed
    /// when --ip is not a loopback address.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Deploy two sample apps: a web service with health checks (two
    /// instances) and a client that finds it through the scheduler's API.
    #[arg(long)]
    pub demo: bool,
    /// The image the demo's web service runs in when Docker is used; when
    /// the engine does not have it, the demo runs processes instead.
    #[arg(long = "demo-image", default_value = "busybox:latest")]
    pub demo_image: String,
}

/// Where state goes: the given directory, or a temporary one removed at exit.
pub struct WorkDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl WorkDir {
    pub fn new(given: Option<PathBuf>) -> anyhow::Result<WorkDir> {
        let (path, keep) = match given {
            Some(p) => (p, true),
            None => (
                std::env::temp_dir().join(format!("orchestrator-all-in-one-{}", std::process::id())),
                false,
            ),
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating the work directory {}", path.display()))?;
        let path = path.canonicalize()?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// This machine's cores and memory (less 1 GB, or half when that is less).
pub fn detected_resources() -> anyhow::Result<Resources> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(2048, |kb| kb / 1024);
    let mem = total_mb - (total_mb / 2).min(1024);
    Ok(format!("cpus:{cpus};mem:{mem};disk:10240;ports:[31000-32000]").parse()?)
}
