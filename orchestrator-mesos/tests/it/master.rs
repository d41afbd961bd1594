//! The master's state machine: Mesos's rules for offers, tasks, updates,
//! agents and framework failover, without a network.

use std::time::{Duration, Instant};

use orchestrator_core::{
    AgentId, AgentInfo, Attributes, Capability, CommandInfo, FrameworkId, FrameworkInfo, Offer, Resources, TaskId,
    TaskInfo, TaskReason, TaskState, TaskStatus,
};
use orchestrator_mesos::api::scheduler::{Call, EventType, OfferOperation, SchedulerCall};
use orchestrator_mesos::{AgentState, DrfAllocator, Effect, Master, MasterConfig};

fn res(s: &str) -> Resources {
    s.parse().unwrap()
}

struct World {
    master: Master,
    now: Instant,
}

impl World {
    fn new() -> Self {
        World {
            master: Master::new(MasterConfig::default(), DrfAllocator::default()),
            now: Instant::now(),
        }
    }

    fn agent(&mut self, host: &str, resources: &str) -> AgentId {
        let info = AgentInfo {
            hostname: host.into(),
            port: Some(5051),
            resources: res(resources),
            attributes: Attributes::default(),
            id: None,
        };
        self.master.register_agent(info, self.now).unwrap()
    }

    fn subscribe(&mut self, name: &str, failover_secs: f64, partition_aware: bool) -> FrameworkId {
        let mut info = FrameworkInfo::new("root", name);
        info.failover_timeout = Some(failover_secs);
        if partition_aware {
            info.capabilities.push(Capability {
                kind: "PARTITION_AWARE".into(),
            });
        }
        let (id, effects) = self.master.subscribe(info, &[], self.now).unwrap();
        assert!(matches!(&effects[0], Effect::ToFramework { event, .. } if event.kind == EventType::Subscribed));
        id
    }

    fn offers(&mut self) -> Vec<Offer> {
        self.master
            .allocate(self.now)
            .into_iter()
            .flat_map(|e| match e {
                Effect::ToFramework { event, .. } => event.offers.map(|o| o.offers).unwrap_or_default(),
                _ => vec![],
            })
            .collect()
    }

    fn call(&mut self, fw: &FrameworkId, call: SchedulerCall) -> Vec<Effect> {
        self.master.call(Some(fw.clone()), call, self.now).unwrap()
    }
}

fn task(id: &str, agent: &AgentId, resources: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId::new(id).unwrap(),
        agent_id: agent.clone(),
        resources: res(resources),
        command: Some(CommandInfo::shell("sleep 10")),
        container: None,
        kill_policy: None,
        labels: Default::default(),
    }
}

fn updates(effects: &[Effect]) -> Vec<TaskStatus> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToFramework { event, .. } => event.update.as_ref().map(|u| u.status.clone()),
            _ => None,
        })
        .collect()
}

fn launch(w: &mut World, fw: &FrameworkId, offer: &Offer, tasks: Vec<TaskInfo>, refuse: Duration) -> Vec<Effect> {
    w.call(
        fw,
        SchedulerCall::Accept {
            offer_ids: vec![offer.id.clone()],
            operations: vec![OfferOperation::Launch(tasks)],
            refuse,
        },
    )
}

