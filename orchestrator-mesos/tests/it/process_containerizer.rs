//! The process containerizer on real processes and this machine's cgroups.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orchestrator_core::{Command, ContainerId, ContainerSpec, Containerizer, TaskReason, TaskState, LABEL_TASK_ID};
use orchestrator_mesos::{Cgroups, ProcessContainerizer};
use orchestrator_testkit::containerizer_contract::{self as contract, Subject};

/// A work dir and a cgroup root of the test's own, so that one test's
/// orphan clean-up never touches another's containers.
struct Fixture {
    dir: PathBuf,
    root: String,
}

impl Fixture {
    fn new(test: &str) -> Self {
        let root = format!("orch-test-{}-{test}", std::process::id());
        let dir = std::env::temp_dir().join(&root);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture { dir, root }
    }

    fn cgroups(&self) -> Option<Cgroups> {
        Cgroups::detect(&self.root, true)
    }

    fn containerizer(&self) -> ProcessContainerizer {
        ProcessContainerizer::with_cgroups(&self.dir, self.cgroups()).unwrap()
    }

    fn sandbox(&self, name: &str) -> PathBuf {
        let p = self.dir.join("sandboxes").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroups() {
            cg.remove_if_empty();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn id(s: &str) -> ContainerId {
    ContainerId::new(s).unwrap()
}

fn shell(line: &str) -> ContainerSpec {
    ContainerSpec::shell(line)
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The containerizer contract (testkit's `containerizer_contract`), which
/// the Docker containerizer runs too.
#[tokio::test]
async fn the_containerizer_contract_holds() {
    let fx = Fixture::new("contract");
    let c = fx.containerizer();
    let sandbox = |name: &str| fx.sandbox(name);
    let subject = Subject {
        containerizer: &c,
        shell: &shell,
        sandbox: &sandbox,
        id: &id,
    };
    contract::exits_become_task_states(&subject).await;
    contract::kill_honours_the_grace_period(&subject).await;
    if fx.cgroups().is_some() {
        contract::memory_limit_is_enforced_and_reported(&subject).await;
    } else {
        orchestrator_testkit::missing(
            "writable cgroups (memory, cpu)",
            "the_containerizer_contract_holds (memory)",
        );
    }
    let restart = || -> std::pin::Pin<Box<dyn std::future::Future<Output = std::sync::Arc<dyn Containerizer>> + '_>> {
        Box::pin(async { std::sync::Arc::new(fx.containerizer()) as std::sync::Arc<dyn Containerizer> })
    };
    contract::recovery_keeps_the_known_and_removes_orphans(&subject, &restart).await;
}

/// What only processes show: Mesos's environment, the sandbox as the
/// working directory, and the exit status in the message.
#[tokio::test]
async fn the_environment_and_working_directory_are_mesos_s() {
    let fx = Fixture::new("exit");
    let c = fx.containerizer();
    let mut spec = shell("echo \"hello $MESOS_TASK_ID $PORT0 $PORTS\"; pwd; exit 3");
    spec.labels.insert(LABEL_TASK_ID.into(), "web.1".into());
    spec.ports = vec![31000, 31005];
    let sandbox = fx.sandbox("ok");
    c.launch(&id("ok"), &spec, &sandbox).await.unwrap();
    let t = c.wait(&id("ok")).await.unwrap();
    assert_eq!(t.reason, Some(TaskReason::ReasonCommandExecutorFailed));
    assert!(t.message.contains("status 3"), "{}", t.message);
    let out = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert_eq!(out, format!("hello web.1 31000 31000,31005\n{}\n", sandbox.display()));
    c.destroy(&id("ok")).await.unwrap();
}

#[tokio::test]
async fn nothing_of_a_task_outlives_it() {
    let fx = Fixture::new("tree");
    let c = fx.containerizer();
    let sandbox = fx.sandbox("tree");
    // The task leaves a background child behind when it exits.
    c.launch(&id("tree"), &shell("sleep 60 & echo $! > child.pid; exit 0"), &sandbox)
        .await
        .unwrap();
    c.wait(&id("tree")).await.unwrap();
    let child: i32 = std::fs::read_to_string(sandbox.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(child) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(child), "background child {child} survived its task");
    c.destroy(&id("tree")).await.unwrap();
}

#[tokio::test]
async fn usage_comes_from_the_cgroup() {
    let fx = Fixture::new("usage");
    if fx.cgroups().is_none() {
        orchestrator_testkit::missing("writable cgroups (memory, cpu)", "usage_comes_from_the_cgroup");
        return;
    }
    let c = fx.containerizer();
    let mut spec = shell("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30");
    spec.limits.mem_mb = Some(128.0);
    spec.limits.cpus = Some(1.0);
    c.launch(&id("busy"), &spec, &fx.sandbox("busy")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = c.usage(&id("busy")).await.unwrap();
    assert_eq!(s.mem_limit_bytes, Some(128 * 1024 * 1024));
    assert_eq!(s.cpus_limit, Some(1.0));
    assert!(s.mem_total_bytes.is_some_and(|m| m > 0), "{s:?}");
    assert!(s.cpus_user_time_secs.is_some(), "{s:?}");
    assert!(s.timestamp > 0.0);
    c.destroy(&id("busy")).await.unwrap();
    assert!(
        c.usage(&id("busy")).await.is_err(),
        "destroyed containers are forgotten"
    );
}

#[tokio::test]
async fn recovered_processes_keep_running_and_orphan_processes_die() {
    let fx = Fixture::new("recover");
    let first = fx.containerizer();
    let (kept, orphan) = (id("kept"), id("orphan"));
    let kept_box = fx.sandbox("kept");
    first
        .launch(&kept, &shell("echo $$ > pid; exec sleep 60"), &kept_box)
        .await
        .unwrap();
    let orphan_box = fx.sandbox("orphan");
    first
        .launch(&orphan, &shell("echo $$ > pid; exec sleep 60"), &orphan_box)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = |dir: &PathBuf| -> i32 {
        std::fs::read_to_string(dir.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (kept_pid, orphan_pid) = (pid(&kept_box), pid(&orphan_box));
    // The agent goes away without stopping its tasks.
    drop(first);

    let second = fx.containerizer();
    let recovered = second.recover(std::slice::from_ref(&kept)).await.unwrap();
    assert_eq!(recovered, vec![kept.clone()]);
    assert!(alive(kept_pid), "the known task keeps running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(orphan_pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(orphan_pid), "the orphan was killed");

    second.kill(&kept, Duration::from_secs(2)).await.unwrap();
    let t = second.wait(&kept).await.unwrap();
    assert_eq!(t.task_state(), TaskState::Killed, "{t:?}");
    assert!(!alive(kept_pid));
    second.destroy(&kept).await.unwrap();
    assert!(
        second.recover(&[kept]).await.unwrap().is_empty(),
        "nothing left to recover"
    );
}

#[tokio::test]
async fn bad_launches_fail_clearly_and_the_containerizer_keeps_working() {
    let fx = Fixture::new("bad");
    let c = fx.containerizer();
    let missing = ContainerSpec {
        command: Command::Exec {
            program: "/no/such/program".into(),
            args: vec![],
        },
        ..shell("")
    };
    let err = c
        .launch(&id("missing"), &missing, &fx.sandbox("missing"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot start `/no/such/program`"), "{err}");
    let mut nobody = shell("true");
    nobody.user = Some("no-such-user-here".into());
    let err = c
        .launch(&id("nobody"), &nobody, &fx.sandbox("nobody"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    // Regression: a launch that failed before spawning left its cgroup behind.
    if let Some(cg) = fx.cgroups() {
        assert!(cg.existing().is_empty(), "{:?}", cg.existing());
    }
    let mut image = shell("true");
    image.image = Some("busybox".into());
    assert!(!c.supports(&image));
    assert!(c.launch(&id("image"), &image, &fx.sandbox("image")).await.is_err());
    assert!(c.wait(&id("never")).await.is_err());

    c.launch(&id("dup"), &shell("sleep 5"), &fx.sandbox("dup"))
        .await
        .unwrap();
    let err = c
        .launch(&id("dup"), &shell("true"), &fx.sandbox("dup"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already running"), "{err}");
    c.destroy(&id("dup")).await.unwrap();
    c.launch(&id("fine"), &shell("exit 0"), &fx.sandbox("fine"))
        .await
        .unwrap();
    assert_eq!(c.wait(&id("fine")).await.unwrap().task_state(), TaskState::Finished);
    c.destroy(&id("fine")).await.unwrap();
}
