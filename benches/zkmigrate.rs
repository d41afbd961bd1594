//! ZooKeeper migration benchmarks against two real ZooKeeper servers on loopback.
//!
//! - `zkmigrate/copy_100k_znodes_100B`: copy a 100,000-node tree (100-byte
//!   values, 1,000 folders of 100) to an empty root on the other server:
//!   read both sides, plan, write in `multi` batches. Target ≥ 20,000 znodes/s.
//! - `zkmigrate/sync_burst_10k_creates`: with the live sync running, 10,000
//!   creates on the source as fast as one client can pipeline them; timed
//!   until the target has all 10,000. Target ≤ 2 s.
//! - `zkmigrate/sync_lag_p99_at_1000_writes_per_s`: one second of 1,000
//!   paced writes per second over 100 nodes; the time reported per
//!   iteration is the sync's p99 lag in that second (change's modification
//!   time on the source → written on the target), as the engine records it.
//! - `zkmigrate/observed_lag_p99/{creates,updates,deletes}_{100,500,1000}_per_s`:
//!   the lag a user observes: `zk-migrate sync` (the release CLI, its own
//!   process) runs between the two servers; a separate client writes to the
//!   source, paced, and records each write's acknowledgement; another has a
//!   persistent recursive watch on the target, armed before the writes,
//!   and records each event. The time reported per iteration is the p99 of
//!   event − acknowledgement over one second of writes (creates of new
//!   children under one parent, which keeps them: it grows by the rate
//!   every round, to tens of thousands; updates of 100 nodes; deletes).
//!   Target ≤ 10 ms at 1,000/s. The same harness
//!   pointed at one server (writes and watch on the source itself) is
//!   `observed_lag_p99/harness_floor_1000_per_s`.
//!
//! - `zkmigrate/cli_copy_100k_into_empty_target` and
//!   `zkmigrate/cli_noop_rerun_100k`: the `zk-migrate copy` command as
//!   users run it (process start, connect, read both trees, plan, write)
//!   on the same 100,000 nodes: into an empty target with no ACL memo (a
//!   first run; target ≥ 20,000 znodes/s), and run again on equal trees
//!   with the memo the previous run left (target ≥ 50,000 znodes/s);
//!   `cli_noop_rerun_100k_no_memo` the same re-run reading every ACL. The
//!   bench builds the release `zk-migrate` first.
//!
//! Servers: `ORCH_BENCH_ZK` and `ORCH_BENCH_ZK2` (or `ORCH_TEST_ZK` and
//! `ORCH_TEST_ZK2`) when set, else two started here from the Debian
//! `zookeeper` package (`ORCH_ZK_CLASSPATH` overrides the jars).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures_util::future::join_all;
use orchestrator::zkmigrate::{copy, CopyOptions, Endpoint, SyncHandle, SyncOptions};
use orchestrator_testkit::ZkServer;
use zookeeper_client as zk;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEBIAN_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:\
/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

fn env(primary: &str, fallback: &str) -> Option<String> {
    std::env::var(primary)
        .or_else(|_| std::env::var(fallback))
        .ok()
        .filter(|v| !v.is_empty())
}

/// Two servers' addresses, and the servers when they were started here.
fn servers() -> Option<(String, String, Vec<ZkServer>)> {
    if let (Some(a), Some(b)) = (
        env("ORCH_BENCH_ZK", "ORCH_TEST_ZK"),
        env("ORCH_BENCH_ZK2", "ORCH_TEST_ZK2"),
    ) {
        return Some((a, b, Vec::new()));
    }
    if std::env::var("ORCH_ZK_CLASSPATH").is_err() {
        std::env::set_var("ORCH_ZK_CLASSPATH", DEBIAN_CLASSPATH);
    }
    let a = ZkServer::start("zkmigrate bench")?;
    let b = ZkServer::start("zkmigrate bench")?;
    Some((a.address(), b.address(), vec![a, b]))
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Creates `paths` with `data`, thousands in flight.
async fn create_all(c: &zk::Client, paths: &[String], data: &[u8]) {
    let opts = open();
    for chunk in paths.chunks(5000) {
        for r in join_all(chunk.iter().map(|p| c.create(p, data, &opts))).await {
            match r {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => panic!("create: {e}"),
            }
        }
    }
}

/// Deletes a subtree of the given depth-ordered paths, leaves first.
async fn delete_all(c: &zk::Client, paths: &[String]) {
    for chunk in paths.rchunks(5000) {
        join_all(chunk.iter().map(|p| c.delete(p, None))).await;
    }
}

/// The release `zk-migrate`, built for the bench.
fn cli() -> Option<std::path::PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "zk-migrate"])
        .status()
        .is_ok_and(|s| s.success());
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("examples").join("zk-migrate");
    (built && bin.exists()).then_some(bin)
}

