//! The L4 load balancer against a direct connection and against a real
//! HAProxy running the configuration `lb::haproxy::render` generates for
//! the same service, in the same run, from a separate client thread:
//!
//! - `lb/connect_request_close/{direct,proxy,haproxy}`: a new connection,
//!   64 bytes each way, close (what a balancer's connection rate is);
//! - `lb/round_trip_64b/{direct,proxy,haproxy}`: 64 bytes each way on a
//!   kept connection (the latency a balancer adds; p50 and p99 printed).
//!
//! The backends are three echo servers on loopback; the proxy runs on two
//! tokio workers, as HAProxy runs two threads on this 2-core machine.
//! HAProxy is Debian's (`scripts/test` installs it); without it that
//! variant is skipped with a message.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrator::discovery::lb::haproxy::{render, HaproxyConfig};
use orchestrator::discovery::lb::proxy::Proxy;
use orchestrator::discovery::lb::{Backend, Balance, Mode, Service, Services};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MESSAGE: usize = 64;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An echo server: every 64-byte message comes back.
async fn echo(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = [0u8; MESSAGE];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn exchange(s: &mut TcpStream) {
    let msg = [7u8; MESSAGE];
    let mut buf = [0u8; MESSAGE];
    s.write_all(&msg).expect("write");
    s.read_exact(&mut buf).expect("read");
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Waits until something answers on `port`.
fn wait_answering(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let msg = [1u8; MESSAGE];
            let mut buf = [0u8; MESSAGE];
            if s.write_all(&msg).is_ok() && s.read_exact(&mut buf).is_ok() {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lb(c: &mut Criterion) {
    let backends_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend_ports: Vec<u16> = backends_rt.block_on(async {
        let mut ports = Vec::new();
        for _ in 0..3 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(l.local_addr().unwrap().port());
            tokio::spawn(echo(l));
        }
        ports
    });
    let (service_port, haproxy_port) = (free_port(), free_port());
    let service = Service {
        app_id: "/bench/echo".into(),
        service_port,
        balance: Balance::RoundRobin,
        frontend_port: haproxy_port,
        mode: Mode::Tcp,
        vhosts: Vec::new(),
        groups: Vec::new(),
        backends: backend_ports
            .iter()
            .enumerate()
            .map(|(i, p)| Backend {
                task_id: format!("echo.{i}"),
                host: "127.0.0.1".into(),
                port: *p,
            })
            .collect(),
    };
    let services: Services = [(service_port, service)].into_iter().collect();
    let mut proxy = Proxy::new(IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(1));
    proxy_rt.block_on(proxy.update(&services));
    assert!(wait_answering(service_port), "the proxy answers");

    let dir = std::env::temp_dir().join(format!("orch-lb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("haproxy.cfg");
    let text = render(
        &services,
        &HaproxyConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: None,
            ..HaproxyConfig::default()
        },
    );
    std::fs::write(&config, text).unwrap();
    let haproxy = std::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
        .map(Haproxy);
    let haproxy_up = haproxy.is_some() && wait_answering(haproxy_port);
    if !haproxy_up {
        println!("lb: HAProxy is not installed or did not start; its variants are skipped");
    }
    let direct_port = backend_ports[0];
    let mut variants = vec![("direct", direct_port), ("proxy", service_port)];
    if haproxy_up {
        variants.push(("haproxy", haproxy_port));
    }

    let mut group = c.benchmark_group("lb/connect_request_close");
    group.sample_size(20);
    for (name, port) in &variants {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut s = connect(*port);
                exchange(&mut s);
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lb/round_trip_64b");
    group.sample_size(20);
    for (name, port) in &variants {
        let mut s = connect(*port);
        group.bench_function(*name, |b| b.iter(|| exchange(&mut s)));
        // Percentiles of the same, for the closing note.
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for _ in 0..20_000 {
            let t = Instant::now();
            exchange(&mut s);
            let _ = h.record(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        println!(
            "lb/round_trip_64b/{name}: p50 {:.1} µs, p99 {:.1} µs over 20,000 round trips",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    group.finish();
    drop(haproxy);
    proxy.close();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, lb);
criterion_main!(benches);
