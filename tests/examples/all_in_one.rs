//! The `all-in-one` example as a newcomer runs it: a separate process on
//! free ports, driven over HTTP only, with the README's tour (list apps,
//! deploy, scale, see the topology, stop a container through the control
//! API), stopped with SIGINT and checked to leave nothing behind, then
//! started again on the same state.

use std::time::Duration;

use orchestrator_testkit::until;
use serde_json::{json, Value};

use crate::aio::{containers_of, get, get_once_led, healthy_tasks, processes_in, scratch, send, AllInOne};

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
        .filter(|t| t["name"] == "files.tour" && t["state"] == "TASK_RUNNING")
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
