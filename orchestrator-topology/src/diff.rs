//! Differences between two renders of a view, as WebSocket clients get
//! them: `{add, update, remove, reset}` (Scope's shape). The first message
//! of a connection is a reset carrying every node.

use serde::Serialize;

use crate::views::{NodeJson, Rendered};

/// What changed between two renders.
#[derive(Debug, Default, Serialize)]
pub struct Diff<'a> {
    /// The client must drop what it holds first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// New nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<NodeJson<'a>>,
    /// Changed nodes (summary or adjacency).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub update: Vec<NodeJson<'a>>,
    /// Ids of nodes gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl Diff<'_> {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.reset && self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// The diff from `prev` (none: a reset) to `next`.
pub fn diff<'a>(prev: Option<&Rendered>, next: &'a Rendered) -> Diff<'a> {
    let Some(prev) = prev else {
        return Diff {
            reset: true,
            add: next.nodes_json().collect(),
            ..Diff::default()
        };
    };
    let mut out = Diff::default();
    for (ix, hash) in next.indexed() {
        match prev.index_of(hash) {
            None => out.add.push(next.json_at(ix)),
            Some(pix) if !next.same_node(ix, prev, pix) => out.update.push(next.json_at(ix)),
            Some(_) => {}
        }
    }
    out.remove = prev
        .indexed()
        .filter(|(_, hash)| next.index_of(*hash).is_none())
        .map(|(ix, _)| prev.graph[ix].id.clone())
        .collect();
    out
}
