//! Status updates under a launch burst with agents crashing in the middle
//! of it: the batching (many tasks' updates per request, acknowledgements
//! streamed back) keeps Mesos's guarantees. Real master, real agents over
//! HTTP, real `sleep` processes, a v1 framework reading the wire.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use orchestrator_core::TaskState;
use orchestrator_mesos::api::scheduler::{Event, EventType};
use orchestrator_mesos::testing::{process_agent, LoopbackMaster, SchedulerClient};
use orchestrator_mesos::{Agent, Cgroups};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const AGENTS: usize = 4;
const PER_AGENT: usize = 40;
const TASKS: usize = AGENTS * PER_AGENT;

fn cgroup_root(i: usize) -> String {
    format!("orch-burst-{}-{i}", std::process::id())
}

fn agent(base: &str, work: &std::path::Path, i: usize) -> Agent {
    process_agent(base, &work.join(format!("a{i}")), "cpus:2;mem:512", &cgroup_root(i)).0
}

/// Where a state sits in a task's life; a task's updates never go back.
fn rank(s: TaskState) -> u8 {
    match s {
        TaskState::Staging => 0,
        TaskState::Starting => 1,
        TaskState::Running => 2,
        TaskState::Killing => 3,
        _ => 4,
    }
}

/// The framework's client and its events, read by a task of their own so
/// the test can wait for them with a timeout.
async fn subscribe(base: &str) -> (SchedulerClient, mpsc::UnboundedReceiver<Event>) {
    let (client, mut stream) = SchedulerClient::subscribe(base, "burst").await;
    stream.timeout = Duration::from_secs(120);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if tx.send(stream.event().await).is_err() {
                return;
            }
        }
    });
    (client, events)
}

