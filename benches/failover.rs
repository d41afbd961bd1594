//! Master failover as users run it: three `master` processes elected on a
//! real ZooKeeper, two `agent`s and a `marathon` following the leader from
//! ZooKeeper, an app running. Each iteration `kill -9`s the leader and
//! times, from a separate client:
//!
//! 1. a new leader serving the scheduler API (a call answered by the
//!    master itself, not 307 or 503);
//! 2. Marathon re-subscribed to it under its framework id;
//! 3. a new launch running: the app scaled up by one through Marathon's
//!    API, and the new instance `TASK_RUNNING`.
//!
//! Criterion records (3), the whole path; the medians of (1) and (2) are
//! printed. The killed master is restarted as a standby between
//! iterations (not timed). `failover/zk_session_{4,10}s` use session
//! timeouts of 4 s and Mesos's default 10 s; a kill -9 can be noticed only
//! when the dead leader's session expires, so the target is the session
//! timeout + 1 s.
//!
//! The bench builds the release examples first (`cargo build --release
//! --examples`) and starts its own ZooKeeper from Debian's `zookeeper`
//! package (`ORCH_ZK_CLASSPATH` overrides the jars).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use orchestrator_testkit::{free_port, ZkServer};
use serde_json::{json, Value};

const DEBIAN_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:\
/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("examples")
}

fn build_examples() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--example",
            "master",
            "--example",
            "agent",
            "--example",
            "marathon",
        ])
        .status()
        .is_ok_and(|s| s.success());
    ok && examples_dir().join("master").exists()
}

struct Proc(Child);

