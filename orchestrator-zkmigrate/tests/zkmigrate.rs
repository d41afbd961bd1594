//! The migration engine against real ZooKeeper servers: the harness's two
//! (as source and target, each test under its own root) and, where a server
//! must be killed, one started by the test.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use orchestrator_testkit::{zookeeper_pair, ZkServer};
use orchestrator_zkmigrate::{
    copy::copy, verify, ConflictPolicy, CopyOptions, DiffKind, Endpoint, EphemeralPolicy, MigrateOptions, Migration,
    NodeKind, NodeRules, Phase, Progress, Side, SyncHandle, SyncOptions,
};
use zookeeper_client as zk;

fn endpoints(test: &str) -> Option<(Endpoint, Endpoint)> {
    let (a, b) = zookeeper_pair(test)?;
    let root = format!("/zkm-{test}-{}", std::process::id());
    Some((
        Endpoint::parse("source", &a.address, &root).unwrap(),
        Endpoint::parse("target", &b.address, &root).unwrap(),
    ))
}

async fn connect(ep: &Endpoint) -> zk::Client {
    ep.connect(Duration::from_secs(10)).await.unwrap()
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

const ANYONE_ALL: &[zk::Acl] = &[zk::Acl::new_const(zk::Permission::ALL, "world", "anyone")];

/// `n` nodes under `root`: 100 folders of n/100 leaves, data of 0..2 KiB,
/// every seventh leaf with a restricted ACL, every eleventh with two entries.
async fn populate(c: &zk::Client, ep: &Endpoint, n: usize) {
    c.mkdir(&ep.root, &open()).await.unwrap();
    let folders = 100;
    let opts = open();
    let folder_paths: Vec<String> = (0..folders).map(|f| ep.abs(&format!("/f{f}"))).collect();
    for r in join_all(folder_paths.iter().map(|p| c.create(p, b"folder", &opts))).await {
        r.unwrap();
    }
    let restricted = [zk::Acl::new(
        zk::Permission::READ | zk::Permission::WRITE | zk::Permission::ADMIN,
        zk::AuthId::anyone(),
    )];
    let two = [
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("ip", "127.0.0.1")),
        zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
    ];
    let leaves: Vec<(String, Vec<u8>, usize)> = (0..n - folders - 1)
        .map(|i| {
            let data = vec![b'a' + (i % 26) as u8; (i * 37) % 2048];
            (ep.abs(&format!("/f{}/n{i}", i % folders)), data, i)
        })
        .collect();
    for chunk in leaves.chunks(2000) {
        let results = join_all(chunk.iter().map(|(p, d, i)| {
            let acl: &[zk::Acl] = if i % 7 == 0 {
                &restricted
            } else if i % 11 == 0 {
                &two
            } else {
                ANYONE_ALL
            };
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(acl));
            async move { c.create(p, d, &opts).await }
        }))
        .await;
        for r in results {
            r.unwrap();
        }
    }
}

async fn assert_equal(s: &zk::Client, sep: &Endpoint, t: &zk::Client, tep: &Endpoint) {
    let r = verify(s, sep, t, tep, &NodeRules::default(), false).await.unwrap();
    assert!(
        r.equal(),
        "differences: {:?}",
        &r.differences[..r.differences.len().min(10)]
    );
    assert_eq!(r.source_checksum, r.target_checksum);
}

