//! The topology app over loopback with a real probe on this machine: real
//! processes, two busybox containers on the harness's dockerd talking to
//! each other, controls through the app to the real container, tokens and
//! roles, the audit log, live diffs, and bad input.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use orchestrator_core::report::{encode, Report, CONTENT_TYPE};
use orchestrator_testkit::until;
use orchestrator_topology::server::{App, AppConfig, Tokens};
use serde_json::Value;

// The allocator the example binaries run with, so memory figures match them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Held by the tests that measure this process's memory and by those that
/// load it, so neither runs while the other does.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PROBE: &str = "probe-token-1";
const VIEWER: &str = "viewer-token-1";
const OPERATOR: &str = "operator-token-1";
const ADMIN: &str = "admin-token-1";

struct Server {
    base: String,
    app: App,
    audit: PathBuf,
    http: reqwest::Client,
}

impl Server {
    async fn start(tag: &str) -> Server {
        Self::start_with(tag, |_| {}).await
    }

    /// [`Server::start`] with changes to its configuration.
    async fn start_with(tag: &str, change: impl FnOnce(&mut AppConfig)) -> Server {
        let dir = std::env::temp_dir().join(format!("orch-topology-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let audit = dir.join("audit.log");
        let tokens = Tokens::parse(&format!(
            "{PROBE} probe\n{VIEWER} viewer vera\n{OPERATOR} operator otto\n{ADMIN} admin ada\n"
        ))
        .unwrap();
        let mut config = AppConfig {
            tokens,
            audit_log: Some(audit.clone()),
            data_dir: Some(dir),
            control_timeout: Duration::from_secs(20),
            ..AppConfig::default()
        };
        change(&mut config);
        let app = App::new(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Server {
            base,
            app,
            audit,
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: Option<&str>, path: &str, ct: &str, body: Vec<u8>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

struct Containers {
    docker: String,
    names: Vec<String>,
}

impl Containers {
    fn run(docker: &str, image: &str, name: &str, cmd: &[&str]) -> String {
        let mut args = vec![
            "-H",
            docker,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--label",
            "app=topology-test",
            image,
        ];
        args.extend_from_slice(cmd);
        let out = Command::new("docker").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn state(&self, id: &str) -> String {
        let out = Command::new("docker")
            .args(["-H", &self.docker, "inspect", "-f", "{{.State.Status}}", id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("docker")
                .args(["-H", &self.docker, "rm", "-f", n])
                .output();
        }
    }
}

fn node_named<'a>(view: &'a Value, label: &str) -> Option<(&'a String, &'a Value)> {
    view["nodes"].as_object()?.iter().find(|(_, n)| n["label"] == label)
}

/// A real probe reports to the app: the containers view shows both busybox
/// containers with the connection between them, the processes view shows
/// their processes; a viewer may not stop one, an operator may, and the
/// stop lands in the audit log and in live diffs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_probe_feeds_views_and_runs_controls_through_the_app() {
    let Some(env) = orchestrator_testkit::docker("a_real_probe_feeds_views_and_runs_controls_through_the_app") else {
        return;
    };
    let server = Server::start("probe").await;
    let port = orchestrator_testkit::free_port();
    let pid = std::process::id();
    let (srv, cli) = (format!("topo-server-{pid}"), format!("topo-client-{pid}"));
    let containers = Containers {
        docker: env.host.clone(),
        names: vec![srv.clone(), cli.clone()],
    };
    let port_s = port.to_string();
    let server_id = Containers::run(
        &env.host,
        &env.busybox_image,
        &srv,
        &["nc", "-ll", "-p", &port_s, "-e", "cat"],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client_cmd = format!("sleep 3600 | nc 127.0.0.1 {port}");
    let _client_id = Containers::run(&env.host, &env.busybox_image, &cli, &["sh", "-c", &client_cmd]);

    let hostname = orchestrator_probe::HostInfo::collect().unwrap().hostname;
    let mut config = orchestrator_probe::ProbeConfig::new(&hostname);
    config.probe_id = format!("test-probe-{pid}");
    config.apps = vec![server.base.clone()];
    config.publish.token = Some(PROBE.into());
    config.docker_host = Some(env.host.clone());
    config.spy_interval = Duration::from_secs(1);
    config.publish_interval = Duration::from_secs(1);
    let probe = orchestrator_probe::Probe::start(config).await;
    let (stop_probe, stopped) = tokio::sync::oneshot::channel::<()>();
    let probe_task = tokio::spawn(probe.run(async {
        let _ = stopped.await;
    }));

    // Both containers, and the client's connection to the server as an edge.
    let (server_node, client_node) = until("both containers and their edge", Duration::from_secs(40), async || {
        let (status, view) = server.get(VIEWER, "/api/topology/containers").await;
        assert_eq!(status, 200);
        let (sid, _) = node_named(&view, &srv)?;
        let (cid, c) = node_named(&view, &cli)?;
        c["adjacency"]
            .as_array()?
            .iter()
            .any(|a| a == sid)
            .then(|| (sid.clone(), cid.clone()))
    })
    .await;
    assert_eq!(server_node, server_id, "container nodes are named by id");

    // The containers' processes are in the processes view, under them.
    let (status, details) = server
        .get(VIEWER, &format!("/api/topology/containers/{server_node}"))
        .await;
    assert_eq!(status, 200, "{details}");
    let node = &details["node"];
    assert_eq!(node["labels"]["app"], "topology-test");
    assert!(
        node["children"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["label"] == "nc" || c["label"] == "cat"),
        "{node}"
    );
    assert!(node["controls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "docker_stop_container"));
    assert!(
        node["incoming"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == client_node.as_str()),
        "the client connects to it: {node}"
    );
    let (_, processes) = server.get(VIEWER, "/api/topology/processes").await;
    assert!(processes["nodes"]
        .as_object()
        .unwrap()
        .values()
        .any(|n| n["label"] == "nc"));
    let (_, hosts) = server.get(VIEWER, "/api/topology/hosts").await;
    assert!(node_named(&hosts, &hostname).is_some(), "the host node");

    // Search and saved filters.
    let (status, found) = server
        .get(VIEWER, &format!("/api/search?q=app=topology-test+{srv}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        found["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == server_node.as_str()),
        "{found}"
    );
    let (status, saved) = server
        .post(
            Some(OPERATOR),
            "/api/filters",
            "application/json",
            serde_json::to_vec(
                &serde_json::json!({"name": "test", "query": "app=topology-test", "view": "containers"}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{saved}");
    let (_, filtered) = server
        .get(
            VIEWER,
            &format!(
                "/api/topology/containers?filter={}&pseudo=hide",
                saved["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(filtered["nodes"].as_object().unwrap().len(), 2, "{filtered}");

    // Live diffs: a reset first.
    let ws_url = format!(
        "{}/api/topology/containers/ws?token={VIEWER}",
        server.base.replace("http", "ws")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let first: Value = match ws.next().await.unwrap().unwrap() {
        tokio_tungstenite::tungstenite::Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(first["reset"], true);
    assert!(first["add"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == server_node.as_str()));

    // A viewer may not stop it; an operator may.
    let stop = format!("/api/control/test-probe-{pid}/{server_node}/docker_stop_container");
    let (status, body) = server
        .post(
            Some(VIEWER),
            &stop,
            "application/json",
            b"{\"timeout\": \"1\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = server.post(None, &stop, "application/json", Vec::new()).await;
    assert_eq!(status, 401);
    until("the probe's control socket", Duration::from_secs(20), async || {
        let (_, agents) = server.get(VIEWER, "/api/v1/agents/list").await;
        agents["agents"]
            .as_array()?
            .iter()
            .any(|a| a["control_socket"] == true)
            .then_some(())
    })
    .await;
    let (status, body) = server
        .post(
            Some(OPERATOR),
            &stop,
            "application/json",
            b"{\"timeout\": \"1\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(containers.state(&server_id), "exited", "the real container stopped");
    let audit = std::fs::read_to_string(&server.audit).unwrap();
    let entries: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        entries.iter().any(|e| e["who"] == "vera" && e["ok"] == false),
        "refusals are audited: {audit}"
    );
    let done = entries
        .iter()
        .find(|e| e["who"] == "otto" && e["ok"] == true)
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(done["control"], "docker_stop_container");
    assert_eq!(done["node"], server_node.as_str());
    let (status, recent) = server.get(ADMIN, "/api/audit").await;
    assert_eq!(status, 200);
    assert!(!recent["entries"].as_array().unwrap().is_empty());
    assert_eq!(server.get(OPERATOR, "/api/audit").await.0, 403);

    // The stopped container leaves the default containers view: a diff says so.
    until(
        "a diff removing the stopped container",
        Duration::from_secs(30),
        async || {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .ok()??
                .ok()?;
            let tokio_tungstenite::tungstenite::Message::Text(t) = msg else {
                return None;
            };
            let d: Value = serde_json::from_str(&t).ok()?;
            d["remove"]
                .as_array()?
                .iter()
                .any(|r| r == server_node.as_str())
                .then_some(())
        },
    )
    .await;
    let (_, stopped_view) = server.get(VIEWER, "/api/topology/containers?stopped=stopped").await;
    assert!(
        stopped_view["nodes"].get(&server_node).is_some(),
        "shown under stopped=stopped"
    );
    let (status, series) = server
        .get(VIEWER, &format!("/api/v1/query/agents/test-probe-{pid}/timeseries"))
        .await;
    assert_eq!(status, 200, "{series}");
    assert!(
        series["metrics"].as_object().is_some_and(|m| !m.is_empty()),
        "host series: {series}"
    );
    let _ = stop_probe.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), probe_task).await;
    drop(containers);
}

fn report(probe: &str, seq: u64, full: bool) -> Vec<u8> {
    let mut r = Report::new(probe, probe, orchestrator_topology::now_ms());
    r.header.seq = seq;
    r.header.full = full;
    encode(&r).unwrap()
}

/// Bad input gets a clear error, and the app keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_nothing_is_lost() {
    // Not beside the memory tests: a 17 MiB body refused early can reset
    // the connection before the answer is read when the machine is busy.
    let _alone = HEAVY.lock().await;
    let server = Server::start("bad").await;
    let ct = CONTENT_TYPE;
    // Roles and tokens.
    assert_eq!(
        server.post(None, "/api/v1/reports", ct, report("p", 1, true)).await.0,
        401
    );
    assert_eq!(
        server
            .post(Some("nope-nope-nope"), "/api/v1/reports", ct, report("p", 1, true))
            .await
            .0,
        401
    );
    assert_eq!(
        server
            .post(Some(VIEWER), "/api/v1/reports", ct, report("p", 1, true))
            .await
            .0,
        403
    );
    assert_eq!(
        server.get(PROBE, "/api/topology").await.0,
        403,
        "a probe token reads nothing"
    );
    // Garbage, wrong type, too large, out of sequence.
    let (status, body) = server
        .post(Some(PROBE), "/api/v1/reports", ct, b"{\"not\": \"a report\"}".to_vec())
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not an orchestrator report"));
    assert_eq!(
        server
            .post(Some(PROBE), "/api/v1/reports", "text/plain", report("p", 1, true))
            .await
            .0,
        415
    );
    let (status, _) = server
        .post(Some(PROBE), "/api/v1/reports", ct, vec![0u8; 17 << 20])
        .await;
    assert_eq!(status, 413);
    let (status, body) = server
        .post(Some(PROBE), "/api/v1/reports", ct, report("p", 5, false))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("full report"));
    // The good ones are all kept.
    assert_eq!(
        server
            .post(Some(PROBE), "/api/v1/reports", ct, report("p", 1, true))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .post(Some(PROBE), "/api/v1/reports", ct, report("p", 2, false))
            .await
            .0,
        200
    );
    let (_, dup) = server
        .post(Some(PROBE), "/api/v1/reports", ct, report("p", 2, false))
        .await;
    assert_eq!(dup["duplicate"], true);
    let (_, stats) = server.get(VIEWER, "/api/v1/query/stats").await;
    assert_eq!(stats["reports_received"], 3);
    assert_eq!(stats["probes"], 1);
    // Views, queries and filters.
    assert_eq!(server.get(VIEWER, "/api/topology/bogus").await.0, 404);
    assert_eq!(server.get(VIEWER, "/api/topology/containers?system=maybe").await.0, 400);
    let (status, body) = server.get(VIEWER, "/api/search?q=cpu>lots").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(server.get(VIEWER, "/api/topology/containers/nothing-here").await.0, 404);
    assert_eq!(server.get(VIEWER, "/api/v1/query/agents/unknown/latest").await.0, 404);
    let (status, _) = server
        .post(
            Some(VIEWER),
            "/api/filters",
            "application/json",
            b"{\"name\":\"x\",\"query\":\"a\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .post(
            Some(OPERATOR),
            "/api/filters",
            "application/json",
            b"{\"name\":\"x\",\"query\":\"a\",\"extra\":1}".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "unknown fields are refused");
    // Agents.
    let (status, reg) = server
        .post(
            Some(PROBE),
            "/api/v1/agents/register",
            "application/json",
            b"{\"hostname\":\"h1\",\"version\":\"1\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["agent_id"], "h1");
    assert_eq!(
        server
            .post(Some(PROBE), "/api/v1/agents/heartbeat/h1", ct, Vec::new())
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .post(Some(PROBE), "/api/v1/agents/heartbeat/h2", ct, Vec::new())
            .await
            .0,
        404
    );
    let (status, _) = server
        .post(
            Some(PROBE),
            "/api/v1/agents/register",
            "application/json",
            b"{\"hostname\":\"\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 422);
    let (_, agents) = server.get(VIEWER, "/api/v1/agents/list").await;
    let ids: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert_eq!(ids, ["h1", "p"]);
    // Controls without a probe socket, the OpenAPI document, metrics.
    let (status, body) = server
        .post(Some(OPERATOR), "/api/control/p/n/docker_stop_container", ct, Vec::new())
        .await;
    assert_eq!(status, 503, "{body}");
    let (status, doc) = server.get(VIEWER, "/api/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = format!("{}{}", server.base, path.replace('{', "x").replace('}', ""));
            let req = match method.as_str() {
                "get" => server.http.get(&url),
                "post" => server.http.post(&url),
                _ => server.http.delete(&url),
            };
            let status = req.bearer_auth(ADMIN).send().await.unwrap().status().as_u16();
            let body_404 = status == 404;
            // A 404 here must be "no such thing", not "no such endpoint".
            if body_404 {
                let r = server.http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
                let text = r.text().await.unwrap();
                assert!(!text.contains("no such endpoint"), "{method} {path} is not routed");
            }
        }
    }
    // /metrics in the classic text format for curl and promtool, which
    // finds nothing to object to; OpenMetrics for Prometheus's Accept.
    let scrape = |accept: Option<&'static str>| {
        let mut req = server.http.get(format!("{}/metrics", server.base)).bearer_auth(VIEWER);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        async move {
            let r = req.send().await.unwrap();
            let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
            (ctype, r.text().await.unwrap())
        }
    };
    let (ctype, metrics) = scrape(None).await;
    assert_eq!(ctype, orchestrator_core::exposition::PROMETHEUS_TEXT);
    assert!(metrics.contains("topology_reports_received_total 3"), "{metrics}");
    assert!(
        metrics.contains("# TYPE topology_reports_rejected_total counter"),
        "{metrics}"
    );
    // The app's latencies and requests are histograms and counters that
    // Prometheus can sum across replicas.
    assert!(
        metrics.contains("topology_latency_seconds_bucket{le=\"+Inf\",op=\"ingest\"}")
            || metrics.contains("topology_latency_seconds_bucket{op=\"ingest\",le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE topology_http_requests_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("code=\"400\""),
        "the refused reports are counted: {metrics}"
    );
    assert!(
        metrics.contains("# TYPE topology_http_request_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(!metrics.contains("quantile"), "{metrics}");
    orchestrator_testkit::promtool_check(&metrics, "bad_input_is_refused_clearly_and_nothing_is_lost");
    let (ctype, om) = scrape(Some(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ))
    .await;
    assert_eq!(ctype, orchestrator_core::exposition::OPENMETRICS);
    assert!(
        om.ends_with("# EOF\n") && om.contains("# TYPE topology_reports_received counter"),
        "{om}"
    );
    // Without tokens the app may only listen on loopback.
    use orchestrator_topology::server::check_exposure;
    assert!(check_exposure(&AppConfig::default(), "0.0.0.0:4040".parse().unwrap()).is_err());
    assert!(check_exposure(&AppConfig::default(), "127.0.0.1:4040".parse().unwrap()).is_ok());
    // Still serving.
    let (status, _) = server.get(VIEWER, "/health").await;
    assert_eq!(status, 200);
    let held = server.app.with_store(|s| s.probes().len());
    assert_eq!(held, 1);
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A bounded load test: 1,000 simulated probes (the synthetic large
/// cluster's hosts) post full reports and deltas over loopback. Every
/// report is taken, none refused, and memory stays flat once every probe
/// has reported. `ORCH_LOAD_SECS` (15) and `ORCH_LOAD_INTERVAL_MS` (5000)
/// size it; the run is `ORCH_LOAD_SECS=120 ORCH_LOAD_INTERVAL_MS=15000`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_probes_post_over_loopback_and_nothing_is_lost() {
    let _alone = HEAVY.lock().await;
    use orchestrator_topology::synthetic::{Cluster, ClusterSpec};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let secs = env("ORCH_LOAD_SECS", 15);
    let interval = Duration::from_millis(env("ORCH_LOAD_INTERVAL_MS", 5000));
    let server = Arc::new(Server::start("load").await);
    // Unoptimised test builds make reports ten times slower: a tenth of the
    // large cluster per probe there, the whole of it in `--release`.
    let spec = if cfg!(debug_assertions) {
        ClusterSpec {
            hosts: 1000,
            containers: 2000,
            processes: 10_000,
            connections: 20_000,
        }
    } else {
        ClusterSpec::LARGE
    };
    let cluster = Arc::new(Cluster::new(spec));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    // Reports are made two at a time, so the simulated probes' own memory
    // stays small beside the app's.
    let making = Arc::new(tokio::sync::Semaphore::new(2));
    let mut tasks = Vec::new();
    for h in 0..cluster.hosts() {
        let (server, cluster, sent, failed) = (server.clone(), cluster.clone(), sent.clone(), failed.clone());
        let making = making.clone();
        tasks.push(tokio::spawn(async move {
            // Spread the probes over the interval, as real ones drift apart.
            tokio::time::sleep(interval * h as u32 / 1000).await;
            let mut round = 0u64;
            while Instant::now() < deadline {
                let cluster = cluster.clone();
                let permit = making.clone().acquire_owned().await.unwrap();
                // A full report every fourth publish, deltas between (the
                // previous report is made again rather than kept: 1,000
                // of them would weigh more than the app under test).
                let body = tokio::task::spawn_blocking(move || {
                    let now = orchestrator_topology::now_ms();
                    let report = cluster.report(h, now, round);
                    if round % 4 == 0 {
                        encode(&report).unwrap()
                    } else {
                        encode(&report.delta_since(&cluster.report(h, now, round - 1))).unwrap()
                    }
                })
                .await
                .unwrap();
                drop(permit);
                let (status, body) = server.post(Some(PROBE), "/api/v1/reports", CONTENT_TYPE, body).await;
                if status == 200 {
                    sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("probe {h} round {round}: {status} {body}");
                }
                round += 1;
                tokio::time::sleep(interval).await;
            }
        }));
    }
    // Memory once every probe has reported once, and at the end.
    tokio::time::sleep(interval + Duration::from_secs(2)).await;
    let settled = rss_bytes();
    for t in tasks {
        t.await.unwrap();
    }
    let end = rss_bytes();
    let (_, stats) = server.get(VIEWER, "/api/v1/query/stats").await;
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "{sent} reports from 1,000 probes in {:?}; RSS {} MB after the first round, {} MB at the end; ingest p99 {} µs",
        started.elapsed(),
        settled >> 20,
        end >> 20,
        stats["ingest_latency"]["p99_us"]
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no errors");
    assert!(
        sent >= 1000 * (secs * 1000 / interval.as_millis() as u64).max(1) / 2,
        "{sent} sent"
    );
    assert_eq!(stats["reports_received"], sent, "no report lost");
    assert_eq!(stats["reports_rejected"], 0);
    assert_eq!(stats["probes"], 1000);
    assert!(
        end < settled + settled / 4 + (64 << 20),
        "memory flat: {} MB then {} MB",
        settled >> 20,
        end >> 20
    );
    let (status, view) = server.get(VIEWER, "/api/topology/containers").await;
    assert_eq!(status, 200);
    assert!(view["nodes"].as_object().unwrap().len() >= spec.containers);
}

/// With a certificate the app serves HTTPS (rustls); tokens still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_tls_with_a_certificate() {
    use orchestrator_topology::server::TlsListener;
    let dir = std::env::temp_dir().join(format!("orch-topology-tls-{}", std::process::id()));
    let Some((cert, key)) =
        orchestrator_testkit::self_signed_cert(&dir, "127.0.0.1", "the_app_serves_tls_with_a_certificate")
    else {
        return;
    };
    let app = App::new(AppConfig {
        tokens: Tokens::parse(&format!("{VIEWER} viewer")).unwrap(),
        ..AppConfig::default()
    })
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener::new(tcp, &cert, &key).unwrap();
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    assert!(
        TlsListener::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), &key, &key).is_err(),
        "a key is no certificate"
    );
    let ask = |path: &'static str, token: Option<&'static str>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let auth = token
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
            let req_file = dir.join(format!("req-{}", path.len()));
            std::fs::write(&req_file, request).unwrap();
            let out = Command::new("openssl")
                .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}")])
                .stdin(std::fs::File::open(&req_file).unwrap())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let health = ask("/health", None).await.unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"ok\""));
    let refused = ask("/api/topology", None).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let views = ask("/api/topology", Some(VIEWER)).await.unwrap();
    assert!(
        views.starts_with("HTTP/1.1 200") && views.contains("containers-by-image"),
        "{views}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The app serves its web UI at `/` to anyone (the page must load to ask
/// for a token), and `/api/whoami` tells the page who is calling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_is_served_and_whoami_names_the_caller() {
    let server = Server::start("ui").await;
    let page = server.http.get(format!("{}/", server.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.unwrap();
    if orchestrator_topology::server::ui_built() {
        assert!(html.contains("/ui/app.js"), "{html}");
        for (file, ct) in [
            ("app.js", "text/javascript"),
            ("layout.js", "text/javascript"),
            ("style.css", "text/css"),
        ] {
            let r = server
                .http
                .get(format!("{}/ui/{file}", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{file}");
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with(ct), "{file}");
        }
    } else {
        // Built without Node.js: the page says how to get the UI.
        assert!(html.contains("npm"), "{html}");
    }
    assert_eq!(
        server
            .http
            .get(format!("{}/ui/nothing.js", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let anonymous: Value = server
        .http
        .get(format!("{}/api/whoami", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anonymous["token_required"], true, "{anonymous}");
    assert_eq!(anonymous["role"], Value::Null);
    let (status, viewer) = server.get(VIEWER, "/api/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(
        (viewer["name"].as_str(), viewer["role"].as_str()),
        (Some("vera"), Some("viewer"))
    );
    assert_eq!(viewer["open"], false);
    assert_eq!(server.get("no-such-token", "/api/whoami").await.0, 401);
}

/// Issue 18: clients that opened a live view and never read made the app
/// hold a render and an unsent diff each, growing without bound. Now a
/// client that takes no message within `ws_send_timeout` is disconnected,
/// which lets go of both. (RSS is not asserted here: this binary's other
/// tests run in the same process at the same time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_clients_that_never_read_are_disconnected() {
    let _alone = HEAVY.lock().await;
    use orchestrator_topology::synthetic::{Cluster, ClusterSpec};
    let server = Server::start_with("unread", |c| c.ws_send_timeout = Duration::from_secs(1)).await;
    let cluster = Cluster::new(ClusterSpec {
        hosts: 10,
        containers: 100,
        processes: 3_000,
        connections: 3_000,
    });
    let now = orchestrator_topology::now_ms();
    for round in 0..2 {
        for r in cluster.round(now, round) {
            server.app.ingest_bytes(&encode(&r).unwrap()).unwrap();
        }
    }
    // Rounds in which every process's metrics move: a diff for every client.
    let rounds: Vec<Vec<Vec<u8>>> = (2..42)
        .map(|round| {
            (0..cluster.hosts())
                .map(|h| {
                    encode(
                        &cluster
                            .report(h, now, round)
                            .delta_since(&cluster.report(h, now, round - 1)),
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect();
    let addr = server.base.trim_start_matches("http://").parse().unwrap();
    let url = format!("ws://{addr}/api/topology/processes/ws?token={VIEWER}");
    let mut unread = Vec::new();
    for _ in 0..50 {
        // A small receive window, so the app's sends back up soon.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        unread.push(tokio_tungstenite::client_async(&url, stream).await.unwrap().0);
    }
    for round in &rounds {
        for report in round {
            server.app.ingest_bytes(report).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past the send timeout with nothing read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The app still answers, and each unread client was let go: what it
    // reads now ends (the messages buffered before, then the close).
    assert_eq!(server.get(VIEWER, "/health").await.0, 200);
    for (i, ws) in unread.iter_mut().enumerate() {
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "client {i} is still connected");
    }
}

/// Issue 18: `?token=` was honoured on plain HTTP (tokens end up in URLs
/// and logs) and `Authorization: bearer` (lower case) was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_go_in_the_authorization_header_with_any_case_scheme() {
    let server = Server::start("scheme").await;
    let get = |auth: Option<&str>, path: &str| {
        let mut req = server.http.get(format!("{}{path}", server.base));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = get(Some(&format!("{scheme} {VIEWER}")), "/api/topology").await.unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    assert_eq!(
        get(Some(&format!("Basic {VIEWER}")), "/api/topology")
            .await
            .unwrap()
            .status(),
        401
    );
    let r = get(None, &format!("/api/topology?token={VIEWER}")).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Authorization header"),
        "{body}"
    );
    // A WebSocket upgrade may carry it (browsers cannot set headers there).
    let ws = format!(
        "{}/api/topology/hosts/ws?token={VIEWER}",
        server.base.replace("http", "ws")
    );
    assert!(tokio_tungstenite::connect_async(&ws).await.is_ok());
}

/// Issue 18: a gzip bomb was refused only after 256 MiB had been
/// decompressed and buffered (eight concurrent 1.4 MB bombs took the app
/// server to 2.7 GB). Now decoding stops at the limit as the bytes come,
/// and only `max_concurrent_reports` decode at once: waves of eight
/// concurrent bombs, each claiming a 2 GiB string inside 64 MiB of zeros,
/// raise RSS by two decodes' worth and the allocator's slack, however many
/// come, and the app keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_over_http_never_raise_memory_past_the_limit() {
    use std::io::Write;
    let _alone = HEAVY.lock().await;
    const MAX_DECODED: usize = 8 << 20;
    let server = Server::start_with("bombs", |c| {
        c.limits.max_decoded = MAX_DECODED;
        c.max_concurrent_reports = 2;
    })
    .await;
    let bomb = |prefix: &[u8]| {
        let mut out = b"ORPT\x01\x01".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(prefix).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        out.extend(gz.finish().unwrap());
        out
    };
    // A map whose first key claims 2 GiB, then zeros: valid MessagePack as
    // far as it goes, so the decoder reads until the limit stops it.
    let string_bomb = bomb(&[0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff]);
    let zeros_bomb = bomb(b"");
    assert!(string_bomb.len() < 200_000, "{}", string_bomb.len());
    let wave = || {
        let mut posts = Vec::new();
        for i in 0..8 {
            let body = if i % 4 == 3 {
                zeros_bomb.clone()
            } else {
                string_bomb.clone()
            };
            let (http, url) = (server.http.clone(), format!("{}/api/v1/reports", server.base));
            posts.push(tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("content-type", CONTENT_TYPE)
                    .bearer_auth(PROBE)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }));
        }
        async move {
            let mut statuses = Vec::new();
            for p in posts {
                statuses.push(p.await.unwrap());
            }
            for (i, s) in statuses.iter().enumerate() {
                let want = if i % 4 == 3 { 400 } else { 413 };
                assert_eq!(*s, want, "bomb {i}: {statuses:?}");
            }
        }
    };
    let before = rss_bytes();
    // Twelve waves: 96 bombs that would expand to 6 GiB.
    for _ in 0..12 {
        wave().await;
    }
    let grew = rss_bytes().saturating_sub(before);
    // Two decodes at once, each stopped at the limit (a growing buffer may
    // hold twice what it has read), plus what the allocator keeps for the
    // blocking threads that ran them; the old code reached 2.7 GB with
    // eight bombs.
    let bound = 2 * 2 * MAX_DECODED as u64 + (128 << 20);
    assert!(grew < bound, "RSS grew {} MiB (bound {} MiB)", grew >> 20, bound >> 20);
    assert_eq!(server.get(VIEWER, "/health").await.0, 200);
    let ok = report("after-the-bombs", 1, true);
    assert_eq!(
        server.post(Some(PROBE), "/api/v1/reports", CONTENT_TYPE, ok).await.0,
        200
    );
}

/// Schemathesis, an OpenAPI fuzzer from PyPI that this project did not
/// write, generates requests for every operation of the app server's own
/// `/api/openapi.json` (examples, boundary values, then random ones) with an
/// admin's token, for a bounded time (`ORCH_FUZZ_SECS`, 40 s): no answer
/// may be a server error, and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_the_documented_api() {
    const TEST: &str = "schemathesis_finds_no_server_error_in_the_documented_api";
    let Some(st) = orchestrator_testkit::schemathesis(TEST) else {
        return;
    };
    let _alone = HEAVY.lock().await;
    let server = Server::start("schemathesis").await;
    // Something to show: a probe's report, so views and details have nodes.
    let mut r = Report::new("fuzzed-probe", "fuzzed-host", orchestrator_topology::now_ms());
    r.header.full = true;
    let mut node = orchestrator_core::report::Node::default();
    node.set_latest("name", "web", 1);
    r.topologies
        .get_mut(orchestrator_core::report::TopologyKind::Process)
        .insert("fuzzed-host;100".into(), node);
    server.app.ingest_bytes(&encode(&r).unwrap()).unwrap();
    let secs = std::env::var("ORCH_FUZZ_SECS").unwrap_or_else(|_| "40".into());
    let out = tokio::process::Command::new(&st)
        .args([
            "--no-color",
            "run",
            &format!("{}/api/openapi.json", server.base),
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-time",
            &secs,
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "all",
            "-H",
            &format!("Authorization: Bearer {ADMIN}"),
        ])
        .env("NO_COLOR", "1")
        // Its cache and crash files go to a scratch directory, not the crate.
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("running schemathesis");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{said}");
    assert_eq!(server.get(VIEWER, "/health").await.0, 200, "{said}");
}