impl Proc {
    fn start(name: &str, args: &[String]) -> Proc {
        let child = Command::new(examples_dir().join(name))
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    zk_url: String,
    session: String,
    masters: Vec<(u16, Proc)>,
    _agents: Vec<Proc>,
    _marathon: Proc,
    marathon: String,
    http: reqwest::Client,
    work: PathBuf,
    instances: u64,
    framework: String,
}

fn start_master(port: u16, zk_url: &str, session: &str) -> Proc {
    Proc::start(
        "master",
        &[
            "--port".into(),
            port.to_string(),
            "--zk".into(),
            zk_url.into(),
            "--zk-session-timeout".into(),
            session.into(),
            "--allocation-interval".into(),
            "100ms".into(),
        ],
    )
}

impl Cluster {
    async fn get(&self, url: &str) -> Option<Value> {
        let r = self.http.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn leader(&self) -> Option<usize> {
        for (i, (port, _)) in self.masters.iter().enumerate() {
            let m = self.get(&format!("http://127.0.0.1:{port}/metrics/snapshot")).await;
            if m.is_some_and(|m| m["master/elected"] == 1.0) {
                return Some(i);
            }
        }
        None
    }

    async fn wait<T>(&self, what: &str, mut check: impl AsyncFnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = check(self).await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn running(&self) -> usize {
        let tasks = self
            .get(&format!("{}/v2/apps/bench/failover/tasks", self.marathon))
            .await
            .unwrap_or_default();
        tasks["tasks"]
            .as_array()
            .map_or(0, |t| t.iter().filter(|t| t["state"] == "TASK_RUNNING").count())
    }

    async fn start(zk: &ZkServer, session: &str) -> Cluster {
        let zk_url = format!("zk://{}/mesos-{session}", zk.address());
        let masters: Vec<(u16, Proc)> = (0..3)
            .map(|_| {
                let port = free_port();
                (port, start_master(port, &zk_url, session))
            })
            .collect();
        let work = std::env::temp_dir().join(format!("orch-bench-failover-{}-{session}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let agents = (0..2)
            .map(|n| {
                Proc::start(
                    "agent",
                    &[
                        "--master".into(),
                        zk_url.clone(),
                        "--port".into(),
                        free_port().to_string(),
                        "--resources".into(),
                        format!("cpus:8;mem:8192;ports:[{}-{}]", 31_000 + n * 1000, 31_999 + n * 1000),
                        "--work-dir".into(),
                        work.join(format!("agent{n}")).display().to_string(),
                    ],
                )
            })
            .collect();
        let marathon_port = free_port();
        let marathon = Proc::start(
            "marathon",
            &[
                "--master".into(),
                zk_url.clone(),
                "--http-port".into(),
                marathon_port.to_string(),
            ],
        );
        let mut c = Cluster {
            zk_url,
            session: session.into(),
            masters,
            _agents: agents,
            _marathon: marathon,
            marathon: format!("http://127.0.0.1:{marathon_port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            work,
            instances: 2,
            framework: String::new(),
        };
        let leader = c.wait("a leader", async |c| c.leader().await).await;
        c.wait("marathon", async |c| c.get(&format!("{}/v2/info", c.marathon)).await)
            .await;
        let app =
            json!({"id": "/bench/failover", "cmd": "sleep 3600", "cpus": 0.01, "mem": 4, "instances": c.instances});
        let r = c
            .http
            .post(format!("{}/v2/apps", c.marathon))
            .json(&app)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        c.wait("the app running", async |c| (c.running().await == 2).then_some(()))
            .await;
        let port = c.masters[leader].0;
        let state = c.get(&format!("http://127.0.0.1:{port}/master/state")).await.unwrap();
        c.framework = state["frameworks"][0]["id"].as_str().unwrap().to_string();
        c
    }

    /// One failover: (scheduler API served, Marathon re-subscribed, new launch running).
    async fn failover(&mut self) -> (Duration, Duration, Duration) {
        let old = self.wait("a leader", async |c| c.leader().await).await;
        let killed = Instant::now();
        self.masters[old].1.kill();
        // 1. Another master answers the scheduler API itself: a call with
        //    no type gets the leader's 400, a standby's 307 or 503 otherwise.
        let new = self
            .wait("a new leader serving the scheduler API", async |c| {
                for (i, (port, _)) in c.masters.iter().enumerate() {
                    if i == old {
                        continue;
                    }
                    let r = c
                        .http
                        .post(format!("http://127.0.0.1:{port}/api/v1/scheduler"))
                        .json(&json!({}))
                        .send()
                        .await
                        .ok()?;
                    if r.status() == 400 {
                        return Some(i);
                    }
                }
                None
            })
            .await;
        let api = killed.elapsed();
        let port = self.masters[new].0;
        self.wait("marathon re-subscribed", async |c| {
            let state = c.get(&format!("http://127.0.0.1:{port}/master/state")).await?;
            let fw = state["frameworks"]
                .as_array()?
                .iter()
                .find(|f| f["id"] == c.framework.as_str())?
                .clone();
            (fw["active"] == true).then_some(())
        })
        .await;
        let subscribed = killed.elapsed();
        self.instances += 1;
        let want = self.instances;
        let r = self
            .http
            .put(format!("{}/v2/apps/bench/failover?force=true", self.marathon))
            .json(&json!({"instances": want}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        self.wait("the new instance running", async |c| {
            (c.running().await as u64 == want).then_some(())
        })
        .await;
        let launched = killed.elapsed();
        // The killed master comes back as a standby (not timed).
        let port = self.masters[old].0;
        self.masters[old].1 = start_master(port, &self.zk_url, &self.session);
        self.wait("the restarted master standing by", async |c| {
            let m = c.get(&format!("http://127.0.0.1:{port}/metrics/snapshot")).await?;
            (m["master/elected"] == 0.0).then_some(())
        })
        .await;
        (api, subscribed, launched)
    }

    async fn stop(self) {
        let _ = self
            .http
            .delete(format!("{}/v2/apps/bench/failover", self.marathon))
            .send()
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.running().await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let work = self.work.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(work);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn failover(c: &mut Criterion) {
    if std::env::var("ORCH_ZK_CLASSPATH").is_err() {
        std::env::set_var("ORCH_ZK_CLASSPATH", DEBIAN_CLASSPATH);
    }
    let Some(zk) = ZkServer::start("failover bench") else {
        eprintln!("failover bench skipped: no ZooKeeper (install the `zookeeper` package)");
        return;
    };
    if !build_examples() {
        eprintln!("failover bench skipped: the release examples did not build");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("failover");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1));
    for session in ["4secs", "10secs"] {
        let mut cluster = rt.block_on(Cluster::start(&zk, session));
        let mut phases = Vec::new();
        let name = format!("zk_session_{}s", session.trim_end_matches("secs"));
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (api, sub, launched) = rt.block_on(cluster.failover());
                    phases.push((api, sub, launched));
                    total += launched;
                }
                total
            });
        });
        let api = median(phases.iter().map(|p| p.0).collect());
        let sub = median(phases.iter().map(|p| p.1).collect());
        let run = median(phases.iter().map(|p| p.2).collect());
        eprintln!(
            "failover/{name}: medians over {} kills: new leader serving the scheduler API {api:.2?}, marathon re-subscribed {sub:.2?}, new launch running {run:.2?}",
            phases.len()
        );
        rt.block_on(cluster.stop());
    }
    group.finish();
}

criterion_group!(benches, failover);
criterion_main!(benches);
