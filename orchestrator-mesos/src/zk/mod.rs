//! ZooKeeper-backed pieces: the [`ZkStore`] state store.

mod store;

pub use store::ZkStore;
