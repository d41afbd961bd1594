//! The Marathon-style framework against a real master and agent over
//! loopback, running real processes: deploy, scale up and down, a killed
//! process replaced after its backoff, apps kept in the store across a
//! scheduler restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::{MemStore, StateStore, TaskState};
use orchestrator_mesos::marathon::{AppDefinition, Marathon, MarathonConfig};
use orchestrator_mesos::testing::{process_agent, LoopbackMaster};
use orchestrator_mesos::{Agent, HttpMasterClient, MasterClient, MasterHandle};
use orchestrator_testkit::until_true as until;

/// A master on loopback; the caller keeps it alive.
async fn master() -> LoopbackMaster {
    LoopbackMaster::start(Duration::from_millis(100), Duration::from_secs(1)).await
}

fn agent(addr: &str, work: &Path) -> Agent {
    agent_with(addr, work, "cpus:4;mem:2048;ports:[31000-31100]")
}

fn agent_with(addr: &str, work: &Path, resources: &str) -> Agent {
    // One cgroup root per agent: the tests run side by side.
    let name = work
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let cgroup_root = format!("orch-marathon-{}-{name}", std::process::id());
    process_agent(&format!("http://{addr}"), work, resources, &cgroup_root).0
}

fn running(m: &Marathon, app: &str) -> usize {
    m.with(|s| {
        s.instances()
            .filter(|i| i.app_id == app && i.state == TaskState::Running && !i.killing)
            .count()
    })
}

/// What the scheduler and the master hold, for a timeout's message.
fn diagnose(m: &Marathon, handle: &MasterHandle) -> String {
    let now = Instant::now();
    let sched = m.with(|s| {
        format!(
            "instances {:?}; wanted {:?}; delays {:?}; deployments {}",
            s.instances()
                .map(|i| (i.task_id.to_string(), i.state, i.killing))
                .collect::<Vec<_>>(),
            s.launches_wanted(now)
                .iter()
                .map(|(a, n)| (a.id.clone(), *n))
                .collect::<Vec<_>>(),
            s.apps()
                .map(|a| (a.def.id.clone(), a.delay.failures))
                .collect::<Vec<_>>(),
            s.deployments().count()
        )
    });
    let master = handle.with_master(|ms| {
        format!(
            "agents {}, offers {}, tasks {:?}",
            ms.agents().len(),
            ms.offers().count(),
            ms.frameworks()
                .values()
                .flat_map(|f| f.tasks.values().map(|t| t.state))
                .collect::<Vec<_>>()
        )
    });
    format!("{sched}; master: {master}")
}

