//! The container image (`deploy/docker`), built on the harness's dockerd
//! without pulling anything, runs as the manifests run it: the app server
//! answers `/health`, and the probe — with the host's `/proc` and the
//! Docker socket mounted read-only — reports the host and the containers
//! to it.

use std::process::Command;
use std::time::Duration;

use orchestrator_testkit::{example_binary, free_port, until};
use serde_json::Value;

/// `docker` against the harness's engine.
fn docker(host: &str, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

async fn get_json(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Removes the test's containers and image whatever happens.
struct Cleanup<'a> {
    host: &'a str,
    names: Vec<String>,
    image: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = docker(self.host, &["rm", "-f", n]);
        }
        let _ = docker(self.host, &["rmi", "-f", &self.image]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_the_app_server_and_a_probe_that_sees_the_host_and_containers() {
    const TEST: &str = "the_image_runs_the_app_server_and_a_probe_that_sees_the_host_and_containers";
    let _beside = crate::HEAVY.read().await;
    let Some(env) = orchestrator_testkit::docker(TEST) else {
        return;
    };
    let bin_dir = example_binary("app-server").parent().unwrap().to_path_buf();
    let tag = format!("orchestrator-test:{}", std::process::id());
    let id = std::process::id();
    let (app_name, probe_name) = (format!("orch-img-app-{id}"), format!("orch-img-probe-{id}"));
    let _cleanup = Cleanup {
        host: &env.host,
        names: vec![app_name.clone(), probe_name.clone()],
        image: tag.clone(),
    };
    let build = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/docker/build"))
        .env("DOCKER_HOST", &env.host)
        .args([
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--tag",
            &tag,
            "--bins",
            "app-server probe",
        ])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "deploy/docker/build: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    // Nothing was pulled: the image's only layer is the assembled root.
    let layers = docker(&env.host, &["image", "inspect", "-f", "{{len .RootFS.Layers}}", &tag]);
    assert_eq!(String::from_utf8_lossy(&layers.stdout).trim(), "1");

    // The app server, as its Deployment runs it (non-root, read-only root).
    let port = free_port();
    let run = docker(
        &env.host,
        &[
            "run",
            "-d",
            "--name",
            &app_name,
            "--network",
            "host",
            "--read-only",
            "--user",
            "65532:65532",
            &tag,
            "app-server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ],
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let base = format!("http://127.0.0.1:{port}");
    until(
        "the app server's /health from the image",
        Duration::from_secs(30),
        async || get_json(&format!("{base}/health")).await,
    )
    .await;

    // The probe, as its DaemonSet runs it: host PID and network, /proc and
    // the Docker socket read-only.
    let socket = env.socket.to_str().unwrap();
    let run = docker(
        &env.host,
        &[
            // Root, as its DaemonSet runs it: the socket and every
            // process's /proc entries are root's to read.
            "run",
            "-d",
            "--name",
            &probe_name,
            "--network",
            "host",
            "--pid",
            "host",
            "--read-only",
            "--user",
            "0:0",
            "-v",
            "/proc:/host/proc:ro",
            "-v",
            &format!("{socket}:/var/run/docker.sock:ro"),
            &tag,
            "probe",
            "--app",
            &base,
            "--proc-root",
            "/host/proc",
            "--hostname",
            "image-test-host",
            "--docker-host",
            "unix:///var/run/docker.sock",
            "--spy-interval",
            "1s",
            "--no-controls",
        ],
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let hosts = get_json(&format!("{base}/api/topology/hosts"))
            .await
            .unwrap_or_default();
        let containers = get_json(&format!("{base}/api/topology/containers"))
            .await
            .unwrap_or_default();
        if hosts.to_string().contains("image-test-host") && containers.to_string().contains(&app_name) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let logs = docker(&env.host, &["logs", &probe_name]);
            let state = docker(&env.host, &["ps", "-a"]);
            panic!(
                "the host and the app server's container are not in the views\nhosts: {hosts}\ncontainers: {containers}\nprobe said: {}{}\ncontainers: {}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr),
                String::from_utf8_lossy(&state.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
