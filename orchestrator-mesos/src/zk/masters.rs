//! Masters on ZooKeeper in Mesos's own layout, so tools written for Mesos
//! find our leader: every candidate holds an ephemeral sequential znode
//! `json.info_NNNNNNNNNN` directly under one path (`/mesos`), holding its
//! `MasterInfo` as JSON, and the lowest sequence leads. Mesos's detector
//! and the libraries copied from it (pymesos, mesos-go) take
//! `min(children)` of that path, so nothing else may live there: the
//! registry goes to a sibling path (see [`ZkUrl::registry_path`]).
//!
//! [`MasterContender`] is a master's candidacy; [`MasterDetector`] follows
//! the leader for agents, frameworks and standby masters. A leader holds a
//! [`Lease`]: valid for one session timeout after the last answer
//! ZooKeeper gave it, which is never later than the server can expire its
//! session. A leader frozen (SIGSTOP) or cut off past that stops acting as
//! leader before anyone else can have been elected.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::{validate_path, Error, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zookeeper_client as zk;

use super::zk_err;

/// The name prefix of a master's znode, as Mesos writes it.
pub const MASTER_INFO_PREFIX: &str = "json.info_";

/// A master's address, as Mesos's `MasterInfo.address` has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterAddress {
    /// Host name.
    pub hostname: String,
    /// IP address, dotted.
    pub ip: String,
    /// Port.
    pub port: u16,
}

/// What a master candidate writes in its znode: Mesos's `MasterInfo` JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    /// The master's id (unique per run).
    pub id: String,
    /// The IPv4 address packed as Mesos packs it (network byte order read
    /// as a little-endian integer: 127.0.0.1 is 16777343); 0 for IPv6.
    pub ip: u32,
    /// Port.
    pub port: u16,
    /// libprocess pid, `master@IP:PORT`.
    pub pid: String,
    /// Host name.
    pub hostname: String,
    /// Software version.
    #[serde(default)]
    pub version: String,
    /// The address again, unpacked.
    pub address: MasterAddress,
}

impl MasterInfo {
    /// The info of a master with `id` serving on `addr`.
    pub fn new(id: impl Into<String>, addr: SocketAddr, hostname: Option<String>) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
            IpAddr::V6(_) => 0,
        };
        let hostname = hostname.unwrap_or_else(|| addr.ip().to_string());
        MasterInfo {
            id: id.into(),
            ip,
            port: addr.port(),
            pid: format!("master@{addr}"),
            hostname: hostname.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            address: MasterAddress {
                hostname,
                ip: addr.ip().to_string(),
                port: addr.port(),
            },
        }
    }

    /// `host:port` to reach the master at (the IP when there is one).
    pub fn authority(&self) -> String {
        let host = if self.address.ip.is_empty() {
            &self.address.hostname
        } else {
            &self.address.ip
        };
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.address.port),
            _ => format!("{host}:{}", self.address.port),
        }
    }

    /// The master's base URL, `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority())
    }
}

/// A `zk://host:port[,host:port…]/path` URL, as Mesos's `--zk` and
/// `--master` take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port[,host:port…]`.
    pub servers: String,
    /// The masters' path (`/mesos`).
    pub path: String,
}

impl ZkUrl {
    /// Where the masters keep their registry: a sibling of the masters'
    /// path (`/mesos` → `/mesos-registry`), never under it.
    pub fn registry_path(&self) -> String {
        format!("{}-registry", self.path)
    }
}

impl std::fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "zk://{}{}", self.servers, self.path)
    }
}

impl FromStr for ZkUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Invalid {
            what: "ZooKeeper URL",
            reason: format!("`{s}` {reason} (expected zk://HOST:PORT[,HOST:PORT…]/PATH)"),
        };
        let rest = s
            .strip_prefix("zk://")
            .ok_or_else(|| bad("does not start with zk://"))?;
        let (servers, path) = rest.split_once('/').ok_or_else(|| bad("has no path"))?;
        if servers.contains('@') {
            return Err(bad("carries credentials, which are not supported"));
        }
        if servers.is_empty()
            || servers.split(',').any(|h| {
                h.rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            })
        {
            return Err(bad("needs HOST:PORT for every server"));
        }
        let path = format!("/{}", path.trim_end_matches('/'));
        if path == "/" {
            return Err(bad("needs a path other than the root"));
        }
        validate_path(&path)?;
        Ok(ZkUrl {
            servers: servers.into(),
            path,
        })
    }
}