#[test]
fn subscribe_offer_launch_and_finish() {
    let mut w = World::new();
    let fw = w.subscribe("web", 0.0, false);
    let agent = w.agent("node1", "cpus:4;mem:1024;ports:[31000-31009]");
    let offers = w.offers();
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (offers[0].hostname.as_str(), offers[0].resources.cpus()),
        ("node1", 4.0)
    );

    let effects = launch(
        &mut w,
        &fw,
        &offers[0],
        vec![task("t1", &agent, "cpus:1;mem:128;ports:[31000-31000]")],
        Duration::from_secs(60),
    );
    assert!(
        matches!(&effects[..], [Effect::Launch { task, .. }] if task.task_id.as_str() == "t1"),
        "{effects:?}"
    );
    assert_eq!(
        w.master.frameworks()[&fw].tasks[&TaskId::new("t1").unwrap()].state,
        TaskState::Staging
    );
    assert!(w.offers().is_empty(), "the rest was declined with a filter");

    let mut running = TaskStatus::new(TaskId::new("t1").unwrap(), TaskState::Running);
    running.uuid = Some("dXVpZA==".into());
    let fx = w.master.status_update(&agent, &fw, running.clone(), w.now).unwrap();
    let up = updates(&fx);
    assert_eq!(
        (up[0].state, up[0].uuid.as_deref()),
        (TaskState::Running, Some("dXVpZA=="))
    );
    // Until the framework acknowledges it, a retry is forwarded again (at least once).
    let retried = w.master.status_update(&agent, &fw, running.clone(), w.now).unwrap();
    assert_eq!(updates(&retried).len(), 1, "{retried:?}");
    let ack = |w: &mut World, uuid: &str| {
        w.call(
            &fw,
            SchedulerCall::Acknowledge(orchestrator_mesos::api::scheduler::Acknowledge {
                agent_id: agent.clone(),
                task_id: TaskId::new("t1").unwrap(),
                uuid: uuid.into(),
            }),
        )
    };
    let acks = ack(&mut w, "dXVpZA==");
    assert!(matches!(&acks[..], [Effect::Acknowledged { uuid, .. }] if uuid == "dXVpZA=="));
    // A retry that crossed the acknowledgement goes back to the agent as
    // acknowledged; the framework does not see it again.
    let crossed = w.master.status_update(&agent, &fw, running, w.now).unwrap();
    assert!(
        matches!(&crossed[..], [Effect::Acknowledged { uuid, agent_id, .. }] if uuid == "dXVpZA==" && *agent_id == agent),
        "{crossed:?}"
    );

    let mut done = TaskStatus::new(TaskId::new("t1").unwrap(), TaskState::Finished);
    done.uuid = Some("ZG9uZQ==".into());
    let fx = w.master.status_update(&agent, &fw, done.clone(), w.now).unwrap();
    assert_eq!(updates(&fx).len(), 1);
    assert!(w.master.frameworks()[&fw].tasks.is_empty());
    assert_eq!(w.master.frameworks()[&fw].completed.len(), 1);
    // The same for a terminal update, whose task is among the completed.
    assert_eq!(
        updates(&w.master.status_update(&agent, &fw, done.clone(), w.now).unwrap()).len(),
        1
    );
    ack(&mut w, "ZG9uZQ==");
    let crossed = w.master.status_update(&agent, &fw, done, w.now).unwrap();
    assert!(
        matches!(&crossed[..], [Effect::Acknowledged { uuid, .. }] if uuid == "ZG9uZQ=="),
        "{crossed:?}"
    );
    // The task's resources are free again, but the filter on the rest holds.
    w.now += Duration::from_secs(61);
    let again = w.offers();
    assert_eq!(again[0].resources.cpus(), 4.0, "everything is offered after the filter");
}

#[test]
fn an_offer_is_used_once_and_bad_tasks_get_task_error() {
    let mut w = World::new();
    let fw = w.subscribe("f", 0.0, false);
    let agent = w.agent("a", "cpus:2;mem:256");
    let offer = w.offers().remove(0);
    let effects = launch(
        &mut w,
        &fw,
        &offer,
        vec![
            task("big", &agent, "cpus:8;mem:64"),
            task("ok", &agent, "cpus:1;mem:64"),
            task("ok", &agent, "cpus:1;mem:64"),
            task("nothing", &agent, "cpus:0"),
        ],
        Duration::ZERO,
    );
    let errors: Vec<_> = updates(&effects)
        .into_iter()
        .filter(|s| s.state == TaskState::Error)
        .collect();
    assert_eq!(errors.len(), 3, "{effects:?}");
    assert!(errors.iter().all(|s| s.reason == Some(TaskReason::ReasonTaskInvalid)));
    assert!(errors[0].message.as_deref().unwrap().contains("more resources"));
    assert!(errors[1].message.as_deref().unwrap().contains("already in use"));
    assert_eq!(effects.iter().filter(|e| matches!(e, Effect::Launch { .. })).count(), 1);

    // The same offer again: it is gone, the task is lost.
    let again = launch(
        &mut w,
        &fw,
        &offer,
        vec![task("late", &agent, "cpus:1;mem:64")],
        Duration::ZERO,
    );
    let lost = updates(&again);
    assert_eq!(lost[0].state, TaskState::Lost);
    assert!(lost[0].message.as_deref().unwrap().contains("no longer valid"));
    // Refuse 0: what the good task left is offered again at once.
    assert_eq!(w.offers()[0].resources.cpus(), 1.0);
}

