//! The report wire model shared by the probe and the topology app.
//!
//! A [`Report`] is what one probe knows about its host at one moment: seven
//! [`Topologies`] (endpoints, processes, containers, container images, hosts,
//! pods, services) of [`Node`]s. Nodes carry timestamped latest values (the
//! newest write wins per key), sets, adjacency (edges to other nodes of the
//! same topology), parents in other topologies, and metrics.
//!
//! # Why merge is a semilattice
//!
//! The app merges reports from many probes, full reports with deltas, and
//! retried publishes that may arrive twice or out of order. If merge is
//! commutative, associative and idempotent, none of that matters: any order
//! and any repetition of the same reports gives the same view, so the app
//! never has to sort or deduplicate its input (property-tested in
//! `tests/report.rs`). Every field merges that way: latest values by
//! `(timestamp, value)`, sets and edges by union, metric samples by union
//! keeping the newest [`MAX_SAMPLES`].
//!
//! ```
//! use orchestrator_core::report::{ids, Node, Report, TopologyKind};
//!
//! let mut a = Report::new("probe-1", "web-1", 1_000);
//! a.topologies.process.insert(
//!     ids::process("web-1", 42),
//!     Node::default().with_latest("cmdline", "nginx", 1_000),
//! );
//! let mut b = Report::new("probe-1", "web-1", 2_000);
//! b.topologies.process.insert(
//!     ids::process("web-1", 42),
//!     Node::default().with_latest("cmdline", "nginx -g daemon off;", 2_000),
//! );
//! let mut ab = a.clone();
//! ab.merge(&b);
//! let mut ba = b.clone();
//! ba.merge(&a);
//! assert_eq!(ab, ba);
//! let node = &ab.topologies.get(TopologyKind::Process).nodes["web-1;42"];
//! assert_eq!(node.latest("cmdline"), Some("nginx -g daemon off;"));
//! ```

mod codec;
pub mod compact;
pub mod control;
pub mod ids;
mod merged;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use codec::{decode, encode, Limits, ReportError, CONTENT_TYPE, WIRE_VERSION};
pub use compact::{VecMap, VecSet};
pub use merged::encode_merged;

/// Samples kept per metric in a node (the newest ones); the app keeps the
/// long history in its own time series.
pub const MAX_SAMPLES: usize = 32;

/// The seven topologies a report holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// Network endpoints (`host;addr;port`).
    Endpoint,
    /// Processes (`host;pid`).
    Process,
    /// Containers (container id).
    Container,
    /// Container images (image id).
    ContainerImage,
    /// Hosts (host name).
    Host,
    /// Kubernetes pods (pod uid).
    Pod,
    /// Services: Kubernetes services and this project's Marathon apps.
    Service,
}

impl TopologyKind {
    /// Every topology, in wire order.
    pub const ALL: [TopologyKind; 7] = [
        TopologyKind::Endpoint,
        TopologyKind::Process,
        TopologyKind::Container,
        TopologyKind::ContainerImage,
        TopologyKind::Host,
        TopologyKind::Pod,
        TopologyKind::Service,
    ];

    /// The wire name (`container_image`).
    pub fn as_str(self) -> &'static str {
        match self {
            TopologyKind::Endpoint => "endpoint",
            TopologyKind::Process => "process",
            TopologyKind::Container => "container",
            TopologyKind::ContainerImage => "container_image",
            TopologyKind::Host => "host",
            TopologyKind::Pod => "pod",
            TopologyKind::Service => "service",
        }
    }
}

impl std::str::FromStr for TopologyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopologyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown topology {s:?}"))
    }
}

/// A value with the time it was observed (ms since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Latest {
    /// When.
    pub ts: u64,
    /// What.
    pub value: String,
}

/// One metric sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When (ms since the epoch).
    pub ts: u64,
    /// The value.
    pub value: f64,
}

