//! Runs the real probe at a 1 s spy and publish interval for a while and
//! reports what it cost: CPU as a share of one core, and resident memory.
//!
//! `cargo run --release --example probe-overhead -- --duration 60s [--load]`
//!
//! With `--load` it first makes the host busy: 1,000 extra processes,
//! 10,000 loopback TCP connections and, when `ORCH_TEST_DOCKER_HOST` and
//! `ORCH_TEST_BUSYBOX_IMAGE` name an engine and an image, 50 containers.
//! Reports go to a receiver in a child process (this same program with
//! `--receive`), which decodes every one, so the probe's cost includes
//! encoding and sending but not the receiving side.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use orchestrator::core::report::{decode, Limits};
use orchestrator::probe::{self_usage, Probe, ProbeConfig};

/// Measure the probe's own CPU and memory.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// How long to run the probe.
    #[arg(long, default_value = "60s", value_parser = support::parse_duration)]
    duration: Duration,
    /// Spy and publish interval.
    #[arg(long, default_value = "1s", value_parser = support::parse_duration)]
    interval: Duration,
    /// The probe's CPU budget in percent of one core (0: none, every
    /// source refreshed every interval).
    #[arg(long = "cpu-budget", default_value_t = 1.5)]
    cpu_budget: f64,
    /// Make the host busy first (1,000 processes, 10,000 connections, 50 containers).
    #[arg(long)]
    load: bool,
    /// Internal: be the report receiver on this port.
    #[arg(long, hide = true)]
    receive: Option<u16>,
}

async fn receiver(port: u16) -> anyhow::Result<()> {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/api/v1/reports",
        axum::routing::post(move |body: axum::body::Bytes| {
            let c = c.clone();
            async move {
                match decode(&body, Limits::default()) {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        axum::http::StatusCode::NO_CONTENT
                    }
                    Err(_) => axum::http::StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(support::shutdown_signal())
        .await?;
    eprintln!("receiver: {} reports decoded", count.load(Ordering::Relaxed));
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(port) = args.receive {
        return receiver(port).await;
    }
    // As the probe binary does.
    support::no_huge_pages();
    let _load = if args.load {
        let load = orchestrator_testkit::hostload::HostLoad::spawn(1_000, 10_000)?;
        let docker = std::env::var("ORCH_TEST_DOCKER_HOST").ok();
        let image = std::env::var("ORCH_TEST_BUSYBOX_IMAGE").ok();
        Some(match (docker, image) {
            (Some(d), Some(i)) => load.with_containers(&d, &i, 50)?,
            _ => {
                eprintln!("no containers: set ORCH_TEST_DOCKER_HOST and ORCH_TEST_BUSYBOX_IMAGE");
                load
            }
        })
    } else {
        None
    };
    let port = orchestrator_testkit::free_port();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--receive", &port.to_string()])
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let hostname = orchestrator::probe::HostInfo::collect()?.hostname;
    let mut config = ProbeConfig::new(&hostname);
    config.spy_interval = args.interval;
    config.publish_interval = args.interval;
    config.cpu_budget = (args.cpu_budget > 0.0).then_some(args.cpu_budget / 100.0);
    config.apps = vec![format!("http://127.0.0.1:{port}")];
    config.docker_host = std::env::var("ORCH_TEST_DOCKER_HOST").ok();
    let probe = Probe::start(config).await;
    let stats = probe.stats();
    let sent = probe.publishers()[0].shared_stats();
    let containers = probe.docker().is_some();

    // The first cycles fill caches; measure from the third second on.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(probe.run(async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, _) = self_usage();
    let started = Instant::now();
    let mut rss_max = 0;
    while started.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_max = rss_max.max(self_usage().1);
    }
    let (cpu1, rss_end) = self_usage();
    let wall = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    running.await?;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap_or(0)).unwrap_or(0)),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait().await;

    let cpu_share = (cpu1 - cpu0) as f64 / 1e6 / wall * 100.0;
    println!(
        "probe at a {:?} interval for {wall:.0} s ({} containers collected): CPU {cpu_share:.2}% of one core, RSS max {:.1} MB (now {:.1} MB)",
        args.interval,
        if containers { "with" } else { "no" },
        rss_max as f64 / 1e6,
        rss_end as f64 / 1e6,
    );
    println!(
        "cycles {}, last cycle {:.1} ms, last full report {} nodes, last report {} bytes, reports accepted {}, dropped {}",
        stats.cycles.load(Ordering::Relaxed),
        stats.last_cycle_us.load(Ordering::Relaxed) as f64 / 1000.0,
        stats.last_report_nodes.load(Ordering::Relaxed),
        stats.last_report_bytes.load(Ordering::Relaxed),
        sent.sent.load(Ordering::Relaxed),
        sent.dropped.load(Ordering::Relaxed),
    );
    println!(
        "refreshes deferred by the budget {}, source ages at the end (ms): {:?}",
        stats.deferred.load(Ordering::Relaxed),
        stats.source_age_ms.lock()
    );
    println!("targets at a 1 s interval: below 2% of one core and 50 MB");
    Ok(())
}
