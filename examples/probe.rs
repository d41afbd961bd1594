//! The per-host probe: collects the host, its processes, connections and
//! containers and publishes reports to topology apps.
//!
//! `cargo run --release --example probe -- --app http://127.0.0.1:4040 --token T --spy-interval 15s --publish-interval 15s --docker-host unix:///var/run/docker.sock`

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use orchestrator::probe::{metrics, ControlPolicy, Probe, ProbeConfig, PublishConfig};

/// Report this host to one or more topology apps.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A topology app to publish to (repeatable). A name is every address
    /// it resolves to, each replica published to (resolved again every
    /// --resolve-interval): give a headless Service's name to reach every
    /// app server replica.
    #[arg(long = "app", alias = "probe.app", value_parser = parse_app)]
    apps: Vec<String>,
    /// The DNS server (IP:PORT) app names are resolved with, rather than
    /// the system's resolver.
    #[arg(long, alias = "probe.resolver")]
    resolver: Option<SocketAddr>,
    /// How often app names are resolved again.
    #[arg(long = "resolve-interval", default_value = "10s", value_parser = support::parse_duration)]
    resolve_interval: Duration,
    /// Bearer token for the apps (or ORCH_PROBE_TOKEN).
    #[arg(long, env = "ORCH_PROBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Time between collections (1s at least).
    #[arg(long = "spy-interval", alias = "probe.spy.interval", default_value = "15s", value_parser = support::parse_duration)]
    spy_interval: Duration,
    /// Time between publishes.
    #[arg(long = "publish-interval", alias = "probe.publish.interval", default_value = "15s", value_parser = support::parse_duration)]
    publish_interval: Duration,
    /// A full report every this many publishes (deltas between).
    #[arg(long = "full-every", default_value_t = 4)]
    full_every: u32,
    /// The share of one core the probe may spend, in percent: costly
    /// sources (sockets, processes) refresh as often as it allows, at most
    /// every spy interval. 0 refreshes everything every interval.
    #[arg(long = "cpu-budget", default_value_t = 1.5)]
    cpu_budget: f64,
    /// However tight the budget, every source refreshes at least this often.
    #[arg(long = "max-staleness", default_value = "15s", value_parser = support::parse_duration)]
    max_staleness: Duration,
    /// Reports kept per app while it is unreachable.
    #[arg(long = "buffer", default_value_t = 64)]
    buffer: usize,
    /// The Docker engine; containers are not collected when it does not answer.
    #[arg(long = "docker-host", default_value = "unix:///var/run/docker.sock")]
    docker_host: String,
    /// Do not collect containers.
    #[arg(long = "no-docker")]
    no_docker: bool,
    /// The host name to report (the kernel's by default).
    #[arg(long)]
    hostname: Option<String>,
    /// The procfs mount to read (a host's /proc mounted into a container).
    #[arg(long = "proc-root", default_value = "/proc")]
    proc_root: PathBuf,
    /// Run no container controls at all.
    #[arg(long = "no-controls", alias = "probe.no-controls")]
    no_controls: bool,
    /// Run only these controls (repeatable; `docker_stop_container`, `docker_logs`, …).
    #[arg(long = "allow-control")]
    allow_controls: Vec<String>,
    /// Serve the probe's own metrics at http://ADDR/metrics.
    #[arg(long = "metrics-listen")]
    metrics_listen: Option<SocketAddr>,
}

/// An app is an `http://` or `https://` URL with a host.
fn parse_app(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e}): give http://HOST:PORT"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("give http://HOST:PORT (or https://)".to_string());
    }
    Ok(s.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args = Args::parse();
    if args.spy_interval < Duration::from_secs(1) {
        anyhow::bail!("--spy-interval must be at least 1s");
    }
    if !(0.0..=100.0).contains(&args.cpu_budget) {
        anyhow::bail!("--cpu-budget is a percentage of one core, 0 (no budget) to 100");
    }
    support::no_huge_pages();
    let hostname = match args.hostname {
        Some(h) => h,
        None => orchestrator::probe::HostInfo::collect()?.hostname,
    };
    let mut config = ProbeConfig::new(&hostname);
    config.apps = args.apps;
    config.resolver = args.resolver;
    config.resolve_interval = args.resolve_interval.max(Duration::from_secs(1));
    config.spy_interval = args.spy_interval;
    config.publish_interval = args.publish_interval;
    config.full_every = args.full_every.max(1);
    config.cpu_budget = (args.cpu_budget > 0.0).then_some(args.cpu_budget / 100.0);
    config.max_staleness = args.max_staleness;
    config.proc_root = args.proc_root;
    config.docker_host = (!args.no_docker).then_some(args.docker_host);
    config.controls = ControlPolicy {
        disabled: args.no_controls,
        allow: (!args.allow_controls.is_empty()).then(|| args.allow_controls.into_iter().collect()),
    };
    config.publish = PublishConfig {
        token: args.token,
        buffer: args.buffer.max(1),
        ..PublishConfig::default()
    };
    if config.apps.is_empty() {
        eprintln!("no --app given: collecting only (see --metrics-listen)");
    }
    let probe = Probe::start(config).await;
    eprintln!(
        "probe for {hostname}: containers {}, publishing to {:?}",
        if probe.docker().is_some() {
            "collected"
        } else {
            "not collected"
        },
        probe
            .publishers()
            .iter()
            .map(|p| p.endpoint().to_string())
            .collect::<Vec<_>>()
    );
    if let Some(addr) = args.metrics_listen {
        let stats = probe.stats();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let stats = stats.clone();
                async move { support::metrics_response(&headers, metrics::render(&stats)) }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("metrics at http://{addr}/metrics");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    probe.run(support::shutdown_signal()).await;
    eprintln!("probe stopped");
    Ok(())
}
