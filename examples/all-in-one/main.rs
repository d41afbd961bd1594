//! The whole platform in one process: a master, one agent, the
//! Marathon-style scheduler, a probe and the topology app.
//!
//! `cargo run --release --example all-in-one -- --demo`
//!
//! Ctrl-C (or SIGTERM) stops the scheduler, kills every task and removes
//! its container, then stops the servers: nothing is left running. With
//! `--work-dir` the scheduler's apps (and the topology app's saved filters
//! and audit log) survive restarts, and a restart brings the apps back.
//! With `--zk` the scheduler keeps its state in ZooKeeper, and the master
//! and the scheduler each win a leader election before they serve.

#[path = "../support/mod.rs"]
mod support;

mod demo;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use orchestrator::core::{Containerizer, FileStore, MemStore, Resources, StateStore};
use orchestrator::mesos::marathon::{ha, http, Marathon, MarathonConfig};
use orchestrator::mesos::{
    Agent, AgentConfig, DockerContainerizer, DrfAllocator, LeaderElection, Leadership, Master, MasterClient,
    MasterConfig, MasterHandle, ProcessContainerizer, ZkStore,
};
use orchestrator::probe::{Probe, ProbeConfig, PublishConfig};
use orchestrator::topology::server::{check_exposure, App, AppConfig, Role, Token, Tokens};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Run a master, an agent, the Marathon-style scheduler, a probe and the
/// topology app in one process.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    helper: Option<demo::Helper>,
    /// Address every server listens on (and the agent advertises).
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// Port of the master (Mesos v1 API, /master/state).
    #[arg(long = "master-port", default_value_t = 5050)]
    master_port: u16,
    /// Port of the agent (/state, sandboxes).
    #[arg(long = "agent-port", default_value_t = 5051)]
    agent_port: u16,
    /// Port of the scheduler's Marathon API (/v2/apps).
    #[arg(long = "marathon-port", default_value_t = 8080)]
    marathon_port: u16,
    /// Port of the topology app (/api/topology).
    #[arg(long = "app-port", default_value_t = 4040)]
    app_port: u16,
    /// Keep state here between runs: the scheduler's apps, the agent's
    /// sandboxes, the topology app's saved filters and audit log. Without
    /// it everything lives in a temporary directory removed at exit.
    #[arg(long = "work-dir")]
    work_dir: Option<PathBuf>,
    /// Keep the scheduler's state in ZooKeeper and elect the master and the
    /// scheduler there (`zk://HOST:PORT[,HOST:PORT]/path`).
    #[arg(long)]
    zk: Option<String>,
    /// What the agent offers, in the Mesos flag form (default: this
    /// machine's cores and memory less 1 GB, 10 GB of disk, ports 31000-32000).
    #[arg(long)]
    resources: Option<Resources>,
    /// The Docker engine; without an answer there, tasks run as processes.
    #[arg(
        long = "docker-host",
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
    /// Do not use Docker at all.
    #[arg(long = "no-docker")]
    no_docker: bool,
    /// Time between the probe's collections (and publishes).
    #[arg(long = "spy-interval", default_value = "3s", value_parser = support::parse_duration)]
    spy_interval: Duration,
    /// Tokens file for the topology app (`TOKEN ROLE [NAME]` lines); needed
    /// when --ip is not a loopback address.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Deploy two sample apps: a web service with health checks (two
    /// instances) and a client that finds it through the scheduler's API.
    #[arg(long)]
    demo: bool,
    /// The image the demo's web service runs in when Docker is used; when
    /// the engine does not have it, the demo runs processes instead.
    #[arg(long = "demo-image", default_value = "busybox:latest")]
    demo_image: String,
}

/// Where state goes: the given directory, or a temporary one removed at exit.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn new(given: Option<PathBuf>) -> anyhow::Result<WorkDir> {
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
fn detected_resources() -> anyhow::Result<Resources> {
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

async fn bind(ip: IpAddr, port: u16, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .with_context(|| format!("cannot listen on {ip}:{port} for the {what} (choose another with {flag})"))
}

/// A token nobody else knows, for the probe this process runs.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Serves `router` until `stop` turns true.
fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    })
}

