//! Views: the store's nodes of one kind as a petgraph graph, with edges
//! from network connections mapped up to that kind.
//!
//! Rendering walks each live probe's own nodes and its connection list
//! once; a connection's far end is found through the store's endpoint
//! owner index (an O(1) lookup by hashed id), so a view costs time in
//! proportion to its nodes and connections, never probes × probes.
//! Far ends nobody owns become pseudo nodes: the Internet (in for clients,
//! out for servers) for public addresses, one node per address otherwise;
//! processes outside containers gather in one pseudo node per host.

mod details;

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use orchestrator_core::report::{Node, TopologyKind};
use petgraph::graph::{Graph, NodeIndex};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

pub use details::{details, NodeDetails};

use crate::error::TopologyError;
use crate::search::Query;
use crate::store::{id_hash, End, Owner, ProbeState, ReportStore};

/// The views the app serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// Processes, with connections between them.
    Processes,
    /// Containers (and uncontained processes per host).
    Containers,
    /// Containers grouped by image.
    ContainersByImage,
    /// Hosts.
    Hosts,
    /// Kubernetes pods.
    Pods,
    /// Kubernetes services and Marathon apps.
    Services,
}

impl View {
    /// Every view.
    pub const ALL: [View; 6] = [
        View::Processes,
        View::Containers,
        View::ContainersByImage,
        View::Hosts,
        View::Pods,
        View::Services,
    ];

    /// The URL name.
    pub fn id(self) -> &'static str {
        match self {
            View::Processes => "processes",
            View::Containers => "containers",
            View::ContainersByImage => "containers-by-image",
            View::Hosts => "hosts",
            View::Pods => "pods",
            View::Services => "services",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            View::Processes => "Processes",
            View::Containers => "Containers",
            View::ContainersByImage => "Container images",
            View::Hosts => "Hosts",
            View::Pods => "Pods",
            View::Services => "Services",
        }
    }

    /// The topology its nodes come from.
    pub fn kind(self) -> TopologyKind {
        match self {
            View::Processes => TopologyKind::Process,
            View::Containers => TopologyKind::Container,
            View::ContainersByImage => TopologyKind::ContainerImage,
            View::Hosts => TopologyKind::Host,
            View::Pods => TopologyKind::Pod,
            View::Services => TopologyKind::Service,
        }
    }
}

impl FromStr for View {
    type Err = TopologyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        View::ALL
            .into_iter()
            .find(|v| v.id() == s)
            .ok_or_else(|| TopologyError::UnknownView(s.chars().take(64).collect()))
    }
}

/// Three-way choices of the view filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// Only the first kind (application containers, running containers).
    #[default]
    Default,
    /// Only the other kind (system containers, stopped containers).
    Other,
    /// Both.
    Both,
}

/// What a view shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filters {
    /// Application (default), system or both kinds of containers.
    pub system: Choice,
    /// Running (default), stopped or both kinds of containers.
    pub stopped: Choice,
    /// Hide nodes without edges.
    pub hide_unconnected: bool,
    /// Hide pseudo nodes.
    pub hide_pseudo: bool,
    /// Only nodes matching this query.
    pub query: Query,
}

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

/// A rendered view.
#[derive(Debug)]
pub struct Rendered {
    /// Which view.
    pub view: View,
    /// The store generation it was rendered from.
    pub generation: u64,
    /// Nodes and edges (client → server).
    pub graph: Graph<NodeSummary, ()>,
    index: FxHashMap<u64, NodeIndex>,
    /// Per node: its id's hash, and an order-free fingerprint of the ids it
    /// has edges to, so diffs compare adjacency without building it.
    prints: Vec<(u64, u64)>,
}

const KNOWN_METRICS: [&str; 8] = [
    "cpu_usage_percent",
    "memory_usage_bytes",
    "open_files_count",
    "load1",
    "network_rx_bytes_per_second",
    "network_tx_bytes_per_second",
    "memory_usage_percent",
    "processes",
];

