//! An L4 load balancer on the service ports of a Marathon-style
//! scheduler's apps, following its events as marathon-lb does.
//!
//! `cargo run --release --example lb -- --marathon http://127.0.0.1:8080`

#[path = "support/mod.rs"]
mod support;

use std::net::IpAddr;
use std::path::PathBuf;
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    support::init_tracing();
    let balance = Balance::parse(&args.balance).context("--balance: roundrobin or leastconn")?;
    let lb = LoadBalancer::start(LbConfig {
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
    });
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
