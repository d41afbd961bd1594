//! Zero-downtime migration of a live ZooKeeper tree to another ensemble:
//! copy, keep both sides in sync in both directions, verify by checksum,
//! cut over, and roll back until the move is final.
//!
//! # Why verify by content, not by stat
//!
//! Two ensembles never agree on zxids, versions or timestamps, so a
//! migration can only prove itself on what clients see: path, data, ACL
//! and node type. A [`Manifest`] holds one digest per path and a checksum
//! over all of them; [`Manifest::diff`] lists every path that differs and
//! how, which is what an operator needs before cutting over.
//!
//! ```
//! use orchestrator_zkmigrate::{AclEntry, Manifest, NodeKind, NodeRecord};
//!
//! let node = |path: &str, data: &[u8]| NodeRecord {
//!     path: path.into(),
//!     data: data.to_vec(),
//!     acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
//!     kind: NodeKind::Persistent,
//! };
//! let (mut source, mut target) = (Manifest::new(), Manifest::new());
//! source.insert(&node("/mesos/leader", b"master-1"));
//! target.insert(&node("/mesos/leader", b"master-2"));
//! let diff = source.diff(&target);
//! assert_eq!(diff[0].to_string(), "/mesos/leader: data differs (8 bytes on source, 8 on target)");
//! ```

mod verify;

pub use verify::{AclEntry, DiffKind, Difference, Manifest, NodeKind, NodeRecord};
