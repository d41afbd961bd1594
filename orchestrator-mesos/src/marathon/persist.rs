//! What the scheduler keeps in its [`StateStore`], and where: apps under
//! `/apps`, every version of each under `/versions`, live instances under
//! `/instances`, and the framework id. The framework loop calls these; it
//! never builds a store path itself.

use std::sync::Arc;

use orchestrator_core::{FrameworkId, StateStore, TaskId};

use super::app::AppDefinition;
use super::scheduler::Instance;
use crate::{Error, Result};

const FRAMEWORK_ID: &str = "/framework-id";

/// App ids cannot contain '_', so this is reversible and flat.
fn flat(app_id: &str) -> String {
    app_id.trim_start_matches('/').replace('/', "_")
}

fn app_path(app_id: &str) -> String {
    format!("/apps/{}", flat(app_id))
}

fn version_dir(app_id: &str) -> String {
    format!("/versions/{}", flat(app_id))
}

fn instance_path(task: &TaskId) -> String {
    format!("/instances/{task}")
}

/// A stored app that could not be read back as a valid definition (written
/// by an older release, edited by hand, or refused by today's rules). It is
/// kept, not dropped, so an operator sees it and decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// The app's id as far as it can be told (from the stored `id`, or
    /// from the store path).
    pub id: String,
    /// Why it was not loaded.
    pub reason: String,
}

/// Everything a scheduler starts from.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The valid apps.
    pub apps: Vec<AppDefinition>,
    /// Stored apps that are not valid definitions.
    pub unreadable: Vec<Unreadable>,
    /// The instances that were live.
    pub instances: Vec<Instance>,
    /// The framework id it last subscribed with.
    pub framework_id: Option<FrameworkId>,
}

/// The scheduler's view of its store.
#[derive(Clone)]
pub struct Persistence {
    store: Arc<dyn StateStore>,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence").finish_non_exhaustive()
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::bad_request(e.to_string()))
}

impl Persistence {
    /// Over `store`.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// Reads what a scheduler starts from. An app that does not parse or
    /// does not pass validation is reported in [`Loaded::unreadable`].
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn load(&self) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        for name in self.store.children("/apps").await.unwrap_or_default() {
            let Some(v) = self.store.get(&format!("/apps/{name}")).await? else {
                continue;
            };
            let fallback_id = format!("/{}", name.replace('_', "/"));
            match serde_json::from_slice::<AppDefinition>(&v.data) {
                Ok(def) => match def.validate() {
                    Ok(()) => loaded.apps.push(def),
                    Err(e) => loaded.unreadable.push(Unreadable {
                        id: def.id.clone(),
                        reason: e.to_string(),
                    }),
                },
                Err(e) => {
                    let id = serde_json::from_slice::<serde_json::Value>(&v.data)
                        .ok()
                        .and_then(|j| j["id"].as_str().map(str::to_string))
                        .unwrap_or(fallback_id);
                    loaded.unreadable.push(Unreadable {
                        id,
                        reason: format!("the stored definition does not parse: {e}"),
                    });
                }
            }
        }
        for name in self.store.children("/instances").await.unwrap_or_default() {
            let Some(v) = self.store.get(&format!("/instances/{name}")).await? else {
                continue;
            };
            match serde_json::from_slice(&v.data) {
                Ok(instance) => loaded.instances.push(instance),
                Err(e) => tracing::warn!(instance = %name, error = %e, "a stored instance does not parse; ignored"),
            }
        }
        loaded.framework_id = self
            .store
            .get(FRAMEWORK_ID)
            .await?
            .and_then(|v| String::from_utf8(v.data).ok())
            .and_then(|s| FrameworkId::new(s).ok());
        Ok(loaded)
    }

    /// Records an app as it is now, and as its version.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn save_app(&self, app: &AppDefinition) -> Result<()> {
        let bytes = encode(app)?;
        self.store.put(&app_path(&app.id), bytes.clone()).await?;
        let version = app.version.clone().unwrap_or_default();
        self.store
            .put(&format!("{}/{version}", version_dir(&app.id)), bytes)
            .await?;
        Ok(())
    }

    /// Forgets an app and its versions.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete_app(&self, app_id: &str) -> Result<()> {
        self.store.delete(&app_path(app_id), None).await?;
        if let Err(e) = self.store.delete_recursive(&version_dir(app_id)).await {
            tracing::warn!(app = app_id, error = %e, "the app's versions stay in the store");
        }
        Ok(())
    }

    /// Every recorded version of an app, newest first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn versions(&self, app_id: &str) -> Result<Vec<String>> {
        let mut v = self.store.children(&version_dir(app_id)).await.unwrap_or_default();
        v.sort_unstable_by(|a, b| b.cmp(a));
        Ok(v)
    }

    /// One recorded version of an app.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn version(&self, app_id: &str, version: &str) -> Result<Option<AppDefinition>> {
        let Some(v) = self.store.get(&format!("{}/{version}", version_dir(app_id))).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&v.data).ok())
    }

    /// Records a live instance (logged, not returned: the instance lives on
    /// in memory and the next update writes it again).
    pub async fn save_instance(&self, instance: &Instance) {
        let Ok(bytes) = serde_json::to_vec(instance) else {
            return;
        };
        if let Err(e) = self.store.put(&instance_path(&instance.task_id), bytes).await {
            tracing::warn!(error = %e, task = %instance.task_id, "cannot record an instance");
        }
    }

    /// Forgets an instance that ended.
    pub async fn delete_instance(&self, task: &TaskId) {
        if let Err(e) = self.store.delete(&instance_path(task), None).await {
            tracing::debug!(error = %e, task = %task, "an ended instance was not in the store");
        }
    }

    /// Records the framework id the master gave.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn save_framework_id(&self, id: &FrameworkId) -> Result<()> {
        self.store.put(FRAMEWORK_ID, id.to_string().into_bytes()).await?;
        Ok(())
    }
}
