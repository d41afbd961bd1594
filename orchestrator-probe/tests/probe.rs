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
use orchestrator_testkit::until_true;
use parking_lot::Mutex;

fn hostname() -> String {
    orchestrator_probe::HostInfo::collect().unwrap().hostname
}

/// Kills its child on drop, so a failed assertion leaks nothing.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // The whole group: a shell's children too (issue 18 found a
        // `sleep` grandchild running an hour after the suite ended).
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[&str]) -> Reaped {
    use std::os::unix::process::CommandExt;
    Reaped(
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
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
fn a_process_that_calls_exec_shows_its_new_command_line() {
    let host = hostname();
    // sh waits for a line on stdin, then becomes sleep: the same pid and
    // start time, another program (as every task does after its fork).
    let secs = 4000 + std::process::id() % 1000;
    let script = format!("read go; exec sleep {secs}");
    let mut sh = Reaped(
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = sh.0.id();
    let id = ids::process(&host, pid);
    let mut collector = ProcessCollector::new(&host);
    let mut collect = |now| {
        let mut r = Report::new("p", &host, 0);
        collector.collect_into(&mut r, now).unwrap();
        r.topologies.process.nodes.get(&id).map(|n| {
            (
                n.latest("name").unwrap_or_default().to_string(),
                n.latest("cmdline").unwrap_or_default().to_string(),
            )
        })
    };
    assert_eq!(collect(1_000), Some(("sh".into(), format!("sh -c {script}"))));
    std::io::Write::write_all(sh.0.stdin.as_mut().unwrap(), b"go\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = 2_000;
    loop {
        let seen = collect(now);
        if seen == Some(("sleep".into(), format!("sleep {secs}"))) {
            return;
        }
        assert!(Instant::now() < deadline, "after exec the probe still shows {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
        now += 1_000;
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

    until_true("three reports", Duration::from_secs(10), || {
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
    until_true("ten publishes while the app is down", Duration::from_secs(10), || {
        stats.published.load(std::sync::atomic::Ordering::Relaxed) >= before + 10
    })
    .await;
    let seen = rx.reports.lock().len();

    // It comes back on the same port: publishing resumes, and since reports
    // were dropped, a full report arrives before any further delta.
    let rx2 = Receiver::default();
    let _server = serve(port, rx2.clone()).await;
    until_true("reports after the app came back", Duration::from_secs(10), || {
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

/// The app's end of a probe's control socket: frames from the probe come
/// out of `from_probe`, frames put in `to_probe` go to it.
struct FakeApp {
    from_probe: tokio::sync::mpsc::Receiver<orchestrator_core::report::control::FromProbe>,
    to_probe: tokio::sync::mpsc::Sender<orchestrator_core::report::control::ToProbe>,
    auth: Arc<Mutex<Option<String>>>,
    /// Pipes named in a control's result so far.
    announced: std::collections::HashSet<String>,
}

async fn fake_app(port: u16) -> FakeApp {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use futures_util::{SinkExt, StreamExt};
    let (from_tx, from_probe) = tokio::sync::mpsc::channel(1024);
    let (to_probe, to_rx) = tokio::sync::mpsc::channel::<orchestrator_core::report::control::ToProbe>(64);
    let to_rx = Arc::new(tokio::sync::Mutex::new(to_rx));
    let auth: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = auth.clone();
    let app = Router::new().route(
        "/api/v1/ws",
        axum::routing::get(move |ws: WebSocketUpgrade, headers: HeaderMap| {
            let (from_tx, to_rx, seen) = (from_tx.clone(), to_rx.clone(), seen.clone());
            *seen.lock() = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            async move {
                ws.on_upgrade(move |socket| async move {
                    let (mut sink, mut stream) = socket.split();
                    let pump = tokio::spawn(async move {
                        let mut rx = to_rx.lock().await;
                        while let Some(m) = rx.recv().await {
                            let text = serde_json::to_string(&m).unwrap();
                            if sink.send(Message::Text(text.into())).await.is_err() {
                                break;
                            }
                        }
                    });
                    while let Some(Ok(Message::Text(t))) = stream.next().await {
                        let _ = from_tx.send(serde_json::from_str(t.as_str()).unwrap()).await;
                    }
                    pump.abort();
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeApp {
        from_probe,
        to_probe,
        auth,
        announced: std::collections::HashSet::new(),
    }
}

impl FakeApp {
    /// The next message; a pipe's output or end must come after the
    /// result that named the pipe (else an app would not know the pipe).
    async fn next(&mut self) -> orchestrator_core::report::control::FromProbe {
        use orchestrator_core::report::control::FromProbe;
        let msg = tokio::time::timeout(Duration::from_secs(30), self.from_probe.recv())
            .await
            .expect("the probe answers")
            .expect("socket open");
        match &msg {
            FromProbe::Result { pipe: Some(p), .. } => {
                self.announced.insert(p.clone());
            }
            FromProbe::PipeOutput { pipe, .. } | FromProbe::PipeClosed { pipe, .. } => {
                assert!(self.announced.contains(pipe), "{msg:?} before the result naming {pipe}");
            }
            _ => {}
        }
        msg
    }

    /// Sends a control and returns (ok, error, pipe).
    async fn control(
        &mut self,
        id: u64,
        node: &str,
        control: &str,
        args: &[(&str, &str)],
    ) -> (bool, Option<String>, Option<String>) {
        use orchestrator_core::report::control::{FromProbe, ToProbe};
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.to_probe
            .send(ToProbe::Control {
                id,
                node: node.into(),
                control: control.into(),
                args,
            })
            .await
            .unwrap();
        loop {
            if let FromProbe::Result {
                id: got,
                ok,
                error,
                pipe,
            } = self.next().await
            {
                if got == id {
                    return (ok, error, pipe);
                }
            }
        }
    }

    /// Collects a pipe's output until it closes or `until` appears.
    async fn read_pipe(&mut self, pipe: &str, until: Option<&str>) -> (String, bool) {
        use base64::Engine as _;
        use orchestrator_core::report::control::FromProbe;
        let mut text = String::new();
        loop {
            match self.next().await {
                FromProbe::PipeOutput { pipe: p, data } if p == pipe => {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
                    text.push_str(&String::from_utf8_lossy(&bytes));
                    if until.is_some_and(|u| text.contains(u)) {
                        return (text, false);
                    }
                }
                FromProbe::PipeClosed { pipe: p, error } if p == pipe => {
                    assert_eq!(error, None);
                    return (text, true);
                }
                _ => {}
            }
        }
    }
}

async fn container_state(docker: &bollard::Docker, id: &str) -> String {
    docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|r| r.state)
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "gone".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_works_on_a_real_container_over_the_control_socket() {
    use orchestrator_core::report::control::{FromProbe, ToProbe};
    use orchestrator_probe::controls::{connect, ControlPolicy, Executor};
    let Some(env) = orchestrator_testkit::docker("every_control_works_on_a_real_container_over_the_control_socket")
    else {
        return;
    };
    let host = hostname();
    let docker = bollard::Docker::connect_with_unix(env.socket.to_str().unwrap(), 30, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let name = format!("probe-controls-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(env.busybox_image.clone()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo hello-logs; exec sleep 3600".into(),
        ]),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body)
        .await
        .unwrap()
        .id;
    let remove = |docker: bollard::Docker, id: String| async move {
        let rm = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = docker.remove_container(&id, Some(rm)).await;
    };
    docker.start_container(&id, None).await.unwrap();

    let port = orchestrator_testkit::free_port();
    let mut app = fake_app(port).await;
    let executor = Arc::new(Executor::new(docker.clone(), ControlPolicy::default()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let probe_side = tokio::spawn({
        let (url, host, executor) = (format!("http://127.0.0.1:{port}"), host.clone(), executor.clone());
        async move {
            connect(&url, None, Some("probe-token"), "probe-1", &host, executor, async {
                let _ = stop_rx.await;
            })
            .await;
        }
    });
    match app.next().await {
        FromProbe::Hello {
            probe_id,
            hostname,
            controls,
        } => {
            assert_eq!((probe_id.as_str(), hostname.as_str()), ("probe-1", host.as_str()));
            assert!(controls.contains(&"docker_exec_container".to_string()));
        }
        other => panic!("expected hello, got {other:?}"),
    }
    assert_eq!(app.auth.lock().as_deref(), Some("Bearer probe-token"));

    // Pause and unpause.
    assert_eq!(
        app.control(1, &id, "docker_pause_container", &[]).await,
        (true, None, None)
    );
    assert_eq!(container_state(&docker, &id).await, "paused");
    assert_eq!(
        app.control(2, &id, "docker_unpause_container", &[]).await,
        (true, None, None)
    );
    assert_eq!(container_state(&docker, &id).await, "running");

    // Logs: the whole log, then the pipe closes.
    let (ok, _, pipe) = app.control(3, &id, "docker_logs", &[("tail", "all")]).await;
    assert!(ok);
    let (text, closed) = app.read_pipe(&pipe.unwrap(), None).await;
    assert!(closed && text.contains("hello-logs"), "{text:?}");

    // Exec with a TTY: type a command, resize, read its output, exit.
    let (ok, err, pipe) = app
        .control(4, &id, "docker_exec_container", &[("cmd", "/bin/sh")])
        .await;
    assert!(ok, "{err:?}");
    let pipe = pipe.unwrap();
    let send = |data: &str| ToProbe::PipeInput {
        pipe: pipe.clone(),
        data: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data),
    };
    app.to_probe
        .send(ToProbe::PipeResize {
            pipe: pipe.clone(),
            width: 120,
            height: 40,
        })
        .await
        .unwrap();
    app.to_probe
        .send(send("echo exec-$((6*7)); stty size\n"))
        .await
        .unwrap();
    let (text, _) = app.read_pipe(&pipe, Some("40 120")).await;
    assert!(text.contains("exec-42"), "{text:?}");
    app.to_probe.send(send("exit\n")).await.unwrap();
    let (_, closed) = app.read_pipe(&pipe, None).await;
    assert!(closed);

    // Stop, restart, stop, start.
    assert_eq!(
        app.control(5, &id, "docker_stop_container", &[("timeout", "1")]).await,
        (true, None, None)
    );
    assert_eq!(container_state(&docker, &id).await, "exited");
    assert_eq!(
        app.control(6, &id, "docker_restart_container", &[("timeout", "1")])
            .await,
        (true, None, None)
    );
    assert_eq!(container_state(&docker, &id).await, "running");
    assert_eq!(
        app.control(7, &id, "docker_stop_container", &[("timeout", "0")]).await,
        (true, None, None)
    );
    assert_eq!(
        app.control(8, &id, "docker_start_container", &[]).await,
        (true, None, None)
    );
    assert_eq!(container_state(&docker, &id).await, "running");

    // Bad requests get the reason back, and the socket keeps serving.
    let (ok, err, _) = app
        .control(9, &id, "docker_stop_container", &[("timeout", "forever")])
        .await;
    assert!(!ok && err.unwrap().contains("timeout must be"));
    let (ok, err, _) = app.control(10, &id, "launch_missiles", &[]).await;
    assert!(!ok && err.unwrap().contains("unknown control"));
    let (ok, err, _) = app.control(11, &id, "docker_remove_container", &[]).await;
    assert!(!ok, "a running container is not removed without force");
    assert!(err.unwrap().to_lowercase().contains("running"));
    let (ok, err, _) = app.control(12, "no-such-container", "docker_stop_container", &[]).await;
    assert!(!ok && err.unwrap().contains("No such container"));
    assert_eq!(
        app.control(13, &id, "docker_remove_container", &[("force", "true")])
            .await,
        (true, None, None)
    );
    assert_eq!(container_state(&docker, &id).await, "gone");

    // An allow-list limits what runs.
    let limited = Executor::new(
        docker.clone(),
        ControlPolicy {
            disabled: false,
            allow: Some(["docker_logs".to_string()].into_iter().collect()),
        },
    );
    assert_eq!(limited.offered(), vec!["docker_logs".to_string()]);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    limited
        .handle(
            ToProbe::Control {
                id: 1,
                node: id.clone(),
                control: "docker_stop_container".into(),
                args: Default::default(),
            },
            &tx,
        )
        .await;
    match rx.recv().await.unwrap() {
        FromProbe::Result { ok, error, .. } => {
            assert!(!ok);
            assert!(error.unwrap().contains("disabled"));
        }
        other => panic!("{other:?}"),
    }
    let _ = stop_tx.send(());
    probe_side.await.unwrap();
    remove(docker, id).await;
    assert_eq!(executor.open_pipes(), 0);
}

/// A collector that burns `cpu` of CPU time per run and reports how many
/// runs it has done on one process node.
struct Costly {
    name: &'static str,
    cpu: Duration,
    runs: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait::async_trait]
impl orchestrator_core::Collector for Costly {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), orchestrator_core::BoxError> {
        let runs = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let started = cpu_time();
        let mut x = 1u64;
        while cpu_time() - started < self.cpu {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        report.topologies.process.insert(
            format!("h;{}", self.name),
            orchestrator_core::report::Node::default().with_latest("runs", runs.to_string(), now_ms),
        );
        Ok(())
    }
}

fn cpu_time() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().try_into().unwrap()) + Duration::from_micros(t.tv_usec().try_into().unwrap())
    };
    tv(u.user_time()) + tv(u.system_time())
}

#[tokio::test(flavor = "current_thread")]
async fn a_cpu_budget_defers_the_costly_source_and_carries_its_last_data() {
    let runs = |name| Costly {
        name,
        cpu: if name == "cheap" {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        },
        runs: Arc::default(),
    };
    let (cheap, costly) = (runs("cheap"), runs("costly"));
    let (cheap_runs, costly_runs) = (cheap.runs.clone(), costly.runs.clone());
    let mut config = ProbeConfig::new("h");
    // 1 % of a core: 50 ms saved up at most, 10 ms earned a second.
    config.cpu_budget = Some(0.01);
    config.spy_interval = Duration::from_secs(1);
    config.max_staleness = Duration::from_millis(600);
    let mut probe = Probe::with_collectors(config, vec![Box::new(cheap), Box::new(costly)]);
    for _ in 0..10 {
        probe.cycle(None).await;
    }
    let load = |r: &Arc<std::sync::atomic::AtomicU64>| r.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&cheap_runs), 10, "a free source refreshes every cycle");
    let deferred_runs = load(&costly_runs);
    assert!(
        (1..=3).contains(&deferred_runs),
        "the budget pays for two or three 20 ms runs, not ten: {deferred_runs}"
    );
    assert!(probe.stats().deferred.load(std::sync::atomic::Ordering::Relaxed) >= 7);
    // Its last data is carried, with the time it was seen.
    let view = probe.view();
    assert_eq!(
        view.topologies.process.nodes["h;costly"].latest("runs"),
        Some(deferred_runs.to_string().as_str())
    );
    assert!(view.topologies.process.nodes.contains_key("h;cheap"));
    let ages = probe.stats().source_age_ms.lock().clone();
    assert!(ages.iter().any(|(n, _)| *n == "costly"));

    // However tight the budget, nothing gets older than `max_staleness`.
    tokio::time::sleep(Duration::from_millis(650)).await;
    probe.cycle(None).await;
    assert_eq!(load(&costly_runs), deferred_runs + 1);
    // A forced refresh (a container event) runs whatever the budget.
    probe.cycle(Some("costly")).await;
    assert_eq!(load(&costly_runs), deferred_runs + 2);
    // A source that found nothing new keeps its last output.
    struct Steady(u32);
    #[async_trait::async_trait]
    impl orchestrator_core::Collector for Steady {
        fn name(&self) -> &'static str {
            "steady"
        }
        async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), orchestrator_core::BoxError> {
            self.0 += 1;
            if self.0 == 1 {
                report.topologies.container.insert(
                    "c1".into(),
                    orchestrator_core::report::Node::default().with_latest("n", "1", now_ms),
                );
            }
            Ok(())
        }
        fn written(&mut self) -> orchestrator_core::Written {
            if self.0 > 1 {
                orchestrator_core::Written::Nothing
            } else {
                orchestrator_core::Written::All
            }
        }
    }
    let mut steady = Probe::with_collectors(ProbeConfig::new("h"), vec![Box::new(Steady(0))]);
    steady.collect().await;
    let view = steady.collect().await;
    assert!(view.topologies.container.nodes.contains_key("c1"));
    // A source that writes only its changes: they are laid over its
    // last output, and what it no longer sees goes.
    struct Patching(u32);
    #[async_trait::async_trait]
    impl orchestrator_core::Collector for Patching {
        fn name(&self) -> &'static str {
            "patching"
        }
        async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), orchestrator_core::BoxError> {
            self.0 += 1;
            let node = |v: &str| orchestrator_core::report::Node::default().with_latest("v", v, now_ms);
            let t = &mut report.topologies.process;
            if self.0 == 1 {
                t.insert("h;a".into(), node("a1"));
                t.insert("h;b".into(), node("b1"));
                t.insert("h;c".into(), node("c1"));
            } else {
                t.insert("h;b".into(), node("b2"));
                t.insert("h;d".into(), node("d1"));
            }
            Ok(())
        }
        fn written(&mut self) -> orchestrator_core::Written {
            if self.0 == 1 {
                orchestrator_core::Written::All
            } else {
                orchestrator_core::Written::Changes {
                    gone: vec![(TopologyKind::Process, "h;a".into())],
                }
            }
        }
    }
    let mut patching = Probe::with_collectors(ProbeConfig::new("h"), vec![Box::new(Patching(0))]);
    patching.collect().await;
    patching.publish();
    let view = patching.collect().await;
    let seen: Vec<(&str, Option<&str>)> = view
        .topologies
        .process
        .nodes
        .iter()
        .map(|(id, n)| (id.as_str(), n.latest("v")))
        .collect();
    assert_eq!(
        seen,
        vec![("h;b", Some("b2")), ("h;c", Some("c1")), ("h;d", Some("d1"))]
    );
    // And `collect` refreshes everything.
    let before = load(&costly_runs);
    probe.collect().await;
    assert_eq!(load(&costly_runs), before + 1);
}
