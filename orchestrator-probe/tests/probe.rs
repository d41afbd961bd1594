//! The probe on the real machine: real processes, real loopback
//! connections, real containers on the harness's dockerd, and a real
//! HTTP receiver standing in for the topology app.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use orchestrator_core::report::{decode, ids, Limits, Report, TopologyKind};
use orchestrator_probe::{
    DockerCollector, HostCollector, NetworkCollector, Probe, ProbeConfig, ProcessCollector, PublishConfig,
};
use parking_lot::Mutex;

fn hostname() -> String {
    orchestrator_probe::HostInfo::collect().unwrap().hostname
}

/// Kills its child on drop, so a failed assertion leaks nothing.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[&str]) -> Reaped {
    Reaped(
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn collect_processes_and_network(host: &str) -> Report {
    let mut r = Report::new("p", host, 0);
    let now = 1_000;
    ProcessCollector::new(host).collect_into(&mut r, now).unwrap();
    NetworkCollector::new(host).collect_into(&mut r, now).unwrap();
    orchestrator_probe::tag::tag(&mut r, host, now);
    r
}

#[test]
fn a_spawned_process_appears_with_its_command_line_and_parent() {
    let host = hostname();
    // sh starts sleep as its child: the probe must see sleep under sh.
    // A sleep length unique to this run, so no leftover matches.
    let secs = 3000 + std::process::id() % 1000;
    let script = format!("sleep {secs} & wait");
    let sh = spawn("sh", &["-c", &script]);
    let sh_pid = sh.0.id();
    let cmdline = format!("sleep {secs}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = collect_processes_and_network(&host);
        let sleep = r
            .topologies
            .process
            .nodes
            .values()
            .find(|n| n.latest("cmdline") == Some(cmdline.as_str()));
        if let Some(n) = sleep {
            assert_eq!(n.latest("ppid"), Some(sh_pid.to_string().as_str()));
            assert_eq!(n.latest("name"), Some("sleep"));
            assert_eq!(n.latest("user"), Some("root"));
            assert!(n.latest("cwd").is_some());
            assert_eq!(
                n.parents_of(TopologyKind::Host).collect::<Vec<_>>(),
                vec![host.as_str()]
            );
            let parent = &r.topologies.process.nodes[&ids::process(&host, sh_pid)];
            assert_eq!(parent.latest("cmdline"), Some(format!("sh -c {script}").as_str()));
            return;
        }
        assert!(Instant::now() < deadline, "{cmdline} never showed up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_loopback_connection_between_two_processes_is_an_edge_between_them() {
    let host = hostname();
    let port = orchestrator_testkit::free_port();
    let server = spawn(
        "python3",
        &[
            "-c",
            &format!(
                "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{port}))\ns.listen()\nc,_=s.accept()\ntime.sleep(60)"
            ),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let client = spawn(
        "python3",
        &[
            "-c",
            &format!("import socket,time\nc=socket.create_connection(('127.0.0.1',{port}))\ntime.sleep(60)"),
        ],
    );
    let (server_pid, client_pid) = (server.0.id(), client.0.id());
    let server_ep = ids::endpoint(&host, None, "127.0.0.1".parse().unwrap(), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = collect_processes_and_network(&host);
        let eps = &r.topologies.endpoint.nodes;
        // The client's endpoint points at the server's (outgoing), and each
        // endpoint belongs to its process.
        let client_ep = eps.iter().find(|(_, n)| {
            n.latest("pid") == Some(client_pid.to_string().as_str()) && n.adjacency.contains(&server_ep)
        });
        if let (Some((_, c)), Some(s)) = (client_ep, eps.get(&server_ep)) {
            assert_eq!(s.latest("pid"), Some(server_pid.to_string().as_str()));
            assert_eq!(s.latest("listening"), Some("true"));
            assert_eq!(
                s.parents_of(TopologyKind::Process).collect::<Vec<_>>(),
                vec![ids::process(&host, server_pid)]
            );
            assert_eq!(
                c.parents_of(TopologyKind::Process).collect::<Vec<_>>(),
                vec![ids::process(&host, client_pid)]
            );
            assert_eq!(c.latest("state"), Some("ESTABLISHED"));
            // No edge runs back from the server to the client.
            assert!(!s.adjacency.iter().any(|a| eps
                .get(a)
                .is_some_and(|n| n.latest("pid") == Some(client_pid.to_string().as_str()))));
            return;
        }
        assert!(Instant::now() < deadline, "the connection never showed up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busybox_container_appears_with_image_labels_limits_and_processes() {
    let Some(env) = orchestrator_testkit::docker("a_busybox_container_appears_with_image_labels_limits_and_processes")
    else {
        return;
    };
    let host = hostname();
    let mut docker = DockerCollector::connect(&env.host, &host).await.unwrap();
    let client = docker.client().clone();
    let name = format!("probe-test-{}", std::process::id());
    let labels: HashMap<String, String> = [
        ("orchestrator.app_id", "/probe/demo"),
        ("orchestrator.task_id", "probe_demo.1"),
        ("io.kubernetes.pod.name", "demo-pod"),
        ("io.kubernetes.pod.namespace", "default"),
        ("io.kubernetes.pod.uid", "uid-123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let body = ContainerCreateBody {
        image: Some(env.busybox_image.clone()),
        cmd: Some(vec!["sh".into(), "-c".into(), "sleep 2718".into()]),
        labels: Some(labels),
        env: Some(vec!["DB_PASSWORD=hunter2".into(), "MODE=test".into()]),
        host_config: Some(HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = client
        .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body)
        .await
        .unwrap();
    let id = created.id;
    struct Cleanup(bollard::Docker, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let (d, id) = (self.0.clone(), self.1.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
                    let _ = d.remove_container(&id, Some(rm)).await;
                });
            })
            .join();
        }
    }
    let _cleanup = Cleanup(client.clone(), id.clone());
    client.start_container(&id, None).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut r = Report::new("p", &host, 0);
        let now = 1_000;
        ProcessCollector::new(&host).collect_into(&mut r, now).unwrap();
        docker.collect_into(&mut r).await.unwrap();
        orchestrator_probe::tag::tag(&mut r, &host, now);
        let c = r.topologies.container.nodes.get(&id).cloned();
        let sleeper = r
            .topologies
            .process
            .nodes
            .values()
            .find(|n| n.latest("cmdline") == Some("sleep 2718"))
            .cloned();
        if let (Some(c), Some(p)) = (c, sleeper) {
            if c.latest("docker_container_state") == Some("running") {
                assert_eq!(c.latest("docker_container_name"), Some(name.as_str()));
                let (image_name, _) = orchestrator_probe::docker::split_image(&env.busybox_image);
                assert_eq!(c.latest("docker_image_name"), Some(image_name.as_str()));
                assert_eq!(c.latest("label_orchestrator.app_id"), Some("/probe/demo"));
                assert_eq!(
                    c.latest("docker_memory_limit_bytes"),
                    Some((64u64 << 20).to_string().as_str())
                );
                assert_eq!(c.latest("docker_cpu_limit"), Some("0.5"));
                assert_eq!(c.latest("env_DB_PASSWORD"), Some("********"));
                assert_eq!(c.latest("env_MODE"), Some("test"));
                assert_eq!(c.latest("docker_container_network_mode"), Some("none"));
                assert!(c.controls.as_ref().unwrap().ids.contains("docker_stop_container"));
                assert!(r.topologies.container.controls.contains_key("docker_exec_container"));
                // Parents: image, pod, Marathon app, host.
                let image_id = c.latest("docker_image_id").unwrap().to_string();
                assert_eq!(
                    c.parents_of(TopologyKind::ContainerImage).collect::<Vec<_>>(),
                    vec![image_id.as_str()]
                );
                assert!(r.topologies.container_image.nodes.contains_key(&image_id));
                assert_eq!(c.parents_of(TopologyKind::Pod).collect::<Vec<_>>(), vec!["uid-123"]);
                assert_eq!(
                    r.topologies.pod.nodes["uid-123"].latest("kubernetes_name"),
                    Some("demo-pod")
                );
                assert_eq!(
                    c.parents_of(TopologyKind::Service).collect::<Vec<_>>(),
                    vec!["marathon;/probe/demo"]
                );
                // The container's process is mapped to it.
                assert_eq!(
                    p.parents_of(TopologyKind::Container).collect::<Vec<_>>(),
                    vec![id.as_str()]
                );
                // Usage arrives from the second stats sample on.
                if c.metrics.contains_key("cpu_usage_percent") {
                    assert!(c.metrics["memory_usage_bytes"].last().unwrap().value > 0.0);
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "the container never showed up complete");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A stand-in for the topology app's report endpoint: decodes and keeps
/// what arrives.
#[derive(Clone, Default)]
struct Receiver {
    reports: Arc<Mutex<Vec<Report>>>,
    tokens: Arc<Mutex<Vec<String>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    match decode(&body, Limits::default()) {
        Ok(report) => {
            r.reports.lock().push(report);
            if let Some(t) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                r.tokens.lock().push(t.to_string());
            }
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn serve(port: u16, rx: Receiver) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let app = Router::new().route("/api/v1/reports", post(receive)).with_state(rx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_survives_the_app_going_away_and_coming_back() {
    let host = hostname();
    let port = orchestrator_testkit::free_port();
    let rx = Receiver::default();
    let server = serve(port, rx.clone()).await;
    let mut config = ProbeConfig::new(&host);
    config.apps = vec![format!("http://127.0.0.1:{port}")];
    config.spy_interval = Duration::from_millis(100);
    config.publish_interval = Duration::from_millis(100);
    config.full_every = 1000;
    config.publish = PublishConfig {
        token: Some("s3cret".into()),
        buffer: 5,
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    };
    let probe = Probe::with_collectors(config, vec![Box::new(HostCollector::new(&host))]);
    let stats = probe.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(probe.run(async {
        let _ = stop_rx.await;
    }));

    wait_until("three reports", Duration::from_secs(10), || {
        rx.reports.lock().len() >= 3
    })
    .await;
    {
        let got = rx.reports.lock();
        assert!(got[0].header.full, "the first report is full");
        assert!(!got[1].header.full, "then deltas");
        assert!(got[0].topologies.host.nodes.contains_key(&host));
        assert_eq!(rx.tokens.lock()[0], "Bearer s3cret");
        assert!(got.windows(2).all(|w| w[0].header.seq < w[1].header.seq));
    }

    // The app goes away long enough for the queue (5) to overflow.
    server.abort();
    let _ = server.await;
    let before = stats.published.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("ten publishes while the app is down", Duration::from_secs(10), || {
        stats.published.load(std::sync::atomic::Ordering::Relaxed) >= before + 10
    })
    .await;
    let seen = rx.reports.lock().len();

    // It comes back on the same port: publishing resumes, and since reports
    // were dropped, a full report arrives before any further delta.
    let rx2 = Receiver::default();
    let _server = serve(port, rx2.clone()).await;
    wait_until("reports after the app came back", Duration::from_secs(10), || {
        rx2.reports.lock().iter().any(|r| r.header.full)
    })
    .await;
    let got = rx2.reports.lock().clone();
    assert!(
        got.len() <= 5 + 3,
        "the queue is bounded: {} reports replayed",
        got.len()
    );
    let first_full = got.iter().position(|r| r.header.full).unwrap();
    assert!(got.windows(2).all(|w| w[0].header.seq < w[1].header.seq), "in order");
    assert!(got[first_full].topologies.host.nodes.contains_key(&host));
    assert!(seen >= 3);
    let _ = stop_tx.send(());
    running.await.unwrap();
}
