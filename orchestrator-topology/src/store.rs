//! [`ReportStore`]: what every probe last said, merged incrementally.
//!
//! Each probe's state is its last full report with the deltas since laid
//! over it (a delta carries whole nodes, so a node in a delta replaces the
//! one held). A new report touches only its own probe's state and the
//! global *endpoint owner* index — which process, container and host owns
//! each address — that views use to turn connections into edges. Nothing
//! is re-merged across probes on ingest or on request.
//!
//! Ids are hashed once with xxh3 (64 bits) for the indexes; collisions
//! at this size are out of reach (2⁻⁴⁰ for a million endpoints).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use orchestrator_core::report::{ids, Node, Report, TopologyKind};
use rustc_hash::FxHashMap;

use crate::error::{Result, TopologyError};
use crate::timeseries::{Retention, TimeSeries};

/// The 64-bit hash of a node id used by the indexes.
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// How long the store keeps what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// A probe silent for longer is shown as stale (`--window`, 15 s).
    pub window: Duration,
    /// A probe silent for longer leaves the views (`--stale-node-threshold`, 5 m).
    pub stale_node_threshold: Duration,
    /// A probe silent for longer, and series older, are dropped by the
    /// cleanup (`--max-data-age`, 1 h).
    pub max_data_age: Duration,
    /// What each metric series keeps.
    pub retention: Retention,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15),
            stale_node_threshold: Duration::from_secs(300),
            max_data_age: Duration::from_secs(3600),
            retention: Retention::default(),
        }
    }
}

/// Who owns an endpoint (hashes of node ids; 0 for none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The owning probe's host node.
    pub host: u64,
    /// The process holding the socket.
    pub process: u64,
    /// The container the process runs in.
    pub container: u64,
}

/// What a container (or a process) belongs to, as id hashes (0 for none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Up {
    /// Its image.
    pub image: u64,
    /// Its pod.
    pub pod: u64,
    /// Its service (Kubernetes or Marathon).
    pub service: u64,
}

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Owned by a process (and maybe a container) a probe reported.
    Owned(Owner),
    /// Nobody owned it when the report came in: looked up again at render
    /// time, and shown as the Internet or an address if still unowned.
    Unowned {
        /// The endpoint id's hash.
        hash: u64,
        /// Its address.
        ip: IpAddr,
    },
}

/// One connection as a probe saw it (client → server), with both ends'
/// owners as known when the probe's report came in.
///
/// Resolving owners at ingest keeps rendering to array walks. An owner
/// that changes later (a port reused by another process) shows on the next
/// report of this probe, one publish interval later. A connection seen
/// from the server's side whose client another probe owns is not kept
/// here: that probe reports the same connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The client.
    pub src: End,
    /// The server.
    pub dst: End,
}

/// What the store holds for one probe.
#[derive(Debug)]
pub struct ProbeState {
    /// Its current report: the last full one with later deltas laid over.
    pub report: Report,
    /// The last sequence number applied.
    pub last_seq: u64,
    /// When the app received its last report (ms since the epoch).
    pub received_ms: u64,
    /// Reports applied.
    pub reports: u64,
    /// Its host node's id hash.
    pub host: u64,
    /// Its id, shared by the node summaries it reports.
    pub probe: std::sync::Arc<str>,
    /// Its connections.
    pub edges: Vec<Edge>,
    /// Its containers' images, pods and services, and its processes'
    /// services (by id hash), for the views that map connections up.
    pub ups: Vec<(u64, Up)>,
    /// The endpoints it owns in the index.
    owned: Vec<u64>,
}

/// What an ingest did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// The probe.
    pub probe: String,
    /// A full report (its state replaced) or a delta.
    pub full: bool,
    /// Nodes it carried.
    pub nodes: usize,
    /// Already applied (a retried publish): nothing changed.
    pub duplicate: bool,
}

/// A node's metric series.
#[derive(Debug)]
pub struct NodeSeries {
    /// Which topology the node is in.
    pub kind: TopologyKind,
    /// Series by metric name.
    pub metrics: BTreeMap<String, TimeSeries>,
    /// When it last got a sample (ms).
    pub updated_ms: u64,
}

/// All probes' reports, merged incrementally.
#[derive(Debug, Default)]
pub struct ReportStore {
    config: StoreConfig,
    probes: BTreeMap<String, ProbeState>,
    owners: FxHashMap<u64, Owner>,
    series: FxHashMap<String, NodeSeries>,
    generation: u64,
}

/// Topologies whose nodes get long-term series (processes come and go too
/// often, and their sparklines come from the report's own samples).
const SERIES_KINDS: [TopologyKind; 2] = [TopologyKind::Host, TopologyKind::Container];

