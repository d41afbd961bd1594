//! `--demo`: two sample apps deployed through the scheduler's own API, and
//! the small programs they run (this binary's `demo-web` and `demo-client`
//! helpers), so the demo needs nothing the machine may lack.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{json, Value};

/// Helpers the demo apps run (not for direct use).
#[derive(Subcommand)]
pub enum Helper {
    /// Serve `GET /` (a greeting naming the task) and `GET /health`.
    DemoWeb {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// Port to listen on (Marathon's first assigned port).
        #[arg(long, env = "PORT0")]
        port: u16,
    },
    /// Call every healthy task of an app in turn, finding them by their
    /// Mesos-DNS SRV name (or through the scheduler's `/v2/apps/{id}/tasks`
    /// without `--dns`), over kept-alive connections.
    DemoClient {
        /// The scheduler's API.
        #[arg(long)]
        marathon: String,
        /// The DNS server (`IP:PORT`) that names the app's tasks.
        #[arg(long)]
        dns: Option<SocketAddr>,
        /// The app to call.
        #[arg(long, default_value = "/demo/web")]
        app: String,
        /// Time between calls.
        #[arg(long, default_value = "1s", value_parser = crate::support::parse_duration)]
        interval: Duration,
    },
}

/// Runs a helper until it is killed.
pub async fn run(helper: Helper) -> anyhow::Result<()> {
    // Named after what it does in process lists and the topology, not
    // after this binary (Linux only; elsewhere the name stays).
    let name = match &helper {
        Helper::DemoWeb { .. } => "demo-web",
        Helper::DemoClient { .. } => "demo-client",
    };
    let _ = std::fs::write("/proc/self/comm", name);
    match helper {
        Helper::DemoWeb { ip, port } => web(SocketAddr::new(ip, port)).await,
        Helper::DemoClient {
            marathon,
            dns,
            app,
            interval,
        } => client(&marathon, dns, &app, interval).await,
    }
}

async fn web(addr: SocketAddr) -> anyhow::Result<()> {
    let task = std::env::var("MESOS_TASK_ID").unwrap_or_else(|_| "a demo task".into());
    let greeting = format!("hello from {task}\n");
    let router = axum::Router::new()
        .route("/", axum::routing::get(move || async move { greeting }))
        .route("/health", axum::routing::get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("demo web on http://{addr}");
    axum::serve(listener, router).await?;
    Ok(())
}

/// `host:port` of each task of `app` that is healthy (or has no checks yet
/// and is running).
fn backends(tasks: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for t in tasks["tasks"].as_array().into_iter().flatten() {
        let healthy = match t["healthCheckResults"].as_array() {
            Some(results) if !results.is_empty() => results.iter().all(|r| r["alive"] == true),
            _ => t["state"] == "TASK_RUNNING",
        };
        if let (true, Some(host), Some(port)) = (healthy, t["host"].as_str(), t["ports"][0].as_u64()) {
            out.push(format!("{host}:{port}"));
        }
    }
    out.sort();
    out
}

/// The SRV name Mesos-DNS gives an app's first port (`/demo/web` →
/// `_web-demo._tcp.marathon.mesos`).
fn srv_name(app: &str) -> String {
    let task = app
        .split('/')
        .filter(|p| !p.is_empty())
        .rev()
        .collect::<Vec<_>>()
        .join(".");
    format!(
        "_{}._tcp.marathon.mesos.",
        orchestrator::discovery::names::task_label(&task)
    )
}

/// `host:port` of the app's tasks, by DNS when there is a server, else
/// from the scheduler.
async fn find(
    http: &reqwest::Client,
    dns: Option<SocketAddr>,
    tasks_url: &str,
    app: &str,
) -> Result<Vec<String>, String> {
    if let Some(server) = dns {
        let answers = orchestrator::discovery::resolve::srv(server, &srv_name(app), Duration::from_secs(2)).await?;
        let mut found: Vec<String> = answers
            .into_iter()
            .map(|a| match a.ip {
                Some(ip) => SocketAddr::new(ip, a.port).to_string(),
                None => format!("{}:{}", a.target.trim_end_matches('.'), a.port),
            })
            .collect();
        found.sort();
        return Ok(found);
    }
    let r = http.get(tasks_url).send().await.map_err(|e| e.to_string())?;
    Ok(r.json::<Value>().await.map(|v| backends(&v)).unwrap_or_default())
}

async fn client(marathon: &str, dns: Option<SocketAddr>, app: &str, interval: Duration) -> anyhow::Result<()> {
    // Idle connections are kept, so the topology shows them between calls.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .timeout(Duration::from_secs(5))
        .build()?;
    let tasks_url = format!(
        "{}/v2/apps/{}/tasks",
        marathon.trim_end_matches('/'),
        app.trim_start_matches('/')
    );
    let mut turn = 0usize;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let found = match find(&http, dns, &tasks_url, app).await {
            Ok(found) => found,
            Err(e) => {
                eprintln!("cannot find {app}: {e}");
                continue;
            }
        };
        let Some(backend) = (!found.is_empty()).then(|| &found[turn % found.len()]) else {
            eprintln!("no healthy task of {app} yet");
            continue;
        };
        turn += 1;
        match http.get(format!("http://{backend}/")).send().await {
            Ok(r) => print!("{backend}: {}", r.text().await.unwrap_or_default()),
            Err(e) => eprintln!("{backend}: {e}"),
        }
    }
}

