//! Live bidirectional sync: persistent recursive watches on both sides,
//! every change carried to the other side, conflicts settled by a policy.
//!
//! # Loop prevention without marker nodes
//!
//! An event only says *that* a path changed, so the engine reconciles the
//! path: it reads both sides and compares their digests (data, ACL, type).
//! Equal means in sync — which is what the echo of the engine's own
//! write looks like, so an echo can never bounce back, and nothing is
//! written into the user's tree to recognise it. To save even that read,
//! the engine counts the events its own successful writes will cause per
//! side and path and drops that many (ZooKeeper delivers a path's events
//! in order, and every write is conditional on the version just read, so a
//! client's change can never hide behind an expected echo; the counts are
//! cleared whenever a disconnection may have lost events). Different means one side
//! changed; which one is told by the *base*, the digest both sides last
//! agreed on: the side still equal to the base is the stale one. When both
//! moved away from the base it is a conflict, settled by the
//! [`ConflictPolicy`] and logged. Writes are conditional on the version
//! just read, so a change racing the engine makes it reconcile again
//! rather than overwrite.
//!
//! Events for one path are coalesced and handled by one worker (paths are
//! sharded over workers by hash), so a burst of writes to one node costs
//! one reconcile, and different nodes proceed in parallel on the
//! pipelined sessions.
//!
//! ZooKeeper drops events while a client is disconnected, so after every
//! reconnect and after a session expiry (with a new session) the engine
//! re-reads both trees and reconciles every path that differs.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::node::{self, create_options, NodeRules, ZNode};
use crate::tree::{child_rel, read_tree};
use crate::verify::NodeKind;

/// How long the engine keeps trying to reach a side before it reports an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at one path before giving up until its next event.
const ATTEMPTS: usize = 8;
/// Conflicts kept for inspection (all are counted and logged).
const CONFLICTS_KEPT: usize = 1000;

/// One side of the migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The ensemble being left.
    Source,
    /// The ensemble being moved to.
    Target,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Source => 0,
            Side::Target => 1,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Source => Side::Target,
            Side::Target => Side::Source,
        }
    }
}

/// How a conflict (both sides changed a path since they last agreed) is settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The authoritative side wins: the source until cutover, the target after.
    #[default]
    SourceWins,
    /// The later modification time wins; between a deletion and a change,
    /// the side whose event came last.
    NewestWins,
    /// Nothing is written; the conflict is logged and counted.
    ReportOnly,
}

/// How the sync engine runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// Conflict policy.
    pub policy: ConflictPolicy,
    /// Ephemeral policy and node types.
    pub rules: NodeRules,
    /// Parallel reconcile workers (paths are sharded over them).
    pub workers: usize,
    /// The side that wins where the base is unknown or the policy says so.
    pub authoritative: Side,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            policy: ConflictPolicy::SourceWins,
            rules: NodeRules::default(),
            workers: 128,
            authoritative: Side::Source,
        }
    }
}

/// A conflict the engine met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Path relative to the roots.
    pub path: String,
    /// What the source held (`None`: absent).
    pub source: Option<String>,
    /// What the target held.
    pub target: Option<String>,
    /// The side whose state was kept, or `None` under report-only.
    pub winner: Option<Side>,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

/// Counters and lag of a running sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncStats {
    /// Node events received (both sides).
    pub events: u64,
    /// Writes applied to the other side.
    pub applied: u64,
    /// Conflicts met.
    pub conflicts: u64,
    /// Full re-reads of both trees (start, reconnects, expiries).
    pub full_reconciles: u64,
    /// Paths given up on after repeated failures (retried on their next event).
    pub errors: u64,
    /// Events recognised as echoes of the engine's own writes and dropped.
    pub echoes: u64,
    /// Paths waiting or being reconciled.
    pub pending: usize,
    /// Changes measured for lag.
    pub lag_count: u64,
    /// Median lag, µs: from the change's modification time on its side to
    /// the write on the other side.
    pub lag_p50_us: u64,
    /// 99th percentile lag, µs.
    pub lag_p99_us: u64,
    /// Largest lag, µs.
    pub lag_max_us: u64,
}

