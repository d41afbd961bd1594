//! Reconciling: one path brought to agreement (read both sides, decide,
//! write conditionally), whole trees compared after (re)connects, the
//! workers that drain the queue, and the watchers that fill it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use super::decide::{decide, Decision, Held};
use super::queue::Pending;
use super::{Shared, Side, CONNECT_TIMEOUT};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::node::{self, create_options, ZNode};
use crate::tree::{child_rel, read_both};
use crate::verify::NodeKind;

/// Attempts at one path before giving up until its next event.
const ATTEMPTS: usize = 8;

fn parent_rel(rel: &str) -> Option<&str> {
    match rel.rfind('/') {
        Some(0) if rel.len() > 1 => Some("/"),
        Some(i) if i > 0 => Some(&rel[..i]),
        _ => None,
    }
}

enum Outcome {
    Done,
    Retry,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Shared {
    async fn read(&self, side: Side, rel: &str) -> Result<Option<ZNode>> {
        let abs = self.side(side).ep.abs(rel);
        let n = node::read(&self.client(side), &abs)
            .await
            .map_err(|e| Error::zk(&self.side(side).ep.label, "read", &abs, e))?;
        Ok(n.and_then(|n| self.opts.rules.normalize(rel, n)))
    }

    /// Brings one path to agreement. Boxed: deleting a parent reconciles
    /// its children first, creating a child reconciles its parent first.
    fn reconcile<'a>(self: &'a Arc<Self>, rel: &'a str, pending: Pending) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for _ in 0..ATTEMPTS {
                match self.reconcile_once(rel, pending).await {
                    Ok(Outcome::Done) => return,
                    Ok(Outcome::Retry) => {}
                    Err(
                        e @ Error::Zk {
                            source: zk::Error::NoAuth,
                            ..
                        },
                    ) => {
                        // Retrying cannot help: the credentials can.
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(path = rel, error = %e, "not authorized: left unsynced (give credentials with --source-auth/--target-auth)");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(path = rel, error = %e, "reconcile failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                path = rel,
                "gave up reconciling after {ATTEMPTS} attempts; will retry on its next event"
            );
        })
    }

    async fn reconcile_once(self: &Arc<Self>, rel: &str, pending: Pending) -> Result<Outcome> {
        // A node new to the engine, reported by one side: most likely just
        // created there, so create it on the other side without reading it
        // first; if it exists there after all, reconcile in full.
        if pending.live && !self.base.lock().contains_key(rel) {
            let from = pending.last_side;
            if let Some(n) = self.read(from, rel).await? {
                if self.try_create(from.other(), rel, &n).await {
                    self.counters.applied.fetch_add(1, Ordering::Relaxed);
                    self.counters.lag(Some(&n), pending);
                    self.base.lock().insert(rel.to_string(), n.digest());
                    return Ok(Outcome::Done);
                }
            }
        }
        // The base is taken before the reads and must be the same after
        // them: a decision pairs the reads with the agreement they were
        // made under. Else a read from before another writer's copy (the
        // initial reconcile's, say) met the base that copy recorded, and
        // the side the copy had not reached yet looked like a deletion —
        // which was then carried to the other side.
        let base = self.base.lock().get(rel).copied();
        let (s, t) = tokio::join!(self.read(Side::Source, rel), self.read(Side::Target, rel));
        let (s, t) = (s?, t?);
        let (ds, dt) = (s.as_ref().map(ZNode::digest), t.as_ref().map(ZNode::digest));
        if ds == dt {
            let mut base = self.base.lock();
            match ds {
                Some(d) => base.insert(rel.to_string(), d),
                None => base.remove(rel),
            };
            return Ok(Outcome::Done);
        }
        if self.base.lock().get(rel).copied() != base {
            return Ok(Outcome::Retry);
        }
        let held = |n: Option<&ZNode>| Held {
            digest: n.map(ZNode::digest),
            mtime: n.map(|n| n.stat.mtime),
        };
        let decision = decide(
            base,
            held(s.as_ref()),
            held(t.as_ref()),
            self.opts.policy,
            self.authoritative(),
            pending.last_side,
        );
        let from = match decision {
            Decision::Copy(side) => side,
            Decision::Conflict(winner) => {
                self.counters
                    .conflict(rel, s.as_ref(), t.as_ref(), winner, self.opts.policy);
                let Some(side) = winner else {
                    return Ok(Outcome::Done);
                };
                side
            }
        };
        let (src, dst) = match from {
            Side::Source => (s, t),
            Side::Target => (t, s),
        };
        let outcome = self.write(from.other(), rel, src.as_ref(), dst.as_ref()).await?;
        if let Outcome::Done = outcome {
            self.counters.applied.fetch_add(1, Ordering::Relaxed);
            self.counters.lag(src.as_ref(), pending);
            let mut base = self.base.lock();
            match src.as_ref().map(ZNode::digest) {
                Some(d) => base.insert(rel.to_string(), d),
                None => base.remove(rel),
            };
        }
        Ok(outcome)
    }

