//! The weighted DRF allocator: Mesos allocation semantics and invariants.

use std::time::{Duration, Instant};

use orchestrator_core::{
    AgentId, AgentInfo, Allocation, Allocator, Attributes, Capability, FrameworkId, FrameworkInfo, Quota, Resources,
};
use orchestrator_mesos::DrfAllocator;
use proptest::prelude::*;

fn res(s: &str) -> Resources {
    s.parse().unwrap()
}

fn agent(alloc: &mut DrfAllocator, id: &str, resources: &str) -> AgentId {
    let id = AgentId::new(id).unwrap();
    let info = AgentInfo {
        hostname: format!("{id}.local"),
        port: Some(5051),
        resources: res(resources),
        attributes: Attributes::default(),
        id: Some(id.clone()),
    };
    alloc.add_agent(id.clone(), &info, &[]).unwrap();
    id
}

fn framework(alloc: &mut DrfAllocator, id: &str, roles: &[&str]) -> FrameworkId {
    let id = FrameworkId::new(id).unwrap();
    let mut info = FrameworkInfo::new("root", id.as_str());
    if roles.len() == 1 {
        info.role = Some(roles[0].to_string());
    } else {
        info.roles = roles.iter().map(|r| r.to_string()).collect();
        info.capabilities.push(Capability {
            kind: "MULTI_ROLE".into(),
        });
    }
    alloc.add_framework(id.clone(), &info, &[]).unwrap();
    id
}

fn decline_all(alloc: &mut DrfAllocator, offers: &[Allocation], refuse: Option<Duration>, now: Instant) {
    for o in offers {
        alloc.recover_resources(&o.framework_id, &o.agent_id, &o.resources, refuse, now);
    }
}

#[test]
fn every_agent_is_offered_once_in_a_round() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    for i in 0..4 {
        agent(&mut a, &format!("a{i}"), "cpus:4;mem:1024;ports:[31000-31010]");
    }
    framework(&mut a, "f1", &["*"]);
    framework(&mut a, "f2", &["*"]);
    let offers = a.allocate(now);
    assert_eq!(offers.len(), 4);
    let mut agents: Vec<_> = offers.iter().map(|o| o.agent_id.clone()).collect();
    agents.sort();
    agents.dedup();
    assert_eq!(agents.len(), 4, "no agent offered twice");
    // DRF alternates between equal frameworks.
    assert_eq!(offers.iter().filter(|o| o.framework_id.as_str() == "f1").count(), 2);
    assert!(offers
        .iter()
        .all(|o| o.resources.ports().count() == 11 && o.resources.cpus() == 4.0));
    assert!(offers[0]
        .resources
        .iter()
        .all(|r| r.allocation_role.as_deref() == Some("*")));
    assert!(a.allocate(now).is_empty(), "outstanding offers are not offered again");
}

#[test]
fn weights_divide_the_cluster() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    for i in 0..30 {
        agent(&mut a, &format!("a{i}"), "cpus:1;mem:100");
    }
    a.set_weight("gold", 2.0).unwrap();
    framework(&mut a, "g", &["gold"]);
    framework(&mut a, "s", &["silver"]);
    let offers = a.allocate(now);
    let gold = offers.iter().filter(|o| o.role == "gold").count();
    assert_eq!((gold, offers.len() - gold), (20, 10));
    assert!(a.set_weight("x", 0.0).is_err());
    assert!(a.set_weight("x", f64::NAN).is_err());
}

