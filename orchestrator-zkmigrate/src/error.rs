//! The crate's one error type.

use zookeeper_client as zk;

/// What can go wrong while migrating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint string could not be parsed.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// What was given.
        endpoint: String,
        /// Why it is not usable.
        reason: String,
    },
    /// A ZooKeeper call failed.
    #[error("ZooKeeper {side} {op} {path}: {source}")]
    Zk {
        /// `source` or `target` (or the servers' address).
        side: String,
        /// The call (`connect`, `read`, `create`, …).
        op: &'static str,
        /// The absolute path involved.
        path: String,
        /// ZooKeeper's answer.
        #[source]
        source: zk::Error,
    },
    /// The persisted migration state could not be read or written.
    #[error("migration state {path}: {reason}")]
    State {
        /// The state file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A phase was asked for whose entry criteria do not hold.
    #[error("cannot {action} in phase {phase}: {reason}")]
    Phase {
        /// What was asked for.
        action: String,
        /// The current phase.
        phase: String,
        /// Why not.
        reason: String,
    },
    /// Nodes a side may not read: nothing was written.
    #[error(
        "{count} node(s) cannot be read, nothing was written: {}{} (give credentials that can read them, \
         --source-auth/--target-auth, or --skip-unreadable to leave them out)",
        paths.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
        if *count > 5 { "; …" } else { "" }
    )]
    Unreadable {
        /// How many.
        count: usize,
        /// `side path: reason`, one per node.
        paths: Vec<String>,
    },
    /// Writes the target's identity may not make (their ACLs deny it):
    /// nothing was written.
    #[error(
        "{count} write(s) the target's ACLs do not permit, nothing was written: {}{} \
         (give the target credentials that have the permissions, --target-auth)",
        paths.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
        if *count > 5 { "; …" } else { "" }
    )]
    NotPermitted {
        /// How many.
        count: usize,
        /// `path: what is denied`, one per write.
        paths: Vec<String>,
    },
    /// Verification found differences.
    #[error("source and target differ in {count} path(s), first: {first}")]
    Differs {
        /// How many paths differ.
        count: usize,
        /// The first difference, rendered.
        first: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn zk(side: &str, op: &'static str, path: &str, source: zk::Error) -> Self {
        Error::Zk {
            side: side.to_string(),
            op,
            path: path.to_string(),
            source,
        }
    }

    /// The exit code a command-line tool should use: 2 for usage and
    /// state problems, 3 when verification found differences, 4 for
    /// ZooKeeper failures, 5 when nodes could not be read or written with
    /// the credentials given.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Endpoint { .. } | Error::State { .. } | Error::Phase { .. } => 2,
            Error::Differs { .. } => 3,
            Error::Zk { .. } => 4,
            Error::Unreadable { .. } | Error::NotPermitted { .. } => 5,
        }
    }
}
