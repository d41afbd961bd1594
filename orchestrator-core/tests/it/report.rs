//! Laws of report merging (commutative, associative, idempotent) and the
//! wire codec's handling of bad input, checked with proptest.

use orchestrator_core::report::{
    decode, encode, encode_merged, Limits, Metric, Node, NodeControls, Report, ReportError, Sample, Topologies,
    TopologyKind,
};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["name", "state", "image"];
const IDS: [&str; 4] = ["a", "b", "c", "d"];

fn node() -> impl Strategy<Value = Node> {
    let latest = prop::collection::vec((0usize..3, 0u64..5, 0u8..3), 0..4);
    let sets = prop::collection::vec((0usize..2, 0usize..4), 0..3);
    let adjacency = prop::collection::vec(0usize..4, 0..3);
    let parents = prop::collection::vec((0usize..7, 0usize..4), 0..2);
    let metrics = prop::collection::vec((0usize..2, prop::collection::vec((0u64..40, -3i32..3), 1..40)), 0..2);
    let controls = prop::option::of((0u64..3, prop::collection::btree_set(0usize..4, 0..3)));
    (latest, sets, adjacency, parents, metrics, controls).prop_map(|(latest, sets, adj, parents, metrics, controls)| {
        let mut n = Node::default();
        for (k, ts, v) in latest {
            // Same key and time may carry different values in different
            // reports: the tie must still resolve the same way everywhere.
            n.set_latest(KEYS[k], format!("v{v}"), ts);
        }
        for (k, v) in sets {
            n.add_to_set(KEYS[k], IDS[v]);
        }
        for a in adj {
            n.adjacency.insert(IDS[a].to_string());
        }
        for (k, id) in parents {
            n.parents
                .entry(TopologyKind::ALL[k])
                .or_default()
                .insert(IDS[id].to_string());
        }
        for (k, samples) in metrics {
            let mut m: Option<Metric> = None;
            for (ts, v) in samples {
                let one = Metric::sample(ts, f64::from(v));
                match &mut m {
                    Some(m) => m.merge(&one),
                    None => m = Some(one),
                }
            }
            if let Some(m) = m {
                n.metrics.insert(KEYS[k].to_string(), m);
            }
        }
        n.controls = controls.map(|(ts, ids)| NodeControls {
            ts,
            ids: ids.into_iter().map(|i| IDS[i].to_string()).collect(),
        });
        n
    })
}

fn report() -> impl Strategy<Value = Report> {
    let nodes = prop::collection::vec((0usize..7, 0usize..4, node()), 0..6);
    (0u64..4, 0u64..3, any::<bool>(), nodes).prop_map(|(ts, seq, full, nodes)| {
        let mut r = Report::new("p", "h", ts);
        r.header.seq = seq;
        r.header.full = full;
        for (kind, id, n) in nodes {
            r.topologies
                .get_mut(TopologyKind::ALL[kind])
                .insert(IDS[id].to_string(), n);
        }
        r
    })
}

