//! [`Registry`]: what Mesos's registry keeps so that a master can die and
//! another take over (or the same restart) without forgetting the
//! cluster: the admitted agents with their info, the roles' weights and
//! quotas, and an epoch that every leadership bumps, so ids handed out by
//! a new leader never repeat an old one's. It is written through a
//! [`StateStore`] *before* the master acts on a change: ZooKeeper for
//! replicated masters, a [`FileStore`](orchestrator_core::FileStore) under
//! `--work-dir` for a standalone one.
//!
//! Layout under its root: `agents/{agent id}` (AgentInfo JSON), `weights`
//! (`{role: weight}`), `quotas` (`{role: {guarantees, limits}}`), `epoch`.

use std::collections::BTreeMap;
use std::sync::Arc;

use orchestrator_core::{AgentId, AgentInfo, Error as CoreError, Quota, Resources, StateStore};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A role's quota as the registry stores it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredQuota {
    /// Guaranteed resources.
    #[serde(default)]
    pub guarantees: Resources,
    /// Limits, if any.
    #[serde(default)]
    pub limits: Option<Resources>,
}

impl From<StoredQuota> for Quota {
    fn from(q: StoredQuota) -> Self {
        Quota {
            guarantees: q.guarantees,
            limits: q.limits,
        }
    }
}

impl From<&Quota> for StoredQuota {
    fn from(q: &Quota) -> Self {
        StoredQuota {
            guarantees: q.guarantees.clone(),
            limits: q.limits.clone(),
        }
    }
}

/// What a registry held when a master recovered it.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Admitted agents, each with its id.
    pub agents: Vec<AgentInfo>,
    /// Weights other than 1.
    pub weights: BTreeMap<String, f64>,
    /// Quotas.
    pub quotas: BTreeMap<String, StoredQuota>,
    /// This leadership's epoch (1 for the first).
    pub epoch: u64,
}

/// The master's registry in a [`StateStore`], under a root path.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn StateStore>,
    root: String,
    /// Writers of the whole-map nodes (weights, quotas) take turns, so
    /// two operators' changes cannot overwrite each other.
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn corrupt(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Core(CoreError::Invalid {
        what: "registry entry",
        reason: format!("{path}: {e}"),
    })
}

impl Registry {
    /// A registry kept in `store` under `root` (`/` for the store's own root).
    pub fn new(store: Arc<dyn StateStore>, root: &str) -> Self {
        Registry {
            store,
            root: root.trim_end_matches('/').to_string(),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root)
    }

    async fn read<T: for<'de> Deserialize<'de> + Default>(&self, rest: &str) -> Result<T> {
        let path = self.path(rest);
        match self.store.get(&path).await? {
            Some(v) if !v.data.is_empty() => serde_json::from_slice(&v.data).map_err(|e| corrupt(&path, e)),
            _ => Ok(T::default()),
        }
    }

    /// Reads everything and starts a new epoch (compare-and-set, so two
    /// masters recovering at once cannot both get the same one).
    ///
    /// # Errors
    /// When the store fails or holds something unreadable.
    pub async fn recover(&self) -> Result<Recovered> {
        let epoch_path = self.path("epoch");
        let epoch = loop {
            let current = self.store.get(&epoch_path).await?;
            let (n, version) = match &current {
                Some(v) => (
                    std::str::from_utf8(&v.data)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(0),
                    Some(v.version),
                ),
                None => (0, None),
            };
            match self
                .store
                .compare_and_set(&epoch_path, (n + 1).to_string().into_bytes(), version)
                .await
            {
                Ok(_) => break n + 1,
                Err(CoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut agents = Vec::new();
        for name in self.store.children(&self.path("agents")).await? {
            let path = self.path(&format!("agents/{name}"));
            if let Some(v) = self.store.get(&path).await? {
                let info: AgentInfo = serde_json::from_slice(&v.data).map_err(|e| corrupt(&path, e))?;
                if info.id.as_ref().is_some_and(|id| id.as_str() == name) {
                    agents.push(info);
                } else {
                    tracing::warn!(path, "a registry entry names another agent; skipped");
                }
            }
        }
        Ok(Recovered {
            agents,
            weights: self.read("weights").await?,
            quotas: self.read("quotas").await?,
            epoch,
        })
    }

    /// Admits an agent (or updates its info).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn admit(&self, info: &AgentInfo) -> Result<()> {
        let Some(id) = &info.id else {
            return Err(Error::bad_request("an agent is admitted with its id"));
        };
        let data = serde_json::to_vec(info).map_err(|e| corrupt("agent", e))?;
        self.store.put(&self.path(&format!("agents/{id}")), data).await?;
        Ok(())
    }

    /// Forgets an agent.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn remove_agent(&self, id: &AgentId) -> Result<()> {
        self.store.delete(&self.path(&format!("agents/{id}")), None).await?;
        Ok(())
    }

    /// Takes the writers' turn: hold it from reading the current maps to
    /// applying the change.
    pub async fn turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }

    /// Stores the weights (the whole map, roles at 1 left out).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn set_weights(&self, weights: &BTreeMap<String, f64>) -> Result<()> {
        let data = serde_json::to_vec(weights).map_err(|e| corrupt("weights", e))?;
        self.store.put(&self.path("weights"), data).await?;
        Ok(())
    }

    /// Stores the quotas (the whole map).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn set_quotas(&self, quotas: &BTreeMap<String, StoredQuota>) -> Result<()> {
        let data = serde_json::to_vec(quotas).map_err(|e| corrupt("quotas", e))?;
        self.store.put(&self.path("quotas"), data).await?;
        Ok(())
    }
}
