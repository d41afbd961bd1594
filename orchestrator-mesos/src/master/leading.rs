//! Who leads: a standalone master always does; replicated masters
//! ([`MasterHandle::run_replicated`]) contend on ZooKeeper in Mesos's
//! layout, and only the one holding a valid [`Lease`] acts. The others
//! answer the scheduler, agent and operator APIs with **307** to the
//! leader, as Mesos's standbys do, and `/master/redirect` sends anyone to
//! it.
//!
//! A new leader starts from the [`Registry`] (agents to wait for, weights,
//! quotas) with a fresh state machine; one that loses its lease stops at
//! once, drops every stream (frameworks and agents reconnect to whoever
//! leads next) and stands again.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orchestrator_core::Allocator;

use super::handle::{lock, MasterHandle};
use super::registry::Registry;
use super::state::{Master, MasterConfig};
use crate::api::json::error;
use crate::zk::{Lease, MasterContender, MasterDetector, MasterInfo, ZkStore, ZkUrl};
use crate::{DrfAllocator, Result};

/// How a master knows whether it leads.
#[derive(Default)]
pub(super) struct Leading {
    /// `None`: standalone, always leading. `Some`: replicated.
    replicated: Mutex<Option<Replicated>>,
    /// This master's own info (its address), when it was given one.
    me: Mutex<Option<MasterInfo>>,
    registry: Mutex<Option<Registry>>,
    /// Seconds since the epoch when this master last became leader.
    elected_at: Mutex<Option<f64>>,
}

#[derive(Default)]
struct Replicated {
    lease: Option<Lease>,
    /// Who leads, once ZooKeeper has been reached.
    detector: Option<MasterDetector>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How a replicated master takes part in the election.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// `zk://…/mesos`: where the masters contend.
    pub zk: ZkUrl,
    /// ZooKeeper session timeout (Mesos's `--zk_session_timeout`, 10 s).
    pub session_timeout: Duration,
    /// How long a recovered agent has to re-register before the registry
    /// forgets it (Mesos's `--agent_reregister_timeout`, 10 min).
    pub reregister_timeout: Duration,
}

impl<A: Allocator + 'static> MasterHandle<A> {
    /// Says where this master serves (its `MasterInfo`: written in its
    /// ZooKeeper znode and named in `/master/state`).
    pub fn set_info(&self, info: MasterInfo) {
        *lock(&self.shared.leading.me) = Some(info);
    }

    /// This master's info, when given.
    pub fn info(&self) -> Option<MasterInfo> {
        lock(&self.shared.leading.me).clone()
    }

    /// A master that will run replicated ([`run_replicated`](Self::run_replicated)):
    /// it serves as a standby (307s, or 503 while no leader is known)
    /// from the start, before it has even reached ZooKeeper.
    pub fn new_standby(master: Master<A>, allocation_interval: Duration) -> Self {
        let h = Self::new(master, allocation_interval);
        *lock(&h.shared.leading.replicated) = Some(Replicated::default());
        h
    }

    /// Whether this master leads now: always when standalone; while its
    /// lease holds when replicated.
    pub fn leads(&self) -> bool {
        match &*lock(&self.shared.leading.replicated) {
            None => true,
            Some(r) => r.lease.as_ref().is_some_and(Lease::valid),
        }
    }

    /// The leading master as far as this one knows.
    pub fn leader(&self) -> Option<MasterInfo> {
        let me = self.info();
        match &*lock(&self.shared.leading.replicated) {
            None => me,
            Some(r) if r.lease.as_ref().is_some_and(Lease::valid) => me,
            // A standby never names itself, even if ZooKeeper still does.
            Some(r) => r
                .detector
                .as_ref()
                .and_then(MasterDetector::leader)
                .filter(|l| me.as_ref().is_none_or(|m| m.id != l.id)),
        }
    }

    /// When this master last became leader (seconds since the epoch).
    pub fn elected_time(&self) -> Option<f64> {
        *lock(&self.shared.leading.elected_at)
    }

    /// The registry, when the master keeps one.
    pub fn registry(&self) -> Option<Registry> {
        lock(&self.shared.leading.registry).clone()
    }

    /// A standalone master takes over what `registry` kept (agents get
    /// `reregister_timeout` to come back), and writes to it from now on.
    ///
    /// # Errors
    /// When the registry cannot be read or holds what the allocator refuses.
    pub async fn recover(&self, registry: Registry, reregister_timeout: Duration) -> Result<()> {
        let recovered = registry.recover().await?;
        let agents = recovered.agents.len();
        self.with_master(|m| m.recover(recovered, reregister_timeout, Instant::now()))?;
        tracing::info!(agents, "recovered the registry");
        *lock(&self.shared.leading.registry) = Some(registry);
        *lock(&self.shared.leading.elected_at) = Some(now_secs());
        Ok(())
    }

    /// Runs as one of several masters: contends on ZooKeeper (after
    /// [`set_info`](Self::set_info)), leads with a state machine made by
    /// `fresh` and recovered from `registry` when elected, and stands
    /// again whenever leadership is lost. Never returns; drop the future
    /// to stop (the candidacy is withdrawn).
    pub async fn run_replicated(
        self,
        config: ReplicaConfig,
        registry: Registry,
        fresh: impl Fn() -> Master<A> + Send + Sync + 'static,
    ) {
        let Some(me) = self.info() else {
            tracing::error!("a replicated master needs its info (set_info) before it contends");
            return;
        };
        *lock(&self.shared.leading.registry) = Some(registry.clone());
        lock(&self.shared.leading.replicated).get_or_insert_with(Replicated::default);
        let retry = Duration::from_millis(500);
        let detector = loop {
            match MasterDetector::connect(&config.zk, config.session_timeout).await {
                Ok(d) => break d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the masters on ZooKeeper; retrying");
                    tokio::time::sleep(retry).await;
                }
            }
        };
        if let Some(r) = lock(&self.shared.leading.replicated).as_mut() {
            r.detector = Some(detector);
        }
        loop {
            let contender = match MasterContender::connect(&config.zk, config.session_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach ZooKeeper to contend; retrying");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            };
            while contender.usable() {
                let candidacy = match contender.contend(&me).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not enter the election; retrying");
                        tokio::time::sleep(retry).await;
                        continue;
                    }
                };
                tracing::info!(node = candidacy.node(), "contending for leadership");
                let elected = tokio::select! {
                    r = candidacy.elected() => r.is_ok(),
                    () = candidacy.lost() => false,
                };
                if !elected {
                    continue;
                }
                let mut master = fresh();
                let recovered = match registry.recover().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "elected, but the registry cannot be read; standing down");
                        tokio::time::sleep(retry).await;
                        continue;
                    }
                };
                let agents = recovered.agents.len();
                if let Err(e) = master.recover(recovered, config.reregister_timeout, Instant::now()) {
                    tracing::error!(error = %e, "elected, but the registry does not apply; standing down");
                    tokio::time::sleep(retry).await;
                    continue;
                }
                *lock(&self.shared.master) = master;
                *lock(&self.shared.leading.elected_at) = Some(now_secs());
                if let Some(r) = lock(&self.shared.leading.replicated).as_mut() {
                    r.lease = Some(candidacy.lease());
                }
                tracing::info!(node = candidacy.node(), agents, "elected: leading");
                tokio::select! {
                    () = candidacy.lost() => {}
                    () = self.clone().run_loops() => {}
                }
                tracing::warn!(
                    node = candidacy.node(),
                    "leadership lost: standing down and contending again"
                );
                self.abdicate(fresh());
            }
        }
    }

    /// Stops leading: the lease is dropped, every framework and agent
    /// stream closed, and the state replaced by `empty`.
    fn abdicate(&self, empty: Master<A>) {
        if let Some(r) = lock(&self.shared.leading.replicated).as_mut() {
            if let Some(lease) = r.lease.take() {
                lease.revoke();
            }
        }
        lock(&self.shared.streams).clear();
        lock(&self.shared.agents).clear();
        *lock(&self.shared.master) = empty;
    }
}

