//! The `StateStore` contract on `MemStore`; the ZooKeeper store runs the
//! same contract (testkit's `store_contract`) in orchestrator-mesos.

use std::sync::Arc;

use orchestrator_core::MemStore;

#[tokio::test]
async fn mem_store_honours_the_contract() {
    orchestrator_testkit::store_contract::check(&MemStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_cas_lose_nothing() {
    orchestrator_testkit::store_contract::check_concurrent_increments(Arc::new(MemStore::new())).await;
}
