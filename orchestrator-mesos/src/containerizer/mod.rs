//! Containerizers: how an agent runs a task.

mod cgroups;
mod process;

pub use cgroups::{CgroupVersion, Cgroups, ContainerCgroup};
pub use process::ProcessContainerizer;
