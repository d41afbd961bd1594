//! Reading a whole subtree quickly: one level at a time, every read of a
//! level pipelined on the session (ZooKeeper answers a session's requests
//! in order, so thousands in flight cost one round trip, not thousands).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::join_all;
use zookeeper_client as zk;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::node::{self, NodeRules, ZNode};
use crate::verify::Manifest;

/// How many reads one level keeps in flight at most.
const READ_WINDOW: usize = 4096;

/// Counters a command-line tool turns into a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Nodes read (both sides).
    pub read: AtomicU64,
    /// Writes planned.
    pub planned: AtomicU64,
    /// Writes done.
    pub written: AtomicU64,
}

impl Progress {
    pub(crate) fn add(counter: Option<&AtomicU64>, n: usize) {
        if let Some(c) = counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// A subtree read from one side: relative path → node, after the ephemeral policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The nodes by path relative to the endpoint's root (`/` is the root).
    pub nodes: BTreeMap<String, ZNode>,
}

impl Snapshot {
    /// The checksum manifest of this snapshot.
    pub fn manifest(&self) -> Manifest {
        let mut m = Manifest::new();
        for (rel, n) in &self.nodes {
            m.insert(&n.record(rel));
        }
        m
    }

    /// How many nodes it holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it holds none (the root does not exist).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The relative path of `name` under `parent`.
pub(crate) fn child_rel(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Reads the endpoint's whole subtree. Nodes deleted while it reads are
/// simply absent; `/zookeeper` is never read.
///
/// # Errors
/// [`Error::Zk`] on any other ZooKeeper failure.
pub async fn read_tree(
    client: &zk::Client,
    ep: &Endpoint,
    rules: &NodeRules,
    progress: Option<&Progress>,
) -> Result<Snapshot> {
    let mut out = Snapshot::default();
    let mut level = vec!["/".to_string()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for chunk in level.chunks(READ_WINDOW) {
            let abs: Vec<String> = chunk.iter().map(|r| ep.abs(r)).collect();
            let nodes = join_all(abs.iter().map(|a| node::read(client, a))).await;
            let mut parents = Vec::new();
            for ((rel, a), n) in chunk.iter().zip(&abs).zip(nodes) {
                let n = n.map_err(|e| Error::zk(&ep.label, "read", a, e))?;
                let Some(n) = n else { continue };
                if n.stat.num_children > 0 {
                    parents.push((rel, a));
                }
                if let Some(n) = rules.normalize(rel, n) {
                    out.nodes.insert(rel.clone(), n);
                }
            }
            Progress::add(progress.map(|p| &p.read), chunk.len());
            let children = join_all(parents.iter().map(|(_, a)| client.list_children(a))).await;
            for ((rel, a), names) in parents.into_iter().zip(children) {
                let names = match names {
                    Ok(n) => n,
                    Err(zk::Error::NoNode) => continue,
                    Err(e) => return Err(Error::zk(&ep.label, "list", a, e)),
                };
                for name in names {
                    let c = child_rel(rel, &name);
                    if !Endpoint::is_system(&ep.abs(&c)) {
                        next.push(c);
                    }
                }
            }
        }
        level = next;
    }
    Ok(out)
}
