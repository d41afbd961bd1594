//! Rendering: a view's nodes and the edges between them, mapped from
//! the probes' connections through the store's endpoint owner index, with
//! pseudo nodes for far ends nobody owns.

use std::net::IpAddr;

use petgraph::graph::{Graph, NodeIndex};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::store::{id_hash, End, Owner, ReportStore};

use super::rendered::Rendered;
use super::summary::{summarise_probes, Live, NodeSummary};
use super::view::{Filters, View};

pub(super) fn is_public(ip: IpAddr) -> bool {
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

/// Builds a view's graph.
pub(super) struct Builder<'a> {
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
pub(super) struct Mapper {
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
pub(super) const UNCONTAINED: u64 = 0x756e_636f_6e74_6169;
pub(super) const IP: u64 = 0x6970_6164_6472_6573;
pub(super) const IN_INTERNET: u64 = 0x696e_7465_726e_6574;
pub(super) const OUT_INTERNET: u64 = 0x6f75_7469_6e74_6572;

/// Node counts above which summaries are built on every core.
pub(super) const PARALLEL_NODES: usize = 20_000;

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
pub(super) const PARALLEL_EDGES: usize = 50_000;

pub(super) fn pair(src: NodeIndex, dst: NodeIndex) -> u64 {
    (src.index() as u64) << 32 | dst.index() as u64
}

/// A pseudo node one end of a connection needs.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pseudo {
    Uncontained(u64),
    Internet { client: bool },
    Ip(IpAddr),
}

/// Where one end of a connection lands without making a node: `Ok(None)`
/// when the edge is dropped, `Err` when it needs a pseudo node.
pub(super) fn fast_end(
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

pub(super) type Landing = Result<Option<NodeIndex>, Pseudo>;

/// A thread's share of mapped connections: node pairs, and ends that need pseudo nodes.
pub(super) type MappedEdges = (Vec<u64>, Vec<(Landing, Landing)>);

/// Maps a run of probes' connections: node pairs (sorted, deduplicated)
/// and the ends that need pseudo nodes.
pub(super) fn map_edges(b: &Builder<'_>, m: &Mapper, store: &ReportStore, probes: &[Live<'_>]) -> MappedEdges {
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
pub(super) fn land(b: &mut Builder<'_>, m: &Mapper, l: Landing) -> Option<NodeIndex> {
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

/// Renders every view (what `GET /api/topology` counts).
pub fn render_all(store: &ReportStore, now_ms: u64) -> Vec<Rendered> {
    View::ALL
        .into_iter()
        .map(|v| render(store, v, &Filters::default(), now_ms))
        .collect()
}
