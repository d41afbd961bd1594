//! A master, an agent with the process containerizer, and a framework
//! speaking the Mesos v1 scheduler API over loopback: real HTTP, real
//! processes.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::{Containerizer, TaskState};
use orchestrator_mesos::api::scheduler::{Event, EventType};
use orchestrator_mesos::testing::{process_agent, EventStream, LoopbackMaster, SchedulerClient};
use orchestrator_mesos::{Agent, AgentConfig, Cgroups, ProcessContainerizer};
use orchestrator_testkit::until;
use serde_json::{json, Value};

struct Framework {
    client: SchedulerClient,
    id: String,
    events: EventStream,
}

impl Framework {
    async fn subscribe(base: &str) -> Framework {
        let (client, events) = SchedulerClient::subscribe(base, "e2e").await;
        Framework {
            id: client.id.clone(),
            client,
            events,
        }
    }

    /// The next event of `kind`, skipping heartbeats and others.
    async fn next(&mut self, kind: EventType) -> Event {
        self.events.next_of(kind).await
    }

    async fn call(&self, body: Value) -> u16 {
        self.client.call(body).await
    }

    /// Accepts the next offer with the task `make` builds from it.
    async fn launch_with(&mut self, make: impl FnOnce(&orchestrator_core::Offer) -> Value) {
        let offer = self.next(EventType::Offers).await.offers.unwrap().offers.remove(0);
        let task = make(&offer);
        let status = self
            .call(json!({"framework_id": {"value": self.id}, "type": "ACCEPT", "accept": {
                "offer_ids": [{"value": offer.id.as_str()}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
                "filters": {"refuse_seconds": 0}}}))
            .await;
        assert_eq!(status, 202);
    }

    async fn launch(&mut self, task_id: &str, command: &str) {
        let offer = self.next(EventType::Offers).await.offers.unwrap().offers.remove(0);
        let status = self
            .call(json!({"framework_id": {"value": self.id}, "type": "ACCEPT", "accept": {
                "offer_ids": [{"value": offer.id.as_str()}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{"name": task_id,
                    "task_id": {"value": task_id}, "agent_id": {"value": offer.agent_id.as_str()},
                    "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},
                                  {"name":"mem","type":"SCALAR","scalar":{"value":32}}],
                    "command": {"value": command}}]}}],
                "filters": {"refuse_seconds": 0}}}))
            .await;
        assert_eq!(status, 202);
    }

    /// The next update, acknowledged unless `ack` is false.
    async fn update(&mut self, ack: bool) -> orchestrator_core::TaskStatus {
        let status = self.next(EventType::Update).await.update.unwrap().status;
        if ack {
            assert_eq!(self.client.acknowledge(&status).await, 202);
        }
        status
    }
}

/// An agent on `work` (fresh or left by an earlier agent), and its run task.
fn start_agent(base: &str, work: &std::path::Path, test: &str) -> (Agent, tokio::task::JoinHandle<()>) {
    process_agent(
        base,
        work,
        "cpus:2;mem:512",
        &format!("orch-e2e-{}-{test}", std::process::id()),
    )
}

/// Removes the test's work dir and (empty) cgroup root.
fn cleanup(test: &str, work: &std::path::Path) {
    if let Some(cg) = Cgroups::detect(&format!("orch-e2e-{}-{test}", std::process::id()), false) {
        cg.remove_if_empty();
    }
    let _ = std::fs::remove_dir_all(work);
}

/// A master on a free loopback port.
async fn master() -> LoopbackMaster {
    LoopbackMaster::start(Duration::from_millis(100), Duration::from_secs(1)).await
}

