//! A Mesos-style agent running tasks as processes under cgroups.
//!
//! `cargo run --release --example agent -- --master 127.0.0.1:5050 --ip 127.0.0.1 --port 5051 --resources 'cpus:4;mem:4096;ports:[31000-32000]' --work-dir DIR`

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use orchestrator::core::{Attributes, Containerizer, Resources};
use orchestrator::mesos::{Agent, AgentConfig, DockerContainerizer, MasterDetector, ProcessContainerizer, ZkUrl};

/// Run an agent that registers with a master and runs its tasks.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The master, as HOST:PORT or a URL; `zk://HOST:PORT[,…]/mesos` follows
    /// the leading master of a replicated set.
    #[arg(long, env = "MESOS_MASTER")]
    master: String,
    /// ZooKeeper session timeout when following the masters there.
    #[arg(long = "zk-session-timeout", alias = "zk_session_timeout", default_value = "10secs", value_parser = support::parse_duration)]
    zk_session_timeout: std::time::Duration,
    /// Address to serve the agent's endpoints on, advertised to the master.
    #[arg(long, env = "MESOS_IP", default_value = "127.0.0.1")]
    ip: String,
    /// Port of the agent's endpoints (/state, /files), advertised to the master.
    #[arg(long, env = "MESOS_PORT", default_value_t = 5051)]
    port: u16,
    /// Resources offered, in the Mesos flag form.
    #[arg(
        long,
        env = "MESOS_RESOURCES",
        default_value = "cpus:1;mem:1024;disk:1024;ports:[31000-32000]"
    )]
    resources: Resources,
    /// Attributes for placement constraints (`rack:r1;zone:a`).
    #[arg(long, env = "MESOS_ATTRIBUTES", default_value = "")]
    attributes: Attributes,
    /// Directory for sandboxes and checkpoints.
    #[arg(long = "work-dir", alias = "work_dir", env = "MESOS_WORK_DIR")]
    work_dir: PathBuf,
    /// Containerizers to try in order: the first that can run a task runs
    /// it (`docker` for tasks with an image, `mesos` for processes).
    #[arg(long, default_value = "mesos")]
    containerizers: String,
    /// The Docker engine for the docker containerizer.
    #[arg(
        long = "docker-host",
        alias = "docker_host",
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
    /// How long the sandbox of an ended task is kept at most (less when
    /// the disk fills, see --gc-disk-headroom).
    #[arg(long = "gc-delay", alias = "gc_delay", default_value = "1weeks", value_parser = support::parse_duration)]
    gc_delay: std::time::Duration,
    /// Share of the disk kept free: with the disk U full, ended sandboxes
    /// stay gc-delay × max(0, 1 − headroom − U) at most.
    #[arg(long = "gc-disk-headroom", alias = "gc_disk_headroom", default_value_t = 0.1, value_parser = headroom)]
    gc_disk_headroom: f64,
    /// How often the disk is checked and old sandboxes removed.
    #[arg(long = "disk-watch-interval", alias = "disk_watch_interval", default_value = "1mins", value_parser = support::parse_duration)]
    disk_watch_interval: std::time::Duration,
}

/// A share of the disk, 0 to 1.
fn headroom(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|h| (0.0..=1.0).contains(h))
        .ok_or_else(|| format!("`{s}` is not a share between 0 and 1"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args = Args::parse();
    let mut chain: Vec<Arc<dyn Containerizer>> = Vec::new();
    for name in args.containerizers.split(',').map(str::trim) {
        match name {
            "mesos" => chain.push(Arc::new(ProcessContainerizer::new(&args.work_dir)?)),
            "docker" => {
                let scope = args.work_dir.canonicalize().unwrap_or_else(|_| args.work_dir.clone());
                chain.push(Arc::new(
                    DockerContainerizer::connect(&args.docker_host, &scope.to_string_lossy()).await?,
                ));
            }
            other => anyhow::bail!("unknown containerizer `{other}` (available: docker, mesos)"),
        }
    }
    let (master, detector) = if args.master.starts_with("zk://") {
        let url: ZkUrl = args.master.parse()?;
        let detector = MasterDetector::connect(&url, args.zk_session_timeout).await?;
        (url.to_string(), Some(detector))
    } else if args.master.contains("://") {
        (args.master.clone(), None)
    } else {
        (format!("http://{}", args.master), None)
    };
    let mut config = AgentConfig::new(master.trim_end_matches('/'), args.resources, &args.work_dir);
    config.detector = detector;
    config.hostname = args.ip;
    config.port = args.port;
    config.attributes = args.attributes;
    config.gc_delay = args.gc_delay;
    config.gc_disk_headroom = args.gc_disk_headroom;
    config.disk_watch_interval = args.disk_watch_interval;
    let listen = format!("{}:{}", config.hostname, config.port);
    let agent = Agent::new(config, chain);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "agent serving http://{} and registering with {master}",
        listener.local_addr()?
    );
    let http = axum::serve(listener, agent.router());
    tokio::select! {
        r = agent.clone().run() => r?,
        r = http => r?,
        _ = support::shutdown_signal() => println!("agent stopped (tasks keep running)"),
    }
    Ok(())
}