struct SideConn {
    ep: Endpoint,
    client: RwLock<zk::Client>,
}

#[derive(Clone, Copy)]
struct Pending {
    since: Instant,
    last_side: Side,
    live: bool,
}

#[derive(Default)]
struct ShardQueue {
    order: VecDeque<String>,
    info: HashMap<String, Pending>,
}

#[derive(Default)]
struct Shard {
    queue: Mutex<ShardQueue>,
    notify: Notify,
}

struct Shared {
    sides: [SideConn; 2],
    opts: SyncOptions,
    authoritative: AtomicU8,
    base: Mutex<HashMap<String, u128>>,
    shards: Vec<Shard>,
    pending: AtomicUsize,
    lag: Mutex<Histogram<u64>>,
    events: AtomicU64,
    applied: AtomicU64,
    conflicts: AtomicU64,
    full_reconciles: AtomicU64,
    errors: AtomicU64,
    conflict_log: Mutex<VecDeque<Conflict>>,
    reconciling: AtomicBool,
    reconcile_again: AtomicBool,
    paused: tokio::sync::watch::Sender<bool>,
    echoes: Mutex<HashMap<(Side, String), u32>>,
    echoes_dropped: AtomicU64,
}

/// A running sync; stopped on [`stop`](Self::stop) or drop.
pub struct SyncHandle {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn describe(n: Option<&ZNode>) -> Option<String> {
    n.map(|n| format!("{} bytes, {:?}, mtime {}", n.data.len(), n.kind, n.stat.mtime))
}

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
    fn side(&self, side: Side) -> &SideConn {
        &self.sides[side.index()]
    }

    fn client(&self, side: Side) -> zk::Client {
        self.side(side).client.read().clone()
    }

    fn authoritative(&self) -> Side {
        if self.authoritative.load(Ordering::Relaxed) == 0 {
            Side::Source
        } else {
            Side::Target
        }
    }

