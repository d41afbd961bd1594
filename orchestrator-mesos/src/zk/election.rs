//! [`LeaderElection`]: one leader among several schedulers (or masters) on
//! a real ZooKeeper, with the standard recipe — every candidate holds an
//! ephemeral sequential znode under one directory and the lowest sequence
//! leads. The znodes follow Apache Curator's `LeaderLatch` layout
//! (`_c_{uuid}-latch-{seq}`), so Curator-based tools read them too, and each
//! holds the candidate's address so standbys know where to send requests.
//!
//! Leadership ends when the candidate resigns, when its znode disappears
//! or when its session cannot be trusted any more: expired, closed, or
//! disconnected for longer than the session timeout (after which the
//! server has certainly expired it and another candidate may lead).

use std::time::Duration;

use orchestrator_core::{validate_path, Error, Result};
use zookeeper_client as zk;

use super::zk_err;

const LATCH: &str = "latch-";

/// Candidates for leadership under one ZooKeeper directory.
#[derive(Clone)]
pub struct LeaderElection {
    client: zk::Client,
    dir: String,
}

impl std::fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElection")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The sequence number at the end of a latch znode's name.
fn sequence(name: &str) -> Option<u64> {
    let (_, seq) = name.rsplit_once(LATCH)?;
    seq.parse().ok()
}

impl LeaderElection {
    /// Connects to `servers` (`host:port[,host:port]`) with its own session
    /// and elects among the candidates under `dir` (created if missing).
    ///
    /// # Errors
    /// When ZooKeeper cannot be reached or `dir` is not a valid path.
    pub async fn connect(servers: &str, dir: &str) -> Result<Self> {
        validate_path(dir)?;
        if dir == "/" {
            return Err(Error::Invalid {
                what: "election directory",
                reason: "must not be the root".into(),
            });
        }
        let client = zk::Client::connect(servers)
            .await
            .map_err(|e| zk_err(dir, "connect", e))?;
        Ok(Self {
            client,
            dir: dir.trim_end_matches('/').to_string(),
        })
    }

    /// The election directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Joins the election with `address` as this candidate's data and
    /// waits until it leads. Cancelling the future withdraws the candidate.
    ///
    /// # Errors
    /// When the session expires or ZooKeeper fails while waiting.
    pub async fn campaign(&self, address: &str) -> Result<Leadership> {
        let prefix = zk::LockPrefix::new_curator(&self.dir, LATCH).map_err(|e| zk_err(&self.dir, "lock", e))?;
        let options = zk::LockOptions::new(zk::Acls::anyone_all())
            .with_ancestor_options(zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()))
            .map_err(|e| zk_err(&self.dir, "lock", e))?;
        let lock = self
            .client
            .lock(prefix, address.as_bytes(), options)
            .await
            .map_err(|e| zk_err(&self.dir, "campaign", e))?
            .into_owned();
        Ok(Leadership {
            lock,
            state: self.client.state_watcher(),
            session_timeout: self.client.session_timeout(),
        })
    }

    /// The current leader's address, `None` when nobody leads.
    ///
    /// # Errors
    /// When ZooKeeper fails.
    pub async fn leader(&self) -> Result<Option<String>> {
        let mut children = match self.client.list_children(&self.dir).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(e) => return Err(zk_err(&self.dir, "list", e)),
        };
        children.retain(|c| sequence(c).is_some());
        children.sort_by_key(|c| sequence(c));
        for child in children {
            let path = format!("{}/{child}", self.dir);
            match self.client.get_data(&path).await {
                Ok((data, _)) => return Ok(Some(String::from_utf8_lossy(&data).into_owned())),
                // The leader just left: the next one in line leads.
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_err(&path, "read", e)),
            }
        }
        Ok(None)
    }
}

/// Held while leading; dropping it resigns (the znode is deleted).
#[derive(Debug)]
pub struct Leadership {
    lock: zk::OwnedLockClient,
    state: zk::StateWatcher,
    session_timeout: Duration,
}

impl Leadership {
    /// The znode that holds this leadership.
    pub fn path(&self) -> &str {
        self.lock.lock_path()
    }

    /// Resolves when leadership is lost: the znode is deleted, or the session
    /// expires, closes, or stays disconnected past the session timeout.
    pub async fn lost(&mut self) {
        let node = self.lock.client().clone();
        let path = self.lock.lock_path().to_string();
        let deleted = async move {
            loop {
                match node.check_and_watch_stat(&path).await {
                    Ok((Some(_), watch)) => {
                        watch.changed().await;
                    }
                    Ok((None, _)) => return,
                    Err(zk::Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(_) => return,
                }
            }
        };
        let session = async {
            loop {
                match self.state.state() {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        self.state.changed().await;
                    }
                    zk::SessionState::Disconnected => {
                        match tokio::time::timeout(self.session_timeout, self.state.changed()).await {
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                    _ => return,
                }
            }
        };
        tokio::select! {
            () = deleted => {}
            () = session => {}
        }
    }

    /// Gives the leadership up; the next candidate in line takes over.
    pub fn resign(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::sequence;

    #[test]
    fn sequences_come_from_the_latch_suffix() {
        assert_eq!(sequence("_c_1b4e-4a2f-latch-0000000012"), Some(12));
        assert_eq!(sequence("latch-0000000003"), Some(3));
        assert_eq!(sequence("unrelated"), None);
        assert_eq!(sequence("_c_x-latch-abc"), None);
    }
}
