//! Test support shared by every crate of the workspace: where the real
//! servers are, and how to start more of them.
//!
//! `scripts/test` starts one ZooKeeper and one private `dockerd` and hands
//! them over in environment variables:
//!
//! | variable | meaning |
//! |---|---|
//! | `ORCH_TEST_ZK` | `127.0.0.1:PORT` of a running ZooKeeper 3.8 |
//! | `ORCH_ZK_CLASSPATH` | Java classpath for starting more ZooKeeper servers |
//! | `ORCH_TEST_DOCKER_HOST` | `unix:///…/docker.sock` of the private dockerd |
//! | `ORCH_TEST_BUSYBOX_IMAGE` | the imported busybox image |
//! | `ORCH_TEST_PYTHON` | a Python with `mesoshttp` (a Mesos framework library) and `marathon` (a Marathon client) |
//! | `ORCH_TEST_SCHEMATHESIS` | the `st` command of Schemathesis, an OpenAPI fuzzer |
//!
//! A test asks with [`zookeeper`] or [`docker`]. When the server is missing
//! the test is told to skip, and says so loudly on stderr; under `CI=true`
//! a missing server fails the test instead, so CI never passes by skipping.
//!
//! Tests that must stop and restart a server (or need several ensembles)
//! start their own with [`ZkServer::start`]; it is stopped by PID on drop.

pub mod containerizer_contract;
pub mod fuzz;
pub mod hostload;
pub mod store_contract;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The harness's shared ZooKeeper.
#[derive(Clone, Debug)]
pub struct ZkEnv {
    /// `127.0.0.1:PORT`.
    pub address: String,
}

/// The harness's private Docker engine.
#[derive(Clone, Debug)]
pub struct DockerEnv {
    /// `unix:///…/docker.sock`.
    pub host: String,
    /// The socket path behind `host`.
    pub socket: PathBuf,
    /// The imported busybox image.
    pub busybox_image: String,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing server: a failure under CI, a loud skip elsewhere.
///
/// # Panics
/// Under `CI=true`, always: a test that needs a server must not pass by skipping.
pub fn missing(what: &str, test: &str) {
    let msg = format!("{what} is not available: run the tests through scripts/test, which starts it");
    assert!(!in_ci(), "{test}: {msg}");
    // Straight to the handle: the test harness captures `eprintln!`, and a
    // skip must be seen even when the test "passes".
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! SKIPPED {test}: {msg} !!!!!!!!\n");
}

/// The shared ZooKeeper, or `None` (after saying so) when there is none.
pub fn zookeeper(test: &str) -> Option<ZkEnv> {
    match std::env::var("ORCH_TEST_ZK") {
        Ok(address) if !address.is_empty() => Some(ZkEnv { address }),
        _ => {
            missing("ZooKeeper (ORCH_TEST_ZK)", test);
            None
        }
    }
}

/// The harness's two ZooKeepers (a migration's source and target), or
/// `None` (after saying so) when they are missing.
pub fn zookeeper_pair(test: &str) -> Option<(ZkEnv, ZkEnv)> {
    let first = zookeeper(test)?;
    match std::env::var("ORCH_TEST_ZK2") {
        Ok(address) if !address.is_empty() => Some((first, ZkEnv { address })),
        _ => {
            missing("a second ZooKeeper (ORCH_TEST_ZK2)", test);
            None
        }
    }
}

/// The private Docker engine with its busybox image, or `None` (after
/// saying so) when there is none.
pub fn docker(test: &str) -> Option<DockerEnv> {
    let host = std::env::var("ORCH_TEST_DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let image = std::env::var("ORCH_TEST_BUSYBOX_IMAGE").ok().filter(|i| !i.is_empty());
    match (host, image) {
        (Some(host), Some(busybox_image)) => {
            let socket = PathBuf::from(host.trim_start_matches("unix://"));
            Some(DockerEnv {
                host,
                socket,
                busybox_image,
            })
        }
        _ => {
            missing("Docker (ORCH_TEST_DOCKER_HOST, ORCH_TEST_BUSYBOX_IMAGE)", test);
            None
        }
    }
}

/// What the browser tests need: Node.js, the UI's npm packages (with
/// `playwright-core`) and Chromium.
#[derive(Clone, Debug)]
pub struct BrowserEnv {
    /// The workspace's `ui/` folder (its `node_modules` installed).
    pub ui_dir: PathBuf,
    /// The Chromium executable (`ORCH_CHROMIUM`, default `/usr/bin/chromium`).
    pub chromium: PathBuf,
}

/// Node.js with the UI's packages and Chromium, or `None` (after saying so)
/// when one is missing.
pub fn browser(test: &str) -> Option<BrowserEnv> {
    let ui_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let chromium = PathBuf::from(std::env::var("ORCH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node || !ui_dir.join("node_modules/playwright-core").exists() || !chromium.exists() {
        missing(
            "a browser (node, ui/node_modules with playwright-core: `npm ci` in ui/; Chromium: apt-get install chromium)",
            test,
        );
        return None;
    }
    Some(BrowserEnv { ui_dir, chromium })
}

/// A Python interpreter with the `mesoshttp` framework library, or `None`
/// (after saying so) when there is none.
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var("ORCH_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            missing("Python with mesoshttp and marathon (ORCH_TEST_PYTHON)", test);
            None
        }
    }
}

/// Schemathesis's `st` command (an OpenAPI fuzzer from PyPI), or `None`
/// (after saying so) when there is none.
pub fn schemathesis(test: &str) -> Option<PathBuf> {
    match std::env::var("ORCH_TEST_SCHEMATHESIS") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            missing("Schemathesis (ORCH_TEST_SCHEMATHESIS)", test);
            None
        }
    }
}

