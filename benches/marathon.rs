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
//! - `marathon/scale_0_to_1000_sleeps_10_agents_process`: 1,000 real
//!   `sleep` processes through the process containerizer (cgroups when the
//!   machine has them) on 10 agents; beside it
//!   `marathon/scale_0_to_1000_instances_10_agents_recording` (the same
//!   without processes: scheduler, master and status round trips) and
//!   `process_containerizer/launch_1000_sleeps_{cgroups,no_cgroups}` (the
//!   containerizer alone: fork/exec, and the cgroup set-up on top).
//!
//! All but the first run only with `ORCH_BENCH_MARATHON_AGENTS=1` (long setup).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use orchestrator::core::{
    AgentId, Attributes, ContainerId, Containerizer, FrameworkId, MemStore, Offer, OfferId, TaskState, TaskStatus,
};
use orchestrator::mesos::marathon::matcher::match_offer;
use orchestrator::mesos::marathon::{http, AppDefinition, Marathon, MarathonConfig, Scheduler};
use orchestrator::mesos::testing::LoopbackMaster;
use orchestrator::mesos::{
    Agent, AgentConfig, MasterClient, MasterConfig, ProcessContainerizer, RecordingContainerizer,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

impl Drop for Platform {
    fn drop(&mut self) {
        // Sandboxes of every iteration: gigabytes after a long run.
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

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
    /// The agents' work directories (removed when the platform is dropped).
    work: std::path::PathBuf,
    api: String,
    _agents: Vec<Agent>,
    _master: LoopbackMaster,
}

/// A master on loopback, `agents` agents whose containerizer `make` gives
/// (from the agent's work directory), and the framework (in-process
/// client) with its API on loopback.
async fn platform(
    name: &str,
    agents: usize,
    resources: &str,
    make: impl Fn(&std::path::Path) -> Arc<dyn Containerizer>,
) -> Platform {
    let master = LoopbackMaster::start(Duration::from_millis(50), MasterConfig::default().heartbeat_interval).await;
    let (handle, addr) = (master.handle.clone(), master.addr.clone());
    let work = std::env::temp_dir().join(format!("orch-marathon-bench-{}-{name}", std::process::id()));
    let mut all = Vec::new();
    for i in 0..agents {
        let mut config = AgentConfig::new(
            format!("http://{addr}"),
            resources.parse().expect("resources"),
            work.join(format!("a{i}")),
        );
        config.hostname = format!("agent-{i}");
        let containerizer = make(&config.work_dir);
        let agent = Agent::new(config, vec![containerizer]);
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
        work,
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

const SCALE_APP: &str = r#"{"id": "/scale", "cmd": "x", "cpus": 0.01, "mem": 1, "instances": 0}"#;

/// How long one scale took each way.
struct Scaled {
    /// 0 → n, until all run as the scheduler sees them.
    up: Duration,
    /// n → 0, until the scheduler has seen every instance end.
    down: Duration,
}

/// Scales `/scale` (defined by `json`, with 0 instances) to `n` instances
/// and times it until all run, as the scheduler sees them; then back to 0,
/// timed until every instance has ended; then, untimed, deletes it.
async fn scale_once(p: &Platform, json: &str, n: u32, within: Duration) -> Scaled {
    let zero = app(json);
    p.marathon
        .put_app(zero.clone(), true)
        .await
        .expect("store")
        .expect("unlocked");
    wait_for(&p.marathon, 0, 0, Duration::from_secs(60)).await;
    let mut many = zero.clone();
    many.instances = n;
    let started = Instant::now();
    p.marathon.put_app(many, true).await.expect("store").expect("unlocked");
    let n = n as usize;
    wait_for(&p.marathon, n, n, within).await;
    let up = started.elapsed();
    let started = Instant::now();
    p.marathon.put_app(zero, true).await.expect("store").expect("unlocked");
    wait_for(&p.marathon, 0, 0, within * 3).await;
    let down = started.elapsed();
    eprintln!(
        "0 → {n} instances in {up:?} ({:.0}/s), {n} → 0 in {down:?} ({:.0}/s)",
        n as f64 / up.as_secs_f64(),
        n as f64 / down.as_secs_f64()
    );
    p.marathon
        .delete_app("/scale", true)
        .await
        .expect("store")
        .expect("unlocked");
    while p.marathon.with(|s| s.app("/scale").is_some()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Scaled { up, down }
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
    let p = rt.block_on(platform(
        "scale",
        100,
        "cpus:100;mem:100000;ports:[10000-20000]",
        |_| Arc::new(RecordingContainerizer::new()),
    ));
    let mut group = c.benchmark_group("marathon");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(10_000));
    for (name, way) in [
        (
            "scale_0_to_10000_instances_100_agents",
            (|s: Scaled| s.up) as fn(Scaled) -> Duration,
        ),
        ("scale_10000_to_0_instances_100_agents", |s: Scaled| s.down),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += way(scale_once(&p, SCALE_APP, 10_000, Duration::from_secs(40)).await);
                    }
                    total
                })
            });
        });
    }

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