async fn connect(url: &ZkUrl, session_timeout: Duration) -> Result<zk::Client> {
    zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_secs(2))
        .connect(&url.servers)
        .await
        .map_err(|e| zk_err(&url.path, "connect", e))
}

/// The sequence of a master's znode name, `None` for anything else.
fn sequence(name: &str) -> Option<u64> {
    name.strip_prefix(MASTER_INFO_PREFIX)?.parse().ok()
}

/// The candidates under `path`, lowest sequence (the leader) first.
fn candidates(mut children: Vec<String>) -> Vec<String> {
    children.retain(|c| sequence(c).is_some());
    children.sort_by_key(|c| sequence(c));
    children
}

/// The leader's info: the first candidate whose znode still reads as
/// `MasterInfo` JSON.
async fn leader_among(client: &zk::Client, path: &str, children: Vec<String>) -> Result<Option<MasterInfo>> {
    for child in candidates(children) {
        let node = format!("{path}/{child}");
        match client.get_data(&node).await {
            Ok((data, _)) => match serde_json::from_slice::<MasterInfo>(&data) {
                Ok(info) => return Ok(Some(info)),
                Err(e) => tracing::warn!(node, error = %e, "a master's znode does not hold MasterInfo JSON; skipped"),
            },
            // Gone between the listing and the read: the next one leads.
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(zk_err(&node, "read", e)),
        }
    }
    Ok(None)
}

/// A master's way into the election under one path.
pub struct MasterContender {
    client: zk::Client,
    url: ZkUrl,
}

impl std::fmt::Debug for MasterContender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterContender")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl MasterContender {
    /// Connects with its own session of `session_timeout` (Mesos: 10 s).
    ///
    /// # Errors
    /// When ZooKeeper cannot be reached.
    pub async fn connect(url: &ZkUrl, session_timeout: Duration) -> Result<Self> {
        let client = connect(url, session_timeout).await?;
        Ok(Self {
            client,
            url: url.clone(),
        })
    }

    /// Whether the session still works (a new contender is needed once it
    /// expired).
    pub fn usable(&self) -> bool {
        !matches!(
            self.client.state(),
            zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
        )
    }

    /// Enters the election with `info`: creates this master's
    /// `json.info_` znode (and the path, if missing).
    ///
    /// # Errors
    /// When ZooKeeper fails.
    pub async fn contend(&self, info: &MasterInfo) -> Result<Candidacy> {
        let data = serde_json::to_vec(info).map_err(|e| Error::Invalid {
            what: "MasterInfo",
            reason: e.to_string(),
        })?;
        let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.client.mkdir(&self.url.path, &open).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(zk_err(&self.url.path, "create", e)),
        }
        let prefix = format!("{}/{MASTER_INFO_PREFIX}", self.url.path);
        let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let sent = Instant::now();
        let (_, seq) = self
            .client
            .create(&prefix, &data, &mode)
            .await
            .map_err(|e| zk_err(&prefix, "create", e))?;
        let node = format!("{prefix}{seq}");
        let lease = Lease::new();
        lease.renewed(sent, self.client.session_timeout());
        Ok(Candidacy {
            client: self.client.clone(),
            path: self.url.path.clone(),
            node,
            lease,
        })
    }
}

/// Whether a leader may still act as one: valid for one session timeout
/// after the last question ZooKeeper answered was sent.
#[derive(Clone, Debug)]
pub struct Lease {
    epoch: Instant,
    /// Nanoseconds after `epoch`; 0: never valid.
    until: Arc<AtomicU64>,
}

impl Lease {
    fn new() -> Self {
        Lease {
            epoch: Instant::now(),
            until: Arc::new(AtomicU64::new(0)),
        }
    }

    fn renewed(&self, sent: Instant, session_timeout: Duration) {
        let until = (sent + session_timeout).saturating_duration_since(self.epoch);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.until.fetch_max(nanos, Ordering::SeqCst);
    }

    /// Ends the lease now.
    pub fn revoke(&self) {
        self.until.store(0, Ordering::SeqCst);
    }

    /// Whether it holds at this moment.
    pub fn valid(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now < self.until.load(Ordering::SeqCst)
    }
}

/// One master's znode in the election; dropping it withdraws (the znode is
/// deleted).
#[derive(Debug)]
pub struct Candidacy {
    client: zk::Client,
    path: String,
    node: String,
    lease: Lease,
}