#[test]
fn decline_filters_and_revive_clears() {
    let mut w = World::new();
    let fw = w.subscribe("f", 0.0, false);
    w.agent("a", "cpus:2;mem:256");
    let offer = w.offers().remove(0);
    w.call(
        &fw,
        SchedulerCall::Decline {
            offer_ids: vec![offer.id],
            refuse: Duration::from_secs(30),
        },
    );
    assert!(w.offers().is_empty());
    w.call(&fw, SchedulerCall::Revive(vec![]));
    assert_eq!(w.offers().len(), 1);
}

#[test]
fn kill_and_reconcile() {
    let mut w = World::new();
    let fw = w.subscribe("f", 0.0, true);
    let agent = w.agent("a", "cpus:2;mem:256");
    let offer = w.offers().remove(0);
    launch(
        &mut w,
        &fw,
        &offer,
        vec![task("t", &agent, "cpus:1;mem:64")],
        Duration::ZERO,
    );
    // A KILL as a framework sends it, with a grace period override.
    let body = br#"{"framework_id":{"value":"f"},"type":"KILL","kill":{"task_id":{"value":"t"},
        "kill_policy":{"grace_period":{"nanoseconds":3000000000}}}}"#;
    let call = Call::from_json(body).unwrap();
    let (_, kill) = call.validate().unwrap();
    let effects = w.call(&fw, kill);
    assert!(
        matches!(&effects[..], [Effect::Kill { grace: Some(g), .. }] if *g == Duration::from_secs(3)),
        "{effects:?}"
    );

    let unknown = w.call(
        &fw,
        SchedulerCall::Kill(orchestrator_mesos::api::scheduler::Kill {
            task_id: TaskId::new("ghost").unwrap(),
            agent_id: None,
            kill_policy: None,
        }),
    );
    assert_eq!(
        updates(&unknown)[0].state,
        TaskState::Unknown,
        "partition-aware frameworks get TASK_UNKNOWN"
    );

    let implicit = updates(&w.call(&fw, SchedulerCall::Reconcile(vec![])));
    assert_eq!(implicit.len(), 1);
    assert_eq!(
        (implicit[0].state, implicit[0].uuid.as_ref()),
        (TaskState::Staging, None)
    );
    assert_eq!(implicit[0].reason, Some(TaskReason::ReasonReconciliation));
    let explicit = updates(&w.call(
        &fw,
        SchedulerCall::Reconcile(vec![orchestrator_mesos::api::scheduler::ReconcileTask {
            task_id: TaskId::new("nope").unwrap(),
            agent_id: None,
        }]),
    ));
    assert_eq!(explicit[0].state, TaskState::Unknown);
}

#[test]
fn silent_agents_become_unreachable_and_come_back() {
    let mut w = World::new();
    let fw = w.subscribe("f", 0.0, false);
    let agent = w.agent("a", "cpus:2;mem:256");
    let offer = w.offers().remove(0);
    launch(
        &mut w,
        &fw,
        &offer,
        vec![task("t", &agent, "cpus:1;mem:64")],
        Duration::ZERO,
    );
    w.now += Duration::from_secs(74);
    assert!(w.master.check(w.now).is_empty(), "15 s x 5 not yet over");
    w.now += Duration::from_secs(2);
    let effects = w.master.check(w.now);
    let lost = updates(&effects);
    assert_eq!(
        (lost[0].state, lost[0].reason),
        (TaskState::Lost, Some(TaskReason::ReasonAgentUnreachable))
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::ToFramework { event, .. } if event.kind == EventType::Failure)));
    assert_eq!(w.master.agents()[&agent].state, AgentState::Unreachable);
    assert!(w.offers().is_empty(), "no offers from an unreachable agent");
    w.master.agent_heartbeat(&agent, w.now).unwrap();
    assert_eq!(w.master.agents()[&agent].state, AgentState::Active);
    assert_eq!(w.offers().len(), 1);
    assert!(w
        .master
        .agent_heartbeat(&AgentId::new("ghost").unwrap(), w.now)
        .is_err());
}