/// A metric of a node: its newest samples and the extremes ever seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Samples ordered by time, at most [`MAX_SAMPLES`].
    pub samples: Vec<Sample>,
    /// The smallest value seen.
    pub min: f64,
    /// The largest value seen.
    pub max: f64,
}

impl Metric {
    /// A metric with one sample.
    pub fn sample(ts: u64, value: f64) -> Metric {
        Metric {
            samples: vec![Sample { ts, value }],
            min: value,
            max: value,
        }
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Sample> {
        self.samples.last().copied()
    }

    /// Union of samples (one per timestamp, the larger value on a tie),
    /// newest [`MAX_SAMPLES`] kept; extremes combined.
    pub fn merge(&mut self, other: &Metric) {
        self.min = fmin(self.min, other.min);
        self.max = fmax(self.max, other.max);
        if other.samples.is_empty() {
            return;
        }
        let mut all = Vec::with_capacity(self.samples.len() + other.samples.len());
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.samples, &other.samples);
        while i < a.len() || j < b.len() {
            let next = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.ts == y.ts => {
                    i += 1;
                    j += 1;
                    Sample {
                        ts: x.ts,
                        value: fmax(x.value, y.value),
                    }
                }
                (Some(x), Some(y)) if x.ts < y.ts => {
                    i += 1;
                    *x
                }
                (Some(_), Some(y)) | (None, Some(y)) => {
                    j += 1;
                    *y
                }
                (Some(x), None) => {
                    i += 1;
                    *x
                }
                (None, None) => break,
            };
            all.push(next);
        }
        let keep_from = all.len().saturating_sub(MAX_SAMPLES);
        all.drain(..keep_from);
        self.samples = all;
    }
}

