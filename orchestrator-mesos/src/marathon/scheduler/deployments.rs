//! Deployments in progress, indexed by app, and the refusal a locked app
//! answers with.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::marathon::app::AppDefinition;
use crate::marathon::plan::Step;

/// A deployment in progress.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Its id.
    pub id: String,
    /// The version it deploys.
    pub version: String,
    /// The app it changes.
    pub app_id: String,
    /// Its steps.
    pub steps: Vec<Step>,
    /// The app as it was before (for a rollback); `None` for a new app.
    #[serde(skip)]
    pub original: Option<AppDefinition>,
}

impl Deployment {
    pub(super) fn restarts(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::RestartApplication { .. }))
    }

    pub(crate) fn stops(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::StopApplication { .. }))
    }
}

/// A change refused because a deployment holds the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locked {
    /// The deployments holding it.
    pub deployments: Vec<String>,
}

/// Deployments by id, indexed by app: with 10,000 apps, "is this app
/// restarting?" must not scan every deployment.
#[derive(Debug, Default)]
pub(super) struct Deployments {
    by_id: BTreeMap<String, Deployment>,
    by_app: std::collections::HashMap<String, Vec<String>>,
}

impl Deployments {
    pub(super) fn insert(&mut self, id: String, d: Deployment) {
        self.by_app.entry(d.app_id.clone()).or_default().push(id.clone());
        if let Some(old) = self.by_id.insert(id.clone(), d) {
            self.unindex(&old.app_id, &id);
        }
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Deployment> {
        let d = self.by_id.remove(id)?;
        self.unindex(&d.app_id, id);
        Some(d)
    }

    pub(super) fn unindex(&mut self, app_id: &str, id: &str) {
        if let Some(ids) = self.by_app.get_mut(app_id) {
            if let Some(at) = ids.iter().position(|x| x == id) {
                ids.remove(at);
            }
            if ids.is_empty() {
                self.by_app.remove(app_id);
            }
        }
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Deployment> {
        self.by_id.values()
    }

    pub(super) fn of_app<'a>(&'a self, app_id: &str) -> impl Iterator<Item = &'a Deployment> + 'a {
        self.by_app
            .get(app_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }
}