fn merged(a: &Report, b: &Report) -> Report {
    let mut out = a.clone();
    out.merge(b);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_commutative(a in report(), b in report()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in report(), b in report(), c in report()) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent(a in report(), b in report()) {
        prop_assert_eq!(merged(&a, &a), a.clone());
        let ab = merged(&a, &b);
        prop_assert_eq!(merged(&ab, &b), ab.clone());
    }

    #[test]
    fn previous_plus_delta_is_the_new_report(before in report(), now in report()) {
        let delta = now.delta_since(&before);
        // What the app holds: the previous report with the changed nodes
        // replaced. Every node of `now` is in it exactly as `now` has it.
        let mut held = before.topologies.clone();
        for (kind, t) in delta.topologies.iter() {
            for (id, n) in &t.nodes {
                held.get_mut(kind).nodes.insert(id.clone(), n.clone());
            }
        }
        for (kind, t) in now.topologies.iter() {
            for (id, n) in &t.nodes {
                prop_assert_eq!(held.get(kind).nodes.get(id), Some(n));
            }
        }
        prop_assert!(!delta.header.full);
    }

    #[test]
    fn encoding_parts_is_encoding_their_merge(a in report(), b in report(), c in report()) {
        let all = merged(&merged(&a, &b), &c);
        let bytes = encode_merged(&all.header, &[&a.topologies, &b.topologies, &c.topologies]).unwrap();
        prop_assert_eq!(bytes, encode(&all).unwrap());
    }

    #[test]
    fn a_refresh_merges_what_the_delta_of_the_settled_refresh_holds(before in report(), now in report()) {
        let mut fresh = now.clone();
        let mut pending = Report::new("p", "h", 0);
        pending.merge_refresh(&mut fresh, &before);
        prop_assert_eq!(&fresh.delta_since(&before).topologies, &pending.topologies);
        // Settling changed no value, only when unchanged ones were first seen.
        for (kind, t) in now.topologies.iter() {
            for (id, n) in &t.nodes {
                let settled = &fresh.topologies.get(kind).nodes[id];
                prop_assert_eq!(settled.latest.keys().collect::<Vec<_>>(), n.latest.keys().collect::<Vec<_>>());
                for (k, l) in &n.latest {
                    prop_assert_eq!(&settled.latest[k].value, &l.value);
                }
            }
        }
    }

    #[test]
    fn a_patch_of_the_changes_is_a_refresh(before in report(), now in report()) {
        // What a collector that keeps state writes: the nodes that differ,
        // and the ids that are gone.
        let mut patch = Report::new("p", "h", now.header.ts);
        patch.header = now.header.clone();
        let mut gone = Vec::new();
        for (kind, t) in now.topologies.iter() {
            let was = before.topologies.get(kind);
            for (id, n) in &t.nodes {
                if was.nodes.get(id) != Some(n) {
                    patch.topologies.get_mut(kind).insert(id.clone(), n.clone());
                }
            }
            gone.extend(was.nodes.keys().filter(|id| !t.nodes.contains_key(*id)).map(|id| (kind, id.clone())));
        }
        let (mut fresh, mut refreshed) = (now.clone(), Report::new("p", "h", 0));
        refreshed.merge_refresh(&mut fresh, &before);
        let (mut part, mut patched) = (before.clone(), Report::new("p", "h", 0));
        patched.merge_patch(&mut part, patch, &gone);
        prop_assert_eq!(&part.header, &fresh.header);
        for (kind, t) in fresh.topologies.iter() {
            prop_assert_eq!(&part.topologies.get(kind).nodes, &t.nodes);
            prop_assert_eq!(&patched.topologies.get(kind).nodes, &refreshed.topologies.get(kind).nodes);
        }
    }

    #[test]
    fn codec_round_trips(r in report()) {
        let bytes = encode(&r).unwrap();
        prop_assert_eq!(decode(&bytes, Limits::default()).unwrap(), r);
    }

    #[test]
    fn codec_rejects_garbage_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(decode(&bytes, Limits::default()).is_err());
    }

    #[test]
    fn codec_rejects_corrupted_reports_without_panicking(r in report(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&r).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // Either an error or (a flipped bit the checksum cannot see is
        // impossible with gzip's CRC, but the header's flag bits) a report.
        let _ = decode(&bytes, Limits::default());
    }
}

#[test]
fn metric_keeps_the_newest_samples_and_the_extremes() {
    let mut m = Metric::sample(0, 5.0);
    for ts in 1..100 {
        m.merge(&Metric::sample(ts, ts as f64));
    }
    assert_eq!(m.samples.len(), orchestrator_core::report::MAX_SAMPLES);
    assert_eq!(m.last(), Some(Sample { ts: 99, value: 99.0 }));
    assert_eq!((m.min, m.max), (1.0, 99.0));
}

