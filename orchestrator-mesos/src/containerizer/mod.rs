//! Containerizers: how an agent runs a task.

mod cgroups;
mod docker;
mod process;
#[cfg(feature = "test-util")]
mod recording;

pub use cgroups::{CgroupVersion, Cgroups, ContainerCgroup};
pub use docker::{DockerContainerizer, LABEL_CONTAINER_ID, LABEL_SCOPE, NAME_PREFIX};
pub use process::ProcessContainerizer;
#[cfg(feature = "test-util")]
pub use recording::RecordingContainerizer;
