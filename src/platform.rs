//! The whole platform in one process: a master, one agent, the
//! Marathon-style scheduler, this host's probe and the topology app, wired
//! together as the `all-in-one` example runs them.
//!
//! [`Platform::start`] binds every port first (a busy one fails before
//! anything starts), then starts the master (elected first when there is a
//! ZooKeeper), the agent (Docker for tasks with an image when the engine
//! answers, processes for the rest), the scheduler on the master in this
//! process, the topology app and a probe that reports to it.
//! [`Platform::run_until`] serves until a signal, a lost leadership or a
//! stopped agent, then stops in order: the scheduler, every task, the
//! servers. Nothing is left running.
//!
//! Users embedding the platform call the same two functions the example
//! does; the example only adds flags, a temporary work directory and the
//! demo apps.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orchestrator_core::{Containerizer, FileStore, MemStore, Resources, StateStore};
use orchestrator_mesos::marathon::{ha, http, Marathon, MarathonConfig};
use orchestrator_mesos::{
    Agent, AgentConfig, Candidacy, DockerContainerizer, DrfAllocator, HttpMasterClient, LeaderElection, Master,
    MasterClient, MasterConfig, MasterContender, MasterDetector, MasterHandle, MasterInfo, ProcessContainerizer,
    Registry, ZkStore, ZkUrl,
};
use orchestrator_probe::{Probe, ProbeConfig, PublishConfig};
use orchestrator_topology::server::{check_exposure, App, AppConfig, Role, Token, Tokens};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What can stop the platform from starting, or end it.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A port is taken or not allowed.
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The master, agent or scheduler failed.
    #[error(transparent)]
    Mesos(#[from] orchestrator_mesos::Error),
    /// A core part (allocator settings, a store) failed.
    #[error(transparent)]
    Core(#[from] orchestrator_core::Error),
    /// The topology app failed.
    #[error(transparent)]
    Topology(#[from] orchestrator_topology::TopologyError),
    /// The probe failed.
    #[error(transparent)]
    Probe(#[from] orchestrator_probe::Error),
    /// The DNS server failed.
    #[error(transparent)]
    Discovery(#[from] orchestrator_discovery::Error),
    /// A file or directory could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The platform stopped on its own.
    #[error("{0}")]
    Stopped(String),
    /// Settings that cannot work together.
    #[error("{0}")]
    Config(String),
}

/// How the platform runs.
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// Address every server listens on (and the agent advertises).
    pub ip: IpAddr,
    /// Port of the master.
    pub master_port: u16,
    /// Port of the agent.
    pub agent_port: u16,
    /// Port of the scheduler's Marathon API.
    pub marathon_port: u16,
    /// Port of the topology app.
    pub app_port: u16,
    /// Port of the Mesos-DNS-compatible DNS server (UDP and TCP); `None`
    /// runs none.
    pub dns_port: Option<u16>,
    /// Port of the DNS server's Mesos-DNS HTTP API.
    pub dns_http_port: u16,
    /// Balance each app's service ports over its tasks (listening on `ip`).
    pub load_balancer: bool,
    /// Where the agent's sandboxes go, and (with `keep_state`) the
    /// scheduler's apps and the topology app's filters and audit log.
    pub work_dir: PathBuf,
    /// Keep state in `work_dir` across restarts (else the scheduler's state
    /// is in memory).
    pub keep_state: bool,
    /// ZooKeeper servers and root: the scheduler's state lives there, and
    /// the master and the scheduler are elected there.
    pub zk: Option<(String, String)>,
    /// Masters: 1 runs one in this process. More (with `zk`) are separate
    /// processes the caller runs on `master_port`, `master_port + 1`, …,
    /// elected at [`masters_zk`](Self::masters_zk) (the `all-in-one`
    /// example starts them); the agent and the scheduler follow whichever
    /// leads.
    pub masters: u16,
    /// What the agent offers.
    pub resources: Resources,
    /// The Docker engine to try; `None` runs every task as a process.
    pub docker_host: Option<String>,
    /// Time between the probe's collections and publishes.
    pub spy_interval: Duration,
    /// Tokens of the topology app; empty serves loopback without tokens.
    pub tokens: Tokens,
}

impl PlatformConfig {
    /// Where replicated masters contend, in Mesos's layout; `None` without
    /// ZooKeeper.
    pub fn masters_zk(&self) -> Option<ZkUrl> {
        self.zk.as_ref().map(|(servers, root)| masters_zk(servers, root))
    }
}

/// Where the replicated masters of a platform rooted at `root` contend:
/// `{root}/mesos` (registry at `{root}/mesos-registry`).
pub fn masters_zk(servers: &str, root: &str) -> ZkUrl {
    ZkUrl {
        servers: servers.to_string(),
        path: format!("{}/mesos", root.trim_end_matches('/')),
    }
}

/// A running platform.
pub struct Platform {
    /// The master, in this process (`None` when the masters are replicated
    /// in processes of their own).
    pub master: Option<MasterHandle>,
    /// The agent, in this process.
    pub agent: Agent,
    /// The Docker containerizer, when the engine answered.
    pub docker: Option<Arc<DockerContainerizer>>,
    /// Base URLs of the master, the agent, the scheduler and the topology app.
    pub urls: Urls,
    /// Where the scheduler keeps its state, in words.
    pub state_where: String,
    master_leadership: Option<Candidacy>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    master_loops: Option<JoinHandle<()>>,
    agent_run: JoinHandle<orchestrator_mesos::Result<()>>,
    marathon_run: JoinHandle<()>,
    app_cleanup: JoinHandle<()>,
    probe_run: JoinHandle<()>,
    dns: Option<orchestrator_discovery::Discovery>,
    lb: Option<orchestrator_discovery::lb::LoadBalancer>,
}

/// Base URLs of the platform's servers.
#[derive(Clone, Debug)]
pub struct Urls {
    /// The master (`/master/state`, `/api/v1/scheduler`).
    pub master: String,
    /// The agent (`/state`).
    pub agent: String,
    /// The scheduler (`/v2/apps`).
    pub marathon: String,
    /// The topology app and its web UI.
    pub app: String,
    /// The DNS server (`IP:PORT`, UDP and TCP) and its HTTP API, when it runs.
    pub dns: Option<(SocketAddr, String)>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

async fn bind(ip: IpAddr, port: u16, what: &'static str) -> Result<TcpListener, PlatformError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| PlatformError::Bind { what, addr, source })
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
fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    })
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlatformError {
    let what = what.into();
    move |source| PlatformError::Io { what, source }
}

/// The master, elected first when there is a ZooKeeper (in Mesos's layout,
/// at [`masters_zk`]), with its registry there; with `keep_state` the
/// registry is in `work_dir/master`, so a restart keeps agents, weights and
/// quotas.
async fn start_master(config: &PlatformConfig) -> Result<(MasterHandle, Option<Candidacy>), PlatformError> {
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
                master_id: master_id.clone(),
                ..MasterConfig::default()
            },
            DrfAllocator::builder()
                .allocation_interval(allocation_interval)
                .build()?,
        ),
        allocation_interval,
    );
    let info = MasterInfo::new(master_id, SocketAddr::new(config.ip, config.master_port), None);
    master.set_info(info.clone());
    let reregister_timeout = Duration::from_secs(600);
    let candidacy = match config.masters_zk() {
        Some(zk) => {
            let contender = MasterContender::connect(&zk, Duration::from_secs(10)).await?;
            let candidacy = contender.contend(&info).await?;
            let detector = MasterDetector::connect(&zk, Duration::from_secs(10)).await?;
            if let Some(leader) = detector.leader().filter(|l| l.id != info.id) {
                tracing::warn!(leader = %leader.url(), "waiting for the master there to step down");
            }
            candidacy.elected().await?;
            let store = ZkStore::connect(&zk.servers, &zk.registry_path()).await?;
            master
                .recover(Registry::new(Arc::new(store), "/"), reregister_timeout)
                .await?;
            Some(candidacy)
        }
        None if config.keep_state => {
            let store = FileStore::open(config.work_dir.join("master"))?;
            master
                .recover(Registry::new(Arc::new(store), "/"), reregister_timeout)
                .await?;
            None
        }
        None => None,
    };
    Ok((master, candidacy))
}

