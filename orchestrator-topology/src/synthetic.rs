//! A synthetic cluster: reports as real probes would send them, for
//! benchmarks and load tests at sizes no test machine has (1,000 hosts,
//! 10,000 containers, 100,000 processes, 200,000 connections).
//!
//! Every host runs the same number of containers and processes; each
//! connection goes from a process in a container on one host to the
//! first process of a container on another (one in twenty to a public
//! address instead), and both ends report it, as two probes would: the
//! client its socket and the server the accepted one.

use std::net::{IpAddr, Ipv4Addr};

use orchestrator_core::report::{ids, ControlDef, Node, NodeControls, Report, TopologyKind};

/// The cluster's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Hosts (one probe each).
    pub hosts: usize,
    /// Containers in all.
    pub containers: usize,
    /// Processes in all (at least one per container).
    pub processes: usize,
    /// Connections in all.
    pub connections: usize,
}

impl ClusterSpec {
    /// The size the targets are set for.
    pub const LARGE: ClusterSpec = ClusterSpec {
        hosts: 1000,
        containers: 10_000,
        processes: 100_000,
        connections: 200_000,
    };
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    client_host: u32,
    client_proc: u32,
    client_port: u16,
    server_host: u32,
    server_container: u32,
    public: bool,
}

/// A cluster layout from which reports are made.
#[derive(Debug)]
pub struct Cluster {
    spec: ClusterSpec,
    containers_per_host: usize,
    procs_per_host: usize,
    outgoing: Vec<Vec<Conn>>,
    incoming: Vec<Vec<Conn>>,
}

/// splitmix64, for a layout that is the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn host_ip(h: usize, last: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        (h / 250) as u8,
        (h % 250) as u8,
        (last % 250) as u8 + 2,
    ))
}

/// The id of container `c` on host `h`.
pub fn container_id(h: usize, c: usize) -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", mix(h as u64), mix(c as u64 + 1), h, c)
}

/// The host name of host `h`.
pub fn hostname(h: usize) -> String {
    format!("host-{h:04}")
}

impl Cluster {
    /// Lays a cluster out.
    pub fn new(spec: ClusterSpec) -> Self {
        let hosts = spec.hosts.max(1);
        let containers_per_host = (spec.containers / hosts).max(1);
        let procs_per_host = (spec.processes / hosts).max(containers_per_host);
        let per_host = spec.connections / hosts;
        let mut outgoing = vec![Vec::new(); hosts];
        let mut incoming = vec![Vec::new(); hosts];
        for (h, out) in outgoing.iter_mut().enumerate() {
            for j in 0..per_host {
                let r = mix((h * per_host + j) as u64);
                let server_host = if hosts == 1 {
                    0
                } else {
                    (h + 1 + (r as usize % (hosts - 1))) % hosts
                };
                let conn = Conn {
                    client_host: h as u32,
                    // Clients run in containers: their processes come first.
                    client_proc: ((r >> 20) as usize % (containers_per_host * 2).min(procs_per_host)) as u32,
                    client_port: 32768 + (j % 28000) as u16,
                    server_host: server_host as u32,
                    server_container: ((r >> 40) as usize % containers_per_host) as u32,
                    public: (r >> 8) % 20 == 0,
                };
                out.push(conn);
                if !conn.public {
                    incoming[server_host].push(conn);
                }
            }
        }
        Self {
            spec,
            containers_per_host,
            procs_per_host,
            outgoing,
            incoming,
        }
    }

    /// Its size.
    pub fn spec(&self) -> ClusterSpec {
        self.spec
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.outgoing.len()
    }

    /// The process a container's first process has.
    fn container_of_proc(&self, p: usize) -> Option<usize> {
        let per = (self.procs_per_host * 8 / 10 / self.containers_per_host).max(1);
        (p < per * self.containers_per_host).then_some(p / per)
    }

