//! What the DNS is built from: the parts of a Mesos master's
//! `/master/state` that Mesos-DNS reads. Parsing is lenient (missing
//! fields take defaults, unknown ones are ignored), so it reads this
//! project's master and Apache Mesos's alike.

use std::net::Ipv4Addr;

use serde::Deserialize;

/// A master's state, as far as discovery needs it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MasterState {
    /// `master@IP:PORT` of the leading master, where the master says.
    pub leader: Option<String>,
    /// The agents.
    pub slaves: Vec<Agent>,
    /// The frameworks with their tasks.
    pub frameworks: Vec<Framework>,
}

/// An agent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Host name (an address or a name to resolve).
    pub hostname: String,
    /// `slave(1)@IP:PORT`, where the master says.
    pub pid: Option<String>,
}

/// A framework.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Framework {
    /// Framework id.
    pub id: String,
    /// Its name (`marathon`): the DNS sub-domain of its tasks.
    pub name: String,
    /// Its active tasks.
    pub tasks: Vec<Task>,
}

/// A task.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// Task name (Marathon: the app id, reversed and dotted: `web.prod`).
    pub name: String,
    /// The agent it runs on.
    pub slave_id: String,
    /// `TASK_RUNNING`, …
    pub state: String,
    /// Its resources; only `ports` (`"[31000-31001, 31005-31005]"`) is read.
    pub resources: TaskResources,
    /// Its status updates, oldest first.
    pub statuses: Vec<Status>,
    /// The ports the framework named, where it did (Mesos `DiscoveryInfo`).
    pub discovery: Option<Discovery>,
}

/// The resources of a task.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaskResources {
    /// Port ranges in Mesos's text form.
    pub ports: Option<String>,
}

/// A task status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The state it reported.
    pub state: String,
    /// The health check's verdict, where the task has checks.
    pub healthy: Option<bool>,
    /// The container's addresses.
    pub container_status: Option<ContainerStatus>,
}

/// The container part of a status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerStatus {
    /// Its networks.
    pub network_infos: Vec<NetworkInfo>,
}

/// One network of a container.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkInfo {
    /// Its addresses.
    pub ip_addresses: Vec<IpAddress>,
}

/// One address of a container.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct IpAddress {
    /// The address.
    pub ip_address: Option<String>,
}

/// What a framework says about finding a task (Mesos `DiscoveryInfo`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Discovery {
    /// Its name, if it differs from the task's.
    pub name: Option<String>,
    /// Its ports.
    pub ports: Option<DiscoveryPorts>,
}

/// The ports of a `DiscoveryInfo`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DiscoveryPorts {
    /// The ports.
    pub ports: Vec<DiscoveryPort>,
}

/// One named port.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DiscoveryPort {
    /// The port number.
    pub number: u32,
    /// `tcp` or `udp`.
    pub protocol: Option<String>,
    /// Its name (`http`).
    pub name: Option<String>,
}

impl Task {
    /// The status that counts: the latest.
    pub fn latest(&self) -> Option<&Status> {
        self.statuses.last()
    }

    /// Whether the task is running and not failing its health checks.
    pub fn serving(&self) -> bool {
        self.state == "TASK_RUNNING" && self.latest().and_then(|s| s.healthy) != Some(false)
    }

    /// The container's own IPv4 addresses, from the latest status that
    /// names any (Mesos-DNS's `netinfo` source).
    pub fn container_ips(&self) -> Vec<Ipv4Addr> {
        self.statuses
            .iter()
            .rev()
            .filter_map(|s| s.container_status.as_ref())
            .map(|c| {
                c.network_infos
                    .iter()
                    .flat_map(|n| &n.ip_addresses)
                    .filter_map(|a| a.ip_address.as_deref()?.parse().ok())
                    .collect::<Vec<Ipv4Addr>>()
            })
            .find(|ips| !ips.is_empty())
            .unwrap_or_default()
    }

