//! A synthetic cluster's probes posting to a real app server over HTTP:
//! for load tests, demos of a large cluster, and the UI benchmark
//! (`ui/bench`). Hosts post two full rounds (so every connection's far end
//! is known), then, on each `--interval` or each `round N` line on stdin,
//! the first N hosts post a delta (their metrics moved).
//!
//! `cargo run --release --example synthetic-probes -- --app http://127.0.0.1:4040 --hosts 100 --containers 1000 --processes 10000 --connections 20000`

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use orchestrator::core::report::{encode, Report, CONTENT_TYPE};
use orchestrator::topology::now_ms;
use orchestrator::topology::synthetic::{Cluster, ClusterSpec};
use tokio::io::AsyncBufReadExt;

/// Post a synthetic cluster's reports to an app server.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The app server.
    #[arg(long, default_value = "http://127.0.0.1:4040")]
    app: String,
    /// A probe (or admin) token, if the app has tokens.
    #[arg(long, env = "ORCH_PROBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Hosts, one probe each.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Containers in all.
    #[arg(long, default_value_t = 1000)]
    containers: usize,
    /// Processes in all.
    #[arg(long, default_value_t = 10_000)]
    processes: usize,
    /// Connections in all.
    #[arg(long, default_value_t = 20_000)]
    connections: usize,
    /// Every host posts a delta this often (none: only on `round N` lines on stdin).
    #[arg(long, value_parser = support::parse_duration)]
    interval: Option<Duration>,
    /// Reports posted at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

async fn post(http: &reqwest::Client, args: &Args, reports: Vec<Report>) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/reports", args.app.trim_end_matches('/'));
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(reports)
        .map(|r| {
            let mut req = http.post(&url).header("content-type", CONTENT_TYPE);
            if let Some(t) = &args.token {
                req = req.bearer_auth(t);
            }
            async move {
                let body = encode(&r).context("encoding a report")?;
                let res = req.body(body).send().await.context("posting a report")?;
                anyhow::ensure!(res.status().is_success(), "the app answered {}", res.status());
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::new(ClusterSpec {
        hosts: args.hosts,
        containers: args.containers,
        processes: args.processes,
        connections: args.connections,
    });
    let http = reqwest::Client::new();
    for round in 0..2 {
        post(&http, &args, cluster.round(now_ms(), round)).await?;
    }
    println!("ready: {} hosts posted", cluster.hosts());
    let mut round = 2u64;
    let mut next = |hosts: usize| {
        let ts = now_ms();
        let reports: Vec<Report> = (0..hosts.min(cluster.hosts()))
            .map(|h| {
                cluster
                    .report(h, ts, round)
                    .delta_since(&cluster.report(h, ts, round - 1))
            })
            .collect();
        round += 1;
        reports
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut tick = args.interval.map(tokio::time::interval);
    let stop = support::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            line = lines.next_line() => match line? {
                Some(l) => {
                    let hosts = l.strip_prefix("round ").and_then(|n| n.trim().parse().ok()).unwrap_or(cluster.hosts());
                    post(&http, &args, next(hosts)).await?;
                    println!("posted: {hosts} hosts");
                }
                None if tick.is_none() => return Ok(()),
                None => std::future::pending::<()>().await,
            },
            _ = async { tick.as_mut().expect("checked").tick().await }, if tick.is_some() => {
                post(&http, &args, next(cluster.hosts())).await?;
            }
        }
    }
}