/// Checks a `/metrics` body in the classic text format with Prometheus's
/// own `promtool check metrics` (parse and lint: counters named `_total`,
/// help on every family, no quantile-labelled gauges posing as summaries…).
/// Returns whether promtool ran (it is missing only outside scripts/test,
/// which installs Debian's `prometheus`).
///
/// # Panics
/// When promtool finds anything, with what it said and the body.
pub fn promtool_check(body: &str, test: &str) -> bool {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        missing("promtool (Debian's prometheus)", test);
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body.as_bytes()).expect("feeding promtool");
    }
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{test}: promtool check metrics: {}{}\n--- the body ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// `target/<profile>/examples/<name>`, which `cargo test --workspace`
/// builds along with the tests.
///
/// # Panics
/// When the binary is missing, saying how to build it.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let bin = dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the examples) or `cargo build --example {name}`",
        bin.display()
    );
    bin
}

/// Polls `check` until it returns something, every 50 ms, and fails the
/// test after `within` naming `what` it waited for.
///
/// # Panics
/// When `within` passes first.
pub async fn until<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`until`] for a plain condition: waits until `check` holds.
///
/// # Panics
/// When `within` passes first, naming `what`.
pub async fn until_true(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    until(what, within, async || check().then_some(())).await;
}

/// A free TCP port on 127.0.0.1 (free when asked; bind promptly).
///
/// # Panics
/// When the loopback interface cannot bind at all.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}

