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

//! The engine's parts: `decide.rs` (the pure decision), `echoes.rs` (echo
//! suppression), `queue.rs` (the sharded work queue), `stats.rs` (counters,
//! lag, conflict log) and `reconcile.rs` (reading, writing, watching).

mod decide;
mod echoes;
mod queue;
mod reconcile;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::node::NodeRules;
use echoes::Echoes;
use queue::WorkQueue;
use stats::Counters;
pub use stats::{SyncStats, LAG_BUCKETS_US};

/// How long the engine keeps trying to reach a side before it reports an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

struct SideConn {
    ep: Endpoint,
    client: RwLock<zk::Client>,
}

struct Shared {
    sides: [SideConn; 2],
    opts: SyncOptions,
    authoritative: AtomicU8,
    /// The digest both sides last agreed on, per path.
    base: Mutex<HashMap<String, u128>>,
    queue: WorkQueue,
    counters: Counters,
    echoes: Echoes,
    reconciling: AtomicBool,
    reconcile_again: AtomicBool,
    paused: tokio::sync::watch::Sender<bool>,
}

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
}

/// A running sync; stopped on [`stop`](Self::stop) or drop.
pub struct SyncHandle {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl SyncHandle {
    /// Connects to both sides, watches both subtrees and reconciles them
    /// once fully; from then on every change on either side is carried over.
    ///
    /// # Errors
    /// [`Error::Zk`](crate::Error::Zk) when a side cannot be reached.
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
            queue: WorkQueue::new(workers),
            counters: Counters::default(),
            echoes: Echoes::default(),
            reconciling: AtomicBool::new(false),
            reconcile_again: AtomicBool::new(false),
            paused: tokio::sync::watch::channel(false).0,
        });
        let mut tasks = Vec::new();
        for i in 0..shared.queue.shards() {
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
        while self.shared.counters.full_reconciles.load(Ordering::SeqCst) == 0
            || self.shared.reconciling.load(Ordering::SeqCst)
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
            if self.shared.queue.pending() == 0 && !self.shared.reconciling.load(Ordering::SeqCst) {
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
        self.shared.counters.snapshot(self.shared.queue.pending())
    }

    /// Forgets the lag measured so far (to measure one window).
    pub fn reset_lag(&self) {
        self.shared.counters.lag.lock().reset();
    }

    /// The most recent conflicts (up to 1,000), oldest first.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.shared.counters.conflict_log.lock().iter().cloned().collect()
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
