//! The phased migration driver: runs each phase, checks its exit criteria,
//! and records it in the [`MigrationState`] file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use zookeeper_client as zk;

use crate::copy::{copy, plan, CopyOptions, Plan};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::node::NodeRules;
use crate::phase::{MigrationState, Phase};
use crate::sync::{Side, SyncHandle, SyncOptions};
use crate::tree::{read_both, read_tree, Progress};
use crate::verify::Difference;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of comparing both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Nodes on the source.
    pub source_nodes: usize,
    /// Nodes on the target.
    pub target_nodes: usize,
    /// Checksum of the source subtree (hex).
    pub source_checksum: String,
    /// Checksum of the target subtree (hex).
    pub target_checksum: String,
    /// Every path that differs, sorted.
    pub differences: Vec<Difference>,
    /// Nodes left out of the comparison because a side may not read them
    /// (`side path: reason`), when asked to skip them.
    pub unreadable: Vec<String>,
}

impl VerifyReport {
    /// Whether both sides are equal.
    pub fn equal(&self) -> bool {
        self.differences.is_empty()
    }

    /// An [`Error::Differs`] for a report with differences.
    pub fn to_error(&self) -> Option<Error> {
        self.differences.first().map(|d| Error::Differs {
            count: self.differences.len(),
            first: d.to_string(),
        })
    }
}

/// Reads both subtrees and compares their checksums.
///
/// Nodes a side may not read stop it with [`Error::Unreadable`], unless
/// `skip_unreadable`: then they (and all below them) are left out of both
/// sides and listed in the report.
///
/// # Errors
/// [`Error::Zk`] when a side cannot be read; [`Error::Unreadable`] as above.
pub async fn verify(
    source: &zk::Client,
    source_ep: &Endpoint,
    target: &zk::Client,
    target_ep: &Endpoint,
    rules: &NodeRules,
    skip_unreadable: bool,
) -> Result<VerifyReport> {
    let (s, t, unreadable) = read_both(
        [(source, source_ep), (target, target_ep)],
        rules,
        skip_unreadable,
        None,
        [None, None],
    )
    .await?;
    let (s, t) = (s.manifest(), t.manifest());
    Ok(VerifyReport {
        source_nodes: s.len(),
        target_nodes: t.len(),
        source_checksum: format!("{:032x}", s.checksum()),
        target_checksum: format!("{:032x}", t.checksum()),
        differences: s.diff(&t),
        unreadable,
    })
}

/// How a migration runs.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// Copy behaviour.
    pub copy: CopyOptions,
    /// Sync behaviour.
    pub sync: SyncOptions,
    /// Cutover refuses while the sync's p99 lag is above this.
    pub max_lag: Duration,
    /// Cutover and verify refuse while more than this is still queued after waiting.
    pub settle: Duration,
    /// Only report what would change.
    pub dry_run: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            copy: CopyOptions::default(),
            sync: SyncOptions::default(),
            max_lag: Duration::from_secs(1),
            settle: Duration::from_secs(30),
            dry_run: false,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One migration between two endpoints, resumable from its state file.
pub struct Migration {
    source: Endpoint,
    target: Endpoint,
    state_path: PathBuf,
    state: MigrationState,
    opts: MigrateOptions,
    sync: Option<SyncHandle>,
    progress: Arc<Progress>,
    last_plan: Option<Plan>,
}

impl Migration {
    /// Opens (or starts) the migration recorded at `state_path`.
    ///
    /// # Errors
    /// [`Error::State`] when the file is unreadable or records another
    /// pair of endpoints.
    pub fn open(source: Endpoint, target: Endpoint, state_path: PathBuf, opts: MigrateOptions) -> Result<Self> {
        let (s, t) = (
            format!("{}{}", source.servers, source.root),
            format!("{}{}", target.servers, target.root),
        );
        let state = match MigrationState::load(&state_path)? {
            Some(st) if st.source != s || st.target != t => {
                return Err(Error::State {
                    path: state_path.display().to_string(),
                    reason: format!(
                        "records a migration from {} to {}, not from {s} to {t}; use another --state file",
                        st.source, st.target
                    ),
                })
            }
            Some(st) => st,
            None => MigrationState::new(&s, &t),
        };
        Ok(Migration {
            source,
            target,
            state_path,
            state,
            opts,
            sync: None,
            progress: Arc::new(Progress::default()),
            last_plan: None,
        })
    }