/// The first of `n` consecutive free ports on 127.0.0.1, none of them in
/// `avoid` (ports a test already chose), for servers that take a base port
/// and count up from it (the all-in-one's `--masters`).
///
/// # Panics
/// When no such run is found in a thousand tries.
pub fn free_port_run(n: u16, avoid: &[u16]) -> u16 {
    for _ in 0..1000 {
        let base = free_port();
        let Some(last) = base.checked_add(n.saturating_sub(1)) else {
            continue;
        };
        let free = (base..=last).all(|p| !avoid.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {n} consecutive free ports on 127.0.0.1");
}

/// A self-signed certificate and key (PEM) for `common_name`, made with
/// `openssl` in `dir`, or `None` (after saying so) when openssl is missing.
pub fn self_signed_cert(dir: &Path, common_name: &str, test: &str) -> Option<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).ok()?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"])
        .arg(format!("/CN={common_name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status();
    if made.is_ok_and(|s| s.success()) {
        Some((cert, key))
    } else {
        missing("openssl (for a self-signed certificate)", test);
        None
    }
}

/// Sends a ZooKeeper four-letter word and returns the answer.
pub fn four_letter_word(address: &str, word: &str) -> std::io::Result<String> {
    let addr: SocketAddr = address
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{address}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A ZooKeeper server of the test's own, on a free 127.0.0.1 port, stopped
/// by PID when dropped. Its data directory survives [`stop`](Self::stop) so
/// it can be [`restart`](Self::restart)ed with its data.
pub struct ZkServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    classpath: String,
    jvm: Vec<String>,
}

impl ZkServer {
    /// Starts a standalone server and waits until it answers `imok`, or
    /// returns `None` after [`missing`] when Java or the jars are absent.
    ///
    /// # Panics
    /// When the server was found but did not come up within 30 s.
    pub fn start(test: &str) -> Option<ZkServer> {
        ZkServer::start_with(test, "", &[], &[])
    }

    /// [`start`](Self::start) with more lines of `zoo.cfg` (a
    /// `secureClientPort` and its `ssl.*` settings, say), more jars on the
    /// class path (Netty's, which TLS needs) and JVM options (a JAAS
    /// configuration for SASL).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_with(test: &str, extra_config: &str, extra_jars: &[&str], jvm: &[&str]) -> Option<ZkServer> {
        let Ok(mut classpath) = std::env::var("ORCH_ZK_CLASSPATH") else {
            missing("ZooKeeper jars (ORCH_ZK_CLASSPATH)", test);
            return None;
        };
        for jar in extra_jars {
            classpath.push(':');
            classpath.push_str(jar);
        }
        let dir = std::env::temp_dir().join(format!("orch-zk-{}-{}", std::process::id(), free_port()));
        let mut server = ZkServer {
            port: free_port(),
            dir,
            child: None,
            classpath,
            jvm: jvm.iter().map(ToString::to_string).collect(),
        };
        server.write_config(extra_config).expect("writing zoo.cfg");
        server.spawn();
        Some(server)
    }

    fn write_config(&self, extra: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("data"))?;
        let cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\nforceSync=no\n{extra}\n",
            self.dir.join("data").display(),
            self.port
        );
        std::fs::write(self.dir.join("zoo.cfg"), cfg)?;
        let log4j = format!(
            "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n\
             log4j.appender.F.File={}\nlog4j.appender.F.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.F.layout.ConversionPattern=%d %p %c: %m%n\n",
            self.dir.join("zk.log").display()
        );
        std::fs::write(self.dir.join("log4j.properties"), log4j)
    }

    fn spawn(&mut self) {
        let child = Command::new("java")
            .arg("-Xmx1g")
            // TTL nodes, so migrations can be tested with every node type.
            .arg("-Dzookeeper.extendedTypesEnabled=true")
            // Empty containers and expired TTL nodes go within a second.
            .arg("-Dznode.container.checkIntervalMs=500")
            .args(&self.jvm)
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                self.dir.join("log4j.properties").display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning java for ZooKeeper");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.is_up() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "ZooKeeper on port {} did not answer imok within 30 s (see {})",
            self.port,
            self.dir.display()
        );
    }

    fn is_up(&self) -> bool {
        four_letter_word(&self.address(), "ruok").is_ok_and(|a| a == "imok")
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's working directory (config, data, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Freezes the server (SIGSTOP): it answers nothing and expires no
    /// session until [`thaw`](Self::thaw)ed, as a stalled process would.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`freeze`](Self::freeze)d server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args([sig, &child.id().to_string()]).status();
        }
    }

    /// Kills the server (SIGKILL, as a crash would) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Docker engine of the test's own, started with `--live-restore` so
/// containers outlive a daemon restart, with the harness's busybox image
/// loaded. Stopped (its containers removed) by PID when dropped.
pub struct DockerdServer {
    dir: PathBuf,
    child: Option<Child>,
    /// The busybox image, loaded from the harness's engine.
    pub image: String,
}

impl DockerdServer {
    /// Starts the engine and loads the image, or returns `None` (after
    /// [`missing`]) without the harness's Docker.
    ///
    /// # Panics
    /// When dockerd does not come up or the image cannot be loaded.
    pub fn start(test: &str) -> Option<DockerdServer> {
        let env = docker(test)?;
        let dir = std::env::temp_dir().join(format!("orch-dockerd-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("root")).expect("dockerd dirs");
        std::fs::create_dir_all(dir.join("exec")).expect("dockerd dirs");
        let mut server = DockerdServer {
            dir,
            child: None,
            image: env.busybox_image.clone(),
        };
        server.spawn();
        let mut save = Command::new("/usr/bin/docker")
            .args(["-H", &env.host, "save", &env.busybox_image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Command::new("/usr/bin/docker")
            .args(["-H", &server.host(), "load"])
            .stdin(save.stdout.take().expect("save output"))
            .stdout(Stdio::null())
            .status()
            .expect("docker load");
        let _ = save.wait();
        assert!(
            load.success(),
            "loading {} into the private dockerd failed",
            env.busybox_image
        );
        Some(server)
    }

    /// `unix:///…/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn docker_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new("/usr/bin/docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running the docker CLI")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("dockerd.log")).expect("dockerd log");
        let d = &self.dir;
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--live-restore",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawning dockerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.docker_cli(&["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "private dockerd did not answer within 30 s (see {})",
            self.dir.join("dockerd.log").display()
        );
    }

    /// Stops the daemon with SIGTERM (containers keep running) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the daemon on the same data.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for DockerdServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker_cli(&["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.docker_cli(&args);
            }
        }
        self.stop();
        // Shims and containerd left behind carry the directory in their arguments.
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(self.dir.as_os_str())
            .status();
        // dockerd leaves mounts (a network namespace under exec/netns)
        // behind; unmount everything below the directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| Path::new(p).starts_with(&self.dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(point)
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
