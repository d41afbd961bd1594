//! Replicated masters as users run them: three `master` processes elected
//! on a real ZooKeeper in Mesos's layout, two `agent`s (process
//! containerizer) and a `marathon` following the leader from ZooKeeper.
//! The leader is killed with SIGKILL, frozen with SIGSTOP past its
//! session, and ZooKeeper itself restarted; tasks keep running through it
//! all. An existing Mesos client (pymesos's detector, on kazoo) finds the
//! leader from the znodes. And a standalone master restarted on its
//! `--work-dir` keeps its registry. App servers run as replicas behind one
//! DNS name (a real dnsmasq), which the probe follows as replicas come and
//! go.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orchestrator_testkit::{example_binary, free_port, until, ZkServer};
use serde_json::{json, Value};

use crate::aio::{processes_in, scratch};

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(name: &str, args: &[String], dir: &Path) -> Proc {
        let log = dir.join(format!("{name}-{}.log", free_port()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(example_binary(name))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { child, log }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGTERM; SIGKILL does regardless.
        self.kill();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn get_text(url: &str) -> Option<String> {
    http().get(url).send().await.ok()?.text().await.ok()
}

async fn get_json(url: &str) -> Option<Value> {
    let r = http().get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

struct Master {
    port: u16,
    proc: Proc,
}

impl Master {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(port: u16, zk: &str, dir: &Path) -> Master {
        let args = [
            "--port",
            &port.to_string(),
            "--zk",
            zk,
            "--zk-session-timeout",
            "4secs",
            "--allocation-interval",
            "100ms",
        ]
        .map(String::from);
        Master {
            port,
            proc: Proc::start("master", &args, dir),
        }
    }

    /// `master/elected` as this master reports it, `None` while it does not answer.
    async fn elected(&self) -> Option<bool> {
        let m = get_json(&format!("{}/metrics/snapshot", self.url())).await?;
        Some(m["master/elected"] == 1.0)
    }
}

/// The master that says it leads, and its `/master/state`.
async fn leader(masters: &[Master]) -> Option<(usize, Value)> {
    for (i, m) in masters.iter().enumerate() {
        if m.elected().await == Some(true) {
            let state = get_json(&format!("{}/master/state", m.url())).await?;
            return Some((i, state));
        }
    }
    None
}

fn running_ids(state: &Value, framework: &str) -> Vec<String> {
    let mut ids: Vec<String> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["id"] == framework)
        .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["state"] == "TASK_RUNNING")
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

async fn marathon_running(marathon: &str) -> Vec<String> {
    let tasks = get_json(&format!("{marathon}/v2/apps/ha/sleeper/tasks"))
        .await
        .unwrap_or_default();
    let mut ids: Vec<String> = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// After a failover: one leader, both agents back, the framework back
/// under its id, and exactly `want` tasks running — the same ones. On a
/// timeout it says what the leader last showed, and what each process said.
async fn settled(masters: &[Master], framework: &str, want: &[String], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some((i, state)) = leader(masters).await {
            let active = state["slaves"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["active"] == true)
                .count();
            let fw_active = state["frameworks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["id"] == framework && f["active"] == true);
            if active == 2 && fw_active && running_ids(&state, framework) == want {
                return i;
            }
            last = Some((i, state));
        }
        if Instant::now() >= deadline {
            let said: Vec<String> = masters
                .iter()
                .map(|m| {
                    let all: Vec<char> = m.proc.said().chars().collect();
                    all[all.len().saturating_sub(4000)..].iter().collect::<String>()
                })
                .collect();
            panic!(
                "timed out waiting for the new leader with both agents, the framework and its tasks {want:?}; \
                 last seen {last:#?}; the masters said {said:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_fail_over_on_zookeeper_with_agents_and_marathon_following() {
    let _beside = crate::HEAVY.read().await;
    let Some(mut zk) = ZkServer::start("three_masters_fail_over_on_zookeeper_with_agents_and_marathon_following")
    else {
        return;
    };
    let dir = scratch("ha");
    let zk_url = format!("zk://{}/mesos", zk.address());
    let mut masters: Vec<Master> = (0..3).map(|_| Master::start(free_port(), &zk_url, &dir)).collect();
    let mut agents = Vec::new();
    for n in 0..2 {
        let work = dir.join(format!("agent{n}"));
        let low = 29_000 + n * 100;
        let args = [
            "--master".into(),
            zk_url.clone(),
            "--zk-session-timeout".into(),
            "4secs".into(),
            "--port".into(),
            free_port().to_string(),
            "--resources".into(),
            format!("cpus:4;mem:2048;ports:[{low}-{}]", low + 99),
            "--work-dir".into(),
            work.display().to_string(),
        ];
        agents.push((Proc::start("agent", &args, &dir), work));
    }
    let marathon_port = free_port();
    let marathon_proc = Proc::start(
        "marathon",
        &[
            "--master".into(),
            zk_url.clone(),
            "--http-port".into(),
            marathon_port.to_string(),
        ],
        &dir,
    );
    let marathon = format!("http://127.0.0.1:{marathon_port}");

    // Scaled to four on whichever master leads.
    let (first, _) = until("a leader", Duration::from_secs(30), async || leader(&masters).await).await;
    until("marathon's API", Duration::from_secs(30), async || {
        get_json(&format!("{marathon}/v2/info")).await
    })
    .await;
    let app = json!({"id": "/ha/sleeper", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 4});
    let r = http()
        .post(format!("{marathon}/v2/apps"))
        .json(&app)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let before = until("four running instances", Duration::from_secs(60), async || {
        let ids = marathon_running(&marathon).await;
        (ids.len() == 4).then_some(ids)
    })
    .await;
    let state = leader(&masters).await.unwrap().1;
    let framework = state["frameworks"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(running_ids(&state, &framework), before);

    // Existing software finds the leader from the znodes: pymesos's
    // MasterDetector, loaded unmodified from the installed package.
    if let Some(python) = orchestrator_testkit::python("three_masters_fail_over (pymesos detector)") {
        let code = format!(
            r#"
import importlib.util, pathlib, threading, sys
import kazoo  # pymesos's detector runs on kazoo
spec = importlib.util.find_spec("pymesos")
path = pathlib.Path(spec.submodule_search_locations[0]) / "detector.py"
mod_spec = importlib.util.spec_from_file_location("pymesos_detector", path)
detector = importlib.util.module_from_spec(mod_spec)
mod_spec.loader.exec_module(detector)
seen = threading.Event()
class Agent:
    def onNewMasterDetectedMessage(self, data):
        print(data.decode() if isinstance(data, bytes) else data); seen.set()
    def onNoMasterDetectedMessage(self):
        pass
d = detector.MasterDetector("{servers}/mesos", Agent())
d.start()
ok = seen.wait(20)
d.stop()
sys.exit(0 if ok else 3)
"#,
            servers = zk.address()
        );
        let out = Command::new(python).args(["-c", &code]).output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "pymesos detector: {printed} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: Value = serde_json::from_str(printed.trim()).unwrap_or_else(|e| panic!("{e}: {printed}"));
        assert_eq!(info["address"]["port"], masters[first].port, "pymesos sees the leader");
        assert_eq!(info["ip"], 16_777_343);
        assert_eq!(info["pid"], format!("master@127.0.0.1:{}", masters[first].port));
    }

    // A standby redirects the scheduler API and /master/redirect to the leader.
    let standby = (first + 1) % 3;
    let r = http()
        .post(format!("{}/api/v1/scheduler", masters[standby].url()))
        .json(&json!({"type": "SUBSCRIBE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let leader_at = format!("//127.0.0.1:{}", masters[first].port);
    assert_eq!(
        r.headers()["location"],
        format!("{leader_at}/api/v1/scheduler").as_str()
    );
    let r = http()
        .get(format!("{}/master/redirect", masters[standby].url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().unwrap()),
        (307, leader_at.as_str())
    );
    // The state too, as Mesos: readers of it (Mesos-DNS, dashboards) get
    // the leader's, which names the leader.
    let r = http()
        .get(format!("{}/master/state", masters[standby].url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().unwrap()),
        (307, format!("{leader_at}/master/state").as_str())
    );
    let leader_state = get_json(&format!("{}/master/state", masters[first].url()))
        .await
        .unwrap();
    assert_eq!(
        leader_state["leader"],
        format!("master@127.0.0.1:{}", masters[first].port)
    );
    assert_eq!(masters[standby].elected().await, Some(false));

    // SIGKILL the leader: another leads within the session timeout + 2 s,
    // with both agents, the framework under its id and the same tasks.
    let killed_at = Instant::now();
    masters[first].proc.kill();
    let second = settled(&masters, &framework, &before, Duration::from_secs(30)).await;
    let took = killed_at.elapsed();
    assert_ne!(second, first);
    let new_leader_at = until("a new leader", Duration::from_secs(1), async || leader(&masters).await).await;
    assert_eq!(new_leader_at.0, second);
    assert!(
        took < Duration::from_secs(4 + 2 + 4),
        "failover and recovery took {took:?}"
    );
    assert_eq!(
        marathon_running(&marathon).await,
        before,
        "no instance relaunched or lost"
    );

    // Scaling works after the failover; the killed master comes back as a standby.
    let r = http()
        .put(format!("{marathon}/v2/apps/ha/sleeper"))
        .json(&json!({"instances": 6}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let six = until("six running instances", Duration::from_secs(60), async || {
        let ids = marathon_running(&marathon).await;
        (ids.len() == 6).then_some(ids)
    })
    .await;
    assert!(before.iter().all(|id| six.contains(id)));
    let port = masters[first].port;
    masters[first] = Master::start(port, &zk_url, &dir);
    until(
        "the restarted master as a standby",
        Duration::from_secs(20),
        async || (masters[first].elected().await == Some(false)).then_some(()),
    )
    .await;

    // ZooKeeper restarted within the session timeout: the same leader.
    let leader_id = leader(&masters).await.unwrap().1["leader_info"]["id"].clone();
    zk.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    zk.restart();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (after_zk, state) = until(
        "a leader after ZooKeeper's restart",
        Duration::from_secs(10),
        async || leader(&masters).await,
    )
    .await;
    assert_eq!(state["leader_info"]["id"], leader_id, "no change of leader");
    assert_eq!(after_zk, second);

    // The leader frozen past its session: when it wakes it no longer
    // leads, another does, and the cluster carries on.
    masters[second].proc.signal("-STOP");
    let third = until(
        "a leader while the old one is frozen",
        Duration::from_secs(20),
        async || {
            let (i, _) = leader(&masters).await?;
            (i != second).then_some(i)
        },
    )
    .await;
    masters[second].proc.signal("-CONT");
    assert_eq!(
        masters[second].elected().await,
        Some(false),
        "a leader frozen past its session stops leading the moment it wakes"
    );
    let settled_at = settled(&masters, &framework, &six, Duration::from_secs(30)).await;
    assert_eq!(settled_at, third);
    assert_eq!(marathon_running(&marathon).await, six);

    // Done: the app goes (its tasks are killed), then everything stops.
    let r = http()
        .delete(format!("{marathon}/v2/apps/ha/sleeper"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for (_, work) in &agents {
        let work = work.clone();
        until("the tasks killed", Duration::from_secs(30), async || {
            processes_in(&work).is_empty().then_some(())
        })
        .await;
    }
    let said: Vec<String> = masters.iter().map(|m| m.proc.said()).collect();
    drop(marathon_proc);
    drop(agents);
    drop(masters);
    assert!(
        said.iter().any(|s| s.contains("leadership lost: standing down")),
        "the frozen leader said it stood down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_master_restarted_on_its_work_dir_keeps_agents_weights_and_quotas() {
    let _beside = crate::HEAVY.read().await;
    let dir = scratch("registry");
    let port = free_port();
    let work = dir.join("master");
    let url = format!("http://127.0.0.1:{port}");
    let args = [
        "--port".to_string(),
        port.to_string(),
        "--work-dir".into(),
        work.display().to_string(),
        "--allocation-interval".into(),
        "100ms".into(),
    ];
    let mut master = Proc::start("master", &args, &dir);
    let agent_work = dir.join("agent");
    // The agent, on the same work directory each time (so the same id).
    let start_agent = || {
        Proc::start(
            "agent",
            &[
                "--master".into(),
                format!("127.0.0.1:{port}"),
                "--port".into(),
                free_port().to_string(),
                "--resources".into(),
                "cpus:8;mem:4096".into(),
                "--work-dir".into(),
                agent_work.display().to_string(),
            ],
            &dir,
        )
    };
    let agent = start_agent();
    let agent_id = until("the agent registered", Duration::from_secs(20), async || {
        let state = get_json(&format!("{url}/master/state")).await?;
        state["slaves"][0]["id"].as_str().map(str::to_string)
    })
    .await;
    let c = http();
    let r = c
        .put(format!("{url}/weights"))
        .json(&json!([{"role": "web", "weight": 2.5}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{url}/quota"))
        .json(&json!({"role": "web", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // SIGKILL, and the agent is stopped too: the restarted master lists it
    // as recovered until it comes back.
    master.kill();
    drop(agent);
    let mut master = Proc::start("master", &args, &dir);
    let state = until("the restarted master", Duration::from_secs(20), async || {
        get_json(&format!("{url}/master/state")).await
    })
    .await;
    assert_eq!(state["recovered_slaves"][0]["id"], agent_id.as_str(), "{state}");
    let weights = get_json(&format!("{url}/weights")).await.unwrap();
    assert_eq!(weights, json!([{"role": "web", "weight": 2.5}]));
    let quota = get_json(&format!("{url}/quota")).await.unwrap();
    assert_eq!(quota["infos"][0]["role"], "web");
    assert_eq!(quota["infos"][0]["guarantee"][0]["scalar"]["value"], 2.0, "{quota}");

    // The agent comes back under its id, with its checkpointed identity.
    let _agent = start_agent();
    until("the agent back under its id", Duration::from_secs(20), async || {
        let state = get_json(&format!("{url}/master/state")).await?;
        (state["slaves"][0]["id"] == agent_id.as_str()
            && state["slaves"][0]["active"] == true
            && state["recovered_slaves"].as_array()?.is_empty())
        .then_some(())
    })
    .await;
    master.kill();
}

/// A DNS server (Debian's dnsmasq) answering `apps.test` with the
/// addresses in a hosts file, re-read on SIGHUP: a headless Service's name
/// as a probe's resolver sees it.
struct Dns {
    proc: Proc,
    hosts: PathBuf,
    port: u16,
}

impl Dns {
    fn start(dir: &Path, addresses: &[&str]) -> Option<Dns> {
        if Command::new("dnsmasq").arg("--version").output().is_err() {
            orchestrator_testkit::missing("dnsmasq (Debian's dnsmasq-base)", "app servers behind one name");
            return None;
        }
        let hosts = dir.join("apps.hosts");
        // Written before dnsmasq starts: a SIGHUP before it has set up its
        // handlers would end it.
        std::fs::write(&hosts, Dns::lines(addresses)).unwrap();
        let port = free_port();
        let mut dns = Dns {
            proc: Proc {
                child: Command::new("dnsmasq")
                    .args([
                        "--keep-in-foreground",
                        "--no-resolv",
                        "--no-hosts",
                        "--bind-interfaces",
                        "--listen-address=127.0.0.1",
                        "--user=root",
                        "--pid-file=",
                        "--log-facility=-",
                        "--local-ttl=0",
                        &format!("--port={port}"),
                        &format!("--addn-hosts={}", hosts.display()),
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting dnsmasq"),
                log: dir.join("dnsmasq.log"),
            },
            hosts,
            port,
        };
        // Serving once its UDP port is taken (and it is still running).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "dnsmasq did not bind 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            matches!(dns.proc.child.try_wait(), Ok(None)),
            "dnsmasq exited at start (its port taken?)"
        );
        Some(dns)
    }

    fn lines(addresses: &[&str]) -> String {
        addresses.iter().map(|a| format!("{a} apps.test\n")).collect()
    }

    /// `apps.test` is these addresses from now on.
    fn set(&mut self, addresses: &[&str]) {
        std::fs::write(&self.hosts, Dns::lines(addresses)).unwrap();
        self.proc.signal("-HUP");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_app_servers_behind_one_name_share_views_and_saved_filters() {
    let _beside = crate::HEAVY.read().await;
    let Some(zk) = orchestrator_testkit::zookeeper("three_app_servers_share_views_and_saved_filters") else {
        return;
    };
    let dir = scratch("replicas");
    // Three replicas on one port of three loopback addresses, behind one
    // name; the probe is given the name only.
    let port = free_port();
    let zk_url = format!("zk://{}/topology-test-{}", zk.address, std::process::id());
    let replica = |ip: &str| {
        Proc::start(
            "app-server",
            &[
                "--host".into(),
                ip.to_string(),
                "--port".into(),
                port.to_string(),
                "--zk".into(),
                zk_url.clone(),
            ],
            &dir,
        )
    };
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut apps: Vec<Proc> = ips.iter().map(|ip| replica(ip)).collect();
    let Some(mut dns) = Dns::start(&dir, &ips) else {
        return;
    };
    let metrics_port = free_port();
    let probe_args: Vec<String> = [
        "--spy-interval",
        "1s",
        "--publish-interval",
        "1s",
        "--no-docker",
        "--hostname",
        "replica-host",
        "--resolve-interval",
        "1s",
    ]
    .iter()
    .map(ToString::to_string)
    .chain([
        format!("--app=http://apps.test:{port}"),
        format!("--resolver=127.0.0.1:{}", dns.port),
        format!("--metrics-listen=127.0.0.1:{metrics_port}"),
    ])
    .collect();
    let _probe = Proc::start("probe", &probe_args, &dir);
    let hosts = |ip: &'static str| async move {
        let v = get_json(&format!("http://{ip}:{port}/api/topology/hosts")).await?;
        let mut ids: Vec<String> = v["nodes"].as_object()?.keys().cloned().collect();
        ids.sort();
        Some(ids)
    };
    for ip in ips {
        until(
            &format!("the replica at {ip} holding the probe's host"),
            Duration::from_secs(30),
            async || hosts(ip).await.filter(|h| h.iter().any(|l| l == "replica-host")),
        )
        .await;
    }

    // A filter saved on one replica is listed by, and applies on, another.
    let r = http()
        .post(format!("http://127.0.0.1:{port}/api/filters"))
        .json(&json!({"name": "nothing", "query": "no-such-node-anywhere", "view": "hosts"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let saved: Value = r.json().await.unwrap();
    let id = saved["id"].as_str().unwrap();
    let listed = get_json(&format!("http://127.0.0.2:{port}/api/filters")).await.unwrap();
    assert_eq!(listed["filters"][0]["id"], id, "{listed}");
    let filtered = get_json(&format!("http://127.0.0.3:{port}/api/topology/hosts?filter={id}"))
        .await
        .unwrap();
    assert_eq!(filtered["nodes"], json!({}), "the filter applies on another replica");

    // One replica dies and leaves the name; another joins it. The probe
    // follows the name: the new replica gets its reports, the live ones
    // keep getting them, the dead one is no longer published to.
    apps[0].kill();
    apps.push(replica("127.0.0.4"));
    dns.set(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    until(
        "the replica that joined the name holding the probe's host",
        Duration::from_secs(30),
        async || {
            hosts("127.0.0.4")
                .await
                .filter(|h| h.iter().any(|l| l == "replica-host"))
        },
    )
    .await;
    let published_to = async || {
        let m = get_text(&format!("http://127.0.0.1:{metrics_port}/metrics")).await?;
        let mut addresses: Vec<String> = m
            .lines()
            .filter(|l| l.starts_with("probe_reports_sent_total{"))
            .filter_map(|l| Some(l.split("address=\"").nth(1)?.split('"').next()?.to_string()))
            .collect();
        addresses.sort();
        Some(addresses)
    };
    let want = [
        format!("127.0.0.2:{port}"),
        format!("127.0.0.3:{port}"),
        format!("127.0.0.4:{port}"),
    ];
    until(
        "the probe publishing to exactly the name's addresses",
        Duration::from_secs(20),
        async || published_to().await.filter(|a| a[..] == want[..]),
    )
    .await;
    let reports = |ip: &'static str| async move {
        let m = get_text(&format!("http://{ip}:{port}/metrics")).await?;
        m.lines()
            .find(|l| l.starts_with("topology_reports_received_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
    };
    let (r2, r3) = (reports("127.0.0.2").await.unwrap(), reports("127.0.0.3").await.unwrap());
    until(
        "reports still arriving at both replicas that stayed",
        Duration::from_secs(20),
        async || {
            let (n2, n3) = (reports("127.0.0.2").await?, reports("127.0.0.3").await?);
            (n2 >= r2 + 3.0 && n3 >= r3 + 3.0).then_some(())
        },
    )
    .await;
    assert_eq!(hosts("127.0.0.2").await, hosts("127.0.0.4").await, "the same views");
    let r = http()
        .delete(format!("http://127.0.0.3:{port}/api/filters/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let listed = get_json(&format!("http://127.0.0.4:{port}/api/filters")).await.unwrap();
    assert_eq!(listed["filters"], json!([]));
    drop(apps);
}

/// The pid of the process running `task` (its sandbox, the process's
/// working directory, is named after the task).
fn task_pid(task: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        // A task runs in its sandbox, named after its container: the
        // task's id and a suffix.
        let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
        let dir = cwd.file_name()?.to_string_lossy().into_owned();
        dir.starts_with(&format!("{task}-")).then_some(pid)
    })
}

/// The all-in-one with `--masters 3`: three master processes, the agent
/// and the scheduler following the leader; killing it moves everything to
/// the next, tasks untouched, and a task that dies while no master leads
/// is reported to the next one; Ctrl-C leaves no master behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_runs_three_masters_and_survives_killing_the_leader() {
    use crate::aio::{get_once_led, AllInOne};

    let _beside = crate::HEAVY.read().await;
    let Some(zk) = orchestrator_testkit::zookeeper("the_all_in_one_runs_three_masters") else {
        return;
    };
    let root = format!("/orch-aio-masters-{}", std::process::id());
    let args = [
        "--zk".to_string(),
        format!("zk://{}{root}", zk.address),
        "--masters".into(),
        "3".into(),
        "--zk-session-timeout".into(),
        "3secs".into(),
        "--no-docker".into(),
        "--no-dns".into(),
        "--resources".into(),
        "cpus:2;mem:2048;disk:1024;ports:[29500-29599]".into(),
    ];
    let mut aio = AllInOne::start(&args);
    let said = aio.said();
    let masters: Vec<(String, i32)> = said
        .lines()
        .filter(|l| l.trim_start().starts_with("master ") && l.contains(" pid "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let url = words.nth(1).unwrap().to_string();
            let pid = words.nth(1).unwrap().parse().unwrap();
            (url, pid)
        })
        .collect();
    assert_eq!(masters.len(), 3, "{said}");
    until("a leading scheduler", Duration::from_secs(30), async || {
        get_once_led(&format!("{}/v2/apps", aio.marathon)).await.map(|_| ())
    })
    .await;
    let app = json!({"id": "/aio/sleeper", "cmd": "exec sleep 600", "instances": 2, "cpus": 0.1, "mem": 16});
    let r = http()
        .post(format!("{}/v2/apps", aio.marathon))
        .json(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tasks = async || {
        let v = get_once_led(&format!("{}/v2/apps/aio/sleeper/tasks", aio.marathon)).await?;
        let mut ids: Vec<String> = v["tasks"]
            .as_array()?
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        Some(ids)
    };
    let before = until("two running", Duration::from_secs(30), async || {
        tasks().await.filter(|t| t.len() == 2)
    })
    .await;

    // Whoever /master/redirect names leads; kill it.
    let r = http()
        .get(format!("{}/master/redirect", masters[1].0))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}; the all-in-one said:\n{}", aio.said()));
    assert_eq!(r.status(), 307);
    let leader = format!("http:{}", r.headers()["location"].to_str().unwrap());
    let (_, pid) = masters
        .iter()
        .find(|(u, _)| *u == leader)
        .unwrap_or_else(|| panic!("{leader} in {masters:?}"));
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    // In the gap, with no leader, one task dies: its TASK_FAILED cannot be
    // delivered now; the agent must hand it to the next leader.
    let victim = before[0].clone();
    let victim_pid = task_pid(&victim).unwrap_or_else(|| panic!("the process of {victim}"));
    assert!(Command::new("kill")
        .args(["-9", &victim_pid.to_string()])
        .status()
        .unwrap()
        .success());
    let next = until(
        "another master leading with the agent back",
        Duration::from_secs(20),
        async || {
            // A standby answers 307 (None here); the new leader its state.
            for (url, _) in masters.iter().filter(|(u, _)| *u != leader) {
                let Some(state) = get_json(&format!("{url}/master/state")).await else {
                    continue;
                };
                if state["elected_time"].is_number() && state["slaves"][0]["active"] == true {
                    return Some(url.clone());
                }
            }
            None
        },
    )
    .await;
    assert_ne!(next, leader);
    // The scheduler is back, the task that lived through the failover is
    // untouched, and the one that died in the gap was reported (its
    // failure is the app's lastTaskFailure) and replaced.
    until(
        "the scheduler back, the gap's failure delivered and replaced",
        Duration::from_secs(30),
        async || {
            let state = get_json(&format!("{next}/master/state")).await?;
            let app = get_once_led(&format!("{}/v2/apps/aio/sleeper", aio.marathon)).await?;
            let now = tasks().await?;
            (state["frameworks"][0]["active"] == true
                && app["app"]["lastTaskFailure"]["taskId"] == victim.as_str()
                && now.len() == 2
                && now.contains(&before[1])
                && !now.contains(&victim))
            .then_some(())
        },
    )
    .await;
    let r = http()
        .put(format!("{}/v2/apps/aio/sleeper", aio.marathon))
        .json(&json!({"instances": 3}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    until("three running", Duration::from_secs(30), async || {
        tasks().await.filter(|t| t.len() == 3)
    })
    .await;

    let status = aio.interrupt();
    assert!(status.success(), "{status}:\n{}", aio.said());
    for (_, pid) in &masters {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "master {pid} left running");
    }
}
