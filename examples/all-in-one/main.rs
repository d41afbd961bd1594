//! The whole platform in one process: a master, one agent, the
//! Marathon-style scheduler, a probe and the topology app. The assembly is
//! [`orchestrator::platform`]; this binary adds flags, a work directory and
//! the demo.
//!
//! `cargo run --release --example all-in-one -- --demo`
//!
//! Ctrl-C (or SIGTERM) stops the scheduler, kills every task and removes
//! its container, then stops the servers: nothing is left running. With
//! `--work-dir` the scheduler's apps (and the topology app's saved filters
//! and audit log) survive restarts, and a restart brings the apps back.
//! With `--zk` the scheduler keeps its state in ZooKeeper, and the master
//! and the scheduler each win a leader election before they serve.

#[path = "../support/mod.rs"]
mod support;

mod args;
mod demo;
mod masters;

use std::time::Duration;

use args::{detected_resources, Args, WorkDir};
use clap::Parser;
use orchestrator::platform::{Platform, PlatformConfig};
use orchestrator::topology::server::Tokens;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(helper) = args.helper {
        return demo::run(helper).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Some(port) = args.run_master {
        return masters::run_one(&args, port).await;
    }
    if args.masters > 1 && args.zk.is_none() {
        anyhow::bail!(
            "--masters {} needs --zk: the masters are elected on ZooKeeper",
            args.masters
        );
    }
    let work = WorkDir::new(args.work_dir.clone())?;
    let resources = match args.resources.clone() {
        Some(r) => r,
        None => detected_resources()?,
    };
    let tokens = match &args.tokens {
        Some(path) => Tokens::load(path)?,
        None => Tokens::default(),
    };
    let config = PlatformConfig {
        ip: args.ip,
        master_port: args.master_port,
        agent_port: args.agent_port,
        marathon_port: args.marathon_port,
        app_port: args.app_port,
        dns_port: (!args.no_dns).then_some(args.dns_port),
        dns_http_port: args.dns_http_port,
        load_balancer: !args.no_lb,
        work_dir: work.path.clone(),
        keep_state: work.keep,
        zk: args.zk.as_deref().map(|u| support::parse_zk_url(u, "/orchestrator")),
        resources: resources.clone(),
        docker_host: (!args.no_docker).then(|| args.docker_host.clone()),
        spy_interval: args.spy_interval,
        tokens,
        masters: args.masters,
    };
    // Replicated masters are processes of their own (killed when we exit).
    let children = masters::Children::start(&args, &config)?;
    let zk = config.zk.is_some();
    let platform = Platform::start(config).await.map_err(|e| match e {
        orchestrator::platform::PlatformError::Bind { what, addr, source } => {
            let flag = match what {
                "master" => "--master-port",
                "agent" => "--agent-port",
                "scheduler" => "--marathon-port",
                _ => "--app-port",
            };
            anyhow::anyhow!("cannot listen on {addr} for the {what} (choose another with {flag}): {source}")
        }
        orchestrator::platform::PlatformError::Discovery(orchestrator::discovery::Error::Bind {
            what,
            addr,
            source,
        }) => {
            let flag = if what.starts_with("DNS (") {
                "--dns-port"
            } else {
                "--dns-http-port"
            };
            anyhow::anyhow!("cannot listen on {addr} for {what} (choose another with {flag}, or --no-dns): {source}")
        }
        other => other.into(),
    })?;
    if !platform.agent_registered(Duration::from_secs(10)).await {
        eprintln!("the agent has not registered yet; it keeps trying");
    }
    if zk {
        match platform.scheduler_leads(Duration::from_secs(30)).await {
            Ok(()) => {}
            Err(Some(other)) => eprintln!("the scheduler is a standby: {other} leads and gets the API calls"),
            Err(None) => eprintln!("the scheduler has not been elected yet"),
        }
    }
    let urls = platform.urls.clone();
    let containerizers = match &platform.docker {
        Some(_) => format!(
            "Docker at {} for tasks with an image, processes for the rest",
            args.docker_host
        ),
        None => "processes (no Docker)".to_string(),
    };
    println!("orchestrator all-in-one is up");
    if orchestrator::topology::server::ui_built() {
        println!(
            "  web UI    {}/    the topology: processes, containers, hosts, services",
            urls.app
        );
    } else {
        println!(
            "  web UI    not built (install Node.js and npm, then rebuild); the API is at {}/api/topology",
            urls.app
        );
    }
    if children.is_empty() {
        println!("  master    {}    /master/state, /api/v1/scheduler", urls.master);
    } else {
        for (url, pid) in children.list() {
            println!(
                "  master    {url}    pid {pid} (kill -9 the leader to see a failover: {url}/master/redirect names it)"
            );
        }
    }
    println!("  agent     {}    /state  offering {resources}", urls.agent);
    println!("  marathon  {}    /v2/apps, /v2/tasks", urls.marathon);
    println!("  topology  {}    /api/topology, /api/topology/processes", urls.app);
    if !args.no_lb {
        println!(
            "  lb        {}:SERVICE_PORT    each app's service ports (portDefinitions[].port) over its healthy tasks",
            args.ip
        );
    }
    if let Some((dns, api)) = &urls.dns {
        println!(
            "  dns       {dns}    Mesos-DNS names: dig @{} -p {} web-demo.marathon.mesos; API {api}/v1/",
            dns.ip(),
            dns.port()
        );
    }
    println!("  tasks run as: {containerizers}");
    println!("  scheduler state in {}", platform.state_where);
    println!("Ctrl-C stops everything, tasks and containers included.");
    if args.demo {
        let image = match &platform.docker {
            Some(d) if d.has_image(&args.demo_image).await => Some(args.demo_image.as_str()),
            Some(_) => {
                eprintln!(
                    "demo: the Docker engine has no {} image (docker pull it, or give --demo-image); the demo runs processes",
                    args.demo_image
                );
                None
            }
            None => None,
        };
        match demo::deploy(&urls.marathon, args.ip, urls.dns.as_ref().map(|(d, _)| *d), image).await {
            Ok(said) => println!("{said}"),
            Err(e) => eprintln!("demo: {e:#}"),
        }
    }
    let signal = async {
        support::shutdown_signal().await;
        eprintln!("stopping: scheduler first, then every task");
        // A second signal does not wait for the tasks.
        tokio::spawn(async {
            support::shutdown_signal().await;
            eprintln!("second signal: exiting without waiting");
            std::process::exit(130);
        });
    };
    let outcome = platform.run_until(signal, Duration::from_secs(3)).await;
    drop(children);
    drop(work);
    let killed = outcome?;
    eprintln!("stopped: {killed} task(s) killed, nothing left running");
    Ok(())
}