impl MasterHandle<DrfAllocator> {
    /// One of several DRF masters elected on ZooKeeper, its registry at the
    /// sibling path ([`ZkUrl::registry_path`]): what `master --zk` runs.
    /// The handle serves as a standby at once (serve its
    /// [`router`](Self::router)); the returned task contends, leads when
    /// elected and stands again when it loses.
    ///
    /// # Errors
    /// When the allocator refuses `allocation_interval` or ZooKeeper cannot
    /// be reached for the registry.
    pub async fn start_replicated(
        config: ReplicaConfig,
        info: MasterInfo,
        master: MasterConfig,
        allocation_interval: Duration,
    ) -> Result<(Self, tokio::task::JoinHandle<()>)> {
        let fresh = move || -> Result<Master<DrfAllocator>> {
            let allocator = DrfAllocator::builder()
                .allocation_interval(allocation_interval)
                .build()
                .map_err(crate::Error::from)?;
            Ok(Master::new(master.clone(), allocator))
        };
        let handle = Self::new_standby(fresh()?, allocation_interval);
        handle.set_info(info);
        let store = ZkStore::connect(&config.zk.servers, &config.zk.registry_path()).await?;
        let registry = Registry::new(std::sync::Arc::new(store), "/");
        let run = tokio::spawn(handle.clone().run_replicated(config, registry, move || {
            // The same settings built a master above, so this does not fail;
            // were it to, the default allocator still serves.
            fresh().unwrap_or_else(|e| {
                tracing::error!(error = %e, "the allocator's settings failed; using the defaults");
                Master::new(MasterConfig::default(), DrfAllocator::default())
            })
        }));
        Ok((handle, run))
    }
}

/// `//host:port` of the leader, `None` when none is known.
fn leader_authority<A: Allocator + 'static>(h: &MasterHandle<A>) -> Option<String> {
    h.leader().map(|l| l.authority())
}

fn temporary_redirect(location: &str) -> Response {
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn no_leader() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "No master is currently leading")
}

/// In front of the APIs only a leader serves: a standby answers 307 to
/// the same path on the leader (503 while none is known).
pub(super) async fn leader_only<A: Allocator + 'static>(
    State(h): State<MasterHandle<A>>,
    request: Request,
    next: Next,
) -> Response {
    if h.leads() {
        return next.run(request).await;
    }
    let Some(authority) = leader_authority(&h) else {
        return no_leader();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    temporary_redirect(&format!("//{authority}{path}"))
}

/// `GET /master/redirect`: 307 to the leading master, as Mesos answers.
pub(super) async fn redirect<A: Allocator + 'static>(State(h): State<MasterHandle<A>>) -> Response {
    match leader_authority(&h) {
        Some(authority) => temporary_redirect(&format!("//{authority}")),
        None => no_leader(),
    }
}
