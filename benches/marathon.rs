//! Marathon-style scheduler benchmarks.
//!
//! - `marathon/plan_rolling_restart_10000_instances`: the scheduler state
//!   machine alone restarts an app of 10,000 running instances under the
//!   default upgrade strategy: every step's launches, kills and readiness,
//!   until the deployment is done.
//! - `marathon/scale_0_to_10000_instances_100_agents`: one app scaled from
//!   0 to 10,000 instances through the real framework loop, the master and
//!   100 agents over loopback HTTP (their containerizer only records
//!   launches); timed until all 10,000 run. Reported as instances per second.
//! - `marathon/get_apps_embed_tasks_10000_apps_x_10`: `GET
//!   /v2/apps?embed=apps.tasks` over loopback HTTP with 10,000 apps of 10
//!   running instances each (100,000 tasks launched the same way). Target
//!   ≤ 100 ms (Marathon took 12 s at 1,000 tasks, upstream issue #1274).
//!
//! The last two run only with `ORCH_BENCH_MARATHON_AGENTS=1` (long setup).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use orchestrator::core::{
    AgentId, Attributes, Containerizer, FrameworkId, MemStore, Offer, OfferId, TaskState, TaskStatus,
};
use orchestrator::mesos::marathon::matcher::match_offer;
use orchestrator::mesos::marathon::{http, AppDefinition, Marathon, MarathonConfig, Scheduler};
use orchestrator::mesos::testing::LoopbackMaster;
use orchestrator::mesos::{Agent, AgentConfig, MasterClient, MasterConfig, RecordingContainerizer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn app(json: &str) -> AppDefinition {
    AppDefinition::from_json(json.as_bytes()).expect("app")
}

/// A scheduler with one app of `n` running instances.
fn running_app(n: u32) -> Scheduler {
    let mut s = Scheduler::new();
    let def = app(&format!(
        r#"{{"id": "/big", "cmd": "x", "cpus": 0.001, "mem": 1, "instances": {n}, "portDefinitions": []}}"#
    ));
    s.put_app(def, "v1", "d1", false).expect("put");
    settle(&mut s);
    s.finish_deployments();
    s
}

fn big_offer() -> Offer {
    Offer {
        id: OfferId::new("o").expect("id"),
        framework_id: FrameworkId::new("f").expect("id"),
        agent_id: AgentId::new("a").expect("id"),
        hostname: "h".into(),
        resources: "cpus:100000;mem:100000000".parse().expect("resources"),
        attributes: Attributes::default(),
        executor_ids: Vec::new(),
    }
}

/// Runs the scheduler until no launch or kill is wanted: every launch
/// starts and is ready at once, every kill lands. Returns the steps.
fn settle(s: &mut Scheduler) -> usize {
    let offer = big_offer();
    let now = Instant::now();
    let mut steps = 0;
    loop {
        let wanted: Vec<(AppDefinition, u32)> = s
            .launches_wanted(now)
            .into_iter()
            .map(|(a, n)| (a.clone(), n))
            .collect();
        let refs: Vec<(&AppDefinition, u32)> = wanted.iter().map(|(a, n)| (a, *n)).collect();
        let placed = s.placed();
        let launches = match_offer(&offer, &refs, &placed, |a| s.next_task_id(a));
        s.launched(&launches, "h", &Attributes::default(), now);
        for l in &launches {
            s.update(&TaskStatus::new(l.task.task_id.clone(), TaskState::Running), now);
        }
        let kills = s.kills_wanted(now);
        for (t, _) in &kills {
            s.update(&TaskStatus::new(t.clone(), TaskState::Killed), now);
        }
        steps += 1;
        if launches.is_empty() && kills.is_empty() {
            return steps;
        }
    }
}

fn plan_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("marathon");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("plan_rolling_restart_10000_instances", |b| {
        b.iter_batched(
            || running_app(10_000),
            |mut s| {
                let mut def = s.app("/big").expect("app").def.clone();
                def.cmd = Some("y".into());
                s.put_app(def, "v2", "d2", false).expect("put");
                let steps = settle(&mut s);
                assert_eq!(s.finish_deployments().len(), 1);
                steps
            },
            criterion::BatchSize::LargeInput,
        );
    });
    group.finish();
}

struct Platform {
    marathon: Marathon,
    api: String,
    _agents: Vec<Agent>,
    _master: LoopbackMaster,
}

/// A master on loopback, `agents` agents with a recording containerizer,
/// and the framework (in-process client) with its API on loopback.
async fn platform(agents: usize, resources: &str) -> Platform {
    let master = LoopbackMaster::start(Duration::from_millis(50), MasterConfig::default().heartbeat_interval).await;
    let (handle, addr) = (master.handle.clone(), master.addr.clone());
    let work = std::env::temp_dir().join(format!("orch-marathon-bench-{}", std::process::id()));
    let mut all = Vec::new();
    for i in 0..agents {
        let mut config = AgentConfig::new(
            format!("http://{addr}"),
            resources.parse().expect("resources"),
            work.join(format!("a{i}")),
        );
        config.hostname = format!("agent-{i}");
        let recorder: Arc<dyn Containerizer> = Arc::new(RecordingContainerizer::new());
        let agent = Agent::new(config, vec![recorder]);
        tokio::spawn({
            let agent = agent.clone();
            async move {
                let _ = agent.run().await;
            }
        });
        all.push(agent);
    }
    let client: Arc<dyn MasterClient> = Arc::new(handle);
    let config = MarathonConfig {
        tick: Duration::from_millis(50),
        decline_refuse: Duration::from_millis(100),
        ..MarathonConfig::default()
    };
    let (marathon, _run) = Marathon::start(client, Arc::new(MemStore::new()), config)
        .await
        .expect("marathon");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = listener.local_addr().expect("addr").to_string();
    let info = http::ApiInfo {
        master: addr,
        http_address: api.clone(),
    };
    let router = http::router(marathon.clone(), info);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Platform {
        marathon,
        api,
        _agents: all,
        _master: master,
    }
}