#[test]
fn failover_keeps_tasks_within_the_timeout_and_teardown_after_it() {
    let mut w = World::new();
    let fw = w.subscribe("f", 60.0, false);
    let agent = w.agent("a", "cpus:2;mem:256");
    let offer = w.offers().remove(0);
    launch(
        &mut w,
        &fw,
        &offer,
        vec![task("t", &agent, "cpus:1;mem:64")],
        Duration::ZERO,
    );
    let _pending = w.offers();
    w.master.disconnect(&fw, w.now);
    assert_eq!(
        w.master.offers().count(),
        0,
        "offers of a disconnected framework go back"
    );

    // Back within the timeout with its id: tasks kept.
    w.now += Duration::from_secs(30);
    let mut info = FrameworkInfo::new("root", "f");
    info.id = Some(fw.clone());
    info.failover_timeout = Some(60.0);
    let (again, _) = w.master.subscribe(info, &[], w.now).unwrap();
    assert_eq!(again, fw);
    assert_eq!(w.master.frameworks()[&fw].tasks.len(), 1);
    assert!(w
        .master
        .check(w.now + Duration::from_secs(120))
        .iter()
        .all(|e| !matches!(e, Effect::Kill { .. })));

    // Gone for longer than the timeout: removed, and every agent told to
    // shut the framework down (kill its tasks, drop its updates).
    w.master.disconnect(&fw, w.now);
    let effects = w.master.check(w.now + Duration::from_secs(61));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::ShutdownFramework { framework_id, .. } if *framework_id == fw)));
    assert!(effects.iter().any(|e| matches!(e, Effect::Disconnect { .. })));
    assert!(w.master.frameworks().is_empty());
    assert!(
        w.master.call(Some(fw), SchedulerCall::Revive(vec![]), w.now).is_err(),
        "removed frameworks are unknown"
    );
}

#[test]
fn reserve_through_an_offer() {
    let mut w = World::new();
    let mut info = FrameworkInfo::new("root", "db");
    info.role = Some("db".into());
    let (fw, _) = w.master.subscribe(info, &[], w.now).unwrap();
    w.agent("a", "cpus:4;mem:1024");
    let offer = w.offers().remove(0);
    let reserve = res("cpus:2").pushed_reservation(&orchestrator_core::Reservation::dynamic("db", Some("ops".into())));
    w.call(
        &fw,
        SchedulerCall::Accept {
            offer_ids: vec![offer.id],
            operations: vec![OfferOperation::Reserve(reserve)],
            refuse: Duration::ZERO,
        },
    );
    let next = w.offers().remove(0);
    assert_eq!(next.resources.reserved_for("db").cpus(), 2.0, "{}", next.resources);
    assert_eq!(next.resources.unreserved().cpus(), 2.0);
}

#[test]
fn teardown_shuts_the_framework_down_on_its_agents_and_closes_the_stream() {
    let mut w = World::new();
    let fw = w.subscribe("f", 3600.0, false);
    let agent = w.agent("a", "cpus:2;mem:256");
    let offer = w.offers().remove(0);
    launch(
        &mut w,
        &fw,
        &offer,
        vec![task("t", &agent, "cpus:1;mem:64")],
        Duration::ZERO,
    );
    let effects = w.call(&fw, SchedulerCall::Teardown);
    assert!(
        matches!(&effects[..], [Effect::ShutdownFramework { .. }, Effect::ToFramework { event, .. }, Effect::Disconnect { .. }]
            if event.error.as_ref().is_some_and(|e| e.message == "Framework has been removed")),
        "{effects:?}"
    );
    let other = w.subscribe("g", 0.0, false);
    let offers = w.offers();
    assert_eq!((offers.len(), &offers[0].framework_id), (1, &other));
    // As in Mesos, removing a framework recovers its tasks' resources at
    // once, while the agents kill them.
    assert_eq!(offers[0].resources.cpus(), 2.0);
}

