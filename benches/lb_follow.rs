//! How soon a new task takes connections through the L4 balancer, as a
//! user sees it: the release all-in-one (master, agent with the process
//! containerizer, Marathon-style scheduler, balancer) runs an app of one
//! instance whose processes answer every connection with their own port;
//! each iteration scales it to two and times, from a separate client,
//! the scheduler's `TASK_RUNNING` event for the new task (read on its
//! `/v2/events` stream) to the first connection through the app's service
//! port that the new task answers; then it scales back (untimed).
//!
//! - `lb/running_to_first_proxied_connection`: that time. It includes the
//!   task's own start-up after `TASK_RUNNING` (a Python listener: tens of
//!   milliseconds); until it listens the balancer passes it over.
//!
//! The bench builds the release all-in-one first (`cargo build --release
//! --example all-in-one`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// Writes its own port to every connection and closes it.
const IDENTITY_SERVER: &str = r#"python3 -c '
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT0"]))); s.listen(1024)
while True:
    c, _ = s.accept(); c.sendall(os.environ["PORT0"].encode()); c.close()
'"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/release")
        .join("examples")
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The answer of one connection through `port`: the backend's own port.
fn identity(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

async fn json(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("the scheduler answers");
    r.json().await.unwrap_or(Value::Null)
}

async fn running(http: &reqwest::Client, marathon: &str) -> usize {
    let tasks = json(
        http,
        reqwest::Method::GET,
        &format!("{marathon}/v2/apps/bench/echo/tasks"),
        None,
    )
    .await;
    tasks["tasks"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|t| t["state"] == "TASK_RUNNING").count())
}

async fn settle(http: &reqwest::Client, marathon: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deployments = json(http, reqwest::Method::GET, &format!("{marathon}/v2/deployments"), None).await;
        if running(http, marathon).await == n && deployments.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(Instant::now() < deadline, "the app never settled at {n} instances");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bench(c: &mut Criterion) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "all-in-one"])
        .status()
        .is_ok_and(|s| s.success());
    let bin = examples_dir().join("all-in-one");
    if !built || !bin.exists() {
        eprintln!("lb_follow skipped: `cargo build --release --example all-in-one` failed");
        return;
    }
    let work = std::env::temp_dir().join(format!("orch-lb-follow-{}", std::process::id()));
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let marathon = format!("http://127.0.0.1:{}", ports[2]);
    let _aio = Proc(
        Command::new(&bin)
            .args([
                "--master-port",
                &ports[0].to_string(),
                "--agent-port",
                &ports[1].to_string(),
            ])
            .args([
                "--marathon-port",
                &ports[2].to_string(),
                "--app-port",
                &ports[3].to_string(),
            ])
            .args([
                "--dns-port",
                &ports[4].to_string(),
                "--dns-http-port",
                &ports[5].to_string(),
            ])
            .args(["--no-docker", "--work-dir"])
            .arg(&work)
            .args(["--resources", "cpus:2;mem:2048;disk:1024;ports:[29000-29099]"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the all-in-one"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let service_port = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{marathon}/v2/info")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the all-in-one never served the scheduler");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let app = json!({"id": "/bench/echo", "cmd": IDENTITY_SERVER, "cpus": 0.05, "mem": 32,
                         "instances": 1, "portDefinitions": [{"port": 0}]});
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = http
                .post(format!("{marathon}/v2/apps"))
                .json(&app)
                .send()
                .await
                .expect("post");
            if r.status().is_success() {
                break;
            }
            assert!(Instant::now() < deadline, "the app was never accepted: {}", r.status());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        settle(&http, &marathon, 1).await;
        let app = json(
            &http,
            reqwest::Method::GET,
            &format!("{marathon}/v2/apps/bench/echo"),
            None,
        )
        .await;
        let port = u16::try_from(
            app["app"]["portDefinitions"][0]["port"]
                .as_u64()
                .expect("a service port"),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while identity(port).is_none() {
            assert!(Instant::now() < deadline, "the balancer never served port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        port
    });

    let mut group = c.benchmark_group("lb");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("running_to_first_proxied_connection", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let tasks = json(
                        &http,
                        reqwest::Method::GET,
                        &format!("{marathon}/v2/apps/bench/echo/tasks"),
                        None,
                    )
                    .await;
                    let known: BTreeSet<String> = tasks["tasks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t["id"].as_str().map(str::to_string))
                        .collect();
                    let old_ports: BTreeSet<String> = tasks["tasks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t["ports"][0].as_u64().map(|p| p.to_string()))
                        .collect();
                    // The event stream first, so the event cannot be missed.
                    let events = http
                        .get(format!("{marathon}/v2/events"))
                        .header("accept", "text/event-stream")
                        .send()
                        .await
                        .expect("the event stream");
                    let mut stream = events.bytes_stream();
                    json(
                        &http,
                        reqwest::Method::PUT,
                        &format!("{marathon}/v2/apps/bench/echo"),
                        Some(json!({"instances": 2})),
                    )
                    .await;
                    let mut buf = String::new();
                    let started = 'event: loop {
                        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
                            .await
                            .expect("TASK_RUNNING within 30 s")
                            .expect("the stream stays open")
                            .expect("a chunk");
                        buf.push_str(&String::from_utf8_lossy(&chunk));
                        while let Some(end) = buf.find("\n\n") {
                            let event: String = buf.drain(..end + 2).collect();
                            let data = event.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or("");
                            let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
                                continue;
                            };
                            if v["eventType"] == "status_update_event"
                                && v["taskStatus"] == "TASK_RUNNING"
                                && v["taskId"].as_str().is_some_and(|id| !known.contains(id))
                            {
                                break 'event Instant::now();
                            }
                        }
                    };
                    let deadline = started + Duration::from_secs(30);
                    loop {
                        let port = service_port;
                        let answer = tokio::task::spawn_blocking(move || identity(port))
                            .await
                            .unwrap_or(None);
                        if answer.is_some_and(|a| !old_ports.contains(&a)) {
                            break;
                        }
                        assert!(Instant::now() < deadline, "the new task never took a connection");
                    }
                    let took = started.elapsed();
                    eprintln!("running to first proxied connection: {took:?}");
                    total += took;
                    drop(stream);
                    json(
                        &http,
                        reqwest::Method::PUT,
                        &format!("{marathon}/v2/apps/bench/echo"),
                        Some(json!({"instances": 1})),
                    )
                    .await;
                    settle(&http, &marathon, 1).await;
                }
                total
            })
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&work);
}

criterion_group!(benches, bench);
criterion_main!(benches);
