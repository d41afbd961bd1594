//! The Mesos-DNS-compatible server under load, through the real protocol:
//! a master state of 1,000 apps × 10 tasks on 100 agents is served over
//! HTTP on loopback, the server follows it, and a separate client sends
//! UDP queries with 64 in flight.
//!
//! - `dns/query_a_1000_apps_x_10_tasks`: A queries for random apps (each
//!   answer one agent address per task's agent);
//! - `dns/query_srv_1000_apps_x_10_tasks`: SRV queries for random apps
//!   (ten targets each, with their addresses as additionals);
//! - `dns/parse_and_build_1000_apps_x_10_tasks`: reading the state and
//!   building its record set, the follower's work per refresh;
//! - `dns/running_to_answer`: from the master listing a new running task
//!   (and saying so on its operator event stream) to the DNS answering its
//!   name.
//!
//! Per-query time is the median time of a batch divided by its size;
//! queries/s is its inverse, printed after each run.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::{get, post};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orchestrator::discovery::records::{RecordSet, Resolved};
use orchestrator::discovery::state::MasterState;
use orchestrator::discovery::{Config, Discovery};
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const APPS: usize = 1_000;
const TASKS: usize = 10;
const AGENTS: usize = 100;
const IN_FLIGHT: usize = 64;

fn state(extra: bool) -> Value {
    let slaves: Vec<Value> = (0..AGENTS)
        .map(|a| json!({"id": format!("M-S{a}"), "hostname": format!("10.0.{}.{}", a / 250, a % 250 + 1)}))
        .collect();
    let mut tasks = Vec::with_capacity(APPS * TASKS + 1);
    for app in 0..APPS {
        for t in 0..TASKS {
            let port = 31000 + (app * TASKS + t) % 1000;
            tasks.push(json!({
                "id": format!("app{app}.{t}"), "name": format!("app{app}.bench"),
                "slave_id": format!("M-S{}", (app * TASKS + t) % AGENTS), "state": "TASK_RUNNING",
                "resources": {"ports": format!("[{port}-{port}]")},
            }));
        }
    }
    if extra {
        tasks.push(
            json!({"id": "late.1", "name": "late", "slave_id": "M-S0", "state": "TASK_RUNNING",
                          "resources": {"ports": "[32000-32000]"}}),
        );
    }
    json!({"slaves": slaves, "frameworks": [{"id": "F1", "name": "marathon", "tasks": tasks}]})
}

/// A DNS query for `name` of type `qtype` (1: A, 33: SRV) with id `id`,
/// with EDNS as `dig` sends it.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    // RD; one question; one additional record: EDNS's OPT.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len()).expect("short labels"));
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    // OPT: root name, type 41, a 4,096-byte payload, no options (as dig asks).
    q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    q
}

/// Sends `n` queries (names from `name(i)`), `IN_FLIGHT` at a time, and
/// checks every answer is a NOERROR with answers.
fn batch(socket: &UdpSocket, n: usize, qtype: u16, name: impl Fn(usize) -> String) {
    let mut buf = [0u8; 4096];
    let mut sent = 0;
    while sent < n {
        let k = IN_FLIGHT.min(n - sent);
        for i in 0..k {
            let id = u16::try_from((sent + i) % 65_536).unwrap_or(0);
            socket.send(&query(id, &name(sent + i), qtype)).expect("send");
        }
        for _ in 0..k {
            let len = socket.recv(&mut buf).expect("an answer within the timeout");
            assert!(len >= 12 && buf[3] & 0x0f == 0 && buf[7] > 0, "NOERROR with answers");
        }
        sent += k;
    }
}

