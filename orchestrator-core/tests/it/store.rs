//! The `StateStore` contract on `MemStore` and `FileStore`; the ZooKeeper
//! store runs the same contract (testkit's `store_contract`) in
//! orchestrator-mesos.

use std::sync::Arc;

use orchestrator_core::{FileStore, MemStore, StateStore};

#[tokio::test]
async fn mem_store_honours_the_contract() {
    orchestrator_testkit::store_contract::check(&MemStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_cas_lose_nothing() {
    orchestrator_testkit::store_contract::check_concurrent_increments(Arc::new(MemStore::new())).await;
}

#[tokio::test]
async fn file_store_honours_the_contract() {
    let dir = scratch("contract");
    orchestrator_testkit::store_contract::check(&FileStore::open(&dir).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_concurrent_increments_lose_nothing() {
    let dir = scratch("increments");
    orchestrator_testkit::store_contract::check_concurrent_increments(Arc::new(FileStore::open(&dir).unwrap())).await;
}

#[tokio::test]
async fn file_store_keeps_nodes_versions_and_deletions_across_reopening() {
    let dir = scratch("reopen");
    {
        let s = FileStore::open(&dir).unwrap();
        s.put("/marathon/apps/%2Fweb", b"{\"id\":\"/web\"}".to_vec())
            .await
            .unwrap();
        s.put("/marathon/apps/%2Fweb", b"{\"id\":\"/web\",\"instances\":2}".to_vec())
            .await
            .unwrap();
        s.put("/marathon/apps/%2Fgone", b"x".to_vec()).await.unwrap();
        assert!(s.delete("/marathon/apps/%2Fgone", None).await.unwrap());
        s.put("/marathon/framework_id", Vec::new()).await.unwrap();
    }
    // A write a crash interrupted, and a file that is not a node.
    std::fs::write(dir.join("tmp.%2Fmarathon%2Fhalf"), b"\0\0").unwrap();
    std::fs::write(dir.join("README"), b"not a node").unwrap();
    let s = FileStore::open(&dir).unwrap();
    let web = s.get("/marathon/apps/%2Fweb").await.unwrap().unwrap();
    assert_eq!(
        (web.data.as_slice(), web.version),
        (&b"{\"id\":\"/web\",\"instances\":2}"[..], 1)
    );
    assert_eq!(s.children("/marathon/apps").await.unwrap(), vec!["%2Fweb"]);
    assert_eq!(s.children("/marathon").await.unwrap(), vec!["apps", "framework_id"]);
    assert_eq!(s.get("/marathon/framework_id").await.unwrap().unwrap().data, b"");
    assert!(!dir.join("tmp.%2Fmarathon%2Fhalf").exists());
    // The parents made implicitly survive as nodes too.
    assert_eq!(s.get("/marathon").await.unwrap().unwrap().version, 0);

    // A node file without its version is a clear error, not a silent loss.
    std::fs::write(dir.join("%2Fbroken"), b"abc").unwrap();
    let err = FileStore::open(&dir).unwrap_err().to_string();
    assert!(err.contains("holds no version"), "{err}");
}

#[tokio::test]
async fn file_store_refuses_what_it_cannot_store_and_changes_nothing() {
    let dir = scratch("refuses");
    let s = FileStore::open(&dir).unwrap();
    let long = format!("/{}", "x".repeat(300));
    let err = s.put(&long, b"x".to_vec()).await.unwrap_err().to_string();
    assert!(err.contains("too long for the file store"), "{err}");
    assert_eq!(s.get(&long).await.unwrap(), None);
    // A node whose file cannot be replaced (a directory took its name):
    // the write fails with the file named, and the node keeps its value.
    s.put("/kept", b"old".to_vec()).await.unwrap();
    std::fs::remove_file(dir.join("%2Fkept")).unwrap();
    std::fs::create_dir(dir.join("%2Fkept")).unwrap();
    std::fs::write(dir.join("%2Fkept").join("x"), b"").unwrap();
    let err = s.put("/kept", b"new".to_vec()).await.unwrap_err().to_string();
    assert!(err.contains("%2Fkept") && err.contains("cannot write a node"), "{err}");
    assert_eq!(s.get("/kept").await.unwrap().unwrap().data, b"old");
    let err = s.compare_and_set("/new/child", b"x".to_vec(), None).await;
    assert!(err.is_ok(), "other nodes are still writable: {err:?}");
}

/// An empty directory of this test process.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("orch-filestore-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
