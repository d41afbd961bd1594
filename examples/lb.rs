//! An L4 load balancer on the service ports of a Marathon-style
//! scheduler's apps, following its events as marathon-lb does.
//!
//! `cargo run --release --example lb -- --marathon http://127.0.0.1:8080`

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use orchestrator::discovery::lb::haproxy::{HaproxyConfig, Writer};
use orchestrator::discovery::lb::{Balance, LbConfig, LoadBalancer};

/// Balance TCP connections to each app's service ports over its running,
/// healthy tasks.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The scheduler's URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    marathon: String,
    /// Address the service ports listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Spread of apps without a HAPROXY_{n}_BALANCE label: roundrobin or leastconn.
    #[arg(long, default_value = "roundrobin")]
    balance: String,
    /// A backend that has not accepted within this is passed over.
    #[arg(long = "connect-timeout", default_value = "1s", value_parser = support::parse_duration)]
    connect_timeout: Duration,
    /// Read the apps at least this often, events or not.
    #[arg(long, default_value = "5s", value_parser = support::parse_duration)]
    resync: Duration,
    /// Do not proxy the service ports here (with --haproxy-config: only
    /// write HAProxy's configuration).
    #[arg(long = "no-proxy")]
    no_proxy: bool,
    /// Write an HAProxy configuration here (marathon-lb's labels) whenever
    /// the apps change; it is checked with `haproxy -c` first.
    #[arg(long = "haproxy-config")]
    haproxy_config: Option<PathBuf>,
    /// The HAProxy binary that checks configurations.
    #[arg(long = "haproxy-bin", default_value = "haproxy")]
    haproxy_bin: PathBuf,
    /// Run after a new configuration is in place (with `sh -c`), e.g.
    /// `systemctl reload haproxy` or `kill -USR2 $(cat /run/haproxy.pid)`.
    #[arg(long = "haproxy-reload")]
    haproxy_reload: Option<String>,
    /// HAPROXY_GROUP values served; `*` serves every app.
    #[arg(long = "group", default_value = "*")]
    groups: Vec<String>,
    /// Port of HAProxy's shared HTTP frontend for virtual hosts.
    #[arg(long = "haproxy-http-port", default_value_t = 80)]
    haproxy_http_port: u16,
    /// Serve the balancer's own status at http://ADDR: `/health` (and
    /// marathon-lb's `/_haproxy_health_check`) while it runs, `/ready` once
    /// it has read the scheduler's apps, `/metrics` for Prometheus.
    #[arg(long = "status-listen")]
    status_listen: Option<SocketAddr>,
}

/// The status endpoints of `--status-listen`.
fn status_routes(lb: Arc<LoadBalancer>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Json;
    let alive = || async { Json(serde_json::json!({"status": "ok"})) };
    let ready = {
        let lb = Arc::clone(&lb);
        move || {
            let lb = Arc::clone(&lb);
            async move {
                let status = lb.status();
                let body = serde_json::json!({
                    "services": lb.services().len(),
                    "read_seconds_ago": status.read_ago().map(|d| d.as_secs_f64()),
                    "last_error": status.last_error(),
                });
                // Ready once the apps were read; a scheduler away since
                // then leaves the last backends in service.
                let code = if status.read_ago().is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (code, Json(body))
            }
        }
    };
    let metrics = move |headers: axum::http::HeaderMap| {
        let lb = Arc::clone(&lb);
        async move { support::metrics_response(&headers, lb.metrics().await) }
    };
    axum::Router::new()
        .route("/health", get(alive))
        .route("/_haproxy_health_check", get(alive))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    support::init_tracing();
    let balance = Balance::parse(&args.balance).context("--balance: roundrobin or leastconn")?;
    let lb = Arc::new(LoadBalancer::start(LbConfig {
        marathon: args.marathon.clone(),
        bind: args.bind,
        balance,
        connect_timeout: args.connect_timeout,
        resync: args.resync,
        proxy: !args.no_proxy,
        haproxy: args.haproxy_config.map(|path| {
            (
                HaproxyConfig {
                    groups: args.groups,
                    bind: args.bind,
                    http_port: Some(args.haproxy_http_port),
                    ..HaproxyConfig::default()
                },
                Writer {
                    path,
                    haproxy: args.haproxy_bin,
                    reload: args.haproxy_reload,
                },
            )
        }),
    }));
    if let Some(addr) = args.status_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--status-listen {addr}"))?;
        let routes = status_routes(Arc::clone(&lb));
        tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        println!("status at http://{addr}/ready");
    }
    println!("balancing the service ports of {} on {}", args.marathon, args.bind);
    let mut services = lb.subscribe();
    let shutdown = support::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            changed = services.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = services.borrow_and_update().clone();
                for s in now.values() {
                    println!("  {} :{} → {} backends", s.app_id, s.service_port, s.backends.len());
                }
            }
        }
    }
    lb.shutdown().await;
    println!("lb stopped");
    Ok(())
}
