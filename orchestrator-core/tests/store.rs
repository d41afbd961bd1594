//! The `StateStore` contract, exercised on `MemStore`. The same contract
//! is what a ZooKeeper-backed store must honour.

use std::sync::Arc;

use orchestrator_core::{Error, MemStore, StateStore};

#[tokio::test]
async fn versions_start_at_zero_and_grow_per_write() {
    let s = MemStore::new();
    assert_eq!(s.get("/a").await.unwrap(), None);
    assert_eq!(s.put("/a", b"one".to_vec()).await.unwrap(), 0);
    assert_eq!(s.put("/a", b"two".to_vec()).await.unwrap(), 1);
    let v = s.get("/a").await.unwrap().unwrap();
    assert_eq!((v.data.as_slice(), v.version), (&b"two"[..], 1));
}

#[tokio::test]
async fn compare_and_set_detects_a_concurrent_writer() {
    let s = MemStore::new();
    assert_eq!(s.compare_and_set("/app", b"v1".to_vec(), None).await.unwrap(), 0);
    let err = s.compare_and_set("/app", b"again".to_vec(), None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: None,
                actual: Some(0),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.compare_and_set("/app", b"v2".to_vec(), Some(0)).await.unwrap(), 1);
    let err = s.compare_and_set("/app", b"stale".to_vec(), Some(0)).await.unwrap_err();
    assert!(matches!(
        err,
        Error::VersionConflict {
            expected: Some(0),
            actual: Some(1),
            ..
        }
    ));
    assert_eq!(s.get("/app").await.unwrap().unwrap().data, b"v2");
}

#[tokio::test]
async fn parents_are_created_and_children_listed_by_name() {
    let s = MemStore::new();
    s.put("/marathon/apps/web", b"w".to_vec()).await.unwrap();
    s.put("/marathon/apps/db", b"d".to_vec()).await.unwrap();
    s.put("/marathon/apps/db/versions/1", b"x".to_vec()).await.unwrap();
    s.put("/marathon/apps-other", b"y".to_vec()).await.unwrap();
    assert_eq!(s.children("/marathon/apps").await.unwrap(), vec!["db", "web"]);
    assert_eq!(s.children("/marathon").await.unwrap(), vec!["apps", "apps-other"]);
    assert_eq!(s.children("/").await.unwrap(), vec!["marathon"]);
    assert!(s.children("/nothing").await.unwrap().is_empty());
    assert_eq!(s.get("/marathon").await.unwrap().unwrap().data, b"");
}

#[tokio::test]
async fn delete_respects_children_and_versions() {
    let s = MemStore::new();
    s.put("/a/b", b"1".to_vec()).await.unwrap();
    assert!(matches!(
        s.delete("/a", None).await.unwrap_err(),
        Error::NotEmpty { .. }
    ));
    assert!(matches!(
        s.delete("/a/b", Some(7)).await.unwrap_err(),
        Error::VersionConflict { .. }
    ));
    assert!(s.delete("/a/b", Some(0)).await.unwrap());
    assert!(!s.delete("/a/b", None).await.unwrap());
    s.put("/t/x/y", vec![]).await.unwrap();
    s.put("/t/z", vec![]).await.unwrap();
    assert!(s.delete_recursive("/t").await.unwrap());
    assert!(s.children("/").await.unwrap() == vec!["a"]);
}

#[tokio::test]
async fn bad_paths_are_errors_not_panics() {
    let s = MemStore::new();
    for bad in ["", "relative", "/trailing/", "/a//b", "/a/../b"] {
        assert!(matches!(s.put(bad, vec![]).await, Err(Error::Invalid { .. })), "{bad}");
        assert!(s.get(bad).await.is_err());
    }
    assert!(s.put("/", vec![1]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_cas_lose_nothing() {
    let s = Arc::new(MemStore::new());
    s.put("/counter", b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                loop {
                    let cur = s.get("/counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&cur.data).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    if s.compare_and_set("/counter", next, Some(cur.version)).await.is_ok() {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get("/counter").await.unwrap().unwrap().data, b"800");
}
