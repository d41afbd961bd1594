use std::time::Duration;

/// A boxed error from an implementation behind one of the core traits
/// (a ZooKeeper client, the Docker API, the operating system).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the shared vocabulary and behind its traits.
///
/// Implementations of [`Containerizer`](crate::Containerizer) and
/// [`StateStore`](crate::StateStore) report their own failures through the
/// `Container` and `Store` variants, keeping the underlying error as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A resource string or JSON document could not be understood.
    #[error("invalid resources `{input}`: {reason}")]
    InvalidResources {
        /// The offending text (or the resource's name).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A subtraction asked for more than is there.
    #[error("insufficient resources: {available} does not contain {requested}")]
    InsufficientResources {
        /// What was there.
        available: String,
        /// What was asked for.
        requested: String,
    },
    /// A lifecycle was asked to move along an edge it does not have.
    #[error("invalid transition of {what} from {from} to {to}")]
    InvalidTransition {
        /// The thing whose state was to change (a task id, for example).
        what: String,
        /// Its current state.
        from: String,
        /// The state that was asked for.
        to: String,
    },
    /// A value does not pass validation (an empty id, a bad path, …).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being validated.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A store path does not exist.
    #[error("no node at {path}")]
    NoNode {
        /// The path that was asked for.
        path: String,
    },
    /// A store node was expected to be absent but exists.
    #[error("node {path} already exists")]
    NodeExists {
        /// The path that exists.
        path: String,
    },
    /// A store node cannot be deleted while it has children.
    #[error("node {path} has children")]
    NotEmpty {
        /// The path with children.
        path: String,
    },
    /// A compare-and-set or conditional delete saw another version.
    #[error("version conflict at {path}: expected {expected:?}, found {actual:?}")]
    VersionConflict {
        /// The contested path.
        path: String,
        /// The version the caller expected (`None`: absent).
        expected: Option<u64>,
        /// The version found (`None`: absent).
        actual: Option<u64>,
    },
    /// The backend behind a [`StateStore`](crate::StateStore) failed.
    #[error("state store failed at {path}: {message}")]
    Store {
        /// The path the operation was about.
        path: String,
        /// What the store said.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend behind a [`Containerizer`](crate::Containerizer) failed.
    #[error("container {container_id}: {message}")]
    Container {
        /// The container the operation was about.
        container_id: String,
        /// What went wrong.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
    /// A container is not known to the containerizer asked.
    #[error("unknown container {container_id}")]
    UnknownContainer {
        /// The id that was asked for.
        container_id: String,
    },
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// A JSON document could not be (de)serialised.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Container`] error with a source.
    pub fn container(container_id: impl ToString, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Container {
            container_id: container_id.to_string(),
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`Error::Store`] error with a source.
    pub fn store(path: impl Into<String>, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Store {
            path: path.into(),
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn resources(input: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidResources {
            input: input.into(),
            reason: reason.into(),
        }
    }
}