impl Candidacy {
    /// This candidate's znode.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The sequence number ZooKeeper gave the znode: unique per candidacy,
    /// so a leader uses it to make its ids unlike any earlier leader's.
    pub fn sequence(&self) -> u64 {
        self.node.rsplit_once('/').and_then(|(_, n)| sequence(n)).unwrap_or(0)
    }

    /// The lease, to check before acting as leader.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// Waits until this candidate's znode is the lowest: it leads.
    ///
    /// # Errors
    /// When the znode is gone or the session fails.
    pub async fn elected(&self) -> Result<()> {
        let name = self.node.rsplit_once('/').map_or("", |(_, n)| n).to_string();
        loop {
            let children = self
                .client
                .list_children(&self.path)
                .await
                .map_err(|e| zk_err(&self.path, "list", e))?;
            let all = candidates(children);
            let Some(at) = all.iter().position(|c| *c == name) else {
                return Err(Error::store(&self.node, "the candidate's znode is gone", NoNode));
            };
            if at == 0 {
                return Ok(());
            }
            // Watch the one just ahead, not the whole list (no herd).
            let ahead = format!("{}/{}", self.path, all[at - 1]);
            match self.client.check_and_watch_stat(&ahead).await {
                Ok((Some(_), watch)) => {
                    watch.changed().await;
                }
                Ok((None, _)) => {}
                Err(e) => return Err(zk_err(&ahead, "watch", e)),
            }
        }
    }

    /// Keeps the lease renewed (every quarter of the session timeout) and
    /// resolves when leadership is lost: the znode deleted, the session
    /// expired or closed, or no answer from ZooKeeper for a session
    /// timeout. The lease is revoked before it returns.
    pub async fn lost(&self) {
        let timeout = self.client.session_timeout();
        let mut tick = tokio::time::interval(timeout / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = self.client.state_watcher();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let sent = Instant::now();
                    match tokio::time::timeout(timeout / 2, self.client.check_stat(&self.node)).await {
                        Ok(Ok(Some(_))) => self.lease.renewed(sent, timeout),
                        Ok(Ok(None)) => break,
                        Ok(Err(zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed)) => break,
                        // Disconnected: the lease runs out unless an answer comes in time.
                        Ok(Err(_)) | Err(_) => {}
                    }
                    if !self.lease.valid() {
                        break;
                    }
                }
                s = state.changed() => {
                    if matches!(s, zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed) {
                        break;
                    }
                }
            }
        }
        self.lease.revoke();
    }
}

impl Drop for Candidacy {
    fn drop(&mut self) {
        self.lease.revoke();
        let (client, node) = (self.client.clone(), self.node.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.delete(&node, None).await;
            });
        }
    }
}

/// "No such node", as an error source.
#[derive(Debug)]
struct NoNode;

impl std::fmt::Display for NoNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no node")
    }
}

impl std::error::Error for NoNode {}

/// Follows the leading master under a path: what agents, frameworks and
/// standby masters use to find it. Cheap to clone; the follower stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct MasterDetector {
    url: ZkUrl,
    leader: watch::Receiver<Option<MasterInfo>>,
    _task: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for MasterDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterDetector")
            .field("url", &self.url)
            .field("leader", &*self.leader.borrow())
            .finish()
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MasterDetector {
    /// Connects (its own session) and starts following the leader; the
    /// first answer is in by the time this returns.
    ///
    /// # Errors
    /// When ZooKeeper cannot be reached at first.
    pub async fn connect(url: &ZkUrl, session_timeout: Duration) -> Result<Self> {
        let client = connect(url, session_timeout).await?;
        let first = match client.list_children(&url.path).await {
            Ok(children) => leader_among(&client, &url.path, children).await?,
            Err(zk::Error::NoNode) => None,
            Err(e) => return Err(zk_err(&url.path, "list", e)),
        };
        let (tx, rx) = watch::channel(first);
        let task = tokio::spawn(follow(client, url.clone(), session_timeout, tx));
        Ok(MasterDetector {
            url: url.clone(),
            leader: rx,
            _task: Arc::new(AbortOnDrop(task.abort_handle())),
        })
    }

    /// The path followed.
    pub fn url(&self) -> &ZkUrl {
        &self.url
    }

    /// The leading master now, if any.
    pub fn leader(&self) -> Option<MasterInfo> {
        self.leader.borrow().clone()
    }

    /// The leader's base URL now, if any.
    pub fn leader_url(&self) -> Option<String> {
        self.leader.borrow().as_ref().map(MasterInfo::url)
    }

    /// A receiver that sees every change of leader.
    pub fn subscribe(&self) -> watch::Receiver<Option<MasterInfo>> {
        self.leader.clone()
    }
}

