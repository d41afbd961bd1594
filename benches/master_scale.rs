//! The master at 100,000 running tasks on 1,000 agents, as users run it:
//! the release `master` in its own process; 1,000 agents (recording
//! containerizer) and a Marathon-style framework in this process, both
//! speaking HTTP to it. The framework launches 100 apps × 1,000 instances.
//!
//! Reported:
//! - the time from the apps' creation until all 100,000 run, as the
//!   framework sees them (printed; one run, minutes of setup);
//! - the master's resident memory before the launches and with 100,000
//!   tasks running, and per task (`/proc/<pid>/status`, printed);
//! - `master/get_state_100000_tasks_1000_agents` (criterion): `GET
//!   /master/state` whole, from a separate client, with its size printed.
//!
//! Runs only with `ORCH_BENCH_MASTER_SCALE=1` (about two minutes of setup).
//! The bench builds the release `master` example first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use orchestrator::core::{Containerizer, MemStore, TaskState};
use orchestrator::mesos::marathon::{AppDefinition, Marathon, MarathonConfig};
use orchestrator::mesos::{Agent, AgentConfig, HttpMasterClient, MasterClient, RecordingContainerizer};
use orchestrator_testkit::free_port;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AGENTS: usize = 1_000;
const APPS: usize = 100;
const PER_APP: u32 = 1_000;
const TASKS: usize = APPS * PER_APP as usize;

fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples")
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn running(m: &Marathon) -> usize {
    m.with(|s| s.instances().filter(|i| i.state == TaskState::Running).count())
}

fn master_scale(c: &mut Criterion) {
    if std::env::var("ORCH_BENCH_MASTER_SCALE").is_err() {
        eprintln!("master_scale skipped: set ORCH_BENCH_MASTER_SCALE=1 to run it");
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "master"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(built, "`cargo build --release --example master` failed");
    orchestrator_testkit::hostload::raise_fd_limit();
    let port = free_port();
    let master = Proc(
        Command::new(examples_dir().join("master"))
            .args(["--port", &port.to_string(), "--allocation-interval", "100ms"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the master"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let work = std::env::temp_dir().join(format!("orch-master-scale-{}", std::process::id()));
    let (marathon, _agents) = rt.block_on(async {
        let state = |http: reqwest::Client, url: String| async move {
            let r = http.get(&url).send().await.ok()?;
            r.json::<serde_json::Value>().await.ok()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the master did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut agents = Vec::new();
        for i in 0..AGENTS {
            let mut config = AgentConfig::new(
                base.clone(),
                "cpus:2;mem:100".parse().expect("resources"),
                work.join(format!("a{i}")),
            );
            config.hostname = format!("agent-{i}");
            let recorder: Arc<dyn Containerizer> = Arc::new(RecordingContainerizer::new());
            let agent = Agent::new(config, vec![recorder]);
            tokio::spawn(agent.clone().run());
            agents.push(agent);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = state(http.clone(), format!("{base}/master/state")).await;
            if s.is_some_and(|s| s["activated_slaves"] == AGENTS) {
                break;
            }
            assert!(Instant::now() < deadline, "the agents did not all register");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let client: Arc<dyn MasterClient> = Arc::new(HttpMasterClient::new(&base));
        let config = MarathonConfig {
            tick: Duration::from_millis(50),
            decline_refuse: Duration::from_millis(100),
            ..MarathonConfig::default()
        };
        let (marathon, _run) = Marathon::start(client, Arc::new(MemStore::new()), config)
            .await
            .expect("marathon");
        while marathon.framework_id().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (marathon, agents)
    });
    let before = rss(master.0.id());
    rt.block_on(async {
        let started = Instant::now();
        for a in 0..APPS {
            let def = AppDefinition::from_json(
                format!(
                    r#"{{"id": "/scale/app{a}", "cmd": "sleep 1000", "cpus": 0.01, "mem": 1, "instances": {PER_APP}, "portDefinitions": []}}"#
                )
                .as_bytes(),
            )
            .expect("app");
            marathon.put_app(def, false).await.expect("store").expect("unlocked");
        }
        let deadline = started + Duration::from_secs(600);
        let mut report = Instant::now();
        while running(&marathon) < TASKS {
            assert!(Instant::now() < deadline, "stuck at {} running", running(&marathon));
            if report.elapsed() > Duration::from_secs(10) {
                eprintln!("… {} of {TASKS} running", running(&marathon));
                report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = started.elapsed();
        eprintln!(
            "{TASKS} tasks of {APPS} apps running on {AGENTS} agents after {took:?} ({:.0}/s, framework over HTTP)",
            TASKS as f64 / took.as_secs_f64()
        );
    });
    // Let the last acknowledgements and offers settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let after = rss(master.0.id());
    eprintln!(
        "master RSS: {:.1} MiB with {AGENTS} agents and no task, {:.1} MiB with {TASKS} running: {:.0} bytes per task",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / TASKS as f64
    );
    let url = format!("{base}/master/state");
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
    eprintln!("GET /master/state answers {size} bytes at {TASKS} tasks");
    let mut group = c.benchmark_group("master");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(TASKS as u64));
    group.bench_function("get_state_100000_tasks_1000_agents", |b| {
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
    drop(master);
    let _ = std::fs::remove_dir_all(&work);
}

criterion_group!(benches, master_scale);
criterion_main!(benches);
