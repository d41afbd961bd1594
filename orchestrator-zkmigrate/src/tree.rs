//! Reading a whole subtree quickly: one level at a time, every read of a
//! level pipelined on the session (ZooKeeper answers a session's requests
//! in order, so thousands in flight cost one round trip, not thousands).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::join_all;
use zookeeper_client as zk;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::memo::AclMemo;
use crate::node::{acl_entries, NodeRules, ZNode};
use crate::verify::{AclEntry, Manifest};

/// How many reads one level keeps in flight at most.
const READ_WINDOW: usize = 16384;

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
    /// Nodes this session may not read (their ACL grants its identity no
    /// READ), with why: neither they nor anything below them is known.
    pub unreadable: BTreeMap<String, String>,
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

    /// Forgets `rel` and everything below it.
    pub fn prune(&mut self, rel: &str) {
        let below = if rel == "/" { "/".to_string() } else { format!("{rel}/") };
        let doomed: Vec<String> = std::iter::once(rel.to_string())
            .filter(|r| self.nodes.contains_key(r))
            .chain(
                self.nodes
                    .range(below.clone()..)
                    .take_while(|(p, _)| p.starts_with(&below))
                    .map(|(p, _)| p.clone()),
            )
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }
}

/// Reads both sides; nodes either side may not read stop the reading
/// with [`Error::Unreadable`] (naming them), unless `skip_unreadable`,
/// when they and everything below them are left out of *both* snapshots
/// (so nothing there is planned, compared or deleted) and returned as
/// `side path: reason` lines.
///
/// # Errors
/// [`Error::Zk`] when a side cannot be read; [`Error::Unreadable`] as above.
pub async fn read_both(
    sides: [(&zk::Client, &Endpoint); 2],
    rules: &NodeRules,
    skip_unreadable: bool,
    progress: Option<&Progress>,
    memos: [Option<&mut AclMemo>; 2],
) -> Result<(Snapshot, Snapshot, Vec<String>)> {
    let [(sc, sep), (tc, tep)] = sides;
    let [sm, tm] = memos;
    let (s, t) = tokio::join!(
        read_tree_with(sc, sep, rules, progress, sm),
        read_tree_with(tc, tep, rules, progress, tm)
    );
    let (mut s, mut t) = (s?, t?);
    let lines: Vec<String> = [(&s, sep), (&t, tep)]
        .iter()
        .flat_map(|(snap, ep)| {
            snap.unreadable
                .iter()
                .map(move |(rel, why)| format!("{} {}: {why}", ep.label, ep.abs(rel)))
        })
        .collect();
    if lines.is_empty() {
        return Ok((s, t, lines));
    }
    if !skip_unreadable {
        return Err(Error::Unreadable {
            count: lines.len(),
            paths: lines,
        });
    }
    let unknown: Vec<String> = s.unreadable.keys().chain(t.unreadable.keys()).cloned().collect();
    for rel in &unknown {
        s.prune(rel);
        t.prune(rel);
    }
    Ok((s, t, lines))
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
/// simply absent; nodes the session may not read are listed in
/// [`Snapshot::unreadable`] (nothing below them is read); `/zookeeper` is
/// never read.
///
/// Data and children are read with multi-reads of 256 nodes (one
/// request instead of hundreds: ZooKeeper's cost is per request, not per
/// node). ACLs cannot be multi-read, so large levels spread their ACL reads
/// over a few extra sessions, which the server serves in parallel.
///
/// # Errors
/// [`Error::Zk`] on any other ZooKeeper failure.
pub async fn read_tree(
    client: &zk::Client,
    ep: &Endpoint,
    rules: &NodeRules,
    progress: Option<&Progress>,
) -> Result<Snapshot> {
    read_tree_with(client, ep, rules, progress, None).await
}

/// [`read_tree`], reading only the ACLs `memo` does not know for the stat
/// each node's data came with (see [`crate::memo`]), and adding those it
/// reads.
///
/// # Errors
/// As [`read_tree`].
pub async fn read_tree_with(
    client: &zk::Client,
    ep: &Endpoint,
    rules: &NodeRules,
    progress: Option<&Progress>,
    mut memo: Option<&mut AclMemo>,
) -> Result<Snapshot> {
    let mut out = Snapshot::default();
    let mut pool = vec![client.clone()];
    let mut level = vec!["/".to_string()];
    while !level.is_empty() {
        if level.len() >= POOL_THRESHOLD && pool.len() == 1 {
            for _ in 1..ACL_SESSIONS {
                match ep.connect(std::time::Duration::from_secs(5)).await {
                    Ok(c) => pool.push(c),
                    Err(e) => tracing::debug!(error = %e, "reading ACLs on fewer sessions"),
                }
            }
        }
        let mut next = Vec::new();
        for chunk in level.chunks(READ_WINDOW) {
            let abs: Vec<String> = chunk.iter().map(|r| ep.abs(r)).collect();
            let (data, acls) = match memo.as_deref_mut() {
                // Without a memo, data and ACLs are read at once.
                None => {
                    let (data, acls) = tokio::join!(multi_get_data(client, ep, &abs), read_acls(&pool, ep, &abs));
                    let acls = acls?
                        .into_iter()
                        .map(|r| match r {
                            Read::Found((acl, _)) => Read::Found(acl_entries(&acl)),
                            Read::Missing => Read::Missing,
                            Read::Denied => Read::Denied,
                        })
                        .collect::<Vec<_>>();
                    (data?, acls)
                }
                // With one, the data's stats say which ACLs are known.
                Some(memo) => {
                    let data = multi_get_data(client, ep, &abs).await?;
                    let mut acls: Vec<Read<Vec<AclEntry>>> = Vec::with_capacity(data.len());
                    let mut unknown = Vec::new();
                    for (i, d) in data.iter().enumerate() {
                        match d {
                            Read::Found((_, stat)) => match memo.get(&chunk[i], stat) {
                                Some(acl) => acls.push(Read::Found(acl)),
                                None => {
                                    unknown.push(i);
                                    acls.push(Read::Missing);
                                }
                            },
                            Read::Missing => acls.push(Read::Missing),
                            Read::Denied => acls.push(Read::Denied),
                        }
                    }
                    let wanted: Vec<String> = unknown.iter().map(|i| abs[*i].clone()).collect();
                    for (i, r) in unknown.into_iter().zip(read_acls(&pool, ep, &wanted).await?) {
                        acls[i] = match r {
                            Read::Found((acl, stat)) => {
                                let entries = acl_entries(&acl);
                                memo.put(&chunk[i], &stat, &entries);
                                Read::Found(entries)
                            }
                            Read::Missing => Read::Missing,
                            Read::Denied => Read::Denied,
                        };
                    }
                    (data, acls)
                }
            };
            let mut parents = Vec::new();
            for (((rel, a), d), acl) in chunk.iter().zip(&abs).zip(data).zip(acls) {
                let (bytes, stat, acl) = match (d, acl) {
                    (Read::Found((bytes, stat)), Read::Found(acl)) => (bytes, stat, acl),
                    (Read::Denied, _) | (_, Read::Denied) => {
                        out.unreadable.insert(rel.clone(), DENIED.to_string());
                        continue;
                    }
                    _ => continue,
                };
                if stat.num_children > 0 {
                    parents.push((rel, a));
                }
                if let Some(n) = rules.normalize(rel, ZNode::from_parts(bytes, &stat, acl)) {
                    out.nodes.insert(rel.clone(), n);
                }
            }
            Progress::add(progress.map(|p| &p.read), chunk.len());
            let paths: Vec<String> = parents.iter().map(|(_, a)| (*a).clone()).collect();
            let children = multi_get_children(client, ep, &paths).await?;
            for ((rel, _), names) in parents.into_iter().zip(children) {
                let names = match names {
                    Read::Found(names) => names,
                    Read::Missing => continue,
                    Read::Denied => {
                        out.nodes.remove(rel);
                        out.unreadable.insert(rel.clone(), format!("{DENIED} (its children)"));
                        continue;
                    }
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

/// Nodes per multi-read.
const MULTI_READ: usize = 256;
/// Levels at least this wide read ACLs on extra sessions.
const POOL_THRESHOLD: usize = 2048;
/// Sessions reading ACLs of a wide level.
const ACL_SESSIONS: usize = 8;

/// Why a node is in [`Snapshot::unreadable`].
const DENIED: &str = "not authorized to read (no READ for this identity: give credentials that have it)";

/// One read's outcome: the node is gone, or the session may not read it,
/// are answers too.
enum Read<T> {
    Found(T),
    Missing,
    Denied,
}

type DataResult = Read<(Vec<u8>, zk::Stat)>;

async fn multi_get_data(client: &zk::Client, ep: &Endpoint, abs: &[String]) -> Result<Vec<DataResult>> {
    let mut pending = Vec::new();
    for chunk in abs.chunks(MULTI_READ) {
        let mut m = client.new_multi_reader();
        for a in chunk {
            m.add_get_data(a).map_err(|e| Error::zk(&ep.label, "read", a, e))?;
        }
        pending.push(m.commit());
    }
    let mut out = Vec::with_capacity(abs.len());
    for (chunk, r) in abs.chunks(MULTI_READ).zip(join_all(pending).await) {
        // ZooKeeper fails a whole multi-read when one node denies READ:
        // read that chunk one by one to learn which.
        let results = match r {
            Err(zk::Error::NoAuth) => {
                let one = join_all(chunk.iter().map(|a| client.get_data(a))).await;
                one.into_iter()
                    .map(|r| match r {
                        Ok((data, stat)) => zk::MultiReadResult::Data { data, stat },
                        Err(err) => zk::MultiReadResult::Error { err },
                    })
                    .collect()
            }
            r => r.map_err(|e| Error::zk(&ep.label, "read", &chunk[0], e))?,
        };
        for (a, r) in chunk.iter().zip(results) {
            out.push(match r {
                zk::MultiReadResult::Data { data, stat } => Read::Found((data, stat)),
                zk::MultiReadResult::Error { err: zk::Error::NoNode } => Read::Missing,
                zk::MultiReadResult::Error { err: zk::Error::NoAuth } => Read::Denied,
                zk::MultiReadResult::Error { err } => return Err(Error::zk(&ep.label, "read", a, err)),
                other => {
                    let e = zk::Error::UnexpectedError(format!("{other:?}"));
                    return Err(Error::zk(&ep.label, "read", a, e));
                }
            });
        }
    }
    Ok(out)
}

async fn multi_get_children(client: &zk::Client, ep: &Endpoint, abs: &[String]) -> Result<Vec<Read<Vec<String>>>> {
    let mut pending = Vec::new();
    for chunk in abs.chunks(MULTI_READ) {
        let mut m = client.new_multi_reader();
        for a in chunk {
            m.add_get_children(a).map_err(|e| Error::zk(&ep.label, "list", a, e))?;
        }
        pending.push(m.commit());
    }
    let mut out = Vec::with_capacity(abs.len());
    for (chunk, r) in abs.chunks(MULTI_READ).zip(join_all(pending).await) {
        let results = match r {
            Err(zk::Error::NoAuth) => {
                let one = join_all(chunk.iter().map(|a| client.list_children(a))).await;
                one.into_iter()
                    .map(|r| match r {
                        Ok(children) => zk::MultiReadResult::Children { children },
                        Err(err) => zk::MultiReadResult::Error { err },
                    })
                    .collect()
            }
            r => r.map_err(|e| Error::zk(&ep.label, "list", &chunk[0], e))?,
        };
        for (a, r) in chunk.iter().zip(results) {
            out.push(match r {
                zk::MultiReadResult::Children { children } => Read::Found(children),
                zk::MultiReadResult::Error { err: zk::Error::NoNode } => Read::Missing,
                zk::MultiReadResult::Error { err: zk::Error::NoAuth } => Read::Denied,
                zk::MultiReadResult::Error { err } => return Err(Error::zk(&ep.label, "list", a, err)),
                other => {
                    let e = zk::Error::UnexpectedError(format!("{other:?}"));
                    return Err(Error::zk(&ep.label, "list", a, e));
                }
            });
        }
    }
    Ok(out)
}

/// ACLs of `abs` with the stats they came with, round-robin over the
/// sessions of `pool`, all in flight.
async fn read_acls(pool: &[zk::Client], ep: &Endpoint, abs: &[String]) -> Result<Vec<Read<(Vec<zk::Acl>, zk::Stat)>>> {
    let results = join_all(abs.iter().enumerate().map(|(i, a)| pool[i % pool.len()].get_acl(a))).await;
    abs.iter()
        .zip(results)
        .map(|(a, r)| match r {
            Ok(found) => Ok(Read::Found(found)),
            Err(zk::Error::NoNode) => Ok(Read::Missing),
            Err(zk::Error::NoAuth) => Ok(Read::Denied),
            Err(e) => Err(Error::zk(&ep.label, "read ACL", a, e)),
        })
        .collect()
}
