//! The [`Containerizer`] contract, run against every implementation (the
//! process containerizer and the Docker one) so that a task behaves the
//! same whichever runs it. Each implementation's own tests add what only it
//! does (cgroup trees, the Docker daemon going away).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::{ContainerId, ContainerSpec, Containerizer, TaskReason, TaskState};

/// A containerizer under test, and how to make what it runs.
pub struct Subject<'a> {
    /// The containerizer.
    pub containerizer: &'a dyn Containerizer,
    /// A spec running `line` with `/bin/sh -c`, as this containerizer needs
    /// it (an image for Docker).
    pub shell: &'a dyn Fn(&str) -> ContainerSpec,
    /// A fresh sandbox directory named `name`.
    pub sandbox: &'a dyn Fn(&str) -> PathBuf,
    /// A container id for `name`, unique to the test.
    pub id: &'a dyn Fn(&str) -> ContainerId,
}

/// A second containerizer on the same work directory (a restarted agent).
pub type Restart<'a> = &'a dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Containerizer>> + 'a>>;

/// Waits (up to 5 s) until `path` contains `want`: a container's output
/// may reach its sandbox a moment after it ends (Docker's log copy).
pub async fn read_when(path: &Path, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(want) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Exit 0 is `TASK_FINISHED` with stdout and stderr in the sandbox; exit 3
/// is `TASK_FAILED` with the code, the same on every wait.
///
/// # Panics
/// On any breach of the contract.
pub async fn exits_become_task_states(s: &Subject<'_>) {
    let c = s.containerizer;
    let (ok, sandbox) = ((s.id)("ok"), (s.sandbox)("ok"));
    c.launch(&ok, &(s.shell)("echo hello; echo oops >&2; exit 0"), &sandbox)
        .await
        .unwrap();
    let t = c.wait(&ok).await.unwrap();
    assert_eq!((t.exit_code, t.task_state()), (Some(0), TaskState::Finished), "{t:?}");
    assert_eq!(read_when(&sandbox.join("stdout"), "hello").await, "hello\n");
    assert_eq!(read_when(&sandbox.join("stderr"), "oops").await, "oops\n");
    c.destroy(&ok).await.unwrap();

    let three = (s.id)("three");
    c.launch(&three, &(s.shell)("exit 3"), &(s.sandbox)("three"))
        .await
        .unwrap();
    let t = c.wait(&three).await.unwrap();
    assert_eq!((t.exit_code, t.task_state()), (Some(3), TaskState::Failed), "{t:?}");
    assert_eq!(c.wait(&three).await.unwrap(), t, "waiting again gives the same answer");
    c.destroy(&three).await.unwrap();
    assert!(c.wait(&three).await.is_err(), "a destroyed container is forgotten");
}

/// A kill sends SIGTERM: a task that honours it ends at once; one that
/// ignores it gets SIGKILL when the grace period is over. Both are
/// `TASK_KILLED`.
///
/// # Panics
/// On any breach of the contract.
pub async fn kill_honours_the_grace_period(s: &Subject<'_>) {
    let c = s.containerizer;
    let polite = (s.id)("polite");
    c.launch(
        &polite,
        &(s.shell)("trap 'exit 0' TERM; while true; do sleep 0.1; done"),
        &(s.sandbox)("polite"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    c.kill(&polite, Duration::from_secs(10)).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "SIGTERM honoured: {:?}",
        start.elapsed()
    );
    assert_eq!(c.wait(&polite).await.unwrap().task_state(), TaskState::Killed);
    c.destroy(&polite).await.unwrap();

    let stubborn = (s.id)("stubborn");
    c.launch(
        &stubborn,
        &(s.shell)("trap '' TERM; while true; do sleep 0.1; done"),
        &(s.sandbox)("stubborn"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    c.kill(&stubborn, Duration::from_millis(800)).await.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(8),
        "SIGKILL only after the grace period: {took:?}"
    );
    assert_eq!(c.wait(&stubborn).await.unwrap().task_state(), TaskState::Killed);
    c.destroy(&stubborn).await.unwrap();
}

/// A task over its memory limit is `TASK_FAILED` with Mesos's memory
/// reason; the limit shows in its usage while it runs.
///
/// # Panics
/// On any breach of the contract.
pub async fn memory_limit_is_enforced_and_reported(s: &Subject<'_>) {
    let c = s.containerizer;
    let sleeper = (s.id)("limited");
    let mut spec = (s.shell)("sleep 30");
    spec.limits.mem_mb = Some(64.0);
    c.launch(&sleeper, &spec, &(s.sandbox)("limited")).await.unwrap();
    let usage = c.usage(&sleeper).await.unwrap();
    assert_eq!(usage.mem_limit_bytes, Some(64 * 1024 * 1024), "{usage:?}");
    c.destroy(&sleeper).await.unwrap();
    assert!(c.usage(&sleeper).await.is_err(), "a destroyed container is forgotten");

    let hog = (s.id)("hog");
    // `dd` with a 64 MB block allocates it: four times the limit.
    let mut spec = (s.shell)("dd if=/dev/zero of=/dev/null bs=64M count=4");
    spec.limits.mem_mb = Some(16.0);
    c.launch(&hog, &spec, &(s.sandbox)("hog")).await.unwrap();
    let t = tokio::time::timeout(Duration::from_secs(30), c.wait(&hog))
        .await
        .expect("the hog ends within 30 s")
        .unwrap();
    assert_eq!(t.task_state(), TaskState::Failed, "{t:?}");
    assert_eq!(t.reason, Some(TaskReason::ReasonContainerLimitationMemory), "{t:?}");
    c.destroy(&hog).await.unwrap();
}

/// A restarted agent's containerizer takes back the containers it is told
/// about, which it can then kill, and removes the others (orphans).
///
/// # Panics
/// On any breach of the contract.
pub async fn recovery_keeps_the_known_and_removes_orphans(s: &Subject<'_>, restart: Restart<'_>) {
    let c = s.containerizer;
    let (kept, orphan) = ((s.id)("kept"), (s.id)("orphan"));
    c.launch(&kept, &(s.shell)("exec sleep 60"), &(s.sandbox)("kept"))
        .await
        .unwrap();
    c.launch(&orphan, &(s.shell)("exec sleep 60"), &(s.sandbox)("orphan"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let again = restart().await;
    let recovered = again.recover(std::slice::from_ref(&kept)).await.unwrap();
    assert_eq!(recovered, vec![kept.clone()]);
    again.kill(&kept, Duration::from_secs(2)).await.unwrap();
    assert_eq!(again.wait(&kept).await.unwrap().task_state(), TaskState::Killed);
    again.destroy(&kept).await.unwrap();
    assert!(
        again.recover(&[]).await.unwrap().is_empty(),
        "nothing left: the orphan was removed"
    );
}
