//! Copy: plan the writes that make the target equal to the source (a pure
//! function of the two snapshots), then apply them in `multi` batches
//! pipelined on one session.
//!
//! Because the plan is computed from what both sides hold, a re-run writes
//! only what changed, and a copy killed halfway resumes by running again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;
use zookeeper_client as zk;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::memo::AclMemo;
use crate::node::{create_options, sequence_of, NodeRules, ZNode};
use crate::tree::{child_rel, read_both, Progress, Snapshot};
use crate::verify::NodeKind;

/// Operations per `multi` request.
const BATCH_OPS: usize = 1000;
/// Bytes of data per `multi` request (ZooKeeper's `jute.maxbuffer` is 1 MiB).
const BATCH_BYTES: usize = 512 * 1024;
/// `multi` requests in flight at once.
const BATCHES_IN_FLIGHT: usize = 8;
/// The transient child used to advance a parent's sequence counter.
const SEQUENCE_PROBE: &str = "zkmigrate-sequence-advance";

/// How a copy behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    /// Delete target nodes the source does not have (a mirror); on by default.
    pub delete_extra: bool,
    /// Ephemeral policy and node types.
    pub rules: NodeRules,
    /// Leave out nodes either side may not read (and all below them), and
    /// report them, instead of stopping before any write; off by default.
    pub skip_unreadable: bool,
    /// A directory where each side's ACLs are remembered between runs
    /// (see [`crate::memo`]), so a re-run reads only the ACLs that can
    /// have changed; `None` reads every ACL every time.
    pub acl_memo: Option<PathBuf>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            delete_extra: true,
            rules: NodeRules::default(),
            skip_unreadable: false,
            acl_memo: None,
        }
    }
}

/// One planned write on the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Create a node the target lacks.
    Create {
        /// Relative path.
        path: String,
    },
    /// Replace the data.
    SetData {
        /// Relative path.
        path: String,
    },
    /// Replace the ACL.
    SetAcl {
        /// Relative path.
        path: String,
    },
    /// Delete and create again: the node type differs.
    Recreate {
        /// Relative path.
        path: String,
    },
    /// Delete a node the source does not have.
    Delete {
        /// Relative path.
        path: String,
    },
    /// Advance the parent's sequence counter so that sequential children
    /// created on the target never collide with copied ones.
    AdvanceSequence {
        /// Relative path of the parent.
        path: String,
        /// The counter (`cversion`) the target must reach.
        to: i32,
    },
}

impl Op {
    /// The relative path the operation writes.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path }
            | Op::SetData { path }
            | Op::SetAcl { path }
            | Op::Recreate { path }
            | Op::Delete { path }
            | Op::AdvanceSequence { path, .. } => path,
        }
    }
}

/// The writes that make a target equal to a source, in the order they must run:
/// deletes deepest first, then creates and updates parents first, then
/// sequence counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The operations.
    pub ops: Vec<Op>,
}

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Nodes in the source subtree (after the ephemeral policy).
    pub source_nodes: usize,
    /// Nodes the target held before.
    pub target_nodes_before: usize,
    /// Nodes created.
    pub created: usize,
    /// Nodes whose data was replaced.
    pub data_set: usize,
    /// Nodes whose ACL was replaced.
    pub acl_set: usize,
    /// Nodes recreated with another type.
    pub recreated: usize,
    /// Nodes deleted.
    pub deleted: usize,
    /// Parents whose sequence counter was advanced.
    pub sequences_advanced: usize,
    /// What could not be done, one line each.
    pub warnings: Vec<String>,
    /// Nodes left out because a side may not read them (`side path:
    /// reason`), with `skip_unreadable`.
    pub unreadable: Vec<String>,
    /// ACLs known from the memo of an earlier run instead of read.
    pub acls_known: u64,
    /// Milliseconds spent reading both sides.
    pub read_ms: u64,
    /// Milliseconds taken in all.
    pub elapsed_ms: u64,
}

impl CopyReport {
    /// Writes done.
    pub fn writes(&self) -> usize {
        self.created + self.data_set + self.acl_set + self.recreated + self.deleted
    }
}

