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
/// at most `parallel` at a time: each answer with the time it finished,
/// relative to `t0`.
async fn load(
    port: u16,
    n: usize,
    for_at_most: Duration,
    parallel: usize,
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
            drop(permit);
            (t0.elapsed(), r)
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
    let mut aio = AllInOne::start_with(
        &["--no-docker".into(), "--work-dir".into(), work.display().to_string()],
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
    let answers = load(service_port, 1_000, Duration::from_secs(60), 50, Instant::now()).await;
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

    // Kill one task under load: from a second after, no connection fails.
    let t0 = Instant::now();
    let loader = tokio::spawn(load(service_port, 100_000, Duration::from_secs(3), 20, t0));
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
