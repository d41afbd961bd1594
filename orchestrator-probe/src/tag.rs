//! Joins what independent collectors found: which container a process or
//! an endpoint belongs to, which Marathon app a plain process runs for.
//!
//! Collectors only write the facts they see (a process's cgroup container
//! id and network namespace, a container's init pid, an endpoint's pid);
//! this pure pass turns them into parents, so each collector stays
//! testable alone and the join is tested once.

use std::collections::HashMap;

use orchestrator_core::report::{ids, Node, Report, TopologyKind};

/// Adds container and service parents across topologies: the join of one
/// whole report.
pub fn tag(report: &mut Report, host: &str, now_ms: u64) {
    let join = Join::of(&[&*report]);
    join.apply(report, host, now_ms);
}

/// Which container each process and each network namespace belongs to,
/// indexed from the container and process nodes of one or more reports.
///
/// The running probe keeps each collector's last output apart and
/// refreshes them at different rates; the index is built from all of them
/// and applied to the ones just refreshed ([`Join::apply`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Join {
    container_of_pid: HashMap<u32, String>,
    container_of_netns: HashMap<String, String>,
}

impl Join {
    /// The index of the containers and processes in `parts`.
    pub fn of(parts: &[&Report]) -> Join {
        let containers = || parts.iter().flat_map(|r| r.topologies.container.nodes.iter());
        let processes = || parts.iter().flat_map(|r| r.topologies.process.nodes.values());
        // Container init pids, for the ancestry fallback.
        let init_pid: HashMap<u32, &str> = containers()
            .filter_map(|(id, n)| Some((n.latest("docker_container_pid")?.parse().ok()?, id.as_str())))
            .collect();
        let ppid: HashMap<u32, u32> = processes()
            .filter_map(|n| Some((n.latest("pid")?.parse().ok()?, n.latest("ppid")?.parse().ok()?)))
            .collect();
        let known = |id: &str| parts.iter().any(|r| r.topologies.container.nodes.contains_key(id));
        let mut container_of_pid: HashMap<u32, String> = HashMap::new();
        for n in processes() {
            let Some(pid) = n.latest("pid").and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            let by_cgroup = n.latest("cgroup_container_id").filter(|c| known(c));
            let found = by_cgroup.or_else(|| {
                // Up the parent chain to a container's init process (bounded:
                // a corrupt table must not loop).
                let mut p = pid;
                for _ in 0..64 {
                    if let Some(c) = init_pid.get(&p) {
                        return Some(*c);
                    }
                    p = *ppid.get(&p)?;
                    if p <= 1 {
                        return None;
                    }
                }
                None
            });
            if let Some(c) = found {
                container_of_pid.insert(pid, c.to_string());
            }
        }
        // Network namespaces other than the host's that belong to one container.
        let mut container_of_netns: HashMap<String, String> = HashMap::new();
        for n in processes() {
            let (Some(pid), Some(ns)) = (n.latest("pid").and_then(|p| p.parse::<u32>().ok()), n.latest("netns")) else {
                continue;
            };
            if let Some(c) = container_of_pid.get(&pid) {
                container_of_netns.entry(ns.to_string()).or_insert_with(|| c.clone());
            }
        }
        Join {
            container_of_pid,
            container_of_netns,
        }
    }

    /// Adds container parents to the processes and endpoints of `report`,
    /// and a service node (with its parent edges) for every process of a
    /// Marathon app.
    pub fn apply(&self, report: &mut Report, host: &str, now_ms: u64) {
        self.apply_with(report, host, now_ms, |_, _, _| {});
    }

