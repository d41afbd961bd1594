//! The apps a probe publishes to: every address an app's name resolves to.
//!
//! App servers run as replicas behind one name, and each replica keeps
//! its own picture of the cluster from the reports it is sent. So, as
//! Weave Scope's probe does, an app given by name is every address the
//! name resolves to, each one published to (and holding a control socket)
//! on its own, and the name is resolved again every
//! [`crate::ProbeConfig::resolve_interval`]: behind a headless Kubernetes
//! Service (one A record per ready pod) replicas that come and go are
//! followed. Requests to a resolved address keep the app's name in their
//! `Host` header (and TLS name), so a name-based proxy in front still
//! routes them.
//!
//! An app given by IP address is published to as given. A name that does
//! not resolve for a while keeps the addresses it last had (a DNS outage
//! does not cut a probe off its apps); one never resolved is published to
//! by name, so the HTTP client's own resolution is tried on every attempt.
//!
//! Names resolve through the system's resolver (`/etc/hosts`, then DNS as
//! `/etc/resolv.conf` says), or through one DNS server when
//! [`crate::ProbeConfig::resolver`] names it (Scope's `-probe.resolver`),
//! for a probe on the host network that must ask the cluster's DNS.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// One replica of an app: the app's URL as given and, when its name was
/// resolved, the address requests go to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The app as given (`http://app-server:4040`).
    pub url: String,
    /// The host part of the URL (what the address is pinned for).
    pub host: String,
    /// The resolved address, `None` when published to as given.
    pub address: Option<SocketAddr>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            Some(a) => write!(f, "{} at {a}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

/// An app as configured: a URL whose host may need resolving.
#[derive(Clone, Debug)]
struct Target {
    url: String,
    host: String,
    port: u16,
    /// The host is an IP address (or the URL did not parse): nothing to resolve.
    literal: bool,
}

impl Target {
    fn parse(url: &str) -> Target {
        let as_given = |host: String| Target {
            url: url.to_string(),
            host,
            port: 0,
            literal: true,
        };
        let Ok(parsed) = reqwest::Url::parse(url) else {
            tracing::warn!(%url, "not a URL: published to as given");
            return as_given(String::new());
        };
        let port = parsed.port_or_known_default().unwrap_or(80);
        match parsed.domain() {
            Some(d) => Target {
                url: url.to_string(),
                host: d.to_string(),
                port,
                literal: false,
            },
            None => as_given(parsed.host_str().unwrap_or_default().to_string()),
        }
    }

    fn as_given(&self) -> Endpoint {
        Endpoint {
            url: self.url.clone(),
            host: self.host.clone(),
            address: None,
        }
    }
}

/// The configured apps and how their names resolve.
pub struct Apps {
    targets: Vec<Target>,
    dns: Option<TokioResolver>,
}

impl std::fmt::Debug for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apps")
            .field("targets", &self.targets)
            .field("dns", &self.dns.is_some())
            .finish()
    }
}

impl Apps {
    /// The apps at `urls`, names resolved by the system or by the DNS
    /// server at `resolver`.
    pub fn new(urls: &[String], resolver: Option<SocketAddr>) -> Apps {
        let dns = resolver.map(|server| {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(server, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(server, Protocol::Tcp));
            let mut opts = ResolverOpts::default();
            opts.timeout = Duration::from_secs(2);
            opts.attempts = 2;
            // Every round asks again: a replica that went away must go.
            opts.cache_size = 0;
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build()
        });
        Apps {
            targets: urls.iter().map(|u| Target::parse(u)).collect(),
            dns,
        }
    }

    /// Every app as given, before any resolution.
    pub fn as_given(&self) -> Vec<Endpoint> {
        self.targets.iter().map(Target::as_given).collect()
    }

    /// Whether any app has a name to resolve.
    pub fn has_names(&self) -> bool {
        self.targets.iter().any(|t| !t.literal)
    }

    /// Every app's endpoints now: one per address its name resolves to;
    /// what `previous` had for it when it does not resolve.
    pub async fn resolve(&self, previous: &[Endpoint]) -> Vec<Endpoint> {
        let mut out = BTreeSet::new();
        for t in &self.targets {
            if t.literal {
                out.insert(t.as_given());
                continue;
            }
            match self.lookup(&t.host).await {
                Ok(ips) if !ips.is_empty() => {
                    out.extend(ips.into_iter().map(|ip| Endpoint {
                        url: t.url.clone(),
                        host: t.host.clone(),
                        address: Some(SocketAddr::new(ip, t.port)),
                    }));
                }
                outcome => {
                    if let Err(e) = outcome {
                        tracing::debug!(host = %t.host, error = %e, "app name does not resolve");
                    }
                    let kept: Vec<Endpoint> = previous.iter().filter(|e| e.url == t.url).cloned().collect();
                    if kept.is_empty() {
                        out.insert(t.as_given());
                    }
                    out.extend(kept);
                }
            }
        }
        out.into_iter().collect()
    }

    async fn lookup(&self, host: &str) -> Result<BTreeSet<IpAddr>, String> {
        match &self.dns {
            Some(dns) => {
                // Fully qualified when it has a dot, as Scope asks.
                let name = if host.contains('.') && !host.ends_with('.') {
                    format!("{host}.")
                } else {
                    host.to_string()
                };
                let found = dns.lookup_ip(name).await.map_err(|e| e.to_string())?;
                Ok(found.iter().collect())
            }
            None => {
                let found = tokio::net::lookup_host((host, 0)).await.map_err(|e| e.to_string())?;
                Ok(found.map(|a| a.ip()).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_are_given_as_is_and_names_resolve() {
        let apps = Apps::new(
            &[
                "http://127.0.0.1:4040".to_string(),
                "http://localhost:4041/".to_string(),
                "not a url".to_string(),
            ],
            None,
        );
        assert!(apps.has_names());
        let given = apps.as_given();
        assert!(given.iter().all(|e| e.address.is_none()));
        let now = apps.resolve(&given).await;
        let localhost: Vec<&Endpoint> = now.iter().filter(|e| e.host == "localhost").collect();
        assert!(!localhost.is_empty(), "{now:?}");
        assert!(localhost
            .iter()
            .all(|e| e.address.is_some_and(|a| a.port() == 4041 && a.ip().is_loopback())));
        assert!(now
            .iter()
            .any(|e| e.url == "http://127.0.0.1:4040" && e.address.is_none()));
        assert!(now.iter().any(|e| e.url == "not a url" && e.address.is_none()));
    }

    #[tokio::test]
    async fn a_name_that_stops_resolving_keeps_its_last_addresses() {
        let apps = Apps::new(&["http://no-such-name.invalid:4040".to_string()], None);
        let pinned = Endpoint {
            url: "http://no-such-name.invalid:4040".to_string(),
            host: "no-such-name.invalid".to_string(),
            address: Some("10.0.0.7:4040".parse().unwrap()),
        };
        assert_eq!(apps.resolve(std::slice::from_ref(&pinned)).await, vec![pinned]);
        // Never resolved: published to by name.
        let now = apps.resolve(&[]).await;
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].address, None);
    }
}
