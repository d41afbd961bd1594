//! The record set: every name Mesos-DNS would answer for a master's
//! state, built at once from a snapshot (pure, no I/O) and then only
//! read, so a query is a hash look-up.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::config::{Config, IpSource};
use crate::names::{agent_id_tail, canonical, domain_fragment, task_id_hash, task_label};
use crate::state::{pid_addr, pid_ip, MasterState};

/// Where an SRV record points: a host name (itself an A record of the
/// set) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SrvTarget {
    /// The target's name, canonical (lower case, trailing dot).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// Addresses learned outside the state: agents whose state names them by
/// host name only, and the leader when the state does not say.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Agent id → address.
    pub agents: HashMap<String, Ipv4Addr>,
    /// The leading master's address and port, if the state has no `leader`.
    pub leader: Option<(Ipv4Addr, u16)>,
    /// Tasks the scheduler finds unhealthy (its own health checks, which
    /// the master's state does not carry): left out.
    pub unhealthy: std::collections::HashSet<String>,
}

/// Every A and SRV record of the domain.
#[derive(Clone, Debug, Default)]
pub struct RecordSet {
    /// Name → addresses (sorted, without repeats).
    pub a: HashMap<String, Vec<Ipv4Addr>>,
    /// Name → targets (sorted, without repeats).
    pub srv: HashMap<String, Vec<SrvTarget>>,
    /// The domain, canonical (`mesos.`).
    pub domain: String,
    /// Serial of the SOA: grows with every change of the set.
    pub serial: u32,
}

#[derive(Default)]
struct Builder {
    a: HashMap<String, BTreeSet<Ipv4Addr>>,
    srv: HashMap<String, BTreeSet<SrvTarget>>,
}

impl Builder {
    fn a(&mut self, name: String, ip: Ipv4Addr) {
        self.a.entry(name).or_default().insert(ip);
    }

    fn srv(&mut self, name: String, host: String, port: u16) {
        self.srv.entry(name).or_default().insert(SrvTarget { host, port });
    }
}

impl RecordSet {
    /// The records of `state`, as Mesos-DNS generates them:
    ///
    /// - `TASK.FRAMEWORK.DOMAIN` and the canonical
    ///   `TASK-HASH-AGENT.FRAMEWORK.DOMAIN`: the task's address (its
    ///   container's where it has one, by the configured IP sources);
    /// - the same under `FRAMEWORK.slave.DOMAIN`: its agent's address;
    /// - `_TASK._tcp.FRAMEWORK.DOMAIN` and `_udp`: one SRV per port,
    ///   pointing at the canonical agent-address name;
    /// - `leader.DOMAIN`, `master.DOMAIN` (with `_leader._tcp`/`_udp`
    ///   SRVs), `slave.DOMAIN` (every agent) and `ns1.DOMAIN`.
    ///
    /// Only running tasks are named, and not those whose latest health
    /// check failed.
    pub fn build(state: &MasterState, resolved: &Resolved, config: &Config) -> RecordSet {
        let domain = canonical(&config.domain);
        let mut b = Builder::default();
        let agent_ip = |id: &str| -> Option<Ipv4Addr> {
            let agent = state.slaves.iter().find(|a| a.id == id);
            agent
                .and_then(|a| a.pid.as_deref().and_then(pid_ip).or_else(|| a.hostname.parse().ok()))
                .or_else(|| resolved.agents.get(id).copied())
        };
        let agent_ips: HashMap<&str, Ipv4Addr> = state
            .slaves
            .iter()
            .filter_map(|a| Some((a.id.as_str(), agent_ip(&a.id)?)))
            .collect();
        for ip in agent_ips.values() {
            b.a(format!("slave.{domain}"), *ip);
        }
        let leader = state.leader.as_deref().and_then(pid_addr).or(resolved.leader);
        if let Some((ip, port)) = leader {
            b.a(format!("leader.{domain}"), ip);
            b.a(format!("master.{domain}"), ip);
            b.a(format!("master0.{domain}"), ip);
            for proto in ["_tcp", "_udp"] {
                b.srv(format!("_leader.{proto}.{domain}"), format!("leader.{domain}"), port);
            }
        }
        b.a(format!("{}.{domain}", config.soa_mname_label()), config.listener_ip());
        for fw in &state.frameworks {
            let fname = domain_fragment(&fw.name);
            if fname.is_empty() {
                continue;
            }
            for task in fw
                .tasks
                .iter()
                .filter(|t| t.serving() && !resolved.unhealthy.contains(&t.id))
            {
                let name = task
                    .discovery
                    .as_ref()
                    .and_then(|d| d.name.as_deref())
                    .unwrap_or(&task.name);
                let tname = task_label(name);
                let Some(&host_ip) = agent_ips.get(task.slave_id.as_str()) else {
                    continue;
                };
                if tname.is_empty() {
                    continue;
                }
                let canonical_name = format!("{tname}-{}-{}", task_id_hash(&task.id), agent_id_tail(&task.slave_id));
                let mut ips = Vec::new();
                for source in &config.ip_sources {
                    ips = match source {
                        IpSource::Netinfo => task.container_ips(),
                        IpSource::Host => vec![host_ip],
                    };
                    if !ips.is_empty() {
                        break;
                    }
                }
                for ip in ips {
                    b.a(format!("{tname}.{fname}.{domain}"), ip);
                    b.a(format!("{canonical_name}.{fname}.{domain}"), ip);
                }
                b.a(format!("{tname}.{fname}.slave.{domain}"), host_ip);
                let target = format!("{canonical_name}.{fname}.slave.{domain}");
                b.a(target.clone(), host_ip);
                for (port, proto) in task.ports() {
                    b.srv(
                        format!("_{tname}.{}.{fname}.{domain}", proto.label()),
                        target.clone(),
                        port,
                    );
                }
            }
        }
        RecordSet {
            a: b.a.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect(),
            srv: b.srv.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect(),
            domain,
            serial: 0,
        }
    }

