//! The all-in-one as a separate process on free ports, and the helpers its
//! tests share (HTTP calls, tasks and containers left behind).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_testkit::{example_binary, free_port, free_port_run, until};
use serde_json::Value;

/// A running all-in-one and what it printed.
pub(crate) struct AllInOne {
    pub(crate) child: Child,
    /// Where its tasks run, and its Docker engine, for cleaning up after a
    /// failed test.
    pub(crate) work: Option<PathBuf>,
    pub(crate) docker_host: Option<String>,
    pub(crate) master: String,
    pub(crate) marathon: String,
    pub(crate) topology: String,
    /// Its DNS server (UDP and TCP) and the DNS HTTP API.
    pub(crate) dns_port: u16,
    pub(crate) dns_api: String,
    pub(crate) output: Arc<Mutex<String>>,
}

impl AllInOne {
    /// Starts it with `args` on free ports and waits until it says it is up.
    pub(crate) fn start(args: &[String]) -> AllInOne {
        Self::start_with(args, false)
    }

    /// [`start`](Self::start), with the load balancer when `lb` (only one
    /// test runs one: every scheduler hands out the same service ports).
    ///
    /// A free port can be taken by another process between the test
    /// choosing it and the all-in-one binding it (the whole suite runs at
    /// once): when the all-in-one says it cannot listen, it is started
    /// again on other ports, at most three times.
    pub(crate) fn start_with(args: &[String], lb: bool) -> AllInOne {
        for _ in 0..2 {
            let mut me = Self::spawn(args, lb);
            if me.up_or_exited(Duration::from_secs(60)) {
                return me;
            }
            let said = me.said();
            assert!(said.contains("cannot listen on"), "exited before it was up:\n{said}");
            eprintln!("the all-in-one found a port taken; again on other ports:\n{said}");
        }
        let me = Self::spawn(args, lb);
        me.wait_printed("all-in-one is up", Duration::from_secs(60));
        me
    }

    /// Whether it said it is up within `limit` (`false`: it exited first).
    fn up_or_exited(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.printed("all-in-one is up") {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                // What it printed last is read by the threads: let them finish.
                std::thread::sleep(Duration::from_millis(200));
                return self.printed("all-in-one is up");
            }
            assert!(Instant::now() < deadline, "never said it is up:\n{}", self.said());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn spawn(args: &[String], lb: bool) -> AllInOne {
        let mut ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        // `--masters N` runs masters on master-port..+N: a free run of N.
        let masters = args
            .iter()
            .position(|a| a == "--masters")
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse::<u16>().ok())
            .unwrap_or(1);
        if masters > 1 {
            ports[0] = free_port_run(masters, &ports[1..]);
        }
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
            "--dns-port",
            &ports[4].to_string(),
            "--dns-http-port",
            &ports[5].to_string(),
            "--spy-interval",
            "1s",
        ])
        .args(args)
        .args((!lb).then_some("--no-lb"))
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
        AllInOne {
            child,
            work: flag("--work-dir").map(PathBuf::from),
            docker_host: flag("--docker-host"),
            master: url(ports[0]),
            marathon: url(ports[2]),
            topology: url(ports[3]),
            dns_port: ports[4],
            dns_api: url(ports[5]),
            output,
        }
    }

    pub(crate) fn said(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub(crate) fn printed(&self, text: &str) -> bool {
        self.output.lock().unwrap().contains(text)
    }

    /// Waits up to `limit` until it has printed `text`.
    pub(crate) fn wait_printed(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.printed(text) {
            assert!(Instant::now() < deadline, "never said {text:?}:\n{}", self.said());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, as Ctrl-C sends, and the exit status.
    pub(crate) fn interrupt(&mut self) -> ExitStatus {
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

pub(crate) async fn get(url: &str) -> Value {
    get_once_led(url)
        .await
        .unwrap_or_else(|| panic!("GET {url}: 503 Service Unavailable (no leader yet)"))
}

/// [`get`], or none while Marathon answers 503 for want of a leader (a
/// new process on a ZooKeeper path waits for the last one's leadership
/// to lapse).
pub(crate) async fn get_once_led(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status} {body}");
    Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}")))
}

pub(crate) async fn send(method: reqwest::Method, url: &str, body: Value) -> (u16, Value) {
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
pub(crate) fn processes_in(dir: &Path) -> Vec<String> {
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
pub(crate) fn containers_of(docker_host: &str, agent_dir: &Path) -> Vec<String> {
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
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orch-aio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// The tasks of an app, once `n` run and pass their health checks and its
/// deployment is over.
pub(crate) async fn healthy_tasks(marathon: &str, app: &str, n: usize) -> Vec<Value> {
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
            if healthy.len() != n {
                return None;
            }
            // And its deployment done: Marathon refuses changes (409)
            // while one runs, so a user waits for it as well.
            let app = get(&format!("{marathon}/v2/apps{app}")).await;
            app["app"]["deployments"].as_array()?.is_empty().then_some(healthy)
        },
    )
    .await
}
