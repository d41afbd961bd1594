//! A containerizer that runs nothing and records what it was asked: for
//! benchmarks and tests of the control plane alone. Never a stand-in for
//! the real containerizers in their own tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::{ContainerId, ContainerSpec, Containerizer, Error, ResourceStatistics, Result, Termination};

fn killed() -> Termination {
    Termination {
        exit_code: None,
        signal: Some(9),
        killed: true,
        reason: None,
        message: "killed".into(),
    }
}

type Ended = tokio::sync::watch::Sender<Option<Termination>>;

/// Records launches; every container "runs" until killed or destroyed.
#[derive(Debug, Default)]
pub struct RecordingContainerizer {
    launched: Mutex<HashMap<ContainerId, (ContainerSpec, Ended)>>,
}

impl RecordingContainerizer {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many containers were launched.
    pub fn launched(&self) -> usize {
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait]
impl Containerizer for RecordingContainerizer {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn supports(&self, _spec: &ContainerSpec) -> bool {
        true
    }

    async fn launch(&self, id: &ContainerId, spec: &ContainerSpec, _sandbox: &Path) -> Result<()> {
        let mut launched = self.launched.lock().unwrap_or_else(|p| p.into_inner());
        if launched
            .insert(id.clone(), (spec.clone(), tokio::sync::watch::channel(None).0))
            .is_some()
        {
            return Err(Error::Container {
                container_id: id.to_string(),
                message: "launched twice".into(),
                source: None,
            });
        }
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<Termination> {
        let ended = self
            .launched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|(_, ended)| ended.subscribe());
        let Some(mut ended) = ended else {
            return Err(Error::UnknownContainer {
                container_id: id.to_string(),
            });
        };
        let end = ended
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::UnknownContainer {
                container_id: id.to_string(),
            })?;
        Ok(end.clone().unwrap_or_else(killed))
    }

    async fn kill(&self, id: &ContainerId, _grace: Duration) -> Result<()> {
        if let Some((_, ended)) = self.launched.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            ended.send_if_modified(|end| {
                if end.is_some() {
                    return false;
                }
                *end = Some(killed());
                true
            });
        }
        Ok(())
    }

    async fn usage(&self, _id: &ContainerId) -> Result<ResourceStatistics> {
        Ok(ResourceStatistics::default())
    }

    async fn destroy(&self, id: &ContainerId) -> Result<()> {
        self.kill(id, Duration::ZERO).await?;
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    async fn recover(&self, _known: &[ContainerId]) -> Result<Vec<ContainerId>> {
        Ok(Vec::new())
    }
}
