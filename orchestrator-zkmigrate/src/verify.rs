//! Checksums of ZooKeeper subtrees and the differences between two of them.
//!
//! Only what a migration must preserve is hashed — the path relative to the
//! subtree's root, the data, the ACL and the node type — never the
//! server-assigned stat fields (zxids, versions, times), which always differ
//! between two ensembles.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// The kind of a znode, as far as a target can express it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A plain node.
    Persistent,
    /// Owned by a session; gone when it ends.
    Ephemeral,
    /// Deleted by the server when its last child goes.
    Container,
    /// Deleted after a time (milliseconds) without changes or children.
    Ttl(u64),
}

/// One ACL entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    /// Permission bits (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16).
    pub perms: u32,
    /// `world`, `digest`, `ip`, `sasl`, …
    pub scheme: String,
    /// The scheme's id (`anyone`, `user:hash`, …).
    pub id: String,
}

/// What is compared of one znode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    /// Path relative to the subtree's root (`/` is the root itself).
    pub path: String,
    /// The data.
    pub data: Vec<u8>,
    /// The ACL, in any order.
    pub acl: Vec<AclEntry>,
    /// The node type.
    pub kind: NodeKind,
}

/// Per-path digests of a subtree and one checksum over all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    nodes: BTreeMap<String, NodeDigest>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeDigest {
    data: u128,
    acl: u128,
    kind: NodeKind,
    len: usize,
}

fn kind_bytes(kind: NodeKind) -> [u8; 9] {
    let (tag, ttl) = match kind {
        NodeKind::Persistent => (0, 0),
        NodeKind::Ephemeral => (1, 0),
        NodeKind::Container => (2, 0),
        NodeKind::Ttl(ms) => (3, ms),
    };
    let mut out = [0u8; 9];
    out[0] = tag;
    out[1..].copy_from_slice(&ttl.to_le_bytes());
    out
}

/// One digest of what a migration preserves of a node.
pub(crate) fn node_digest(data: &[u8], acl: &[AclEntry], kind: NodeKind) -> u128 {
    let mut h = Xxh3::new();
    h.update(&xxhash_rust::xxh3::xxh3_128(data).to_le_bytes());
    h.update(&hash_acl(acl).to_le_bytes());
    h.update(&kind_bytes(kind));
    h.digest128()
}

fn hash_acl(acl: &[AclEntry]) -> u128 {
    let mut sorted: Vec<&AclEntry> = acl.iter().collect();
    sorted.sort();
    let mut h = Xxh3::new();
    for e in sorted {
        h.update(&e.perms.to_le_bytes());
        // Length prefixes keep ("ab","c") apart from ("a","bc").
        h.update(&(e.scheme.len() as u64).to_le_bytes());
        h.update(e.scheme.as_bytes());
        h.update(&(e.id.len() as u64).to_le_bytes());
        h.update(e.id.as_bytes());
    }
    h.digest128()
}

impl Manifest {
    /// An empty manifest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one node.
    pub fn insert(&mut self, node: &NodeRecord) {
        let digest = NodeDigest {
            data: xxhash_rust::xxh3::xxh3_128(&node.data),
            acl: hash_acl(&node.acl),
            kind: node.kind,
            len: node.data.len(),
        };
        self.nodes.insert(node.path.clone(), digest);
    }

    /// How many nodes it covers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it covers no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// One checksum of the whole subtree, independent of insertion order.
    pub fn checksum(&self) -> u128 {
        let mut h = Xxh3::new();
        for (path, d) in &self.nodes {
            h.update(&(path.len() as u64).to_le_bytes());
            h.update(path.as_bytes());
            h.update(&d.data.to_le_bytes());
            h.update(&d.acl.to_le_bytes());
            h.update(&kind_bytes(d.kind));
        }
        h.digest128()
    }

