//! The integration tests of `orchestrator-core`, in one binary: the laws of
//! resource arithmetic, report merging and its codec, and the `StateStore`
//! contract on the embedded stores.

mod laws;
#[cfg(feature = "report")]
mod report;
mod store;