#[test]
fn a_declined_agent_is_filtered_until_the_filter_expires() {
    let mut a = DrfAllocator::default();
    let t0 = Instant::now();
    agent(&mut a, "a1", "cpus:4;mem:1024");
    framework(&mut a, "f", &["*"]);
    let offers = a.allocate(t0);
    decline_all(&mut a, &offers, Some(Duration::from_secs(10)), t0);
    assert!(a.allocate(t0 + Duration::from_secs(9)).is_empty());
    let again = a.allocate(t0 + Duration::from_secs(10));
    assert_eq!(again.len(), 1);

    // Zero refuses nothing; a short filter lasts one allocation interval.
    decline_all(&mut a, &again, Some(Duration::ZERO), t0);
    let again = a.allocate(t0 + Duration::from_secs(10));
    assert_eq!(again.len(), 1);
    decline_all(
        &mut a,
        &again,
        Some(Duration::from_millis(1)),
        t0 + Duration::from_secs(10),
    );
    assert!(a.allocate(t0 + Duration::from_millis(10_500)).is_empty());
    assert_eq!(a.allocate(t0 + Duration::from_secs(11)).len(), 1);
}

#[test]
fn a_filter_stops_refusing_when_the_agent_has_more() {
    let mut a = DrfAllocator::default();
    let t0 = Instant::now();
    agent(&mut a, "a1", "cpus:4;mem:1024");
    let f = framework(&mut a, "f", &["*"]);
    let offer = a.allocate(t0).remove(0);
    // Use half (a task), decline the rest for a long time.
    let task = res("cpus:2;mem:512").allocated_to("*");
    let rest = offer.resources.checked_sub(&task).unwrap();
    a.recover_resources(&f, &offer.agent_id, &rest, Some(Duration::from_secs(3600)), t0);
    assert!(a.allocate(t0).is_empty(), "the refused half is filtered");
    // The task ends: the agent now has more than was refused.
    a.recover_resources(&f, &offer.agent_id, &task, None, t0);
    let offers = a.allocate(t0);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].resources.cpus(), 4.0);
}

#[test]
fn suppress_stops_offers_and_revive_clears_filters() {
    let mut a = DrfAllocator::default();
    let t0 = Instant::now();
    agent(&mut a, "a1", "cpus:4;mem:1024");
    let f = framework(&mut a, "f", &["*"]);
    a.suppress(&f, &[]);
    assert!(a.allocate(t0).is_empty());
    a.revive(&f, &[]);
    let offers = a.allocate(t0);
    assert_eq!(offers.len(), 1);
    decline_all(&mut a, &offers, Some(Duration::from_secs(3600)), t0);
    assert!(a.allocate(t0).is_empty());
    a.revive(&f, &[]);
    assert_eq!(a.allocate(t0).len(), 1, "revive removes the filter");
}

#[test]
fn quota_guarantees_come_first_and_keep_headroom() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    for i in 0..10 {
        agent(&mut a, &format!("a{i}"), "cpus:1;mem:100");
    }
    framework(&mut a, "greedy", &["batch"]);
    // The quota role's framework arrives but is suppressed: its guarantee
    // must still be kept free (headroom) from the non-quota role.
    let q = framework(&mut a, "quota", &["prod"]);
    a.set_quota(
        "prod",
        Quota {
            guarantees: res("cpus:4;mem:400"),
            limits: None,
        },
    )
    .unwrap();
    a.suppress(&q, &[]);
    let offers = a.allocate(now);
    assert_eq!(
        offers.iter().map(|o| o.resources.cpus()).sum::<f64>(),
        6.0,
        "4 cpus held back"
    );
    a.revive(&q, &[]);
    let offers = a.allocate(now);
    assert!(offers.iter().all(|o| o.role == "prod"));
    assert_eq!(offers.iter().map(|o| o.resources.cpus()).sum::<f64>(), 4.0);
}

#[test]
fn quota_limits_shrink_offers() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    agent(&mut a, "a1", "cpus:8;mem:800");
    agent(&mut a, "a2", "cpus:8;mem:800");
    framework(&mut a, "f", &["capped"]);
    a.set_quota(
        "capped",
        Quota {
            guarantees: Resources::new(),
            limits: Some(res("cpus:5")),
        },
    )
    .unwrap();
    let offers = a.allocate(now);
    assert_eq!(offers.iter().map(|o| o.resources.cpus()).sum::<f64>(), 5.0);
    assert_eq!(a.role_allocation("capped").unwrap().cpus(), 5.0);
    // Bad quotas are refused with a reason.
    let bad = Quota {
        guarantees: res("cpus:6"),
        limits: Some(res("cpus:5")),
    };
    assert!(a
        .set_quota("capped", bad)
        .unwrap_err()
        .to_string()
        .contains("exceeds its limit"));
    let ports = Quota {
        guarantees: res("ports:[1-2]"),
        limits: None,
    };
    assert!(a.set_quota("capped", ports).is_err());
}