#[test]
fn codec_refuses_oversized_bombs_and_foreign_versions() {
    let mut r = Report::new("p", "h", 1);
    for i in 0..20_000 {
        r.topologies.process.insert(
            format!("h;{i}"),
            Node::default().with_latest("cmdline", "x".repeat(100), 1),
        );
    }
    let bytes = encode(&r).unwrap();
    // Compresses well: a small report on the wire, large when decoded.
    assert!(bytes.len() < 400_000, "{} bytes", bytes.len());
    let small = Limits {
        max_encoded: 16 << 20,
        max_decoded: 1 << 20,
    };
    assert!(matches!(
        decode(&bytes, small),
        Err(ReportError::TooLarge { what: "decoded", .. })
    ));
    let tiny = Limits {
        max_encoded: 1000,
        max_decoded: 1 << 30,
    };
    assert!(matches!(
        decode(&bytes, tiny),
        Err(ReportError::TooLarge { what: "encoded", .. })
    ));
    let mut future = bytes.clone();
    future[4] = 9;
    let e = decode(&future, Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "report wire version 9 is not supported (this build reads 1)"
    );
    assert!(matches!(
        decode(b"{\"json\": true}", Limits::default()),
        Err(ReportError::NotAReport)
    ));
    let mut truncated = bytes;
    truncated.truncate(100);
    assert!(matches!(
        decode(&truncated, Limits::default()),
        Err(ReportError::Malformed(_))
    ));
    assert_eq!(Topologies::default().node_count(), 0);
}

/// Issue 18: a gzip bomb was decompressed whole (256 MiB, buffered twice
/// over) before it was refused. Now it is decoded as it decompresses.
#[test]
fn gzip_bombs_are_refused_as_they_decompress() {
    use std::io::Write;
    let bomb = |prefix: &[u8], zeros: usize| {
        let mut out = b"ORPT\x01\x01".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(prefix).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..zeros >> 20 {
            gz.write_all(&chunk).unwrap();
        }
        out.extend(gz.finish().unwrap());
        out
    };
    let limits = Limits {
        max_encoded: 16 << 20,
        max_decoded: 1 << 20,
    };
    // 256 MiB of zeros in ~250 KB: not MessagePack from the first byte.
    let zeros = bomb(b"", 256 << 20);
    assert!(zeros.len() < 400_000, "{}", zeros.len());
    assert!(matches!(decode(&zeros, limits), Err(ReportError::Malformed(_))));
    // A map whose first key claims 2 GiB: read up to the limit, no further.
    let string = bomb(&[0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff], 64 << 20);
    assert!(matches!(
        decode(&string, limits),
        Err(ReportError::TooLarge { what: "decoded", .. })
    ));
    // A whole report with bytes after it is not a report.
    let mut r = Report::new("p", "h", 1);
    r.header.seq = 3;
    let mut plain = Vec::new();
    rmp_serde::encode::write_named(&mut plain, &r).unwrap();
    plain.push(0);
    let trailing = bomb(&plain, 0);
    assert!(matches!(decode(&trailing, limits), Err(ReportError::Malformed(_))));
}

#[test]
fn a_refresh_merges_only_what_changed_and_keeps_first_seen_times() {
    let mut previous = Report::new("p", "h", 1_000);
    let same = Node::default().with_latest("state", "ESTABLISHED", 1_000);
    previous.topologies.endpoint.insert("h;a".into(), same.clone());
    previous
        .topologies
        .endpoint
        .insert("h;b".into(), Node::default().with_latest("state", "SYN_SENT", 1_000));
    previous.topologies.endpoint.insert("h;gone".into(), same.clone());

    let mut fresh = Report::new("p", "h", 2_000);
    fresh
        .topologies
        .endpoint
        .insert("h;a".into(), Node::default().with_latest("state", "ESTABLISHED", 2_000));
    fresh
        .topologies
        .endpoint
        .insert("h;b".into(), Node::default().with_latest("state", "ESTABLISHED", 2_000));
    fresh
        .topologies
        .endpoint
        .insert("h;c".into(), Node::default().with_latest("state", "LISTEN", 2_000));

    let mut pending = Report::new("p", "h", 0);
    pending.header.full = false;
    pending.merge_refresh(&mut fresh, &previous);
    let changed: Vec<&String> = pending.topologies.endpoint.nodes.keys().collect();
    assert_eq!(changed, ["h;b", "h;c"], "the unchanged node stays out");
    // The value seen again keeps the time it was first seen.
    assert_eq!(fresh.topologies.endpoint.nodes["h;a"], same);
    assert_eq!(pending.topologies.endpoint.nodes["h;b"].latest["state"].ts, 2_000);
    assert_eq!((pending.header.ts, pending.header.full), (2_000, false));
    // The same as the delta of the settled refresh.
    assert_eq!(fresh.delta_since(&previous).topologies, pending.topologies);
}