/// Kills what the agents started and removes the work directory, also
/// when the test fails midway (agents leave their tasks running on
/// purpose, for the next agent to recover).
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for i in 0..AGENTS {
            if let Some(cg) = Cgroups::detect(&cgroup_root(i), false) {
                for name in cg.existing() {
                    let c = cg.container(&name);
                    c.kill_all();
                    let _ = c.remove();
                }
                cg.remove_if_empty();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 160 real tasks launched on 4 agents at once; two agents crash (all
/// their work in this process stops, as a kill would) while updates are
/// unacknowledged, and come back on their work directories. Every task's
/// updates reach the framework in the order they were made (a repeat is
/// only ever of the newest one seen), none is lost (no task is left short
/// of RUNNING or an end), and once every update is acknowledged none
/// arrives again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_updates_stays_complete_and_in_order_across_agent_restarts() {
    let master = LoopbackMaster::start(Duration::from_millis(50), Duration::from_secs(1)).await;
    let base = master.base.clone();
    let work = std::env::temp_dir().join(format!("orch-burst-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let _cleanup = Cleanup(work.clone());
    let mut agents: Vec<Agent> = (0..AGENTS).map(|i| agent(&base, &work, i)).collect();
    orchestrator_testkit::until_true("agents registered", Duration::from_secs(10), || {
        agents.iter().all(Agent::registered)
    })
    .await;
    let (fw, mut events) = subscribe(&base).await;

    let mut launched = 0;
    // Per task, the uuids and states seen, in arrival order, repeats folded.
    let mut seen: HashMap<String, Vec<(String, TaskState)>> = HashMap::new();
    let mut updates = 0;
    let mut crashed = false;
    let mut pending_at_crash = 0;
    let mut repeats = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let settled = launched == TASKS
            && seen.len() == TASKS
            && seen.values().all(|s| s.last().is_some_and(|(_, st)| rank(*st) >= 2))
            && agents.iter().all(|a| a.registered() && a.unacknowledged() == 0);
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {launched} launched, {} tasks seen, {} short of RUNNING, unacknowledged {:?}",
            seen.len(),
            seen.values()
                .filter(|s| s.last().is_some_and(|(_, st)| rank(*st) < 2))
                .count(),
            agents.iter().map(Agent::unacknowledged).collect::<Vec<_>>()
        );
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await else {
            continue;
        };
        match ev.kind {
            EventType::Offers => {
                for offer in ev.offers.unwrap().offers {
                    let n = PER_AGENT.min(TASKS - launched);
                    let tasks: Vec<Value> = (launched..launched + n)
                        .map(|k| {
                            json!({"name": format!("burst-{k}"), "task_id": {"value": format!("burst-{k}")},
                                "agent_id": {"value": offer.agent_id.as_str()},
                                "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":0.04}},
                                              {"name":"mem","type":"SCALAR","scalar":{"value":12}}],
                                "command": {"value": "exec sleep 600"}})
                        })
                        .collect();
                    launched += n;
                    let operations = if tasks.is_empty() {
                        json!([])
                    } else {
                        json!([{"type": "LAUNCH", "launch": {"task_infos": tasks}}])
                    };
                    let accepted = fw
                        .call(json!({"framework_id": {"value": fw.id}, "type": "ACCEPT", "accept": {
                            "offer_ids": [{"value": offer.id.as_str()}], "operations": operations,
                            "filters": {"refuse_seconds": 3600}}}))
                        .await;
                    assert_eq!(accepted, 202);
                }
            }
            EventType::Update => {
                let status = ev.update.unwrap().status;
                let uuid = status.uuid.clone().expect("agent updates carry a uuid");
                let task = status.task_id.to_string();
                let list = seen.entry(task.clone()).or_default();
                match list.last() {
                    Some((last, _)) if *last == uuid => repeats += 1, // at least once
                    last => {
                        assert!(
                            !list.iter().any(|(u, _)| *u == uuid),
                            "{task}: {:?} came again after a newer update: {list:?}",
                            status.state
                        );
                        if let Some((_, before)) = last {
                            assert!(
                                rank(status.state) >= rank(*before),
                                "{task}: {:?} after {before:?}",
                                status.state
                            );
                        }
                        list.push((uuid, status.state));
                    }
                }
                updates += 1;
                assert_eq!(fw.acknowledge(&status).await, 202);
                // Mid-burst, with launches and updates in flight: two agents crash.
                if !crashed && updates >= TASKS / 2 {
                    crashed = true;
                    pending_at_crash = agents[0].unacknowledged() + agents[1].unacknowledged();
                    for i in [0, 1] {
                        agents[i].shutdown();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    for i in [0, 1] {
                        agents[i] = agent(&base, &work, i);
                    }
                }
            }
            _ => {}
        }
    }
    assert!(crashed);
    // Every task got its STARTING first (or ended before starting: its
    // agent crashed with the launch), and the running ones run.
    let mut running = HashSet::new();
    for (task, list) in &seen {
        let first = list[0].1;
        assert!(first == TaskState::Starting || rank(first) == 4, "{task}: {list:?}");
        if list.last().is_some_and(|(_, s)| *s == TaskState::Running) {
            running.insert(task.clone());
        }
    }
    // Every acknowledgement has reached the agents, so the master has
    // them all: from now on it forwards no agent's update. A retry it
    // forwarded before an acknowledgement came in may still be on its way
    // (at least once), and can only be the newest of its task. An implicit
    // reconciliation asked now marks the point in the stream: after its
    // answers (the master's, without uuid) nothing may come at all.
    let reconcile = json!({"framework_id": {"value": fw.id}, "type": "RECONCILE", "reconcile": {"tasks": []}});
    assert_eq!(fw.call(reconcile).await, 202);
    let mut answered = HashSet::new();
    let mut late_repeats = 0;
    while !running.is_subset(&answered) {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("the reconciliation is answered")
            .expect("the stream stays open");
        let Some(update) = ev.update else { continue };
        let status = update.status;
        let task = status.task_id.to_string();
        match &status.uuid {
            None => {
                assert_eq!(
                    status.state,
                    TaskState::Running,
                    "{task} reconciled as {:?}",
                    status.state
                );
                answered.insert(task);
            }
            Some(uuid) => {
                let newest = seen.get(&task).and_then(|l| l.last()).map(|(u, _)| u);
                assert_eq!(
                    newest,
                    Some(uuid),
                    "{task}: an update that is not a repeat of the newest, after all were acknowledged: {status:?}"
                );
                late_repeats += 1;
                assert_eq!(fw.acknowledge(&status).await, 202);
            }
        }
    }
    let quiet = Instant::now() + Duration::from_secs(2);
    while let Ok(Some(ev)) = tokio::time::timeout_at(quiet.into(), events.recv()).await {
        assert!(
            ev.update.is_none(),
            "an update after all were acknowledged and reconciled: {:?}",
            ev.update
        );
    }
    let state: Value = crate::get_json(format!("{base}/master/state")).await;
    let on_agents: HashSet<String> = state["frameworks"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(running, on_agents, "the framework's RUNNING tasks are the master's");
    assert!(running.len() >= TASKS / 2, "only {} of {TASKS} run", running.len());
    eprintln!(
        "{} of {TASKS} running, {} ended by the crashes; {pending_at_crash} updates unacknowledged at the crash, {repeats} delivered twice, {late_repeats} of them after the last acknowledgement",
        running.len(),
        TASKS - running.len()
    );
    for a in &agents {
        a.drain(Duration::from_millis(200)).await;
    }
}
