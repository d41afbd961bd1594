//! Allocator benchmarks.
//!
//! `decline_offers/A_agents_x_F_frameworks` reproduces Apache Mesos's
//! `HierarchicalAllocator_BENCHMARK_Test.DeclineOffers`: agents of
//! `cpus:24;mem:4096;disk:4096;ports:[31000-32000]`, each with
//! `cpus:16;mem:1024;disk:1024` and 16 ports already used by one framework
//! (round-robin); every offer is declined with a very long filter, and one
//! allocation round (`allocate()`) is timed. Only rounds that still make
//! offers are timed: when every framework has filtered every agent the
//! scenario is rebuilt, untimed. Mesos takes 1.06 s per round at 10k x 1k.
//!
//! `decline_offers_cycle/10000_agents_x_1000_frameworks` times the same
//! round together with every decline that follows it, so work the allocator
//! defers from `allocate()` to `recover_resources()` is counted too.
//!
//! `quota/3000_agents_x_3000_roles` times the first allocation cycle of a
//! cluster where every role has a quota guarantee (Mesos: about 15 s).
//!
//! The binary uses mimalloc, as a production master would; the figures
//! with the system allocator are reported beside these.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use orchestrator::core::{
    AgentId, AgentInfo, Allocation, Allocator, Attributes, FrameworkId, FrameworkInfo, Quota, Resources,
};
use orchestrator::mesos::DrfAllocator;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AGENT: &str = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]";
const LONG_FILTER: Duration = Duration::from_secs(1_000_000);

fn res(s: &str) -> Resources {
    s.parse().expect("valid resources")
}

fn info(resources: &Resources) -> AgentInfo {
    AgentInfo {
        hostname: "agent".into(),
        port: Some(5051),
        resources: resources.clone(),
        attributes: Attributes::default(),
        id: None,
    }
}

struct DeclineOffers {
    alloc: DrfAllocator,
    now: Instant,
}

impl DeclineOffers {
    fn new(agents: usize, frameworks: usize) -> Self {
        let mut alloc = DrfAllocator::default();
        let fw_ids: Vec<FrameworkId> = (0..frameworks)
            .map(|i| FrameworkId::new(format!("framework-{i}")).expect("id"))
            .collect();
        for id in &fw_ids {
            alloc
                .add_framework(id.clone(), &FrameworkInfo::new("user", id.as_str()), &[])
                .expect("framework");
        }
        // 16 single ports spread over the range, as Mesos fragments them.
        let ports: Vec<String> = (0..16).map(|i| format!("{0}-{0}", 31000 + i * 61)).collect();
        let used = res(&format!("cpus:16;mem:1024;disk:1024;ports:[{}]", ports.join(",")));
        let total = res(AGENT);
        for i in 0..agents {
            let agent_id = AgentId::new(format!("agent-{i}")).expect("id");
            let allocation = Allocation {
                framework_id: fw_ids[i % frameworks].clone(),
                agent_id: agent_id.clone(),
                role: "*".into(),
                resources: used.clone(),
            };
            alloc.add_agent(agent_id, &info(&total), &[allocation]).expect("agent");
        }
        Self {
            alloc,
            now: Instant::now(),
        }
    }

    /// One round; `None` when nothing could be offered any more. Times
    /// `allocate()` alone, or with the declines when `with_declines`.
    fn round(&mut self, with_declines: bool) -> Option<Duration> {
        let start = Instant::now();
        let offers = self.alloc.allocate(self.now);
        let allocate = start.elapsed();
        if offers.is_empty() {
            return None;
        }
        for o in &offers {
            self.alloc
                .recover_resources(&o.framework_id, &o.agent_id, &o.resources, Some(LONG_FILTER), self.now);
        }
        let cycle = start.elapsed();
        black_box(offers);
        self.now += Duration::from_secs(1);
        Some(if with_declines { cycle } else { allocate })
    }
}

fn bench_rounds(c: &mut Criterion, group: &str, grid: &[(usize, usize)], with_declines: bool) {
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    for &(agents, frameworks) in grid {
        let name = format!("{agents}_agents_x_{frameworks}_frameworks");
        let mut scenario = DeclineOffers::new(agents, frameworks);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += loop {
                        match scenario.round(with_declines) {
                            Some(took) => break took,
                            None => scenario = DeclineOffers::new(agents, frameworks),
                        }
                    };
                }
                total
            })
        });
    }
    group.finish();
}

fn decline_offers(c: &mut Criterion) {
    let mut grid = Vec::new();
    for agents in [1_000, 10_000, 50_000] {
        for frameworks in [100, 1_000, 6_000] {
            grid.push((agents, frameworks));
        }
    }
    bench_rounds(c, "allocator/decline_offers", &grid, false);
    bench_rounds(c, "allocator/decline_offers_cycle", &[(10_000, 1_000)], true);
}

fn quota(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator/quota");
    group.sample_size(10);
    let (agents, roles) = (3_000, 3_000);
    let setup = || {
        let mut alloc = DrfAllocator::default();
        for r in 0..roles {
            let role = format!("role-{r}");
            // Alternating small and large guarantees, 10,500 of 24,000 cpus in all.
            let guarantee = if r % 2 == 0 {
                "cpus:1;mem:1024"
            } else {
                "cpus:6;mem:6144"
            };
            alloc
                .set_quota(
                    &role,
                    Quota {
                        guarantees: res(guarantee),
                        limits: None,
                    },
                )
                .expect("quota");
            let mut fi = FrameworkInfo::new("user", &role);
            fi.role = Some(role.clone());
            alloc
                .add_framework(FrameworkId::new(format!("fw-{r}")).expect("id"), &fi, &[])
                .expect("framework");
        }
        let total = res("cpus:8;mem:8192;disk:8192");
        for i in 0..agents {
            alloc
                .add_agent(AgentId::new(format!("agent-{i}")).expect("id"), &info(&total), &[])
                .expect("agent");
        }
        alloc
    };
    group.bench_function(format!("{agents}_agents_x_{roles}_roles"), |b| {
        let now = Instant::now();
        b.iter_batched(
            setup,
            |mut alloc| black_box(alloc.allocate(now)).len(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, decline_offers, quota);
criterion_main!(benches);