/// One `zk-migrate copy`, timed from spawn to exit; its JSON report.
fn run_cli(
    bin: &std::path::Path,
    source: &str,
    target: &str,
    path: &str,
    memo: Option<&std::path::Path>,
) -> (Duration, serde_json::Value) {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["copy", "--json", "--source", source, "--target", target, "--path", path]);
    match memo {
        Some(dir) => cmd.arg("--acl-memo").arg(dir),
        None => cmd.arg("--no-acl-memo"),
    };
    let started = Instant::now();
    let out = cmd.output().expect("running zk-migrate");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "zk-migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, serde_json::from_slice(&out.stdout).expect("a JSON report"))
}

fn tree(root: &str, folders: usize, leaves: usize) -> Vec<String> {
    let mut out = vec![root.to_string()];
    out.extend((0..folders).map(|f| format!("{root}/f{f:04}")));
    for f in 0..folders {
        out.extend((0..leaves).map(|l| format!("{root}/f{f:04}/n{l:03}")));
    }
    out
}

fn bench(c: &mut Criterion) {
    let Some((a, b, _servers)) = servers() else {
        eprintln!("zkmigrate bench skipped: no ZooKeeper (install the `zookeeper` package or set ORCH_BENCH_ZK/ORCH_BENCH_ZK2)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = std::process::id();
    let sep = Endpoint::parse("source", &a, &format!("/bench-{run}")).expect("endpoint");
    let (s, t) = rt.block_on(async {
        let connect = |addr: String| async move {
            Endpoint::parse("x", &addr, "/")
                .expect("endpoint")
                .connect(Duration::from_secs(10))
                .await
                .expect("connect")
        };
        (connect(a.clone()).await, connect(b.clone()).await)
    });

    let mut group = c.benchmark_group("zkmigrate");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);

    // ---- copy 100,000 znodes of 100 bytes
    let source_tree = tree(&sep.root, 1000, 99);
    rt.block_on(create_all(&s, &source_tree, &[b'x'; 100]));
    let nodes = source_tree.len();
    group.throughput(Throughput::Elements(nodes as u64));
    group.measurement_time(Duration::from_secs(40));
    let round = AtomicUsize::new(0);
    group.bench_function("copy_100k_znodes_100B", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let k = round.fetch_add(1, Ordering::Relaxed);
                    let tep = Endpoint::parse("target", &b, &format!("/bench-{run}-copy-{k}")).expect("endpoint");
                    let started = Instant::now();
                    let (_, report) = copy::copy(&s, &sep, &t, &tep, &CopyOptions::default(), false, None)
                        .await
                        .expect("copy");
                    total += started.elapsed();
                    assert_eq!(report.created, nodes, "{report:?}");
                    eprintln!("copy: read {} ms, all {} ms", report.read_ms, report.elapsed_ms);
                    delete_all(&t, &tree(&tep.root, 1000, 99)).await;
                }
                total
            })
        });
    });

    // ---- the same through the command-line tool
    if let Some(bin) = cli() {
        let memo_root = std::env::temp_dir().join(format!("zkm-bench-memo-{run}"));
        let target_at = |chroot: &str| format!("{b}{chroot}");
        let clean = |chroot: &str| {
            rt.block_on(async {
                delete_all(&t, &tree(&format!("{chroot}{}", sep.root), 1000, 99)).await;
                let _ = t.delete(chroot, None).await;
            });
        };
        let fresh = AtomicUsize::new(0);
        group.bench_function("cli_copy_100k_into_empty_target", |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let k = fresh.fetch_add(1, Ordering::Relaxed);
                    let chroot = format!("/cli-{run}-{k}");
                    rt.block_on(create_all(&t, std::slice::from_ref(&chroot), b""));
                    // An empty memo directory: a first run reads every ACL.
                    let memo = memo_root.join(format!("first-{k}"));
                    let (took, report) = run_cli(&bin, &a, &target_at(&chroot), &sep.root, Some(&memo));
                    assert_eq!(report["created"], nodes, "{report}");
                    eprintln!("cli copy: {took:?} (read {} ms)", report["read_ms"]);
                    total += took;
                    clean(&chroot);
                }
                total
            })
        });
        let chroot = format!("/cli-{run}-rerun");
        rt.block_on(create_all(&t, std::slice::from_ref(&chroot), b""));
        let memo = memo_root.join("rerun");
        run_cli(&bin, &a, &target_at(&chroot), &sep.root, Some(&memo));
        for (name, memo) in [
            ("cli_noop_rerun_100k", Some(memo.as_path())),
            ("cli_noop_rerun_100k_no_memo", None),
        ] {
            group.bench_function(name, |bench| {
                bench.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (took, report) = run_cli(&bin, &a, &target_at(&chroot), &sep.root, memo);
                        let writes: u64 = ["created", "data_set", "acl_set", "deleted", "recreated"]
                            .iter()
                            .map(|k| report[k].as_u64().unwrap_or(0))
                            .sum();
                        assert_eq!(writes, 0, "{report}");
                        eprintln!("{name}: {took:?} ({} ACLs known)", report["acls_known"]);
                        total += took;
                    }
                    total
                })
            });
        }
        clean(&chroot);
        let _ = std::fs::remove_dir_all(&memo_root);
    } else {
        eprintln!("the CLI benchmarks skipped: `cargo build --release --example zk-migrate` failed");
    }
    rt.block_on(delete_all(&s, &source_tree));

    // ---- live sync
    let sync_root = format!("/bench-{run}-sync");
    let (ssync, tsync) = (
        Endpoint::parse("source", &a, &sync_root).expect("endpoint"),
        Endpoint::parse("target", &b, &sync_root).expect("endpoint"),
    );
    let hot: Vec<String> = (0..100).map(|i| ssync.abs(&format!("/hot{i:03}"))).collect();
    rt.block_on(async {
        create_all(&s, std::slice::from_ref(&ssync.root), b"").await;
        create_all(&s, &hot, b"0").await;
    });
    let sync = rt
        .block_on(SyncHandle::start(ssync.clone(), tsync.clone(), SyncOptions::default()))
        .expect("sync");

    group.throughput(Throughput::Elements(10_000));
    group.measurement_time(Duration::from_secs(20));
    let burst = AtomicUsize::new(0);
    group.bench_function("sync_burst_10k_creates", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let k = burst.fetch_add(1, Ordering::Relaxed);
                    let parent = format!("/burst{k}");
                    create_all(&s, &[ssync.abs(&parent)], b"").await;
                    while t.check_stat(&tsync.abs(&parent)).await.expect("stat").is_none() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let paths: Vec<String> = (0..10_000).map(|i| ssync.abs(&format!("{parent}/n{i:05}"))).collect();
                    let started = Instant::now();
                    create_all(&s, &paths, &[b'y'; 100]).await;
                    let written = started.elapsed();
                    loop {
                        let st = t.check_stat(&tsync.abs(&parent)).await.expect("stat").expect("parent");
                        if st.num_children == 10_000 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let elapsed = started.elapsed();
                    eprintln!("burst {k}: written on the source in {written:?}, all on the target after {elapsed:?}");
                    total += elapsed;
                    // Untimed: the deletions replicate too, keeping both servers small.
                    sync.wait_idle(Duration::from_secs(30)).await;
                    let mut tree = vec![ssync.abs(&parent)];
                    tree.extend(paths);
                    delete_all(&s, &tree).await;
                    while t.check_stat(&tsync.abs(&parent)).await.expect("stat").is_some() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    sync.wait_idle(Duration::from_secs(30)).await;
                }
                total
            })
        });
    });

    group.throughput(Throughput::Elements(1000));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("sync_lag_p99_at_1000_writes_per_s", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    sync.wait_idle(Duration::from_secs(30)).await;
                    sync.reset_lag();
                    let mut tick = tokio::time::interval(Duration::from_millis(1));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut writes = Vec::with_capacity(1000);
                    for i in 0..1000 {
                        tick.tick().await;
                        writes.push(s.set_data(&hot[i % hot.len()], format!("{i}").as_bytes(), None));
                    }
                    for w in join_all(writes).await {
                        w.expect("write");
                    }
                    sync.wait_idle(Duration::from_secs(30)).await;
                    let st = sync.stats();
                    eprintln!(
                        "lag over {} changes: p50 {} µs, p99 {} µs, max {} µs",
                        st.lag_count, st.lag_p50_us, st.lag_p99_us, st.lag_max_us
                    );
                    total += Duration::from_micros(st.lag_p99_us);
                }
                total
            })
        });
    });
    group.finish();
    drop(sync);
}

