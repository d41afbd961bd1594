//! The L4 load balancer: each app's service ports
//! (`portDefinitions[].port`, which the scheduler assigns from
//! 10000–20000 as Marathon does) get a listener that spreads TCP
//! connections over the app's running, healthy tasks. It follows the
//! scheduler's event stream as marathon-lb does, so a task that starts,
//! fails its checks or is killed changes the backends within a second.
//!
//! - [`services`]: the services of a `/v2/apps?embed=apps.tasks` answer
//!   (pure);
//! - [`follow`]: reading them again on every event;
//! - [`proxy`]: the listeners and the connections;
//! - [`haproxy`]: the same services as an HAProxy configuration, for
//!   users who run HAProxy at the edge;
//! - [`status`]: its own health and metrics.

pub mod follow;
pub mod haproxy;
pub mod proxy;
pub mod services;
pub mod status;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

pub use services::{Backend, Balance, Mode, Service, Services};

/// How the balancer runs.
#[derive(Clone, Debug)]
pub struct LbConfig {
    /// The scheduler's base URL (`http://127.0.0.1:8080`).
    pub marathon: String,
    /// Where service ports listen.
    pub bind: IpAddr,
    /// The spread of apps without a `HAPROXY_{n}_BALANCE` label.
    pub balance: Balance,
    /// A backend that has not accepted within this is passed over.
    pub connect_timeout: Duration,
    /// The apps are read at least this often, events or not.
    pub resync: Duration,
    /// Run the L4 proxy on the service ports (off: only HAProxy's file).
    pub proxy: bool,
    /// Also write an HAProxy configuration (and reload HAProxy) on change.
    pub haproxy: Option<(haproxy::HaproxyConfig, haproxy::Writer)>,
}

impl LbConfig {
    /// Defaults for the scheduler at `marathon`.
    pub fn new(marathon: impl Into<String>) -> LbConfig {
        LbConfig {
            marathon: marathon.into(),
            bind: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_secs(1),
            resync: Duration::from_secs(5),
            proxy: true,
            haproxy: None,
        }
    }
}

/// The balancer, running.
pub struct LoadBalancer {
    services: watch::Receiver<Arc<Services>>,
    status: Arc<status::SyncStatus>,
    proxy: Arc<Mutex<proxy::Proxy>>,
    follower: JoinHandle<()>,
    applier: JoinHandle<()>,
}

impl LoadBalancer {
    /// Starts following the scheduler and listening on its service ports.
    pub fn start(config: LbConfig) -> LoadBalancer {
        let (tx, rx) = watch::channel(Arc::new(Services::new()));
        let status = Arc::new(status::SyncStatus::default());
        let follower = follow::follow_scheduler(
            config.marathon.clone(),
            config.balance,
            config.resync,
            tx,
            Arc::clone(&status),
        );
        let proxy = Arc::new(Mutex::new(proxy::Proxy::new(config.bind, config.connect_timeout)));
        let applier = {
            let (mut rx, proxy) = (rx.clone(), Arc::clone(&proxy));
            let (run_proxy, haproxy) = (config.proxy, config.haproxy);
            tokio::spawn(async move {
                loop {
                    let services = Arc::clone(&rx.borrow_and_update());
                    if run_proxy {
                        proxy.lock().await.update(&services).await;
                    }
                    if let Some((haproxy_config, writer)) = &haproxy {
                        let text = haproxy::render(&services, haproxy_config);
                        match writer.apply(&text).await {
                            Ok(true) => {
                                tracing::info!(path = %writer.path.display(), "HAProxy configuration rewritten")
                            }
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "HAProxy configuration not applied"),
                        }
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        LoadBalancer {
            services: rx,
            status,
            proxy,
            follower,
            applier,
        }
    }

    /// The services as last read.
    pub fn services(&self) -> Arc<Services> {
        Arc::clone(&self.services.borrow())
    }

    /// A receiver that sees every new set of services.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Services>> {
        self.services.clone()
    }

    /// The ports listened on, and their counters.
    pub async fn ports(&self) -> Vec<(u16, Arc<proxy::PortStats>)> {
        let proxy = self.proxy.lock().await;
        proxy
            .ports()
            .into_iter()
            .filter_map(|p| Some((p, proxy.stats(p)?)))
            .collect()
    }

    /// How reading the scheduler goes.
    pub fn status(&self) -> Arc<status::SyncStatus> {
        Arc::clone(&self.status)
    }

    /// [`status::render_metrics`] now.
    pub async fn metrics(&self) -> String {
        status::render_metrics(&self.services(), &self.ports().await, &self.status)
    }

    /// Stops following and closes the listeners (open connections run on).
    pub async fn shutdown(&self) {
        self.follower.abort();
        self.applier.abort();
        self.proxy.lock().await.close();
    }
}
