//! A containerizer that runs nothing and records what it was asked: for
//! benchmarks and tests of the control plane alone. Never a stand-in for
//! the real containerizers in their own tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::{ContainerId, ContainerSpec, Containerizer, Error, ResourceStatistics, Result, Termination};

/// Records launches; every container "runs" until killed or destroyed.
#[derive(Debug, Default)]
pub struct RecordingContainerizer {
    launched: Mutex<HashMap<ContainerId, ContainerSpec>>,
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
        if launched.insert(id.clone(), spec.clone()).is_some() {
            return Err(Error::Container {
                container_id: id.to_string(),
                message: "launched twice".into(),
                source: None,
            });
        }
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<Termination> {
        Err(Error::UnknownContainer {
            container_id: id.to_string(),
        })
    }

    async fn kill(&self, _id: &ContainerId, _grace: Duration) -> Result<()> {
        Ok(())
    }

    async fn usage(&self, _id: &ContainerId) -> Result<ResourceStatistics> {
        Ok(ResourceStatistics::default())
    }

    async fn destroy(&self, id: &ContainerId) -> Result<()> {
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    async fn recover(&self, _known: &[ContainerId]) -> Result<Vec<ContainerId>> {
        Ok(Vec::new())
    }
}
