//! The all-in-one's L4 load balancer as a client meets it: connections to
//! an app's service port spread over its three tasks, and a task killed
//! under load costs no connection a second later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_testkit::until;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::aio::{get, scratch, send, AllInOne};

/// A server that writes its own port to every connection and closes it.
const IDENTITY_SERVER: &str = r#"python3 -c '
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT0"]))); s.listen(1024)
while True:
    c, _ = s.accept(); c.sendall(os.environ["PORT0"].encode()); c.close()
'"#;

/// One connection through the balancer: the backend's answer, or why not.
async fn call(port: u16) -> Result<String, String> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.map_err(|e| e.to_string())?;
        if out.is_empty() {
            return Err("closed without an answer".to_string());
        }
        Ok(out)
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// `n` connections (or as many as start within `for_at_most` of `t0`),
/// at most `parallel` at a time, each slot resting `pause` between calls
/// (a bounded rate: every connection leaves a port in TIME_WAIT for a
/// minute): each answer with the time it finished, relative to `t0`.
async fn load(
    port: u16,
    n: usize,
    for_at_most: Duration,
    (parallel, pause): (usize, Duration),
    t0: Instant,
) -> Vec<(Duration, Result<String, String>)> {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        if t0.elapsed() > for_at_most {
            break;
        }
        let permit = Arc::clone(&gate).acquire_owned().await.unwrap();
        calls.push(tokio::spawn(async move {
            let r = call(port).await;
            let done = t0.elapsed();
            tokio::time::sleep(pause).await;
            drop(permit);
            (done, r)
        }));
    }
    let mut out = Vec::with_capacity(n);
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancer_spreads_connections_and_survives_a_killed_task() {
    let _shared = crate::HEAVY.read().await;
    let work = scratch("lb");
    // Each all-in-one of the suite offers ports of its own: they share the host.
    let mut aio = AllInOne::start_with(
        &[
            "--no-docker".into(),
            "--work-dir".into(),
            work.display().to_string(),
            "--resources".into(),
            "cpus:2;mem:2048;disk:1024;ports:[27000-27099]".into(),
        ],
        true,
    );
    let marathon = aio.marathon.clone();
    let (code, body) = send(
        reqwest::Method::POST,
        &format!("{marathon}/v2/apps"),
        json!({"id": "/lb/echo", "cmd": IDENTITY_SERVER, "cpus": 0.05, "mem": 32, "instances": 3,
               "portDefinitions": [{"port": 0}]}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let app = get(&format!("{marathon}/v2/apps/lb/echo")).await;
    let service_port = u16::try_from(app["app"]["portDefinitions"][0]["port"].as_u64().unwrap()).unwrap();
    assert!((10_000..=20_000).contains(&service_port), "{app}");

    // The balancer listens once the tasks run, and reaches all three.
    let ports = until("three running tasks", Duration::from_secs(30), async || {
        let tasks = get(&format!("{marathon}/v2/apps/lb/echo/tasks")).await;
        let ports: Vec<String> = tasks["tasks"]
            .as_array()?
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .map(|t| t["ports"][0].to_string())
            .collect();
        (ports.len() == 3).then_some(ports)
    })
    .await;
    until(
        "the balancer to reach every task",
        Duration::from_secs(15),
        async || {
            let seen: std::collections::BTreeSet<String> =
                futures_util::future::join_all((0..9).map(|_| call(service_port)))
                    .await
                    .into_iter()
                    .filter_map(Result::ok)
                    .collect();
            (seen.len() == 3).then_some(())
        },
    )
    .await;

    // 1,000 connections, 50 at a time, spread within ±10 %.
    let answers = load(
        service_port,
        1_000,
        Duration::from_secs(60),
        (50, Duration::ZERO),
        Instant::now(),
    )
    .await;
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r) in &answers {
        *spread
            .entry(r.clone().unwrap_or_else(|e| format!("error: {e}")))
            .or_default() += 1;
    }
    assert_eq!(spread.len(), 3, "{spread:?}");
    for (backend, n) in &spread {
        assert!(ports.contains(backend), "{spread:?}");
        assert!((300..=367).contains(n), "uneven spread: {spread:?}");
    }

    // Kill one task under load (about 1,000 connections a second for 3 s):
    // from a second after, no connection fails.
    let t0 = Instant::now();
    let loader = tokio::spawn(load(
        service_port,
        3_000,
        Duration::from_secs(3),
        (10, Duration::from_millis(10)),
        t0,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tasks = get(&format!("{marathon}/v2/apps/lb/echo/tasks")).await;
    let victim: &Value = &tasks["tasks"][0];
    let killed_at = t0.elapsed();
    let (code, body) = send(
        reqwest::Method::DELETE,
        &format!("{marathon}/v2/apps/lb/echo/tasks/{}", victim["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    assert!(code < 300, "{body}");
    let answers = loader.await.unwrap();
    let late: Vec<_> = answers
        .iter()
        .filter(|(t, r)| *t > killed_at + Duration::from_secs(1) && r.is_err())
        .collect();
    assert!(
        late.is_empty(),
        "connections failed over a second after the kill: {late:?}"
    );
    let after = answers
        .iter()
        .filter(|(t, _)| *t > killed_at + Duration::from_secs(1))
        .count();
    assert!(
        after > 0,
        "the load ended before the kill took effect; nothing was checked"
    );

    assert!(aio.interrupt().success(), "{}", aio.said());
    let _ = std::fs::remove_dir_all(&work);
}

/// An HTTP server that answers every request with its own port.
const HTTP_IDENTITY_SERVER: &str = r#"python3 -c '
import os, http.server as h
class H(h.BaseHTTPRequestHandler):
    def do_GET(s):
        b = os.environ["PORT0"].encode()
        s.send_response(200); s.send_header("Content-Length", str(len(b))); s.end_headers(); s.wfile.write(b)
    def log_message(s, *a): pass
h.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT0"])), H).serve_forever()
'"#;

/// A child in a process group of its own, killed (group and all) on drop.
struct Group(std::process::Child);

impl Group {
    fn spawn(cmd: &mut std::process::Command) -> Group {
        use std::os::unix::process::CommandExt;
        Group(cmd.process_group(0).spawn().expect("spawning"))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = std::process::Command::new("kill").args(["-TERM", "--", &pgid]).status();
        let _ = self.0.wait();
    }
}

/// The body of `GET url` with `Host: host`, or the status when not 200.
async fn http_get(url: &str, host: &str) -> Result<String, u16> {
    let r = reqwest::Client::new()
        .get(url)
        .header("host", host)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|_| 0u16)?;
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    r.text().await.map_err(|_| 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_haproxy_routes_with_the_generated_configuration_and_reloads_on_scale() {
    let _shared = crate::HEAVY.read().await;
    let work = scratch("haproxy");
    let mut aio = AllInOne::start(&[
        "--no-docker".into(),
        "--work-dir".into(),
        work.display().to_string(),
        "--resources".into(),
        "cpus:2;mem:2048;disk:1024;ports:[28000-28099]".into(),
    ]);
    let marathon = aio.marathon.clone();
    let (http_port, front_port) = (orchestrator_testkit::free_port(), orchestrator_testkit::free_port());
    let (code, body) = send(
        reqwest::Method::POST,
        &format!("{marathon}/v2/apps"),
        json!({"id": "/edge/web", "cmd": HTTP_IDENTITY_SERVER, "cpus": 0.05, "mem": 32, "instances": 2,
               "portDefinitions": [{"port": 0}],
               "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "web.test",
                          "HAPROXY_0_PORT": front_port.to_string()}}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let task_ports = |n: usize| {
        let marathon = marathon.clone();
        async move {
            until(&format!("{n} running tasks"), Duration::from_secs(30), async || {
                let tasks = get(&format!("{marathon}/v2/apps/edge/web/tasks")).await;
                let ports: std::collections::BTreeSet<String> = tasks["tasks"]
                    .as_array()?
                    .iter()
                    .filter(|t| t["state"] == "TASK_RUNNING")
                    .map(|t| t["ports"][0].to_string())
                    .collect();
                (ports.len() == n).then_some(ports)
            })
            .await
        }
    };
    let two = task_ports(2).await;

    // The balancer writes HAProxy's file (and asks it to reload on change).
    let config = work.join("haproxy.cfg");
    let pidfile = work.join("haproxy.pid");
    let status_port = orchestrator_testkit::free_port();
    let _lb = Group::spawn(
        std::process::Command::new(orchestrator_testkit::example_binary("lb"))
            .args(["--marathon", &marathon, "--no-proxy", "--group", "external"])
            .args(["--status-listen", &format!("127.0.0.1:{status_port}")])
            .args(["--haproxy-http-port", &http_port.to_string(), "--haproxy-config"])
            .arg(&config)
            .arg("--haproxy-reload")
            .arg(format!("kill -USR2 $(cat {})", pidfile.display()))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null()),
    );
    let servers = |n: usize| {
        let config = config.clone();
        async move {
            until(
                &format!("{n} servers in HAProxy's file"),
                Duration::from_secs(15),
                async || {
                    let text = std::fs::read_to_string(&config).ok()?;
                    (text.matches("\n  server ").count() == n).then_some(text)
                },
            )
            .await
        }
    };
    servers(2).await;
    lb_status_answers(status_port, &["/edge/web"]).await;
    let check = std::process::Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A real HAProxy on it: virtual host and the app's own frontend.
    let _haproxy = Group::spawn(
        std::process::Command::new("haproxy")
            .args(["-W", "-db", "-f"])
            .arg(&config)
            .arg("-p")
            .arg(&pidfile)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let vhost = format!("http://127.0.0.1:{http_port}/");
    let seen = |n: usize| {
        let vhost = vhost.clone();
        async move {
            until(
                &format!("HAProxy to reach {n} tasks"),
                Duration::from_secs(20),
                async || {
                    let mut seen = std::collections::BTreeSet::new();
                    for _ in 0..(4 * n) {
                        seen.insert(http_get(&vhost, "web.test").await.ok()?);
                    }
                    (seen.len() == n).then_some(seen)
                },
            )
            .await
        }
    };
    assert_eq!(seen(2).await, two);
    assert!(http_get(&format!("http://127.0.0.1:{front_port}/"), "any")
        .await
        .is_ok());
    assert_eq!(
        http_get(&vhost, "other.test").await,
        Err(503),
        "no backend for another host"
    );

    // Scale to three: the file is rewritten, HAProxy reloaded, and all three serve.
    let (code, body) = send(
        reqwest::Method::PUT,
        &format!("{marathon}/v2/apps/edge/web"),
        json!({"instances": 3}),
    )
    .await;
    assert!(code < 300, "{body}");
    let three = task_ports(3).await;
    servers(3).await;
    assert_eq!(seen(3).await, three);

    assert!(aio.interrupt().success(), "{}", aio.said());
    let _ = std::fs::remove_dir_all(&work);
}

/// The balancer's status endpoints (`--status-listen`), as health checks
/// and Prometheus use them: alive and ready, and metrics that promtool
/// accepts, with the backends of `apps`.
async fn lb_status_answers(port: u16, apps: &[&str]) {
    let client = reqwest::Client::new();
    let at = |path: &str| format!("http://127.0.0.1:{port}{path}");
    for path in ["/health", "/_haproxy_health_check", "/ready"] {
        let r = client.get(at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    }
    let ready: Value = client.get(at("/ready")).send().await.unwrap().json().await.unwrap();
    assert!(ready["read_seconds_ago"].as_f64().unwrap() < 10.0, "{ready}");
    let metrics = client
        .get(at("/metrics"))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for app in apps {
        assert!(metrics.contains(&format!("lb_backends{{app=\"{app}\"")), "{metrics}");
    }
    orchestrator_testkit::promtool_check(&metrics, "the balancer's /metrics");
}

/// A balancer whose scheduler cannot be reached stays alive (it would
/// serve the backends it last read) but is not ready until it has read
/// the apps, and says why.
#[tokio::test]
async fn a_balancer_that_never_reached_its_scheduler_is_alive_but_not_ready() {
    let (status_port, dead) = (orchestrator_testkit::free_port(), orchestrator_testkit::free_port());
    let _lb = Group::spawn(
        std::process::Command::new(orchestrator_testkit::example_binary("lb"))
            .args(["--marathon", &format!("http://127.0.0.1:{dead}"), "--no-proxy"])
            .args(["--status-listen", &format!("127.0.0.1:{status_port}")])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null()),
    );
    let client = reqwest::Client::new();
    let ready = until("the balancer's status port", Duration::from_secs(15), async || {
        let r = client
            .get(format!("http://127.0.0.1:{status_port}/ready"))
            .send()
            .await
            .ok()?;
        let code = r.status();
        let body: Value = r.json().await.ok()?;
        (!body["last_error"].is_null()).then_some((code, body))
    })
    .await;
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1["read_seconds_ago"].is_null(), "{}", ready.1);
    let alive = client
        .get(format!("http://127.0.0.1:{status_port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
    let metrics = client
        .get(format!("http://127.0.0.1:{status_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert_eq!(
        value("lb_scheduler_last_read_timestamp_seconds"),
        Some(0.0),
        "{metrics}"
    );
    assert!(value("lb_scheduler_reads_failed_total").unwrap() >= 1.0, "{metrics}");
}