/// The counter a parent's sequential children need on the target.
fn sequence_floor(source: &Snapshot, parent: &str, node: &ZNode) -> Option<i32> {
    let prefix = if parent == "/" {
        "/".to_string()
    } else {
        format!("{parent}/")
    };
    let max_seq = source
        .nodes
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(p, _)| !p[prefix.len()..].contains('/'))
        .filter_map(|(p, _)| sequence_of(&p[prefix.len()..]))
        .max()?;
    let need = (max_seq + 1).max(i64::from(node.stat.cversion));
    Some(i32::try_from(need).unwrap_or(i32::MAX))
}

/// Plans the writes that make `target` equal to `source`.
pub fn plan(source: &Snapshot, target: &Snapshot, opts: &CopyOptions) -> Plan {
    let mut ops = Vec::new();
    if opts.delete_extra {
        for path in target.nodes.keys().rev() {
            if !source.nodes.contains_key(path) {
                ops.push(Op::Delete { path: path.clone() });
            }
        }
    }
    let mut sequences = Vec::new();
    for (path, s) in &source.nodes {
        match target.nodes.get(path) {
            None => ops.push(Op::Create { path: path.clone() }),
            Some(t) if t.kind != s.kind => ops.push(Op::Recreate { path: path.clone() }),
            Some(t) => {
                if t.data != s.data {
                    ops.push(Op::SetData { path: path.clone() });
                }
                let (mut sa, mut ta) = (s.acl.clone(), t.acl.clone());
                sa.sort();
                ta.sort();
                if sa != ta {
                    ops.push(Op::SetAcl { path: path.clone() });
                }
            }
        }
        if s.stat.num_children > 0 {
            if let Some(need) = sequence_floor(source, path, s) {
                let have = target.nodes.get(path).map_or(0, |t| t.stat.cversion);
                if have < need {
                    sequences.push(Op::AdvanceSequence {
                        path: path.clone(),
                        to: need,
                    });
                }
            }
        }
    }
    ops.extend(sequences);
    Plan { ops }
}

/// Reads both sides, plans, and (unless `dry_run`) applies the plan.
///
/// # Errors
/// [`Error::Zk`] when a side cannot be read or a write fails for a reason
/// other than a concurrent change (those are retried one by one);
/// [`Error::Unreadable`] before any write when a side may not read some
/// nodes and `opts.skip_unreadable` is off; [`Error::NotPermitted`] before
/// any write when the target's identity may not make some of the writes
/// (see [`crate::acl`]; a dry run lists them as warnings instead).
#[allow(clippy::too_many_arguments)]
pub async fn copy(
    source: &zk::Client,
    source_ep: &Endpoint,
    target: &zk::Client,
    target_ep: &Endpoint,
    opts: &CopyOptions,
    dry_run: bool,
    progress: Option<&Progress>,
) -> Result<(Plan, CopyReport)> {
    let started = Instant::now();
    let mut memos = opts
        .acl_memo
        .as_ref()
        .map(|dir| (AclMemo::load(dir, source_ep), AclMemo::load(dir, target_ep)));
    let (s, t, unreadable) = {
        let (sm, tm) = match memos.as_mut() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        read_both(
            [(source, source_ep), (target, target_ep)],
            &opts.rules,
            opts.skip_unreadable,
            progress,
            [sm, tm],
        )
        .await?
    };
    let read_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let plan = plan(&s, &t, opts);
    let sasl_user = target_ep.sasl.as_ref().map(|l| l.username.as_str());
    let denied = crate::acl::denied(&plan, &s, &t, &target_ep.credentials, sasl_user, |r| target_ep.abs(r));
    if !denied.is_empty() && !dry_run {
        return Err(Error::NotPermitted {
            count: denied.len(),
            paths: denied,
        });
    }
    Progress::add(progress.map(|p| &p.planned), plan.ops.len());
    let mut report = CopyReport {
        source_nodes: s.len(),
        target_nodes_before: t.len(),
        unreadable,
        warnings: denied,
        read_ms,
        ..CopyReport::default()
    };
    if let Some((sm, tm)) = &memos {
        report.acls_known = sm.hits + tm.hits;
    }
    if !dry_run {
        apply_with_memo(
            target,
            target_ep,
            &plan,
            &s,
            &mut report,
            progress,
            memos.as_mut().map(|(_, t)| t),
        )
        .await?;
    }
    if let (Some(dir), Some((sm, tm))) = (&opts.acl_memo, &memos) {
        for m in [sm, tm] {
            if let Err(e) = m.save(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "ACL memo not saved (the next run reads every ACL)");
            }
        }
    }
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok((plan, report))
}

