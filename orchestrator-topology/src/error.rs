//! The crate's one error type.

use orchestrator_core::report::ReportError;

/// What can go wrong in the topology app.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A report could not be decoded (malformed, over a limit, unknown version).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A delta arrived that does not follow what the app holds for the
    /// probe (first contact, or publishes lost in between): the probe must
    /// send a full report.
    #[error("report {seq} from probe {probe} is a delta but the app holds {held}: send a full report")]
    NeedFull {
        /// The probe.
        probe: String,
        /// The delta's sequence number.
        seq: u64,
        /// What the app holds (`nothing` or `up to N`).
        held: String,
    },
    /// A report without a probe id.
    #[error("report has no probe id")]
    NoProbeId,
    /// An unknown view name.
    #[error("unknown view `{0}` (views: processes, containers, containers-by-image, hosts, pods, services)")]
    UnknownView(String),
    /// A search or filter expression that does not parse.
    #[error("invalid query `{query}`: {reason}")]
    Query {
        /// The text.
        query: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing local state (saved filters, audit log, tokens).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A configuration that cannot work (a bad tokens file, a certificate
    /// that does not load, no token on a public address).
    #[error("configuration: {0}")]
    Config(String),
    /// The store the replicas share (saved filters) failed.
    #[error("shared state: {0}")]
    Shared(#[from] orchestrator_core::Error),
}

/// Results of this crate.
pub type Result<T, E = TopologyError> = std::result::Result<T, E>;
