//! Control-plane launch throughput: `launch/1000_agents_x_100000_tasks`.
//!
//! A master (the real state machine and allocator) with 1,000 in-process
//! agents whose containerizer only records launches, and one framework
//! that accepts every offer with as many `cpus:0.1;mem:32` tasks as fit.
//! Each launch goes through `ContainerSpec::from_task` and the
//! containerizer as on a real agent, and its `TASK_RUNNING` update back
//! through the master. Timed: from the first allocation until all 100,000
//! tasks are running (setup untimed). Criterion reports tasks per second;
//! the target is 20,000/s (Nomad's C1M: about 3,750/s; Marathon on Mesos:
//! 35-555/s).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orchestrator::core::{
    AgentId, AgentInfo, CommandInfo, ContainerId, ContainerSpec, Containerizer, FrameworkId, FrameworkInfo, TaskId,
    TaskInfo, TaskState, TaskStatus,
};
use orchestrator::mesos::api::scheduler::{OfferOperation, SchedulerCall};
use orchestrator::mesos::{DrfAllocator, Effect, Master, MasterConfig, RecordingContainerizer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AGENTS: usize = 1_000;
const TASKS: usize = 100_000;

struct Cluster {
    master: Master,
    containerizers: HashMap<AgentId, Arc<RecordingContainerizer>>,
    framework: FrameworkId,
}

fn cluster() -> Cluster {
    let now = Instant::now();
    let mut master = Master::new(MasterConfig::default(), DrfAllocator::default());
    let mut containerizers = HashMap::new();
    for i in 0..AGENTS {
        let info = AgentInfo {
            hostname: format!("agent-{i}"),
            port: Some(5051),
            resources: "cpus:10;mem:4096".parse().expect("resources"),
            attributes: Default::default(),
            id: None,
        };
        let id = master.register_agent(info, now).expect("agent");
        containerizers.insert(id, Arc::new(RecordingContainerizer::new()));
    }
    let (framework, _) = master
        .subscribe(FrameworkInfo::new("bench", "launcher"), &[], now)
        .expect("subscribe");
    Cluster {
        master,
        containerizers,
        framework,
    }
}

/// Runs the scenario once; returns how long it took.
fn launch_all(c: &mut Cluster, rt: &tokio::runtime::Runtime) -> Duration {
    let start = Instant::now();
    let mut now = Instant::now();
    let (mut next, mut running) = (0usize, 0usize);
    let resources = "cpus:0.1;mem:32"
        .parse::<orchestrator::core::Resources>()
        .expect("resources");
    while running < TASKS {
        let effects = c.master.allocate(now);
        let offers = effects.into_iter().flat_map(|e| match e {
            Effect::ToFramework { event, .. } => event.offers.map(|o| o.offers).unwrap_or_default(),
            _ => Vec::new(),
        });
        for offer in offers.collect::<Vec<_>>() {
            let fit = ((offer.resources.cpus() / 0.1).round() as usize).min(TASKS - next);
            let tasks: Vec<TaskInfo> = (0..fit)
                .map(|_| {
                    next += 1;
                    TaskInfo {
                        name: "t".into(),
                        task_id: TaskId::new(format!("task-{next}")).expect("id"),
                        agent_id: offer.agent_id.clone(),
                        resources: resources.clone(),
                        command: Some(CommandInfo::shell("true")),
                        container: None,
                        kill_policy: None,
                        labels: Default::default(),
                    }
                })
                .collect();
            let call = SchedulerCall::Accept {
                offer_ids: vec![offer.id.clone()],
                operations: vec![OfferOperation::Launch(tasks)],
                refuse: Duration::from_secs(5),
            };
            let effects = c.master.call(Some(c.framework.clone()), call, now).expect("accept");
            for effect in effects {
                let Effect::Launch { agent_id, task, .. } = effect else {
                    continue;
                };
                let spec = ContainerSpec::from_task(&task).expect("spec");
                let container = ContainerId::new(task.task_id.as_str()).expect("id");
                let containerizer = &c.containerizers[&agent_id];
                rt.block_on(containerizer.launch(&container, &spec, Path::new("/")))
                    .expect("launch");
                let mut status = TaskStatus::new(task.task_id.clone(), TaskState::Running);
                status.uuid = Some(container.to_string());
                c.master
                    .status_update(&agent_id, &c.framework, status, now)
                    .expect("update");
                running += 1;
            }
        }
        now += Duration::from_millis(10);
    }
    start.elapsed()
}

fn launch(c: &mut Criterion) {
    let mut group = c.benchmark_group("launch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TASKS as u64));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    group.bench_function(format!("{AGENTS}_agents_x_{TASKS}_tasks"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut c = cluster();
                total += launch_all(&mut c, &rt);
                assert_eq!(c.containerizers.values().map(|r| r.launched()).sum::<usize>(), TASKS);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, launch);
criterion_main!(benches);
