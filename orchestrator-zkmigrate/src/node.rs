//! One znode as the migration sees it: data, ACL and type, plus the stat
//! fields the engine needs for conditional writes (never compared).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use crate::verify::{node_digest, AclEntry, NodeKind, NodeRecord};

/// What to do with ephemeral nodes, which belong to sessions on the source
/// and cannot be recreated on the target with the same owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EphemeralPolicy {
    /// Leave them out of copy, sync and verify (the default: their owners
    /// recreate them when they reconnect to the new ensemble).
    #[default]
    Skip,
    /// Copy them as persistent nodes, deleted again when the ephemeral goes.
    Persistent,
}

/// What a client cannot read off a node but a migration must know: the
/// ephemeral policy, and which nodes are containers or TTL nodes.
///
/// ZooKeeper reports container and TTL nodes to clients as persistent (the
/// server zeroes their `ephemeralOwner`), so their types are named here by
/// path patterns: `*` matches one path component, a trailing `**` any
/// number of them (`/locks/*`, `/services/**`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRules {
    /// Ephemeral nodes: skip, or copy as persistent markers.
    pub ephemerals: EphemeralPolicy,
    /// Patterns of container nodes.
    pub containers: Vec<String>,
    /// Patterns of TTL nodes with their TTL in milliseconds.
    pub ttls: Vec<(String, u64)>,
}

/// Whether a relative path matches a pattern (`*` one component, trailing `**` the rest).
pub fn path_matches(pattern: &str, rel: &str) -> bool {
    let mut pat = pattern.split('/').skip(1).filter(|c| !c.is_empty());
    let mut comps = rel.split('/').skip(1).filter(|c| !c.is_empty());
    loop {
        match (pat.next(), comps.next()) {
            (Some("**"), _) => return true,
            (Some(p), Some(c)) if p == "*" || p == c => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl From<EphemeralPolicy> for NodeRules {
    fn from(ephemerals: EphemeralPolicy) -> Self {
        NodeRules {
            ephemerals,
            ..NodeRules::default()
        }
    }
}

impl NodeRules {
    /// Applies the rules to a node read at `rel`: `None` when it is left
    /// out, else the node with its type as the rules name it.
    pub fn normalize(&self, rel: &str, mut node: ZNode) -> Option<ZNode> {
        if node.kind == NodeKind::Ephemeral {
            match self.ephemerals {
                EphemeralPolicy::Skip => return None,
                EphemeralPolicy::Persistent => node.kind = NodeKind::Persistent,
            }
        } else if node.kind == NodeKind::Persistent {
            if let Some((_, ms)) = self.ttls.iter().find(|(p, _)| path_matches(p, rel)) {
                node.kind = NodeKind::Ttl(*ms);
            } else if self.containers.iter().any(|p| path_matches(p, rel)) {
                node.kind = NodeKind::Container;
            }
        }
        Some(node)
    }
}

/// The server-assigned fields used for conditional writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStat {
    /// Data version.
    pub version: i32,
    /// Children version (also the next sequential suffix).
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Last modification, ms since the epoch (the server's clock).
    pub mtime: i64,
    /// Number of children.
    pub num_children: i32,
}

/// One znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZNode {
    /// The data.
    pub data: Vec<u8>,
    /// The ACL.
    pub acl: Vec<AclEntry>,
    /// The node type.
    pub kind: NodeKind,
    /// Server-assigned fields.
    pub stat: NodeStat,
}

const CONTAINER_OWNER: i64 = i64::MIN;
const EXTENDED_MASK: u64 = 0xff00_0000_0000_0000;
const TTL_VALUE_MASK: u64 = 0x0000_00ff_ffff_ffff;

/// The node type encoded in a stat's `ephemeralOwner` (ZooKeeper's
/// `EphemeralType`): 0 persistent, `Long.MIN_VALUE` container, top byte
/// 0xff a TTL node with the TTL in the low five bytes, else a session.
pub fn kind_of(owner: i64) -> NodeKind {
    // The owner is a bit pattern, not a number.
    #[allow(clippy::cast_sign_loss)]
    let bits = owner as u64;
    match owner {
        0 => NodeKind::Persistent,
        CONTAINER_OWNER => NodeKind::Container,
        _ if bits & EXTENDED_MASK == EXTENDED_MASK && bits & 0x00ff_ff00_0000_0000 == 0 => {
            NodeKind::Ttl(bits & TTL_VALUE_MASK)
        }
        _ => NodeKind::Ephemeral,
    }
}

impl ZNode {
    pub(crate) fn from_zk(data: Vec<u8>, stat: &zk::Stat, acl: &[zk::Acl]) -> Self {
        ZNode::from_parts(data, stat, acl_entries(acl))
    }

    pub(crate) fn from_parts(data: Vec<u8>, stat: &zk::Stat, acl: Vec<AclEntry>) -> Self {
        ZNode {
            data,
            acl,
            kind: kind_of(stat.ephemeral_owner),
            stat: NodeStat {
                version: stat.version,
                cversion: stat.cversion,
                aversion: stat.aversion,
                mtime: stat.mtime,
                num_children: stat.num_children,
            },
        }
    }

    /// The digest of what is migrated (data, ACL, type).
    pub fn digest(&self) -> u128 {
        node_digest(&self.data, &self.acl, self.kind)
    }

    /// The record compared by [`Manifest`](crate::Manifest).
    pub fn record(&self, rel: &str) -> NodeRecord {
        NodeRecord {
            path: rel.to_string(),
            data: self.data.clone(),
            acl: self.acl.clone(),
            kind: self.kind,
        }
    }

    pub(crate) fn zk_acl(&self) -> Vec<zk::Acl> {
        self.acl
            .iter()
            .map(|a| zk::Acl::new(permission(a.perms), zk::AuthId::new(&a.scheme, &a.id)))
            .collect()
    }
}

/// Our form of a client ACL.
pub(crate) fn acl_entries(acl: &[zk::Acl]) -> Vec<AclEntry> {
    acl.iter()
        .map(|a| AclEntry {
            perms: perms_bits(a.permission()),
            scheme: a.scheme().to_string(),
            id: a.id().to_string(),
        })
        .collect()
}

const PERMISSIONS: [(u32, zk::Permission); 5] = [
    (1, zk::Permission::READ),
    (2, zk::Permission::WRITE),
    (4, zk::Permission::CREATE),
    (8, zk::Permission::DELETE),
    (16, zk::Permission::ADMIN),
];

fn perms_bits(p: zk::Permission) -> u32 {
    PERMISSIONS.iter().filter(|(_, q)| p.has(*q)).map(|(b, _)| b).sum()
}

fn permission(bits: u32) -> zk::Permission {
    PERMISSIONS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .fold(zk::Permission::NONE, |acc, (_, q)| acc | *q)
}

/// The create options for a node type; `None` for types that cannot be
/// created by a client as such (ephemerals are normalized away before).
pub(crate) fn create_options<'a>(kind: NodeKind, acl: &'a [zk::Acl]) -> zk::CreateOptions<'a> {
    let acls = zk::Acls::new(acl);
    match kind {
        NodeKind::Container => zk::CreateMode::Container.with_acls(acls),
        NodeKind::Ttl(ms) if ms > 0 => zk::CreateMode::Persistent
            .with_acls(acls)
            .with_ttl(Duration::from_millis(ms)),
        _ => zk::CreateMode::Persistent.with_acls(acls),
    }
}

