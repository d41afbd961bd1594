//! The Docker containerizer against the harness's private dockerd and its
//! imported busybox image.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orchestrator_core::{ContainerId, ContainerSpec, Containerizer, TaskReason, TaskState};
use orchestrator_mesos::DockerContainerizer;

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

async fn read_when(path: PathBuf, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(want) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn exit_codes_output_and_environment() {
    let Some(fx) = Fixture::new("exit") else { return };
    let d = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
        .await
        .unwrap();
    let mut spec = fx.spec("echo hello $PORT0 from $MESOS_SANDBOX; echo oops >&2; exit 0");
    spec.ports = vec![31005];
    let (ok, sandbox) = (id("ok"), fx.sandbox("ok"));
    assert!(d.supports(&spec));
    d.launch(&ok, &spec, &sandbox).await.unwrap();
    let t = d.wait(&ok).await.unwrap();
    assert_eq!((t.exit_code, t.task_state()), (Some(0), TaskState::Finished), "{t:?}");
    let out = read_when(sandbox.join("stdout"), "hello").await;
    assert_eq!(out, "hello 31005 from /mnt/mesos/sandbox\n");
    assert_eq!(read_when(sandbox.join("stderr"), "oops").await, "oops\n");
    d.destroy(&ok).await.unwrap();

    let three = id("three");
    d.launch(&three, &fx.spec("exit 3"), &fx.sandbox("three"))
        .await
        .unwrap();
    let t = d.wait(&three).await.unwrap();
    assert_eq!((t.exit_code, t.task_state()), (Some(3), TaskState::Failed), "{t:?}");
    d.destroy(&three).await.unwrap();
}

#[tokio::test]
async fn kill_with_grace_and_the_memory_limit() {
    let Some(fx) = Fixture::new("kill") else { return };
    let d = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
        .await
        .unwrap();
    let polite = id("polite");
    d.launch(
        &polite,
        &fx.spec("trap 'exit 0' TERM; while true; do sleep 0.1; done"),
        &fx.sandbox("polite"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    d.kill(&polite, Duration::from_secs(10)).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "SIGTERM was honoured: {:?}",
        start.elapsed()
    );
    assert_eq!(d.wait(&polite).await.unwrap().task_state(), TaskState::Killed);
    d.destroy(&polite).await.unwrap();

    let stubborn = id("stubborn");
    d.launch(
        &stubborn,
        &fx.spec("trap '' TERM; while true; do sleep 0.1; done"),
        &fx.sandbox("stubborn"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    d.kill(&stubborn, Duration::from_secs(1)).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "SIGKILL only after the grace period"
    );
    assert_eq!(d.wait(&stubborn).await.unwrap().task_state(), TaskState::Killed);
    d.destroy(&stubborn).await.unwrap();

    let hog = id("hog");
    let mut spec = fx.spec("dd if=/dev/zero of=/dev/null bs=64M count=4");
    spec.limits.mem_mb = Some(16.0);
    d.launch(&hog, &spec, &fx.sandbox("hog")).await.unwrap();
    let t = d.wait(&hog).await.unwrap();
    assert_eq!(t.task_state(), TaskState::Failed, "{t:?}");
    assert_eq!(t.reason, Some(TaskReason::ReasonContainerLimitationMemory), "{t:?}");
    d.destroy(&hog).await.unwrap();
}

#[tokio::test]
async fn bad_images_fail_clearly_usage_and_recovery() {
    let Some(fx) = Fixture::new("recover") else { return };
    let d = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
        .await
        .unwrap();
    let mut missing = fx.spec("true");
    missing.image = Some("no-such-image-here:1".into());
    let err = d
        .launch(&id("missing"), &missing, &fx.sandbox("missing"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not present and cannot be pulled"), "{err}");

    let (kept, orphan) = (id("kept"), id("orphan"));
    let mut spec = fx.spec("sleep 60");
    spec.limits.mem_mb = Some(64.0);
    d.launch(&kept, &spec, &fx.sandbox("kept")).await.unwrap();
    d.launch(&orphan, &fx.spec("sleep 60"), &fx.sandbox("orphan"))
        .await
        .unwrap();
    let usage = d.usage(&kept).await.unwrap();
    assert_eq!(usage.mem_limit_bytes, Some(64 * 1024 * 1024), "{usage:?}");

    // A restarted agent: a new containerizer takes back what it knows.
    let again = DockerContainerizer::connect(&fx.host, &fx.dir.to_string_lossy())
        .await
        .unwrap();
    let recovered = again.recover(std::slice::from_ref(&kept)).await.unwrap();
    assert!(recovered.contains(&kept), "{recovered:?}");
    assert!(!recovered.contains(&orphan));
    again.kill(&kept, Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.wait(&kept).await.unwrap().task_state(), TaskState::Killed);
    again.destroy(&kept).await.unwrap();
    assert!(again.recover(&[]).await.unwrap().is_empty(), "the orphan was removed");
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
