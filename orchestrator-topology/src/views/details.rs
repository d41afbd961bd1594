//! Node details: everything about one node of a view — metadata, labels,
//! sparklines, parents, children, connections and the controls its probe
//! offers.

use std::collections::BTreeMap;

use orchestrator_core::report::{ControlDef, Node, TopologyKind};
use serde::Serialize;

use super::{Rendered, View};
use crate::store::ReportStore;
use crate::timeseries::Point;

/// A metric with its recent samples (from the report) and, for hosts and
/// containers, the app's own 15 s series for the last hour.
#[derive(Clone, Debug, Serialize)]
pub struct MetricDetails {
    /// Latest value.
    pub value: f64,
    /// Smallest and largest seen in the samples.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// The report's recent samples (`[ts, value]`), oldest first.
    pub samples: Vec<(u64, f64)>,
    /// The app's series, if it keeps one for the node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Point>,
}

/// A node's relatives in another topology.
#[derive(Clone, Debug, Serialize)]
pub struct Relative {
    /// Its topology.
    pub topology: TopologyKind,
    /// Its id.
    pub id: String,
    /// Its name.
    pub label: String,
}

/// A control the node offers.
#[derive(Clone, Debug, Serialize)]
pub struct ControlView {
    /// The control id (what `POST /api/control/{probe}/{node}/{control}` takes).
    pub id: String,
    /// Its definition.
    #[serde(flatten)]
    pub def: ControlDef,
    /// The probe that runs it.
    pub probe: String,
}

/// Everything about one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeDetails {
    /// Id.
    pub id: String,
    /// Name.
    pub label: String,
    /// Second line.
    #[serde(rename = "labelMinor")]
    pub label_minor: String,
    /// A pseudo node.
    pub pseudo: bool,
    /// The probe reporting it.
    pub probe: Option<String>,
    /// Latest key/values, labels and environment aside.
    pub metadata: BTreeMap<String, String>,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
    /// Sets (ports, mounts, addresses).
    pub sets: BTreeMap<String, Vec<String>>,
    /// Metrics with sparklines.
    pub metrics: BTreeMap<String, MetricDetails>,
    /// Parents in other topologies.
    pub parents: Vec<Relative>,
    /// Children (a container's processes, a host's containers, …).
    pub children: Vec<Relative>,
    /// Nodes it connects to.
    pub outgoing: Vec<String>,
    /// Nodes connecting to it.
    pub incoming: Vec<String>,
    /// Controls its probe offers now.
    pub controls: Vec<ControlView>,
}

fn label(kind: TopologyKind, id: &str, node: Option<&Node>) -> String {
    node.map_or_else(|| id.to_string(), |n| super::summary::label_of(kind, id, n).0)
}

/// The details of `id` in a rendered view; `None` when the view lacks it.
pub fn details(store: &ReportStore, rendered: &Rendered, id: &str, now_ms: u64) -> Option<NodeDetails> {
    let summary = rendered.node(id)?;
    let view = rendered.view;
    let kind = view.kind();
    let mut out = NodeDetails {
        id: id.to_string(),
        label: summary.label.clone(),
        label_minor: summary.label_minor.clone(),
        pseudo: summary.pseudo,
        probe: summary.probe.as_deref().map(str::to_string),
        metadata: BTreeMap::new(),
        labels: BTreeMap::new(),
        sets: BTreeMap::new(),
        metrics: BTreeMap::new(),
        parents: Vec::new(),
        children: Vec::new(),
        outgoing: rendered.adjacency(id).into_iter().map(str::to_string).collect(),
        incoming: rendered.incoming(id).into_iter().map(str::to_string).collect(),
        controls: Vec::new(),
    };
    if summary.pseudo {
        return Some(out);
    }
    // The node as every live probe reported it, merged.
    let mut merged: Option<Node> = None;
    for (probe_id, p) in store.live_probes(now_ms) {
        let topology = p.report.topologies.get(kind);
        if let Some(n) = topology.nodes.get(id) {
            if let Some(c) = &n.controls {
                for cid in &c.ids {
                    if let Some(def) = topology.controls.get(cid) {
                        out.controls.push(ControlView {
                            id: cid.clone(),
                            def: def.clone(),
                            probe: probe_id.clone(),
                        });
                    }
                }
            }
            match &mut merged {
                Some(m) => m.merge(n),
                None => merged = Some(n.clone()),
            }
        }
        collect_children(view, id, p, &mut out.children);
    }
    out.controls
        .sort_by(|a, b| a.def.rank.cmp(&b.def.rank).then(a.id.cmp(&b.id)));
    let node = merged?;
    for (k, v) in &node.latest {
        if let Some(l) = k.strip_prefix("label_") {
            out.labels.insert(l.to_string(), v.value.clone());
        } else {
            out.metadata.insert(k.clone(), v.value.clone());
        }
    }
    out.sets = node
        .sets
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
        .collect();
    let series = store.series(id);
    let hour_ago = i64::try_from(now_ms).unwrap_or(i64::MAX) - 3_600_000;
    for (name, m) in &node.metrics {
        let Some(last) = m.last() else { continue };
        out.metrics.insert(
            name.clone(),
            MetricDetails {
                value: last.value,
                min: m.min,
                max: m.max,
                samples: m.samples.iter().map(|s| (s.ts, s.value)).collect(),
                series: series
                    .and_then(|s| s.metrics.get(name))
                    .map(|s| s.query(hour_ago, i64::MAX))
                    .unwrap_or_default(),
            },
        );
    }
    for (pk, ids) in &node.parents {
        for pid in ids {
            let parent = store
                .live_probes(now_ms)
                .find_map(|(_, p)| p.report.topologies.get(*pk).nodes.get(pid));
            out.parents.push(Relative {
                topology: *pk,
                id: pid.clone(),
                label: label(*pk, pid, parent),
            });
        }
    }
    Some(out)
}

fn collect_children(view: View, id: &str, p: &crate::store::ProbeState, out: &mut Vec<Relative>) {
    let t = &p.report.topologies;
    let mut push = |kind: TopologyKind, cid: &str, n: &Node| {
        out.push(Relative {
            topology: kind,
            id: cid.to_string(),
            label: super::summary::label_of(kind, cid, n).0,
        });
    };
    let has_parent = |n: &Node, kind: TopologyKind| n.parents_of(kind).any(|x| x == id);
    match view {
        View::Containers => {
            for (cid, n) in &t.process.nodes {
                if has_parent(n, TopologyKind::Container) {
                    push(TopologyKind::Process, cid, n);
                }
            }
        }
        View::Hosts => {
            if p.report.header.hostname == id {
                for (cid, n) in &t.container.nodes {
                    push(TopologyKind::Container, cid, n);
                }
            }
        }
        View::ContainersByImage => {
            for (cid, n) in &t.container.nodes {
                if n.latest("docker_image_id") == Some(id) || has_parent(n, TopologyKind::ContainerImage) {
                    push(TopologyKind::Container, cid, n);
                }
            }
        }
        View::Pods | View::Services => {
            let kind = view.kind();
            for (cid, n) in &t.container.nodes {
                if has_parent(n, kind) {
                    push(TopologyKind::Container, cid, n);
                }
            }
            for (cid, n) in &t.process.nodes {
                if has_parent(n, kind) && n.parents_of(TopologyKind::Container).next().is_none() {
                    push(TopologyKind::Process, cid, n);
                }
            }
        }
        View::Processes => {}
    }
}
