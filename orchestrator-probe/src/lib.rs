//! The per-host probe: discovers what runs on a host — the host itself,
//! processes, network connections, containers — and reports it to the
//! topology app, which also sends it container controls to execute.
//!
//! # Why procfs, read directly
//!
//! A probe runs on every host, all the time, so it must cost almost
//! nothing (Weave Scope's was measured at 20–70 % of a core). Reading
//! `/proc` in-process avoids spawning `ps`, `ss` or `docker` and lets
//! expensive fields be cached between collections. This crate starts with
//! the host's own facts, [`HostInfo`].
//!
//! ```
//! let host = orchestrator_probe::HostInfo::collect()?;
//! assert!(host.cpus >= 1);
//! println!("{} runs {} with {} CPUs", host.hostname, host.kernel_version, host.cpus);
//! # Ok::<(), orchestrator_probe::Error>(())
//! ```

mod host;

use std::path::PathBuf;

pub use host::HostInfo;

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
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
