//! Resource arithmetic as the allocator uses it: parse an agent's flag,
//! check that a task fits, subtract it, give it back.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrator::core::Resources;

const AGENT: &str = "cpus:24;mem:4096;disk:100000;gpus:0;ports:[31000-32000]";
const TASK: &str = "cpus:0.1;mem:32;disk:10;ports:[31000-31000]";
/// Without a port, so that 240 of them fit (cpus 24 / 0.1; mem 4096 / 16 = 256).
const SMALL_TASK: &str = "cpus:0.1;mem:16;disk:10";

fn resources(c: &mut Criterion) {
    let agent: Resources = AGENT.parse().expect("agent resources");
    let task: Resources = TASK.parse().expect("task resources");
    let small: Resources = SMALL_TASK.parse().expect("small task resources");
    let json = serde_json::to_string(&agent).expect("json");

    c.bench_function("resources/parse_flag_5_entries", |b| {
        b.iter(|| black_box(AGENT).parse::<Resources>())
    });
    c.bench_function("resources/parse_v1_json_5_entries", |b| {
        b.iter(|| serde_json::from_str::<Resources>(black_box(&json)))
    });
    c.bench_function("resources/contains_4_entries_in_5", |b| {
        b.iter(|| black_box(&agent).contains(black_box(&task)))
    });
    c.bench_function("resources/subtract_then_add_back_4_entries", |b| {
        b.iter(|| {
            let free = black_box(&agent).checked_sub(black_box(&task)).expect("fits");
            &free + &task
        })
    });
    c.bench_function("resources/fill_agent_with_240_tasks", |b| {
        b.iter(|| {
            let mut free = agent.clone();
            let mut n = 0;
            while free.contains(&small) {
                free -= &small;
                n += 1;
            }
            assert_eq!(n, 240);
            black_box(n)
        })
    });
}

criterion_group!(benches, resources);
criterion_main!(benches);