impl ReportStore {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Bumped by every change; views and diffs key their caches on it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every probe's state, by probe id.
    pub fn probes(&self) -> &BTreeMap<String, ProbeState> {
        &self.probes
    }

    /// The probes shown in views at `now_ms` (not silent past the stale
    /// node threshold).
    pub fn live_probes(&self, now_ms: u64) -> impl Iterator<Item = (&String, &ProbeState)> {
        let cutoff = now_ms.saturating_sub(millis(self.config.stale_node_threshold));
        self.probes.iter().filter(move |(_, p)| p.received_ms >= cutoff)
    }

    /// Whether a probe's nodes are stale at `now_ms` (silent past the window).
    pub fn is_stale(&self, probe: &ProbeState, now_ms: u64) -> bool {
        probe.received_ms + millis(self.config.window) < now_ms
    }

    /// Who owns an endpoint.
    pub fn owner(&self, endpoint: u64) -> Option<&Owner> {
        self.owners.get(&endpoint)
    }

    /// The endpoint owner index's size.
    pub fn owned_endpoints(&self) -> usize {
        self.owners.len()
    }

    /// A node's series.
    pub fn series(&self, node: &str) -> Option<&NodeSeries> {
        self.series.get(node)
    }

    /// Number of nodes with series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Takes one decoded report, received at `now_ms`. Returns the old
    /// state it replaced (to be dropped off the hot path) beside the outcome.
    ///
    /// # Errors
    /// [`TopologyError::NeedFull`] for a delta that does not follow what is
    /// held; [`TopologyError::NoProbeId`] for a report without a probe id.
    pub fn ingest(&mut self, report: Report, now_ms: u64) -> Result<(Ingested, Option<Report>)> {
        let header = report.header.clone();
        if header.probe_id.is_empty() {
            return Err(TopologyError::NoProbeId);
        }
        let nodes = report.topologies.node_count();
        let held = self.probes.get(&header.probe_id).map(|p| p.last_seq);
        let mut outcome = Ingested {
            probe: header.probe_id.clone(),
            full: header.full,
            nodes,
            duplicate: false,
        };
        // A probe restarted from 1 sends a full report: always taken.
        if !header.full {
            match held {
                Some(seq) if header.seq <= seq => {
                    outcome.duplicate = true;
                    return Ok((outcome, None));
                }
                Some(seq) if header.seq == seq + 1 => {}
                _ => {
                    return Err(TopologyError::NeedFull {
                        probe: header.probe_id,
                        seq: header.seq,
                        held: held.map_or_else(|| "nothing".into(), |s| format!("up to {s}")),
                    })
                }
            }
        }
        self.record_series(&report, now_ms);
        let old = if header.full {
            let host = id_hash(&ids::host(&header.hostname));
            let previous = self.probes.insert(
                header.probe_id.clone(),
                ProbeState {
                    report,
                    last_seq: header.seq,
                    received_ms: now_ms,
                    reports: 0,
                    host,
                    probe: header.probe_id.as_str().into(),
                    edges: Vec::new(),
                    ups: Vec::new(),
                    owned: Vec::new(),
                },
            );
            let state = self.probes.get_mut(&header.probe_id).expect("just inserted");
            if let Some(p) = &previous {
                state.reports = p.reports;
                for e in &p.owned {
                    if self.owners.get(e).is_some_and(|o| o.host == p.host) {
                        self.owners.remove(e);
                    }
                }
            }
            previous.map(|p| p.report)
        } else {
            let state = self.probes.get_mut(&header.probe_id).expect("held");
            for kind in TopologyKind::ALL {
                let delta = report.topologies.get(kind);
                let mine = state.report.topologies.get_mut(kind);
                mine.controls
                    .extend(delta.controls.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let mut report = report;
            for kind in TopologyKind::ALL {
                let nodes = std::mem::take(&mut report.topologies.get_mut(kind).nodes);
                state.report.topologies.get_mut(kind).nodes.extend(nodes);
            }
            state.report.header = header.clone();
            state.last_seq = header.seq;
            state.received_ms = now_ms;
            for e in std::mem::take(&mut state.owned) {
                if self.owners.get(&e).is_some_and(|o| o.host == state.host) {
                    self.owners.remove(&e);
                }
            }
            None
        };
        let state = self.probes.get_mut(&header.probe_id).expect("held");
        state.reports += 1;
        index_endpoints(state, &mut self.owners);
        self.generation += 1;
        Ok((outcome, old))
    }

    fn record_series(&mut self, report: &Report, now_ms: u64) {
        for kind in SERIES_KINDS {
            for (id, node) in &report.topologies.get(kind).nodes {
                if node.metrics.is_empty() {
                    continue;
                }
                let entry = match self.series.get_mut(id.as_str()) {
                    Some(e) => e,
                    None => self.series.entry(id.clone()).or_insert_with(|| NodeSeries {
                        kind,
                        metrics: BTreeMap::new(),
                        updated_ms: now_ms,
                    }),
                };
                entry.updated_ms = now_ms;
                for (name, metric) in &node.metrics {
                    let Some(last) = metric.last() else { continue };
                    let series = match entry.metrics.get_mut(name.as_str()) {
                        Some(s) => s,
                        None => entry
                            .metrics
                            .entry(name.clone())
                            .or_insert_with(|| TimeSeries::new(self.config.retention)),
                    };
                    series.record(i64::try_from(last.ts).unwrap_or(i64::MAX), last.value);
                }
            }
        }
    }

    /// Drops probes silent past the max data age and series not fed as
    /// long; returns how many of each went.
    pub fn cleanup(&mut self, now_ms: u64) -> (usize, usize) {
        let cutoff = now_ms.saturating_sub(millis(self.config.max_data_age));
        let gone: Vec<String> = self
            .probes
            .iter()
            .filter(|(_, p)| p.received_ms < cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some(p) = self.probes.remove(id) {
                for e in &p.owned {
                    if self.owners.get(e).is_some_and(|o| o.host == p.host) {
                        self.owners.remove(e);
                    }
                }
            }
        }
        let before = self.series.len();
        self.series.retain(|_, s| s.updated_ms >= cutoff);
        if !gone.is_empty() || before != self.series.len() {
            self.generation += 1;
        }
        (gone.len(), before - self.series.len())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The first parent of a kind, hashed.
fn parent_hash(node: &Node, kind: TopologyKind) -> u64 {
    node.parents_of(kind).next().map_or(0, id_hash)
}

/// Rebuilds a probe's edges and its entries in the owner index.
fn index_endpoints(state: &mut ProbeState, owners: &mut FxHashMap<u64, Owner>) {
    let topologies = &state.report.topologies;
    let endpoints = &topologies.endpoint.nodes;
    // The processes' containers, for endpoints the tag pass left without
    // one (built only if one needs it).
    let mut containers: Option<FxHashMap<u64, u64>> = None;
    state.edges.clear();
    state.owned.clear();
    state.ups.clear();
    for (id, c) in &topologies.container.nodes {
        let image = c
            .latest("docker_image_id")
            .or_else(|| c.parents_of(TopologyKind::ContainerImage).next())
            .map_or(0, id_hash);
        state.ups.push((
            id_hash(id),
            Up {
                image,
                pod: parent_hash(c, TopologyKind::Pod),
                service: parent_hash(c, TopologyKind::Service),
            },
        ));
    }
    for (id, n) in &topologies.process.nodes {
        let service = parent_hash(n, TopologyKind::Service);
        if service != 0 {
            state.ups.push((
                id_hash(id),
                Up {
                    service,
                    ..Up::default()
                },
            ));
        }
    }
    let mut mine: FxHashMap<u64, Owner> = FxHashMap::default();
    let mut hashes = Vec::with_capacity(endpoints.len());
    for (id, node) in endpoints {
        let hash = id_hash(id);
        hashes.push(hash);
        let process = parent_hash(node, TopologyKind::Process);
        let mut container = parent_hash(node, TopologyKind::Container);
        if container == 0 && process != 0 {
            let map = containers.get_or_insert_with(|| {
                topologies
                    .process
                    .nodes
                    .iter()
                    .filter_map(|(id, n)| {
                        let c = parent_hash(n, TopologyKind::Container);
                        (c != 0).then(|| (id_hash(id), c))
                    })
                    .collect()
            });
            container = map.get(&process).copied().unwrap_or(0);
        }
        let loopback_here = node.parents.contains_key(&TopologyKind::Host);
        if process != 0 || container != 0 || loopback_here {
            let owner = Owner {
                host: state.host,
                process,
                container,
            };
            owners.insert(hash, owner);
            mine.insert(hash, owner);
            state.owned.push(hash);
        }
    }
    let owner_of = |h: u64| mine.get(&h).or_else(|| owners.get(&h)).copied();
    let end_of = |hash: u64, ip: IpAddr| owner_of(hash).map_or(End::Unowned { hash, ip }, End::Owned);
    for ((id, node), hash) in endpoints.iter().zip(hashes) {
        if node.adjacency.is_empty() {
            continue;
        }
        let Some((_, src_ip, _)) = ids::parse_endpoint(id) else {
            continue;
        };
        let src = end_of(hash, src_ip);
        if matches!(src, End::Owned(o) if o.host != state.host) {
            continue;
        }
        for remote in &node.adjacency {
            let Some((_, dst_ip, _)) = ids::parse_endpoint(remote) else {
                continue;
            };
            state.edges.push(Edge {
                src,
                dst: end_of(id_hash(remote), dst_ip),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::report::Node;

    fn report(probe: &str, seq: u64, full: bool) -> Report {
        let mut r = Report::new(probe, probe, seq * 1000);
        r.header.seq = seq;
        r.header.full = full;
        r
    }

    #[test]
    fn deltas_must_follow_and_duplicates_change_nothing() {
        let mut store = ReportStore::new(StoreConfig::default());
        let err = store.ingest(report("p", 5, false), 0).unwrap_err();
        assert!(matches!(err, TopologyError::NeedFull { .. }), "{err}");
        store.ingest(report("p", 5, true), 0).unwrap();
        let g = store.generation();
        let (dup, _) = store.ingest(report("p", 5, false), 0).unwrap();
        assert!(dup.duplicate);
        assert_eq!(store.generation(), g);
        assert!(
            store.ingest(report("p", 7, false), 0).is_err(),
            "a gap needs a full report"
        );
        store.ingest(report("p", 6, false), 0).unwrap();
        assert!(store.ingest(report("", 1, true), 0).is_err());
    }

    #[test]
    fn a_full_report_replaces_and_a_delta_lays_nodes_over() {
        let mut store = ReportStore::new(StoreConfig::default());
        let mut r = report("p", 1, true);
        r.topologies
            .process
            .insert("p;1".into(), Node::default().with_latest("name", "a", 1));
        r.topologies
            .process
            .insert("p;2".into(), Node::default().with_latest("name", "b", 1));
        store.ingest(r, 0).unwrap();
        let mut d = report("p", 2, false);
        d.topologies
            .process
            .insert("p;2".into(), Node::default().with_latest("name", "c", 2));
        store.ingest(d, 0).unwrap();
        let procs = &store.probes()["p"].report.topologies.process.nodes;
        assert_eq!(procs.len(), 2);
        assert_eq!(procs["p;2"].latest("name"), Some("c"));
        let mut r = report("p", 3, true);
        r.topologies.process.insert("p;2".into(), Node::default());
        let (_, old) = store.ingest(r, 0).unwrap();
        assert!(old.is_some(), "the replaced state is handed back");
        assert_eq!(store.probes()["p"].report.topologies.process.nodes.len(), 1);
    }

    #[test]
    fn endpoints_are_owned_and_connections_become_edges() {
        let mut store = ReportStore::new(StoreConfig::default());
        let mut r = report("a", 1, true);
        let local = ids::endpoint("a", None, "10.0.0.1".parse().unwrap(), 40000);
        let remote = ids::endpoint("a", None, "10.0.0.2".parse().unwrap(), 80);
        r.topologies.endpoint.insert(
            local.clone(),
            Node::default()
                .with_parent(TopologyKind::Process, "a;7")
                .with_adjacent(remote.clone()),
        );
        r.topologies.endpoint.insert(remote.clone(), Node::default());
        r.topologies
            .process
            .insert("a;7".into(), Node::default().with_parent(TopologyKind::Container, "c1"));
        store.ingest(r, 0).unwrap();
        let owner = store.owner(id_hash(&local)).unwrap();
        assert_eq!(owner.process, id_hash("a;7"));
        assert_eq!(owner.container, id_hash("c1"), "container from the process");
        assert!(store.owner(id_hash(&remote)).is_none(), "the far end is not ours");
        assert_eq!(store.probes()["a"].edges.len(), 1);
        // The next full report without it releases the endpoint.
        store.ingest(report("a", 2, true), 0).unwrap();
        assert!(store.owner(id_hash(&local)).is_none());
    }

    #[test]
    fn cleanup_drops_silent_probes_and_series() {
        let mut store = ReportStore::new(StoreConfig::default());
        let mut r = report("p", 1, true);
        let mut host = Node::default();
        host.set_metric("cpu_usage_percent", 1000, 5.0);
        r.topologies.host.insert(ids::host("p"), host);
        store.ingest(r, 1000).unwrap();
        assert_eq!(store.series_count(), 1);
        assert_eq!(store.cleanup(2000), (0, 0));
        assert_eq!(store.cleanup(1000 + 3_600_001), (1, 1));
        assert!(store.probes().is_empty());
    }
}
