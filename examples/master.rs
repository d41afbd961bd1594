//! A Mesos-style master serving the v1 scheduler API: standalone (its
//! registry under `--work-dir`) or one of several elected on ZooKeeper.
//!
//! `cargo run --release --example master -- --ip 127.0.0.1 --port 5050 --work-dir DIR`
//! `cargo run --release --example master -- --port 5050 --zk zk://127.0.0.1:2181/mesos` (×3, other ports)

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orchestrator::core::{FileStore, StateStore};
use orchestrator::mesos::{
    DrfAllocator, Master, MasterConfig, MasterHandle, MasterInfo, Registry, ReplicaConfig, ZkUrl,
};

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
    /// Host name advertised to agents and frameworks (the IP when not given).
    #[arg(long, env = "MESOS_HOSTNAME")]
    hostname: Option<String>,
    /// Directory for the master's files: its registry (agents, weights,
    /// quotas) when standalone, so a restart on the same directory keeps
    /// them. Without it and without --zk the registry is in memory.
    #[arg(long = "work-dir", alias = "work_dir", env = "MESOS_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Run as one of several masters elected on ZooKeeper
    /// (`zk://HOST:PORT[,HOST:PORT…]/mesos`), the registry in ZooKeeper at
    /// the sibling path `/mesos-registry`.
    #[arg(long, env = "MESOS_ZK")]
    zk: Option<String>,
    /// ZooKeeper session timeout (`10secs`, as Mesos).
    #[arg(long = "zk-session-timeout", alias = "zk_session_timeout", default_value = "10secs", value_parser = support::parse_duration)]
    zk_session_timeout: Duration,
    /// How long agents of the registry have to re-register with a new
    /// leader (or a restarted master) before it forgets them (`10mins`).
    #[arg(long = "agent-reregister-timeout", alias = "agent_reregister_timeout", default_value = "10mins", value_parser = support::parse_duration)]
    agent_reregister_timeout: Duration,
    /// Time between allocation rounds (`500ms`, `1s`, `2m`).
    #[arg(long = "allocation-interval", alias = "allocation_interval", default_value = "1s", value_parser = support::parse_duration)]
    allocation_interval: Duration,
    /// Prefix of the ids this master hands out.
    #[arg(long = "master-id", default_value = "master")]
    master_id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args = Args::parse();
    let zk: Option<ZkUrl> = args.zk.as_deref().map(str::parse).transpose()?;
    let addr = SocketAddr::new(args.ip, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    // Unique per run, as Mesos's master ids are.
    let run_id = format!("{}-{}-{}", args.master_id, bound.port(), std::process::id());
    let info = MasterInfo::new(run_id, bound, args.hostname.clone());
    let config = MasterConfig {
        master_id: args.master_id.clone(),
        ..MasterConfig::default()
    };
    println!("master listening on http://{bound}");
    let (handle, run) = match zk {
        Some(url) => {
            println!(
                "contending for leadership under {url}; registry at {}",
                url.registry_path()
            );
            let replica = ReplicaConfig {
                zk: url,
                session_timeout: args.zk_session_timeout,
                reregister_timeout: args.agent_reregister_timeout,
            };
            MasterHandle::start_replicated(replica, info, config, args.allocation_interval).await?
        }
        None => {
            let allocator = DrfAllocator::builder()
                .allocation_interval(args.allocation_interval)
                .build()?;
            let handle = MasterHandle::new(Master::new(config, allocator), args.allocation_interval);
            handle.set_info(info);
            if let Some(dir) = &args.work_dir {
                let store: Arc<dyn StateStore> = Arc::new(FileStore::open(dir.join("registry"))?);
                handle
                    .recover(Registry::new(store, "/"), args.agent_reregister_timeout)
                    .await?;
                println!("registry in {}", dir.join("registry").display());
            } else {
                println!("registry in memory (give --work-dir to keep it across restarts)");
            }
            let run = tokio::spawn(handle.clone().run_loops());
            (handle, run)
        }
    };
    axum::serve(listener, handle.router())
        .with_graceful_shutdown(support::shutdown_signal())
        .await?;
    run.abort();
    println!("master stopped");
    Ok(())
}