/// Reads one node (data, stat and ACL, pipelined); `None` if it does not exist.
pub(crate) async fn read(client: &zk::Client, abs: &str) -> Result<Option<ZNode>, zk::Error> {
    let (data, acl) = tokio::join!(client.get_data(abs), client.get_acl(abs));
    match (data, acl) {
        (Ok((data, stat)), Ok((acl, _))) => Ok(Some(ZNode::from_zk(data, &stat, &acl))),
        (Err(zk::Error::NoNode), _) | (_, Err(zk::Error::NoNode)) => Ok(None),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The sequence number of a child created with a sequential mode (ten
/// digits at the end of its name), if it looks like one.
pub fn sequence_of(name: &str) -> Option<i64> {
    let digits = name.len().checked_sub(10).map(|i| &name[i..])?;
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_node_types_from_the_owner() {
        assert_eq!(kind_of(0), NodeKind::Persistent);
        assert_eq!(kind_of(i64::MIN), NodeKind::Container);
        #[allow(clippy::cast_possible_wrap)]
        let ttl = (0xff00_0000_0000_0000_u64 | 60_000) as i64;
        assert_eq!(kind_of(ttl), NodeKind::Ttl(60_000));
        assert_eq!(kind_of(0x0100_0000_1234_5678), NodeKind::Ephemeral);
    }

    #[test]
    fn patterns_match_components() {
        assert!(path_matches("/locks/*", "/locks/a"));
        assert!(!path_matches("/locks/*", "/locks/a/b"));
        assert!(!path_matches("/locks/*", "/locks"));
        assert!(path_matches("/svc/**", "/svc/a/b"));
        assert!(path_matches("/x", "/x"));
        assert!(path_matches("/", "/"));
        assert!(!path_matches("/x", "/y"));
    }

    #[test]
    fn finds_sequence_suffixes() {
        assert_eq!(sequence_of("lock-0000000042"), Some(42));
        assert_eq!(sequence_of("0000000007"), Some(7));
        assert_eq!(sequence_of("lock-42"), None);
        assert_eq!(sequence_of("x"), None);
    }
}
