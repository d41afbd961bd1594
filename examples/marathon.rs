//! A Marathon-style scheduler with Marathon's `/v2` REST API, as a
//! framework of a master in another process.
//!
//! `cargo run --release --example marathon -- --master 127.0.0.1:5050 --http-port 8080 [--zk zk://127.0.0.1:2181/marathon]`

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use clap::Parser;
use orchestrator::core::{MemStore, StateStore};
use orchestrator::mesos::marathon::{ha, http, Marathon, MarathonConfig};
use orchestrator::mesos::{HttpMasterClient, LeaderElection, MasterClient, MasterDetector, ZkStore, ZkUrl};

/// Run long-running apps on a Mesos-style master, managed through Marathon's API.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The master, `host:port` (or an `http://` URL); `zk://HOST:PORT[,…]/mesos`
    /// follows the leading master of a replicated set.
    #[arg(long, default_value = "127.0.0.1:5050")]
    master: String,
    /// Address to serve the API on.
    #[arg(long = "http-address", alias = "hostname", default_value = "127.0.0.1")]
    http_address: IpAddr,
    /// Port to serve the API on.
    #[arg(long = "http-port", alias = "http_port", default_value_t = 8080)]
    http_port: u16,
    /// Keep state in ZooKeeper (`zk://HOST:PORT[,HOST:PORT]/path`); in memory otherwise.
    #[arg(long)]
    zk: Option<String>,
    /// Framework name shown by the master.
    #[arg(long = "framework-name", alias = "framework_name", default_value = "marathon")]
    framework_name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args = Args::parse();
    let addr = SocketAddr::new(args.http_address, args.http_port);
    let info = http::ApiInfo {
        master: args.master.clone(),
        http_address: addr.to_string(),
    };
    let client: Arc<dyn MasterClient> = if args.master.starts_with("zk://") {
        let url: ZkUrl = args.master.parse()?;
        Arc::new(HttpMasterClient::following(
            MasterDetector::connect(&url, std::time::Duration::from_secs(10)).await?,
        ))
    } else {
        Arc::new(HttpMasterClient::new(&args.master))
    };
    let config = MarathonConfig {
        name: args.framework_name.clone(),
        ..MarathonConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (router, run) = match &args.zk {
        Some(url) => {
            // With ZooKeeper, any number of these share the state and elect
            // one leader; the others proxy the API to it.
            let (servers, root) = support::parse_zk_url(url, "/marathon");
            eprintln!("state in ZooKeeper {servers} under {root}, leader elected under {root}/leader");
            let store: Arc<dyn StateStore> = Arc::new(ZkStore::connect(&servers, &root).await?);
            let election = LeaderElection::connect(&servers, &format!("{root}/leader")).await?;
            ha::serve_elected(
                election,
                ha::Candidate {
                    client,
                    store,
                    config,
                    info,
                },
            )
        }
        None => {
            eprintln!("state in memory (give --zk to keep it across restarts and to run standbys)");
            let (marathon, run) = Marathon::start(client, Arc::new(MemStore::new()), config).await?;
            (http::router(marathon, info), run)
        }
    };
    eprintln!("marathon API on http://{addr}/v2/apps, framework of {}", args.master);
    axum::serve(listener, router)
        .with_graceful_shutdown(support::shutdown_signal())
        .await?;
    run.abort();
    Ok(())
}