fn metric_values(node: &Node) -> Vec<(Cow<'static, str>, f64)> {
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

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
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
fn state_of(kind: TopologyKind, n: &Node) -> &'static str {
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

fn container_running(n: &Node) -> bool {
    matches!(n.latest("docker_container_state"), Some("running" | "paused") | None)
}

fn label_of(kind: TopologyKind, id: &str, n: &Node) -> (String, String) {
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

fn shape_of(view: View) -> &'static str {
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
fn summarise(
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
fn summarise_probes(view: View, filters: &Filters, probes: &[Live<'_>]) -> Vec<(u64, NodeSummary)> {
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

#[derive(Clone, Copy)]
struct Live<'a> {
    state: &'a ProbeState,
    stale: bool,
}

/// Builds a view's graph.
struct Builder<'a> {
    view: View,
    filters: &'a Filters,
    graph: Graph<NodeSummary, ()>,
    index: FxHashMap<u64, NodeIndex>,
    /// Pseudo nodes by key.
    pseudos: FxHashMap<u64, NodeIndex>,
    /// Each node's id hash, by node index.
    hashes: Vec<u64>,
    /// Pseudo nodes the query hides.
    hidden: FxHashSet<u64>,
}

impl Builder<'_> {
    fn add(&mut self, hash: u64, summary: NodeSummary) {
        if let Some(&ix) = self.index.get(&hash) {
            // Shared ids (an image on many hosts) merge into one node.
            let s = &mut self.graph[ix];
            s.count += 1;
            s.stale &= summary.stale;
            return;
        }
        let ix = self.graph.add_node(summary);
        self.index.insert(hash, ix);
        self.hashes.push(hash);
    }

    /// The pseudo node under `key`, made by `make` (id, label, minor) the
    /// first time.
    fn pseudo(&mut self, key: u64, make: impl FnOnce() -> (String, String, String)) -> Option<NodeIndex> {
        if let Some(&ix) = self.pseudos.get(&key) {
            return Some(ix);
        }
        if self.filters.hide_pseudo || self.hidden.contains(&key) {
            return None;
        }
        let (id, label, label_minor) = make();
        if !self.filters.query.is_empty() && !self.filters.query.matches(self.view.kind(), &label, None) {
            self.hidden.insert(key);
            return None;
        }
        let hash = id_hash(&id);
        let ix = self.graph.add_node(NodeSummary {
            id,
            label,
            label_minor,
            shape: "cloud",
            pseudo: true,
            stale: false,
            state: "running",
            probe: None,
            count: 1,
            metrics: Vec::new(),
        });
        self.pseudos.insert(key, ix);
        self.index.insert(hash, ix);
        self.hashes.push(hash);
        Some(ix)
    }
}

/// Maps endpoint owners to nodes of the view.
struct Mapper {
    view: View,
    /// container → pod, image or service (by view), process → service.
    up: FxHashMap<u64, u64>,
    hostnames: FxHashMap<u64, String>,
}

impl Mapper {
    /// The view node (hash) an owned endpoint maps to, or the host whose
    /// "uncontained" pseudo node it falls into.
    fn map(&self, o: &Owner) -> Result<u64, u64> {
        let found = match self.view {
            View::Processes => o.process,
            View::Containers => o.container,
            View::Hosts => o.host,
            View::ContainersByImage | View::Pods => self.up.get(&o.container).copied().unwrap_or(0),
            View::Services => self
                .up
                .get(&o.container)
                .or_else(|| self.up.get(&o.process))
                .copied()
                .unwrap_or(0),
        };
        if found == 0 {
            Err(o.host)
        } else {
            Ok(found)
        }
    }
}

/// Salts keeping pseudo node keys apart from node id hashes.
const UNCONTAINED: u64 = 0x756e_636f_6e74_6169;
const IP: u64 = 0x6970_6164_6472_6573;
const IN_INTERNET: u64 = 0x696e_7465_726e_6574;
const OUT_INTERNET: u64 = 0x6f75_7469_6e74_6572;

/// Node counts above which summaries are built on every core.
const PARALLEL_NODES: usize = 20_000;

/// Renders a view of the store at `now_ms`.
pub fn render(store: &ReportStore, view: View, filters: &Filters, now_ms: u64) -> Rendered {
    let kind = view.kind();
    let live: Vec<Live<'_>> = store
        .live_probes(now_ms)
        .map(|(_, p)| Live {
            state: p,
            stale: store.is_stale(p, now_ms),
        })
        .collect();
    let nodes: usize = live
        .iter()
        .map(|p| p.state.report.topologies.get(kind).nodes.len())
        .sum();
    let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 8);
    let parts: Vec<Vec<(u64, NodeSummary)>> = if nodes < PARALLEL_NODES || threads == 1 || live.len() < 2 {
        vec![summarise_probes(view, filters, &live)]
    } else {
        let chunk = live.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = live
                .chunks(chunk)
                .map(|c| scope.spawn(move || summarise_probes(view, filters, c)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        })
    };
    let mut b = Builder {
        view,
        filters,
        graph: Graph::with_capacity(nodes + 64, 0),
        index: FxHashMap::default(),
        pseudos: FxHashMap::default(),
        hashes: Vec::with_capacity(nodes + 64),
        hidden: FxHashSet::default(),
    };
    b.index.reserve(nodes + 64);
    for part in parts {
        for (hash, summary) in part {
            b.add(hash, summary);
        }
    }
    let mut mapper = Mapper {
        view,
        up: FxHashMap::default(),
        hostnames: live
            .iter()
            .map(|p| (p.state.host, p.state.report.header.hostname.clone()))
            .collect(),
    };
    if matches!(view, View::ContainersByImage | View::Pods | View::Services) {
        for p in &live {
            for (id, up) in &p.state.ups {
                let target = match view {
                    View::ContainersByImage => up.image,
                    View::Pods => up.pod,
                    _ => up.service,
                };
                if target != 0 {
                    mapper.up.insert(*id, target);
                }
            }
        }
    }
    // Connections whose ends are both real nodes are mapped on every core;
    // the few that need a pseudo node are made here after.
    let edges: usize = live.iter().map(|p| p.state.edges.len()).sum();
    let parts: Vec<MappedEdges> = if edges < PARALLEL_EDGES || threads == 1 || live.len() < 2 {
        vec![map_edges(&b, &mapper, store, &live)]
    } else {
        let chunk = live.len().div_ceil(threads);
        let (b, mapper) = (&b, &mapper);
        std::thread::scope(|scope| {
            let handles: Vec<_> = live
                .chunks(chunk)
                .map(|c| scope.spawn(move || map_edges(b, mapper, store, c)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        })
    };
    let mut pairs: Vec<u64> = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
    let mut slow = Vec::new();
    for (p, s) in parts {
        pairs.extend(p);
        slow.extend(s);
    }
    for (s, d) in slow {
        let (Some(src), Some(dst)) = (land(&mut b, &mapper, s), land(&mut b, &mapper, d)) else {
            continue;
        };
        if src != dst {
            pairs.push(pair(src, dst));
        }
    }
    // Sorted runs from each thread: the stable sort merges them in one pass.
    pairs.sort();
    pairs.dedup();
    b.graph.reserve_edges(pairs.len());
    for pair in pairs {
        b.graph.add_edge(
            NodeIndex::new((pair >> 32) as usize),
            NodeIndex::new((pair & 0xffff_ffff) as usize),
            (),
        );
    }
    let mut rendered = Rendered {
        view,
        generation: store.generation(),
        graph: b.graph,
        index: b.index,
        prints: Vec::new(),
    };
    let mut hashes = b.hashes;
    if filters.hide_unconnected {
        rendered.retain_connected();
        hashes = rendered.graph.node_weights().map(|n| id_hash(&n.id)).collect();
    }
    rendered.fingerprint(hashes);
    rendered
}

/// Edge counts above which connections are mapped on every core.
const PARALLEL_EDGES: usize = 50_000;

fn pair(src: NodeIndex, dst: NodeIndex) -> u64 {
    (src.index() as u64) << 32 | dst.index() as u64
}

/// A pseudo node one end of a connection needs.
#[derive(Clone, Copy, Debug)]
enum Pseudo {
    Uncontained(u64),
    Internet { client: bool },
    Ip(IpAddr),
}

/// Where one end of a connection lands without making a node: `Ok(None)`
/// when the edge is dropped, `Err` when it needs a pseudo node.
fn fast_end(
    b: &Builder<'_>,
    m: &Mapper,
    store: &ReportStore,
    end: End,
    client: bool,
) -> Result<Option<NodeIndex>, Pseudo> {
    let owner = match end {
        End::Owned(o) => o,
        End::Unowned { hash, ip } => match store.owner(hash) {
            Some(o) => *o,
            None if ip.is_loopback() || ip.is_unspecified() => return Ok(None),
            None if is_public(ip) => return Err(Pseudo::Internet { client }),
            None => return Err(Pseudo::Ip(ip)),
        },
    };
    match m.map(&owner) {
        Ok(hash) => Ok(b.index.get(&hash).copied()),
        Err(_) if matches!(b.view, View::Processes | View::Hosts) => Ok(None),
        Err(host) => Err(Pseudo::Uncontained(host)),
    }
}

type Landing = Result<Option<NodeIndex>, Pseudo>;

/// A thread's share of mapped connections: node pairs, and ends that need pseudo nodes.
type MappedEdges = (Vec<u64>, Vec<(Landing, Landing)>);

/// Maps a run of probes' connections: node pairs (sorted, deduplicated)
/// and the ends that need pseudo nodes.
fn map_edges(b: &Builder<'_>, m: &Mapper, store: &ReportStore, probes: &[Live<'_>]) -> MappedEdges {
    let mut pairs = Vec::new();
    let mut slow = Vec::new();
    for p in probes {
        for e in &p.state.edges {
            match (fast_end(b, m, store, e.src, true), fast_end(b, m, store, e.dst, false)) {
                (Ok(Some(s)), Ok(Some(d))) if s != d => pairs.push(pair(s, d)),
                (Ok(None), _) | (_, Ok(None)) | (Ok(_), Ok(_)) => {}
                ends => slow.push(ends),
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    (pairs, slow)
}

/// Makes (once) the pseudo node an end needs.
fn land(b: &mut Builder<'_>, m: &Mapper, l: Landing) -> Option<NodeIndex> {
    match l {
        Ok(ix) => ix,
        Err(Pseudo::Uncontained(host)) => {
            let hostname = m.hostnames.get(&host)?;
            let label = if b.view == View::Containers {
                "Uncontained"
            } else {
                "Unmanaged"
            };
            b.pseudo(host ^ UNCONTAINED, || {
                (format!("pseudo;uncontained;{hostname}"), label.into(), hostname.clone())
            })
        }
        Err(Pseudo::Internet { client: true }) => b.pseudo(IN_INTERNET, || {
            ("pseudo;in-theinternet".into(), "The Internet".into(), "Inbound".into())
        }),
        Err(Pseudo::Internet { client: false }) => b.pseudo(OUT_INTERNET, || {
            (
                "pseudo;out-theinternet".into(),
                "The Internet".into(),
                "Outbound".into(),
            )
        }),
        Err(Pseudo::Ip(ip)) => {
            let key = match ip {
                IpAddr::V4(v4) => u64::from(u32::from(v4)),
                IpAddr::V6(v6) => {
                    let bits = u128::from(v6);
                    (bits >> 64) as u64 ^ bits as u64
                }
            };
            b.pseudo(key ^ IP, || {
                (format!("pseudo;ip;{ip}"), ip.to_string(), "Unknown".into())
            })
        }
    }
}

impl Rendered {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// No nodes.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Every node.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeSummary> {
        self.graph.node_weights()
    }

    /// One node by id.
    pub fn node(&self, id: &str) -> Option<&NodeSummary> {
        self.index.get(&id_hash(id)).map(|ix| &self.graph[*ix])
    }

    /// A node's neighbours (ids, sorted), both directions.
    pub fn adjacency(&self, id: &str) -> Vec<&str> {
        let Some(ix) = self.index.get(&id_hash(id)) else {
            return Vec::new();
        };
        self.adjacency_of(*ix)
    }

    /// The ids a node has edges to (outgoing, as Scope's `adjacency`).
    fn adjacency_of(&self, ix: NodeIndex) -> Vec<&str> {
        let mut out: Vec<&str> = self.graph.neighbors(ix).map(|n| self.graph[n].id.as_str()).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Nodes with an edge into `id`.
    pub fn incoming(&self, id: &str) -> Vec<&str> {
        let Some(ix) = self.index.get(&id_hash(id)) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .graph
            .neighbors_directed(*ix, petgraph::Direction::Incoming)
            .map(|n| self.graph[n].id.as_str())
            .collect();
        out.sort_unstable();
        out
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Fingerprints adjacency, given each node's id hash by index.
    fn fingerprint(&mut self, hashes: Vec<u64>) {
        debug_assert_eq!(hashes.len(), self.graph.node_count());
        let mut adjacency = vec![0u64; hashes.len()];
        for e in self.graph.raw_edges() {
            let (a, z) = (e.source().index(), e.target().index());
            adjacency[a] = adjacency[a].wrapping_add(hashes[z].rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        self.prints = hashes.into_iter().zip(adjacency).collect();
    }

    /// Whether node `ix` of `self` and node `other_ix` of `other` show the
    /// same (summary and adjacency).
    pub(crate) fn same_node(&self, ix: NodeIndex, other: &Rendered, other_ix: NodeIndex) -> bool {
        self.prints[ix.index()].1 == other.prints[other_ix.index()].1 && self.graph[ix] == other.graph[other_ix]
    }

    /// The index of the node whose id hashes to `hash`.
    pub(crate) fn index_of(&self, hash: u64) -> Option<NodeIndex> {
        self.index.get(&hash).copied()
    }

    /// Node indices with their id hashes.
    pub(crate) fn indexed(&self) -> impl Iterator<Item = (NodeIndex, u64)> + '_ {
        self.prints
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (NodeIndex::new(i), *h))
    }

    /// One node with its adjacency by index.
    pub(crate) fn json_at(&self, ix: NodeIndex) -> NodeJson<'_> {
        NodeJson {
            summary: &self.graph[ix],
            adjacency: self.adjacency_of(ix),
        }
    }

    fn retain_connected(&mut self) {
        let graph = std::mem::take(&mut self.graph);
        let connected: Vec<bool> = graph
            .node_indices()
            .map(|ix| graph.neighbors_undirected(ix).next().is_some())
            .collect();
        self.graph = graph.filter_map(|ix, n| connected[ix.index()].then(|| n.clone()), |_, ()| Some(()));
        self.index = self
            .graph
            .node_indices()
            .map(|ix| (id_hash(&self.graph[ix].id), ix))
            .collect();
    }

    /// One node with its adjacency, as the JSON of the API shows it.
    pub fn node_json(&self, id: &str) -> Option<NodeJson<'_>> {
        let ix = *self.index.get(&id_hash(id))?;
        Some(NodeJson {
            summary: &self.graph[ix],
            adjacency: self.adjacency_of(ix),
        })
    }

    /// Every node with its adjacency.
    pub fn nodes_json(&self) -> impl Iterator<Item = NodeJson<'_>> {
        self.graph.node_indices().map(|ix| NodeJson {
            summary: &self.graph[ix],
            adjacency: self.adjacency_of(ix),
        })
    }
}

/// A node summary with its adjacency, serialised as the API answers.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeJson<'a> {
    /// The summary.
    pub summary: &'a NodeSummary,
    /// Ids it has edges to.
    pub adjacency: Vec<&'a str>,
}

struct Metrics<'a>(&'a [(Cow<'static, str>, f64)]);

impl Serialize for Metrics<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.summary;
        let mut st = s.serialize_struct("NodeSummary", 11)?;
        st.serialize_field("id", &n.id)?;
        st.serialize_field("label", &n.label)?;
        st.serialize_field("labelMinor", &n.label_minor)?;
        st.serialize_field("shape", n.shape)?;
        st.serialize_field("pseudo", &n.pseudo)?;
        st.serialize_field("stale", &n.stale)?;
        st.serialize_field("state", n.state)?;
        st.serialize_field("probe", &n.probe.as_deref())?;
        st.serialize_field("count", &n.count)?;
        st.serialize_field("metrics", &Metrics(&n.metrics))?;
        st.serialize_field("adjacency", &self.adjacency)?;
        st.end()
    }
}

/// Renders every view (what `GET /api/topology` counts).
pub fn render_all(store: &ReportStore, now_ms: u64) -> Vec<Rendered> {
    View::ALL
        .into_iter()
        .map(|v| render(store, v, &Filters::default(), now_ms))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use crate::synthetic::{Cluster, ClusterSpec};

    /// A small synthetic cluster's first round (other modules' tests use it too).
    pub(crate) fn store() -> ReportStore {
        let cluster = Cluster::new(ClusterSpec {
            hosts: 4,
            containers: 8,
            processes: 40,
            connections: 80,
        });
        let mut store = ReportStore::new(StoreConfig::default());
        for r in cluster.round(1_000, 0) {
            store.ingest(r, 1_000).unwrap();
        }
        store
    }

    #[test]
    fn every_view_has_its_nodes_and_edges_between_hosts() {
        let store = store();
        let hosts = render(&store, View::Hosts, &Filters::default(), 1_000);
        assert_eq!(hosts.nodes().filter(|n| !n.pseudo).count(), 4);
        assert!(hosts.edge_count() > 0, "connections between hosts");
        assert!(
            hosts.node("pseudo;out-theinternet").is_some(),
            "public servers are the Internet"
        );
        let containers = render(&store, View::Containers, &Filters::default(), 1_000);
        assert_eq!(containers.nodes().filter(|n| !n.pseudo).count(), 8);
        assert!(containers.edge_count() > 0);
        let processes = render(&store, View::Processes, &Filters::default(), 1_000);
        assert_eq!(processes.nodes().filter(|n| !n.pseudo).count(), 40);
        let images = render(&store, View::ContainersByImage, &Filters::default(), 1_000);
        assert!(images.nodes().filter(|n| !n.pseudo).all(|n| n.count >= 1));
        let pods = render(&store, View::Pods, &Filters::default(), 1_000);
        assert_eq!(
            pods.nodes().filter(|n| !n.pseudo).count(),
            4,
            "every other container is in a pod"
        );
        let services = render(&store, View::Services, &Filters::default(), 1_000);
        assert!(services.nodes().filter(|n| !n.pseudo).count() > 0);
        // Every edge of a view joins two of its nodes.
        for r in [&hosts, &containers, &processes, &images, &pods, &services] {
            for n in r.nodes_json() {
                for a in &n.adjacency {
                    assert!(r.node(a).is_some(), "{} → {a}", n.summary.id);
                }
            }
        }
    }

    #[test]
    fn filters_hide_what_they_say() {
        let store = store();
        let q = |text: &str| Filters {
            query: Query::parse(text).unwrap(),
            ..Filters::default()
        };
        let db = render(&store, View::Containers, &q("tier=db"), 1_000);
        assert!(db.nodes().filter(|n| !n.pseudo).count() < 8);
        let none = render(&store, View::Containers, &q("nothing-has-this"), 1_000);
        assert!(none.is_empty());
        let stopped = Filters {
            stopped: Choice::Other,
            ..Filters::default()
        };
        assert_eq!(
            render(&store, View::Containers, &stopped, 1_000)
                .nodes()
                .filter(|n| !n.pseudo)
                .count(),
            0
        );
        let connected = Filters {
            hide_unconnected: true,
            hide_pseudo: true,
            ..Filters::default()
        };
        let r = render(&store, View::Processes, &connected, 1_000);
        assert!(r.len() < 40 && !r.is_empty());
        assert!(r.nodes().all(|n| !n.pseudo));
        // Probes silent past the stale-node threshold leave the views.
        assert!(render(&store, View::Hosts, &Filters::default(), 1_000 + 301_000).is_empty());
    }

    #[test]
    fn diffs_tell_what_changed() {
        let mut store = store();
        let before = render(&store, View::Containers, &Filters::default(), 1_000);
        let reset = crate::diff::diff(None, &before);
        assert!(reset.reset && reset.add.len() == before.len());
        let cluster = Cluster::new(ClusterSpec {
            hosts: 4,
            containers: 8,
            processes: 40,
            connections: 80,
        });
        let mut r = cluster.report(0, 2_000, 1);
        r.topologies.container.nodes.pop_first();
        store.ingest(r, 2_000).unwrap();
        let after = render(&store, View::Containers, &Filters::default(), 2_000);
        let d = crate::diff::diff(Some(&before), &after);
        assert_eq!(d.remove.len(), 1, "{d:?}");
        assert!(!d.update.is_empty(), "metrics changed");
        assert!(crate::diff::diff(Some(&after), &after).is_empty());
    }
}
