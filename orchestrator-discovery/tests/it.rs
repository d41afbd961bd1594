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

/// An SRV query for `name`, with an EDNS payload size or without EDNS.
fn srv_query(name: &str, edns: Option<u16>) -> Vec<u8> {
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut m = Message::new();
    m.set_id(77).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::SRV));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_answers_fit_the_client_and_names_elsewhere_are_forwarded() {
    use hickory_proto::op::{Message, ResponseCode};
    let tasks: Vec<(String, u16)> = (0..30).map(|i| (format!("web.{i}"), 31_000 + i)).collect();
    let refs: Vec<(&str, u16)> = tasks.iter().map(|(id, p)| (id.as_str(), *p)).collect();
    let (master, _current) = fake_master(state(&refs)).await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let d = Discovery::start(
        Config {
            masters: vec![master.clone()],
            ..Config::default()
        },
        any,
        any,
    )
    .await
    .unwrap();
    d.subscribe()
        .wait_for(|r| r.srv.values().any(|t| t.len() == 30))
        .await
        .unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(d.dns_addr).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut ask = async |query: Vec<u8>| {
        socket.send(&query).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        (n, Message::from_vec(&buf[..n]).unwrap())
    };
    // Without EDNS an answer is at most 512 bytes: thirty SRV records do
    // not fit, so it comes truncated (the client retries over TCP).
    let (n, plain) = ask(srv_query("_web-prod._tcp.marathon.mesos.", None)).await;
    assert!(
        n <= 512 && plain.truncated() && plain.answers().is_empty(),
        "{n} bytes: {plain:?}"
    );
    // With EDNS's 4,096 bytes it all comes, targets' addresses included.
    let (n, full) = ask(srv_query("_web-prod._tcp.marathon.mesos.", Some(4096))).await;
    assert!(!full.truncated() && full.answers().len() == 30 && n > 512, "{n} bytes");
    assert!(full.extensions().is_some(), "an EDNS query gets an EDNS answer");
    // A second server, for another domain, forwards to the first.
    let forwarding = Config {
        domain: "other".into(),
        masters: vec![master],
        resolvers: vec![d.dns_addr],
        ..Config::default()
    };
    let f = Discovery::start(forwarding, any, any).await.unwrap();
    let forwarded = srv(f.dns_addr, "_web-prod._tcp.marathon.mesos", Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(forwarded.len(), 30, "forwarded to the server of the domain");
    let (_, refused) = ask(srv_query("_x._tcp.example.org.", None)).await;
    assert_eq!(refused.response_code(), ResponseCode::Refused, "no resolvers: refused");
    f.shutdown().await;
    d.shutdown().await;
}