async fn cluster(test: &str) -> (LoopbackMaster, Agent, std::path::PathBuf) {
    let master = master().await;
    let work = std::env::temp_dir().join(format!("orch-e2e-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (agent, _run) = start_agent(&master.base, &work, test);
    (master, agent, work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_runs_a_real_process_to_completion() {
    let (loopback, agent, work) = cluster("finish").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    fw.launch("hello", "echo hello from $MESOS_TASK_ID; exit 0").await;
    let states: Vec<TaskState> = vec![
        fw.update(true).await.state,
        fw.update(true).await.state,
        fw.update(true).await.state,
    ];
    assert_eq!(
        states,
        vec![TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    let stdout = find(&work, "stdout").expect("the task's stdout in its sandbox");
    assert_eq!(std::fs::read_to_string(&stdout).unwrap(), "hello from hello\n");
    // Every update was acknowledged: nothing left to retry.
    for _ in 0..50 {
        if agent.unacknowledged() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(agent.unacknowledged(), 0);
    let state: Value = crate::get_json(format!("{base}/master/state")).await;
    assert_eq!(state["frameworks"][0]["completed_tasks"][0]["state"], "TASK_FINISHED");
    cleanup("finish", &work);
}

/// Mesos's task id rules: up to 255 bytes runs (sandbox, container,
/// checkpoint and cgroup names all fit), longer or with a `/` is refused
/// with TASK_ERROR naming the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_task_id_mesos_allows_runs_and_a_longer_one_is_refused() {
    let (loopback, _agent, work) = cluster("long-ids").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    for bad in ["a/b".to_string(), "x".repeat(256)] {
        fw.launch(&bad, "true").await;
        let status = fw.update(true).await;
        assert_eq!(status.state, TaskState::Error, "{status:?}");
        let message = status.message.unwrap_or_default();
        assert!(message.contains("Task ID is invalid"), "{message}");
    }
    let longest = "t".repeat(255);
    fw.launch(&longest, "exec sleep 30").await;
    assert_eq!(fw.update(true).await.state, TaskState::Starting);
    let running = fw.update(true).await;
    assert_eq!(
        (running.state, running.task_id.as_str().len()),
        (TaskState::Running, 255),
        "{running:?}"
    );
    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": longest}}}))
        .await;
    assert_eq!(code, 202);
    let mut end = fw.update(true).await.state;
    if end == TaskState::Killing {
        end = fw.update(true).await.state;
    }
    assert_eq!(end, TaskState::Killed);
    cleanup("long-ids", &work);
}

/// A torn-down framework's tasks are killed by the agent, and their status
/// updates (which nobody will acknowledge) are dropped, not retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_down_framework_s_tasks_end_and_its_updates_stop() {
    let (loopback, agent, work) = cluster("teardown").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    fw.launch("doomed", "echo $$ > pid; exec sleep 600").await;
    // Seen but not acknowledged: the agent keeps it, and RUNNING behind
    // it (a task's next update goes once the one before is acknowledged).
    assert_eq!(fw.update(false).await.state, TaskState::Starting);
    let pid_file = until("the task's pid", Duration::from_secs(10), async || find(&work, "pid")).await;
    until("STARTING and RUNNING kept", Duration::from_secs(10), async || {
        (agent.unacknowledged() == 2).then_some(())
    })
    .await;
    let pid: i32 = until("the task's pid written", Duration::from_secs(10), async || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;

    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "TEARDOWN"}))
        .await;
    assert_eq!(code, 202);
    until("the task's process gone", Duration::from_secs(15), async || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
    until("no update left to retry", Duration::from_secs(15), async || {
        (agent.unacknowledged() == 0).then_some(())
    })
    .await;
    // And none comes back: nothing is retried for a framework that is gone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(agent.unacknowledged(), 0);
    let state: Value = crate::get_json(format!("{base}/master/state")).await;
    assert_eq!(state["frameworks"].as_array().map(Vec::len), Some(0), "{state}");
    cleanup("teardown", &work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_through_the_api_and_unacknowledged_updates_are_retried() {
    let (loopback, _agent, work) = cluster("kill").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    fw.launch("sleeper", "exec sleep 60").await;
    assert_eq!(fw.update(true).await.state, TaskState::Starting);
    // RUNNING is not acknowledged: the agent must send it again.
    let first = fw.update(false).await;
    assert_eq!(first.state, TaskState::Running);
    let again = fw.update(true).await;
    assert_eq!(
        (again.state, again.uuid.clone()),
        (TaskState::Running, first.uuid.clone()),
        "the same update, retried"
    );

    let code = fw
        .call(
            json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": "sleeper"},
            "kill_policy": {"grace_period": {"nanoseconds": 1000000000}}}}),
        )
        .await;
    assert_eq!(code, 202);
    let mut seen = Vec::new();
    while seen.last() != Some(&TaskState::Killed) {
        seen.push(fw.update(true).await.state);
    }
    assert!(seen.contains(&TaskState::Killing), "{seen:?}");
    cleanup("kill", &work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_memory_is_failed_with_the_memory_reason() {
    let test = "a_task_over_its_memory_is_failed_with_the_memory_reason";
    if Cgroups::detect("probe", false).is_none() {
        orchestrator_testkit::missing("writable cgroups (memory, cpu)", test);
        return;
    }
    let (loopback, _agent, work) = cluster("oom").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    // The task has mem:32 and touches 300 MB.
    fw.launch("hog", "python3 -c \"x = b'x' * (300 * 1024 * 1024)\"").await;
    let mut last = fw.update(true).await;
    while !last.state.is_terminal() {
        last = fw.update(true).await;
    }
    assert_eq!(last.state, TaskState::Failed, "{last:?}");
    assert_eq!(
        last.reason,
        Some(orchestrator_core::TaskReason::ReasonContainerLimitationMemory),
        "{last:?}"
    );
    cleanup("oom", &work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_mesos_http_framework_library_runs_a_task() {
    let test = "an_existing_mesos_http_framework_library_runs_a_task";
    let Some(python) = orchestrator_testkit::python(test) else {
        return;
    };
    let (loopback, _agent, work) = cluster("mesoshttp").await;
    let base = loopback.base.clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/frameworks/mesoshttp_hello.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&base)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the framework ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mesoshttp framework failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("TASK_RUNNING") && stdout.contains("TASK_FINISHED"),
        "{stdout}"
    );
    let sandbox_out = find(&work, "stdout").expect("the task's sandbox");
    assert_eq!(std::fs::read_to_string(sandbox_out).unwrap(), "hello from mesoshttp\n");
    cleanup("mesoshttp", &work);
}

/// The first file named `name` below `dir`.
fn find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(found) = find(&p, name) {
                return Some(found);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_shows_its_tasks_and_serves_their_sandboxes() {
    let (loopback, agent, work) = cluster("files").await;
    let base = loopback.base.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_base = format!("http://{}", listener.local_addr().unwrap());
    let router = agent.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut fw = Framework::subscribe(&base).await;
    fw.launch("files", "echo hello sandbox; exec sleep 30").await;
    while fw.update(true).await.state != TaskState::Running {}

    let state: Value = crate::get_json(format!("{agent_base}/state")).await;
    assert_eq!(state["tasks"][0]["id"], "files", "{state}");
    assert_eq!(state["tasks"][0]["state"], "TASK_RUNNING");
    let sandbox = state["tasks"][0]["sandbox"].as_str().unwrap().to_string();
    let metrics: Value = crate::get_json(format!("{agent_base}/metrics/snapshot")).await;
    assert_eq!(metrics["slave/tasks_running"], 1.0);
    assert_eq!(metrics["slave/registered"], 1.0);

    let get = |q: String| {
        let url = format!("{agent_base}{q}");
        async move { reqwest::get(url).await.unwrap() }
    };
    let listing: Value = get(format!("/files/browse?path={sandbox}")).await.json().await.unwrap();
    let names: Vec<String> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("/stdout")) && names.iter().any(|n| n.ends_with("/stderr")),
        "{names:?}"
    );
    let stdout = format!("{sandbox}/stdout");
    // The task may still be flushing: wait for its line.
    let mut read: Value = Value::Null;
    for _ in 0..50 {
        read = get(format!("/files/read?path={stdout}&offset=0&length=5"))
            .await
            .json()
            .await
            .unwrap();
        if read["data"] == "hello" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read, json!({"data": "hello", "offset": 0}));
    let size: Value = get(format!("/files/read?path={stdout}&offset=-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(size["offset"], 14);
    assert_eq!(get("/files/read?path=/etc/passwd".into()).await.status(), 403);
    assert_eq!(
        get(format!("/files/read?path={sandbox}/../../../../../../etc/passwd"))
            .await
            .status(),
        403
    );
    assert_eq!(get(format!("/files/read?path={sandbox}/nope")).await.status(), 404);
    assert_eq!(get(format!("/files/read?path={stdout}&offset=-7")).await.status(), 400);

    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": "files"}}}))
        .await;
    assert_eq!(code, 202);
    while fw.update(true).await.state != TaskState::Killed {}
    cleanup("files", &work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_recovers_its_running_task() {
    let work = std::env::temp_dir().join(format!("orch-e2e-{}-restart", std::process::id()));
    let (loopback, first, _) = cluster("restart").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    fw.launch("survivor", "echo $$ > pid; exec sleep 60").await;
    while fw.update(true).await.state != TaskState::Running {}
    let id = first.id().expect("registered");
    // RUNNING means started, not that the task's first line has run.
    let pid_file = until("the task's pid", Duration::from_secs(10), async || find(&work, "pid")).await;
    let pid: i32 = until("the task's pid written", Duration::from_secs(10), async || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;

    // The agent crashes: all its work in this process stops; the task runs on.
    first.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the task outlives its agent"
    );

    let (second, _run) = start_agent(&base, &work, "restart");
    for _ in 0..100 {
        if second.registered() && second.unacknowledged() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(second.registered(), "the restarted agent re-registered");
    assert_eq!(second.id(), Some(id), "same agent id after the restart");
    let state: Value = crate::get_json(format!("{base}/master/state")).await;
    assert_eq!(state["slaves"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["frameworks"][0]["tasks"][0]["id"], "survivor");

    // The recovered task is still under control: kill it through the master.
    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": "survivor"}}}))
        .await;
    assert_eq!(code, 202);
    let mut last = fw.update(true).await;
    while !last.state.is_terminal() {
        last = fw.update(true).await;
    }
    assert_eq!(last.state, TaskState::Killed, "{last:?}");
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the recovered task was killed"
    );
    second.shutdown();
    cleanup("restart", &work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_task_runs_through_master_and_agent() {
    let test = "a_docker_task_runs_through_master_and_agent";
    let Some(env) = orchestrator_testkit::docker(test) else {
        return;
    };
    let loopback = master().await;
    let base = loopback.base.clone();
    let work = std::env::temp_dir().join(format!("orch-e2e-{}-docker-agent", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let port = orchestrator_testkit::free_port();
    let agent = docker_agent(
        &base,
        &work,
        &env.host,
        &format!("cpus:2;mem:512;ports:[{port}-{port}]"),
    )
    .await;

    let mut fw = Framework::subscribe(&base).await;
    let image = env.busybox_image.clone();
    // Only the docker agent has ports: take its offer.
    let mut offer_agent = String::new();
    fw.launch_with(|offer| {
        offer_agent = offer.agent_id.to_string();
        json!({"name": "web", "task_id": {"value": "web"}, "agent_id": {"value": offer.agent_id.as_str()},
            "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":0.2}},
                          {"name":"mem","type":"SCALAR","scalar":{"value":64}},
                          {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":port,"end":port}]}}],
            "command": {"value": "echo hello from docker; mkdir -p /www; exec httpd -f -p $PORT0 -h /www"},
            "container": {"type": "DOCKER", "docker": {"image": image, "network": "HOST"}}})
    })
    .await;
    let mut states = Vec::new();
    while states.last() != Some(&TaskState::Running) {
        let s = fw.update(true).await;
        assert!(!s.state.is_terminal(), "{s:?} (offer from {offer_agent})");
        states.push(s.state);
    }
    // The container serves on the task's port, on the host's network.
    let mut answered = false;
    for _ in 0..50 {
        if reqwest::get(format!("http://127.0.0.1:{port}/")).await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "nothing answered on port {port}");
    let stdout = find(&work, "stdout").expect("the container's sandbox");
    let mut out = String::new();
    for _ in 0..50 {
        out = std::fs::read_to_string(&stdout).unwrap_or_default();
        if out.contains("hello from docker") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out.contains("hello from docker"), "{out:?}");

    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": "web"}}}))
        .await;
    assert_eq!(code, 202);
    let mut last = fw.update(true).await;
    while !last.state.is_terminal() {
        last = fw.update(true).await;
    }
    assert_eq!(last.state, TaskState::Killed, "{last:?}");
    agent.shutdown();
    let _ = std::fs::remove_dir_all(&work);
}

/// An agent running docker then process containers on `work`.
async fn docker_agent(base: &str, work: &std::path::Path, host: &str, resources: &str) -> Agent {
    let docker: Arc<dyn Containerizer> = Arc::new(
        orchestrator_mesos::DockerContainerizer::connect(host, &work.to_string_lossy())
            .await
            .unwrap(),
    );
    let process: Arc<dyn Containerizer> = Arc::new(ProcessContainerizer::with_cgroups(work, None).unwrap());
    let mut config = AgentConfig::new(base, resources.parse().unwrap(), work);
    config.update_retry = Duration::from_millis(300);
    config.heartbeat_interval = Duration::from_millis(500);
    let agent = Agent::new(config, vec![docker, process]);
    tokio::spawn(agent.clone().run());
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_recovers_its_running_container() {
    let test = "a_restarted_agent_recovers_its_running_container";
    let Some(env) = orchestrator_testkit::docker(test) else {
        return;
    };
    let loopback = master().await;
    let base = loopback.base.clone();
    let work = std::env::temp_dir().join(format!("orch-e2e-{}-docker-restart", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let first = docker_agent(&base, &work, &env.host, "cpus:2;mem:512").await;
    let mut fw = Framework::subscribe(&base).await;
    let image = env.busybox_image.clone();
    fw.launch_with(|offer| {
        json!({"name": "box", "task_id": {"value": "box"}, "agent_id": {"value": offer.agent_id.as_str()},
            "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":0.2}},
                          {"name":"mem","type":"SCALAR","scalar":{"value":64}}],
            "command": {"value": "trap 'exit 0' TERM; while true; do sleep 0.2; done"},
            "container": {"type": "DOCKER", "docker": {"image": image}}})
    })
    .await;
    while fw.update(true).await.state != TaskState::Running {}
    let id = first.id().expect("registered");

    first.shutdown();
    let second = docker_agent(&base, &work, &env.host, "cpus:2;mem:512").await;
    for _ in 0..100 {
        if second.registered() && second.unacknowledged() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.id(), Some(id), "same agent id after the restart");
    let state: Value = crate::get_json(format!("{base}/master/state")).await;
    assert_eq!(state["frameworks"][0]["tasks"][0]["id"], "box", "{state}");

    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": "box"}}}))
        .await;
    assert_eq!(code, 202);
    let mut last = fw.update(true).await;
    while !last.state.is_terminal() {
        last = fw.update(true).await;
    }
    assert_eq!(last.state, TaskState::Killed, "{last:?}");
    second.shutdown();
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_agent_leaves_nothing_running_and_reports_every_end() {
    let (loopback, agent, work) = cluster("drain").await;
    let base = loopback.base.clone();
    let mut fw = Framework::subscribe(&base).await;
    // Ignores SIGTERM: the drain's grace must end in SIGKILL.
    fw.launch("stubborn", "trap '' TERM; echo $$ > pid; while true; do sleep 1; done")
        .await;
    while fw.update(true).await.state != TaskState::Running {}
    // Running means started: the shell writes its pid a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pid: i32 = loop {
        let written = find(&work, "pid")
            .and_then(|f| std::fs::read_to_string(f).ok())
            .filter(|t| t.ends_with('\n'));
        if let Some(pid) = written.and_then(|t| t.trim().parse().ok()) {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "the task wrote its pid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert_eq!(agent.drain(Duration::from_millis(500)).await, 1);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "the task is gone: {stat}");
    let mut last = fw.update(true).await;
    while !last.state.is_terminal() {
        last = fw.update(true).await;
    }
    assert_eq!(last.state, TaskState::Killed, "the master heard how it ended: {last:?}");
    let state: Value = crate::get_json(format!("{base}/master/state")).await;
    assert_eq!(
        state["frameworks"][0]["tasks"].as_array().map(Vec::len),
        Some(0),
        "{state}"
    );
    // It unregistered: the master forgets it (a later leader will not wait
    // for it), and the agent forgets the id it had.
    assert_eq!(state["slaves"].as_array().map(Vec::len), Some(0), "{state}");
    assert_eq!(agent.id(), None);
    assert_eq!(
        agent.drain(Duration::from_millis(500)).await,
        0,
        "draining twice is harmless"
    );
    cleanup("drain", &work);
}

/// The sandbox of `task` under `work` (`sandboxes/<framework>/<task>-…`).
fn sandbox_of(work: &std::path::Path, task: &str) -> Option<std::path::PathBuf> {
    let prefix = format!("{task}-");
    std::fs::read_dir(work.join("sandboxes"))
        .ok()?
        .flatten()
        .flat_map(|fw| std::fs::read_dir(fw.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
}

impl Framework {
    /// Launches `task` and acknowledges updates until it ends; its end.
    async fn run_to_end(&mut self, task: &str, command: &str) -> TaskState {
        self.launch(task, command).await;
        loop {
            let status = self.update(true).await;
            if status.task_id.as_str() == task && status.state.is_terminal() {
                return status.state;
            }
        }
    }
}

/// As Mesos's agent: the sandbox of an ended task is removed once older
/// than `gc_delay` (shortened the fuller the disk), a running task's never;
/// sandboxes of tasks that ended before the agent restarted are found at
/// the restart and removed as well; the agent counts its removals as
/// Mesos's `gc/path_removals_*` metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_tasks_sandboxes_are_collected_running_ones_kept() {
    const TEST: &str = "gc";
    let loopback = master().await;
    let base = loopback.base.clone();
    let work = std::env::temp_dir().join(format!("orch-e2e-{}-{TEST}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    // The first agent keeps sandboxes a week (Mesos's default).
    let (first, _run) = start_agent(&base, &work, TEST);
    let mut fw = Framework::subscribe(&base).await;
    fw.launch("long", "exec sleep 60").await;
    while fw.update(true).await.state != TaskState::Running {}
    assert_eq!(fw.run_to_end("before", "echo before").await, TaskState::Finished);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sandbox_of(&work, "before").expect("an ended task's sandbox is kept for a while");
    let long = sandbox_of(&work, "long").expect("the running task's sandbox");
    first.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Restarted with a 1 s delay and no headroom, checking every 100 ms.
    let (second, _run) = orchestrator_mesos::testing::process_agent_with(
        &base,
        &work,
        "cpus:2;mem:512",
        &format!("orch-e2e-{}-{TEST}", std::process::id()),
        |c| {
            c.gc_delay = Duration::from_secs(1);
            c.gc_disk_headroom = 0.0;
            c.disk_watch_interval = Duration::from_millis(100);
        },
    );
    until("the restarted agent registered", Duration::from_secs(10), async || {
        second.registered().then_some(())
    })
    .await;
    until(
        "the sandbox left from before the restart removed",
        Duration::from_secs(10),
        async || (!before.exists()).then_some(()),
    )
    .await;
    // A task that ends on this agent: its sandbox goes too (an offer from
    // before the restart may be refused: then again).
    let mut after = None;
    for attempt in 0..3 {
        let task = format!("after-{attempt}");
        if fw.run_to_end(&task, "echo after").await == TaskState::Finished {
            after = Some(task);
            break;
        }
    }
    let after = after.expect("a task runs to its end on the restarted agent");
    until(
        "the ended task's sandbox removed",
        Duration::from_secs(10),
        async || sandbox_of(&work, &after).is_none().then_some(()),
    )
    .await;
    assert!(long.join("stdout").exists(), "the running task's sandbox is kept");
    let metrics: Value = {
        use tower::ServiceExt;
        let request = axum::http::Request::get("/metrics/snapshot")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = second.router().oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    assert!(metrics["gc/path_removals_succeeded"].as_f64() >= Some(2.0), "{metrics}");
    assert_eq!(metrics["gc/path_removals_failed"], 0.0, "{metrics}");

    let code = fw
        .call(json!({"framework_id": {"value": fw.id}, "type": "KILL", "kill": {"task_id": {"value": "long"}}}))
        .await;
    assert_eq!(code, 202);
    loop {
        let status = fw.update(true).await;
        if status.task_id.as_str() == "long" && status.state.is_terminal() {
            break;
        }
    }
    second.shutdown();
    cleanup(TEST, &work);
}