struct Batch<'p> {
    ops: Vec<&'p Op>,
    bytes: usize,
}

fn batches<'p>(ops: impl Iterator<Item = &'p Op>, source: &Snapshot) -> Vec<Batch<'p>> {
    let mut out: Vec<Batch<'p>> = Vec::new();
    for op in ops {
        let bytes = source.nodes.get(op.path()).map_or(0, |n| n.data.len()) + op.path().len() + 64;
        let fits = out
            .last()
            .is_some_and(|b| b.ops.len() < BATCH_OPS && b.bytes + bytes <= BATCH_BYTES);
        if !fits {
            out.push(Batch {
                ops: Vec::new(),
                bytes: 0,
            });
        }
        let last = out.last_mut().expect("pushed above");
        last.ops.push(op);
        last.bytes += bytes;
    }
    out
}

fn count(report: &mut CopyReport, op: &Op) {
    match op {
        Op::Create { .. } => report.created += 1,
        Op::SetData { .. } => report.data_set += 1,
        Op::SetAcl { .. } => report.acl_set += 1,
        Op::Recreate { .. } => report.recreated += 1,
        Op::Delete { .. } => report.deleted += 1,
        Op::AdvanceSequence { .. } => report.sequences_advanced += 1,
    }
}

/// Applies a plan computed against `source` to the target.
///
/// Writes go in `multi` batches, many in flight: a session's requests are
/// handled in order, so a parent created in one batch exists for the next.
/// A batch that fails (a concurrent writer on the target) is redone one
/// operation at a time, tolerating what already happened.
///
/// # Errors
/// [`Error::Zk`] when a single write fails for another reason.
pub async fn apply(
    client: &zk::Client,
    ep: &Endpoint,
    plan: &Plan,
    source: &Snapshot,
    report: &mut CopyReport,
    progress: Option<&Progress>,
) -> Result<()> {
    apply_with_memo(client, ep, plan, source, report, progress, None).await
}

/// [`apply`], remembering in `memo` the ACLs it writes with the stats the
/// server answers (creates, ACL changes) and forgetting what it deletes.
///
/// # Errors
/// As [`apply`].
pub async fn apply_with_memo(
    client: &zk::Client,
    ep: &Endpoint,
    plan: &Plan,
    source: &Snapshot,
    report: &mut CopyReport,
    progress: Option<&Progress>,
    mut memo: Option<&mut AclMemo>,
) -> Result<()> {
    // ACLs cannot go in a multi; they are pipelined on their own.
    let (acls, rest): (Vec<&Op>, Vec<&Op>) = plan.ops.iter().partition(|op| matches!(op, Op::SetAcl { .. }));
    let (sequences, writes): (Vec<&Op>, Vec<&Op>) = rest
        .into_iter()
        .partition(|op| matches!(op, Op::AdvanceSequence { .. }));
    let batches = batches(writes.into_iter(), source);
    let zk_acls: BTreeMap<&str, Vec<zk::Acl>> = source.nodes.iter().map(|(p, n)| (p.as_str(), n.zk_acl())).collect();
    for window in batches.chunks(BATCHES_IN_FLIGHT) {
        let mut pending = Vec::with_capacity(window.len());
        for batch in window {
            let mut multi = client.new_multi_writer();
            for op in &batch.ops {
                add_to_multi(&mut multi, ep, op, source, &zk_acls)?;
            }
            if memo.is_some() {
                add_zxid_probe(&mut multi, ep, &batch.ops, source)?;
            }
            pending.push(multi.commit());
        }
        for (batch, result) in window.iter().zip(join_all(pending).await) {
            match result {
                Ok(results) => {
                    if let Some(memo) = memo.as_deref_mut() {
                        remember(memo, &batch.ops, &results, source);
                    }
                }
                Err(_) => {
                    for op in &batch.ops {
                        if let Some(memo) = memo.as_deref_mut() {
                            memo.forget(op.path());
                        }
                        apply_one(client, ep, op, source, &zk_acls, report).await?;
                    }
                }
            }
            for op in &batch.ops {
                count(report, op);
            }
            Progress::add(progress.map(|p| &p.written), batch.ops.len());
        }
    }
    for window in acls.chunks(BATCHES_IN_FLIGHT * 32) {
        let results = join_all(window.iter().map(|op| {
            let abs = ep.abs(op.path());
            let acl = &zk_acls[op.path()];
            async move { (client.set_acl(&abs, acl, None).await, abs) }
        }))
        .await;
        for (op, (r, abs)) in window.iter().zip(results) {
            match r {
                Ok(stat) => {
                    if let (Some(memo), Some(n)) = (memo.as_deref_mut(), source.nodes.get(op.path())) {
                        memo.put(op.path(), &stat, &n.acl);
                    }
                    count(report, op);
                }
                Err(zk::Error::NoNode) => report
                    .warnings
                    .push(format!("{abs}: deleted on the target while copying")),
                Err(e) => return Err(Error::zk(&ep.label, "set ACL", &abs, e)),
            }
        }
        Progress::add(progress.map(|p| &p.written), window.len());
    }
    for op in sequences {
        if let Op::AdvanceSequence { path, to } = op {
            advance_sequence(client, ep, path, *to, report).await?;
            count(report, op);
            Progress::add(progress.map(|p| &p.written), 1);
        }
    }
    Ok(())
}

