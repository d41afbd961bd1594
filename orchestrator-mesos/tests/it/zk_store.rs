//! ZkStore on the harness's real ZooKeeper, held to the same contract as
//! the in-memory store.

use std::sync::Arc;

use orchestrator_core::StateStore;
use orchestrator_mesos::ZkStore;

#[tokio::test]
async fn zk_store_honours_the_contract() {
    let Some(env) = orchestrator_testkit::zookeeper("zk_store_honours_the_contract") else {
        return;
    };
    let root = format!("/orch-test-{}-contract", std::process::id());
    let store = ZkStore::connect(&env.address, &root).await.unwrap();
    orchestrator_testkit::store_contract::check(&store).await;
    // Everything lives under the root, which is left empty-able.
    let all = ZkStore::connect(&env.address, "/").await.unwrap();
    assert!(all.children(&root).await.unwrap().contains(&"marathon".to_string()));
    all.delete_recursive(&root).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_store_compare_and_set_loses_no_increment() {
    let Some(env) = orchestrator_testkit::zookeeper("zk_store_compare_and_set_loses_no_increment") else {
        return;
    };
    let root = format!("/orch-test-{}-cas", std::process::id());
    let store: Arc<dyn StateStore> = Arc::new(ZkStore::connect(&env.address, &root).await.unwrap());
    orchestrator_testkit::store_contract::check_concurrent_increments(store.clone()).await;
    store.delete_recursive("/counter").await.unwrap();
}

#[tokio::test]
async fn an_unreachable_zookeeper_is_a_clear_error() {
    let port = orchestrator_testkit::free_port();
    let servers = format!("127.0.0.1:{port}");
    let connect = ZkStore::connect(&servers, "/x");
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), connect).await;
    match err {
        Ok(Err(e)) => assert!(e.to_string().contains("ZooKeeper connect failed"), "{e}"),
        Ok(Ok(_)) => panic!("connected to nothing"),
        Err(_) => {} // the client kept retrying: no connection, no panic
    }
}