    /// Every path that differs between `self` (the source) and `target`,
    /// sorted by path.
    pub fn diff(&self, target: &Manifest) -> Vec<Difference> {
        let mut out = Vec::new();
        for (path, s) in &self.nodes {
            match target.nodes.get(path) {
                None => out.push(Difference {
                    path: path.clone(),
                    kind: DiffKind::MissingOnTarget,
                }),
                Some(t) => {
                    if s.kind != t.kind {
                        out.push(Difference {
                            path: path.clone(),
                            kind: DiffKind::Kind {
                                source: s.kind,
                                target: t.kind,
                            },
                        });
                    }
                    if s.data != t.data {
                        out.push(Difference {
                            path: path.clone(),
                            kind: DiffKind::Data {
                                source_len: s.len,
                                target_len: t.len,
                            },
                        });
                    }
                    if s.acl != t.acl {
                        out.push(Difference {
                            path: path.clone(),
                            kind: DiffKind::Acl,
                        });
                    }
                }
            }
        }
        for path in target.nodes.keys().filter(|p| !self.nodes.contains_key(*p)) {
            out.push(Difference {
                path: path.clone(),
                kind: DiffKind::MissingOnSource,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// How one path differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum DiffKind {
    /// Only the source has it.
    MissingOnTarget,
    /// Only the target has it.
    MissingOnSource,
    /// The data differs.
    Data {
        /// Bytes on the source.
        source_len: usize,
        /// Bytes on the target.
        target_len: usize,
    },
    /// The ACL differs.
    Acl,
    /// The node type differs.
    Kind {
        /// Type on the source.
        source: NodeKind,
        /// Type on the target.
        target: NodeKind,
    },
}

/// One difference found by [`Manifest::diff`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The path, relative to the compared roots.
    pub path: String,
    /// How it differs.
    #[serde(flatten)]
    pub kind: DiffKind,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DiffKind::MissingOnTarget => write!(f, "{}: missing on target", self.path),
            DiffKind::MissingOnSource => write!(f, "{}: missing on source", self.path),
            DiffKind::Data { source_len, target_len } => {
                write!(
                    f,
                    "{}: data differs ({source_len} bytes on source, {target_len} on target)",
                    self.path
                )
            }
            DiffKind::Acl => write!(f, "{}: ACL differs", self.path),
            DiffKind::Kind { source, target } => {
                write!(
                    f,
                    "{}: type differs ({source:?} on source, {target:?} on target)",
                    self.path
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(path: &str, data: &[u8]) -> NodeRecord {
        NodeRecord {
            path: path.into(),
            data: data.to_vec(),
            acl: vec![AclEntry {
                perms: 31,
                scheme: "world".into(),
                id: "anyone".into(),
            }],
            kind: NodeKind::Persistent,
        }
    }

    #[test]
    fn finds_every_planted_difference() {
        let mut src = Manifest::new();
        let mut dst = Manifest::new();
        for m in [&mut src, &mut dst] {
            m.insert(&node("/", b""));
            m.insert(&node("/same", b"x"));
        }
        src.insert(&node("/only-src", b"1"));
        dst.insert(&node("/only-dst", b"1"));
        src.insert(&node("/data", b"abc"));
        dst.insert(&node("/data", b"abcd"));
        let mut locked = node("/acl", b"");
        src.insert(&locked);
        locked.acl[0].perms = 1;
        dst.insert(&locked);
        let mut eph = node("/kind", b"");
        src.insert(&eph);
        eph.kind = NodeKind::Ephemeral;
        dst.insert(&eph);

        assert_ne!(src.checksum(), dst.checksum());
        let text: Vec<String> = src.diff(&dst).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "/acl: ACL differs",
                "/data: data differs (3 bytes on source, 4 on target)",
                "/kind: type differs (Persistent on source, Ephemeral on target)",
                "/only-dst: missing on source",
                "/only-src: missing on target",
            ]
        );
    }

    proptest! {
        #[test]
        fn checksum_ignores_order_and_sees_any_change(
            nodes in prop::collection::btree_map("/[a-z]{1,6}", prop::collection::vec(any::<u8>(), 0..16), 1..30),
            flip in any::<prop::sample::Index>(),
        ) {
            let records: Vec<NodeRecord> = nodes.iter().map(|(p, d)| node(p, d)).collect();
            let mut fwd = Manifest::new();
            records.iter().for_each(|n| fwd.insert(n));
            let mut rev = Manifest::new();
            records.iter().rev().for_each(|n| rev.insert(n));
            prop_assert_eq!(fwd.checksum(), rev.checksum());
            prop_assert!(fwd.diff(&rev).is_empty());

            let mut changed = records[flip.index(records.len())].clone();
            changed.data.push(0);
            rev.insert(&changed);
            prop_assert_ne!(fwd.checksum(), rev.checksum());
            prop_assert_eq!(fwd.diff(&rev).len(), 1);
        }
    }
}