#[test]
fn reservations_go_only_to_their_role_and_its_children() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    agent(&mut a, "a1", "cpus(eng):2;mem(eng):200;cpus:1;mem:100");
    framework(&mut a, "other", &["ops"]);
    let offers = a.allocate(now);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].resources.cpus(), 1.0, "only the unreserved part");
    framework(&mut a, "child", &["eng/web"]);
    let offers = a.allocate(now);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].role, "eng/web");
    assert_eq!(offers[0].resources.reserved_for("eng").cpus(), 2.0);
}

#[test]
fn min_allocatable_and_fair_sharing_exclusions() {
    let mut a = DrfAllocator::builder()
        .min_allocatable("cpus:1|mem:512")
        .exclude_from_fair_sharing(["gpus"])
        .build()
        .unwrap();
    let now = Instant::now();
    agent(&mut a, "tiny", "cpus:0.5;mem:100");
    agent(&mut a, "gpu", "cpus:1;mem:100;gpus:4");
    agent(&mut a, "plain", "cpus:1;mem:100");
    let gpu = framework(&mut a, "gpu-fw", &["ml"]);
    framework(&mut a, "cpu-fw", &["web"]);
    let offers = a.allocate(now);
    assert_eq!(offers.len(), 2, "the tiny agent is below the minimum");
    assert!(offers.iter().all(|o| o.agent_id.as_str() != "tiny"));
    // With gpus excluded, holding 4 of 4 GPUs does not make ml dominant.
    let share = a.role_share("ml").unwrap();
    assert!(share <= 0.5 + 1e-9, "{share}");
    a.remove_framework(&gpu);
    assert!(DrfAllocator::builder().min_allocatable("ports:[1-2]").build().is_err());
}

#[test]
fn removing_frameworks_and_agents_gives_everything_back() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    let a1 = agent(&mut a, "a1", "cpus:4;mem:1024");
    let f = framework(&mut a, "f", &["*"]);
    assert_eq!(a.allocate(now).len(), 1);
    assert!(a.available(&a1).unwrap().is_empty());
    a.remove_framework(&f);
    assert_eq!(a.available(&a1).unwrap().cpus(), 4.0);
    assert_eq!(a.role_share("*"), Some(0.0));
    let g = framework(&mut a, "g", &["*"]);
    assert_eq!(a.allocate(now).len(), 1);
    a.remove_agent(&a1);
    assert_eq!(a.role_share("*"), Some(0.0));
    agent(&mut a, "a2", "cpus:2;mem:64");
    assert_eq!(a.allocate(now)[0].framework_id, g);
}

#[test]
fn reserve_on_an_offer_changes_what_the_agent_holds() {
    let mut a = DrfAllocator::default();
    let now = Instant::now();
    let a1 = agent(&mut a, "a1", "cpus:4;mem:1024");
    let f = framework(&mut a, "f", &["db"]);
    let offer = a.allocate(now).remove(0);
    let from = res("cpus:2").allocated_to("db");
    let to = res("cpus(db):2").allocated_to("db");
    a.update_allocation(&f, &a1, &from, &to).unwrap();
    assert!(a
        .update_allocation(&f, &a1, &res("cpus:9").allocated_to("db"), &res("cpus(db):9"))
        .is_err());
    assert!(a.update_allocation(&f, &a1, &from, &res("cpus(db):3")).is_err());
    let rest = offer.resources.checked_sub(&from).unwrap();
    a.recover_resources(&f, &a1, &rest, None, now);
    a.recover_resources(&f, &a1, &to, None, now);
    a.suppress(&f, &[]);
    let other = framework(&mut a, "other", &["web"]);
    let offers = a.allocate(now);
    let for_other: Vec<_> = offers.iter().filter(|o| o.framework_id == other).collect();
    assert_eq!(for_other.len(), 1);
    assert_eq!(
        for_other[0].resources.cpus(),
        2.0,
        "the reserved half is not offered to web"
    );
}