/// 1,000 real `sleep` processes through the process containerizer on 10
/// agents, beside the same scale on recording agents and the
/// containerizer alone with and without cgroups: where the time goes.
fn process_bench(c: &mut Criterion) {
    if std::env::var("ORCH_BENCH_MARATHON_AGENTS").is_err() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let resources = "cpus:100;mem:100000;ports:[10000-20000]";
    let recording = rt.block_on(platform("rec10", 10, resources, |_| {
        Arc::new(RecordingContainerizer::new())
    }));
    let process = rt.block_on(platform("proc10", 10, resources, |dir| {
        Arc::new(ProcessContainerizer::new(dir).expect("process containerizer"))
    }));
    let sleeps = r#"{"id": "/scale", "cmd": "sleep 600", "cpus": 0.01, "mem": 16, "instances": 0}"#;
    let mut group = c.benchmark_group("marathon");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("scale_0_to_1000_instances_10_agents_recording", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += scale_once(&recording, SCALE_APP, 1_000, Duration::from_secs(30))
                        .await
                        .up;
                }
                total
            })
        });
    });
    group.bench_function("scale_0_to_1000_sleeps_10_agents_process", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += scale_once(&process, sleeps, 1_000, Duration::from_secs(60)).await.up;
                }
                total
            })
        });
    });
    group.finish();

    // The containerizer alone: 1,000 launches at once, as an agent given
    // them in one go starts them; timed until every launch returned.
    let mut group = c.benchmark_group("process_containerizer");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(1_000));
    let work = std::env::temp_dir().join(format!("orch-process-bench-{}", std::process::id()));
    for cgroups in [true, false] {
        let dir = work.join(if cgroups { "cg" } else { "plain" });
        std::fs::create_dir_all(&dir).expect("work dir");
        let containerizer = if cgroups {
            ProcessContainerizer::new(&dir)
        } else {
            ProcessContainerizer::with_cgroups(&dir, None)
        }
        .expect("process containerizer");
        if cgroups && containerizer.cgroups().is_none() {
            eprintln!("process_containerizer/launch_1000_sleeps_cgroups skipped: no writable cgroup hierarchy");
            continue;
        }
        let name = if cgroups {
            "launch_1000_sleeps_cgroups"
        } else {
            "launch_1000_sleeps_no_cgroups"
        };
        let mut round = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let spec = orchestrator::core::ContainerSpec::shell("sleep 600");
                        let ids: Vec<_> = (0..1_000)
                            .map(|i| ContainerId::new(format!("r{round}-t{i}")).expect("id"))
                            .collect();
                        let sandboxes: Vec<_> = ids
                            .iter()
                            .map(|id| {
                                let s = dir.join("sandboxes").join(id.as_str());
                                std::fs::create_dir_all(&s).expect("sandbox");
                                s
                            })
                            .collect();
                        let started = Instant::now();
                        let launches = ids
                            .iter()
                            .zip(&sandboxes)
                            .map(|(id, sandbox)| containerizer.launch(id, &spec, sandbox));
                        for r in futures_util::future::join_all(launches).await {
                            r.expect("launch");
                        }
                        total += started.elapsed();
                        // Untimed: every sleep stopped and its container gone.
                        let ends = ids.iter().map(|id| containerizer.destroy(id));
                        futures_util::future::join_all(ends).await;
                        let _ = std::fs::remove_dir_all(dir.join("sandboxes"));
                    }
                    total
                })
            });
        });
    }
    group.finish();
    if let Some(cg) = ProcessContainerizer::new(work.join("cg"))
        .ok()
        .and_then(|c| c.cgroups().cloned())
    {
        cg.remove_if_empty();
    }
    let _ = std::fs::remove_dir_all(&work);
}

criterion_group!(benches, plan_bench, scale_bench, process_bench);
criterion_main!(benches);
