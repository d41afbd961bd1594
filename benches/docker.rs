//! Docker launch benchmark: `docker/launch_100_busybox_containers`.
//!
//! 100 busybox containers launched concurrently on one agent's
//! DockerContainerizer (create with limits, start, log follower), timed
//! until every one runs; each launch's latency is recorded and its p50 and
//! p99 printed. Teardown is untimed. Needs an engine and an image:
//! `ORCH_BENCH_DOCKER_HOST` (or `ORCH_TEST_DOCKER_HOST`) and
//! `ORCH_BENCH_IMAGE` (or `ORCH_TEST_BUSYBOX_IMAGE`); without them the
//! benchmark says so and measures nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orchestrator::core::{ContainerId, ContainerSpec, Containerizer};
use orchestrator::mesos::DockerContainerizer;

const CONTAINERS: usize = 100;

fn env(primary: &str, fallback: &str) -> Option<String> {
    std::env::var(primary)
        .or_else(|_| std::env::var(fallback))
        .ok()
        .filter(|v| !v.is_empty())
}

fn docker(c: &mut Criterion) {
    let (Some(host), Some(image)) = (
        env("ORCH_BENCH_DOCKER_HOST", "ORCH_TEST_DOCKER_HOST"),
        env("ORCH_BENCH_IMAGE", "ORCH_TEST_BUSYBOX_IMAGE"),
    ) else {
        eprintln!("docker bench skipped: set ORCH_BENCH_DOCKER_HOST and ORCH_BENCH_IMAGE");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let work = std::env::temp_dir().join(format!("orch-docker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let d: Arc<DockerContainerizer> = Arc::new(
        rt.block_on(DockerContainerizer::connect(&host, &work.to_string_lossy()))
            .expect("docker"),
    );
    let mut latencies: Vec<Duration> = Vec::new();
    let mut round = 0usize;

    let mut group = c.benchmark_group("docker");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CONTAINERS as u64));
    group.bench_function(format!("launch_{CONTAINERS}_busybox_containers"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let ids: Vec<ContainerId> = (0..CONTAINERS)
                    .map(|i| ContainerId::new(format!("bench-{}-{round}-{i}", std::process::id())).expect("id"))
                    .collect();
                let start = Instant::now();
                let each = rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for id in ids.clone() {
                        let (d, work, image) = (d.clone(), work.clone(), image.clone());
                        set.spawn(async move {
                            let mut spec = ContainerSpec::shell("exec sleep 300");
                            spec.image = Some(image);
                            spec.limits.mem_mb = Some(32.0);
                            spec.limits.cpus = Some(0.1);
                            let sandbox = work.join(id.as_str());
                            std::fs::create_dir_all(&sandbox).expect("sandbox");
                            let t = Instant::now();
                            d.launch(&id, &spec, &sandbox).await.expect("launch");
                            t.elapsed()
                        });
                    }
                    let mut each = Vec::with_capacity(CONTAINERS);
                    while let Some(r) = set.join_next().await {
                        each.push(r.expect("launch task"));
                    }
                    each
                });
                total += start.elapsed();
                latencies.extend(each);
                rt.block_on(async {
                    for id in &ids {
                        let _ = d.destroy(id).await;
                    }
                });
            }
            total
        })
    });
    group.finish();
    latencies.sort();
    if !latencies.is_empty() {
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "docker launch-to-running latency over {} launches: p50 {:?}, p99 {:?}, max {:?}",
            latencies.len(),
            pick(0.50),
            pick(0.99),
            latencies[latencies.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

criterion_group!(benches, docker);
criterion_main!(benches);
