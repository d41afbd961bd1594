//! A node as a view lists it: its label, shape, state and metrics, and
//! whether the filters show it.

use std::borrow::Cow;
use std::sync::Arc;

use orchestrator_core::report::{Node, TopologyKind};

use crate::store::{id_hash, ProbeState};

use super::view::{Choice, Filters, View};

/// A node as a view lists it: what a summary row or a graph node needs.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSummary {
    /// The node id (a pseudo node's starts with `pseudo;`).
    pub id: String,
    /// Its name.
    pub label: String,
    /// A second line (host, pid, count).
    pub label_minor: String,
    /// Drawn as.
    pub shape: &'static str,
    /// Not a real node of the cluster.
    pub pseudo: bool,
    /// Its probe went silent past the window.
    pub stale: bool,
    /// `running`, `paused`, `restarting`, `stopped` or `unhealthy`
    /// (containers; other nodes are `running`).
    pub state: &'static str,
    /// The probe that reported it (controls go there).
    pub probe: Option<Arc<str>>,
    /// How many nodes of the underlying kind it stands for (image → containers).
    pub count: u32,
    /// Latest metric values.
    pub metrics: Vec<(Cow<'static, str>, f64)>,
}

pub(super) const KNOWN_METRICS: [&str; 8] = [
    "cpu_usage_percent",
    "memory_usage_bytes",
    "open_files_count",
    "load1",
    "network_rx_bytes_per_second",
    "network_tx_bytes_per_second",
    "memory_usage_percent",
    "processes",
];

pub(super) fn metric_values(node: &Node) -> Vec<(Cow<'static, str>, f64)> {
    node.metrics
        .iter()
        .filter_map(|(name, m)| {
            let last = m.last()?;
            let name = KNOWN_METRICS
                .iter()
                .find(|k| **k == name.as_str())
                .map_or_else(|| Cow::Owned(name.clone()), |k| Cow::Borrowed(*k));
            Some((name, last.value))
        })
        .collect()
}

/// A container counts as a system one when labelled so or when it is a
/// Kubernetes pod's infrastructure container.
pub fn is_system_container(n: &Node) -> bool {
    n.latest("label_orchestrator.role") == Some("system")
        || n.latest("label_works.weave.role") == Some("system")
        || n.latest("label_io.kubernetes.container.name") == Some("POD")
        || n.latest("docker_container_name")
            .is_some_and(|c| c.trim_start_matches('/').starts_with("k8s_POD"))
}

/// A node's state as the UI colours it: a container's Docker state (with a
/// failing health check as `unhealthy`); every other node is running.
pub(super) fn state_of(kind: TopologyKind, n: &Node) -> &'static str {
    if kind != TopologyKind::Container {
        return "running";
    }
    if n.latest("docker_container_status")
        .is_some_and(|s| s.contains("(unhealthy)"))
    {
        return "unhealthy";
    }
    match n.latest("docker_container_state") {
        Some("running") | None => "running",
        Some("paused") => "paused",
        Some("restarting") => "restarting",
        Some(_) => "stopped",
    }
}

pub(super) fn container_running(n: &Node) -> bool {
    matches!(n.latest("docker_container_state"), Some("running" | "paused") | None)
}

pub(super) fn label_of(kind: TopologyKind, id: &str, n: &Node) -> (String, String) {
    let get = |k: &str| n.latest(k).unwrap_or("").to_string();
    match kind {
        TopologyKind::Process => {
            let name = n.latest("name").filter(|s| !s.is_empty()).unwrap_or(id);
            let host = id.rsplit_once(';').map_or("", |(h, _)| h);
            let pid = n.latest("pid").unwrap_or("?");
            let mut minor = String::with_capacity(host.len() + pid.len() + 3);
            minor.push_str(host);
            minor.push_str(" (");
            minor.push_str(pid);
            minor.push(')');
            (name.to_string(), minor)
        }
        TopologyKind::Container => {
            let name = n.latest("docker_container_name").unwrap_or(id).trim_start_matches('/');
            let host = n.parents_of(TopologyKind::Host).next().unwrap_or("");
            (name.to_string(), host.to_string())
        }
        TopologyKind::ContainerImage => {
            let name = n.latest("docker_image_name").unwrap_or(id);
            (name.to_string(), String::new())
        }
        TopologyKind::Host => (n.latest("hostname").unwrap_or(id).to_string(), get("os")),
        TopologyKind::Pod => (
            n.latest("kubernetes_name").unwrap_or(id).to_string(),
            get("kubernetes_namespace"),
        ),
        TopologyKind::Service => (
            n.latest("name").unwrap_or(id).to_string(),
            n.latest("service_kind")
                .or_else(|| n.latest("kubernetes_namespace"))
                .unwrap_or("")
                .to_string(),
        ),
        TopologyKind::Endpoint => (id.to_string(), String::new()),
    }
}

pub(super) fn shape_of(view: View) -> &'static str {
    match view {
        View::Processes => "square",
        View::Containers => "hexagon",
        View::ContainersByImage => "hexagon",
        View::Hosts => "circle",
        View::Pods => "heptagon",
        View::Services => "cloud",
    }
}

/// A node's summary, or `None` when the filters hide it.
pub(super) fn summarise(
    view: View,
    filters: &Filters,
    id: &str,
    node: &Node,
    probe: &Arc<str>,
    stale: bool,
) -> Option<NodeSummary> {
    let kind = view.kind();
    if kind == TopologyKind::Container {
        let system = is_system_container(node);
        let running = container_running(node);
        let shown = match filters.system {
            Choice::Default => !system,
            Choice::Other => system,
            Choice::Both => true,
        } && match filters.stopped {
            Choice::Default => running,
            Choice::Other => !running,
            Choice::Both => true,
        };
        if !shown {
            return None;
        }
    }
    let (label, label_minor) = label_of(kind, id, node);
    if !filters.query.is_empty() && !filters.query.matches(kind, &label, Some(node)) {
        return None;
    }
    Some(NodeSummary {
        id: id.to_string(),
        label,
        label_minor,
        shape: shape_of(view),
        pseudo: false,
        stale,
        state: state_of(kind, node),
        probe: Some(probe.clone()),
        count: 1,
        metrics: metric_values(node),
    })
}

/// The summaries of one run of probes' nodes (a thread's share).
pub(super) fn summarise_probes(view: View, filters: &Filters, probes: &[Live<'_>]) -> Vec<(u64, NodeSummary)> {
    let kind = view.kind();
    let mut out = Vec::new();
    for p in probes {
        for (id, node) in &p.state.report.topologies.get(kind).nodes {
            if let Some(s) = summarise(view, filters, id, node, &p.state.probe, p.stale) {
                out.push((id_hash(id), s));
            }
        }
    }
    out
}

/// A live probe's state, and whether it has gone stale.
#[derive(Clone, Copy)]
pub(super) struct Live<'a> {
    pub(super) state: &'a ProbeState,
    pub(super) stale: bool,
}
