//! The Docker containerizer against the harness's private dockerd and its
//! imported busybox image.

use std::path::PathBuf;
use std::time::Duration;

use orchestrator_core::{ContainerId, ContainerSpec, Containerizer, TaskState};
use orchestrator_mesos::DockerContainerizer;
use orchestrator_testkit::containerizer_contract::{self as contract, Subject};

struct Fixture {
    dir: PathBuf,
    image: String,
    host: String,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        let env = orchestrator_testkit::docker(test)?;
        let dir = std::env::temp_dir().join(format!("orch-docker-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Some(Fixture {
            dir,
            image: env.busybox_image,
            host: env.host,
        })
    }

    fn sandbox(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn spec(&self, line: &str) -> ContainerSpec {
        let mut spec = ContainerSpec::shell(line);
        spec.image = Some(self.image.clone());
        spec
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(format!("{s}-{}", std::process::id())).unwrap()
}

#[tokio::test]
async fn the_containerizer_contract_holds() {
    let Some(fx) = Fixture::new("contract") else { return };
    let d = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
        .await
        .unwrap();
    let shell = |line: &str| fx.spec(line);
    let sandbox = |name: &str| fx.sandbox(name);
    let subject = Subject {
        containerizer: &d,
        shell: &shell,
        sandbox: &sandbox,
        id: &id,
    };
    contract::exits_become_task_states(&subject).await;
    contract::kill_honours_the_grace_period(&subject).await;
    contract::memory_limit_is_enforced_and_reported(&subject).await;
    let restart = || -> std::pin::Pin<Box<dyn std::future::Future<Output = std::sync::Arc<dyn Containerizer>> + '_>> {
        Box::pin(async {
            let again = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
                .await
                .unwrap();
            std::sync::Arc::new(again) as std::sync::Arc<dyn Containerizer>
        })
    };
    contract::recovery_keeps_the_known_and_removes_orphans(&subject, &restart).await;
}

/// What only Docker shows: the sandbox mounted at Mesos's path, ports in
/// the environment, and images that are not there.
#[tokio::test]
async fn the_sandbox_mount_ports_and_missing_images() {
    let Some(fx) = Fixture::new("exit") else { return };
    let d = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
        .await
        .unwrap();
    let mut spec = fx.spec("echo hello $PORT0 from $MESOS_SANDBOX");
    spec.ports = vec![31005];
    let (ok, sandbox) = (id("ok"), fx.sandbox("ok"));
    assert!(d.supports(&spec));
    d.launch(&ok, &spec, &sandbox).await.unwrap();
    assert_eq!(d.wait(&ok).await.unwrap().task_state(), TaskState::Finished);
    let out = contract::read_when(&sandbox.join("stdout"), "hello").await;
    assert_eq!(out, "hello 31005 from /mnt/mesos/sandbox\n");
    d.destroy(&ok).await.unwrap();

    let mut missing = fx.spec("true");
    missing.image = Some("no-such-image-here:1".into());
    let err = d
        .launch(&id("missing"), &missing, &fx.sandbox("missing"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not present and cannot be pulled"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_survives_a_docker_daemon_restart() {
    let Some(mut server) =
        orchestrator_testkit::DockerdServer::start("a_running_task_survives_a_docker_daemon_restart")
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("orch-docker-{}-restart", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = DockerContainerizer::connect(&server.host(), &dir.to_string_lossy())
        .await
        .unwrap();
    let mut spec =
        ContainerSpec::shell("trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done");
    spec.image = Some(server.image.clone());
    let (c, sandbox) = (id("survivor"), dir.join("survivor"));
    std::fs::create_dir_all(&sandbox).unwrap();
    d.launch(&c, &spec, &sandbox).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;

    tokio::task::block_in_place(|| server.restart());
    // Still running: the waiter reconnected instead of reporting an end.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), d.wait(&c)).await.is_err(),
        "the task ended with the daemon"
    );
    let ticks = std::fs::read_to_string(sandbox.join("stdout"))
        .unwrap_or_default()
        .lines()
        .count();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = std::fs::read_to_string(sandbox.join("stdout"))
        .unwrap_or_default()
        .lines()
        .count();
    assert!(
        later > ticks,
        "output is followed again after the restart ({ticks} -> {later})"
    );

    d.kill(&c, Duration::from_secs(5)).await.unwrap();
    assert_eq!(d.wait(&c).await.unwrap().task_state(), TaskState::Killed);
    d.destroy(&c).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_down_fails_launches_clearly_until_it_is_back() {
    let test = "a_daemon_that_is_down_fails_launches_clearly_until_it_is_back";
    let Some(mut server) = orchestrator_testkit::DockerdServer::start(test) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("orch-docker-{}-down", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = DockerContainerizer::connect(&server.host(), &dir.to_string_lossy())
        .await
        .unwrap();
    let mut spec = ContainerSpec::shell("exit 0");
    spec.image = Some(server.image.clone());
    tokio::task::block_in_place(|| server.stop());
    let err = d.launch(&id("down"), &spec, &dir).await.unwrap_err().to_string();
    assert!(err.contains("the Docker engine does not answer"), "{err}");

    tokio::task::block_in_place(|| server.restart());
    let up = id("up");
    d.launch(&up, &spec, &dir).await.unwrap();
    assert_eq!(d.wait(&up).await.unwrap().task_state(), TaskState::Finished);
    d.destroy(&up).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