/// Puts `text` in single quotes for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The two demo apps: the web service in a container of `image` when
/// given, else as a process of this binary; the client always as a process.
pub fn apps(exe: &str, ip: IpAddr, marathon: &str, dns: Option<SocketAddr>, image: Option<&str>) -> [Value; 2] {
    let health = json!([{
        "protocol": "HTTP", "path": "/health", "portIndex": 0,
        "gracePeriodSeconds": 15, "intervalSeconds": 2, "timeoutSeconds": 2, "maxConsecutiveFailures": 3
    }]);
    let mut web = json!({
        "id": "/demo/web",
        "instances": 2,
        "cpus": 0.1,
        "mem": 64,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": health,
        "labels": {"demo": "web"},
    });
    match image {
        Some(image) => {
            web["cmd"] = json!(format!(
                "mkdir -p /www && echo \"hello from $MESOS_TASK_ID\" > /www/index.html && echo ok > /www/health \
                 && exec httpd -f -p {ip}:$PORT0 -h /www"
            ));
            web["container"] = json!({"type": "DOCKER", "docker": {"image": image, "network": "HOST"}});
        }
        None => web["cmd"] = json!(format!("exec {} demo-web --ip {ip}", shell_quote(exe))),
    }
    let client = json!({
        "id": "/demo/client",
        "cmd": format!(
            "exec {} demo-client --marathon {marathon} --app /demo/web{}",
            shell_quote(exe),
            dns.map(|d| format!(" --dns {d}")).unwrap_or_default()
        ),
        "instances": 1,
        "cpus": 0.1,
        "mem": 64,
        "labels": {"demo": "client"},
    });
    [web, client]
}

/// Deploys the demo apps through the scheduler's API (apps already there,
/// from an earlier run with the same state, are left as they are).
pub async fn deploy(
    marathon: &str,
    ip: IpAddr,
    dns: Option<SocketAddr>,
    image: Option<&str>,
) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding this program for the demo apps")?;
    let http = reqwest::Client::new();
    let mut said = Vec::new();
    for app in apps(&exe.to_string_lossy(), ip, marathon, dns, image) {
        let id = app["id"].as_str().unwrap_or_default().to_string();
        let url = format!("{marathon}/v2/apps{id}");
        if http.get(&url).send().await?.status().is_success() {
            said.push(format!("{id} (already deployed)"));
            continue;
        }
        let resp = http.put(&url).json(&app).send().await?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("deploying {id}: {status} {}", resp.text().await.unwrap_or_default());
        }
        said.push(id);
    }
    let web = match image {
        Some(image) => format!("2 web servers in Docker containers of {image}"),
        None => "2 web servers as processes".into(),
    };
    Ok(format!(
        "demo: deployed {} ({web}, with HTTP health checks, and a client finding them {}); \
         in a few seconds: curl {marathon}/v2/apps/demo/web/tasks",
        said.join(", "),
        if dns.is_some() {
            "by DNS (SRV _web-demo._tcp.marathon.mesos)"
        } else {
            "through /v2/apps/demo/web/tasks"
        }
    ))
}