#[test]
fn a_new_leader_recovers_from_the_registry_and_what_agents_bring_back() {
    use orchestrator_mesos::api::scheduler::ReconcileTask;
    use orchestrator_mesos::{Recovered, ReregisteredTask, StoredQuota};

    // The old leader: one agent, a framework with a task on it.
    let mut old = World::new();
    let agent = old.agent("a1", "cpus:4;mem:1024");
    let fw = old.subscribe("marathon", 3600.0, false);
    let offer = old.offers().remove(0);
    launch(
        &mut old,
        &fw,
        &offer,
        vec![task("t1", &agent, "cpus:1;mem:64")],
        Duration::ZERO,
    );
    let agent_info = old.master.agents()[&agent].info.clone();
    let fw_info = old.master.frameworks()[&fw].info.clone();

    // The new leader knows only what the registry kept.
    let mut w = World::new();
    let mut quotas = std::collections::BTreeMap::new();
    quotas.insert(
        "web".to_string(),
        StoredQuota {
            guarantees: res("cpus:1"),
            limits: None,
        },
    );
    let recovered = Recovered {
        agents: vec![agent_info.clone()],
        weights: [("web".to_string(), 2.5)].into_iter().collect(),
        quotas,
        epoch: 7,
    };
    w.master.recover(recovered, Duration::from_secs(600), w.now).unwrap();
    assert!(w.master.config().master_id.ends_with("-e7"), "ids carry the epoch");
    let roles = orchestrator_core::Allocator::roles(w.master.allocator());
    let web = roles.iter().find(|r| r.name == "web").unwrap();
    assert_eq!(web.weight, 2.5);
    assert_eq!(web.guarantees, res("cpus:1"));
    assert!(w.master.recovering_agents().contains_key(&agent));
    assert!(w.master.agents().is_empty());

    // The framework comes back first, under its id, and reconciles its
    // task: no answer while its agent has yet to re-register (Mesos's
    // rule; a LOST here would have it launched again).
    let (again, _) = w.master.subscribe(fw_info.clone(), &[], w.now).unwrap();
    assert_eq!(again, fw);
    let asked = vec![ReconcileTask {
        task_id: TaskId::new("t1").unwrap(),
        agent_id: Some(agent.clone()),
    }];
    assert!(updates(&w.call(&fw, SchedulerCall::Reconcile(asked.clone()))).is_empty());

    // The agent re-registers with its task: the task is known, running.
    let running = ReregisteredTask {
        framework_id: fw.clone(),
        task: task("t1", &agent, "cpus:1;mem:64"),
        state: TaskState::Running,
        framework: Some(fw_info.clone()),
    };
    w.master
        .reregister_agent(agent.clone(), agent_info.clone(), vec![running.clone()], w.now)
        .unwrap();
    assert!(w.master.recovering_agents().is_empty());
    let answered = updates(&w.call(&fw, SchedulerCall::Reconcile(asked)));
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].state, TaskState::Running);
    // New ids do not repeat the old leader's.
    let other = w.agent("a2", "cpus:1;mem:128");
    assert!(other.as_str().contains("-e7-"), "{other}");

    // An agent that comes back before its framework: the framework is
    // recovered from the task's info, disconnected, tasks kept, until it
    // re-subscribes within its failover timeout.
    let mut w = World::new();
    w.master
        .recover(
            Recovered {
                agents: vec![agent_info.clone()],
                epoch: 2,
                ..Recovered::default()
            },
            Duration::from_secs(600),
            w.now,
        )
        .unwrap();
    w.master
        .reregister_agent(agent.clone(), agent_info.clone(), vec![running], w.now)
        .unwrap();
    let f = &w.master.frameworks()[&fw];
    assert!(!f.connected);
    assert!(f.tasks.contains_key(&TaskId::new("t1").unwrap()));
    w.now += Duration::from_secs(60);
    assert!(w
        .master
        .check(w.now)
        .iter()
        .all(|e| !matches!(e, Effect::ShutdownFramework { .. })));
    let (again, _) = w.master.subscribe(fw_info, &[], w.now).unwrap();
    assert_eq!(again, fw);
    assert_eq!(w.master.frameworks()[&fw].tasks.len(), 1);

    // A registry agent that never comes back is forgotten after the timeout.
    let mut w = World::new();
    w.master
        .recover(
            Recovered {
                agents: vec![agent_info],
                epoch: 3,
                ..Recovered::default()
            },
            Duration::from_secs(10),
            w.now,
        )
        .unwrap();
    w.now += Duration::from_secs(11);
    w.master.check(w.now);
    assert!(w.master.recovering_agents().is_empty());
    assert_eq!(w.master.take_expired_agents(), vec![agent]);
}