/// The scheduler (on the master in this process, or following the
/// replicated masters' leader): elected on ZooKeeper with
/// its state there, or alone with its state in `work_dir` or memory.
async fn start_scheduler(
    config: &PlatformConfig,
    client: Arc<dyn MasterClient>,
    master_url: &str,
) -> Result<(axum::Router, JoinHandle<()>, String), PlatformError> {
    let info = http::ApiInfo {
        master: master_url.to_string(),
        http_address: SocketAddr::new(config.ip, config.marathon_port).to_string(),
    };
    Ok(match &config.zk {
        Some((servers, root)) => {
            let root = format!("{root}/marathon");
            let store: Arc<dyn StateStore> = Arc::new(ZkStore::connect(servers, &root).await?);
            let election = LeaderElection::connect(servers, &format!("{root}/leader")).await?;
            let candidate = ha::Candidate {
                client,
                store,
                config: MarathonConfig::default(),
                info,
            };
            let (router, run) = ha::serve_elected(election, candidate);
            (router, run, format!("ZooKeeper {servers}{root}"))
        }
        None => {
            let (store, state_where): (Arc<dyn StateStore>, String) = if config.keep_state {
                let dir = config.work_dir.join("marathon");
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
    })
}

impl Platform {
    /// Starts every part; see the module documentation.
    ///
    /// # Errors
    /// When a port is taken, ZooKeeper cannot be reached, the work
    /// directory cannot be written, or a part refuses its settings.
    pub async fn start(config: PlatformConfig) -> Result<Platform, PlatformError> {
        let ip = config.ip;
        let url = |port: u16| format!("http://{}", SocketAddr::new(ip, port));
        let urls = Urls {
            master: url(config.master_port),
            agent: url(config.agent_port),
            marathon: url(config.marathon_port),
            app: url(config.app_port),
            dns: None,
        };
        let replicated = config.masters > 1;
        let masters_zk = config.masters_zk();
        if replicated && masters_zk.is_none() {
            return Err(PlatformError::Config(
                "several masters are elected on ZooKeeper: give --zk".into(),
            ));
        }
        // Every port first: a busy one fails before anything starts.
        let master_listener = match replicated {
            false => Some(bind(ip, config.master_port, "master").await?),
            true => None,
        };
        let agent_listener = bind(ip, config.agent_port, "agent").await?;
        let marathon_listener = bind(ip, config.marathon_port, "scheduler").await?;
        let app_listener = bind(ip, config.app_port, "topology app").await?;
        let mut urls = urls;
        let dns = match config.dns_port {
            Some(port) => {
                let dns_config = orchestrator_discovery::Config {
                    masters: (0..config.masters.max(1))
                        .map(|i| url(config.master_port.saturating_add(i)))
                        .collect(),
                    marathon: Some(urls.marathon.clone()),
                    listener: match ip {
                        IpAddr::V4(v4) => v4,
                        IpAddr::V6(_) => std::net::Ipv4Addr::LOCALHOST,
                    },
                    ..orchestrator_discovery::Config::default()
                };
                let d = orchestrator_discovery::Discovery::start(
                    dns_config,
                    SocketAddr::new(ip, port),
                    SocketAddr::new(ip, config.dns_http_port),
                )
                .await?;
                urls.dns = Some((d.dns_addr, format!("http://{}", d.http_addr)));
                Some(d)
            }
            None => None,
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut servers = Vec::new();

        let (master, master_leadership, master_loops, detector) = match (master_listener, masters_zk) {
            (Some(listener), _) => {
                let (master, leadership) = start_master(&config).await?;
                let loops = tokio::spawn(master.clone().run_loops());
                servers.push(serve(listener, master.router(), stop_rx.clone()));
                (Some(master), leadership, Some(loops), None)
            }
            (None, Some(zk)) => (
                None,
                None,
                None,
                Some(MasterDetector::connect(&zk, Duration::from_secs(10)).await?),
            ),
            (None, None) => {
                return Err(PlatformError::Config(
                    "several masters are elected on ZooKeeper: give --zk".into(),
                ))
            }
        };

        let agent_dir = config.work_dir.join("agent");
        let mut chain: Vec<Arc<dyn Containerizer>> = Vec::new();
        let mut docker = None;
        if let Some(host) = &config.docker_host {
            match DockerContainerizer::connect(host, &agent_dir.to_string_lossy()).await {
                Ok(d) => {
                    let d = Arc::new(d);
                    chain.push(d.clone());
                    docker = Some(d);
                }
                Err(e) => tracing::warn!(error = %e, "no Docker; tasks run as processes"),
            }
        }
        chain.push(Arc::new(ProcessContainerizer::new(&agent_dir)?));
        let mut agent_config = AgentConfig::new(&urls.master, config.resources.clone(), &agent_dir);
        agent_config.hostname = ip.to_string();
        agent_config.port = config.agent_port;
        agent_config.detector = detector.clone();
        let agent = Agent::new(agent_config, chain);
        servers.push(serve(agent_listener, agent.router(), stop_rx.clone()));
        let agent_run = tokio::spawn(agent.clone().run());

        let client: Arc<dyn MasterClient> = match (&master, detector) {
            (Some(m), _) => Arc::new(m.clone()),
            (None, Some(d)) => Arc::new(HttpMasterClient::following(d)),
            (None, None) => return Err(PlatformError::Config("no master to follow".into())),
        };
        let (marathon_router, marathon_run, state_where) = start_scheduler(&config, client, &urls.master).await?;
        servers.push(serve(marathon_listener, marathon_router, stop_rx.clone()));

        // The topology app and this host's probe, which reports with a
        // token of its own when the app requires tokens.
        let probe_token = random_token();
        let mut tokens = config.tokens.clone();
        if !tokens.is_empty() {
            tokens.push(Token {
                token: probe_token.clone(),
                role: Role::Probe,
                name: "all-in-one probe".into(),
            });
        }
        let topology_dir = config.keep_state.then(|| config.work_dir.join("topology"));
        let app_config = AppConfig {
            tokens,
            data_dir: topology_dir.clone(),
            audit_log: topology_dir.as_ref().map(|d| d.join("audit.log")),
            publish_interval: config.spy_interval,
            ..AppConfig::default()
        };
        check_exposure(&app_config, SocketAddr::new(ip, config.app_port))?;
        if let Some(dir) = &topology_dir {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let app = App::new(app_config)?;
        let app_cleanup = tokio::spawn(app.clone().cleanup_loop());
        servers.push(serve(app_listener, app.router(), stop_rx.clone()));
        let hostname = orchestrator_probe::HostInfo::collect()?.hostname;
        let mut probe_config = ProbeConfig::new(&hostname);
        probe_config.apps = vec![urls.app.clone()];
        probe_config.spy_interval = config.spy_interval;
        probe_config.publish_interval = config.spy_interval;
        probe_config.docker_host = docker.is_some().then(|| config.docker_host.clone()).flatten();
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
        let lb = config.load_balancer.then(|| {
            orchestrator_discovery::lb::LoadBalancer::start(orchestrator_discovery::lb::LbConfig {
                bind: ip,
                ..orchestrator_discovery::lb::LbConfig::new(urls.marathon.clone())
            })
        });
        Ok(Platform {
            master,
            agent,
            docker,
            urls,
            state_where,
            master_leadership,
            stop,
            servers,
            master_loops,
            agent_run,
            marathon_run,
            app_cleanup,
            probe_run,
            dns,
            lb,
        })
    }

    /// Waits (up to `within`) until the agent has registered; `false` when
    /// it has not yet (it keeps trying).
    pub async fn agent_registered(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.agent.registered() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Waits (up to `within`) until this process's scheduler serves its API
    /// as the leader. `Ok(())` when it does; `Err` with who leads (or that
    /// nobody does yet) when it does not.
    ///
    /// # Errors
    /// The leader's address, or `None`, when this scheduler is not leading.
    pub async fn scheduler_leads(&self, within: Duration) -> Result<(), Option<String>> {
        let me = self.urls.marathon.trim_start_matches("http://").to_string();
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let leader = match http.get(format!("{}/v2/leader", self.urls.marathon)).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["leader"].as_str().map(str::to_string)),
                Err(_) => None,
            };
            // Elected, and serving the API (not still subscribing).
            let serving = http
                .get(format!("{}/v2/apps", self.urls.marathon))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if leader.as_deref() == Some(me.as_str()) && serving {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(leader.filter(|l| *l != me));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Serves until `signal` resolves, this process loses the master's
    /// leadership, or the agent stops; then stops the scheduler, kills every
    /// task (waiting up to `grace` for each) and stops the servers. Returns
    /// how many tasks were killed.
    ///
    /// # Errors
    /// [`PlatformError::Stopped`] when the platform stopped on its own
    /// (leadership lost, agent stopped) rather than on `signal`.
    pub async fn run_until(
        mut self,
        signal: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<usize, PlatformError> {
        let failed = {
            let lost = async {
                match &mut self.master_leadership {
                    Some(l) => l.lost().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = signal => None,
                () = lost => Some("this process lost the master's leadership".to_string()),
                r = &mut self.agent_run => Some(format!("the agent stopped: {r:?}")),
            }
        };
        self.marathon_run.abort();
        let killed = self.agent.drain(grace).await;
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.probe_run).await;
        for s in self.servers {
            // Long-lived streams (events, WebSockets) do not hold the exit up.
            let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
        }
        // Withdraws from the election (the znode is deleted).
        drop(self.master_leadership);
        if let Some(dns) = self.dns {
            dns.shutdown().await;
        }
        if let Some(lb) = self.lb {
            lb.shutdown().await;
        }
        if let Some(loops) = self.master_loops {
            loops.abort();
        }
        self.app_cleanup.abort();
        self.agent_run.abort();
        match failed {
            None => Ok(killed),
            Some(why) => Err(PlatformError::Stopped(why)),
        }
    }
}
