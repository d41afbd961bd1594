//! Service discovery for Mesos-style clusters.
//!
//! Mesos users found their services through **Mesos-DNS**: a DNS server
//! that reads the master's state and names every running task
//! (`web-prod.marathon.mesos`, `_web-prod._tcp.marathon.mesos`), plus an
//! HTTP API for the same records. Tools, scripts and client libraries
//! built on those names keep working when this crate serves them:
//!
//! - [`state`]: the part of `/master/state` it reads, from this project's
//!   master or Apache Mesos's;
//! - [`names`] and [`records`]: Mesos-DNS's naming rules, applied to a
//!   snapshot at once (pure and unit-tested), so a query is a look-up;
//! - [`follow`]: reads the masters' state every `refresh` (250 ms by
//!   default, where Mesos-DNS waits 60 s) and publishes a new record set
//!   when it changes;
//! - [`dns`]: the UDP and TCP server (on `hickory-server`), authoritative
//!   for the domain, forwarding or refusing the rest;
//! - [`http`]: Mesos-DNS's `/v1` API;
//! - [`resolve`]: SRV look-ups for programs that find their dependencies
//!   by these names;
//! - [`lb`]: the L4 load balancer on the apps' service ports, following
//!   the scheduler's events as marathon-lb does.
//!
//! [`Discovery::start`] runs all of it, as the `dns` example and the
//! all-in-one do.

pub mod config;
pub mod dns;
mod error;
pub mod fetch;
pub mod follow;
pub mod http;
pub mod lb;
pub mod names;
pub mod records;
pub mod resolve;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{Config, IpSource};
pub use error::Error;
pub use records::RecordSet;

/// DNS, its HTTP API and the master follower, running.
pub struct Discovery {
    /// Where DNS answers (UDP and TCP).
    pub dns_addr: SocketAddr,
    /// Where the HTTP API answers.
    pub http_addr: SocketAddr,
    records: watch::Receiver<Arc<RecordSet>>,
    dns: dns::DnsServer,
    follower: JoinHandle<()>,
    http: JoinHandle<()>,
}

impl Discovery {
    /// Binds DNS on `dns_addr` and the API on `http_addr` (port 0: a free
    /// one) and starts following `config.masters`.
    pub async fn start(config: Config, dns_addr: SocketAddr, http_addr: SocketAddr) -> Result<Discovery, Error> {
        if config.masters.is_empty() {
            return Err(Error::Config {
                what: "masters",
                reason: "at least one master URL is needed".into(),
            });
        }
        if names::domain_fragment(&config.domain) != config.domain.to_ascii_lowercase().trim_end_matches('.') {
            return Err(Error::Config {
                what: "domain",
                reason: format!("`{}` is not a domain of RFC 1123 labels", config.domain),
            });
        }
        let config = Arc::new(config);
        let empty = RecordSet {
            domain: names::canonical(&config.domain),
            ..RecordSet::default()
        };
        let (tx, rx) = watch::channel(Arc::new(empty));
        let dns = dns::DnsServer::bind(dns_addr, dns::DnsHandler::new(rx.clone(), Arc::clone(&config))).await?;
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .map_err(|source| Error::Bind {
                what: "the DNS HTTP API",
                addr: http_addr,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| Error::Bind {
            what: "the DNS HTTP API",
            addr: http_addr,
            source,
        })?;
        let app = http::router(rx.clone(), Arc::clone(&config), dns.addr.port(), http_addr.port());
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the DNS HTTP API stopped");
            }
        });
        let follower = follow::follow_masters(config, tx);
        Ok(Discovery {
            dns_addr: dns.addr,
            http_addr,
            records: rx,
            dns,
            follower,
            http,
        })
    }

    /// The current record set.
    pub fn records(&self) -> Arc<RecordSet> {
        Arc::clone(&self.records.borrow())
    }

    /// A receiver that sees every new record set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RecordSet>> {
        self.records.clone()
    }

    /// Stops following and answering.
    pub async fn shutdown(self) {
        self.follower.abort();
        self.http.abort();
        self.dns.shutdown().await;
    }
}
