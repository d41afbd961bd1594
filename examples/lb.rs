//! An L4 load balancer on the service ports of a Marathon-style
//! scheduler's apps, following its events as marathon-lb does.
//!
//! `cargo run --release --example lb -- --marathon http://127.0.0.1:8080`

#[path = "support/mod.rs"]
mod support;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let balance = Balance::parse(&args.balance).context("--balance: roundrobin or leastconn")?;
    let lb = LoadBalancer::start(LbConfig {
        marathon: args.marathon.clone(),
        bind: args.bind,
        balance,
        connect_timeout: args.connect_timeout,
        resync: args.resync,
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