async fn converge(s: &zk::Client, sep: &Endpoint, t: &zk::Client, tep: &Endpoint, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let r = verify(s, sep, t, tep, &NodeRules::default(), false).await.unwrap();
        if r.equal() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: {:?}",
            &r.differences[..r.differences.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_ten_thousand_nodes_with_acls_and_types_then_only_what_changed() {
    let Some((sep, tep)) = endpoints("copy") else { return };
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    populate(&s, &sep, 10_000).await;
    // Every node type, and sequential children.
    s.create(
        &sep.abs("/box"),
        b"",
        &zk::CreateMode::Container.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .unwrap();
    s.create(&sep.abs("/box/in"), b"x", &open()).await.unwrap();
    let ttl = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    s.create(&sep.abs("/ttl"), b"t", &ttl).await.unwrap();
    s.create(&sep.abs("/locks"), b"", &open()).await.unwrap();
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    for _ in 0..5 {
        s.create(&sep.abs("/locks/lock-"), b"", &seq).await.unwrap();
    }
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    s.create(&sep.abs("/session"), b"me", &eph).await.unwrap();

    // Container and TTL nodes look persistent to clients; rules name them.
    let typed = CopyOptions {
        rules: NodeRules {
            containers: vec!["/box".into()],
            ttls: vec![("/ttl".into(), 1500)],
            ..NodeRules::default()
        },
        ..CopyOptions::default()
    };
    let progress = Progress::default();
    let (plan, report) = copy(&s, &sep, &t, &tep, &typed, false, Some(&progress)).await.unwrap();
    assert_eq!(report.source_nodes, 10_000 + 2 + 1 + 1 + 5, "{report:?}");
    assert_eq!(report.created, report.source_nodes, "{report:?}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(progress.written.load(Ordering::Relaxed) as usize, plan.ops.len());
    assert_equal(&s, &sep, &t, &tep).await;

    // The ephemeral was skipped (the default policy).
    let kind = |stat: zk::Stat| orchestrator_zkmigrate::kind_of(stat.ephemeral_owner);
    assert_eq!(t.check_stat(&tep.abs("/session")).await.unwrap(), None);
    // The types are real on the target: the server removes an emptied
    // container and an expired TTL node by itself.
    t.delete(&tep.abs("/box/in"), None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while t.check_stat(&tep.abs("/box")).await.unwrap().is_some()
        || t.check_stat(&tep.abs("/ttl")).await.unwrap().is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the container or the TTL node outlived its type"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.delete(&sep.abs("/box/in"), None).await.unwrap();
    s.delete(&sep.abs("/box"), None).await.unwrap();
    s.delete(&sep.abs("/ttl"), None).await.unwrap();
    // A sequential child made on the target after the copy does not collide.
    let (_, next) = t.create(&tep.abs("/locks/lock-"), b"", &seq).await.unwrap();
    assert!(
        next.into_i64() >= 5,
        "target sequence {next} would collide with copied children"
    );

    // Re-running writes nothing; ten changes write ten.
    t.delete(&tep.abs(&format!("/locks/lock-{next}")), None).await.unwrap();
    let (_, again) = copy(&s, &sep, &t, &tep, &CopyOptions::default(), false, None)
        .await
        .unwrap();
    assert_eq!(again.writes(), 0, "{again:?}");
    for i in 0..10 {
        let p = sep.abs(&format!("/f{i}/n{}", 1000 + i));
        s.set_data(&p, b"changed", None).await.unwrap();
    }
    let (_, ten) = copy(&s, &sep, &t, &tep, &CopyOptions::default(), false, None)
        .await
        .unwrap();
    assert_eq!((ten.data_set, ten.writes()), (10, 10), "{ten:?}");
    assert_equal(&s, &sep, &t, &tep).await;

    // With ephemerals copied as markers, the session's node appears as persistent.
    let markers = CopyOptions {
        rules: NodeRules::from(EphemeralPolicy::Persistent),
        ..CopyOptions::default()
    };
    let (_, m) = copy(&s, &sep, &t, &tep, &markers, false, None).await.unwrap();
    assert_eq!(m.created, 1, "{m:?}");
    assert_eq!(
        kind(t.check_stat(&tep.abs("/session")).await.unwrap().unwrap()),
        NodeKind::Persistent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_every_planted_difference() {
    let Some((sep, tep)) = endpoints("verify") else { return };
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    populate(&s, &sep, 500).await;
    copy(&s, &sep, &t, &tep, &CopyOptions::default(), false, None)
        .await
        .unwrap();
    assert_equal(&s, &sep, &t, &tep).await;

    t.set_data(&tep.abs("/f1/n1"), b"planted", None).await.unwrap();
    t.set_acl(
        &tep.abs("/f2/n2"),
        &[zk::Acl::new(
            zk::Permission::READ | zk::Permission::ADMIN,
            zk::AuthId::anyone(),
        )],
        None,
    )
    .await
    .unwrap();
    t.delete(&tep.abs("/f3/n3"), None).await.unwrap();
    t.create(&tep.abs("/extra"), b"", &open()).await.unwrap();
    let r = verify(&s, &sep, &t, &tep, &NodeRules::default(), false).await.unwrap();
    let found: Vec<(String, DiffKind)> = r.differences.iter().map(|d| (d.path.clone(), d.kind.clone())).collect();
    assert_eq!(
        found,
        vec![
            ("/extra".to_string(), DiffKind::MissingOnSource),
            (
                "/f1/n1".to_string(),
                DiffKind::Data {
                    source_len: 37,
                    target_len: 7
                }
            ),
            ("/f2/n2".to_string(), DiffKind::Acl),
            ("/f3/n3".to_string(), DiffKind::MissingOnTarget),
        ]
    );
    assert_ne!(r.source_checksum, r.target_checksum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_resumes_and_converges() {
    let Some((sep, tep)) = endpoints("resume") else { return };
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    populate(&s, &sep, 20_000).await;
    let progress = Arc::new(Progress::default());
    let (s2, t2, a, b, p) = (s.clone(), t.clone(), sep.clone(), tep.clone(), progress.clone());
    let job = tokio::spawn(async move { copy(&s2, &a, &t2, &b, &CopyOptions::default(), false, Some(&p)).await });
    while progress.written.load(Ordering::Relaxed) == 0 {
        assert!(!job.is_finished(), "the copy finished before it could be interrupted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    job.abort();
    let _ = job.await;
    let partial = verify(&s, &sep, &t, &tep, &NodeRules::default(), false).await.unwrap();
    assert!(!partial.equal(), "the interrupted copy had already finished");
    let (_, report) = copy(&s, &sep, &t, &tep, &CopyOptions::default(), false, None)
        .await
        .unwrap();
    assert!(report.target_nodes_before >= 1000, "{report:?}");
    assert!(report.created < report.source_nodes, "{report:?}");
    assert_equal(&s, &sep, &t, &tep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_both_sides_converge_without_ping_pong() {
    let Some((sep, tep)) = endpoints("sync") else { return };
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    populate(&s, &sep, 300).await;
    copy(&s, &sep, &t, &tep, &CopyOptions::default(), false, None)
        .await
        .unwrap();
    let sync = SyncHandle::start(sep.clone(), tep.clone(), SyncOptions::default())
        .await
        .unwrap();

    // Writers on both sides, each on its own part of the tree, with creates,
    // updates and deletes (a parent with children included).
    let writer = |c: zk::Client, ep: Endpoint, tag: &'static str| async move {
        c.create(&ep.abs(&format!("/{tag}")), b"", &open()).await.unwrap();
        for round in 0..5 {
            join_all((0..50).map(|i| {
                let c = &c;
                let p = ep.abs(&format!("/{tag}/k{i}"));
                async move {
                    if round == 0 {
                        c.create(&p, b"0", &open()).await.unwrap();
                    } else {
                        c.set_data(&p, format!("{round}").as_bytes(), None).await.unwrap();
                    }
                }
            }))
            .await;
        }
        for i in 0..10 {
            c.delete(&ep.abs(&format!("/{tag}/k{i}")), None).await.unwrap();
        }
    };
    tokio::join!(
        writer(s.clone(), sep.clone(), "src"),
        writer(t.clone(), tep.clone(), "dst")
    );
    s.delete(&sep.abs("/f5/n5"), None).await.unwrap();
    t.set_data(&tep.abs("/f6/n6"), b"from target", None).await.unwrap();
    assert!(sync.wait_idle(Duration::from_secs(30)).await);
    converge(&s, &sep, &t, &tep, Duration::from_secs(10)).await;
    assert_eq!(t.check_stat(&tep.abs("/f5/n5")).await.unwrap(), None);
    assert_eq!(s.get_data(&sep.abs("/f6/n6")).await.unwrap().0, b"from target");
    assert_eq!(s.get_data(&sep.abs("/dst/k20")).await.unwrap().0, b"4");

    // No ping-pong: once idle, nothing more is written.
    let settled = sync.stats();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = sync.stats();
    assert_eq!(
        (later.applied, later.events),
        (settled.applied, settled.events),
        "{later:?}"
    );
    assert_eq!(later.conflicts, 0, "{:?}", sync.conflicts());
    // Each change crosses once: 2 × (1 + 50 + 4×50 updates (coalescing may merge) + 10) + 2.
    assert!(later.applied <= 2 * (1 + 50 + 200 + 10) + 2, "{later:?}");
    assert!(later.lag_count > 0 && later.lag_p99_us > 0, "{later:?}");
}

async fn conflict_under(policy: ConflictPolicy, test: &str) -> (Vec<u8>, Vec<u8>, usize) {
    let (sep, tep) = endpoints(test).expect("checked by the caller");
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    s.mkdir(&sep.abs("/c"), &open()).await.unwrap();
    let opts = SyncOptions {
        policy,
        ..SyncOptions::default()
    };
    let sync = SyncHandle::start(sep.clone(), tep.clone(), opts).await.unwrap();
    assert_eq!(t.get_data(&tep.abs("/c")).await.unwrap().0, b"");
    sync.pause();
    s.set_data(&sep.abs("/c"), b"source", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t.set_data(&tep.abs("/c"), b"target", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sync.resume();
    assert!(sync.wait_idle(Duration::from_secs(10)).await);
    let conflicts = sync.conflicts();
    assert!(conflicts.iter().all(|c| c.path == "/c"), "{conflicts:?}");
    (
        s.get_data(&sep.abs("/c")).await.unwrap().0,
        t.get_data(&tep.abs("/c")).await.unwrap().0,
        conflicts.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_settled_by_the_chosen_policy() {
    if zookeeper_pair("conflicts").is_none() {
        return;
    }
    let (s, t, n) = conflict_under(ConflictPolicy::SourceWins, "conflict-source").await;
    assert_eq!((s.as_slice(), t.as_slice(), n), (&b"source"[..], &b"source"[..], 1));
    let (s, t, n) = conflict_under(ConflictPolicy::NewestWins, "conflict-newest").await;
    assert_eq!((s.as_slice(), t.as_slice(), n), (&b"target"[..], &b"target"[..], 1));
    let (s, t, n) = conflict_under(ConflictPolicy::ReportOnly, "conflict-report").await;
    assert_eq!((s.as_slice(), t.as_slice()), (&b"source"[..], &b"target"[..]));
    assert!(n >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_sync_is_reconciled_after_restart() {
    let Some((sep, _)) = endpoints("restart") else { return };
    let Some(mut server) = ZkServer::start("a_server_killed_during_sync_is_reconciled_after_restart") else {
        return;
    };
    let tep = Endpoint::parse("target", &server.address(), &sep.root).unwrap();
    let s = connect(&sep).await;
    populate(&s, &sep, 200).await;
    let sync = SyncHandle::start(sep.clone(), tep.clone(), SyncOptions::default())
        .await
        .unwrap();
    let t = connect(&tep).await;
    assert_equal(&s, &sep, &t, &tep).await;
    let before = sync.stats().full_reconciles;

    server.stop();
    // Written while the target is down: its events can never arrive.
    for i in 0..50 {
        s.set_data(&sep.abs(&format!("/f{i}/n{i}")), b"while down", None)
            .await
            .unwrap();
    }
    s.create(&sep.abs("/born-while-down"), b"", &open()).await.unwrap();
    s.delete(&sep.abs("/f60/n60"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    let t = connect(&tep).await;
    converge(&s, &sep, &t, &tep, Duration::from_secs(40)).await;
    assert!(sync.stats().full_reconciles > before, "{:?}", sync.stats());
    // And live sync carries on afterwards.
    s.set_data(&sep.abs("/f1/n1"), b"after", None).await.unwrap();
    converge(&s, &sep, &t, &tep, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_run_in_order_check_exit_criteria_and_roll_back() {
    let Some((sep, tep)) = endpoints("phases") else { return };
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    populate(&s, &sep, 300).await;
    let before = verify(&s, &sep, &s, &sep, &NodeRules::default(), false).await.unwrap();
    let dir = std::env::temp_dir().join(format!("zkm-phases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");

    // A dry run plans without writing or recording anything.
    let dry = MigrateOptions {
        dry_run: true,
        ..MigrateOptions::default()
    };
    let mut m = Migration::open(sep.clone(), tep.clone(), state.clone(), dry).unwrap();
    m.run_to(Phase::Finalize).await.unwrap();
    assert_eq!(m.last_plan().unwrap().ops.len(), 300);
    assert_eq!(m.state().phase, Phase::New);
    assert_eq!(t.check_stat(&tep.root).await.unwrap(), None);

    // Cutover refuses while the lag bound is not met.
    let strict = MigrateOptions {
        max_lag: Duration::ZERO,
        ..MigrateOptions::default()
    };
    let mut m = Migration::open(sep.clone(), tep.clone(), state.clone(), strict).unwrap();
    m.run_to(Phase::Verify).await.unwrap();
    assert_eq!(m.state().phase, Phase::Verify);
    s.set_data(&sep.abs("/f1/n1"), b"live", None).await.unwrap();
    // The change crosses over live (so its lag is measured) before cutover is asked for.
    while t.get_data(&tep.abs("/f1/n1")).await.map(|(d, _)| d).ok().as_deref() != Some(&b"live"[..]) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    m.sync().unwrap().wait_idle(Duration::from_secs(5)).await;
    let refused = m.run_to(Phase::Cutover).await.unwrap_err().to_string();
    assert!(
        refused.starts_with("cannot cut over in phase verify: sync lag p99"),
        "{refused}"
    );
    drop(m);

    // Resumed from the state file with a sane bound: cutover, then a change
    // made on the target (now authoritative) reaches the source.
    let mut m = Migration::open(sep.clone(), tep.clone(), state.clone(), MigrateOptions::default()).unwrap();
    assert_eq!(m.state().phase, Phase::Verify);
    m.run_to(Phase::Cutover).await.unwrap();
    assert_eq!(
        (m.state().phase, m.state().authoritative),
        (Phase::Cutover, Side::Target)
    );
    assert_eq!(m.sync().unwrap().authoritative(), Side::Target);

    // Rollback: source authoritative, target cleaned, source intact.
    m.rollback(true).await.unwrap();
    assert_eq!(
        (m.state().phase, m.state().authoritative),
        (Phase::RolledBack, Side::Source)
    );
    let after = verify(&s, &sep, &s, &sep, &NodeRules::default(), false).await.unwrap();
    assert_eq!(after.source_nodes, before.source_nodes);
    assert_eq!(t.check_stat(&tep.root).await.unwrap(), None);
    let on_disk = orchestrator_zkmigrate::MigrationState::load(&state).unwrap().unwrap();
    assert_eq!(on_disk.phase, Phase::RolledBack);

    // A new attempt runs to the end; then rollback is refused.
    let mut m = Migration::open(sep.clone(), tep.clone(), state.clone(), MigrateOptions::default()).unwrap();
    m.run_to(Phase::Finalize).await.unwrap();
    assert_eq!(m.state().phase, Phase::Finalize);
    assert!(m.sync().is_none());
    assert_equal(&s, &sep, &t, &tep).await;
    let e = m.rollback(false).await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    // Another pair of endpoints cannot reuse the record.
    let other = Endpoint::parse("target", &tep.servers, "/elsewhere").unwrap();
    assert!(Migration::open(sep.clone(), other, state, MigrateOptions::default()).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The ACL memo lets a re-run skip ACL reads, and never hides a change:
/// an ACL set on the source (its `aversion` moves), a target node deleted
/// and created again with another ACL (its `czxid` moves), and a memo file
/// that is garbage are all noticed, and the copy makes both sides equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_memo_skips_reads_and_never_hides_a_change() {
    let Some((sep, tep)) = endpoints("acl_memo") else {
        return;
    };
    let (s, t) = (connect(&sep).await, connect(&tep).await);
    populate(&s, &sep, 1001).await;
    let dir = std::env::temp_dir().join(format!("zkm-memo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = CopyOptions {
        acl_memo: Some(dir.clone()),
        ..CopyOptions::default()
    };
    let (_, first) = copy(&s, &sep, &t, &tep, &opts, false, None).await.unwrap();
    assert_eq!((first.created, first.acls_known), (1001, 0), "{first:?}");
    // Both sides known now, the target's from the copy's own writes.
    let (_, again) = copy(&s, &sep, &t, &tep, &opts, false, None).await.unwrap();
    assert_eq!((again.writes(), again.acls_known), (0, 2002), "{again:?}");

    let read_only = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
    s.set_acl(&sep.abs("/f3/n3"), &read_only, None).await.unwrap();
    t.delete(&tep.abs("/f5/n5"), None).await.unwrap();
    let admin = [zk::Acl::new(
        zk::Permission::READ | zk::Permission::ADMIN,
        zk::AuthId::anyone(),
    )];
    let other = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&admin));
    let (data, _) = s.get_data(&sep.abs("/f5/n5")).await.unwrap();
    t.create(&tep.abs("/f5/n5"), &data, &other).await.unwrap();
    let (_, changed) = copy(&s, &sep, &t, &tep, &opts, false, None).await.unwrap();
    assert_eq!(changed.acl_set, 2, "both changed ACLs noticed: {changed:?}");
    assert_eq!(changed.acls_known, 2000, "{changed:?}");
    assert_equal(&s, &sep, &t, &tep).await;

    for f in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(f.unwrap().path(), b"{not json").unwrap();
    }
    let (_, garbage) = copy(&s, &sep, &t, &tep, &opts, false, None).await.unwrap();
    assert_eq!((garbage.writes(), garbage.acls_known), (0, 0), "{garbage:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The session-expiry path of the sync, for real: the target's server is
/// frozen (SIGSTOP) past the session timeout while the source changes;
/// when it runs again the session has expired, the engine opens a new one,
/// re-reads both trees and carries every change over; live sync goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expired_during_sync_is_replaced_and_reconciled() {
    let Some((sep, _)) = endpoints("expiry") else { return };
    let Some(server) = ZkServer::start("a_session_expired_during_sync_is_replaced_and_reconciled") else {
        return;
    };
    let tep = Endpoint::parse("target", &server.address(), &sep.root)
        .unwrap()
        .with_session_timeout(Duration::from_secs(2));
    let s = connect(&sep).await;
    populate(&s, &sep, 200).await;
    let sync = SyncHandle::start(sep.clone(), tep.clone(), SyncOptions::default())
        .await
        .unwrap();
    let t = connect(&tep).await;
    assert_equal(&s, &sep, &t, &tep).await;
    let before = sync.stats();

    server.freeze();
    for i in 0..30 {
        s.set_data(&sep.abs(&format!("/f{i}/n{i}")), b"while expired", None)
            .await
            .unwrap();
    }
    s.create(&sep.abs("/born-while-expired"), b"", &open()).await.unwrap();
    s.delete(&sep.abs("/f70/n70"), None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.thaw();

    let t = connect(&tep).await;
    converge(&s, &sep, &t, &tep, Duration::from_secs(40)).await;
    let after = sync.stats();
    assert!(after.sessions_renewed > before.sessions_renewed, "{after:?}");
    assert!(after.full_reconciles > before.full_reconciles, "{after:?}");
    s.set_data(&sep.abs("/f1/n1"), b"after", None).await.unwrap();
    converge(&s, &sep, &t, &tep, Duration::from_secs(10)).await;
}