    /// The recorded state.
    pub fn state(&self) -> &MigrationState {
        &self.state
    }

    /// Counters for a progress display.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// The running sync, if the migration is in a syncing phase.
    pub fn sync(&self) -> Option<&SyncHandle> {
        self.sync.as_ref()
    }

    /// The plan computed by the last `plan` phase (or dry run).
    pub fn last_plan(&self) -> Option<&Plan> {
        self.last_plan.as_ref()
    }

    async fn clients(&self) -> Result<(zk::Client, zk::Client)> {
        let (s, t) = tokio::join!(
            self.source.connect(CONNECT_TIMEOUT),
            self.target.connect(CONNECT_TIMEOUT)
        );
        Ok((s?, t?))
    }

    fn record(&mut self, phase: Phase, note: String) -> Result<()> {
        tracing::info!(%phase, %note, "phase complete");
        self.state.advance(phase, note, now_ms())?;
        self.state.save(&self.state_path)
    }

    /// Runs the phases after the recorded one, up to and including `until`.
    /// With `dry_run`, only plans and returns. A resumed migration in a
    /// syncing phase starts the sync again (with a full reconcile) first.
    ///
    /// # Errors
    /// The first phase whose work fails or whose exit criteria do not hold.
    pub async fn run_to(&mut self, until: Phase) -> Result<()> {
        if self.state.phase.syncs() && self.sync.is_none() && !self.opts.dry_run {
            self.start_sync().await?;
        }
        while let Some(next) = self.state.phase.next() {
            if next > until {
                break;
            }
            if self.opts.dry_run && next != Phase::Plan {
                break;
            }
            let note = self.perform(next).await?;
            if self.opts.dry_run {
                return Ok(());
            }
            self.record(next, note)?;
        }
        Ok(())
    }

    async fn start_sync(&mut self) -> Result<()> {
        let mut opts = self.opts.sync.clone();
        opts.authoritative = self.state.authoritative;
        self.sync = Some(SyncHandle::start(self.source.clone(), self.target.clone(), opts).await?);
        Ok(())
    }