    fn enqueue(&self, rel: &str, side: Side, live: bool) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        rel.hash(&mut h);
        let shard = &self.shards[usize::try_from(h.finish()).unwrap_or(0) % self.shards.len()];
        let mut q = shard.queue.lock();
        if let Some(p) = q.info.get_mut(rel) {
            p.last_side = side;
            p.live |= live;
            return;
        }
        q.info.insert(
            rel.to_string(),
            Pending {
                since: Instant::now(),
                last_side: side,
                live,
            },
        );
        q.order.push_back(rel.to_string());
        self.pending.fetch_add(1, Ordering::SeqCst);
        drop(q);
        shard.notify.notify_one();
    }

    fn expect_echo(&self, side: Side, rel: &str, n: u32) {
        *self.echoes.lock().entry((side, rel.to_string())).or_insert(0) += n;
    }

    /// Undoes [`expect_echo`](Self::expect_echo) for a write that failed.
    fn cancel_echo(&self, side: Side, rel: &str, n: u32) {
        let mut echoes = self.echoes.lock();
        let key = (side, rel.to_string());
        if let Some(c) = echoes.get_mut(&key) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                echoes.remove(&key);
            }
        }
    }

    /// Whether this event is the echo of the engine's own write.
    fn take_echo(&self, side: Side, rel: &str) -> bool {
        let mut echoes = self.echoes.lock();
        if echoes.is_empty() {
            return false;
        }
        let key = (side, rel.to_string());
        match echoes.get_mut(&key) {
            Some(c) => {
                *c -= 1;
                if *c == 0 {
                    echoes.remove(&key);
                }
                true
            }
            None => false,
        }
    }

    fn forget_echoes(&self, side: Side) {
        self.echoes.lock().retain(|(s, _), _| *s != side);
    }

    async fn read(&self, side: Side, rel: &str) -> Result<Option<ZNode>> {
        let abs = self.side(side).ep.abs(rel);
        let n = node::read(&self.client(side), &abs)
            .await
            .map_err(|e| Error::zk(&self.side(side).ep.label, "read", &abs, e))?;
        Ok(n.and_then(|n| self.opts.rules.normalize(rel, n)))
    }

    fn record_conflict(&self, rel: &str, s: Option<&ZNode>, t: Option<&ZNode>, winner: Option<Side>) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        let c = Conflict {
            path: rel.to_string(),
            source: describe(s),
            target: describe(t),
            winner,
            at_ms: now_ms(),
        };
        tracing::warn!(path = %c.path, source = ?c.source, target = ?c.target, winner = ?c.winner, policy = ?self.opts.policy, "sync conflict");
        let mut log = self.conflict_log.lock();
        if log.len() == CONFLICTS_KEPT {
            log.pop_front();
        }
        log.push_back(c);
    }

    /// Which side's state to copy to the other, or `None` to leave both.
    fn decide(&self, rel: &str, s: Option<&ZNode>, t: Option<&ZNode>, pending: Pending) -> Option<Side> {
        let (ds, dt) = (s.map(ZNode::digest), t.map(ZNode::digest));
        let base = self.base.lock().get(rel).copied();
        match base {
            Some(b) if Some(b) == dt => return Some(Side::Source),
            Some(b) if Some(b) == ds => return Some(Side::Target),
            None if ds.is_none() => return Some(Side::Target),
            None if dt.is_none() => return Some(Side::Source),
            None => return Some(self.authoritative()),
            Some(_) => {}
        }
        let winner = match self.opts.policy {
            ConflictPolicy::SourceWins => Some(self.authoritative()),
            ConflictPolicy::ReportOnly => None,
            ConflictPolicy::NewestWins => Some(match (s, t) {
                (Some(a), Some(b)) if b.stat.mtime > a.stat.mtime => Side::Target,
                (Some(a), Some(b)) if a.stat.mtime > b.stat.mtime => Side::Source,
                (Some(_), Some(_)) => self.authoritative(),
                _ => pending.last_side,
            }),
        };
        self.record_conflict(rel, s, t, winner);
        winner
    }

    fn record_lag(&self, from: Option<&ZNode>, pending: Pending) {
        if !pending.live {
            return;
        }
        let since = u64::try_from(pending.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let by_mtime = from
            .and_then(|n| u64::try_from(n.stat.mtime).ok())
            .map(|ms| now_us().saturating_sub(ms * 1000))
            .filter(|us| *us < 3_600_000_000);
        let lag = by_mtime.map_or(since, |m| m.max(since));
        let _ = self.lag.lock().record(lag.max(1));
    }

    /// Brings one path to agreement. Boxed: deleting a parent reconciles
    /// its children first, creating a child reconciles its parent first.
    fn reconcile<'a>(self: &'a Arc<Self>, rel: &'a str, pending: Pending) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for _ in 0..ATTEMPTS {
                match self.reconcile_once(rel, pending).await {
                    Ok(Outcome::Done) => return,
                    Ok(Outcome::Retry) => {}
                    Err(e) => {
                        tracing::debug!(path = rel, error = %e, "reconcile failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            self.errors.fetch_add(1, Ordering::Relaxed);
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
                    self.applied.fetch_add(1, Ordering::Relaxed);
                    self.record_lag(Some(&n), pending);
                    self.base.lock().insert(rel.to_string(), n.digest());
                    return Ok(Outcome::Done);
                }
            }
        }
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
        let Some(from) = self.decide(rel, s.as_ref(), t.as_ref(), pending) else {
            return Ok(Outcome::Done);
        };
        let (src, dst) = match from {
            Side::Source => (s, t),
            Side::Target => (t, s),
        };
        let outcome = self.write(from.other(), rel, src.as_ref(), dst.as_ref()).await?;
        if let Outcome::Done = outcome {
            self.applied.fetch_add(1, Ordering::Relaxed);
            self.record_lag(src.as_ref(), pending);
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
        self.expect_echo(to, rel, 1);
        let created = self
            .client(to)
            .create(&abs, &n.data, &create_options(n.kind, &acl))
            .await
            .is_ok();
        if !created {
            self.cancel_echo(to, rel, 1);
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
                self.expect_echo(to, rel, 1);
                let r = client.delete(&abs, Some(h.stat.version)).await;
                if r.is_err() {
                    self.cancel_echo(to, rel, 1);
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
                self.expect_echo(to, rel, 1);
                let r = client.create(&abs, &w.data, &create_options(w.kind, &acl)).await;
                if r.is_err() {
                    self.cancel_echo(to, rel, 1);
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
                    self.expect_echo(to, rel, 2);
                    return Ok(match multi.commit().await {
                        Ok(_) => Outcome::Done,
                        Err(_) => {
                            self.cancel_echo(to, rel, 2);
                            Outcome::Retry
                        }
                    });
                }
                if w.data != h.data {
                    self.expect_echo(to, rel, 1);
                    let r = client.set_data(&abs, &w.data, Some(h.stat.version)).await;
                    if r.is_err() {
                        self.cancel_echo(to, rel, 1);
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
    async fn full_reconcile(self: &Arc<Self>) {
        if self.reconciling.swap(true, Ordering::SeqCst) {
            self.reconcile_again.store(true, Ordering::SeqCst);
            return;
        }
        loop {
            self.reconcile_again.store(false, Ordering::SeqCst);
            self.full_reconciles.fetch_add(1, Ordering::Relaxed);
            let (s, t) = (self.client(Side::Source), self.client(Side::Target));
            let (a, b) = tokio::join!(
                read_tree(&s, &self.sides[0].ep, &self.opts.rules, None),
                read_tree(&t, &self.sides[1].ep, &self.opts.rules, None)
            );
            match (a, b) {
                (Ok(a), Ok(b)) => {
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
                        self.enqueue(&rel, self.authoritative(), false);
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
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

    async fn worker(self: Arc<Self>, shard: usize) {
        let mut paused = self.paused.subscribe();
        loop {
            // Events keep queueing (and coalescing) while paused.
            let _ = paused.wait_for(|p| !*p).await;
            let next = {
                let mut q = self.shards[shard].queue.lock();
                q.order.pop_front().map(|rel| {
                    let p = q.info.remove(&rel);
                    (rel, p)
                })
            };
            match next {
                Some((rel, Some(p))) => {
                    self.reconcile(&rel, p).await;
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                }
                Some((_, None)) => {
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                }
                None => self.shards[shard].notify.notified().await,
            }
        }
    }

    /// Follows one side's events for ever, re-watching (and fully
    /// reconciling) after reconnects and session expiries.
    async fn watch_side(self: Arc<Self>, side: Side) {
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
                            self.forget_echoes(side);
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
                            self.forget_echoes(side);
                            tracing::warn!(side = ?side, ?state, "session ended; opening a new one");
                            self.reconnect(side).await;
                            break;
                        }
                    },
                    _ => {
                        if Endpoint::is_system(&ev.path) {
                            continue;
                        }
                        if let Some(rel) = conn.ep.rel(&ev.path) {
                            self.events.fetch_add(1, Ordering::Relaxed);
                            if self.take_echo(side, rel) {
                                self.echoes_dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            self.enqueue(rel, side, true);
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

impl SyncHandle {
    /// Connects to both sides, watches both subtrees and reconciles them
    /// once fully; from then on every change on either side is carried over.
    ///
    /// # Errors
    /// [`Error::Zk`] when a side cannot be reached.
    pub async fn start(source: Endpoint, target: Endpoint, opts: SyncOptions) -> Result<Self> {
        let (s, t) = tokio::join!(source.connect(CONNECT_TIMEOUT), target.connect(CONNECT_TIMEOUT));
        let (s, t) = (s?, t?);
        let (authoritative, workers) = (opts.authoritative, opts.workers.max(1));
        let shared = Arc::new(Shared {
            sides: [
                SideConn {
                    ep: source,
                    client: RwLock::new(s),
                },
                SideConn {
                    ep: target,
                    client: RwLock::new(t),
                },
            ],
            opts,
            authoritative: AtomicU8::new(u8::from(authoritative == Side::Target)),
            base: Mutex::new(HashMap::new()),
            shards: (0..workers).map(|_| Shard::default()).collect(),
            pending: AtomicUsize::new(0),
            lag: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")),
            events: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            full_reconciles: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            conflict_log: Mutex::new(VecDeque::new()),
            reconciling: AtomicBool::new(false),
            reconcile_again: AtomicBool::new(false),
            paused: tokio::sync::watch::channel(false).0,
            echoes: Mutex::new(HashMap::new()),
            echoes_dropped: AtomicU64::new(0),
        });
        let mut tasks = Vec::new();
        for i in 0..shared.shards.len() {
            tasks.push(tokio::spawn(shared.clone().worker(i)));
        }
        // Each watcher sets its watch first and reconciles after, so a
        // change between the two is seen by the watch.
        for side in [Side::Source, Side::Target] {
            tasks.push(tokio::spawn(shared.clone().watch_side(side)));
        }
        let handle = SyncHandle { shared, tasks };
        handle.wait_reconciled(Duration::from_secs(600)).await;
        Ok(handle)
    }

    async fn wait_reconciled(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.shared.full_reconciles.load(Ordering::SeqCst) == 0 || self.shared.reconciling.load(Ordering::SeqCst)
        {
            if Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.wait_idle(deadline.saturating_duration_since(Instant::now())).await;
    }

    /// Waits until nothing is queued or in progress; `false` on timeout.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.pending.load(Ordering::SeqCst) == 0 && !self.shared.reconciling.load(Ordering::SeqCst) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Re-reads both trees and reconciles every difference (what the engine
    /// does by itself after reconnects).
    pub async fn full_reconcile(&self) {
        self.shared.full_reconcile().await;
    }

    /// Which side wins where the base is unknown or the policy says so.
    pub fn authoritative(&self) -> Side {
        self.shared.authoritative()
    }

    /// Makes `side` authoritative (cutover makes it the target; rollback the source).
    pub fn set_authoritative(&self, side: Side) {
        self.shared
            .authoritative
            .store(u8::from(side == Side::Target), Ordering::SeqCst);
    }

    /// Counters and lag percentiles.
    pub fn stats(&self) -> SyncStats {
        let sh = &self.shared;
        let lag = sh.lag.lock();
        SyncStats {
            events: sh.events.load(Ordering::Relaxed),
            applied: sh.applied.load(Ordering::Relaxed),
            conflicts: sh.conflicts.load(Ordering::Relaxed),
            full_reconciles: sh.full_reconciles.load(Ordering::Relaxed),
            errors: sh.errors.load(Ordering::Relaxed),
            echoes: sh.echoes_dropped.load(Ordering::Relaxed),
            pending: sh.pending.load(Ordering::SeqCst),
            lag_count: lag.len(),
            lag_p50_us: lag.value_at_quantile(0.5),
            lag_p99_us: lag.value_at_quantile(0.99),
            lag_max_us: lag.max(),
        }
    }

    /// Forgets the lag measured so far (to measure one window).
    pub fn reset_lag(&self) {
        self.shared.lag.lock().reset();
    }

    /// The most recent conflicts (up to 1,000), oldest first.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.shared.conflict_log.lock().iter().cloned().collect()
    }

    /// Holds every write: events keep being received and coalesced, and
    /// are reconciled on [`resume`](Self::resume). Changes made on both
    /// sides meanwhile meet as conflicts.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Reconciles what queued up while paused, and carries on.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Stops every task of the engine.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("source", &self.shared.sides[0].ep)
            .field("target", &self.shared.sides[1].ep)
            .field("stats", &self.stats())
            .finish()
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
