//! A Mesos-DNS-compatible DNS server following a master.
//!
//! `cargo run --release --example dns -- --master http://127.0.0.1:5050 --port 8053`
//! then `dig @127.0.0.1 -p 8053 web-prod.marathon.mesos`.

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use orchestrator::discovery::{Config, Discovery, IpSource};

/// Serve Mesos-DNS's names (`TASK.FRAMEWORK.DOMAIN`, `_TASK._tcp.FRAMEWORK.DOMAIN`,
/// `leader.DOMAIN`, …) and its /v1 HTTP API from a master's state.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A master's URL; repeat for several (the first that answers is read).
    #[arg(long = "master", required = true)]
    masters: Vec<String>,
    /// A Marathon-style scheduler: tasks failing its health checks are
    /// left out (the master's state carries only Mesos-run checks).
    #[arg(long)]
    marathon: Option<String>,
    /// The domain answered for.
    #[arg(long, default_value = "mesos")]
    domain: String,
    /// Address to listen on (DNS and HTTP), and the NS record's address.
    #[arg(long, default_value = "127.0.0.1")]
    ip: Ipv4Addr,
    /// DNS port (UDP and TCP).
    #[arg(long, default_value_t = 8053)]
    port: u16,
    /// Port of the Mesos-DNS HTTP API.
    #[arg(long = "http-port", default_value_t = 8123)]
    http_port: u16,
    /// TTL of the answers, seconds.
    #[arg(long, default_value_t = 60)]
    ttl: u32,
    /// How often the master's state is read (`250ms`, `1s`).
    #[arg(long, default_value = "250ms", value_parser = support::parse_duration)]
    refresh: Duration,
    /// Resolvers (`IP` or `IP:PORT`) for names outside the domain; none
    /// refuses them.
    #[arg(long = "resolver")]
    resolvers: Vec<String>,
    /// Where task addresses come from, in order (`netinfo`, `host`).
    #[arg(long = "ip-sources", value_delimiter = ',', default_value = "netinfo,host")]
    ip_sources: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    support::init_tracing();
    let resolvers = args
        .resolvers
        .iter()
        .map(|r| {
            r.parse::<SocketAddr>()
                .or_else(|_| r.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .with_context(|| format!("--resolver {r}: not an IP or IP:PORT"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ip_sources = args
        .ip_sources
        .iter()
        .map(|s| IpSource::parse(s).with_context(|| format!("--ip-sources: unknown source {s} (netinfo, host)")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = Config {
        domain: args.domain,
        ttl: args.ttl,
        refresh: args.refresh,
        resolvers,
        listener: args.ip,
        ip_sources,
        masters: args.masters,
        marathon: args.marathon,
        ..Config::default()
    };
    let ip = IpAddr::V4(args.ip);
    let discovery = Discovery::start(
        config,
        SocketAddr::new(ip, args.port),
        SocketAddr::new(ip, args.http_port),
    )
    .await?;
    println!(
        "DNS on {} (UDP and TCP), API on http://{}/v1/",
        discovery.dns_addr, discovery.http_addr
    );
    support::shutdown_signal().await;
    discovery.shutdown().await;
    println!("dns stopped");
    Ok(())
}
