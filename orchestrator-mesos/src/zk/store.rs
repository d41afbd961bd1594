//! [`ZkStore`]: the [`StateStore`] seam on a real ZooKeeper, so schedulers
//! (Marathon's apps and deployments) survive restarts and are shared by
//! every instance. Paths map one to one onto znodes under a root; a node's
//! version is the znode's data version, so compare-and-set is ZooKeeper's.

use async_trait::async_trait;
use orchestrator_core::{validate_data_path, validate_path, Error, Result, StateStore, Version, Versioned};
use zookeeper_client as zk;

use super::zk_err;

/// A [`StateStore`] on ZooKeeper, rooted at a path (`/marathon`).
#[derive(Clone)]
pub struct ZkStore {
    client: zk::Client,
    root: String,
}

impl std::fmt::Debug for ZkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn version(stat: &zk::Stat) -> Version {
    u64::try_from(stat.version).unwrap_or(0)
}

fn zk_version(v: Version) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl ZkStore {
    /// Connects to `servers` (`host:port[,host:port]`) and keeps everything
    /// under `root` (created if missing).
    ///
    /// # Errors
    /// When ZooKeeper cannot be reached or the root is not a valid path.
    pub async fn connect(servers: &str, root: &str) -> Result<Self> {
        validate_path(root)?;
        let client = zk::Client::connect(servers)
            .await
            .map_err(|e| zk_err(root, "connect", e))?;
        let store = Self {
            client,
            root: root.trim_end_matches('/').to_string(),
        };
        if root != "/" {
            store.ensure_parents(&format!("{}/x", store.root)).await?;
        }
        Ok(store)
    }

    fn full(&self, path: &str) -> String {
        if path == "/" {
            if self.root.is_empty() {
                "/".into()
            } else {
                self.root.clone()
            }
        } else {
            format!("{}{path}", self.root)
        }
    }

    /// Creates the (empty) ancestors of the full path `full`.
    async fn ensure_parents(&self, full: &str) -> Result<()> {
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let mut at = 0;
        while let Some(i) = full[at + 1..].find('/') {
            let prefix = &full[..at + 1 + i];
            match self.client.create(prefix, b"", &opts).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(zk_err(prefix, "create", e)),
            }
            at += 1 + i;
        }
        Ok(())
    }

    /// Creates the persistent node `full` (and its parents); ZooKeeper's
    /// answer is returned for the caller to judge (NodeExists, …).
    async fn create(
        &self,
        full: &str,
        data: &[u8],
    ) -> Result<std::result::Result<(zk::Stat, zk::CreateSequence), zk::Error>> {
        self.ensure_parents(full).await?;
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        Ok(self.client.create(full, data, &opts).await)
    }

    async fn current_version(&self, full: &str) -> Option<Version> {
        self.client.check_stat(full).await.ok().flatten().map(|s| version(&s))
    }
}

#[async_trait]
impl StateStore for ZkStore {
    async fn get(&self, path: &str) -> Result<Option<Versioned>> {
        validate_path(path)?;
        let full = self.full(path);
        match self.client.get_data(&full).await {
            Ok((data, stat)) => Ok(Some(Versioned {
                data,
                version: version(&stat),
            })),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(zk_err(path, "read", e)),
        }
    }

    async fn put(&self, path: &str, data: Vec<u8>) -> Result<Version> {
        validate_data_path(path)?;
        let full = self.full(path);
        loop {
            match self.client.set_data(&full, &data, None).await {
                Ok(stat) => return Ok(version(&stat)),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_err(path, "write", e)),
            }
            match self.create(&full, &data).await? {
                Ok((stat, _)) => return Ok(version(&stat)),
                // Created by someone else meanwhile: overwrite it.
                Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(zk_err(path, "create", e)),
            }
        }
    }

    async fn compare_and_set(&self, path: &str, data: Vec<u8>, expected: Option<Version>) -> Result<Version> {
        validate_data_path(path)?;
        let full = self.full(path);
        let conflict = |actual| Error::VersionConflict {
            path: path.to_string(),
            expected,
            actual,
        };
        match expected {
            None => match self.create(&full, &data).await? {
                Ok((stat, _)) => Ok(version(&stat)),
                Err(zk::Error::NodeExists) => Err(conflict(self.current_version(&full).await)),
                Err(e) => Err(zk_err(path, "create", e)),
            },
            Some(v) => match self.client.set_data(&full, &data, Some(zk_version(v))).await {
                Ok(stat) => Ok(version(&stat)),
                Err(zk::Error::BadVersion) => Err(conflict(self.current_version(&full).await)),
                Err(zk::Error::NoNode) => Err(conflict(None)),
                Err(e) => Err(zk_err(path, "write", e)),
            },
        }
    }

    async fn delete(&self, path: &str, expected: Option<Version>) -> Result<bool> {
        validate_path(path)?;
        let full = self.full(path);
        match self.client.delete(&full, expected.map(zk_version)).await {
            Ok(()) => Ok(true),
            Err(zk::Error::NoNode) => Ok(false),
            Err(zk::Error::NotEmpty) => Err(Error::NotEmpty { path: path.to_string() }),
            Err(zk::Error::BadVersion) => Err(Error::VersionConflict {
                path: path.to_string(),
                expected,
                actual: self.current_version(&full).await,
            }),
            Err(e) => Err(zk_err(path, "delete", e)),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        validate_path(path)?;
        match self.client.get_children(&self.full(path)).await {
            Ok((mut names, _)) => {
                names.sort();
                Ok(names)
            }
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk_err(path, "list", e)),
        }
    }
}
