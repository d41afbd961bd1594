//! ZooKeeper-backed pieces: the [`ZkStore`] state store and the
//! [`LeaderElection`] that lets several schedulers share it safely.

mod election;
mod store;

pub use election::{LeaderElection, Leadership};
pub use store::ZkStore;