    async fn settled_verify(&mut self) -> Result<VerifyReport> {
        let (s, t) = self.clients().await?;
        let mut last = None;
        for _ in 0..5 {
            if let Some(sync) = &self.sync {
                sync.wait_idle(self.opts.settle).await;
            }
            let report = verify(
                &s,
                &self.source,
                &t,
                &self.target,
                &self.opts.copy.rules,
                self.opts.copy.skip_unreadable,
            )
            .await?;
            if report.equal() {
                return Ok(report);
            }
            // Live writes land between the two reads; let the sync catch up.
            last = Some(report);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(last.expect("at least one attempt"))
    }

    async fn perform(&mut self, phase: Phase) -> Result<String> {
        match phase {
            Phase::Plan => {
                let (s, t) = self.clients().await?;
                let eph = &self.opts.copy.rules;
                let skip = self.opts.copy.skip_unreadable;
                let (a, b, _) = read_both(
                    [(&s, &self.source), (&t, &self.target)],
                    eph,
                    skip,
                    Some(&self.progress),
                    [None, None],
                )
                .await?;
                let p = plan(&a, &b, &self.opts.copy);
                let note = format!(
                    "{} source nodes, {} target nodes, {} writes to make",
                    a.len(),
                    b.len(),
                    p.ops.len()
                );
                self.last_plan = Some(p);
                Ok(note)
            }
            Phase::Copy => {
                let (s, t) = self.clients().await?;
                let (_, report) = copy(
                    &s,
                    &self.source,
                    &t,
                    &self.target,
                    &self.opts.copy,
                    false,
                    Some(&self.progress),
                )
                .await?;
                for w in &report.warnings {
                    tracing::warn!("{w}");
                }
                Ok(format!(
                    "{} nodes; created {}, data {}, ACL {}, deleted {}, in {} ms",
                    report.source_nodes,
                    report.created,
                    report.data_set,
                    report.acl_set,
                    report.deleted,
                    report.elapsed_ms
                ))
            }
            Phase::Sync => {
                self.start_sync().await?;
                Ok("watching both sides; full reconcile done".into())
            }
            Phase::Verify => {
                let r = self.settled_verify().await?;
                match r.to_error() {
                    Some(e) => Err(e),
                    None => Ok(format!("{} nodes, checksum {}", r.source_nodes, r.source_checksum)),
                }
            }
            Phase::Cutover => {
                let sync = self
                    .sync
                    .as_ref()
                    .ok_or_else(|| self.state.refuse("cut over", "the sync is not running"))?;
                if !sync.wait_idle(self.opts.settle).await {
                    return Err(self.state.refuse("cut over", "the sync still has changes queued"));
                }
                let stats = sync.stats();
                let max_us = u64::try_from(self.opts.max_lag.as_micros()).unwrap_or(u64::MAX);
                if stats.lag_p99_us > max_us {
                    return Err(self.state.refuse(
                        "cut over",
                        &format!(
                            "sync lag p99 is {} µs, above the bound of {max_us} µs",
                            stats.lag_p99_us
                        ),
                    ));
                }
                let r = self.settled_verify().await?;
                if let Some(e) = r.to_error() {
                    return Err(self.state.refuse("cut over", &e.to_string()));
                }
                if let Some(sync) = &self.sync {
                    sync.set_authoritative(Side::Target);
                }
                Ok(format!("target authoritative; lag p99 {} µs", stats.lag_p99_us))
            }
            Phase::Finalize => {
                let r = self.settled_verify().await?;
                if let Some(e) = r.to_error() {
                    return Err(self.state.refuse("finalize", &e.to_string()));
                }
                if let Some(mut sync) = self.sync.take() {
                    sync.stop();
                }
                Ok(format!(
                    "sync stopped; {} nodes, checksum {}",
                    r.target_nodes, r.target_checksum
                ))
            }
            Phase::New | Phase::RolledBack => Ok(String::new()),
        }
    }

    /// Rolls back: the source becomes authoritative again and the sync
    /// stops. The source is never written by a rollback; with
    /// `clean_target` the copied subtree is deleted from the target.
    ///
    /// # Errors
    /// [`Error::Phase`] once finalized; [`Error::Zk`] when cleaning fails.
    pub async fn rollback(&mut self, clean_target: bool) -> Result<()> {
        if self.state.phase == Phase::Finalize {
            return Err(self.state.refuse("roll back", "the migration is finalized"));
        }
        if let Some(mut sync) = self.sync.take() {
            sync.set_authoritative(Side::Source);
            sync.wait_idle(self.opts.settle).await;
            sync.stop();
        }
        let mut note = String::from("source authoritative");
        if clean_target {
            let t = self.target.connect(CONNECT_TIMEOUT).await?;
            let snapshot = read_tree(
                &t,
                &self.target,
                &NodeRules::from(crate::node::EphemeralPolicy::Persistent),
                None,
            )
            .await?;
            for rel in snapshot.nodes.keys().rev() {
                let abs = self.target.abs(rel);
                if abs == "/" {
                    continue;
                }
                match t.delete(&abs, None).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(Error::zk(&self.target.label, "delete", &abs, e)),
                }
            }
            note.push_str(&format!("; {} nodes deleted from the target", snapshot.len()));
        }
        self.state.rollback(note, now_ms())?;
        self.state.save(&self.state_path)
    }
}
