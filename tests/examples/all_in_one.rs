//! The `all-in-one` example as a newcomer runs it: a separate process on
//! free ports, driven over HTTP only, with the README's tour (list apps,
//! deploy, scale, see the topology, stop a container through the control
//! API), stopped with SIGINT and checked to leave nothing behind, then
//! started again on the same state.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_testkit::{example_binary, free_port, until};
use serde_json::{json, Value};

/// A running all-in-one and what it printed.
struct AllInOne {
    child: Child,
    /// Where its tasks run, and its Docker engine, for cleaning up after a
    /// failed test.
    work: Option<PathBuf>,
    docker_host: Option<String>,
    master: String,
    marathon: String,
    topology: String,
    output: Arc<Mutex<String>>,
}

impl AllInOne {
    /// Starts it with `args` on free ports and waits until it says it is up.
    fn start(args: &[String]) -> AllInOne {
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let mut cmd = Command::new(example_binary("all-in-one"));
        cmd.args([
            "--master-port",
            &ports[0].to_string(),
            "--agent-port",
            &ports[1].to_string(),
            "--marathon-port",
            &ports[2].to_string(),
            "--app-port",
            &ports[3].to_string(),
            "--spy-interval",
            "1s",
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting the all-in-one");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let flag = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let me = AllInOne {
            child,
            work: flag("--work-dir").map(PathBuf::from),
            docker_host: flag("--docker-host"),
            master: url(ports[0]),
            marathon: url(ports[2]),
            topology: url(ports[3]),
            output,
        };
        me.wait_printed("all-in-one is up", Duration::from_secs(60));
        me
    }

    fn said(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn printed(&self, text: &str) -> bool {
        self.output.lock().unwrap().contains(text)
    }

    /// Waits up to `limit` until it has printed `text`.
    fn wait_printed(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.printed(text) {
            assert!(Instant::now() < deadline, "never said {text:?}:\n{}", self.said());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, as Ctrl-C sends, and the exit status.
    fn interrupt(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 60 s after SIGINT:\n{}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for AllInOne {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // A failed test: kill it and whatever it started.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(work) = &self.work {
            for p in processes_in(work) {
                if let Some(pid) = p.split(':').next() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            if let Some(host) = &self.docker_host {
                for c in containers_of(host, &work.join("agent")) {
                    let _ = Command::new("docker")
                        .args(["rm", "-f", &c])
                        .env("DOCKER_HOST", host)
                        .status();
                }
            }
        }
    }
}

async fn get(url: &str) -> Value {
    get_once_led(url)
        .await
        .unwrap_or_else(|| panic!("GET {url}: 503 Service Unavailable (no leader yet)"))
}

/// [`get`], or none while Marathon answers 503 for want of a leader (a
/// new process on a ZooKeeper path waits for the last one's leadership
/// to lapse).
async fn get_once_led(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status} {body}");
    Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}")))
}

async fn send(method: reqwest::Method, url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Processes working in `dir` (every task runs in its sandbox there).
fn processes_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(dir) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    out
}

/// Containers the agent working in `agent_dir` made, running or not.
fn containers_of(docker_host: &str, agent_dir: &Path) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=orchestrator.scope={}", agent_dir.display()),
        ])
        .env("DOCKER_HOST", docker_host)
        .output()
        .expect("running docker ps");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// An empty directory for this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orch-aio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// The tasks of an app, once `n` run and pass their health checks.
async fn healthy_tasks(marathon: &str, app: &str, n: usize) -> Vec<Value> {
    until(
        &format!("{n} healthy tasks of {app}"),
        Duration::from_secs(60),
        async || {
            let tasks = get(&format!("{marathon}/v2/apps{app}/tasks")).await["tasks"].clone();
            let healthy: Vec<Value> = tasks
                .as_array()?
                .iter()
                .filter(|t| t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == true)
                .cloned()
                .collect();
            (healthy.len() == n).then_some(healthy)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_runs_the_tour_and_leaves_nothing_behind() {
    let _beside = crate::HEAVY.read().await;
    const TEST: &str = "the_all_in_one_runs_the_tour_and_leaves_nothing_behind";
    let docker = orchestrator_testkit::docker(TEST);
    let python = std::env::var("ORCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let work = scratch("tour");
    let mut args = vec![
        "--work-dir".to_string(),
        work.display().to_string(),
        "--resources".into(),
        "cpus:4;mem:4096;disk:1024;ports:[24000-24099]".into(),
        "--demo".into(),
    ];
    match &docker {
        Some(d) => args.extend([
            "--docker-host".into(),
            d.host.clone(),
            "--demo-image".into(),
            d.busybox_image.clone(),
        ]),
        None => args.push("--no-docker".into()),
    }
    let mut aio = AllInOne::start(&args);
    let (master, marathon, topology) = (aio.master.clone(), aio.marathon.clone(), aio.topology.clone());
    aio.wait_printed("demo: deployed /demo/web, /demo/client", Duration::from_secs(10));

    // The tour: list the apps (the demo's two).
    let apps = get(&format!("{marathon}/v2/apps")).await;
    let mut ids: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["/demo/client", "/demo/web"]);

    // Deploy an app of our own, then scale it to two.
    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{marathon}/v2/apps"),
        json!({
            "id": "/tour/files",
            "cmd": format!("exec {python} -m http.server $PORT0 --bind 127.0.0.1"),
            "instances": 1, "cpus": 0.1, "mem": 64,
            "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 2, "timeoutSeconds": 1, "gracePeriodSeconds": 30}]
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    healthy_tasks(&marathon, "/tour/files", 1).await;
    let (status, body) = send(
        reqwest::Method::PUT,
        &format!("{marathon}/v2/apps/tour/files"),
        json!({"instances": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tasks = healthy_tasks(&marathon, "/tour/files", 2).await;
    let ports: Vec<u64> = tasks.iter().map(|t| t["ports"][0].as_u64().unwrap()).collect();

    // The master runs them.
    let state = get(&format!("{master}/master/state")).await;
    let running: Vec<&Value> = state["frameworks"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "tour.files" && t["state"] == "TASK_RUNNING")
        .collect();
    assert_eq!(running.len(), 2, "{state}");
    assert_eq!(state["slaves"].as_array().unwrap().len(), 1);

    // The web UI is served where the API is.
    let page = reqwest::get(format!("{topology}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/ui/app.js") || !orchestrator::topology::server::ui_built(),
        "{html}"
    );

    // The topology's processes view shows both, by the port in their command line.
    let index = get(&format!("{topology}/api/topology")).await;
    assert!(
        index.as_array().unwrap().iter().any(|v| v["id"] == "processes"),
        "{index}"
    );
    until(
        "both servers in the processes view",
        Duration::from_secs(30),
        async || {
            let view = get(&format!("{topology}/api/topology/processes")).await;
            let mut found: Vec<u64> = Vec::new();
            for node in view["nodes"].as_object()?.values() {
                if !node["label"].as_str()?.starts_with("python") {
                    continue;
                }
                let id = node["id"].as_str()?;
                let details = get(&format!("{topology}/api/topology/processes/{}", urlencode(id))).await;
                let text = details["node"]["metadata"].to_string();
                found.extend(
                    ports
                        .iter()
                        .filter(|p| text.contains(&format!("http.server {p}")))
                        .copied(),
                );
            }
            (found.len() == 2).then_some(())
        },
    )
    .await;

    // The demo: the client reaches the web service, and the topology shows
    // the connection (between processes, or into the web containers).
    match &docker {
        Some(_) => {
            let view = until(
                "the demo's containers with their clients",
                Duration::from_secs(60),
                async || {
                    let view = get(&format!("{topology}/api/topology/containers")).await;
                    let webs: Vec<&Value> = view["nodes"]
                        .as_object()?
                        .values()
                        .filter(|n| n["label"].as_str().unwrap_or("").contains("demo_web"))
                        .collect();
                    let reached = webs
                        .iter()
                        .filter(|w| {
                            view["nodes"].as_object().unwrap().values().any(|n| {
                                n["adjacency"]
                                    .as_array()
                                    .is_some_and(|a| a.iter().any(|x| *x == w["id"]))
                            })
                        })
                        .count();
                    (webs.len() == 2 && reached == 2).then_some(view)
                },
            )
            .await;
            // Stop one web container through the control API: the
            // scheduler sees the task end and starts a replacement.
            let web = view["nodes"]
                .as_object()
                .unwrap()
                .values()
                .find(|n| n["label"].as_str().unwrap_or("").contains("demo_web"))
                .unwrap();
            let id = web["id"].as_str().unwrap().to_string();
            let probe = web["probe"].as_str().unwrap().to_string();
            let before: Vec<String> = healthy_tasks(&marathon, "/demo/web", 2)
                .await
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            let (status, body) = until("the probe's control socket", Duration::from_secs(20), async || {
                let (status, body) = send(
                    reqwest::Method::POST,
                    &format!("{topology}/api/control/{probe}/{id}/docker_stop_container"),
                    json!({"timeout": "1"}),
                )
                .await;
                (status != 503).then_some((status, body))
            })
            .await;
            assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
            until("a replacement web task", Duration::from_secs(60), async || {
                let now = healthy_tasks(&marathon, "/demo/web", 2).await;
                now.iter()
                    .any(|t| !before.iter().any(|b| t["id"] == b.as_str()))
                    .then_some(())
            })
            .await;
        }
        None => {
            until(
                "the demo client's connection to the web service",
                Duration::from_secs(60),
                async || {
                    let view = get(&format!("{topology}/api/topology/processes")).await;
                    let nodes = view["nodes"].as_object()?;
                    let webs: Vec<&Value> = nodes.values().filter(|n| n["label"] == "demo-web").collect();
                    let client = nodes.values().find(|n| n["label"] == "demo-client")?;
                    let adjacent = client["adjacency"].as_array()?;
                    (webs.len() == 2 && webs.iter().all(|w| adjacent.contains(&w["id"]))).then_some(())
                },
            )
            .await;
        }
    }

    // Delete the app: its servers stop.
    let (status, body) = send(
        reqwest::Method::DELETE,
        &format!("{marathon}/v2/apps/tour/files"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until("the file servers gone", Duration::from_secs(30), async || {
        (!processes_in(&work).iter().any(|p| p.contains("http.server"))).then_some(())
    })
    .await;

    // Ctrl-C: everything stops, no task process or container is left.
    let status = aio.interrupt();
    assert!(status.success(), "{status}:\n{}", aio.said());
    assert!(aio.printed("nothing left running"), "{}", aio.said());
    assert_eq!(processes_in(&work), Vec::<String>::new(), "{}", aio.said());
    if let Some(d) = &docker {
        assert_eq!(containers_of(&d.host, &work.join("agent")), Vec::<String>::new());
    }
    drop(aio);

    // Started again on the same work directory, the apps come back and run.
    args.retain(|a| a != "--demo");
    let mut again = AllInOne::start(&args);
    let apps = get(&format!("{}/v2/apps", again.marathon)).await;
    assert_eq!(apps["apps"].as_array().unwrap().len(), 2, "{apps}");
    healthy_tasks(&again.marathon, "/demo/web", 2).await;
    let status = again.interrupt();
    assert!(status.success(), "{status}:\n{}", again.said());
    assert_eq!(processes_in(&work), Vec::<String>::new());
    if let Some(d) = &docker {
        assert_eq!(containers_of(&d.host, &work.join("agent")), Vec::<String>::new());
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// Node ids hold `;` and `/`: escape them for a path segment.
fn urlencode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_zookeeper_the_apps_and_leaders_live_there() {
    let _beside = crate::HEAVY.read().await;
    const TEST: &str = "with_zookeeper_the_apps_and_leaders_live_there";
    let Some(zk) = orchestrator_testkit::zookeeper(TEST) else {
        return;
    };
    let root = format!("/orch-aio-{}", std::process::id());
    let args = vec![
        "--zk".to_string(),
        format!("zk://{}{root}", zk.address),
        "--no-docker".into(),
        "--resources".into(),
        "cpus:2;mem:2048;disk:1024;ports:[25000-25099]".into(),
    ];
    let mut aio = AllInOne::start(&args);
    assert!(
        aio.printed(&format!("ZooKeeper {}{root}/marathon", zk.address)),
        "{}",
        aio.said()
    );
    // The scheduler answers 503 until it has won its election on ZooKeeper and
    // subscribed to the master; a client waits for that before it writes.
    until("a leading scheduler", Duration::from_secs(30), async || {
        get_once_led(&format!("{}/v2/apps", aio.marathon)).await.map(|_| ())
    })
    .await;
    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{}/v2/apps", aio.marathon),
        json!({"id": "/zk/sleeper", "cmd": "exec sleep 600", "instances": 1, "cpus": 0.1, "mem": 16}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    until("the sleeper running", Duration::from_secs(30), async || {
        let app = get_once_led(&format!("{}/v2/apps/zk/sleeper", aio.marathon)).await?;
        (app["app"]["tasksRunning"] == 1).then_some(())
    })
    .await;
    let leader = get(&format!("{}/v2/leader", aio.marathon)).await;
    assert_eq!(
        leader["leader"].as_str(),
        aio.marathon.strip_prefix("http://"),
        "{leader}"
    );
    let status = aio.interrupt();
    assert!(status.success(), "{status}:\n{}", aio.said());
    drop(aio);

    // A new process on the same ZooKeeper path has the app and runs it.
    let mut again = AllInOne::start(&args);
    until("the sleeper running again", Duration::from_secs(60), async || {
        let app = get_once_led(&format!("{}/v2/apps/zk/sleeper", again.marathon)).await?;
        (app["app"]["tasksRunning"] == 1).then_some(())
    })
    .await;
    let status = again.interrupt();
    assert!(status.success(), "{status}:\n{}", again.said());
}