/// What one second of paced writes looked like from outside.
struct Observed {
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    missing: usize,
}

#[derive(Clone, Copy, Debug)]
enum Write {
    Create,
    Update,
    Delete,
}

/// `rate` writes in one second on `writer` under `parent` (creates of
/// `c{round}-{i}`, updates of `hot{i % 100}`, deletes of what a create
/// round made), each acknowledgement against the event for its path on
/// `observer`'s recursive watch of `watched` (armed first).
async fn observe(
    writer: &zk::Client,
    parent: &str,
    observer: &zk::Client,
    watched: &str,
    kind: Write,
    rate: usize,
    round: usize,
) -> Observed {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let expect = match kind {
        Write::Create => zk::EventType::NodeCreated,
        Write::Update => zk::EventType::NodeDataChanged,
        Write::Delete => zk::EventType::NodeDeleted,
    };
    let name = |i: usize| match kind {
        Write::Update => format!("hot{:03}", i % 100),
        Write::Create | Write::Delete => format!("c{round}-{i:05}"),
    };
    let seen: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let mut watcher = observer
        .watch(watched, zk::AddWatchMode::PersistentRecursive)
        .await
        .expect("watch the target");
    let collector = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let ev = watcher.changed().await;
                if ev.event_type == expect {
                    let leaf = ev.path.rsplit('/').next().unwrap_or_default().to_string();
                    seen.lock().unwrap().entry(leaf).or_default().push(Instant::now());
                }
            }
        })
    };
    let acks: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate).unwrap_or(1000));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::with_capacity(rate);
    for i in 0..rate {
        tick.tick().await;
        let (path, leaf) = (format!("{parent}/{}", name(i)), name(i));
        let acks = Arc::clone(&acks);
        let w = writer.clone();
        let data = format!("{round}:{i}").into_bytes();
        writes.push(tokio::spawn(async move {
            match kind {
                Write::Create => {
                    w.create(&path, &data, &open()).await.expect("create");
                }
                Write::Update => {
                    w.set_data(&path, &data, None).await.expect("update");
                }
                Write::Delete => w.delete(&path, None).await.expect("delete"),
            }
            acks.lock().unwrap().push((leaf, Instant::now()));
        }));
    }
    join_all(writes).await;
    // Every event is in within a generous second (or counted missing).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    collector.abort();
    let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    let seen = seen.lock().unwrap();
    let mut taken: HashMap<&str, usize> = HashMap::new();
    let mut missing = 0;
    // Updates repeat names: the n-th acknowledgement of a name meets its
    // n-th event (a path's events come in order).
    let mut acks = acks.lock().unwrap().clone();
    acks.sort_by_key(|(_, at)| *at);
    for (leaf, acked) in &acks {
        let n = taken.entry(leaf.as_str()).or_insert(0);
        match seen.get(leaf).and_then(|v| v.get(*n)) {
            Some(at) => {
                let lag = at.saturating_duration_since(*acked);
                h.record(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX))
                    .expect("record");
            }
            None => missing += 1,
        }
        *n += 1;
    }
    Observed {
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        missing,
    }
}

