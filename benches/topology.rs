//! The topology app at the size of a large cluster: 1,000 hosts, 10,000
//! containers, 100,000 processes and 200,000 connections from the
//! synthetic cluster generator (`orchestrator_topology::synthetic`).
//!
//! - `topology/ingest_round_1000_reports`: one round of 1,000 decoded full
//!   reports into a store that holds the previous round (target ≤ 200 ms);
//! - `topology/decode_report`: decoding one host's encoded report (the
//!   HTTP handlers do this in parallel, before the store lock);
//! - `topology/render/<view>`: each view with default filters (containers
//!   target ≤ 20 ms). Freeing the render is not timed: the app frees
//!   replaced renders on a thread of its own, off the request path;
//!   `render_and_free/processes` shows the cost with the free;
//! - `topology/render_all_views`: the six together (target ≤ 100 ms),
//!   freed likewise;
//! - `topology/search_containers`: a label selector, a metric threshold and
//!   text over the containers view;
//! - `topology/ws_diff_containers`: the diff between two renders a round
//!   apart, serialised as WebSocket clients get it;
//! - `topology_live/report_to_websocket_containers`: a real app server on
//!   loopback holding the whole cluster; one probe posts a delta over HTTP
//!   and the time runs until a WebSocket client of the containers view
//!   receives the diff carrying that probe's container (target p99
//!   ≤ 100 ms; the p50, p99 and max are printed).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use orchestrator::core::report::{decode, encode, Limits};
use orchestrator::topology::search::Query;
use orchestrator::topology::synthetic::{Cluster, ClusterSpec};
use orchestrator::topology::{diff::diff, render, Filters, ReportStore, StoreConfig, View};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_800_000_000_000;

/// A store in steady state: two rounds in, so every connection's far end
/// was known when its report came (as after the app's first interval).
fn loaded(cluster: &Cluster) -> ReportStore {
    let mut store = ReportStore::new(StoreConfig::default());
    for round in 0..2 {
        let ts = T0 + round * 15_000;
        for r in cluster.round(ts, round) {
            store.ingest(r, ts).expect("ingest");
        }
    }
    store
}

fn benches(c: &mut Criterion) {
    let cluster = Cluster::new(ClusterSpec::LARGE);
    let mut store = loaded(&cluster);
    let mut group = c.benchmark_group("topology");
    group.sample_size(10).measurement_time(Duration::from_secs(20));

    let next_round = cluster.round(T0 + 30_000, 2);
    group.bench_function("ingest_round_1000_reports", |b| {
        b.iter_batched(
            || next_round.clone(),
            |round| {
                let mut old = Vec::with_capacity(round.len());
                for r in round {
                    old.push(store.ingest(r, T0 + 30_000).expect("ingest").1);
                }
                old
            },
            BatchSize::PerIteration,
        );
    });
    let encoded = encode(&next_round[0]).expect("encode");
    eprintln!("one host's report: {} bytes encoded", encoded.len());
    group.bench_function("decode_report", |b| {
        b.iter(|| decode(&encoded, Limits::default()).expect("decode"))
    });

    let now = T0 + 30_000;
    for view in View::ALL {
        let r = render(&store, view, &Filters::default(), now);
        eprintln!("{}: {} nodes, {} edges", view.id(), r.len(), r.edge_count());
        group.bench_function(format!("render/{}", view.id()), |b| {
            b.iter_with_large_drop(|| render(&store, view, &Filters::default(), now));
        });
    }
    group.bench_function("render_and_free/processes", |b| {
        b.iter(|| render(&store, View::Processes, &Filters::default(), now).len());
    });
    group.bench_function("render_all_views", |b| {
        b.iter_with_large_drop(|| {
            View::ALL
                .into_iter()
                .map(|v| render(&store, v, &Filters::default(), now))
                .collect::<Vec<_>>()
        });
    });
    let search = Filters {
        query: Query::parse("tier=db cpu>50 app").expect("query"),
        ..Filters::default()
    };
    eprintln!(
        "search finds {} containers",
        render(&store, View::Containers, &search, now).len()
    );
    group.bench_function("search_containers", |b| {
        b.iter_with_large_drop(|| render(&store, View::Containers, &search, now));
    });
    let before = render(&store, View::Containers, &Filters::default(), now);
    for r in cluster.round(T0 + 45_000, 3) {
        store.ingest(r, T0 + 45_000).expect("ingest");
    }
    let after = render(&store, View::Containers, &Filters::default(), T0 + 45_000);
    group.bench_function("ws_diff_containers", |b| {
        b.iter(|| serde_json::to_vec(&diff(Some(&before), &after)).expect("json").len());
    });
    group.finish();
}

fn live(c: &mut Criterion) {
    use futures_util::StreamExt;
    use orchestrator::topology::server::{App, AppConfig};
    use orchestrator::topology::synthetic::container_id;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = Cluster::new(ClusterSpec::LARGE);
    let app = App::new(AppConfig::default()).expect("app");
    let now = || orchestrator::topology::now_ms();
    for round in 0..2 {
        for h in 0..cluster.hosts() {
            let bytes = encode(&cluster.report(h, now(), round)).expect("encode");
            app.ingest_bytes(&bytes).expect("ingest");
        }
    }
    let (base, mut ws) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let router = app.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{base}/api/topology/containers/ws"))
            .await
            .expect("websocket");
        let _reset = ws.next().await.expect("reset").expect("reset");
        (base, ws)
    });
    let http = reqwest::Client::new();
    let url = format!("http://{base}/api/v1/reports");
    let mut rounds = vec![2u64; cluster.hosts()];
    let mut next_host = 0usize;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    let mut group = c.benchmark_group("topology_live");
    group.sample_size(20).measurement_time(Duration::from_secs(20));
    group.bench_function("report_to_websocket_containers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let h = next_host;
                next_host = (next_host + 1) % cluster.hosts();
                let round = rounds[h];
                rounds[h] += 1;
                let ts = now();
                let delta = cluster
                    .report(h, ts, round)
                    .delta_since(&cluster.report(h, ts, round - 1));
                let body = encode(&delta).expect("encode");
                let watched = container_id(h, 0);
                let elapsed = rt.block_on(async {
                    let started = Instant::now();
                    let r = http
                        .post(&url)
                        .header("content-type", orchestrator::core::report::CONTENT_TYPE)
                        .body(body)
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(r.status(), 200);
                    loop {
                        let msg = ws.next().await.expect("open").expect("message");
                        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                            if t.contains(&watched) {
                                return started.elapsed();
                            }
                        }
                    }
                });
                let _ = hist.record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
                total += elapsed;
            }
            total
        });
    });
    group.finish();
    eprintln!(
        "report to WebSocket: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} reports",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        hist.len()
    );
}

criterion_group!(topology, benches, live);
criterion_main!(topology);
