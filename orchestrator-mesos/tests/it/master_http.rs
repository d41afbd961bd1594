//! The master over real HTTP on loopback: a framework speaking the Mesos
//! v1 scheduler API (SUBSCRIBE stream, ACCEPT, ACKNOWLEDGE) and an agent
//! speaking the agent channel, end to end.

use std::time::Duration;

use orchestrator_core::Allocator;
use orchestrator_mesos::api::scheduler::EventType;
use orchestrator_mesos::testing::{EventStream, LoopbackMaster};
use orchestrator_mesos::{AgentCommand, DrfAllocator, FirstFitAllocator};
use serde_json::{json, Value};

async fn start() -> LoopbackMaster {
    start_with(Duration::from_millis(50)).await
}

async fn start_with(allocation_interval: Duration) -> LoopbackMaster {
    serve(DrfAllocator::default(), allocation_interval).await
}

/// A master on loopback around any allocator.
async fn serve<A: Allocator + 'static>(allocator: A, allocation_interval: Duration) -> LoopbackMaster<A> {
    LoopbackMaster::with_allocator(allocator, allocation_interval, Duration::from_millis(200)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_framework_launches_a_task_end_to_end() {
    launch_end_to_end(&start().await.base).await;
}

/// The allocator is a seam: the same master, API and operator endpoints run
/// on a second, unrelated allocator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_runs_on_another_allocator_through_the_seam() {
    let master = serve(
        FirstFitAllocator::new(Duration::from_millis(50)),
        Duration::from_millis(50),
    )
    .await;
    let base = master.base.clone();
    launch_end_to_end(&base).await;
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/weights"))
        .json(&json!([{"role": "web", "weight": 2.5}]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let roles: Value = http
        .get(format!("{base}/roles"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<_> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert!(names.contains(&json!("*")) && names.contains(&json!("web")), "{roles}");
    let weights: Value = http
        .get(format!("{base}/weights"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        weights
            .as_array()
            .unwrap()
            .contains(&json!({"role": "web", "weight": 2.5})),
        "{weights}"
    );
    // It cannot guarantee quota, and says so rather than pretending.
    let quota = http
        .post(format!("{base}/quota"))
        .json(&json!({"role": "web", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}))
        .send()
        .await
        .unwrap();
    assert!(quota.status().is_client_error(), "{}", quota.status());
    assert!(quota.text().await.unwrap().contains("first-fit"));
}

async fn launch_end_to_end(base: &str) {
    let http = reqwest::Client::new();

    // The agent registers and opens its command stream.
    let reg: Value = http
        .post(format!("{base}/api/v1/agents/register"))
        .json(&json!({"agent_info": {"hostname": "node1", "port": 5051,
            "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":2}},
                          {"name":"mem","type":"SCALAR","scalar":{"value":512}}]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent_id = reg["agent_id"]["value"].as_str().unwrap().to_string();
    let commands = http
        .get(format!("{base}/api/v1/agents/{agent_id}/commands"))
        .send()
        .await
        .unwrap();
    assert_eq!(commands.status(), 200);
    let mut commands = EventStream::new(commands);

    // An operator watches through the v1 operator API's event stream.
    let operator = |body: &'static str| {
        http.post(format!("{base}/api/v1"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let watch = operator(r#"{"type":"SUBSCRIBE"}"#).await.unwrap();
    assert_eq!(watch.status(), 200);
    let mut watch = EventStream::new(watch);
    let record = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
    let subscribed = record(watch.record().await);
    assert_eq!(subscribed["type"], "SUBSCRIBED");
    let agents = &subscribed["subscribed"]["get_state"]["get_agents"]["agents"];
    assert_eq!(
        agents[0]["agent_info"]["id"]["value"],
        agent_id.as_str(),
        "{subscribed}"
    );
    assert_eq!(subscribed["subscribed"]["heartbeat_interval_seconds"], 15.0);
    let refused = operator(r#"{"type":"DRAIN_AGENT"}"#).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(operator("not json").await.unwrap().status(), 400);

    // The framework subscribes, as a Mesos HTTP framework does.
    let sub = http
        .post(format!("{base}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .body(r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"e2e"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 200);
    let stream_id = sub.headers()["Mesos-Stream-Id"].to_str().unwrap().to_string();
    let mut events = EventStream::new(sub);
    let subscribed = events.event().await;
    let fw = subscribed.subscribed.unwrap().framework_id;
    let offers = events.event().await.offers.expect("OFFERS").offers;
    assert_eq!(offers[0].agent_id.as_str(), agent_id);

    let call = |body: Value| {
        http.post(format!("{base}/api/v1/scheduler"))
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &stream_id)
            .body(body.to_string())
            .send()
    };
    let accept = call(
        json!({"framework_id": {"value": fw.as_str()}, "type": "ACCEPT", "accept": {
        "offer_ids": [{"value": offers[0].id.as_str()}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{"name": "hello",
            "task_id": {"value": "hello-1"}, "agent_id": {"value": agent_id},
            "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},
                          {"name":"mem","type":"SCALAR","scalar":{"value":64}}],
            "command": {"value": "echo hello"}}]}}],
        "filters": {"refuse_seconds": 60}}}),
    )
    .await
    .unwrap();
    assert_eq!(accept.status(), 202);

    let launch: AgentCommand = serde_json::from_slice(&commands.record().await).unwrap();
    let AgentCommand::Launch { task, .. } = launch else {
        panic!("{launch:?}")
    };
    assert_eq!(task.task_id.as_str(), "hello-1");

    // The agent reports the task running, then finished.
    for (state, uuid) in [("TASK_RUNNING", "dXVpZC0x"), ("TASK_FINISHED", "dXVpZC0y")] {
        let update = http
            .post(format!("{base}/api/v1/agents/{agent_id}/update"))
            .json(&json!({"framework_id": {"value": fw.as_str()},
                "status": {"task_id": {"value": "hello-1"}, "state": state, "uuid": uuid, "source": "SOURCE_EXECUTOR"}}))
            .send().await.unwrap();
        assert_eq!(update.status(), 202);
        let status = events.event().await.update.expect("UPDATE").status;
        assert_eq!(
            (status.state.to_string().as_str(), status.uuid.as_deref()),
            (state, Some(uuid))
        );
        let ack = call(json!({"framework_id": {"value": fw.as_str()}, "type": "ACKNOWLEDGE",
            "acknowledge": {"agent_id": {"value": agent_id}, "task_id": {"value": "hello-1"}, "uuid": uuid}}))
        .await
        .unwrap();
        assert_eq!(ack.status(), 202);
        let acked: AgentCommand = serde_json::from_slice(&commands.record().await).unwrap();
        assert!(
            matches!(acked, AgentCommand::Acknowledged { uuid: ref u, .. } if u == uuid),
            "{acked:?}"
        );
    }

    // The operator saw the task added, running and finished, in Mesos's shapes.
    let added = record(watch.record().await);
    assert_eq!(added["type"], "TASK_ADDED", "{added}");
    let task = &added["task_added"]["task"];
    assert_eq!(
        (task["task_id"]["value"].as_str(), task["state"].as_str()),
        (Some("hello-1"), Some("TASK_STAGING"))
    );
    assert_eq!(task["framework_id"]["value"], fw.as_str());
    assert_eq!(task["agent_id"]["value"], agent_id.as_str());
    assert_eq!(task["resources"][0]["name"], "cpus", "{task}");
    for state in ["TASK_RUNNING", "TASK_FINISHED"] {
        let updated = record(watch.record().await);
        assert_eq!(updated["type"], "TASK_UPDATED", "{updated}");
        assert_eq!(updated["task_updated"]["state"], state);
        assert_eq!(updated["task_updated"]["status"]["task_id"]["value"], "hello-1");
        assert_eq!(updated["task_updated"]["framework_id"]["value"], fw.as_str());
    }
    let second: Value = http
        .post(format!("{base}/api/v1/agents/register"))
        .json(&json!({"agent_info": {"hostname": "node2", "port": 5052,
            "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":1}}]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let added = record(watch.record().await);
    assert_eq!(added["type"], "AGENT_ADDED", "{added}");
    assert_eq!(added["agent_added"]["agent"]["agent_info"]["id"], second["agent_id"]);
    assert_eq!(added["agent_added"]["agent"]["pid"], "slave(1)@node2:5052");
    let got: Value = operator(r#"{"type":"GET_STATE"}"#).await.unwrap().json().await.unwrap();
    let done = &got["get_state"]["get_tasks"]["completed_tasks"][0];
    assert_eq!(
        (done["task_id"]["value"].as_str(), done["state"].as_str()),
        (Some("hello-1"), Some("TASK_FINISHED")),
        "{got}"
    );
    assert_eq!(
        got["get_state"]["get_frameworks"]["frameworks"][0]["framework_info"]["name"],
        "e2e"
    );

    let state: Value = http
        .get(format!("{base}/master/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["slaves"].as_array().unwrap().len(), 2);
    let node1 = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hostname"] == "node1")
        .unwrap();
    assert_eq!(node1["resources"]["cpus"], 2.0);
    assert_eq!(state["frameworks"][0]["completed_tasks"][0]["state"], "TASK_FINISHED");
    assert_eq!(state["frameworks"][0]["name"], "e2e");
}

#[tokio::test]
async fn bad_requests_get_clear_answers_and_the_master_keeps_serving() {
    let master = start().await;
    let base = master.base.clone();
    let http = reqwest::Client::new();
    let post = |path: &str, ctype: &str, body: &str| {
        http.post(format!("{base}{path}"))
            .header("Content-Type", ctype)
            .body(body.to_string())
            .send()
    };
    let cases = [
        (
            "/api/v1/scheduler",
            "application/json",
            "{not json",
            400,
            "Failed to parse body into Call",
        ),
        (
            "/api/v1/scheduler",
            "application/json",
            r#"{"type":"ACCEPT"}"#,
            400,
            "framework_id",
        ),
        ("/api/v1/scheduler", "application/x-protobuf", "x", 415, "not supported"),
        (
            "/api/v1/scheduler",
            "application/json",
            r#"{"framework_id":{"value":"nobody"},"type":"REVIVE"}"#,
            403,
            "not subscribed",
        ),
        (
            "/api/v1/agents/register",
            "application/json",
            r#"{"agent_info":{}}"#,
            400,
            "Failed to parse agent registration",
        ),
        (
            "/api/v1/agents/ghost/update",
            "application/json",
            r#"{"framework_id":{"value":"f"},"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}}"#,
            400,
            "Unknown agent",
        ),
    ];
    for (path, ctype, body, status, says) in cases {
        let r = post(path, ctype, body).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let msg: Value = r.json().await.unwrap();
        assert!(msg["message"].as_str().unwrap().contains(says), "{path}: {msg}");
    }
    // A subscribed framework must present its stream id.
    let sub = post(
        "/api/v1/scheduler",
        "application/json",
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#,
    )
    .await
    .unwrap();
    let mut events = EventStream::new(sub);
    let fw = events.event().await.subscribed.unwrap().framework_id;
    let body = format!(r#"{{"framework_id":{{"value":"{fw}"}},"type":"REVIVE"}}"#);
    let r = post("/api/v1/scheduler", "application/json", &body).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Mesos-Stream-Id"));
    let r = http
        .get(format!("{base}/api/v1/agents/ghost/commands"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn operator_endpoints_for_weights_quota_roles_and_metrics() {
    let master = start().await;
    let base = master.base.clone();
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: &str| {
        http.request(method, format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
    };
    use reqwest::Method;

    assert_eq!(
        send(Method::PUT, "/weights", r#"[{"role":"web","weight":2.5}]"#)
            .await
            .unwrap()
            .status(),
        200
    );
    let w: Value = http
        .get(format!("{base}/weights"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(w, json!([{"role": "web", "weight": 2.5}]));
    // All or nothing: one bad entry changes nothing.
    let r = send(
        Method::PUT,
        "/weights",
        r#"[{"role":"ops","weight":3},{"role":"bad role","weight":1}]"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(Method::PUT, "/weights", r#"[{"role":"ops","weight":-1}]"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let w: Value = http
        .get(format!("{base}/weights"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(w.as_array().unwrap().len(), 1, "{w}");

    // Mesos's weight rules (issue 18): normal and positive, each role once.
    for bad in [
        r#"[{"role":"ops","weight":1e-320}]"#,
        r#"[{"role":"ops","weight":1},{"role":"ops","weight":2}]"#,
    ] {
        assert_eq!(send(Method::PUT, "/weights", bad).await.unwrap().status(), 400, "{bad}");
    }

    // Mesos's quota rules (issue 18): not for `*`, each resource once, and
    // within the cluster's capacity unless forced.
    let cpus = |n: u32| format!(r#"{{"name":"cpus","type":"SCALAR","scalar":{{"value":{n}}}}}"#);
    let star = format!(r#"{{"role":"*","guarantee":[{}]}}"#, cpus(1));
    assert_eq!(send(Method::POST, "/quota", &star).await.unwrap().status(), 400);
    let twice = format!(r#"{{"role":"dev","guarantee":[{},{}]}}"#, cpus(1), cpus(1));
    assert_eq!(send(Method::POST, "/quota", &twice).await.unwrap().status(), 400);
    let huge = format!(r#"{{"role":"dev","guarantee":[{}]}}"#, cpus(1_000_000));
    let r = send(Method::POST, "/quota", &huge).await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("force"));
    let forced = format!(r#"{{"role":"big","force":true,"guarantee":[{}]}}"#, cpus(1_000_000));
    assert_eq!(send(Method::POST, "/quota", &forced).await.unwrap().status(), 200);
    assert_eq!(
        http.delete(format!("{base}/quota/big")).send().await.unwrap().status(),
        200
    );
    // An agent brings the capacity the next guarantee needs.
    http.post(format!("{base}/api/v1/agents/register"))
        .json(&json!({"agent_info": {"hostname": "node1", "port": 5051,
            "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]}}))
        .send()
        .await
        .unwrap();

    let quota = r#"{"role":"dev","guarantee":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}],
                    "limit":[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]}"#;
    assert_eq!(send(Method::POST, "/quota", quota).await.unwrap().status(), 200);
    let q: Value = http
        .get(format!("{base}/quota"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["infos"][0]["role"], "dev");
    assert_eq!(q["infos"][0]["limit"][0]["scalar"]["value"], 2.0);
    let too_much = r#"{"role":"dev","guarantee":[{"name":"cpus","type":"SCALAR","scalar":{"value":3}}],
                       "limit":[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]}"#;
    let r = send(Method::POST, "/quota", too_much).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("exceeds its limit"));

    let roles: Value = http
        .get(format!("{base}/roles"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"web") && names.contains(&"dev"), "{roles}");

    assert_eq!(
        http.delete(format!("{base}/quota/dev")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.delete(format!("{base}/quota/dev")).send().await.unwrap().status(),
        404
    );

    let m: Value = http
        .get(format!("{base}/metrics/snapshot"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "master/slaves_active",
        "master/frameworks_active",
        "master/tasks_running",
        "master/cpus_total",
        "master/uptime_secs",
    ] {
        assert!(m.get(key).is_some(), "{key} missing from {m}");
    }
}

#[tokio::test]
async fn new_agents_trigger_an_allocation_and_a_failover_ends_the_old_stream() {
    // A long interval: offers must come from the event, not the tick.
    let master = start_with(Duration::from_secs(60)).await;
    let base = master.base.clone();
    let http = reqwest::Client::new();
    let subscribe = |id: Option<String>| {
        let info = match id {
            Some(id) => format!(r#"{{"user":"u","name":"n","id":{{"value":"{id}"}},"failover_timeout":60}}"#),
            None => r#"{"user":"u","name":"n","failover_timeout":60}"#.to_string(),
        };
        http.post(format!("{base}/api/v1/scheduler"))
            .header("Content-Type", "application/json")
            .body(format!(
                r#"{{"type":"SUBSCRIBE","subscribe":{{"framework_info":{info}}}}}"#
            ))
            .send()
    };
    let first = subscribe(None).await.unwrap();
    let mut old = EventStream::new(first);
    let fw = old.event().await.subscribed.unwrap().framework_id;
    // Let the first tick pass, then register an agent.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    http.post(format!("{base}/api/v1/agents/register"))
        .json(&json!({"agent_info": {"hostname": "n1", "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":1}},{"name":"mem","type":"SCALAR","scalar":{"value":64}}]}}))
        .send()
        .await
        .unwrap();
    let offers = old.event().await;
    assert_eq!(offers.kind, EventType::Offers);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "offers after {:?}",
        started.elapsed()
    );

    // Another scheduler instance takes over the framework id.
    let second = subscribe(Some(fw.to_string())).await.unwrap();
    assert_eq!(second.status(), 200);
    let mut new = EventStream::new(second);
    assert_eq!(new.event().await.subscribed.unwrap().framework_id, fw);
    let mut last = old.event().await;
    while last.kind == EventType::Rescind {
        last = old.event().await;
    }
    assert_eq!(
        last.error.expect("ERROR on the old stream").message,
        "Framework failed over"
    );
}

#[tokio::test]
async fn commands_for_a_disconnected_agent_wait_for_it() {
    // Regression: a KILL sent while the agent's command stream was closed
    // (the agent restarting) was dropped, and the task ran on.
    let master = start().await;
    let base = master.base.clone();
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{base}/api/v1/agents/register"))
        .json(&json!({"agent_info": {"hostname": "n1", "resources": [
            {"name":"cpus","type":"SCALAR","scalar":{"value":1}},{"name":"mem","type":"SCALAR","scalar":{"value":64}}]}}))
        .send().await.unwrap().json().await.unwrap();
    let agent_id = reg["agent_id"]["value"].as_str().unwrap().to_string();
    let sub = http
        .post(format!("{base}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .body(r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#)
        .send()
        .await
        .unwrap();
    let stream_id = sub.headers()["Mesos-Stream-Id"].to_str().unwrap().to_string();
    let mut events = EventStream::new(sub);
    let fw = events.event().await.subscribed.unwrap().framework_id;
    let offer = events.event().await.offers.unwrap().offers.remove(0);
    let call = |body: Value| {
        http.post(format!("{base}/api/v1/scheduler"))
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &stream_id)
            .body(body.to_string())
            .send()
    };
    // Launched and killed while no command stream is open.
    call(
        json!({"framework_id": {"value": fw.as_str()}, "type": "ACCEPT", "accept": {
        "offer_ids": [{"value": offer.id.as_str()}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{"name": "t", "task_id": {"value": "t"},
            "agent_id": {"value": agent_id}, "resources": [{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],
            "command": {"value": "sleep 60"}}]}}]}}),
    )
    .await
    .unwrap();
    call(json!({"framework_id": {"value": fw.as_str()}, "type": "KILL", "kill": {"task_id": {"value": "t"}}}))
        .await
        .unwrap();

    let commands = http
        .get(format!("{base}/api/v1/agents/{agent_id}/commands"))
        .send()
        .await
        .unwrap();
    let mut commands = EventStream::new(commands);
    let first: AgentCommand = serde_json::from_slice(&commands.record().await).unwrap();
    let second: AgentCommand = serde_json::from_slice(&commands.record().await).unwrap();
    assert!(matches!(first, AgentCommand::Launch { .. }), "{first:?}");
    assert!(
        matches!(second, AgentCommand::Kill { ref task_id, .. } if task_id.as_str() == "t"),
        "{second:?}"
    );
}

/// The same framework code against both `MasterClient`s: in-process and HTTP.
async fn drive_client(client: &dyn orchestrator_mesos::MasterClient, name: &str) {
    use orchestrator_mesos::api::scheduler::Call;
    let call = |v: Value| serde_json::from_value::<Call>(v).expect("call JSON");
    let mut sub = client
        .subscribe(call(
            json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": name}}}),
        ))
        .await
        .expect("subscribe");
    assert_eq!(sub.subscribed.framework_id, sub.framework_id);
    let fw = sub.framework_id.clone();
    let offers = loop {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.events.recv())
            .await
            .expect("an event within 10 s")
            .expect("stream open");
        if let Some(o) = e.offers {
            break o.offers;
        }
    };
    assert!(!offers.is_empty());
    let ids: Vec<Value> = offers.iter().map(|o| json!(o.id)).collect();
    client
        .call(call(json!({"framework_id": fw, "type": "DECLINE", "decline": {"offer_ids": ids, "filters": {"refuse_seconds": 60}}})))
        .await
        .expect("decline");
    // Refused calls come back as errors, the subscription keeps working.
    let bad = client
        .call(call(json!({"framework_id": {"value": "ghost"}, "type": "REVIVE"})))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not subscribed"), "{bad}");
    client
        .call(call(json!({"framework_id": fw, "type": "SUPPRESS"})))
        .await
        .expect("suppress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frameworks_use_the_master_in_process_or_over_http_through_one_client_trait() {
    let master = start().await;
    let (handle, addr) = (master.handle.clone(), master.addr.clone());
    reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/agents/register"))
        .json(&json!({"agent_info": {"hostname": "node1", "resources": [
            {"name":"cpus","type":"SCALAR","scalar":{"value":4}},
            {"name":"mem","type":"SCALAR","scalar":{"value":1024}}]}}))
        .send()
        .await
        .unwrap();
    drive_client(&handle, "in-process").await;
    drive_client(
        &orchestrator_mesos::HttpMasterClient::new(&addr.to_string()),
        "over-http",
    )
    .await;
    // A master that is not there is a transport error, not a hang.
    let gone = orchestrator_mesos::HttpMasterClient::new("127.0.0.1:1");
    let e = orchestrator_mesos::MasterClient::subscribe(
        &gone,
        serde_json::from_value(
            json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}}),
        )
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().starts_with("subscribe:"), "{e}");
}