fn running(m: &Marathon) -> usize {
    m.with(|s| s.instances().filter(|i| i.state == TaskState::Running).count())
}

async fn wait_for(m: &Marathon, want: usize, total: usize, within: Duration) {
    let deadline = Instant::now() + within;
    let mut report = Instant::now();
    while running(m) != want || m.with(|s| s.instances().count()) != total {
        if report.elapsed() >= Duration::from_secs(15) {
            eprintln!("… {} of {want} running", running(m));
            report = Instant::now();
        }
        if Instant::now() >= deadline {
            let mut states = std::collections::BTreeMap::new();
            m.with(|s| {
                for i in s.instances() {
                    *states.entry(format!("{:?}/{}", i.state, i.killing)).or_insert(0) += 1;
                }
            });
            let wanted = m.with(|s| {
                s.launches_wanted(Instant::now())
                    .iter()
                    .map(|(a, n)| (a.id.clone(), *n))
                    .collect::<Vec<_>>()
            });
            panic!("stuck at {} running: {states:?}, wanted {wanted:?}", running(m));
        }
        // Each poll scans every instance under the scheduler's lock: not
        // so often that the poll itself slows the scheduler down.
        tokio::time::sleep(Duration::from_millis(if total > 20_000 { 200 } else { 5 })).await;
    }
}

/// 10,000 apps × 10 instances on `p`, all running; returns the
/// `GET /v2/apps?embed=apps.tasks` URL.
fn ten_thousand_apps(rt: &tokio::runtime::Runtime, p: &Platform, http: &reqwest::Client) -> String {
    rt.block_on(async {
        for i in 0..10_000 {
            let def = app(&format!(
                r#"{{"id": "/group{}/app{i}", "cmd": "sleep 1000", "cpus": 0.01, "mem": 1, "instances": 10,
                    "labels": {{"tier": "web"}}, "env": {{"MODE": "bench"}}}}"#,
                i % 100
            ));
            p.marathon.put_app(def, false).await.expect("store").expect("unlocked");
        }
        let started = Instant::now();
        wait_for(&p.marathon, 100_000, 100_000, Duration::from_secs(600)).await;
        eprintln!("100,000 instances of 10,000 apps running after {:?}", started.elapsed());
    });
    let url = format!("http://{}/v2/apps?embed=apps.tasks", p.api);
    let size = rt.block_on(async {
        http.get(&url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
            .len()
    });
    eprintln!("GET /v2/apps?embed=apps.tasks answers {size} bytes");
    url
}

fn scale_bench(c: &mut Criterion) {
    // These start 100 agents and 100,000 tasks: minutes of setup, so they
    // run only when asked for.
    if std::env::var("ORCH_BENCH_MARATHON_AGENTS").is_err() {
        eprintln!("marathon agent benchmarks skipped: set ORCH_BENCH_MARATHON_AGENTS=1 to run them");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let p = rt.block_on(platform(100, "cpus:100;mem:100000;ports:[10000-20000]"));
    let mut group = c.benchmark_group("marathon");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("scale_0_to_10000_instances_100_agents", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let zero = app(r#"{"id": "/scale", "cmd": "x", "cpus": 0.01, "mem": 1, "instances": 0}"#);
                    p.marathon
                        .put_app(zero.clone(), true)
                        .await
                        .expect("store")
                        .expect("unlocked");
                    wait_for(&p.marathon, 0, 0, Duration::from_secs(60)).await;
                    let mut many = zero;
                    many.instances = 10_000;
                    let started = Instant::now();
                    p.marathon.put_app(many, true).await.expect("store").expect("unlocked");
                    wait_for(&p.marathon, 10_000, 10_000, Duration::from_secs(40)).await;
                    let took = started.elapsed();
                    eprintln!(
                        "0 → 10,000 instances in {took:?} ({:.0}/s)",
                        10_000.0 / took.as_secs_f64()
                    );
                    total += took;
                    // Untimed: back to nothing.
                    p.marathon
                        .delete_app("/scale", true)
                        .await
                        .expect("store")
                        .expect("unlocked");
                    wait_for(&p.marathon, 0, 0, Duration::from_secs(120)).await;
                    while p.marathon.with(|s| s.app("/scale").is_some()) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                total
            })
        });
    });

    group.sampling_mode(SamplingMode::Auto).sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(100_000));
    // Its setup (100,000 tasks, minutes) runs only when this benchmark is
    // not filtered out.
    let http = reqwest::Client::new();
    let mut url = None;
    group.bench_function("get_apps_embed_tasks_10000_apps_x_10", |b| {
        let url = url.get_or_insert_with(|| ten_thousand_apps(&rt, &p, &http)).clone();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let body = http.get(&url).send().await.expect("get").bytes().await.expect("body");
                    assert!(body.len() > 1_000_000);
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, plan_bench, scale_bench);
criterion_main!(benches);