/// Re-reads the candidates whenever they change; reconnects when the
/// session is lost.
async fn follow(mut client: zk::Client, url: ZkUrl, session_timeout: Duration, tx: watch::Sender<Option<MasterInfo>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let round: std::result::Result<(), zk::Error> = async {
            match client.list_and_watch_children(&url.path).await {
                Ok((children, watch)) => {
                    let leader = leader_among(&client, &url.path, children).await.ok().flatten();
                    tx.send_if_modified(|now| {
                        let changed = *now != leader;
                        *now = leader;
                        changed
                    });
                    watch.changed().await;
                    Ok(())
                }
                Err(zk::Error::NoNode) => {
                    tx.send_if_modified(|now| now.take().is_some());
                    // Wait for the path, unless it appeared meanwhile.
                    let (stat, watch) = client.check_and_watch_stat(&url.path).await?;
                    if stat.is_none() {
                        watch.changed().await;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        .await;
        match round {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::debug!(error = %e, path = url.path, "following the masters");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if matches!(e, zk::Error::SessionExpired | zk::Error::ClientClosed) {
                    // Nobody is known to lead until a new session says so.
                    tx.send_if_modified(|now| now.take().is_some());
                    if let Ok(c) = connect(&url, session_timeout).await {
                        client = c;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_info_is_mesos_json() {
        let info = MasterInfo::new("m1", "127.0.0.1:5050".parse().unwrap(), None);
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["ip"], 16_777_343);
        assert_eq!(v["pid"], "master@127.0.0.1:5050");
        assert_eq!(v["address"]["ip"], "127.0.0.1");
        assert_eq!(v["address"]["port"], 5050);
        assert_eq!(info.url(), "http://127.0.0.1:5050");
        // Mesos's own JSON (1.x), with fields we do not write, parses.
        let mesos = r#"{"address":{"hostname":"m1.example","ip":"10.0.0.5","port":5050},"hostname":"m1.example",
            "id":"6b7d5c2e-1a0f-4c9c-9a43-2b4f8f5c1d00","ip":83886090,"pid":"master@10.0.0.5:5050","port":5050,
            "version":"1.11.0","capabilities":[{"type":"AGENT_UPDATE"}],"domain":{}}"#;
        let parsed: MasterInfo = serde_json::from_str(mesos).unwrap();
        assert_eq!(parsed.url(), "http://10.0.0.5:5050");
        assert_eq!(MasterInfo::new("x", "10.0.0.5:1".parse().unwrap(), None).ip, 83_886_090);
    }

    #[test]
    fn zk_urls_parse_as_mesos_takes_them() {
        let u: ZkUrl = "zk://127.0.0.1:2181,10.0.0.2:2181/mesos".parse().unwrap();
        assert_eq!(u.servers, "127.0.0.1:2181,10.0.0.2:2181");
        assert_eq!(u.path, "/mesos");
        assert_eq!(u.registry_path(), "/mesos-registry");
        assert_eq!(u.to_string(), "zk://127.0.0.1:2181,10.0.0.2:2181/mesos");
        for bad in [
            "127.0.0.1:2181/mesos",
            "zk://127.0.0.1:2181",
            "zk://127.0.0.1:2181/",
            "zk://u:p@h:1/m",
            "zk://h/m",
            "zk://h:x/m",
            "zk://h:1//m",
        ] {
            let e = bad.parse::<ZkUrl>().unwrap_err().to_string();
            assert!(e.contains(bad) || e.contains("path"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_json_info_nodes_are_candidates_lowest_first() {
        let c = candidates(vec![
            "json.info_0000000012".into(),
            "log_replicas".into(),
            "json.info_0000000003".into(),
            "info_0000000001".into(),
        ]);
        assert_eq!(c, vec!["json.info_0000000003", "json.info_0000000012"]);
    }

    #[test]
    fn a_lease_holds_for_the_session_timeout_after_the_question_was_sent() {
        let lease = Lease::new();
        assert!(!lease.valid());
        lease.renewed(Instant::now(), Duration::from_secs(10));
        assert!(lease.valid());
        lease.renewed(Instant::now() - Duration::from_secs(11), Duration::from_secs(10));
        assert!(lease.valid(), "an older answer does not shorten it");
        lease.revoke();
        assert!(!lease.valid());
        let old = Lease::new();
        old.renewed(Instant::now() - Duration::from_secs(11), Duration::from_secs(10));
        assert!(!old.valid());
    }
}