fn dns(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let late = Arc::new(AtomicBool::new(false));
    // The master's operator stream: one record per change, as the master's
    // `POST /api/v1` SUBSCRIBE sends TASK_ADDED/TASK_UPDATED.
    let (changes, _) = tokio::sync::broadcast::channel::<()>(16);
    let states = Arc::new((state(false).to_string(), state(true).to_string()));
    let (discovery, master) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let master = listener.local_addr().unwrap();
        let (late, states, feed) = (late.clone(), states.clone(), changes.clone());
        let record = |json: &str| format!("{}\n{json}", json.len());
        let app = axum::Router::new()
            .route(
                "/master/state",
                get(move || {
                    let body = if late.load(Ordering::SeqCst) {
                        states.1.clone()
                    } else {
                        states.0.clone()
                    };
                    async move { ([("content-type", "application/json")], body) }
                }),
            )
            .route(
                "/api/v1",
                post(move || {
                    let rx = feed.subscribe();
                    async move {
                        let first = record(r#"{"type":"SUBSCRIBED","subscribed":{}}"#);
                        let rest = futures_util::stream::unfold(rx, move |mut rx| async move {
                            rx.recv().await.ok()?;
                            Some((record(r#"{"type":"TASK_UPDATED","task_updated":{}}"#), rx))
                        });
                        let stream = futures_util::StreamExt::map(
                            futures_util::StreamExt::chain(futures_util::stream::once(async move { first }), rest),
                            Ok::<_, std::convert::Infallible>,
                        );
                        Body::from_stream(stream)
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = Config {
            masters: vec![format!("http://{master}")],
            ..Config::default()
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let discovery = Discovery::start(config, any, any).await.unwrap();
        let mut records = discovery.subscribe();
        records.wait_for(|r| r.a.len() > APPS).await.unwrap();
        (discovery, master)
    });
    println!(
        "dns: {} names for {APPS} apps × {TASKS} tasks (master state at {master}, {} bytes)",
        discovery.records().len(),
        states.0.len()
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(discovery.dns_addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut group = c.benchmark_group("dns");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next_app = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % APPS as u64).unwrap_or(0)
    };
    let apps: Vec<usize> = (0..65_536).map(|_| next_app()).collect();
    for (name, qtype, form) in [
        ("query_a_1000_apps_x_10_tasks", 1u16, "app{}-bench.marathon.mesos"),
        ("query_srv_1000_apps_x_10_tasks", 33, "_app{}-bench._tcp.marathon.mesos"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let n = usize::try_from(iters).unwrap_or(usize::MAX);
                let start = Instant::now();
                batch(&socket, n, qtype, |i| {
                    form.replace("{}", &apps[i % apps.len()].to_string())
                });
                start.elapsed()
            });
        });
    }
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.bench_function("parse_and_build_1000_apps_x_10_tasks", |b| {
        let config = Config::default();
        b.iter(|| {
            let state: MasterState = serde_json::from_str(&states.0).unwrap();
            RecordSet::build(&state, &Resolved::default(), &config)
        });
    });
    group.bench_function("running_to_answer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut buf = [0u8; 512];
            for i in 0..iters {
                // At a random point of the follower's cycle, not just after a read.
                std::thread::sleep(Duration::from_millis((i * 7919) % 250));
                late.store(true, Ordering::SeqCst);
                let _ = changes.send(());
                let start = Instant::now();
                loop {
                    socket.send(&query(7, "late.marathon.mesos", 1)).unwrap();
                    let len = socket.recv(&mut buf).unwrap();
                    if len >= 12 && buf[3] & 0x0f == 0 && buf[7] > 0 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                total += start.elapsed();
                // Back to the state without it, and wait until it is gone.
                late.store(false, Ordering::SeqCst);
                let _ = changes.send(());
                loop {
                    socket.send(&query(8, "late.marathon.mesos", 1)).unwrap();
                    let len = socket.recv(&mut buf).unwrap();
                    if len >= 12 && buf[3] & 0x0f == 3 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            total
        });
    });
    group.finish();
    runtime.block_on(discovery.shutdown());
}

criterion_group!(benches, dns);
criterion_main!(benches);