    /// Whether two sets hold the same records.
    pub fn same_records(&self, other: &RecordSet) -> bool {
        self.a == other.a && self.srv == other.srv
    }

    /// Whether `name` (canonical) is in the domain.
    pub fn in_domain(&self, name: &str) -> bool {
        name == self.domain
            || name
                .strip_suffix(self.domain.as_str())
                .is_some_and(|head| head.ends_with('.'))
    }

    /// Whether `name` (canonical) has any record.
    pub fn exists(&self, name: &str) -> bool {
        name == self.domain || self.a.contains_key(name) || self.srv.contains_key(name)
    }

    /// How many names the set answers.
    pub fn len(&self) -> usize {
        self.a.len() + self.srv.len()
    }

    /// Whether the set answers no name.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.srv.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> MasterState {
        serde_json::from_str(json).unwrap()
    }

    const STATE: &str = r#"{"leader":"master@10.0.0.1:5050",
      "slaves":[{"id":"M-S1","hostname":"10.0.0.7"},{"id":"M-S2","hostname":"a2","pid":"slave(1)@10.0.0.8:5051"},{"id":"M-S3","hostname":"unresolved"}],
      "frameworks":[{"name":"marathon","tasks":[
        {"id":"web.1","name":"web.prod","slave_id":"M-S1","state":"TASK_RUNNING","resources":{"ports":"[31000-31000]"}},
        {"id":"web.2","name":"web.prod","slave_id":"M-S2","state":"TASK_RUNNING","resources":{"ports":"[31001-31001]"},
         "statuses":[{"state":"TASK_RUNNING","container_status":{"network_infos":[{"ip_addresses":[{"ip_address":"172.17.0.5"}]}]}}]},
        {"id":"web.3","name":"web.prod","slave_id":"M-S1","state":"TASK_STAGING"},
        {"id":"web.4","name":"web.prod","slave_id":"M-S1","state":"TASK_RUNNING","statuses":[{"state":"TASK_RUNNING","healthy":false}]},
        {"id":"lost.1","name":"lost","slave_id":"M-S3","state":"TASK_RUNNING"}]},
        {"name":"***","tasks":[{"id":"x","name":"x","slave_id":"M-S1","state":"TASK_RUNNING"}]}]}"#;

    #[test]
    fn names_every_running_task_as_mesos_dns_does() {
        let set = RecordSet::build(&state(STATE), &Resolved::default(), &Config::default());
        let a = |n: &str| set.a.get(n).cloned().unwrap_or_default();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        // By default the container's address comes first, the agent's otherwise.
        assert_eq!(a("web-prod.marathon.mesos."), [ip("10.0.0.7"), ip("172.17.0.5")]);
        assert_eq!(a("web-prod.marathon.slave.mesos."), [ip("10.0.0.7"), ip("10.0.0.8")]);
        assert_eq!(a("leader.mesos."), [ip("10.0.0.1")]);
        assert_eq!(a("master.mesos."), [ip("10.0.0.1")]);
        assert_eq!(
            a("slave.mesos."),
            [ip("10.0.0.7"), ip("10.0.0.8")],
            "an agent without an address is left out"
        );
        assert_eq!(a("ns1.mesos."), [ip("127.0.0.1")]);
        assert!(set.a.keys().all(|k| !k.starts_with("lost.")), "no address, no record");
        let srv = &set.srv["_web-prod._tcp.marathon.mesos."];
        assert_eq!(srv.len(), 2, "staging and unhealthy tasks are left out: {srv:?}");
        let h1 = task_id_hash("web.1");
        assert!(srv.contains(&SrvTarget {
            host: format!("web-prod-{h1}-s1.marathon.slave.mesos."),
            port: 31000
        }));
        assert_eq!(a(&format!("web-prod-{h1}-s1.marathon.slave.mesos.")), [ip("10.0.0.7")]);
        assert_eq!(a(&format!("web-prod-{h1}-s1.marathon.mesos.")), [ip("10.0.0.7")]);
        assert_eq!(set.srv["_web-prod._udp.marathon.mesos."].len(), 2);
        assert_eq!(set.srv["_leader._tcp.mesos."][0].port, 5050);
        assert!(
            set.in_domain("x.mesos.")
                && set.in_domain("mesos.")
                && !set.in_domain("xmesos.")
                && !set.in_domain("a.org.")
        );
    }

    #[test]
    fn the_ip_sources_and_resolved_addresses_are_followed() {
        let config = Config {
            ip_sources: vec![IpSource::Host],
            domain: "Cluster.Local".into(),
            ..Config::default()
        };
        let resolved = Resolved {
            agents: [("M-S3".to_string(), Ipv4Addr::new(10, 0, 0, 9))].into(),
            leader: None,
            unhealthy: ["web.2".to_string()].into(),
        };
        let set = RecordSet::build(&state(STATE), &resolved, &config);
        assert_eq!(set.domain, "cluster.local.");
        assert_eq!(
            set.a["web-prod.marathon.cluster.local."],
            [Ipv4Addr::new(10, 0, 0, 7)],
            "web.2 fails the scheduler's checks"
        );
        assert_eq!(set.a["lost.marathon.cluster.local."], [Ipv4Addr::new(10, 0, 0, 9)]);
    }
}