/// Ends a batch that creates nodes with a rewrite of the last created
/// node's data (the same bytes), whose answer carries the stat a create's
/// answer in a `multi` lacks on ZooKeeper before 3.9 (ZOOKEEPER-4026):
/// every node of one `multi` is created by the same transaction, so its
/// `mzxid` and `mtime` are each created node's `czxid` and `ctime`. That
/// node's `version` becomes 1, which nothing compares.
fn add_zxid_probe(multi: &mut zk::MultiWriter<'_>, ep: &Endpoint, ops: &[&Op], source: &Snapshot) -> Result<()> {
    let last_created = ops.iter().rev().find_map(|op| match op {
        Op::Create { path } | Op::Recreate { path } => Some(path),
        _ => None,
    });
    if let Some(path) = last_created {
        let abs = ep.abs(path);
        multi
            .add_set_data(&abs, &source.nodes[path].data, None)
            .map_err(|e| Error::zk(&ep.label, "batch", &abs, e))?;
    }
    Ok(())
}

/// Notes in `memo` what a committed batch did: the ACL each created node
/// has, with the stat it was created with (from the batch's zxid probe,
/// when the server's create answers lack it), and the nodes deleted.
fn remember(memo: &mut AclMemo, ops: &[&Op], results: &[zk::MultiWriteResult], source: &Snapshot) {
    let probe = match results.last() {
        Some(zk::MultiWriteResult::SetData { stat }) if results.len() > ops.len() => Some(stat),
        _ => None,
    };
    let mut results = results.iter();
    for op in ops {
        match op {
            Op::Create { path } | Op::Recreate { path } => {
                if matches!(op, Op::Recreate { .. }) {
                    results.next(); // its delete
                }
                let created = match (results.next(), probe) {
                    (Some(zk::MultiWriteResult::Create { stat, .. }), _) if !stat.is_invalid() => Some(*stat),
                    (Some(zk::MultiWriteResult::Create { .. }), Some(probe)) => {
                        let mut stat = *probe;
                        stat.czxid = probe.mzxid;
                        stat.ctime = probe.mtime;
                        stat.aversion = 0;
                        Some(stat)
                    }
                    _ => None,
                };
                match (created, source.nodes.get(path)) {
                    (Some(stat), Some(n)) => memo.put(path, &stat, &n.acl),
                    _ => memo.forget(path),
                }
            }
            Op::Delete { path } => {
                results.next();
                memo.forget(path);
            }
            Op::SetData { .. } => {
                results.next(); // the ACL and its stat fields are unchanged
            }
            Op::SetAcl { .. } | Op::AdvanceSequence { .. } => {}
        }
    }
}

