//! Encoding the merge of several reports without building it.
//!
//! A probe keeps each collector's output apart and publishes, now and
//! then, a full report of all of them. Merging first would copy every
//! node (tens of megabytes on a busy host, allocated and freed at every
//! full publish); [`encode_merged`] walks the parts' node maps side by
//! side instead — they are sorted by id — and copies only the nodes that
//! more than one part holds. The bytes are those of [`super::encode`] of
//! the merged report.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::codec::ReportError;
use super::{Header, Node, Topologies, Topology, TopologyKind};

/// Encodes, under `header`, the merge of `parts` — what
/// `encode(&merged)` gives for the [`Report`](super::Report) holding
/// every part merged.
///
/// # Errors
/// As [`super::encode`].
pub fn encode_merged(header: &Header, parts: &[&Topologies]) -> Result<Vec<u8>, ReportError> {
    super::codec::encode_value(&Merged { header, parts })
}

struct Merged<'a> {
    header: &'a Header,
    parts: &'a [&'a Topologies],
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Report", 2)?;
        st.serialize_field("header", self.header)?;
        st.serialize_field("topologies", &MergedTopologies(self.parts))?;
        st.end()
    }
}

struct MergedTopologies<'a>(&'a [&'a Topologies]);

impl MergedTopologies<'_> {
    fn of(&self, kind: TopologyKind) -> Vec<&Topology> {
        self.0.iter().map(|t| t.get(kind)).filter(|t| !t.is_empty()).collect()
    }
}

impl Serialize for MergedTopologies<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kinds: Vec<(TopologyKind, Vec<&Topology>)> = TopologyKind::ALL
            .into_iter()
            .map(|k| (k, self.of(k)))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        let mut st = s.serialize_struct("Topologies", kinds.len())?;
        for kind in TopologyKind::ALL {
            match kinds.iter().find(|(k, _)| *k == kind) {
                Some((_, parts)) => st.serialize_field(kind.as_str(), &MergedTopology(parts))?,
                None => st.skip_field(kind.as_str())?,
            }
        }
        st.end()
    }
}

struct MergedTopology<'a>(&'a [&'a Topology]);

impl Serialize for MergedTopology<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let has_nodes = self.0.iter().any(|t| !t.nodes.is_empty());
        let mut controls = BTreeMap::new();
        for t in self.0 {
            super::merge_max(&mut controls, &t.controls);
        }
        let mut st = s.serialize_struct("Topology", usize::from(has_nodes) + usize::from(!controls.is_empty()))?;
        if has_nodes {
            st.serialize_field("nodes", &MergedNodes(self.0))?;
        } else {
            st.skip_field("nodes")?;
        }
        if controls.is_empty() {
            st.skip_field("controls")?;
        } else {
            st.serialize_field("controls", &controls)?;
        }
        st.end()
    }
}

struct MergedNodes<'a>(&'a [&'a Topology]);

/// Calls `f` with every id of `maps` (in order) and the nodes holding it.
fn each_id<'a, E>(
    maps: &[&'a BTreeMap<String, Node>],
    mut f: impl FnMut(&'a str, &[&'a Node]) -> Result<(), E>,
) -> Result<(), E> {
    let mut iters: Vec<_> = maps.iter().map(|m| m.iter().peekable()).collect();
    let mut same: Vec<&'a Node> = Vec::with_capacity(maps.len());
    loop {
        let Some(id) = iters.iter_mut().filter_map(|i| i.peek().map(|(k, _)| k.as_str())).min() else {
            return Ok(());
        };
        same.clear();
        for i in &mut iters {
            if let Some((_, n)) = i.next_if(|(k, _)| k.as_str() == id) {
                same.push(n);
            }
        }
        f(id, &same)?;
    }
}

impl Serialize for MergedNodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let maps: Vec<&BTreeMap<String, Node>> = self.0.iter().map(|t| &t.nodes).collect();
        let mut count = 0usize;
        each_id(&maps, |_, _| {
            count += 1;
            Ok::<(), ()>(())
        })
        .ok();
        let mut map = s.serialize_map(Some(count))?;
        each_id(&maps, |id, nodes| match nodes {
            [one] => map.serialize_entry(id, one),
            [first, rest @ ..] => {
                let mut merged = (*first).clone();
                for n in rest {
                    merged.merge(n);
                }
                map.serialize_entry(id, &merged)
            }
            [] => Ok(()),
        })?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{decode, encode, Limits, Report};

    #[test]
    fn encodes_the_same_bytes_as_the_merged_report() {
        let mut a = Report::new("p", "h", 5);
        a.topologies
            .process
            .insert("h;1".into(), Node::default().with_latest("pid", "1", 1));
        a.topologies
            .process
            .insert("h;3".into(), Node::default().with_latest("pid", "3", 1));
        a.topologies
            .host
            .insert("h".into(), Node::default().with_latest("os", "linux", 1));
        let mut b = Report::new("p", "h", 6);
        b.topologies
            .process
            .insert("h;2".into(), Node::default().with_latest("pid", "2", 2));
        let mut host = Node::default();
        host.set_metric("probe_cpu_seconds", 2, 0.5);
        b.topologies.host.insert("h".into(), host);
        b.topologies.endpoint.insert(";1.2.3.4;80".into(), Node::default());
        let c = Report::new("p", "h", 7);
        let mut merged = a.clone();
        merged.merge(&b);
        merged.merge(&c);
        let bytes = encode_merged(&merged.header, &[&a.topologies, &b.topologies, &c.topologies]).unwrap();
        assert_eq!(bytes, encode(&merged).unwrap());
        assert_eq!(decode(&bytes, Limits::default()).unwrap(), merged);
        // Nothing at all.
        let empty = Report::new("p", "h", 0);
        assert_eq!(
            encode_merged(&empty.header, &[&c.topologies]).unwrap(),
            encode(&empty).unwrap()
        );
    }
}
