//! Probe benchmarks on a busy host: 1,000 extra processes, 10,000
//! established loopback TCP connections and 50 busybox containers.
//!
//! - `probe/full_cycle_cpu`: CPU time (user + system, all probe threads) of
//!   one steady-state cycle that refreshes every source — host, processes,
//!   network, containers, the join, the delta — and hands it to the
//!   publisher, as the running probe does when its budget allows (there is
//!   no app here, so no encoding: `encode_full_report` measures that).
//!   Target ≤ 50 ms.
//! - `probe/cold_cycle_cpu`: the same with fresh collectors (the first
//!   cycle after start: every process read in full, every socket walked).
//! - `probe/full_cycle_wall`: wall time of a steady-state cycle (it waits
//!   for the engine's one-shot stats).
//! - `probe/encode_full_report`: encoding that cycle's full report.
//!
//! Containers come from `ORCH_BENCH_DOCKER_HOST` (or `ORCH_TEST_DOCKER_HOST`)
//! with `ORCH_BENCH_IMAGE` (or `ORCH_TEST_BUSYBOX_IMAGE`); without them the
//! benchmarks run without containers and say so.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrator::core::report::encode;
use orchestrator::probe::{Probe, ProbeConfig};
use orchestrator_testkit::hostload::HostLoad;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(primary: &str, fallback: &str) -> Option<String> {
    std::env::var(primary)
        .ok()
        .or_else(|| std::env::var(fallback).ok())
        .filter(|v| !v.is_empty())
}

/// CPU time of this process so far.
fn cpu_time() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn probe_bench(c: &mut Criterion) {
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // As the probe binary does (examples/support: `no_huge_pages`).
    let _ = nix::sys::prctl::set_thp_disable(true);
    let mut load = HostLoad::spawn(1_000, 10_000).expect("1,000 processes and 10,000 connections");
    let docker = env("ORCH_BENCH_DOCKER_HOST", "ORCH_TEST_DOCKER_HOST");
    if let (Some(host), Some(image)) = (&docker, env("ORCH_BENCH_IMAGE", "ORCH_TEST_BUSYBOX_IMAGE")) {
        load = load.with_containers(host, &image, 50).expect("50 containers");
    } else {
        eprintln!("probe bench runs without containers: set ORCH_BENCH_DOCKER_HOST and ORCH_BENCH_IMAGE");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let hostname = orchestrator::probe::HostInfo::collect().expect("host").hostname;
    let config = || {
        let mut config = ProbeConfig::new(&hostname);
        config.docker_host = docker.clone();
        config
    };
    let mut probe = rt.block_on(Probe::start(config()));
    // Warm: the second cycle has every cache and CPU counter in place.
    let report = rt.block_on(async {
        probe.collect().await;
        probe.collect().await
    });
    let t = &report.topologies;
    eprintln!(
        "one report: {} processes, {} endpoints, {} containers ({} started), {} bytes encoded",
        t.process.nodes.len(),
        t.endpoint.nodes.len(),
        t.container.nodes.len(),
        load.containers(),
        encode(&report).map(|b| b.len()).unwrap_or(0)
    );
    assert!(t.process.nodes.len() >= 1_000 && t.endpoint.nodes.len() >= 10_000);
    for _ in 0..3 {
        rt.block_on(probe.refresh_all());
        eprintln!(
            "collector wall times in a cycle (µs): {:?}",
            probe.stats().collector_us.lock()
        );
    }

    let mut group = c.benchmark_group("probe");
    group.sample_size(30).measurement_time(Duration::from_secs(20));
    group.bench_function("full_cycle_cpu", |b| {
        b.iter_custom(|iters| {
            let before = cpu_time();
            for _ in 0..iters {
                rt.block_on(probe.refresh_all());
                probe.publish();
            }
            cpu_time() - before
        });
    });
    group.bench_function("full_cycle_wall", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                rt.block_on(probe.refresh_all());
                probe.publish();
            }
            started.elapsed()
        });
    });
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.bench_function("cold_cycle_cpu", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut fresh = rt.block_on(Probe::start(config()));
                let before = cpu_time();
                rt.block_on(fresh.refresh_all());
                total += cpu_time() - before;
            }
            total
        });
    });
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("encode_full_report", |b| b.iter(|| encode(&report).expect("encode")));
    group.finish();
    drop(load);
}

criterion_group!(benches, probe_bench);
criterion_main!(benches);