    /// Its ports with their protocols: the named ones of its discovery
    /// info where it has them, else every port of its resources for both
    /// `tcp` and `udp`, as Mesos-DNS does.
    pub fn ports(&self) -> Vec<(u16, Protocol)> {
        let named: Vec<(u16, Protocol)> = self
            .discovery
            .iter()
            .flat_map(|d| d.ports.iter().flat_map(|p| &p.ports))
            .filter_map(|p| {
                let number = u16::try_from(p.number).ok().filter(|n| *n != 0)?;
                let proto = match p.protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("udp") => Protocol::Udp,
                    _ => Protocol::Tcp,
                };
                Some((number, proto))
            })
            .collect();
        if !named.is_empty() {
            return named;
        }
        parse_ranges(self.resources.ports.as_deref().unwrap_or(""))
            .into_iter()
            .flat_map(|p| [(p, Protocol::Tcp), (p, Protocol::Udp)])
            .collect()
    }
}

/// A transport protocol of an SRV record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `_tcp`
    Tcp,
    /// `_udp`
    Udp,
}

impl Protocol {
    /// The SRV label: `_tcp` or `_udp`.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "_tcp",
            Protocol::Udp => "_udp",
        }
    }
}

/// Most ports one task's ranges may expand to: a task that claims more
/// (`[1-65535]`) gets its first ones only, not 65,535 records each.
pub const MAX_TASK_PORTS: usize = 64;

/// Ports of Mesos's range text (`[31000-31001, 31005-31005]`); malformed
/// parts are skipped.
pub fn parse_ranges(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in text.trim().trim_start_matches('[').trim_end_matches(']').split(',') {
        let mut bounds = part.trim().splitn(2, '-');
        let (Some(lo), hi) = (bounds.next(), bounds.next()) else {
            continue;
        };
        let Ok(lo) = lo.trim().parse::<u16>() else { continue };
        let hi = match hi {
            Some(h) => match h.trim().parse::<u16>() {
                Ok(h) => h,
                Err(_) => continue,
            },
            None => lo,
        };
        for p in lo..=hi {
            if out.len() == MAX_TASK_PORTS {
                return out;
            }
            out.push(p);
        }
    }
    out
}

/// The IPv4 address of a libprocess pid (`slave(1)@10.0.0.1:5051`).
pub fn pid_ip(pid: &str) -> Option<Ipv4Addr> {
    let host = pid.rsplit_once('@')?.1;
    host.rsplit_once(':').map_or(host, |(h, _)| h).parse().ok()
}

/// The `IP:PORT` of a libprocess pid.
pub fn pid_addr(pid: &str) -> Option<(Ipv4Addr, u16)> {
    let (host, port) = pid.rsplit_once('@')?.1.rsplit_once(':')?;
    Some((host.parse().ok()?, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mesos_state_and_its_ports() {
        let state: MasterState = serde_json::from_str(
            r#"{"leader":"master@10.0.0.1:5050","slaves":[{"id":"S1","hostname":"a1","pid":"slave(1)@10.0.0.7:5051"}],
                "frameworks":[{"id":"F1","name":"marathon","unknown":1,"tasks":[
                  {"id":"web.1","name":"web.prod","slave_id":"S1","state":"TASK_RUNNING",
                   "resources":{"cpus":0.1,"ports":"[31000-31001, 31005-31005]"},
                   "statuses":[{"state":"TASK_RUNNING","container_status":{"network_infos":[{"ip_addresses":[{"ip_address":"172.17.0.2"}]}]}},
                               {"state":"TASK_RUNNING","healthy":false}]}]}]}"#,
        )
        .unwrap();
        let task = &state.frameworks[0].tasks[0];
        assert_eq!(task.container_ips(), [Ipv4Addr::new(172, 17, 0, 2)]);
        assert!(!task.serving(), "its latest status fails its health check");
        assert_eq!(task.ports().len(), 6);
        assert_eq!(
            pid_ip(state.leader.as_deref().unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            pid_addr("slave(1)@10.0.0.7:5051"),
            Some((Ipv4Addr::new(10, 0, 0, 7), 5051))
        );
        assert_eq!(parse_ranges("[1-65535]").len(), MAX_TASK_PORTS);
        assert_eq!(parse_ranges("[x-1, 5-5, 7]"), [5, 7]);
        assert!(parse_ranges("").is_empty());
    }
}
