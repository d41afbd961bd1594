//! ZooKeeper-backed pieces: the [`ZkStore`] state store, the
//! [`LeaderElection`] that lets several schedulers share it safely, and
//! the masters' election in Mesos's layout ([`MasterContender`],
//! [`MasterDetector`]).

mod election;
mod masters;
mod store;

use orchestrator_core::Error;
use zookeeper_client as zk;

pub use election::{LeaderElection, Leadership};
pub use masters::{
    Candidacy, Lease, MasterAddress, MasterContender, MasterDetector, MasterInfo, ZkUrl, MASTER_INFO_PREFIX,
};
pub use store::ZkStore;

/// A ZooKeeper failure as the core error, naming the path and the operation.
fn zk_err(path: &str, what: &str, e: zk::Error) -> Error {
    Error::store(path, format!("ZooKeeper {what} failed: {e}"), e)
}
