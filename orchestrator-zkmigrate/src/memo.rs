//! What ACL a node had, remembered between runs, so a re-run reads only
//! the ACLs that can have changed.
//!
//! ACLs cannot be multi-read: a tree's data comes in a few hundred
//! requests, its ACLs in one request per node, three quarters of a copy's
//! reading. But a node's ACL changes only with `setACL`, which bumps the
//! node's `aversion`, and a node deleted and created again gets a new
//! `czxid` (and `ctime`). So the ACL seen with a stat of `(czxid, ctime,
//! aversion)` is the ACL of every later read showing the same three: a
//! fact, not a guess. Each side keeps these facts in a file of its own
//! (named after the servers and the root), and a run reads the ACLs of
//! only the nodes whose stat, read with the data anyway, is not in it.
//! `ctime` guards against an ensemble wiped and rebuilt on the same
//! address, whose zxids start again.
//!
//! The file is a cache: deleting it costs one slower run; a corrupt or
//! foreign one is ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use crate::endpoint::Endpoint;
use crate::verify::AclEntry;

const VERSION: u32 = 1;

/// The stat fields an ACL is known by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    czxid: i64,
    ctime: i64,
    aversion: i32,
    acl: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    /// `servers` and root, to refuse a file copied from elsewhere.
    endpoint: String,
    acls: Vec<Vec<AclEntry>>,
    nodes: HashMap<String, Seen>,
}

/// The ACLs known for one side's nodes (by path relative to its root).
#[derive(Default)]
pub struct AclMemo {
    endpoint: String,
    acls: Vec<Vec<AclEntry>>,
    interned: HashMap<Vec<AclEntry>, u32>,
    nodes: HashMap<String, Seen>,
    /// Paths read or written in this run: what a save keeps.
    touched: HashMap<String, Seen>,
    /// Lookups answered from the memo in this run.
    pub hits: u64,
}

impl std::fmt::Debug for AclMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclMemo")
            .field("endpoint", &self.endpoint)
            .field("nodes", &self.nodes.len())
            .field("hits", &self.hits)
            .finish_non_exhaustive()
    }
}

fn key(ep: &Endpoint) -> String {
    format!("{}{}", ep.servers, ep.root)
}

/// The memo file of the endpoint whose key is `key`, in `dir`.
fn file_in(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("acls-{:016x}.json", xxhash_rust::xxh3::xxh3_64(key.as_bytes())))
}

impl AclMemo {
    /// The memo file of `ep` in `dir`.
    pub fn path(dir: &Path, ep: &Endpoint) -> PathBuf {
        file_in(dir, &key(ep))
    }

    /// The memo of `ep` kept in `dir`; empty when there is none yet, or
    /// the file is unreadable or not this endpoint's.
    pub fn load(dir: &Path, ep: &Endpoint) -> AclMemo {
        let mut memo = AclMemo {
            endpoint: key(ep),
            ..AclMemo::default()
        };
        let path = AclMemo::path(dir, ep);
        let Ok(bytes) = std::fs::read(&path) else {
            return memo;
        };
        match serde_json::from_slice::<File>(&bytes) {
            Ok(f) if f.version == VERSION && f.endpoint == memo.endpoint => {
                let valid = |s: &Seen| (s.acl as usize) < f.acls.len();
                memo.nodes = f.nodes.into_iter().filter(|(_, s)| valid(s)).collect();
                memo.interned = f.acls.iter().cloned().zip(0..).collect();
                memo.acls = f.acls;
            }
            _ => tracing::warn!(path = %path.display(), "ignoring an ACL memo that is not this endpoint's"),
        }
        memo
    }

    /// Writes what this run saw (nodes not seen are dropped) to `dir`,
    /// replacing the file atomically.
    ///
    /// # Errors
    /// When the directory or file cannot be written.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let file = File {
            version: VERSION,
            endpoint: self.endpoint.clone(),
            acls: self.acls.clone(),
            nodes: self.touched.clone(),
        };
        let path = file_in(dir, &self.endpoint);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&file).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }

    /// The ACL of `rel` if it is known for this stat.
    pub(crate) fn get(&mut self, rel: &str, stat: &zk::Stat) -> Option<Vec<AclEntry>> {
        let seen = *self.nodes.get(rel)?;
        if seen.czxid != stat.czxid || seen.ctime != stat.ctime || seen.aversion != stat.aversion {
            return None;
        }
        self.hits += 1;
        self.touched.insert(rel.to_string(), seen);
        Some(self.acls[seen.acl as usize].clone())
    }

    /// Remembers that `rel` had `acl` with this stat (as read with it, or
    /// as written: a create's or a `setACL`'s answer). An invalid stat (a
    /// server that does not return one) is not remembered.
    pub(crate) fn put(&mut self, rel: &str, stat: &zk::Stat, acl: &[AclEntry]) {
        if stat.is_invalid() {
            return;
        }
        let ix = match self.interned.get(acl) {
            Some(ix) => *ix,
            None => {
                let ix = u32::try_from(self.acls.len()).unwrap_or(u32::MAX);
                self.acls.push(acl.to_vec());
                self.interned.insert(acl.to_vec(), ix);
                ix
            }
        };
        let seen = Seen {
            czxid: stat.czxid,
            ctime: stat.ctime,
            aversion: stat.aversion,
            acl: ix,
        };
        self.nodes.insert(rel.to_string(), seen);
        self.touched.insert(rel.to_string(), seen);
    }

    /// Forgets `rel` (deleted by this run).
    pub(crate) fn forget(&mut self, rel: &str) {
        self.nodes.remove(rel);
        self.touched.remove(rel);
    }
}