/// The observed-lag benchmarks through a `zk-migrate sync` process.
fn observed_lag(c: &mut Criterion, rt: &tokio::runtime::Runtime, a: &str, b: &str) {
    let Some(bin) = cli() else {
        eprintln!("observed lag skipped: `cargo build --release --example zk-migrate` failed");
        return;
    };
    let run = std::process::id();
    let root = format!("/bench-{run}-observed");
    let connect = |addr: String| async move {
        Endpoint::parse("x", &addr, "/")
            .expect("endpoint")
            .connect(Duration::from_secs(10))
            .await
            .expect("connect")
    };
    let (writer, observer) = rt.block_on(async { (connect(a.to_string()).await, connect(b.to_string()).await) });
    let same = rt.block_on(connect(a.to_string()));
    rt.block_on(async {
        create_all(&writer, std::slice::from_ref(&root), b"").await;
        let hot: Vec<String> = (0..100).map(|i| format!("{root}/hot{i:03}")).collect();
        create_all(&writer, &hot, b"0").await;
    });
    let memo = std::env::temp_dir().join(format!("zkm-bench-observed-{run}"));
    let mut sync = std::process::Command::new(&bin)
        .args(["sync", "--source", a, "--target", b, "--path", &root, "--acl-memo"])
        .arg(&memo)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("zk-migrate sync");
    // Syncing once a marker written on the source shows on the target.
    rt.block_on(async {
        let marker = format!("{root}/ready");
        create_all(&writer, std::slice::from_ref(&marker), b"").await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while observer.check_stat(&marker).await.expect("stat").is_none() {
            assert!(Instant::now() < deadline, "zk-migrate sync never carried the marker");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let mut group = c.benchmark_group("zkmigrate/observed_lag_p99");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(25));
    let round = AtomicUsize::new(0);
    let cases: [(&str, Write, usize, bool); 8] = [
        ("harness_floor_1000_per_s", Write::Update, 1000, true),
        ("creates_100_per_s", Write::Create, 100, false),
        ("creates_500_per_s", Write::Create, 500, false),
        ("creates_1000_per_s", Write::Create, 1000, false),
        ("updates_500_per_s", Write::Update, 500, false),
        ("updates_1000_per_s", Write::Update, 1000, false),
        ("deletes_1000_per_s", Write::Delete, 1000, false),
        ("creates_2000_per_s", Write::Create, 2000, false),
    ];
    let created: std::sync::Mutex<Vec<String>> = std::sync::Mutex::default();
    for (name, kind, rate, floor) in cases {
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let k = round.fetch_add(1, Ordering::Relaxed);
                        if let Write::Delete = kind {
                            // Untimed: the children to delete, synced first.
                            let kids: Vec<String> = (0..rate).map(|i| format!("{root}/c{k}-{i:05}")).collect();
                            create_all(&writer, &kids, b"").await;
                            let last = kids.last().expect("some");
                            while observer.check_stat(last).await.expect("stat").is_none() {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        let watcher = if floor { &same } else { &observer };
                        let o = observe(&writer, &root, watcher, &root, kind, rate, k).await;
                        eprintln!(
                            "{name}: p50 {} µs, p99 {} µs, max {} µs, {} missing",
                            o.p50_us, o.p99_us, o.max_us, o.missing
                        );
                        assert_eq!(o.missing, 0, "{name}: events never seen on the target");
                        total += Duration::from_micros(o.p99_us);
                        if let Write::Create = kind {
                            // The parent keeps its children: it grows by
                            // `rate` every round, as a live tree's would.
                            created
                                .lock()
                                .unwrap()
                                .extend((0..rate).map(|i| format!("{root}/c{k}-{i:05}")));
                        }
                    }
                    total
                })
            });
        });
    }
    group.finish();
    let children = created.lock().unwrap().len();
    eprintln!("the parent grew to {children} children");
    rt.block_on(delete_all(&writer, &created.lock().unwrap()));
    let _ = sync.kill();
    let _ = sync.wait();
    let _ = std::fs::remove_dir_all(&memo);
}

fn observed(c: &mut Criterion) {
    let Some((a, b, _servers)) = servers() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    observed_lag(c, &rt, &a, &b);
}

criterion_group!(benches, bench, observed);
criterion_main!(benches);