    /// Creates `n` at `rel` on `to`; `false` if that did not work as such.
    async fn try_create(&self, to: Side, rel: &str, n: &ZNode) -> bool {
        let abs = self.side(to).ep.abs(rel);
        let acl = n.zk_acl();
        self.echoes.expect(to, rel, 1);
        let created = self
            .client(to)
            .create(&abs, &n.data, &create_options(n.kind, &acl))
            .await
            .is_ok();
        if !created {
            self.echoes.cancel(to, rel, 1);
        }
        created
    }

    /// Makes `to`'s node at `rel` equal to `want`, conditional on `have`.
    async fn write(
        self: &Arc<Self>,
        to: Side,
        rel: &str,
        want: Option<&ZNode>,
        have: Option<&ZNode>,
    ) -> Result<Outcome> {
        let conn = self.side(to);
        let client = self.client(to);
        let abs = conn.ep.abs(rel);
        let fail = |op, e| Error::zk(&conn.ep.label, op, &abs, e);
        let quiet = Pending {
            since: Instant::now(),
            last_side: to.other(),
            live: false,
        };
        match (want, have) {
            (None, None) => Ok(Outcome::Done),
            (None, Some(h)) => {
                self.echoes.expect(to, rel, 1);
                let r = client.delete(&abs, Some(h.stat.version)).await;
                if r.is_err() {
                    self.echoes.cancel(to, rel, 1);
                }
                match r {
                    Ok(()) | Err(zk::Error::NoNode) => Ok(Outcome::Done),
                    Err(zk::Error::BadVersion) => Ok(Outcome::Retry),
                    Err(zk::Error::NotEmpty) => {
                        let children = client.list_children(&abs).await.unwrap_or_default();
                        for name in children {
                            self.reconcile(&child_rel(rel, &name), quiet).await;
                        }
                        Ok(Outcome::Retry)
                    }
                    Err(e) => Err(fail("delete", e)),
                }
            }
            (Some(w), None) => {
                let acl = w.zk_acl();
                self.echoes.expect(to, rel, 1);
                let r = client.create(&abs, &w.data, &create_options(w.kind, &acl)).await;
                if r.is_err() {
                    self.echoes.cancel(to, rel, 1);
                }
                match r {
                    Ok(_) => Ok(Outcome::Done),
                    Err(zk::Error::NodeExists) => Ok(Outcome::Retry),
                    Err(zk::Error::NoNode) => {
                        match parent_rel(rel) {
                            Some(p) => self.reconcile(p, quiet).await,
                            None => {
                                // The root's own parent is outside the subtree: create it empty.
                                let parent = abs.rsplit_once('/').map_or("/", |(p, _)| p);
                                let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                                client
                                    .mkdir(parent, &opts)
                                    .await
                                    .map_err(|e| fail("create parent", e))?;
                            }
                        }
                        Ok(Outcome::Retry)
                    }
                    Err(zk::Error::Unimplemented) if matches!(w.kind, NodeKind::Ttl(_)) => {
                        tracing::warn!(path = %abs, "{} cannot create TTL nodes; created as persistent", conn.ep.label);
                        let opts = create_options(NodeKind::Persistent, &acl);
                        match client.create(&abs, &w.data, &opts).await {
                            Ok(_) => Ok(Outcome::Done),
                            Err(zk::Error::NodeExists | zk::Error::NoNode) => Ok(Outcome::Retry),
                            Err(e) => Err(fail("create", e)),
                        }
                    }
                    Err(e) => Err(fail("create", e)),
                }
            }
            (Some(w), Some(h)) => {
                if w.kind != h.kind {
                    if h.stat.num_children > 0 {
                        tracing::warn!(path = %abs, "node type differs but the node has children; left as it is");
                        return Ok(Outcome::Done);
                    }
                    let acl = w.zk_acl();
                    let mut multi = client.new_multi_writer();
                    multi
                        .add_delete(&abs, Some(h.stat.version))
                        .map_err(|e| fail("delete", e))?;
                    multi
                        .add_create(&abs, &w.data, &create_options(w.kind, &acl))
                        .map_err(|e| fail("create", e))?;
                    self.echoes.expect(to, rel, 2);
                    return Ok(match multi.commit().await {
                        Ok(_) => Outcome::Done,
                        Err(_) => {
                            self.echoes.cancel(to, rel, 2);
                            Outcome::Retry
                        }
                    });
                }
                if w.data != h.data {
                    self.echoes.expect(to, rel, 1);
                    let r = client.set_data(&abs, &w.data, Some(h.stat.version)).await;
                    if r.is_err() {
                        self.echoes.cancel(to, rel, 1);
                    }
                    match r {
                        Ok(_) => {}
                        Err(zk::Error::BadVersion | zk::Error::NoNode) => return Ok(Outcome::Retry),
                        Err(e) => return Err(fail("set data", e)),
                    }
                }
                let (mut wa, mut ha) = (w.acl.clone(), h.acl.clone());
                wa.sort();
                ha.sort();
                if wa != ha {
                    match client.set_acl(&abs, &w.zk_acl(), Some(h.stat.aversion)).await {
                        Ok(_) => {}
                        Err(zk::Error::BadVersion | zk::Error::NoNode) => return Ok(Outcome::Retry),
                        Err(e) => return Err(fail("set ACL", e)),
                    }
                }
                Ok(Outcome::Done)
            }
        }
    }

