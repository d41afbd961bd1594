//! Shared vocabulary and traits of the orchestrator toolkit.
//!
//! Everything the other crates exchange lives here: identifier newtypes,
//! [`Resources`] and their arithmetic, the Mesos task vocabulary
//! ([`TaskInfo`], [`TaskState`], [`TaskStatus`], [`Offer`], [`AgentInfo`],
//! [`FrameworkInfo`]), the [`ContainerSpec`] a containerizer runs, and the
//! pluggable seams [`Allocator`], [`Containerizer`] and [`StateStore`] with the
//! embedded [`MemStore`].
//!
//! # Why a separate crate
//!
//! A master, an agent, a Marathon-style scheduler and a monitoring probe must
//! agree on what a task or a resource is without depending on each other, and
//! a user embedding only one of them should not compile the rest. So this
//! crate holds plain data and traits and depends on nothing but `serde`
//! (with `serde_json` for the JSON forms of resources and the file store),
//! `thiserror` and `async-trait`: no runtime, no HTTP, no Docker client.
//!
//! The probes' report wire model ([`report`]) and the [`Collector`] seam
//! that writes it sit behind the `report` feature (on by default), which
//! adds `flate2` and `rmp-serde`; `orchestrator-mesos` builds without it.
//!
//! # Why the Mesos wire shapes
//!
//! The types serialise exactly as Apache Mesos's v1 JSON API does
//! (`{"value": …}` ids, `TASK_RUNNING` states, typed resource objects), so
//! existing frameworks and tools talk to this project unchanged and there is
//! one model rather than an internal one plus a translation layer.
//!
//! # Why fixed-point scalars
//!
//! Allocators add and subtract resources millions of times; with floats the
//! books drift (`0.1 + 0.2 - 0.2 != 0.1`) and an agent ends up offering
//! `-0.000001` CPUs. Scalars are kept in thousandths, as Mesos does, so the
//! arithmetic is exact.
//!
//! ```
//! use orchestrator_core::Resources;
//!
//! let agent: Resources = "cpus:4;mem:8192;ports:[31000-32000]".parse()?;
//! let task: Resources = "cpus:0.1;mem:128;ports:[31000-31000]".parse()?;
//! assert!(agent.contains(&task));
//!
//! let free = agent.checked_sub(&task)?;
//! assert_eq!(free.cpus(), 3.9);
//! assert_eq!(free.ports().count(), 1000);
//! assert_eq!(&free + &task, agent);
//!
//! // Ten such tasks, as a scheduler would reserve for ten instances.
//! assert_eq!((&task * 10.0).mem(), 1280.0);
//! # Ok::<(), orchestrator_core::Error>(())
//! ```

mod allocator;
#[cfg(feature = "report")]
mod collector;
mod container;
mod error;
pub mod exposition;
mod ids;
mod labels;
mod name;
#[cfg(feature = "report")]
pub mod report;
mod resources;
mod store;
mod task;

pub use allocator::{Allocation, Allocator, Quota, RoleInfo};
#[cfg(feature = "report")]
pub use collector::{Collector, Written};
pub use container::{
    Command, ContainerSpec, Containerizer, NetworkMode, PortMapping, ResourceLimits, ResourceStatistics, Termination,
    VolumeMount, LABEL_APP_ID, LABEL_FRAMEWORK_ID, LABEL_TASK_ID,
};
pub use error::{BoxError, Error, Result};
pub use ids::{AgentId, ContainerId, ExecutorId, FrameworkId, OfferId, TaskId};
pub use labels::Labels;
pub use name::Name;
pub use resources::{
    role_is_within, Range, Ranges, Reservation, ReservationKind, Resource, Resources, Scalar, Value, ANY_ROLE,
};
pub use store::{
    join as join_path, validate_data_path, validate_path, FileStore, MemStore, StateStore, Version, Versioned,
};
pub use task::{
    AgentInfo, Attribute, AttributeValue, Attributes, Capability, CommandInfo, CommandUri, ContainerInfo,
    ContainerType, DockerInfo, DockerNetwork, DockerPortMapping, DurationInfo, Environment, FrameworkInfo, KillPolicy,
    NetworkInfo, Offer, Parameter, TaskInfo, TaskReason, TaskSource, TaskState, TaskStatus, Variable, Volume,
    VolumeMode,
};
