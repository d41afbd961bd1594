//! The [`StateStore`] contract, run against every implementation (the
//! in-memory store and the ZooKeeper store) so that they behave alike.

use std::sync::Arc;

use orchestrator_core::{Error, StateStore};

/// Checks versions, compare-and-set, parents and children, deletion rules
/// and path validation on an empty store.
///
/// # Panics
/// On any breach of the contract, naming it.
pub async fn check(s: &dyn StateStore) {
    // Versions start at 0 and grow by one per write.
    assert_eq!(s.get("/a").await.unwrap(), None);
    assert_eq!(s.put("/a", b"one".to_vec()).await.unwrap(), 0);
    assert_eq!(s.put("/a", b"two".to_vec()).await.unwrap(), 1);
    let v = s.get("/a").await.unwrap().unwrap();
    assert_eq!((v.data.as_slice(), v.version), (&b"two"[..], 1));

    // Compare-and-set detects a concurrent writer.
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
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: Some(0),
                actual: Some(1),
                ..
            }
        ),
        "{err}"
    );
    let err = s.compare_and_set("/absent", b"x".to_vec(), Some(3)).await.unwrap_err();
    assert!(matches!(err, Error::VersionConflict { actual: None, .. }), "{err}");
    assert_eq!(s.get("/app").await.unwrap().unwrap().data, b"v2");

    // Parents are created; children are listed by name, sorted.
    s.put("/marathon/apps/web", b"w".to_vec()).await.unwrap();
    s.put("/marathon/apps/db", b"d".to_vec()).await.unwrap();
    s.put("/marathon/apps/db/versions/1", b"x".to_vec()).await.unwrap();
    s.put("/marathon/apps-other", b"y".to_vec()).await.unwrap();
    assert_eq!(s.children("/marathon/apps").await.unwrap(), vec!["db", "web"]);
    assert_eq!(s.children("/marathon").await.unwrap(), vec!["apps", "apps-other"]);
    assert!(s.children("/nothing").await.unwrap().is_empty());
    assert_eq!(s.get("/marathon").await.unwrap().unwrap().data, b"");

    // Deletion respects children and versions.
    s.put("/d/b", b"1".to_vec()).await.unwrap();
    assert!(matches!(
        s.delete("/d", None).await.unwrap_err(),
        Error::NotEmpty { .. }
    ));
    assert!(matches!(
        s.delete("/d/b", Some(7)).await.unwrap_err(),
        Error::VersionConflict { .. }
    ));
    assert!(s.delete("/d/b", Some(0)).await.unwrap());
    assert!(!s.delete("/d/b", None).await.unwrap());
    s.put("/t/x/y", vec![]).await.unwrap();
    s.put("/t/z", vec![]).await.unwrap();
    assert!(s.delete_recursive("/t").await.unwrap());
    assert!(s.get("/t").await.unwrap().is_none());

    // Bad paths are errors, not panics.
    for bad in ["", "relative", "/trailing/", "/a//b", "/a/../b"] {
        assert!(matches!(s.put(bad, vec![]).await, Err(Error::Invalid { .. })), "{bad}");
        assert!(s.get(bad).await.is_err(), "{bad}");
    }
    assert!(s.put("/", vec![1]).await.is_err());
}

/// Eight writers increment one counter through compare-and-set a hundred
/// times each; none of the 800 increments may be lost.
///
/// # Panics
/// When an increment is lost.
pub async fn check_concurrent_increments(s: Arc<dyn StateStore>) {
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