    /// [`Join::apply`], calling `changed` with every node it changed or
    /// added (what a part carried under an older join must publish).
    pub fn apply_with(
        &self,
        report: &mut Report,
        host: &str,
        now_ms: u64,
        mut changed: impl FnMut(TopologyKind, &str, &Node),
    ) {
        let t = &mut report.topologies;
        let mut services: Vec<(String, Node)> = Vec::new();
        for (id, n) in &mut t.process.nodes {
            let mut touched = false;
            let pid = n.latest("pid").and_then(|p| p.parse::<u32>().ok());
            if let Some(c) = pid.and_then(|p| self.container_of_pid.get(&p)) {
                touched |= n.parents.entry(TopologyKind::Container).or_default().insert(c.clone());
            }
            if let Some(app) = n.latest("app_id").map(str::to_string) {
                let service = ids::service("marathon", &app);
                touched |= n
                    .parents
                    .entry(TopologyKind::Service)
                    .or_default()
                    .insert(service.clone());
                services.push((
                    service,
                    Node::default()
                        .with_latest("name", app, now_ms)
                        .with_latest("service_kind", "marathon", now_ms)
                        .with_parent(TopologyKind::Host, ids::host(host)),
                ));
            }
            if touched {
                changed(TopologyKind::Process, id, n);
            }
        }
        for (id, n) in services {
            if !t.service.nodes.contains_key(&id) {
                changed(TopologyKind::Service, &id, &n);
            }
            t.service.insert(id, n);
        }
        for (id, n) in &mut t.endpoint.nodes {
            let by_pid = n
                .latest("pid")
                .and_then(|p| p.parse::<u32>().ok())
                .and_then(|p| self.container_of_pid.get(&p));
            let by_ns = n.latest("netns").and_then(|ns| self.container_of_netns.get(ns));
            if let Some(c) = by_pid.or(by_ns) {
                if n.parents.entry(TopologyKind::Container).or_default().insert(c.clone()) {
                    changed(TopologyKind::Endpoint, id, n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_and_endpoints_find_their_containers() {
        let mut r = Report::new("p", "h", 0);
        let c1 = "a".repeat(64);
        let c2 = "b".repeat(64);
        r.topologies.container.insert(
            c1.clone(),
            Node::default().with_latest("docker_container_pid", "100", 0),
        );
        r.topologies.container.insert(
            c2.clone(),
            Node::default().with_latest("docker_container_pid", "200", 0),
        );
        let proc_node = |pid: u32, ppid: u32| {
            Node::default()
                .with_latest("pid", pid.to_string(), 0)
                .with_latest("ppid", ppid.to_string(), 0)
        };
        // 101 by cgroup, 201 → 200 by ancestry, 300 in no container, 400 a Marathon task.
        r.topologies.process.insert(
            "h;101".into(),
            proc_node(101, 100).with_latest("cgroup_container_id", c1.clone(), 0),
        );
        r.topologies
            .process
            .insert("h;201".into(), proc_node(201, 200).with_latest("netns", "77", 0));
        r.topologies.process.insert("h;200".into(), proc_node(200, 1));
        r.topologies.process.insert("h;300".into(), proc_node(300, 1));
        r.topologies
            .process
            .insert("h;400".into(), proc_node(400, 1).with_latest("app_id", "/web", 0));
        r.topologies
            .endpoint
            .insert(";10.0.0.1;80".into(), Node::default().with_latest("pid", "101", 0));
        r.topologies
            .endpoint
            .insert(";10.0.0.2;80".into(), Node::default().with_latest("netns", "77", 0));
        tag(&mut r, "h", 0);
        let p = &r.topologies.process.nodes;
        let parents = |n: &Node| {
            n.parents_of(TopologyKind::Container)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(parents(&p["h;101"]), vec![c1.clone()]);
        assert_eq!(parents(&p["h;201"]), vec![c2.clone()]);
        assert!(parents(&p["h;300"]).is_empty());
        let e = &r.topologies.endpoint.nodes;
        assert_eq!(parents(&e[";10.0.0.1;80"]), vec![c1]);
        assert_eq!(parents(&e[";10.0.0.2;80"]), vec![c2]);
        assert_eq!(
            p["h;400"].parents_of(TopologyKind::Service).collect::<Vec<_>>(),
            vec!["marathon;/web"]
        );
        assert_eq!(r.topologies.service.nodes["marathon;/web"].latest("name"), Some("/web"));

        // Tagging again changes nothing; a part tagged before a container
        // was known reports exactly the nodes the new join changes.
        let join = Join::of(&[&r]);
        let mut changed = Vec::new();
        join.apply_with(&mut r, "h", 0, |k, id, _| changed.push((k, id.to_string())));
        assert!(changed.is_empty(), "{changed:?}");
        let mut carried = Report::new("p", "h", 0);
        carried
            .topologies
            .endpoint
            .insert(";10.0.0.1;80".into(), Node::default().with_latest("pid", "101", 0));
        carried
            .topologies
            .endpoint
            .insert(";10.0.0.9;80".into(), Node::default().with_latest("pid", "999", 0));
        join.apply_with(&mut carried, "h", 0, |k, id, _| changed.push((k, id.to_string())));
        assert_eq!(changed, [(TopologyKind::Endpoint, ";10.0.0.1;80".to_string())]);
    }
}
