//! The Marathon-style framework against a real master and agent over
//! loopback, running real processes: deploy, scale up and down, a killed
//! process replaced after its backoff, apps kept in the store across a
//! scheduler restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::{Containerizer, MemStore, StateStore, TaskState};
use orchestrator_mesos::marathon::{AppDefinition, Marathon, MarathonConfig};
use orchestrator_mesos::{
    Agent, AgentConfig, Cgroups, DrfAllocator, HttpMasterClient, Master, MasterClient, MasterConfig, MasterHandle,
    ProcessContainerizer,
};

async fn master() -> (MasterHandle, String) {
    let handle = MasterHandle::new(
        Master::new(
            MasterConfig {
                heartbeat_interval: Duration::from_secs(1),
                ..MasterConfig::default()
            },
            DrfAllocator::default(),
        ),
        Duration::from_millis(100),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = handle.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    tokio::spawn(handle.clone().run_loops());
    (handle, addr)
}

fn agent(addr: &str, work: &Path) -> Agent {
    let cgroups = Cgroups::detect(&format!("orch-marathon-{}", std::process::id()), false);
    let containerizer: Arc<dyn Containerizer> = Arc::new(ProcessContainerizer::with_cgroups(work, cgroups).unwrap());
    let mut config = AgentConfig::new(
        format!("http://{addr}"),
        "cpus:4;mem:2048;ports:[31000-31100]".parse().unwrap(),
        work,
    );
    config.update_retry = Duration::from_millis(300);
    config.heartbeat_interval = Duration::from_millis(500);
    let agent = Agent::new(config, vec![containerizer]);
    tokio::spawn({
        let agent = agent.clone();
        async move {
            let _ = agent.run().await;
        }
    });
    agent
}

fn running(m: &Marathon, app: &str) -> usize {
    m.with(|s| {
        s.instances()
            .filter(|i| i.app_id == app && i.state == TaskState::Running && !i.killing)
            .count()
    })
}

async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn app(json: &str) -> AppDefinition {
    AppDefinition::from_json(json.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_deploy_scale_heal_and_survive_a_scheduler_restart() {
    let (handle, addr) = master().await;
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
