//! Differences between two renders of a view, as WebSocket clients get
//! them: `{add, update, remove, reset}` (Scope's shape). The first message
//! of a connection is a reset carrying every node.
//!
//! A large diff goes out in [`Diff::chunks`]: a browser parses and applies
//! each between frames, where one 30 MB message of 100,000 processes would
//! freeze its page for half a second. Every chunk but the last says
//! `more`; the first of a reset also says how many nodes the view has
//! (`total`), so a client can choose how to show it before the rest comes.

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
    /// The nodes in the view (on a reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// More chunks of this diff follow.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

impl<'a> Diff<'a> {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.reset && self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }

    /// The diff in messages of at most `max` nodes each (removals, then
    /// additions, then updates), applied in order to the same effect as the
    /// whole. A reset stays on the first.
    pub fn chunks(self, max: usize) -> Vec<Diff<'a>> {
        let max = max.max(1);
        if self.add.len() + self.update.len() + self.remove.len() <= max {
            return vec![self];
        }
        let mut out: Vec<Diff<'a>> = Vec::new();
        let mut current = Diff {
            reset: self.reset,
            total: self.total,
            ..Diff::default()
        };
        let mut room = max;
        let flush = |current: &mut Diff<'a>, room: &mut usize, out: &mut Vec<Diff<'a>>| {
            if *room == 0 {
                current.more = true;
                out.push(std::mem::take(current));
                *room = max;
            }
        };
        for id in self.remove {
            flush(&mut current, &mut room, &mut out);
            current.remove.push(id);
            room -= 1;
        }
        for n in self.add {
            flush(&mut current, &mut room, &mut out);
            current.add.push(n);
            room -= 1;
        }
        for n in self.update {
            flush(&mut current, &mut room, &mut out);
            current.update.push(n);
            room -= 1;
        }
        out.push(current);
        out
    }
}

/// The diff from `prev` (none: a reset) to `next`.
pub fn diff<'a>(prev: Option<&Rendered>, next: &'a Rendered) -> Diff<'a> {
    let Some(prev) = prev else {
        return Diff {
            reset: true,
            add: next.nodes_json().collect(),
            total: Some(next.len()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{render, Filters, View};

    #[test]
    fn a_reset_in_chunks_carries_every_node_once_and_says_what_follows() {
        let store = crate::views::tests::store();
        let view = render(&store, View::Processes, &Filters::default(), 1_000);
        let whole = diff(None, &view);
        let n = whole.add.len();
        assert!(n > 10);
        let chunks = diff(None, &view).chunks(7);
        assert_eq!(chunks.len(), n.div_ceil(7));
        assert!(chunks[0].reset && chunks[0].total == Some(view.len()));
        assert!(chunks[1..].iter().all(|c| !c.reset && c.total.is_none()));
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.more && c.add.len() == 7));
        assert!(!chunks.last().unwrap().more);
        let ids: Vec<&str> = chunks
            .iter()
            .flat_map(|c| c.add.iter().map(|a| a.summary.id.as_str()))
            .collect();
        let want: Vec<&str> = whole.add.iter().map(|a| a.summary.id.as_str()).collect();
        assert_eq!(ids, want);
        // A small diff stays whole.
        assert_eq!(diff(None, &view).chunks(n).len(), 1);
    }
}
