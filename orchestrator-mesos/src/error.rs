/// What can go wrong in the master, agents and their APIs.
///
/// HTTP handlers map [`Error::BadRequest`] to 400 with a Mesos-style message;
/// errors from the shared vocabulary arrive as [`Error::Core`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request that does not follow the API (the message says how).
    #[error("{message}")]
    BadRequest {
        /// What is wrong, as Mesos words it where it has a message for it.
        message: String,
    },
    /// A RecordIO stream that cannot be decoded.
    #[error("malformed RecordIO stream: {reason}")]
    RecordIo {
        /// What is wrong with it.
        reason: String,
    },
    /// A master or peer could not be reached, or broke the protocol.
    #[error("{message}")]
    Transport {
        /// What happened.
        message: String,
    },
    /// An error of the shared vocabulary or a containerizer.
    #[error(transparent)]
    Core(#[from] orchestrator_core::Error),
}

impl Error {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest {
            message: message.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
