//! The all-in-one's DNS server as Mesos-DNS users query it: with `dig`
//! (Debian's `bind9-dnsutils`, which `scripts/test` installs) over UDP and
//! TCP, and through Mesos-DNS's HTTP API, while an app scales and loses a
//! task.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use orchestrator_testkit::until;
use serde_json::{json, Value};

use crate::aio::{get, scratch, send, AllInOne};

/// `dig @127.0.0.1 -p PORT ARGS…`'s output.
fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed (bind9-dnsutils; scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ports of the SRV answers for `name`.
fn srv_ports(port: u16, name: &str, tcp: bool) -> BTreeSet<u16> {
    let mut args = vec!["+short", name, "SRV"];
    if tcp {
        args.push("+tcp");
    }
    dig(port, &args)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect()
}

/// The `status:` of an answer (`NOERROR`, `NXDOMAIN`, …).
fn status(port: u16, name: &str, kind: &str) -> String {
    let out = dig(port, &["+noall", "+comments", name, kind]);
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string()
}

/// The host ports of the app's running tasks, as the scheduler lists them.
async fn task_ports(marathon: &str) -> BTreeSet<u16> {
    get(&format!("{marathon}/v2/apps/prod/web/tasks")).await["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .filter_map(|t| t["ports"][0].as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect()
}

/// Waits until the DNS answers `want` for the app's SRV name and returns
/// how long that took.
async fn srv_becomes(dns: u16, want: &BTreeSet<u16>) -> Duration {
    let start = Instant::now();
    until("the DNS to follow the tasks", Duration::from_secs(10), async || {
        (srv_ports(dns, "_web-prod._tcp.marathon.mesos", false) == *want).then_some(())
    })
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_names_an_apps_tasks_as_mesos_dns_and_follows_them_within_a_second() {
    let _shared = crate::HEAVY.read().await;
    let work = scratch("dns");
    // Each all-in-one of the suite offers ports of its own: they share the host.
    let mut aio = AllInOne::start(&[
        "--no-docker".into(),
        "--work-dir".into(),
        work.display().to_string(),
        "--resources".into(),
        "cpus:2;mem:2048;disk:1024;ports:[26000-26099]".into(),
    ]);
    let (dns, marathon) = (aio.dns_port, aio.marathon.clone());
    assert!(aio.printed(&format!("127.0.0.1:{dns}")), "{}", aio.said());

    // A two-instance app in a group: Marathon names its tasks `web.prod`.
    let (code, body) = send(
        reqwest::Method::POST,
        &format!("{marathon}/v2/apps"),
        json!({"id": "/prod/web", "cmd": "sleep 600", "cpus": 0.05, "mem": 16, "instances": 2,
               "portDefinitions": [{"port": 0, "name": "http"}]}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let two = until("two running tasks", Duration::from_secs(30), async || {
        let ports = task_ports(&marathon).await;
        (ports.len() == 2).then_some(ports)
    })
    .await;

    // A, SRV (with the targets' addresses), over UDP and TCP.
    srv_becomes(dns, &two).await;
    assert_eq!(dig(dns, &["+short", "web-prod.marathon.mesos"]).trim(), "127.0.0.1");
    assert_eq!(
        dig(dns, &["+short", "WEB-PROD.Marathon.Mesos", "+tcp"]).trim(),
        "127.0.0.1"
    );
    assert_eq!(srv_ports(dns, "_web-prod._tcp.marathon.mesos", true), two);
    assert_eq!(srv_ports(dns, "_web-prod._udp.marathon.mesos", false), two);
    let srv = dig(
        dns,
        &[
            "+noall",
            "+answer",
            "+additional",
            "_web-prod._tcp.marathon.mesos",
            "SRV",
        ],
    );
    let target = srv
        .lines()
        .find(|l| l.contains("\tSRV\t") || l.contains(" SRV "))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no SRV answer: {srv}"))
        .to_string();
    assert!(target.ends_with(".marathon.slave.mesos."), "{srv}");
    assert!(
        srv.lines().any(|l| l.starts_with(&target) && l.ends_with("127.0.0.1")),
        "targets' A records ride along: {srv}"
    );
    assert_eq!(dig(dns, &["+short", &target]).trim(), "127.0.0.1");
    for name in [
        "leader.mesos",
        "master.mesos",
        "slave.mesos",
        "web-prod.marathon.slave.mesos",
    ] {
        assert_eq!(dig(dns, &["+short", name]).trim(), "127.0.0.1", "{name}");
    }
    assert_eq!(
        dig(dns, &["+short", "_leader._tcp.mesos", "SRV"]).trim(),
        format!("0 1 {} leader.mesos.", aio.master.rsplit(':').next().unwrap())
    );
    assert!(dig(dns, &["+short", "mesos", "SOA"]).starts_with("ns1.mesos. root.ns1.mesos. "));
    assert_eq!(dig(dns, &["+short", "mesos", "NS"]).trim(), "ns1.mesos.");

    // An app whose health checks fail (nothing answers on its port) runs,
    // and is not named.
    let (code, body) = send(
        reqwest::Method::POST,
        &format!("{marathon}/v2/apps"),
        json!({"id": "/prod/sick", "cmd": "sleep 600", "cpus": 0.05, "mem": 16, "instances": 1,
               "portDefinitions": [{"port": 0}],
               "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 0,
                                 "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 0}]}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    until(
        "the unhealthy task to run and fail its check",
        Duration::from_secs(30),
        async || {
            let tasks = get(&format!("{marathon}/v2/apps/prod/sick/tasks")).await;
            let t = tasks["tasks"].as_array()?.first()?.clone();
            (t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == false).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        status(dns, "sick-prod.marathon.mesos", "A"),
        "NXDOMAIN",
        "a task failing its checks is not named"
    );
    assert_eq!(
        srv_ports(dns, "_web-prod._tcp.marathon.mesos", false),
        two,
        "apps without checks are"
    );

    // Unknown names in the domain, and names outside it (no resolvers).
    assert_eq!(status(dns, "nope.marathon.mesos", "A"), "NXDOMAIN");
    assert_eq!(
        status(dns, "web-prod.marathon.mesos", "AAAA"),
        "NOERROR",
        "a known name without that type"
    );
    assert_eq!(status(dns, "example.org", "A"), "REFUSED");

    // Malformed packets are dropped or answered, and the server keeps serving.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    for junk in [
        &b"\x00"[..],
        &[0xff; 12],
        &[0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f],
        &[0xab; 600],
    ] {
        socket.send_to(junk, ("127.0.0.1", dns)).unwrap();
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            assert!(n >= 12, "an answer to junk is a DNS header at least");
        }
    }
    assert_eq!(dig(dns, &["+short", "web-prod.marathon.mesos"]).trim(), "127.0.0.1");

    // Mesos-DNS's HTTP API.
    let api = &aio.dns_api;
    assert_eq!(get(&format!("{api}/v1/version")).await["Service"], "Mesos-DNS");
    let config = get(&format!("{api}/v1/config")).await;
    assert_eq!(config["Domain"], "mesos");
    assert_eq!(config["Port"], dns);
    let hosts = get(&format!("{api}/v1/hosts/web-prod.marathon.mesos")).await;
    assert_eq!(hosts, json!([{"host": "web-prod.marathon.mesos.", "ip": "127.0.0.1"}]));
    let services = get(&format!("{api}/v1/services/_web-prod._tcp.marathon.mesos")).await;
    let api_ports: BTreeSet<u16> = services
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["port"].as_str()?.parse().ok())
        .collect();
    assert_eq!(api_ports, two, "{services}");
    assert_eq!(
        get(&format!("{api}/v1/hosts/nope.mesos")).await,
        json!([{"host": "", "ip": ""}])
    );

    // Scale to three: the third task is named within a second of running.
    let (code, body) = send(
        reqwest::Method::PUT,
        &format!("{marathon}/v2/apps/prod/web"),
        json!({"instances": 3}),
    )
    .await;
    assert!(code < 300, "{body}");
    let three = until("three running tasks", Duration::from_secs(30), async || {
        let ports = task_ports(&marathon).await;
        (ports.len() == 3).then_some(ports)
    })
    .await;
    let took = srv_becomes(dns, &three).await;
    assert!(
        took < Duration::from_secs(1),
        "the third task took {took:?} to be named"
    );

    // Kill one: its record is gone within a second of its end.
    let tasks = get(&format!("{marathon}/v2/apps/prod/web/tasks")).await;
    let victim: &Value = &tasks["tasks"][0];
    let id = victim["id"].as_str().unwrap();
    let port = u16::try_from(victim["ports"][0].as_u64().unwrap()).unwrap();
    let (code, body) = send(
        reqwest::Method::DELETE,
        &format!("{marathon}/v2/apps/prod/web/tasks/{id}?scale=true"),
        Value::Null,
    )
    .await;
    assert!(code < 300, "{body}");
    until("the killed task to end", Duration::from_secs(30), async || {
        let state = get(&format!("{}/master/state", aio.master)).await;
        let running = state["frameworks"]
            .as_array()?
            .iter()
            .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
            .any(|t| t["id"] == id);
        (!running).then_some(())
    })
    .await;
    let mut rest = three.clone();
    rest.remove(&port);
    let took = srv_becomes(dns, &rest).await;
    assert!(
        took < Duration::from_secs(1),
        "the killed task's record took {took:?} to go"
    );

    assert!(aio.interrupt().success(), "{}", aio.said());
    let _ = std::fs::remove_dir_all(&work);
}
