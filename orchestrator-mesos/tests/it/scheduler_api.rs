//! The v1 scheduler API wire layer against the JSON Mesos frameworks send.

use std::time::Duration;

use orchestrator_core::{FrameworkId, TaskId, TaskState, TaskStatus};
use orchestrator_mesos::api::recordio::{self, Decoder};
use orchestrator_mesos::api::scheduler::{
    Call, Event, Filters, OfferOperation, SchedulerCall, Subscribed, DEFAULT_REFUSE, MAX_REFUSE,
};
use proptest::prelude::*;

fn validate(json: &str) -> Result<(Option<FrameworkId>, SchedulerCall), String> {
    Call::from_json(json.as_bytes())
        .and_then(Call::validate)
        .map_err(|e| e.to_string())
}

#[test]
fn subscribe_as_the_mesos_docs_show_it() {
    let (id, call) = validate(
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"foo","name":"Example HTTP Framework",
            "roles":["test"],"capabilities":[{"type":"MULTI_ROLE"}]}}}"#,
    )
    .unwrap();
    assert_eq!(id, None);
    let SchedulerCall::Subscribe(s) = call else {
        panic!("{call:?}")
    };
    assert_eq!(s.framework_info.effective_roles(), vec!["test"]);
    // Re-subscription: the ids must agree.
    let err = validate(
        r#"{"framework_id":{"value":"a"},"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","id":{"value":"b"}}}}"#,
    )
    .unwrap_err();
    assert!(err.contains("differs"), "{err}");
}

#[test]
fn accept_with_launch_and_filters() {
    let (id, call) = validate(
        r#"{"framework_id":{"value":"12220-3440-12532-2345"},"type":"ACCEPT","accept":{
            "offer_ids":[{"value":"12220-3440-12532-O12"}],
            "operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"my-task"},
               "agent_id":{"value":"S1233"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],
               "command":{"value":"sleep 10"}}]}},
              {"type":"RESERVE","reserve":{"resources":[{"name":"mem","type":"SCALAR","scalar":{"value":32},
               "reservations":[{"type":"DYNAMIC","role":"test","principal":"ops"}]}]}}],
            "filters":{"refuse_seconds":30.0}}}"#,
    )
    .unwrap();
    assert_eq!(id.unwrap().as_str(), "12220-3440-12532-2345");
    let SchedulerCall::Accept {
        offer_ids,
        operations,
        refuse,
    } = call
    else {
        panic!()
    };
    assert_eq!(offer_ids.len(), 1);
    assert_eq!(refuse, Duration::from_secs(30));
    let OfferOperation::Launch(tasks) = &operations[0] else {
        panic!()
    };
    assert_eq!(tasks[0].task_id.as_str(), "my-task");
    let OfferOperation::Reserve(r) = &operations[1] else {
        panic!()
    };
    assert_eq!(r.reserved_for("test").mem(), 32.0);
}

