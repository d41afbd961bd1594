//! Containerizers: how an agent runs a task.

mod cgroups;
mod process;
#[cfg(feature = "test-util")]
mod recording;

pub use cgroups::{CgroupVersion, Cgroups, ContainerCgroup};
pub use process::ProcessContainerizer;
#[cfg(feature = "test-util")]
pub use recording::RecordingContainerizer;
