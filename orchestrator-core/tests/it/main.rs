//! The integration tests of `orchestrator-core`, in one binary: the laws of
//! resource arithmetic, report merging and its codec, the `StateStore`
//! contract on the embedded stores, and fuzzing of the decoders.

mod fuzz;
mod laws;
#[cfg(feature = "report")]
mod report;
mod store;