#[test]
fn bad_input_is_refused_without_changing_state() {
    let mut a = DrfAllocator::default();
    let id = agent(&mut a, "a1", "cpus:1;mem:64");
    let info = AgentInfo {
        hostname: "x".into(),
        port: None,
        resources: res("cpus:1"),
        attributes: Attributes::default(),
        id: None,
    };
    assert!(a.add_agent(id.clone(), &info, &[]).is_err(), "duplicate agent");
    let mut fi = FrameworkInfo::new("u", "n");
    fi.role = Some("bad role".into());
    assert!(a.add_framework(FrameworkId::new("f").unwrap(), &fi, &[]).is_err());
    let used = [Allocation {
        framework_id: FrameworkId::new("f").unwrap(),
        agent_id: AgentId::new("a2").unwrap(),
        role: "*".into(),
        resources: res("cpus:5"),
    }];
    assert!(
        a.add_agent(AgentId::new("a2").unwrap(), &info, &used).is_err(),
        "used > total"
    );
    // Unknown ids are ignored, not panics.
    let ghost = FrameworkId::new("ghost").unwrap();
    a.recover_resources(
        &ghost,
        &id,
        &res("cpus:1"),
        Some(Duration::from_secs(1)),
        Instant::now(),
    );
    a.suppress(&ghost, &[]);
    a.remove_framework(&ghost);
    a.remove_agent(&AgentId::new("ghost").unwrap());
    assert_eq!(a.available(&id).unwrap().cpus(), 1.0);
}