fn add_to_multi(
    multi: &mut zk::MultiWriter<'_>,
    ep: &Endpoint,
    op: &Op,
    source: &Snapshot,
    acls: &BTreeMap<&str, Vec<zk::Acl>>,
) -> Result<()> {
    let abs = ep.abs(op.path());
    let bad = |e| Error::zk(&ep.label, "batch", &abs, e);
    match op {
        Op::Create { path } => {
            let n = &source.nodes[path];
            multi.add_create(&abs, &n.data, &create_options(n.kind, &acls[path.as_str()]))
        }
        Op::SetData { path } => multi.add_set_data(&abs, &source.nodes[path].data, None),
        Op::Recreate { path } => {
            let n = &source.nodes[path];
            multi.add_delete(&abs, None).map_err(bad)?;
            multi.add_create(&abs, &n.data, &create_options(n.kind, &acls[path.as_str()]))
        }
        Op::Delete { .. } => multi.add_delete(&abs, None),
        Op::SetAcl { .. } | Op::AdvanceSequence { .. } => Ok(()),
    }
    .map_err(bad)
}

/// One operation on its own, tolerant of what a concurrent writer did.
async fn apply_one(
    client: &zk::Client,
    ep: &Endpoint,
    op: &Op,
    source: &Snapshot,
    acls: &BTreeMap<&str, Vec<zk::Acl>>,
    report: &mut CopyReport,
) -> Result<()> {
    let abs = ep.abs(op.path());
    let fail = |what, e| Error::zk(&ep.label, what, &abs, e);
    match op {
        Op::Create { path } | Op::SetData { path } | Op::Recreate { path } => {
            let n = &source.nodes[path];
            let acl = &acls[path.as_str()];
            if matches!(op, Op::Recreate { .. }) {
                match client.delete(&abs, None).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(zk::Error::NotEmpty) => {
                        report.warnings.push(format!(
                            "{abs}: type differs ({:?} on source) but the target node has children; left as it is",
                            n.kind
                        ));
                        return Ok(());
                    }
                    Err(e) => return Err(fail("delete", e)),
                }
            }
            match client.create(&abs, &n.data, &create_options(n.kind, acl)).await {
                Ok(_) => Ok(()),
                Err(zk::Error::NodeExists) => {
                    client
                        .set_data(&abs, &n.data, None)
                        .await
                        .map_err(|e| fail("set data", e))?;
                    client.set_acl(&abs, acl, None).await.map_err(|e| fail("set ACL", e))?;
                    Ok(())
                }
                Err(zk::Error::Unimplemented) if matches!(n.kind, NodeKind::Ttl(_)) => {
                    report.warnings.push(format!(
                        "{abs}: the target cannot create TTL nodes (zookeeper.extendedTypesEnabled); created as persistent"
                    ));
                    let opts = create_options(NodeKind::Persistent, acl);
                    match client.create(&abs, &n.data, &opts).await {
                        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                        Err(e) => Err(fail("create", e)),
                    }
                }
                Err(zk::Error::NoNode) => {
                    report
                        .warnings
                        .push(format!("{abs}: parent deleted on the target while copying"));
                    Ok(())
                }
                Err(e) => Err(fail("create", e)),
            }
        }
        Op::Delete { .. } => match client.delete(&abs, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(zk::Error::NotEmpty) => {
                report.warnings.push(format!(
                    "{abs}: children were created on the target while copying; not deleted"
                ));
                Ok(())
            }
            Err(e) => Err(fail("delete", e)),
        },
        Op::SetAcl { .. } | Op::AdvanceSequence { .. } => Ok(()),
    }
}