/// Waits (up to 30 s) until the scheduler here leads, as its own
/// `/v2/leader` says; another process may hold the leadership for longer.
async fn wait_for_scheduler_leadership(marathon_url: &str, me: &str) {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let leader = match http.get(format!("{marathon_url}/v2/leader")).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["leader"].as_str().map(str::to_string)),
            Err(_) => None,
        };
        if leader.as_deref() == Some(me) {
            return;
        }
        if std::time::Instant::now() > deadline {
            match leader {
                Some(other) => eprintln!("the scheduler is a standby: {other} leads and gets the API calls"),
                None => eprintln!("the scheduler has not been elected yet"),
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(helper) = args.helper {
        return demo::run(helper).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let ip = args.ip;
    let url = |port: u16| format!("http://{}", SocketAddr::new(ip, port));
    let (master_url, agent_url, marathon_url, app_url) = (
        url(args.master_port),
        url(args.agent_port),
        url(args.marathon_port),
        url(args.app_port),
    );
    // Every port first: a busy one fails before anything starts.
    let master_listener = bind(ip, args.master_port, "master", "--master-port").await?;
    let agent_listener = bind(ip, args.agent_port, "agent", "--agent-port").await?;
    let marathon_listener = bind(ip, args.marathon_port, "scheduler", "--marathon-port").await?;
    let app_listener = bind(ip, args.app_port, "topology app", "--app-port").await?;
    let work = WorkDir::new(args.work_dir.clone())?;
    let zk = args.zk.as_deref().map(|u| support::parse_zk_url(u, "/orchestrator"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();

    // The master, elected first when there is a ZooKeeper.
    let mut master_leadership: Option<Leadership> = match &zk {
        Some((servers, root)) => {
            let election = LeaderElection::connect(servers, &format!("{root}/master/leader")).await?;
            if let Some(leader) = election.leader().await? {
                eprintln!("waiting for the master at {leader} to step down (leader election in {servers}{root}/master/leader)");
            }
            Some(election.campaign(&master_url).await?)
        }
        None => None,
    };
    let allocation_interval = Duration::from_secs(1);
    let master_id = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let master = MasterHandle::new(
        Master::new(
            MasterConfig {
                master_id,
                ..MasterConfig::default()
            },
            DrfAllocator::builder()
                .allocation_interval(allocation_interval)
                .build()?,
        ),
        allocation_interval,
    );
    let master_loops = tokio::spawn(master.clone().run_loops());
    servers.push(serve(master_listener, master.router(), stop_rx.clone()));

    // The agent: Docker for tasks with an image when the engine answers,
    // processes under cgroups for the rest.
    let agent_dir = work.path.join("agent");
    let mut chain: Vec<Arc<dyn Containerizer>> = Vec::new();
    let mut docker: Option<Arc<DockerContainerizer>> = None;
    if !args.no_docker {
        match DockerContainerizer::connect(&args.docker_host, &agent_dir.to_string_lossy()).await {
            Ok(d) => {
                let d = Arc::new(d);
                chain.push(d.clone());
                docker = Some(d);
            }
            Err(e) => eprintln!("no Docker: {e}; tasks run as processes"),
        }
    }
    chain.push(Arc::new(ProcessContainerizer::new(&agent_dir)?));
    let resources = match args.resources.clone() {
        Some(r) => r,
        None => detected_resources()?,
    };
    let mut agent_config = AgentConfig::new(&master_url, resources.clone(), &agent_dir);
    agent_config.hostname = ip.to_string();
    agent_config.port = args.agent_port;
    let agent = Agent::new(agent_config, chain);
    servers.push(serve(agent_listener, agent.router(), stop_rx.clone()));
    let agent_run = tokio::spawn(agent.clone().run());

    // The scheduler, on the master in this process.
    let client: Arc<dyn MasterClient> = Arc::new(master.clone());
    let info = http::ApiInfo {
        master: master_url.clone(),
        http_address: SocketAddr::new(ip, args.marathon_port).to_string(),
    };
    let (marathon_router, marathon_run, state_where) = match &zk {
        Some((zk_servers, root)) => {
            let root = format!("{root}/marathon");
            let store: Arc<dyn StateStore> = Arc::new(ZkStore::connect(zk_servers, &root).await?);
            let election = LeaderElection::connect(zk_servers, &format!("{root}/leader")).await?;
            let candidate = ha::Candidate {
                client,
                store,
                config: MarathonConfig::default(),
                info,
            };
            let (router, run) = ha::serve_elected(election, candidate);
            (router, run, format!("ZooKeeper {zk_servers}{root}"))
        }
        None => {
            let (store, state_where): (Arc<dyn StateStore>, String) = if work.keep {
                let dir = work.path.join("marathon");
                (Arc::new(FileStore::open(&dir)?), format!("{}", dir.display()))
            } else {
                (
                    Arc::new(MemStore::new()),
                    "memory (give --work-dir or --zk to keep it)".into(),
                )
            };
            let (marathon, run) = Marathon::start(client, store, MarathonConfig::default()).await?;
            (http::router(marathon, info), run, state_where)
        }
    };
    servers.push(serve(marathon_listener, marathon_router, stop_rx.clone()));

    // The topology app and this host's probe.
    let probe_token = random_token();
    let mut tokens = match &args.tokens {
        Some(path) => Tokens::load(path)?,
        None => Tokens::default(),
    };
    if !tokens.is_empty() {
        tokens.push(Token {
            token: probe_token.clone(),
            role: Role::Probe,
            name: "all-in-one probe".into(),
        });
    }
    let topology_dir = work.keep.then(|| work.path.join("topology"));
    let app_config = AppConfig {
        tokens,
        data_dir: topology_dir.clone(),
        audit_log: topology_dir.as_ref().map(|d| d.join("audit.log")),
        publish_interval: args.spy_interval,
        ..AppConfig::default()
    };
    check_exposure(&app_config, SocketAddr::new(ip, args.app_port))?;
    if let Some(dir) = &topology_dir {
        std::fs::create_dir_all(dir)?;
    }
    let app = App::new(app_config)?;
    let app_cleanup = tokio::spawn(app.clone().cleanup_loop());
    servers.push(serve(app_listener, app.router(), stop_rx.clone()));
    let hostname = orchestrator::probe::HostInfo::collect()?.hostname;
    let mut probe_config = ProbeConfig::new(&hostname);
    probe_config.apps = vec![app_url.clone()];
    probe_config.spy_interval = args.spy_interval;
    probe_config.publish_interval = args.spy_interval;
    probe_config.docker_host = docker.is_some().then(|| args.docker_host.clone());
    probe_config.publish = PublishConfig {
        token: Some(probe_token),
        ..PublishConfig::default()
    };
    let probe = Probe::start(probe_config).await;
    let probe_run = {
        let mut stop = stop_rx.clone();
        tokio::spawn(probe.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        }))
    };

    // Ready once the agent is in.
    for _ in 0..200 {
        if agent.registered() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !agent.registered() {
        eprintln!("the agent has not registered yet; it keeps trying");
    }
    if zk.is_some() {
        wait_for_scheduler_leadership(&marathon_url, &SocketAddr::new(ip, args.marathon_port).to_string()).await;
    }
    let containerizers = if docker.is_some() {
        format!(
            "Docker at {} for tasks with an image, processes for the rest",
            args.docker_host
        )
    } else {
        "processes (no Docker)".to_string()
    };
    println!("orchestrator all-in-one is up");
    if orchestrator::topology::server::ui_built() {
        println!("  web UI    {app_url}/    the topology: processes, containers, hosts, services");
    } else {
        println!("  web UI    not built (install Node.js and npm, then rebuild); the API is at {app_url}/api/topology");
    }
    println!("  master    {master_url}    /master/state, /api/v1/scheduler");
    println!("  agent     {agent_url}    /state  offering {resources}");
    println!("  marathon  {marathon_url}    /v2/apps, /v2/tasks");
    println!("  topology  {app_url}    /api/topology, /api/topology/processes");
    println!("  tasks run as: {containerizers}");
    println!("  scheduler state in {state_where}");
    println!("Ctrl-C stops everything, tasks and containers included.");
    if args.demo {
        let image = match &docker {
            Some(d) if d.has_image(&args.demo_image).await => Some(args.demo_image.as_str()),
            Some(_) => {
                eprintln!(
                    "demo: the Docker engine has no {} image (docker pull it, or give --demo-image); the demo runs processes",
                    args.demo_image
                );
                None
            }
            None => None,
        };
        match demo::deploy(&marathon_url, ip, image).await {
            Ok(said) => println!("{said}"),
            Err(e) => eprintln!("demo: {e:#}"),
        }
    }

    // Run until a signal, or until this process stops leading.
    let failed = {
        let lost = async {
            match &mut master_leadership {
                Some(l) => l.lost().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = support::shutdown_signal() => None,
            () = lost => Some("this process lost the master's leadership".to_string()),
            r = agent_run => Some(format!("the agent stopped: {r:?}")),
        }
    };
    // A second signal does not wait for the tasks.
    tokio::spawn(async {
        support::shutdown_signal().await;
        eprintln!("second signal: exiting without waiting");
        std::process::exit(130);
    });
    eprintln!("stopping: scheduler first, then every task");
    marathon_run.abort();
    let killed = agent.drain(Duration::from_secs(3)).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), probe_run).await;
    for s in servers {
        // Long-lived streams (events, WebSockets) do not hold the exit up.
        let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
    }
    if let Some(l) = master_leadership {
        l.resign();
    }
    master_loops.abort();
    app_cleanup.abort();
    eprintln!("stopped: {killed} task(s) killed, nothing left running");
    drop(work);
    match failed {
        None => Ok(()),
        Some(why) => anyhow::bail!(why),
    }
}
