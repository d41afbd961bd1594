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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_masters_registry_and_election_live_in_mesos_layout_on_zookeeper() {
    use std::time::Duration;

    use orchestrator_core::{AgentId, AgentInfo};
    use orchestrator_mesos::{MasterContender, MasterDetector, MasterInfo, Registry, ZkUrl, MASTER_INFO_PREFIX};

    let Some(env) = orchestrator_testkit::zookeeper("the_masters_registry_and_election_live_in_mesos_layout") else {
        return;
    };
    let url: ZkUrl = format!("zk://{}/orch-test-{}-mesos", env.address, std::process::id())
        .parse()
        .unwrap();
    let store: Arc<dyn StateStore> = Arc::new(ZkStore::connect(&env.address, &url.registry_path()).await.unwrap());

    // Registry: every recovery is a new epoch; what was admitted comes back.
    let registry = Registry::new(store.clone(), "/");
    let first = registry.recover().await.unwrap();
    assert_eq!((first.epoch, first.agents.len()), (1, 0));
    let agent = AgentInfo {
        hostname: "a1".into(),
        port: Some(5051),
        resources: "cpus:2;mem:512".parse().unwrap(),
        attributes: Default::default(),
        id: Some(AgentId::new("master-e1-S1").unwrap()),
    };
    registry.admit(&agent).await.unwrap();
    registry
        .set_weights(&[("web".to_string(), 3.0)].into_iter().collect())
        .await
        .unwrap();
    let again = registry.recover().await.unwrap();
    assert_eq!(again.epoch, 2);
    assert_eq!(again.agents, vec![agent.clone()]);
    assert_eq!(again.weights["web"], 3.0);
    registry.remove_agent(agent.id.as_ref().unwrap()).await.unwrap();
    assert!(registry.recover().await.unwrap().agents.is_empty());

    // Election: only json.info_ znodes directly under the path, lowest leads,
    // the detector follows a withdrawal at once.
    let timeout = Duration::from_secs(4);
    let (a, b) = (
        MasterContender::connect(&url, timeout).await.unwrap(),
        MasterContender::connect(&url, timeout).await.unwrap(),
    );
    let info_a = MasterInfo::new("a", "127.0.0.1:5050".parse().unwrap(), None);
    let info_b = MasterInfo::new("b", "127.0.0.1:5051".parse().unwrap(), None);
    let ca = a.contend(&info_a).await.unwrap();
    ca.elected().await.unwrap();
    assert!(ca.lease().valid());
    let cb = b.contend(&info_b).await.unwrap();
    let detector = MasterDetector::connect(&url, timeout).await.unwrap();
    assert_eq!(detector.leader(), Some(info_a.clone()));
    let raw = zookeeper_client::Client::connect(&env.address).await.unwrap();
    let children = raw.list_children(&url.path).await.unwrap();
    assert_eq!(children.len(), 2);
    assert!(children
        .iter()
        .all(|c| c.starts_with(MASTER_INFO_PREFIX) && c.len() == MASTER_INFO_PREFIX.len() + 10));
    let (data, _) = raw.get_data(ca.node()).await.unwrap();
    assert_eq!(serde_json::from_slice::<MasterInfo>(&data).unwrap(), info_a);
    let mut changes = detector.subscribe();
    let lease = ca.lease();
    drop(ca);
    assert!(!lease.valid(), "withdrawing ends the lease at once");
    tokio::time::timeout(Duration::from_secs(5), cb.elected())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        changes.wait_for(|l| l.as_ref() == Some(&info_b)),
    )
    .await
    .unwrap()
    .unwrap();
    drop(cb);
    tokio::time::timeout(Duration::from_secs(5), changes.wait_for(Option::is_none))
        .await
        .unwrap()
        .unwrap();
    store.delete_recursive("/").await.ok();
    let all = ZkStore::connect(&env.address, "/").await.unwrap();
    all.delete_recursive(&url.path).await.unwrap();
    all.delete_recursive(&url.registry_path()).await.unwrap();
}
