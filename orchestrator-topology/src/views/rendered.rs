//! The rendered form of a view: its graph, and how it is serialised,
//! searched and paged for the API.

use std::borrow::Cow;

use petgraph::graph::{Graph, NodeIndex};
use rustc_hash::FxHashMap;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::summary::NodeSummary;
use super::view::View;
use crate::store::id_hash;

/// A rendered view.
#[derive(Debug)]
pub struct Rendered {
    /// Which view.
    pub view: View,
    /// The store generation it was rendered from.
    pub generation: u64,
    /// Nodes and edges (client → server).
    pub graph: Graph<NodeSummary, ()>,
    pub(super) index: FxHashMap<u64, NodeIndex>,
    /// Per node: its id's hash, and an order-free fingerprint of the ids it
    /// has edges to, so diffs compare adjacency without building it.
    pub(super) prints: Vec<(u64, u64)>,
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
    pub(super) fn fingerprint(&mut self, hashes: Vec<u64>) {
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

    pub(super) fn retain_connected(&mut self) {
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

pub(super) struct Metrics<'a>(&'a [(Cow<'static, str>, f64)]);

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