    /// Re-reads both trees and queues every path that differs; records the
    /// base of every path that agrees. One at a time; a request during a
    /// run makes it run once more.
    pub(super) async fn full_reconcile(self: &Arc<Self>) {
        if self.reconciling.swap(true, Ordering::SeqCst) {
            self.reconcile_again.store(true, Ordering::SeqCst);
            return;
        }
        loop {
            self.reconcile_again.store(false, Ordering::SeqCst);
            self.counters.full_reconciles.fetch_add(1, Ordering::Relaxed);
            let (s, t) = (self.client(Side::Source), self.client(Side::Target));
            // Nodes either side may not read are left alone (the copy
            // before reported them).
            let both = read_both(
                [(&s, &self.sides[0].ep), (&t, &self.sides[1].ep)],
                &self.opts.rules,
                true,
                None,
                [None, None],
            )
            .await;
            match both {
                Ok((a, b, unreadable)) => {
                    if !unreadable.is_empty() {
                        tracing::warn!(count = unreadable.len(), first = %unreadable[0], "nodes left unsynced: not readable");
                    }
                    let mut queue = Vec::new();
                    {
                        let mut base = self.base.lock();
                        for (rel, n) in &a.nodes {
                            match b.nodes.get(rel) {
                                Some(m) if m.digest() == n.digest() => {
                                    base.insert(rel.clone(), n.digest());
                                }
                                _ => queue.push(rel.clone()),
                            }
                        }
                        queue.extend(b.nodes.keys().filter(|r| !a.nodes.contains_key(*r)).cloned());
                    }
                    for rel in queue {
                        self.queue.push(&rel, self.authoritative(), false);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "full reconcile could not read a side; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    self.reconcile_again.store(true, Ordering::SeqCst);
                }
            }
            if !self.reconcile_again.load(Ordering::SeqCst) {
                break;
            }
        }
        self.reconciling.store(false, Ordering::SeqCst);
    }

    pub(super) async fn worker(self: Arc<Self>, shard: usize) {
        let mut paused = self.paused.subscribe();
        loop {
            // Events keep queueing (and coalescing) while paused.
            let _ = paused.wait_for(|p| !*p).await;
            match self.queue.pop(shard) {
                Some((rel, pending)) => {
                    self.reconcile(&rel, pending).await;
                    self.queue.done();
                }
                None => self.queue.wait(shard).await,
            }
        }
    }

    /// Follows one side's events for ever, re-watching (and fully
    /// reconciling) after reconnects and session expiries.
    pub(super) async fn watch_side(self: Arc<Self>, side: Side) {
        let conn = self.side(side);
        loop {
            let client = self.client(side);
            let mut watcher = match client.watch(&conn.ep.root, zk::AddWatchMode::PersistentRecursive).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(side = ?side, error = %e, "cannot watch; reconnecting");
                    self.reconnect(side).await;
                    continue;
                }
            };
            let me = self.clone();
            tokio::spawn(async move { me.full_reconcile().await });
            let mut disconnected = false;
            loop {
                let ev = watcher.changed().await;
                match ev.event_type {
                    zk::EventType::Session => match ev.session_state {
                        zk::SessionState::Disconnected => {
                            self.echoes.forget(side);
                            tracing::info!(side = ?side, "disconnected; events may be lost until reconnect");
                            disconnected = true;
                        }
                        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                            if disconnected {
                                tracing::info!(side = ?side, "reconnected; reconciling both trees");
                                disconnected = false;
                                let me = self.clone();
                                tokio::spawn(async move { me.full_reconcile().await });
                            }
                        }
                        state => {
                            self.echoes.forget(side);
                            tracing::warn!(side = ?side, ?state, "session ended; opening a new one");
                            self.reconnect(side).await;
                            self.counters.sessions_renewed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    },
                    _ => {
                        if Endpoint::is_system(&ev.path) {
                            continue;
                        }
                        if let Some(rel) = conn.ep.rel(&ev.path) {
                            self.counters.events.fetch_add(1, Ordering::Relaxed);
                            if self.echoes.take(side, rel) {
                                self.counters.echoes_dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            self.queue.push(rel, side, true);
                        }
                    }
                }
            }
        }
    }

    async fn reconnect(&self, side: Side) {
        let conn = self.side(side);
        loop {
            match conn.ep.connect(CONNECT_TIMEOUT).await {
                Ok(c) => {
                    *conn.client.write() = c;
                    return;
                }
                Err(e) => tracing::warn!(side = ?side, error = %e, "still cannot reach ZooKeeper"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parent_rel;

    #[test]
    fn parents_of_relative_paths() {
        assert_eq!(parent_rel("/a"), Some("/"));
        assert_eq!(parent_rel("/a/b"), Some("/a"));
        assert_eq!(parent_rel("/"), None);
    }
}
