//! The DNS server and its API against a master's state served over HTTP
//! on loopback, queried with the crate's own SRV client (the all-in-one's
//! tests query it with `dig`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrator_discovery::resolve::srv;
use orchestrator_discovery::{Config, Discovery, Error};
use serde_json::{json, Value};

fn state(tasks: &[(&str, u16)]) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|(id, port)| {
            json!({"id": id, "name": "web.prod", "slave_id": "M-S1", "state": "TASK_RUNNING",
                   "resources": {"ports": format!("[{port}-{port}]")}})
        })
        .collect();
    json!({"leader": "master@127.0.0.1:5050", "slaves": [{"id": "M-S1", "hostname": "127.0.0.1"}],
           "frameworks": [{"name": "marathon", "tasks": tasks}]})
}

/// A master whose `/master/state` is whatever the test last set.
async fn fake_master(initial: Value) -> (String, Arc<Mutex<Value>>) {
    let current = Arc::new(Mutex::new(initial));
    let shared = Arc::clone(&current);
    let app = axum::Router::new().route(
        "/master/state",
        axum::routing::get(move || {
            let body = shared.lock().unwrap().clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, current)
}

async fn ports(dns: SocketAddr) -> Vec<u16> {
    let mut p: Vec<u16> = srv(dns, "_web-prod._tcp.marathon.mesos", Duration::from_secs(2))
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            assert_eq!(
                a.ip,
                Some("127.0.0.1".parse().unwrap()),
                "the target's address rides along"
            );
            a.port
        })
        .collect();
    p.sort_unstable();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_master_and_answers_srv_with_addresses() {
    let (master, current) = fake_master(state(&[("web.1", 31000), ("web.2", 31001)])).await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config {
        masters: vec!["http://127.0.0.1:1".into(), master],
        ..Config::default()
    };
    let d = Discovery::start(config, any, any).await.unwrap();
    let mut records = d.subscribe();
    records.wait_for(|r| !r.is_empty() && r.srv.len() > 2).await.unwrap();
    assert_eq!(
        ports(d.dns_addr).await,
        [31000, 31001],
        "the first master that answers is read"
    );
    assert!(srv(d.dns_addr, "_nope._tcp.marathon.mesos", Duration::from_secs(2))
        .await
        .unwrap()
        .is_empty());

    *current.lock().unwrap() = state(&[("web.2", 31001), ("web.3", 31002)]);
    tokio::time::timeout(
        Duration::from_secs(2),
        records.wait_for(|r| r.srv.values().flatten().any(|t| t.port == 31002)),
    )
    .await
    .expect("the new state within two refreshes")
    .unwrap();
    assert_eq!(ports(d.dns_addr).await, [31001, 31002]);

    // A master that answers garbage keeps the last records.
    *current.lock().unwrap() = json!("not a state");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ports(d.dns_addr).await, [31001, 31002]);
    let http = format!("http://{}", d.http_addr);
    let hosts: Value = reqwest::get(format!("{http}/v1/hosts/leader.mesos"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hosts, json!([{"host": "leader.mesos.", "ip": "127.0.0.1"}]));
    d.shutdown().await;
}

#[tokio::test]
async fn refuses_settings_it_cannot_serve() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let no_master = Discovery::start(Config::default(), any, any).await;
    assert!(matches!(no_master, Err(Error::Config { what: "masters", .. })));
    let bad_domain = Config {
        domain: "bad domain!".into(),
        masters: vec!["http://127.0.0.1:1".into()],
        ..Config::default()
    };
    assert!(matches!(
        Discovery::start(bad_domain, any, any).await,
        Err(Error::Config { what: "domain", .. })
    ));
}