    fn first_proc(&self, c: usize) -> usize {
        c * (self.procs_per_host * 8 / 10 / self.containers_per_host).max(1)
    }

    /// Host `h`'s full report at `ts` (ms); `round` varies the metrics.
    pub fn report(&self, h: usize, ts: u64, round: u64) -> Report {
        let host = hostname(h);
        let mut r = Report::new(&format!("probe-{h:04}"), &host, ts);
        r.header.seq = round + 1;
        let t = &mut r.topologies;
        let wobble = |i: usize| (mix(i as u64 ^ round.rotate_left(17)) % 1000) as f64 / 10.0;

        let mut hn = Node::default()
            .with_latest("hostname", host.clone(), ts)
            .with_latest("os", "linux", ts)
            .with_latest("kernel_version", "6.1.0", ts)
            .with_latest("cpus", "16", ts);
        hn.set_metric("cpu_usage_percent", ts, wobble(h));
        hn.set_metric("memory_usage_bytes", ts, 8e9 + wobble(h) * 1e7);
        hn.set_metric("load1", ts, wobble(h + 1) / 10.0);
        hn.add_to_set("ips", host_ip(h, 0).to_string());
        t.host.insert(ids::host(&host), hn);

        t.container.controls = [
            ("docker_stop_container", "Stop", "fa-stop", 1),
            ("docker_restart_container", "Restart", "fa-redo", 2),
        ]
        .into_iter()
        .map(|(id, human, icon, rank)| {
            (
                id.to_string(),
                ControlDef {
                    human: human.into(),
                    icon: icon.into(),
                    rank,
                },
            )
        })
        .collect();
        for c in 0..self.containers_per_host {
            let id = container_id(h, c);
            let app = (h * self.containers_per_host + c) % 200;
            let image = format!("sha256:{:064x}", app % 50);
            let mut n = Node::default()
                .with_latest("docker_container_id", id.clone(), ts)
                .with_latest("docker_container_name", format!("app-{app}-{h}-{c}"), ts)
                .with_latest("docker_container_state", "running", ts)
                .with_latest("docker_image_id", image.clone(), ts)
                .with_latest("docker_image_name", format!("registry.local/app-{}", app % 50), ts)
                .with_latest("label_app", format!("app-{app}"), ts)
                .with_latest("label_tier", if c % 3 == 0 { "db" } else { "web" }, ts)
                .with_latest("docker_container_ip", host_ip(h, c + 1).to_string(), ts)
                .with_parent(TopologyKind::Host, host.clone())
                .with_parent(TopologyKind::ContainerImage, image.clone());
            n.set_metric("cpu_usage_percent", ts, wobble(h * 100 + c));
            n.set_metric("memory_usage_bytes", ts, 1e8 + wobble(c) * 1e6);
            n.controls = Some(NodeControls {
                ts,
                ids: ["docker_stop_container", "docker_restart_container"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            });
            if c % 2 == 0 {
                let pod = format!("pod-{h}-{c}");
                n = n.with_parent(TopologyKind::Pod, pod.clone());
                t.pod.insert(
                    pod.clone(),
                    Node::default()
                        .with_latest("kubernetes_name", format!("app-{app}-{c}"), ts)
                        .with_latest("kubernetes_namespace", "default", ts)
                        .with_parent(TopologyKind::Host, host.clone()),
                );
            }
            let service = ids::service("default", &format!("svc-{}", app % 100));
            n = n.with_parent(TopologyKind::Service, service.clone());
            t.service.insert(
                service,
                Node::default()
                    .with_latest("name", format!("svc-{}", app % 100), ts)
                    .with_latest("kubernetes_namespace", "default", ts),
            );
            t.container_image.insert(
                image,
                Node::default()
                    .with_latest("docker_image_name", format!("registry.local/app-{}", app % 50), ts)
                    .with_parent(TopologyKind::Host, host.clone()),
            );
            t.container.insert(id, n);
        }
        for p in 0..self.procs_per_host {
            let pid = 1000 + p as u32;
            let mut n = Node::default()
                .with_latest("pid", pid.to_string(), ts)
                .with_latest("ppid", "1", ts)
                .with_latest("name", format!("worker-{}", p % 37), ts)
                .with_latest("cmdline", format!("/usr/bin/worker-{} --serve {p}", p % 37), ts)
                .with_parent(TopologyKind::Host, host.clone());
            n.set_metric("cpu_usage_percent", ts, wobble(p) / 10.0);
            n.set_metric("memory_usage_bytes", ts, 1e7 + wobble(p + 7) * 1e5);
            if let Some(c) = self.container_of_proc(p) {
                n = n.with_parent(TopologyKind::Container, container_id(h, c));
            }
            t.process.insert(ids::process(&host, pid), n);
        }
        let endpoint_owner = |n: Node, proc: usize, container: Option<usize>| {
            let n = n
                .with_latest("pid", (1000 + proc).to_string(), ts)
                .with_parent(TopologyKind::Process, ids::process(&host, 1000 + proc as u32));
            match container {
                Some(c) => n.with_parent(TopologyKind::Container, container_id(h, c)),
                None => n,
            }
        };
        for conn in &self.outgoing[h] {
            let proc = conn.client_proc as usize;
            let container = self.container_of_proc(proc);
            let local_ip = container.map_or_else(|| host_ip(h, 0), |c| host_ip(h, c + 1));
            let remote = if conn.public {
                ids::endpoint(
                    "",
                    None,
                    IpAddr::V4(Ipv4Addr::new(52, 1, (conn.client_port >> 8) as u8, 7)),
                    443,
                )
            } else {
                let s = conn.server_host as usize;
                ids::endpoint("", None, host_ip(s, conn.server_container as usize + 1), 8080)
            };
            let local = ids::endpoint("", None, local_ip, conn.client_port);
            let n = endpoint_owner(Node::default().with_latest("state", "ESTABLISHED", ts), proc, container)
                .with_adjacent(remote.clone());
            t.endpoint.insert(local, n);
            t.endpoint.insert(remote, Node::default());
        }
        for c in 0..self.containers_per_host {
            let listen = ids::endpoint("", None, host_ip(h, c + 1), 8080);
            let n = endpoint_owner(
                Node::default().with_latest("listening", "true", ts),
                self.first_proc(c),
                Some(c),
            );
            t.endpoint.insert(listen, n);
        }
        for conn in &self.incoming[h] {
            let ch = conn.client_host as usize;
            let client_ip = self
                .container_of_proc(conn.client_proc as usize)
                .map_or_else(|| host_ip(ch, 0), |c| host_ip(ch, c + 1));
            let server = ids::endpoint("", None, host_ip(h, conn.server_container as usize + 1), 8080);
            let client = ids::endpoint("", None, client_ip, conn.client_port);
            t.endpoint.insert(client, Node::default().with_adjacent(server));
        }
        r
    }

    /// Every host's full report for one round.
    pub fn round(&self, ts: u64, round: u64) -> Vec<Report> {
        (0..self.hosts()).map(|h| self.report(h, ts, round)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up() {
        let c = Cluster::new(ClusterSpec {
            hosts: 10,
            containers: 100,
            processes: 1000,
            connections: 2000,
        });
        let round = c.round(1000, 0);
        let containers: usize = round.iter().map(|r| r.topologies.container.nodes.len()).sum();
        let processes: usize = round.iter().map(|r| r.topologies.process.nodes.len()).sum();
        let edges: usize = round
            .iter()
            .flat_map(|r| r.topologies.endpoint.nodes.values())
            .filter(|n| n.parents.contains_key(&TopologyKind::Process))
            .map(|n| n.adjacency.len())
            .sum();
        assert_eq!((containers, processes), (100, 1000));
        assert_eq!(edges, 2000, "one client edge per connection");
    }
}
