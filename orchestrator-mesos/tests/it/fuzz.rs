//! Structure-aware fuzzing of the decoders that take network input
//! (testkit's `fuzz`: samples from `fuzz/corpus/`, mutated): RecordIO
//! framing, scheduler calls, the agents' messages and Marathon app JSON.
//! They may refuse anything; they must never panic, and what they accept
//! must be safe to act on.

use std::collections::BTreeMap;
use std::time::Instant;

use orchestrator_core::{AgentId, Attributes, FrameworkId, Offer, OfferId};
use orchestrator_mesos::api::recordio::{encode, Decoder};
use orchestrator_mesos::api::scheduler::Call;
use orchestrator_mesos::marathon::matcher::match_offer;
use orchestrator_mesos::marathon::{AppDefinition, Scheduler};
use orchestrator_mesos::{AgentUpdate, RegisterAgent, ReregisterAgent};
use orchestrator_testkit::fuzz;
use proptest::prelude::*;

fn huge_offer() -> Offer {
    Offer {
        id: OfferId::new("o").unwrap(),
        framework_id: FrameworkId::new("f").unwrap(),
        agent_id: AgentId::new("a").unwrap(),
        hostname: "h".into(),
        resources: "cpus:100000;mem:100000000;disk:100000000;ports:[1-65535]"
            .parse()
            .unwrap(),
        attributes: Attributes::default(),
        executor_ids: Vec::new(),
    }
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn recordio_never_panics_and_round_trips_what_it_reads(
        bytes in fuzz::mutated(fuzz::corpus("recordio")),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut d = Decoder::new(1 << 10);
        let at = cut.index(bytes.len() + 1);
        let mut records = Vec::new();
        for chunk in [&bytes[..at], &bytes[at..]] {
            match d.push(chunk) {
                Ok(r) => records.extend(r),
                Err(_) => return Ok(()),
            }
        }
        // What was read frames and reads back to the same records.
        let framed: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
        prop_assert_eq!(Decoder::new(1 << 10).push(&framed).expect("framed records read"), records);
    }

    #[test]
    fn scheduler_calls_never_panic(bytes in fuzz::mutated(fuzz::corpus("scheduler_call"))) {
        let _ = Call::from_json(&bytes).and_then(Call::validate);
    }

    #[test]
    fn agent_messages_never_panic(bytes in fuzz::mutated(fuzz::corpus("agent_json"))) {
        let _ = serde_json::from_slice::<RegisterAgent>(&bytes);
        let _ = serde_json::from_slice::<ReregisterAgent>(&bytes);
        let _ = serde_json::from_slice::<AgentUpdate>(&bytes);
    }

    /// The app that once took the scheduler down came through here: what
    /// the API accepts must be safe to schedule, on an offer of any size.
    #[test]
    fn accepted_apps_are_safe_to_schedule(bytes in fuzz::mutated(fuzz::corpus("app_json"))) {
        let Ok(app) = AppDefinition::from_json(&bytes) else { return Ok(()) };
        prop_assert!(app.validate().is_ok());
        let mut s = Scheduler::new();
        if s.put_app(app, "v1", "d1", true).is_err() {
            return Ok(());
        }
        let now = Instant::now();
        let wanted: Vec<(AppDefinition, u32)> =
            s.launches_wanted(now).into_iter().map(|(a, n)| (a.clone(), n)).collect();
        let refs: Vec<(&AppDefinition, u32)> = wanted.iter().map(|(a, n)| (a, *n)).collect();
        let placed = BTreeMap::new();
        let launches = match_offer(&huge_offer(), &refs, &placed, |a| s.next_task_id(a));
        prop_assert!(launches.len() <= orchestrator_mesos::marathon::matcher::MAX_LAUNCHES_PER_OFFER);
    }
}
