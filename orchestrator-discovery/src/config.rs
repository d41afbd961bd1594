//! Settings of the DNS server, with Mesos-DNS's defaults and names.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};

/// Where a task's address comes from, in order of preference
/// (Mesos-DNS's `IPSources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSource {
    /// The container's own address from the task's status (`netinfo`).
    Netinfo,
    /// The agent's address (`host`).
    Host,
}

impl IpSource {
    /// Mesos-DNS's name of the source.
    pub fn name(self) -> &'static str {
        match self {
            IpSource::Netinfo => "netinfo",
            IpSource::Host => "host",
        }
    }

    /// The source named `name`, if it is one this server knows.
    pub fn parse(name: &str) -> Option<IpSource> {
        match name {
            "netinfo" => Some(IpSource::Netinfo),
            "host" => Some(IpSource::Host),
            _ => None,
        }
    }
}

/// How the DNS server answers.
#[derive(Clone, Debug)]
pub struct Config {
    /// The domain it is authoritative for (`mesos`).
    pub domain: String,
    /// TTL of its answers, seconds (Mesos-DNS: 60).
    pub ttl: u32,
    /// How often the state of a master without an operator event stream
    /// is read again.
    pub refresh: Duration,
    /// With the master's event stream, how often the state is read again
    /// when nothing happens (agents come and go without events).
    pub resync: Duration,
    /// Resolvers that names outside the domain are forwarded to; none:
    /// such queries are REFUSED.
    pub resolvers: Vec<SocketAddr>,
    /// How long a forwarded query may take.
    pub timeout: Duration,
    /// The server's own address, the A record of its NS.
    pub listener: Ipv4Addr,
    /// The SOA's primary name server (`ns1.mesos`).
    pub soa_mname: String,
    /// The SOA's responsible mailbox (`root.ns1.mesos`).
    pub soa_rname: String,
    /// SOA refresh, seconds.
    pub soa_refresh: u32,
    /// SOA retry, seconds.
    pub soa_retry: u32,
    /// SOA expire, seconds.
    pub soa_expire: u32,
    /// SOA minimum (negative-answer) TTL, seconds.
    pub soa_minttl: u32,
    /// Where task addresses come from, in order.
    pub ip_sources: Vec<IpSource>,
    /// The masters' base URLs.
    pub masters: Vec<String>,
    /// A Marathon-style scheduler whose health-check results leave
    /// failing tasks out (the master's state carries only Mesos-run checks).
    pub marathon: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: "mesos".into(),
            ttl: 60,
            refresh: Duration::from_millis(250),
            resync: Duration::from_secs(5),
            resolvers: Vec::new(),
            timeout: Duration::from_secs(5),
            listener: Ipv4Addr::LOCALHOST,
            soa_mname: "ns1.mesos".into(),
            soa_rname: "root.ns1.mesos".into(),
            soa_refresh: 60,
            soa_retry: 600,
            soa_expire: 86400,
            soa_minttl: 60,
            ip_sources: vec![IpSource::Netinfo, IpSource::Host],
            masters: Vec::new(),
            marathon: None,
        }
    }
}

impl Config {
    /// The first label of the SOA's name server (`ns1`), whose A record
    /// the domain holds.
    pub fn soa_mname_label(&self) -> &str {
        self.soa_mname.split('.').next().unwrap_or("ns1")
    }

    /// The server's own address.
    pub fn listener_ip(&self) -> Ipv4Addr {
        self.listener
    }

    /// The configuration as Mesos-DNS's `/v1/config` shows it (its Go
    /// field names).
    pub fn to_mesos_dns_json(&self, dns_port: u16, http_port: u16) -> Value {
        json!({
            "RefreshSeconds": self.refresh.as_secs_f64(),
            "Port": dns_port,
            "Timeout": self.timeout.as_secs(),
            "StateTimeoutSeconds": self.timeout.as_secs(),
            "HttpPort": http_port,
            "TTL": self.ttl,
            "SRVRecordDefaultWeight": 1,
            "SOASerial": 0,
            "SOARefresh": self.soa_refresh,
            "SOARetry": self.soa_retry,
            "SOAExpire": self.soa_expire,
            "SOAMinttl": self.soa_minttl,
            "SOARname": format!("{}.", self.soa_rname.trim_end_matches('.')),
            "SOAMname": format!("{}.", self.soa_mname.trim_end_matches('.')),
            "Masters": self.masters,
            "Zk": "",
            "Domain": self.domain,
            "File": "",
            "Listener": self.listener.to_string(),
            "HTTPListener": self.listener.to_string(),
            "DnsOn": true,
            "HttpOn": true,
            "ExternalOn": !self.resolvers.is_empty(),
            "RecurseOn": !self.resolvers.is_empty(),
            "Resolvers": self.resolvers.iter().map(|r| r.ip().to_string()).collect::<Vec<_>>(),
            "IPSources": self.ip_sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "EnforceRFC952": false,
            "EnumerationOn": true,
        })
    }
}