fn app(json: &str) -> AppDefinition {
    AppDefinition::from_json(json.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_deploy_scale_heal_and_survive_a_scheduler_restart() {
    let loopback = master().await;
    let (handle, addr) = (loopback.handle.clone(), loopback.addr.clone());
    let work = std::env::temp_dir().join(format!("orch-marathon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let _agent = agent(&addr, &work.join("agent"));
    let pids: PathBuf = work.join("pids");
    std::fs::create_dir_all(&pids).unwrap();

    // In-process client, as the all-in-one embeds it.
    let store: Arc<dyn StateStore> = Arc::new(MemStore::new());
    let client: Arc<dyn MasterClient> = Arc::new(handle.clone());
    let config = MarathonConfig {
        tick: Duration::from_millis(100),
        ..MarathonConfig::default()
    };
    let (m, run) = Marathon::start(client, store.clone(), config.clone()).await.unwrap();
    let cmd = format!("echo $$ > {}/$MESOS_TASK_ID; exec sleep 600", pids.display());
    let def = app(&serde_json::json!({"id": "/sleepy", "cmd": cmd, "cpus": 0.1, "mem": 16,
        "backoffSeconds": 0.5, "backoffFactor": 2})
    .to_string());
    let d = m.put_app(def.clone(), false).await.unwrap().unwrap().unwrap();
    assert_eq!(d.steps.len(), 2);
    until("1 running", Duration::from_secs(20), || running(&m, "/sleepy") == 1).await;
    until("the deployment to finish", Duration::from_secs(10), || {
        m.with(|s| s.deployments().count() == 0)
    })
    .await;

    // Scale 1 → 5 → 2.
    let mut five = def.clone();
    five.instances = 5;
    m.put_app(five, false).await.unwrap().unwrap();
    until("5 running", Duration::from_secs(20), || running(&m, "/sleepy") == 5).await;
    let mut two = def.clone();
    two.instances = 2;
    // Locked until the scale-up's deployment is over (it may still be finishing).
    until("the scale-up to finish", Duration::from_secs(10), || {
        m.with(|s| s.deployments().count() == 0)
    })
    .await;
    m.put_app(two, false).await.unwrap().unwrap();
    until("2 left", Duration::from_secs(20), || {
        m.with(|s| s.instances().filter(|i| i.app_id == "/sleepy").count()) == 2
    })
    .await;

    // A killed process is replaced, after the backoff.
    let victim = m.with(|s| s.instances().next().unwrap().task_id.clone());
    let pid: i32 = std::fs::read_to_string(pids.join(victim.as_str()))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let killed_at = Instant::now();
    assert!(std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    until("the victim to be gone", Duration::from_secs(10), || {
        m.with(|s| s.instance(&victim).is_none())
    })
    .await;
    until("a replacement", Duration::from_secs(20), || running(&m, "/sleepy") == 2).await;
    assert!(
        killed_at.elapsed() >= Duration::from_millis(500),
        "replaced before its backoff"
    );
    assert_eq!(m.with(|s| s.app("/sleepy").unwrap().delay.failures), 1);

    // Restarted on the same store, over HTTP this time: it knows its app
    // and framework id, and keeps two instances.
    run.abort();
    drop(m);
    let http: Arc<dyn MasterClient> = Arc::new(HttpMasterClient::new(&addr));
    let (m2, _run2) = Marathon::start(http, store, config).await.unwrap();
    assert_eq!(m2.with(|s| s.app("/sleepy").map(|a| a.def.instances)), Some(2));
    until("the same framework id", Duration::from_secs(10), || {
        m2.framework_id().is_some()
    })
    .await;
    assert_eq!(
        m2.with(|s| s.instances().count()),
        2,
        "instances are recovered from the store"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks = handle.with_master(|ms| ms.frameworks().values().map(|f| f.tasks.len()).sum::<usize>());
    assert_eq!(tasks, 2, "nothing launched twice after the restart");
    assert_eq!(running(&m2, "/sleepy"), 2);

    // Deleting the app kills its processes.
    let _ = m2.delete_app("/sleepy", true).await.unwrap();
    until("the app to go", Duration::from_secs(20), || {
        handle.with_master(|ms| ms.frameworks().values().all(|f| f.tasks.is_empty()))
    })
    .await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Marathon's `/v2` API as a Marathon client uses it, over HTTP, with
/// real processes behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_api_deploys_scales_locks_validates_and_streams_events() {
    use futures_util::StreamExt;
    use serde_json::{json, Value};
    let Stack {
        loopback,
        agent: _agent,
        m,
        base,
        work,
        api: _,
    } = stack("api", Arc::new(MemStore::new())).await;
    let handle = loopback.handle.clone();
    let http = reqwest::Client::new();

    // Events for the app, in order, from the start.
    let sse = http
        .get(format!("{base}/v2/events?event_type=status_update_event"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut sse = sse.bytes_stream();

    assert_eq!(
        http.get(format!("{base}/ping"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "pong"
    );
    let bad = http
        .post(format!("{base}/v2/apps"))
        .body(r#"{"id": "/web", "cmd": "sleep 600", "cpus": -1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["details"][0]["path"], "/cpus");
    assert_eq!(
        http.post(format!("{base}/v2/apps"))
            .body("{")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let created = http
        .post(format!("{base}/v2/apps"))
        .json(&json!({"id": "/web", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "labels": {"tier": "front"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("Marathon-Deployment-Id"));
    let again = http
        .post(format!("{base}/v2/apps"))
        .json(&json!({"id": "/web", "cmd": "sleep 600"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let deadline = Instant::now() + Duration::from_secs(20);
    while running(&m, "/web") != 1 {
        assert!(
            Instant::now() < deadline,
            "no instance running: {}",
            diagnose(&m, &handle)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The status events of the first instance arrive in order.
    let mut seen = Vec::new();
    let mut buf = String::new();
    while !seen.iter().any(|s: &String| s == "TASK_RUNNING") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                let e: Value = serde_json::from_str(data.trim()).unwrap();
                assert_eq!(e["eventType"], "status_update_event");
                seen.push(e["taskStatus"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("TASK_RUNNING"), "{seen:?}");

    // List with embedded tasks and a label filter.
    let apps: Value = crate::get_json(format!("{base}/v2/apps?embed=apps.tasks&label=tier==front")).await;
    assert_eq!(apps["apps"][0]["id"], "/web");
    assert_eq!(apps["apps"][0]["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(apps["apps"][0]["instances"], 1);

    // The deployment ends once its instance runs (the scheduler's next
    // round, just after the update); clients wait for it as for Marathon's.
    until("the deployment of /web", Duration::from_secs(20), || {
        m.with(|s| s.deployments().count() == 0)
    })
    .await;
    let listed: Value = crate::get_json(format!("{base}/v2/deployments")).await;
    assert_eq!(listed, json!([]));

    // Scale with a partial PUT, as Marathon clients do.
    let scaled = http
        .put(format!("{base}/v2/apps/web"))
        .json(&json!({"instances": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(scaled.status(), 200);
    let d: Value = scaled.json().await.unwrap();
    assert!(d["deploymentId"].is_string());
    // While that deployment runs, a change is locked (unless forced); a
    // deployment that cannot finish (no room for 1,000 instances) is stuck.
    let stuck = http
        .put(format!("{base}/v2/apps/web"))
        .json(&json!({"instances": 1000}))
        .send()
        .await
        .unwrap();
    assert!(stuck.status() == 200 || stuck.status() == 409, "{}", stuck.status());
    if stuck.status() == 409 {
        until("the scale to 3", Duration::from_secs(20), || {
            m.with(|s| s.deployments().count() == 0)
        })
        .await;
        assert_eq!(
            http.put(format!("{base}/v2/apps/web"))
                .json(&json!({"instances": 1000}))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let locked = http
        .put(format!("{base}/v2/apps/web"))
        .json(&json!({"instances": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), 409);
    let body: Value = locked.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("App is locked"), "{body}");
    let forced = http
        .put(format!("{base}/v2/apps/web?force=true"))
        .json(&json!({"instances": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 200);
    until("2 running", Duration::from_secs(20), || {
        running(&m, "/web") == 2 && m.with(|s| s.instances().count()) == 2
    })
    .await;
    let deployments: Value = crate::get_json(format!("{base}/v2/deployments")).await;
    let tasks: Value = crate::get_json(format!("{base}/v2/apps/web/tasks")).await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 2, "{deployments}");
    let versions: Value = crate::get_json(format!("{base}/v2/apps/web/versions")).await;
    assert!(!versions["versions"].as_array().unwrap().is_empty());
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("marathon_tasks_running 2"), "{metrics}");
    orchestrator_testkit::promtool_check(&metrics, "the_v2_api (/metrics)");
    let missing = http.get(format!("{base}/v2/apps/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The task list as Marathon serves it: filtered by status, and in the
    // text form old load balancers read (app, service port, host:port…).
    let running: Value = crate::get_json(format!("{base}/v2/tasks?status=running")).await;
    assert_eq!(running["tasks"].as_array().unwrap().len(), 2, "{running}");
    let staging: Value = crate::get_json(format!("{base}/v2/tasks?status=staging")).await;
    assert_eq!(staging["tasks"].as_array().unwrap().len(), 0, "{staging}");
    let text = http
        .get(format!("{base}/v2/tasks"))
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("web\t"))
        .unwrap_or_else(|| panic!("{text}"));
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert!(
        fields[1].parse::<u32>().is_ok_and(|p| (10_000..=20_000).contains(&p)),
        "{line}"
    );
    assert_eq!(fields.len(), 4, "two host:port entries: {line}");
    let subscriptions = http.get(format!("{base}/v2/eventSubscriptions")).send().await.unwrap();
    assert_eq!(subscriptions.status(), 400);

    // Killing a task with scale=true shrinks the app through a deployment.
    let victim = tasks["tasks"][0]["id"].as_str().unwrap().to_string();
    let killed = http
        .post(format!("{base}/v2/tasks/delete?scale=true"))
        .json(&serde_json::json!({"ids": [victim]}))
        .send()
        .await
        .unwrap();
    assert_eq!(killed.status(), 200);
    assert!(killed.headers().contains_key("marathon-deployment-id"));
    let body: Value = killed.json().await.unwrap();
    assert!(
        body["deploymentId"].is_string() && body["version"].is_string(),
        "{body}"
    );
    until("the app to shrink to one running task", Duration::from_secs(20), || {
        m.with(|s| {
            s.app("/web").is_some_and(|a| a.def.instances == 1)
                && s.instances_of("/web").filter(|i| !i.killing).count() == 1
                && s.deployments().next().is_none()
        })
    })
    .await;

    let gone = http.delete(format!("{base}/v2/apps/web")).send().await.unwrap();
    assert_eq!(gone.status(), 200);
    until("no task left", Duration::from_secs(20), || {
        handle.with_master(|ms| ms.frameworks().values().all(|f| f.tasks.is_empty()))
    })
    .await;
    until("the app to go", Duration::from_secs(10), || {
        m.with(|s| s.app("/web").is_none())
    })
    .await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Health checks against real HTTP servers: a healthy app's deployment
/// waits for health; a failing check gets its instance replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_gate_deployments_and_replace_failing_instances() {
    let loopback = master().await;
    let (handle, addr) = (loopback.handle.clone(), loopback.addr.clone());
    let work = std::env::temp_dir().join(format!("orch-marathon-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    // The servers really bind their ports: offer ports that are free now.
    let ports: Vec<String> = (0..6)
        .map(|_| orchestrator_testkit::free_port())
        .map(|p| format!("{p}-{p}"))
        .collect();
    let _agent = agent_with(&addr, &work, &format!("cpus:4;mem:2048;ports:[{}]", ports.join(",")));
    let client: Arc<dyn MasterClient> = Arc::new(handle.clone());
    let config = MarathonConfig {
        tick: Duration::from_millis(100),
        ..MarathonConfig::default()
    };
    let (m, _run) = Marathon::start(client, Arc::new(MemStore::new()), config)
        .await
        .unwrap();
    let server = "exec python3 -m http.server $PORT0 --bind 127.0.0.1";
    let healthy = app(
        &serde_json::json!({"id": "/good", "cmd": server, "cpus": 0.1, "mem": 64,
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
            "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}]})
        .to_string(),
    );
    let failing = app(&serde_json::json!({"id": "/bad", "cmd": server, "cpus": 0.1, "mem": 64,
        "backoffSeconds": 0.1,
        "healthChecks": [{"protocol": "HTTP", "path": "/missing", "portIndex": 0, "gracePeriodSeconds": 2,
            "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}]})
    .to_string());
    // An HTTPS server with a self-signed certificate: the check does not
    // verify it (as Marathon's does not), but does speak TLS to it.
    let (cert, key) = orchestrator_testkit::self_signed_cert(&work, "localhost", "health_checks")
        .expect("openssl made no certificate");
    let tls_server = format!(
        "exec python3 -c \"import http.server,ssl,sys;s=http.server.HTTPServer(('127.0.0.1',int(sys.argv[1])),http.server.SimpleHTTPRequestHandler);c=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER);c.load_cert_chain(sys.argv[2],sys.argv[3]);s.socket=c.wrap_socket(s.socket,server_side=True);s.serve_forever()\" $PORT0 {} {}",
        cert.display(),
        key.display()
    );
    let tls = app(
        &serde_json::json!({"id": "/tls", "cmd": tls_server, "cpus": 0.1, "mem": 64,
        "healthChecks": [{"protocol": "HTTPS", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
            "intervalSeconds": 2, "timeoutSeconds": 2, "maxConsecutiveFailures": 3}]})
        .to_string(),
    );
    m.put_app(healthy, false).await.unwrap().unwrap();
    m.put_app(failing, false).await.unwrap().unwrap();
    m.put_app(tls, false).await.unwrap().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while !m.with(|s| s.instances().any(|i| i.app_id == "/good" && i.healthy == Some(true))) {
        let state = m.with(|s| {
            s.instances()
                .map(|i| {
                    (
                        i.task_id.clone(),
                        i.state,
                        i.ports.clone(),
                        i.healthy,
                        m.health_of(&i.task_id),
                    )
                })
                .collect::<Vec<_>>()
        });
        let master = handle.with_master(|ms| (ms.agents().len(), ms.frameworks().len(), ms.offers().count()));
        assert!(
            Instant::now() < deadline,
            "/good never became healthy: {state:?}; master agents, frameworks, offers: {master:?}; framework {:?}; queue {:?}",
            m.framework_id(),
            m.with(|s| s.launches_wanted(Instant::now()).iter().map(|(a, n)| (a.id.clone(), *n)).collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let good = m.with(|s| s.instances().find(|i| i.app_id == "/good").unwrap().task_id.clone());
    assert!(m.health_of(&good)[0].alive);
    until("/tls to pass its HTTPS check", Duration::from_secs(30), || {
        m.with(|s| s.instances().any(|i| i.app_id == "/tls" && i.healthy == Some(true)))
    })
    .await;
    until("/good's deployment to finish", Duration::from_secs(10), || {
        m.with(|s| s.deployments().all(|d| d.app_id != "/good"))
    })
    .await;
    // /bad never becomes healthy, so its deployment stays open, and its
    // instance is killed and replaced.
    until("a /bad instance", Duration::from_secs(20), || {
        m.with(|s| s.instances().any(|i| i.app_id == "/bad" && !i.killing))
    })
    .await;
    let first = m.with(|s| {
        s.instances()
            .find(|i| i.app_id == "/bad" && !i.killing)
            .unwrap()
            .task_id
            .clone()
    });
    until("/bad to be replaced", Duration::from_secs(30), || {
        m.with(|s| {
            s.instances()
                .any(|i| i.app_id == "/bad" && i.task_id != first && !i.killing)
        }) && m.with(|s| s.instance(&first).is_none())
    })
    .await;
    assert!(m.with(|s| s.deployments().any(|d| d.app_id == "/bad")));
    for id in ["/good", "/bad", "/tls"] {
        m.delete_app(id, true).await.unwrap().unwrap();
    }
    until("no task left", Duration::from_secs(20), || {
        handle.with_master(|ms| ms.frameworks().values().all(|f| f.tasks.is_empty()))
    })
    .await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Apps, instances and the framework id kept in a real ZooKeeper: a new
/// scheduler process (new session) takes over without launching twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_in_zookeeper_survives_a_scheduler_restart() {
    let Some(zk) = orchestrator_testkit::zookeeper("state_in_zookeeper_survives_a_scheduler_restart") else {
        return;
    };
    let root = format!("/marathon-test-{}", std::process::id());
    let loopback = master().await;
    let (handle, addr) = (loopback.handle.clone(), loopback.addr.clone());
    let work = std::env::temp_dir().join(format!("orch-marathon-zk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let _agent = agent(&addr, &work);
    let config = MarathonConfig {
        tick: Duration::from_millis(100),
        ..MarathonConfig::default()
    };
    let store: Arc<dyn StateStore> = Arc::new(orchestrator_mesos::ZkStore::connect(&zk.address, &root).await.unwrap());
    let client: Arc<dyn MasterClient> = Arc::new(HttpMasterClient::new(&addr));
    let (m, run) = Marathon::start(client, store, config.clone()).await.unwrap();
    let def = app(r#"{"id": "/kept", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 3}"#);
    m.put_app(def, false).await.unwrap().unwrap();
    until("3 running", Duration::from_secs(20), || running(&m, "/kept") == 3).await;
    let framework = m.framework_id();
    run.abort();
    drop(m);

    let store: Arc<dyn StateStore> = Arc::new(orchestrator_mesos::ZkStore::connect(&zk.address, &root).await.unwrap());
    let client: Arc<dyn MasterClient> = Arc::new(HttpMasterClient::new(&addr));
    let (m2, _run) = Marathon::start(client, store.clone(), config).await.unwrap();
    assert_eq!(
        m2.with(|s| s.instances().count()),
        3,
        "instances read back from ZooKeeper"
    );
    until("the framework to resubscribe", Duration::from_secs(10), || {
        m2.framework_id().is_some()
    })
    .await;
    assert_eq!(m2.framework_id(), framework, "the same framework id");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tasks = handle.with_master(|ms| ms.frameworks().values().map(|f| f.tasks.len()).sum::<usize>());
    assert_eq!(tasks, 3, "nothing launched twice, nothing forgotten");
    let _ = m2.delete_app("/kept", true).await.unwrap();
    until("no task left", Duration::from_secs(20), || {
        handle.with_master(|ms| ms.frameworks().values().all(|f| f.tasks.is_empty()))
    })
    .await;
    let _ = store.delete_recursive("/").await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Serves one HA candidate on a fresh loopback port; returns its address.
async fn candidate(zk: &str, root: &str, master: &str) -> (String, tokio::task::JoinHandle<()>) {
    use orchestrator_mesos::marathon::{ha, http::ApiInfo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let store: Arc<dyn StateStore> = Arc::new(orchestrator_mesos::ZkStore::connect(zk, root).await.unwrap());
    let election = orchestrator_mesos::LeaderElection::connect(zk, &format!("{root}/leader"))
        .await
        .unwrap();
    let (router, campaign) = ha::serve_elected(
        election,
        ha::Candidate {
            client: Arc::new(HttpMasterClient::new(master)),
            store,
            config: MarathonConfig {
                tick: Duration::from_millis(100),
                ..MarathonConfig::default()
            },
            info: ApiInfo {
                master: master.to_string(),
                http_address: api.clone(),
            },
        },
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (api, campaign)
}

async fn leader_of(http: &reqwest::Client, api: &str) -> Option<String> {
    let r = http.get(format!("http://{api}/v2/leader")).send().await.ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    v["leader"].as_str().map(str::to_string)
}

/// Two schedulers on one ZooKeeper: one leads, the standby proxies the API
/// to it; after `DELETE /v2/leader` the standby takes over with the same
/// framework id and the running tasks, launching nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_elect_a_leader_and_fail_over() {
    let Some(zk) = orchestrator_testkit::zookeeper("two_schedulers_elect_a_leader_and_fail_over") else {
        return;
    };
    let root = format!("/marathon-ha-{}", std::process::id());
    let loopback = master().await;
    let (handle, addr) = (loopback.handle.clone(), loopback.addr.clone());
    let work = std::env::temp_dir().join(format!("orch-marathon-ha-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let _agent = agent(&addr, &work);
    let http = reqwest::Client::new();

    let (a, campaign_a) = candidate(&zk.address, &root, &addr).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while leader_of(&http, &a).await.as_deref() != Some(a.as_str()) {
        assert!(Instant::now() < deadline, "the first candidate never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (b, campaign_b) = candidate(&zk.address, &root, &addr).await;
    assert_eq!(
        leader_of(&http, &b).await.as_deref(),
        Some(a.as_str()),
        "the standby knows the leader"
    );

    // The standby proxies writes and reads to the leader.
    let created = http
        .post(format!("http://{b}/v2/apps"))
        .json(&serde_json::json!({"id": "/ha", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "created through the standby");
    assert!(created.headers().contains_key("marathon-deployment-id"));
    let tasks_running = |api: String| {
        let http = http.clone();
        async move {
            let v: serde_json::Value = http
                .get(format!("http://{api}/v2/apps/ha/tasks"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let tasks = v["tasks"].as_array()?.clone();
            Some(tasks.iter().filter(|t| t["state"] == "TASK_RUNNING").count())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tasks_running(b.clone()).await != Some(2) {
        assert!(Instant::now() < deadline, "2 tasks never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let framework = handle.with_master(|ms| ms.frameworks().keys().cloned().collect::<Vec<_>>());
    assert_eq!(framework.len(), 1);

    // The leader abdicates; the standby takes over.
    let abdicated = http.delete(format!("http://{a}/v2/leader")).send().await.unwrap();
    assert_eq!(abdicated.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while leader_of(&http, &a).await.as_deref() != Some(b.as_str()) {
        assert!(Instant::now() < deadline, "the standby never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while tasks_running(a.clone()).await != Some(2) {
        assert!(Instant::now() < deadline, "the new leader does not see the 2 tasks");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (frameworks, tasks) = handle.with_master(|ms| {
        (
            ms.frameworks().keys().cloned().collect::<Vec<_>>(),
            ms.frameworks().values().map(|f| f.tasks.len()).sum::<usize>(),
        )
    });
    assert_eq!(frameworks, framework, "the same framework id");
    assert_eq!(tasks, 2, "nothing launched twice, nothing forgotten");

    let deleted = http.delete(format!("http://{a}/v2/apps/ha")).send().await.unwrap();
    assert_eq!(deleted.status(), 200, "deleted through the new standby");
    until("no task left", Duration::from_secs(20), || {
        handle.with_master(|ms| ms.frameworks().values().all(|f| f.tasks.is_empty()))
    })
    .await;
    campaign_a.abort();
    campaign_b.abort();
    if let Ok(store) = orchestrator_mesos::ZkStore::connect(&zk.address, &root).await {
        let _ = store.delete_recursive("/").await;
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// A master, one process agent, the framework on `store`, and its `/v2`
/// API on loopback: what the API tests below drive.
struct Stack {
    loopback: LoopbackMaster,
    agent: Agent,
    m: Marathon,
    /// `http://host:port` of the `/v2` API.
    base: String,
    /// `host:port` of the API.
    api: String,
    work: PathBuf,
}

async fn stack(name: &str, store: Arc<dyn StateStore>) -> Stack {
    let loopback = master().await;
    let work = std::env::temp_dir().join(format!("orch-marathon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let agent = agent(&loopback.addr, &work);
    let client: Arc<dyn MasterClient> = Arc::new(loopback.handle.clone());
    let config = MarathonConfig {
        tick: Duration::from_millis(100),
        ..MarathonConfig::default()
    };
    let (m, _run) = Marathon::start(client, store, config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let info = orchestrator_mesos::marathon::http::ApiInfo {
        master: loopback.addr.clone(),
        http_address: api.clone(),
    };
    let router = orchestrator_mesos::marathon::http::router(m.clone(), info);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Stack {
        base: format!("http://{api}"),
        api,
        loopback,
        agent,
        m,
        work,
    }
}

/// A stored app that is no longer valid (the 4e9-instance app that once
/// took the scheduler down, or bytes that do not parse) is kept apart: not
/// run, shown in the queue with the reason, and removable with DELETE. The
/// valid apps next to it run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_apps_that_are_no_longer_valid_are_kept_apart_not_run() {
    use serde_json::{json, Value};
    let store: Arc<dyn StateStore> = Arc::new(MemStore::new());
    let huge = json!({"id": "/huge", "cmd": "sleep 1", "instances": 4_000_000_000u64, "cpus": 0, "mem": 0, "disk": 0, "portDefinitions": []});
    store
        .put("/apps/huge", serde_json::to_vec(&huge).unwrap())
        .await
        .unwrap();
    store.put("/apps/garbled", b"{not json".to_vec()).await.unwrap();
    let ok = json!({"id": "/ok", "cmd": "exec sleep 600", "instances": 1, "cpus": 0.1, "mem": 16});
    store.put("/apps/ok", serde_json::to_vec(&ok).unwrap()).await.unwrap();

    // Every part bound: a field left to `..` would be dropped (the master
    // stopped) at the end of this statement.
    let Stack {
        loopback: _master,
        agent,
        m,
        base,
        work,
        api: _,
    } = stack("unreadable", store.clone()).await;
    let http = reqwest::Client::new();

    until("the valid app running", Duration::from_secs(20), || {
        running(&m, "/ok") == 1
    })
    .await;
    let apps: Value = crate::get_json(format!("{base}/v2/apps")).await;
    let ids: Vec<_> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("/ok")], "{apps}");

    let queue: Value = crate::get_json(format!("{base}/v2/queue")).await;
    let apart: Vec<&Value> = queue["queue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["unreadable"] == true)
        .collect();
    assert_eq!(apart.len(), 2, "{queue}");
    let huge_item = apart
        .iter()
        .find(|q| q["app"]["id"] == "/huge")
        .expect("/huge in the queue");
    assert!(
        huge_item["lastFailure"].as_str().unwrap().contains("instances"),
        "{huge_item}"
    );
    let garbled = apart
        .iter()
        .find(|q| q["app"]["id"] == "/garbled")
        .expect("/garbled in the queue");
    assert!(
        garbled["lastFailure"].as_str().unwrap().contains("does not parse"),
        "{garbled}"
    );

    for id in ["huge", "garbled"] {
        let del = http.delete(format!("{base}/v2/apps/{id}")).send().await.unwrap();
        assert_eq!(del.status(), 200, "{}", del.text().await.unwrap());
        assert!(store.get(&format!("/apps/{id}")).await.unwrap().is_none());
    }
    assert_eq!(
        http.delete(format!("{base}/v2/apps/huge"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let queue: Value = crate::get_json(format!("{base}/v2/queue")).await;
    assert!(
        queue["queue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["unreadable"] != true),
        "{queue}"
    );
    assert!(store.get("/apps/ok").await.unwrap().is_some());
    // The valid app's task must not outlive the test.
    agent.drain(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&work);
}

/// An existing Marathon client from PyPI (marathon-python), unmodified,
/// drives the scheduler as it drives Marathon: create with a service port,
/// read back (its models refuse fields Marathon does not write and times
/// that are not ISO 8601), list, scale, kill one task with `scale`,
/// restart, update with `force`, versions, deployments, info, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_marathon_client_library_drives_the_scheduler() {
    const TEST: &str = "an_existing_marathon_client_library_drives_the_scheduler";
    let Some(python) = orchestrator_testkit::python(TEST) else {
        return;
    };
    let Stack {
        loopback,
        agent,
        m,
        api,
        work,
        ..
    } = stack("pyclient", Arc::new(MemStore::new())).await;
    let handle = loopback.handle.clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/frameworks/marathon_client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(format!("http://{api}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client script ends within 180 s")
    .expect("python runs");
    let said = format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        diagnose(&m, &handle)
    );
    // Whatever happened, nothing of it outlives the test.
    agent.drain(Duration::from_secs(2)).await;
    assert!(out.status.success(), "{said}");
    assert!(said.contains("deleted"), "{said}");
    let _ = std::fs::remove_dir_all(&work);
}

/// `/v2/groups` with Marathon's dependency order: a `db ← api ← web` stack
/// submitted backwards starts db, then api, then web, each only once what
/// it depends on runs; a cycle is a 422; `scaleBy` scales every app; the
/// group is read back as a tree and deleted whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deploys_in_dependency_order_and_deletes_whole() {
    use serde_json::{json, Value};
    let Stack {
        loopback,
        agent,
        m,
        base,
        work,
        ..
    } = stack("groups", Arc::new(MemStore::new())).await;
    let handle = loopback.handle.clone();
    let http = reqwest::Client::new();
    let sleeper = |id: &str, deps: &[&str]| json!({"id": id, "cmd": "exec sleep 600", "instances": 1, "cpus": 0.05, "mem": 16, "dependencies": deps});

    // A cycle is refused, and nothing of it is created.
    let cyclic = json!({"id": "/loop", "apps": [sleeper("a", &["b"]), sleeper("b", &["a"])]});
    let r = http
        .post(format!("{base}/v2/groups"))
        .json(&cyclic)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("cyclic"));
    assert!(m.with(|s| s.apps().next().is_none()));

    let stack = json!({"id": "/stack", "apps": [
        sleeper("web", &["api"]), sleeper("api", &["../stack/db"]), sleeper("db", &[])]});
    let r = http
        .post(format!("{base}/v2/groups"))
        .json(&stack)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Watch the order in which the apps get running tasks.
    let mut order: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while order.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "started so far: {order:?}; {}",
            diagnose(&m, &handle)
        );
        for app in ["/stack/db", "/stack/api", "/stack/web"] {
            if !order.iter().any(|o| o == app) && running(&m, app) == 1 {
                order.push(app.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(order, ["/stack/db", "/stack/api", "/stack/web"]);

    let tree: Value = crate::get_json(format!("{base}/v2/groups")).await;
    assert_eq!(tree["id"], "/");
    assert_eq!(tree["groups"][0]["id"], "/stack", "{tree}");
    assert_eq!(tree["groups"][0]["apps"].as_array().unwrap().len(), 3, "{tree}");
    let group: Value = crate::get_json(format!("{base}/v2/groups/stack")).await;
    assert_eq!(group["apps"][0]["id"], "/stack/api", "{group}");
    assert_eq!(group["apps"][0]["dependencies"], json!(["/stack/db"]), "{group}");
    assert_eq!(
        http.get(format!("{base}/v2/groups/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // As a Marathon client would: the group's deployment must finish before
    // the next change (409 otherwise); a task running is not yet the end of it.
    until("the group's deployment done", Duration::from_secs(20), || {
        m.with(|s| s.deployments().count() == 0)
    })
    .await;
    let r = http
        .put(format!("{base}/v2/groups/stack"))
        .json(&json!({"scaleBy": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    until("every app scaled to two", Duration::from_secs(30), || {
        ["/stack/db", "/stack/api", "/stack/web"]
            .iter()
            .all(|a| running(&m, a) == 2)
    })
    .await;

    until("the scaling deployment done", Duration::from_secs(20), || {
        m.with(|s| s.deployments().count() == 0)
    })
    .await;
    let r = http.delete(format!("{base}/v2/groups/stack")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    until("the group gone", Duration::from_secs(20), || {
        m.with(|s| s.apps().next().is_none())
    })
    .await;
    until("no task left", Duration::from_secs(20), || {
        handle.with_master(|ms| ms.frameworks().values().all(|f| f.tasks.is_empty()))
    })
    .await;
    agent.drain(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&work);
}

/// An event-stream client that stops reading never holds the scheduler
/// back: 4,500 events of about 8 KiB each (far more than socket buffers
/// hold) go out while it reads nothing; the scheduler serves on, and the
/// client's stream ends once it has fallen too far behind (rather than
/// skipping events without a word).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_event_stream_client_is_cut_off_not_waited_for() {
    use futures_util::StreamExt;
    let s = stack("sse-stall", Arc::new(MemStore::new())).await;
    let resp = reqwest::get(format!("{}/v2/events", s.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event_stream_attached"));
    // 1,500 apps, three events each, while the client reads nothing.
    let label = "x".repeat(8_000);
    const APPS: usize = 1_500;
    for i in 0..APPS {
        let def = app(&format!(
            r#"{{"id": "/stall/app{i}", "cmd": "sleep 1", "instances": 0, "labels": {{"big": "{label}"}}}}"#
        ));
        s.m.put_app(def, false).await.unwrap().unwrap();
    }
    let apps: serde_json::Value = crate::get_json(format!("{}/v2/apps", s.base)).await;
    assert_eq!(apps["apps"].as_array().unwrap().len(), APPS);
    // The client reads what was buffered for it, then its stream ends.
    let mut events = 0;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            events += String::from_utf8_lossy(&chunk).matches("event: ").count();
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stalled client's stream did not end ({events} events read)"
    );
    assert!(
        events < 3 * APPS,
        "the stalled client got all {events} events: nothing was cut"
    );
    let _ = std::fs::remove_dir_all(&s.work);
}