#[derive(Clone, Debug)]
enum Op {
    Allocate,
    DeclineAll { refuse_secs: u8 },
    UseHalf,
    Finish,
    Advance { secs: u8 },
    Suppress(usize),
    Revive(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Allocate),
        2 => (0u8..20).prop_map(|refuse_secs| Op::DeclineAll { refuse_secs }),
        2 => Just(Op::UseHalf),
        1 => Just(Op::Finish),
        1 => (0u8..10).prop_map(|secs| Op::Advance { secs }),
        1 => (0usize..3).prop_map(Op::Suppress),
        1 => (0usize..3).prop_map(Op::Revive),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever happens, nothing is offered twice, agents are never
    /// over-committed, quota limits hold, and a filtered framework is not
    /// offered the refused agent before the filter expires.
    #[test]
    fn allocation_invariants(ops in prop::collection::vec(op(), 1..60), agents in 1usize..6) {
        let mut a = DrfAllocator::default();
        let mut now = Instant::now();
        let mut ids = Vec::new();
        for i in 0..agents {
            ids.push(agent(&mut a, &format!("a{i}"), "cpus:4;mem:1024;ports:[31000-31003]"));
        }
        let fws: Vec<FrameworkId> = ["x", "y", "z"].iter().enumerate()
            .map(|(i, n)| framework(&mut a, n, &[["r1", "r2", "r2/sub"][i]]))
            .collect();
        a.set_quota("r2", Quota { guarantees: res("cpus:2"), limits: Some(res("cpus:6")) }).unwrap();
        let total = res("cpus:4;mem:1024;ports:[31000-31003]");
        let mut outstanding: Vec<Allocation> = Vec::new();
        let mut running: Vec<Allocation> = Vec::new();
        // (framework, agent, refused, until): an offer within what was refused
        // must not be made before the filter expires.
        let mut filtered_until: Vec<(FrameworkId, AgentId, Resources, Instant)> = Vec::new();
        for op in ops {
            match op {
                Op::Allocate => {
                    let offers = a.allocate(now);
                    for o in &offers {
                        let mut offered = o.resources.clone();
                        offered.set_allocation_role(None);
                        prop_assert!(!filtered_until.iter().any(|(f, ag, refused, until)|
                            *f == o.framework_id && *ag == o.agent_id && now < *until && refused.contains(&offered)),
                            "filtered offer {:?}", o);
                    }
                    outstanding.extend(offers);
                    for id in &ids {
                        let mut held = a.available(id).unwrap().clone();
                        for o in outstanding.iter().chain(&running).filter(|o| o.agent_id == *id) {
                            let mut r = o.resources.clone();
                            r.set_allocation_role(None);
                            held += &r;
                        }
                        prop_assert!(total.contains(&held) && held.contains(&total), "agent {} books {} vs {}", id, held, total);
                    }
                    let r2 = a.role_allocation("r2").unwrap();
                    prop_assert!(r2.cpus() <= 6.0, "quota limit exceeded: {}", r2);
                }
                Op::DeclineAll { refuse_secs } => {
                    for o in outstanding.drain(..) {
                        let refuse = Duration::from_secs(refuse_secs.into());
                        a.recover_resources(&o.framework_id, &o.agent_id, &o.resources, Some(refuse), now);
                        if refuse_secs > 0 {
                            filtered_until.retain(|(f, ag, _, _)| !(*f == o.framework_id && *ag == o.agent_id));
                            let mut refused = o.resources.clone();
                            refused.set_allocation_role(None);
                            filtered_until.push((o.framework_id.clone(), o.agent_id.clone(), refused, now + refuse.max(Duration::from_secs(1))));
                        }
                    }
                }
                Op::UseHalf => {
                    for o in outstanding.drain(..) {
                        let half = &o.resources * 0.5;
                        let rest = o.resources.checked_sub(&half).unwrap();
                        a.recover_resources(&o.framework_id, &o.agent_id, &rest, None, now);
                        running.push(Allocation { resources: half, ..o });
                    }
                }
                Op::Finish => {
                    for t in running.drain(..) {
                        a.recover_resources(&t.framework_id, &t.agent_id, &t.resources, None, now);
                    }
                }
                Op::Advance { secs } => now += Duration::from_secs(secs.into()),
                Op::Suppress(i) => a.suppress(&fws[i], &[]),
                Op::Revive(i) => {
                    a.revive(&fws[i], &[]);
                    filtered_until.retain(|(f, _, _, _)| *f != fws[i]);
                }
            }
        }
    }

    /// With one free agent, the role with the lowest weighted dominant
    /// share (no quotas) receives it.
    #[test]
    fn the_lowest_weighted_share_is_served_first(
        roles in prop::collection::vec((0u32..8, 1u32..4), 2..6)
    ) {
        let mut a = DrfAllocator::default();
        let now = Instant::now();
        let mut expected: Vec<(f64, usize)> = Vec::new();
        for (i, (held, weight)) in roles.iter().enumerate() {
            let role = format!("r{i}");
            a.set_weight(&role, f64::from(*weight)).unwrap();
            let f = framework(&mut a, &format!("f{i}"), &[&role]);
            let id = AgentId::new(format!("busy{i}")).unwrap();
            let info = AgentInfo { hostname: "h".into(), port: None, resources: res("cpus:8;mem:800"), attributes: Attributes::default(), id: None };
            let used = [Allocation { framework_id: f, agent_id: id.clone(), role: role.as_str().into(), resources: res(&format!("cpus:{held};mem:{}", held * 100)) }];
            a.add_agent(id.clone(), &info, &used).unwrap();
            a.deactivate_agent(&id);
            let total_cpus = 8.0 * roles.len() as f64 + 1.0;
            expected.push((f64::from(*held) / total_cpus / f64::from(*weight), i));
        }
        agent(&mut a, "free", "cpus:1;mem:100");
        let offers = a.allocate(now);
        prop_assert_eq!(offers.len(), 1);
        let min = expected.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
        let winner: usize = offers[0].role[1..].parse().unwrap();
        prop_assert!((expected[winner].0 - min).abs() < 1e-12, "{:?} got it, shares {:?}", offers[0].role, expected);
    }
}
