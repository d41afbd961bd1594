//! A Mesos-style master serving the v1 scheduler API.
//!
//! `cargo run --release --example master -- --ip 127.0.0.1 --port 5050 --work-dir DIR`

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use orchestrator::mesos::{DrfAllocator, Master, MasterConfig, MasterHandle};

/// Run a master that frameworks speaking Mesos's v1 HTTP API can use.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MESOS_IP", default_value = "127.0.0.1")]
    ip: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "MESOS_PORT", default_value_t = 5050)]
    port: u16,
    /// Directory for the master's files (created if missing; the master
    /// keeps its registry in memory for now).
    #[arg(long = "work-dir", alias = "work_dir", env = "MESOS_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Time between allocation rounds (`500ms`, `1s`, `2m`).
    #[arg(long = "allocation-interval", alias = "allocation_interval", default_value = "1s", value_parser = support::parse_duration)]
    allocation_interval: Duration,
    /// Prefix of the ids this master hands out.
    #[arg(long = "master-id", default_value = "master")]
    master_id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.work_dir {
        std::fs::create_dir_all(dir)?;
    }
    let allocator = DrfAllocator::builder()
        .allocation_interval(args.allocation_interval)
        .build()?;
    let config = MasterConfig {
        master_id: args.master_id,
        ..MasterConfig::default()
    };
    let handle = MasterHandle::new(Master::new(config, allocator), args.allocation_interval);
    let addr = SocketAddr::new(args.ip, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("master listening on http://{}", listener.local_addr()?);
    let loops = tokio::spawn(handle.clone().run_loops());
    axum::serve(listener, handle.router())
        .with_graceful_shutdown(support::shutdown_signal())
        .await?;
    loops.abort();
    println!("master stopped");
    Ok(())
}