#[test]
fn the_other_calls() {
    let f = r#""framework_id":{"value":"f"}"#;
    let ok = |body: String| validate(&body).unwrap().1;
    assert!(matches!(
        ok(format!(r#"{{{f},"type":"DECLINE","decline":{{"offer_ids":[{{"value":"o"}}]}}}}"#)),
        SchedulerCall::Decline { refuse, .. } if refuse == DEFAULT_REFUSE
    ));
    assert_eq!(ok(format!(r#"{{{f},"type":"REVIVE"}}"#)), SchedulerCall::Revive(vec![]));
    assert_eq!(
        ok(format!(r#"{{{f},"type":"SUPPRESS","suppress":{{"roles":["a"]}}}}"#)),
        SchedulerCall::Suppress(vec!["a".into()])
    );
    assert!(matches!(
        ok(format!(r#"{{{f},"type":"KILL","kill":{{"task_id":{{"value":"t"}}}}}}"#)),
        SchedulerCall::Kill(_)
    ));
    assert!(matches!(
        ok(format!(
            r#"{{{f},"type":"ACKNOWLEDGE","acknowledge":{{"agent_id":{{"value":"a"}},"task_id":{{"value":"t"}},"uuid":"jhadf73jhakdlfha723adf"}}}}"#
        )),
        SchedulerCall::Acknowledge(a) if a.uuid == "jhadf73jhakdlfha723adf"
    ));
    assert_eq!(
        ok(format!(r#"{{{f},"type":"RECONCILE","reconcile":{{}}}}"#)),
        SchedulerCall::Reconcile(vec![])
    );
    assert_eq!(ok(format!(r#"{{{f},"type":"TEARDOWN"}}"#)), SchedulerCall::Teardown);
}

#[test]
fn bad_calls_get_mesos_style_messages() {
    for (body, says) in [
        (r#"{"type":"TEARDOWN"}"#, "Expecting 'framework_id' to be present"),
        (
            r#"{"framework_id":{"value":"f"},"type":"ACCEPT"}"#,
            "Expecting 'accept' to be present",
        ),
        (
            r#"{"framework_id":{"value":"f"},"type":"ACCEPT","accept":{"offer_ids":[],"operations":[{"type":"LAUNCH"}]}}"#,
            "Expecting 'launch'",
        ),
        (
            r#"{"framework_id":{"value":"f"},"type":"ACCEPT","accept":{"offer_ids":[],"operations":[{"type":"CREATE"}]}}"#,
            "Unsupported offer operation",
        ),
        (
            r#"{"framework_id":{"value":"f"},"type":"FLY"}"#,
            "Unsupported scheduler call type",
        ),
        (r#"{"type":"SUBSCRIBE"}"#, "Expecting 'subscribe'"),
        (r#"{"type":"SUBSCRIBE""#, "Failed to parse body into Call"),
        (
            r#"{"framework_id":{"value":""},"type":"TEARDOWN"}"#,
            "must not be empty",
        ),
        (r#"[]"#, "Failed to parse body into Call"),
    ] {
        let err = validate(body).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[test]
fn refuse_seconds_follow_mesos() {
    let f = |s: Option<f64>| Filters::refuse(Some(&Filters { refuse_seconds: s }));
    assert_eq!(Filters::refuse(None), DEFAULT_REFUSE);
    assert_eq!(f(None), DEFAULT_REFUSE);
    assert_eq!(f(Some(0.0)), Duration::ZERO);
    assert_eq!(f(Some(-3.0)), DEFAULT_REFUSE);
    assert_eq!(f(Some(f64::NAN)), DEFAULT_REFUSE);
    assert_eq!(f(Some(f64::INFINITY)), MAX_REFUSE);
    assert_eq!(f(Some(1e12)), MAX_REFUSE);
    assert_eq!(f(Some(2.5)), Duration::from_millis(2500));
}

#[test]
fn events_encode_as_mesos_sends_them() {
    let subscribed = Event::subscribed(Subscribed {
        framework_id: FrameworkId::new("f1").unwrap(),
        heartbeat_interval_seconds: Some(15.0),
        master_info: None,
    });
    assert_eq!(
        serde_json::to_string(&subscribed).unwrap(),
        r#"{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"f1"},"heartbeat_interval_seconds":15.0}}"#
    );
    assert_eq!(
        serde_json::to_string(&Event::heartbeat()).unwrap(),
        r#"{"type":"HEARTBEAT"}"#
    );
    let mut status = TaskStatus::new(TaskId::new("t").unwrap(), TaskState::Running);
    status.uuid = Some("AAEC".into());
    let update = Event::update(status);
    assert_eq!(
        serde_json::to_string(&update).unwrap(),
        r#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"AAEC"}}}"#
    );
    // Framed for the stream and read back by a client.
    let mut stream = subscribed.to_record();
    stream.extend(update.to_record());
    stream.extend(Event::error("Framework has been removed").to_record());
    let records = Decoder::new(1 << 20).push(&stream).unwrap();
    let events: Vec<Event> = records.iter().map(|r| serde_json::from_slice(r).unwrap()).collect();
    assert_eq!(events[0], subscribed);
    assert_eq!(events[1], update);
    assert_eq!(events[2].error.as_ref().unwrap().message, "Framework has been removed");
    assert!(recordio::encode(b"x").starts_with(b"1\n"));
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Call::from_json(&body).and_then(Call::validate);
    }

    #[test]
    fn near_valid_json_never_panics(kind in "[A-Z_]{0,12}", field in "[a-z_]{0,10}") {
        let body = format!(r#"{{"framework_id":{{"value":"f"}},"type":"{kind}","{field}":{{}}}}"#);
        let _ = validate(&body);
    }
}
