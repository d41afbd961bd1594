//! The topology app: takes probes' reports, serves the views, search, live
//! diffs and controls.
//!
//! `cargo run --release --example app-server -- --host 127.0.0.1 --port 4040 [--tokens FILE] [--tls-cert C --tls-key K] [--zk zk://127.0.0.1:2181/topology]`

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orchestrator::core::report::Limits;
use orchestrator::mesos::ZkStore;
use orchestrator::topology::server::{check_exposure, App, AppConfig, SharedStore, TlsListener, Tokens};
use orchestrator::topology::{Retention, StoreConfig};

/// Merge probe reports into topology views and serve them.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 4040)]
    port: u16,
    /// Tokens file (`TOKEN ROLE [NAME]` lines, roles probe, viewer, operator, admin).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long = "tls-cert", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long = "tls-key", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A probe silent for longer is shown stale.
    #[arg(long, default_value = "15s", value_parser = support::parse_duration)]
    window: Duration,
    /// A probe silent for longer leaves the views.
    #[arg(long = "stale-node-threshold", default_value = "5m", value_parser = support::parse_duration)]
    stale_node_threshold: Duration,
    /// Data older than this is dropped.
    #[arg(long = "max-data-age", default_value = "60m", value_parser = support::parse_duration)]
    max_data_age: Duration,
    /// How often old data is dropped.
    #[arg(long = "cleanup-interval", default_value = "5m", value_parser = support::parse_duration)]
    cleanup_interval: Duration,
    /// How long metric series keep 15 s buckets.
    #[arg(long = "series-fine-span", default_value = "60m", value_parser = support::parse_duration)]
    series_fine_span: Duration,
    /// How long metric series keep 1 min buckets.
    #[arg(long = "series-coarse-span", default_value = "1440m", value_parser = support::parse_duration)]
    series_coarse_span: Duration,
    /// Refuse every control.
    #[arg(long = "read-only")]
    read_only: bool,
    /// Allow only these controls (repeatable).
    #[arg(long = "allow-control")]
    allow_controls: Vec<String>,
    /// Append the audit log (JSON lines) to this file.
    #[arg(long = "audit-log")]
    audit_log: Option<PathBuf>,
    /// Keep saved filters in this directory.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Run as one of several replicas behind one name: saved filters live
    /// in ZooKeeper (`zk://HOST:PORT[,HOST:PORT…]/topology`), shared by
    /// all (probes publish to every replica with `--app` given once each).
    #[arg(long)]
    zk: Option<String>,
    /// Allow this origin by CORS (repeatable).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Largest encoded report accepted, in bytes.
    #[arg(long = "max-report-bytes", default_value_t = Limits::default().max_encoded)]
    max_report_bytes: usize,
    /// Largest report accepted decompressed, in bytes (decoding stops there).
    #[arg(long = "max-decoded-bytes", default_value_t = Limits::default().max_decoded)]
    max_decoded_bytes: usize,
    /// Reports decoded at once; more wait with their bodies unread (default: twice the cores).
    #[arg(long = "max-concurrent-reports")]
    max_concurrent_reports: Option<usize>,
    /// A live view's client that takes no message for this long is disconnected.
    #[arg(long = "ws-send-timeout", default_value = "10s", value_parser = support::parse_duration)]
    ws_send_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args = Args::parse();
    let tokens = match &args.tokens {
        Some(path) => Tokens::load(path)?,
        None => Tokens::default(),
    };
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir)?;
    }
    let config = AppConfig {
        store: StoreConfig {
            window: args.window,
            stale_node_threshold: args.stale_node_threshold,
            max_data_age: args.max_data_age,
            retention: Retention {
                fine_span: args.series_fine_span,
                coarse_span: args.series_coarse_span,
                ..Retention::default()
            },
        },
        cleanup_interval: args.cleanup_interval,
        tokens,
        read_only: args.read_only,
        allowed_controls: (!args.allow_controls.is_empty()).then(|| args.allow_controls.iter().cloned().collect()),
        audit_log: args.audit_log.clone(),
        data_dir: args.data_dir.clone(),
        shared: match &args.zk {
            Some(url) => {
                let (servers, root) = support::parse_zk_url(url, "/topology");
                eprintln!("saved filters shared in ZooKeeper {servers} under {root}");
                Some(SharedStore(Arc::new(ZkStore::connect(&servers, &root).await?)))
            }
            None => None,
        },
        cors_origins: args.cors_origins.clone(),
        limits: Limits {
            max_encoded: args.max_report_bytes,
            max_decoded: args.max_decoded_bytes,
        },
        ws_send_timeout: args.ws_send_timeout,
        ..AppConfig::default()
    };
    let config = AppConfig {
        max_concurrent_reports: args.max_concurrent_reports.unwrap_or(config.max_concurrent_reports),
        ..config
    };
    let addr = SocketAddr::new(args.host, args.port);
    check_exposure(&config, addr)?;
    if config.tokens.is_empty() {
        eprintln!("no tokens configured: the app is OPEN to anyone on this machine (loopback only); give --tokens FILE to require them");
    }
    let app = App::new(config)?;
    tokio::spawn(app.clone().cleanup_loop());
    let router = app.router();
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            eprintln!("topology app on https://{addr}/api/topology");
            axum::serve(TlsListener::new(tcp, cert, key)?, router)
                .with_graceful_shutdown(support::shutdown_signal())
                .await?;
        }
        _ => {
            eprintln!("topology app on http://{addr}/api/topology");
            axum::serve(tcp, router)
                .with_graceful_shutdown(support::shutdown_signal())
                .await?;
        }
    }
    Ok(())
}
