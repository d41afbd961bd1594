//! Zero-downtime migration of a live ZooKeeper tree to another ensemble:
//! copy, keep both sides in sync in both directions, verify by checksum,
//! cut over, and roll back until the move is final.
//!
//! # The pieces
//!
//! - [`copy()`](copy::copy) reads both subtrees level by level with
//!   thousands of reads in flight, [`plan`](copy::plan)s the writes that
//!   make the target equal (a pure function, so re-runs write only what
//!   changed and an interrupted copy resumes by running again), and applies
//!   them in pipelined `multi` batches. Data, ACLs and node types
//!   (persistent, container, TTL) are kept — container and TTL types by
//!   [`NodeRules`], because ZooKeeper shows them to clients as persistent;
//!   ephemerals follow an [`EphemeralPolicy`]; parents' sequence counters are advanced past the
//!   copied children; `/zookeeper` is never touched.
//! - [`SyncHandle`] keeps both sides equal while clients write to either:
//!   persistent recursive watches, per-path reconcile with a base digest
//!   for loop prevention and conflict detection (see [`sync`]), a full
//!   reconcile after every reconnect, and lag in an HDR histogram.
//! - [`verify()`](migrate::verify) compares [`Manifest`]s: digests of
//!   path, data, ACL and type — never the stat fields two ensembles never
//!   share.
//! - [`Migration`] drives `plan → copy → sync → verify → cutover →
//!   finalize` (or `rollback` before finalize), checks each phase's exit
//!   criteria and records the phase in a file outside the synced tree.
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

pub mod acl;
pub mod copy;
mod endpoint;
mod error;
pub mod memo;
pub mod metrics;
mod migrate;
mod node;
mod phase;
pub mod sync;
mod tree;
mod verify;

pub use copy::{CopyOptions, CopyReport, Op, Plan};
pub use endpoint::{Credential, Endpoint, SaslLogin, Tls};
pub use error::{Error, Result};
pub use memo::AclMemo;
pub use migrate::{verify, MigrateOptions, Migration, VerifyReport};
pub use node::{kind_of, path_matches, sequence_of, EphemeralPolicy, NodeRules, NodeStat, ZNode};
pub use phase::{MigrationState, Phase, Step};
pub use sync::{Conflict, ConflictPolicy, Side, SyncHandle, SyncOptions, SyncStats, LAG_BUCKETS_US};
pub use tree::{read_both, read_tree, read_tree_with, Progress, Snapshot};
pub use verify::{AclEntry, DiffKind, Difference, Manifest, NodeKind, NodeRecord};
