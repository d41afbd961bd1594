//! Structure-aware fuzzing of the core decoders that take network input
//! (testkit's `fuzz`: samples from `fuzz/corpus/`, mutated): resource text
//! and JSON, and (with the `report` feature) the probes' report codec. They
//! may refuse anything; they must never panic, and what they accept must
//! hold together.

use orchestrator_testkit::fuzz;
use proptest::prelude::*;

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn resource_text_never_panics_and_what_parses_is_consistent(bytes in fuzz::mutated(fuzz::corpus("resources"))) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(r) = text.parse::<orchestrator_core::Resources>() {
            prop_assert!(r.contains(&r));
            // What parses goes over the wire (v1 JSON) and back unchanged.
            let wire = serde_json::to_string(&r).expect("resources serialise");
            let back: orchestrator_core::Resources = serde_json::from_str(&wire).expect("serialised resources parse");
            prop_assert_eq!(&back, &r);
            // The flag form prints back to itself. (Names from the JSON form
            // may hold characters the flag form cannot write, as in Mesos.)
            if !text.trim_start().starts_with('[') {
                let again: orchestrator_core::Resources = r.to_string().parse().expect("printed resources parse");
                prop_assert_eq!(again, r);
            }
        }
    }
}

#[cfg(feature = "report")]
mod report {
    use orchestrator_core::report::{decode, encode, Limits, Metric, Node, Report, TopologyKind};
    use orchestrator_testkit::fuzz;
    use proptest::prelude::*;

    /// Encoded reports of a few shapes: the codec's corpus is made, not
    /// stored, because it is gzip and MessagePack and must track the format.
    fn samples() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in [0usize, 1, 5] {
            let mut r = Report::new("probe-1", "host-1", 1_700_000_000_000);
            for i in 0..n {
                let mut node = Node::default();
                node.set_latest("name", format!("proc-{i}"), 1);
                node.add_to_set("ips", "10.0.0.1");
                node.adjacency.insert(format!("other-{i}"));
                node.metrics.insert("cpu".into(), Metric::sample(1, i as f64));
                r.topologies
                    .get_mut(TopologyKind::ALL[i % TopologyKind::ALL.len()])
                    .insert(format!("id-{i}"), node);
            }
            out.push(encode(&r).expect("encodes"));
        }
        out
    }

    proptest! {
        #![proptest_config(fuzz::config())]

        #[test]
        fn the_report_codec_never_panics(bytes in fuzz::mutated(samples())) {
            let limits = Limits::default();
            if let Ok(r) = decode(&bytes, limits) {
                // What decodes encodes again and decodes to the same.
                let again = decode(&encode(&r).expect("encodes"), limits).expect("re-decodes");
                prop_assert_eq!(again, r);
            }
        }
    }
}
