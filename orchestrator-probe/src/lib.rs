//! The per-host probe: discovers what runs on a host — the host itself,
//! processes, network connections, containers — and reports it to the
//! topology apps.
//!
//! # Why procfs, read directly
//!
//! A probe runs on every host, all the time, so it must cost almost
//! nothing (Weave Scope's was measured at 20–70 % of a core). Reading
//! `/proc` in-process avoids spawning `ps`, `ss` or `docker`; what rarely
//! changes is cached per process incarnation; the costly socket-to-process
//! walk runs only when a socket table names an unknown inode
//! ([`network`]); container usage comes from one-shot stats with bounded
//! concurrency, never one stream per container ([`docker`]).
//!
//! # Shape
//!
//! Each source is a [`Collector`](orchestrator_core::Collector) writing
//! nodes into its own [`Report`](orchestrator_core::report::Report); a pure
//! [`tag`] pass joins them (process → container by cgroup or ancestry,
//! endpoint → process by socket inode, process → Marathon app by its task
//! environment). [`Probe`] runs the cycle and hands reports to one
//! [`AppPublisher`] per app, each with its own bounded queue and backoff.
//! It keeps each collector's last output and refreshes the sources a CPU
//! budget can pay for ([`ProbeConfig::cpu_budget`]): on a host where one
//! socket dump costs more than the whole budget, connections refresh every
//! few seconds instead of the probe costing several percent of a core.
//!
//! ```
//! let host = orchestrator_probe::HostInfo::collect()?;
//! assert!(host.cpus >= 1);
//! println!("{} runs {} with {} CPUs", host.hostname, host.kernel_version, host.cpus);
//! # Ok::<(), orchestrator_probe::Error>(())
//! ```

pub mod apps;
mod budget;
pub mod controls;
pub mod docker;
mod host;
pub mod metrics;
pub mod network;
mod probe;
pub mod process;
pub mod publish;
pub mod tag;
mod users;

use std::path::PathBuf;

pub use controls::{ControlPolicy, Executor};
pub use docker::DockerCollector;
pub use host::{HostCollector, HostInfo};
pub use network::NetworkCollector;
pub use probe::{self_usage, Probe, ProbeConfig, ProbeStats};
pub use process::ProcessCollector;
pub use publish::{AppPublisher, PublishConfig, PublishStats};

/// What can go wrong in the probe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// procfs could not be parsed.
    #[error("reading /proc ({what}): {source}")]
    Proc {
        /// Which part of procfs.
        what: &'static str,
        /// Why.
        #[source]
        source: procfs::ProcError,
    },
    /// The Docker engine refused or failed.
    #[error("{what}: {source}")]
    Docker {
        /// What was being done.
        what: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
}

/// Milliseconds since the epoch, the timestamps of report values.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