/// Per key, the larger value wins: the merge of latest values (newest
/// timestamp, then value) and of control definitions.
fn merge_max<V: Ord + Clone>(mine: &mut BTreeMap<String, V>, other: &BTreeMap<String, V>) {
    for (k, v) in other {
        match mine.get_mut(k) {
            Some(m) if *m >= *v => {}
            Some(m) => *m = v.clone(),
            None => {
                mine.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `max` that is a total, symmetric choice even with NaN (NaN loses).
fn fmax(a: f64, b: f64) -> f64 {
    if a.total_cmp(&b).is_ge() {
        a
    } else {
        b
    }
}

fn fmin(a: f64, b: f64) -> f64 {
    if a.total_cmp(&b).is_le() {
        a
    } else {
        b
    }
}

/// The controls a node offers now (ids into [`Topology::controls`]); the
/// newest set wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeControls {
    /// When the set was observed.
    pub ts: u64,
    /// Control ids.
    pub ids: BTreeSet<String>,
}

/// One node of a topology. Its fields are small sorted vectors
/// ([`compact`]) that serialise as maps and sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Latest values by key (the newest write wins).
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub latest: VecMap<String, Latest>,
    /// Sets by key (merged by union), e.g. `ips`.
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub sets: VecMap<String, VecSet<String>>,
    /// Edges to nodes of the same topology.
    #[serde(default, skip_serializing_if = "VecSet::is_empty")]
    pub adjacency: VecSet<String>,
    /// Parents in other topologies (a process's container and host).
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub parents: VecMap<TopologyKind, VecSet<String>>,
    /// Metrics by name (`cpu_usage_percent`, `memory_usage_bytes`).
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub metrics: VecMap<String, Metric>,
    /// Controls the owning probe offers on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<NodeControls>,
}

impl Node {
    /// Sets a latest value (builder style).
    #[must_use]
    pub fn with_latest(mut self, key: &str, value: impl Into<String>, ts: u64) -> Node {
        self.set_latest(key, value, ts);
        self
    }

    /// Sets a latest value.
    pub fn set_latest(&mut self, key: &str, value: impl Into<String>, ts: u64) {
        self.latest.insert(
            key.to_string(),
            Latest {
                ts,
                value: value.into(),
            },
        );
    }

    /// A latest value.
    pub fn latest(&self, key: &str) -> Option<&str> {
        self.latest.get(key).map(|l| l.value.as_str())
    }

    /// Adds a parent (builder style).
    #[must_use]
    pub fn with_parent(mut self, kind: TopologyKind, id: impl Into<String>) -> Node {
        self.parents.entry(kind).or_default().insert(id.into());
        self
    }

    /// Adds an edge.
    #[must_use]
    pub fn with_adjacent(mut self, id: impl Into<String>) -> Node {
        self.adjacency.insert(id.into());
        self
    }

    /// Records one metric sample.
    pub fn set_metric(&mut self, name: &str, ts: u64, value: f64) {
        self.metrics.insert(name.to_string(), Metric::sample(ts, value));
    }

    /// Adds a value to a set.
    pub fn add_to_set(&mut self, key: &str, value: impl Into<String>) {
        self.sets.entry(key.to_string()).or_default().insert(value.into());
    }

    /// The parents of one kind.
    pub fn parents_of(&self, kind: TopologyKind) -> impl Iterator<Item = &str> {
        self.parents.get(&kind).into_iter().flatten().map(String::as_str)
    }

    /// Takes the observation times of `previous` for the latest values
    /// that have not changed since, so that an unchanged node compares
    /// equal to its previous observation (and stays out of a delta).
    /// A merge keeps giving the same answer: the value is the same.
    pub fn keep_unchanged_since(&mut self, previous: &Node) {
        for (key, now) in &mut self.latest {
            if let Some(before) = previous.latest.get(key) {
                if before.value == now.value && before.ts < now.ts {
                    now.ts = before.ts;
                }
            }
        }
    }

    /// Frees the room its fields keep for more entries (a growing
    /// `Vec` makes room for four): for nodes a probe keeps between cycles,
    /// ten thousand of which mostly hold one or two entries per field.
    pub fn shrink_to_fit(&mut self) {
        self.latest.shrink_to_fit();
        self.sets.shrink_to_fit();
        for set in self.sets.values_mut() {
            set.shrink_to_fit();
        }
        self.adjacency.shrink_to_fit();
        self.parents.shrink_to_fit();
        for set in self.parents.values_mut() {
            set.shrink_to_fit();
        }
        self.metrics.shrink_to_fit();
    }

    /// Merges another observation of the same node into this one.
    pub fn merge(&mut self, other: &Node) {
        for (k, v) in &other.latest {
            match self.latest.get_mut(k) {
                Some(mine) if *mine >= *v => {}
                Some(mine) => *mine = v.clone(),
                None => {
                    self.latest.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in &other.sets {
            let set = self.sets.entry(k.clone()).or_default();
            set.extend(v.iter().cloned());
        }
        self.adjacency.extend(other.adjacency.iter().cloned());
        for (k, v) in &other.parents {
            self.parents.entry(*k).or_default().extend(v.iter().cloned());
        }
        for (k, v) in &other.metrics {
            match self.metrics.get_mut(k) {
                Some(mine) => mine.merge(v),
                None => {
                    self.metrics.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(c) = &other.controls {
            if self.controls.as_ref().is_none_or(|mine| mine < c) {
                self.controls = Some(c.clone());
            }
        }
    }
}

/// What a control looks like in a UI.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ControlDef {
    /// Shown to people (`Stop`).
    pub human: String,
    /// An icon name.
    pub icon: String,
    /// Sort order among a node's controls.
    pub rank: u32,
}

/// The nodes of one topology, plus the controls its nodes may offer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Nodes by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, Node>,
    /// Control definitions by id (`docker_stop`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub controls: BTreeMap<String, ControlDef>,
}

impl Topology {
    /// Adds a node, merging it into one of the same id.
    pub fn insert(&mut self, id: String, node: Node) {
        match self.nodes.get_mut(&id) {
            Some(mine) => mine.merge(&node),
            None => {
                self.nodes.insert(id, node);
            }
        }
    }

    /// Merges a node into the one of the same id, or adds a copy.
    pub fn absorb(&mut self, id: &str, node: &Node) {
        match self.nodes.get_mut(id) {
            Some(mine) => mine.merge(node),
            None => {
                self.nodes.insert(id.to_string(), node.clone());
            }
        }
    }

    /// Merges another topology into this one.
    pub fn merge(&mut self, other: &Topology) {
        for (id, n) in &other.nodes {
            self.absorb(id, n);
        }
        merge_max(&mut self.controls, &other.controls);
    }

    /// No nodes and no controls.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.controls.is_empty()
    }
}

/// The seven topologies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topologies {
    /// Endpoints.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub endpoint: Topology,
    /// Processes.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub process: Topology,
    /// Containers.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub container: Topology,
    /// Container images.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub container_image: Topology,
    /// Hosts.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub host: Topology,
    /// Pods.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub pod: Topology,
    /// Services.
    #[serde(default, skip_serializing_if = "Topology::is_empty")]
    pub service: Topology,
}

impl Topologies {
    /// One topology.
    pub fn get(&self, kind: TopologyKind) -> &Topology {
        match kind {
            TopologyKind::Endpoint => &self.endpoint,
            TopologyKind::Process => &self.process,
            TopologyKind::Container => &self.container,
            TopologyKind::ContainerImage => &self.container_image,
            TopologyKind::Host => &self.host,
            TopologyKind::Pod => &self.pod,
            TopologyKind::Service => &self.service,
        }
    }

    /// One topology, to change.
    pub fn get_mut(&mut self, kind: TopologyKind) -> &mut Topology {
        match kind {
            TopologyKind::Endpoint => &mut self.endpoint,
            TopologyKind::Process => &mut self.process,
            TopologyKind::Container => &mut self.container,
            TopologyKind::ContainerImage => &mut self.container_image,
            TopologyKind::Host => &mut self.host,
            TopologyKind::Pod => &mut self.pod,
            TopologyKind::Service => &mut self.service,
        }
    }

    /// Every topology with its kind.
    pub fn iter(&self) -> impl Iterator<Item = (TopologyKind, &Topology)> {
        TopologyKind::ALL.into_iter().map(move |k| (k, self.get(k)))
    }

    /// Merges another set of topologies into this one.
    pub fn merge(&mut self, other: &Topologies) {
        for kind in TopologyKind::ALL {
            self.get_mut(kind).merge(other.get(kind));
        }
    }

    /// Nodes in all topologies.
    pub fn node_count(&self) -> usize {
        self.iter().map(|(_, t)| t.nodes.len()).sum()
    }
}

/// Who sent a report and when; the newest header wins a merge.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Header {
    /// When it was collected (ms since the epoch).
    pub ts: u64,
    /// The probe's publish counter.
    pub seq: u64,
    /// The probe's id (stable across restarts of the same host's probe).
    pub probe_id: String,
    /// The host the probe runs on.
    pub hostname: String,
    /// A full report replaces what the app holds for this probe; a delta
    /// holds only the nodes that changed since the previous report.
    pub full: bool,
}

/// One probe's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Who and when.
    pub header: Header,
    /// What.
    pub topologies: Topologies,
}

impl Report {
    /// An empty full report.
    pub fn new(probe_id: &str, hostname: &str, ts: u64) -> Report {
        Report {
            header: Header {
                ts,
                seq: 0,
                probe_id: probe_id.to_string(),
                hostname: hostname.to_string(),
                full: true,
            },
            topologies: Topologies::default(),
        }
    }

    /// Merges another report into this one (the newest header is kept).
    pub fn merge(&mut self, other: &Report) {
        if other.header > self.header {
            self.header = other.header.clone();
        }
        self.topologies.merge(&other.topologies);
    }

    /// The nodes of `self` that are new or differ from `previous`: what a
    /// delta report carries. Topology control definitions ride along when
    /// they changed.
    pub fn delta_since(&self, previous: &Report) -> Report {
        let mut out = Report {
            header: Header {
                full: false,
                ..self.header.clone()
            },
            topologies: Topologies::default(),
        };
        out.merge_changes(self, previous);
        out
    }

    /// A newer header's time and sequence, keeping whether this one is full.
    fn take_newer_header(&mut self, other: &Header) {
        if *other > self.header {
            self.header = Header {
                full: self.header.full,
                ..other.clone()
            };
        }
    }

    /// A refresh of one source, in one ordered pass over both maps:
    /// settles `fresh` against `previous` ([`Node::keep_unchanged_since`])
    /// and merges into `self` what [`Report::delta_since`] would then hold.
    pub fn merge_refresh(&mut self, fresh: &mut Report, previous: &Report) {
        self.take_newer_header(&fresh.header);
        for kind in TopologyKind::ALL {
            let before = previous.topologies.get(kind);
            let now = fresh.topologies.get_mut(kind);
            let target = self.topologies.get_mut(kind);
            let mut old = before.nodes.iter().peekable();
            for (id, node) in &mut now.nodes {
                while old.next_if(|(k, _)| *k < id).is_some() {}
                let unchanged = match old.next_if(|(k, _)| *k == id) {
                    Some((_, b)) => {
                        node.keep_unchanged_since(b);
                        b == node
                    }
                    None => false,
                };
                if !unchanged {
                    target.absorb(id, node);
                }
            }
            if now.controls != before.controls {
                merge_max(&mut target.controls, &now.controls);
            }
        }
    }

    /// A refresh that wrote only changes
    /// ([`Written::Changes`](crate::Written::Changes)): lays `patch` over
    /// `part`, the source's whole last output — each node settled against
    /// the one it replaces ([`Node::keep_unchanged_since`]) — drops the
    /// `gone` nodes, and merges into `self` the nodes that differ. Only
    /// the changes are ever held twice.
    pub fn merge_patch(&mut self, part: &mut Report, mut patch: Report, gone: &[(TopologyKind, String)]) {
        self.take_newer_header(&patch.header);
        for (kind, id) in gone {
            part.topologies.get_mut(*kind).nodes.remove(id);
        }
        for kind in TopologyKind::ALL {
            let changes = std::mem::take(patch.topologies.get_mut(kind));
            let target = self.topologies.get_mut(kind);
            let whole = part.topologies.get_mut(kind);
            for (id, mut node) in changes.nodes {
                match whole.nodes.get_mut(&id) {
                    Some(old) => {
                        node.keep_unchanged_since(old);
                        if *old != node {
                            target.absorb(&id, &node);
                            *old = node;
                        }
                    }
                    None => {
                        target.absorb(&id, &node);
                        whole.nodes.insert(id, node);
                    }
                }
            }
            if !changes.controls.is_empty() && changes.controls != whole.controls {
                merge_max(&mut target.controls, &changes.controls);
                whole.controls = changes.controls;
            }
        }
        part.header = patch.header;
    }

    /// Merges into `self` what [`Report::delta_since`] would hold — the
    /// nodes of `now` that are new or differ from `previous`, and control
    /// definitions that changed — without building the delta first.
    pub fn merge_changes(&mut self, now: &Report, previous: &Report) {
        self.take_newer_header(&now.header);
        for kind in TopologyKind::ALL {
            let (now, before) = (now.topologies.get(kind), previous.topologies.get(kind));
            let target = self.topologies.get_mut(kind);
            for (id, node) in &now.nodes {
                if before.nodes.get(id) != Some(node) {
                    target.absorb(id, node);
                }
            }
            if now.controls != before.controls {
                merge_max(&mut target.controls, &now.controls);
            }
        }
    }
}