/// Creates and deletes a transient child (one `multi` per 500 pairs, each
/// pair adds 2 to `cversion`) until the parent's counter reaches `to`.
async fn advance_sequence(
    client: &zk::Client,
    ep: &Endpoint,
    rel: &str,
    to: i32,
    report: &mut CopyReport,
) -> Result<()> {
    let abs = ep.abs(rel);
    let probe = ep.abs(&child_rel(rel, SEQUENCE_PROBE));
    let acl = zk::Acls::anyone_all();
    let opts = zk::CreateMode::Persistent.with_acls(acl);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stat = match client.check_stat(&abs).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Error::zk(&ep.label, "stat", &abs, e)),
        };
        if stat.cversion >= to {
            return Ok(());
        }
        if Instant::now() > deadline {
            report.warnings.push(format!(
                "{abs}: sequence counter reached {} of {to} before giving up",
                stat.cversion
            ));
            return Ok(());
        }
        let pairs = (to - stat.cversion).div_euclid(2) + 1;
        let mut multi = client.new_multi_writer();
        for _ in 0..pairs.min(500) {
            multi
                .add_create(&probe, b"", &opts)
                .and_then(|()| multi.add_delete(&probe, None))
                .map_err(|e| Error::zk(&ep.label, "advance sequence", &abs, e))?;
        }
        multi.commit().await.map_err(|e| {
            Error::zk(
                &ep.label,
                "advance sequence",
                &abs,
                zk::Error::UnexpectedError(e.to_string()),
            )
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeStat;
    use crate::verify::AclEntry;

    fn node(data: &str, children: i32, cversion: i32) -> ZNode {
        ZNode {
            data: data.as_bytes().to_vec(),
            acl: vec![AclEntry {
                perms: 31,
                scheme: "world".into(),
                id: "anyone".into(),
            }],
            kind: NodeKind::Persistent,
            stat: NodeStat {
                num_children: children,
                cversion,
                ..NodeStat::default()
            },
        }
    }

    fn snap(nodes: &[(&str, ZNode)]) -> Snapshot {
        Snapshot {
            nodes: nodes.iter().map(|(p, n)| ((*p).to_string(), n.clone())).collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn plans_deletes_deepest_first_then_creates_parents_first() {
        let source = snap(&[("/", node("", 1, 1)), ("/a", node("", 1, 1)), ("/a/b", node("x", 0, 0))]);
        let target = snap(&[("/", node("", 1, 1)), ("/z", node("", 1, 1)), ("/z/y", node("", 0, 0))]);
        let p = plan(&source, &target, &CopyOptions::default());
        let paths: Vec<String> = p.ops.iter().map(|o| format!("{o:?}")).collect();
        assert_eq!(
            paths,
            vec![
                "Delete { path: \"/z/y\" }",
                "Delete { path: \"/z\" }",
                "Create { path: \"/a\" }",
                "Create { path: \"/a/b\" }",
            ]
        );
        let keep = plan(
            &source,
            &target,
            &CopyOptions {
                delete_extra: false,
                ..CopyOptions::default()
            },
        );
        assert_eq!(keep.ops.len(), 2);
    }

    #[test]
    fn plans_only_what_differs() {
        let mut locked = node("same", 0, 0);
        locked.acl[0].perms = 1;
        let source = snap(&[("/", node("", 2, 2)), ("/d", node("new", 0, 0)), ("/acl", locked)]);
        let target = snap(&[
            ("/", node("", 2, 2)),
            ("/d", node("old", 0, 0)),
            ("/acl", node("same", 0, 0)),
        ]);
        let p = plan(&source, &target, &CopyOptions::default());
        assert_eq!(
            p.ops,
            vec![Op::SetAcl { path: "/acl".into() }, Op::SetData { path: "/d".into() }]
        );
        assert!(plan(&source, &source, &CopyOptions::default()).ops.is_empty());
    }

    #[test]
    fn advances_sequence_counters_past_copied_children() {
        let source = snap(&[
            ("/", node("", 1, 1)),
            ("/locks", node("", 2, 40)),
            ("/locks/lock-0000000007", node("", 0, 0)),
            ("/locks/lock-0000000041", node("", 0, 0)),
        ]);
        let p = plan(&source, &Snapshot::default(), &CopyOptions::default());
        assert_eq!(
            p.ops.last(),
            Some(&Op::AdvanceSequence {
                path: "/locks".into(),
                to: 42
            })
        );
    }
}
