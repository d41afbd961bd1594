//! Algebraic laws of resource arithmetic, checked with proptest.
//!
//! Ranges and sets are sets of items, so the round-trip law is stated for
//! `a` and `b` whose items are disjoint, as resources drawn from one agent are.

use orchestrator_core::{Ranges, Reservation, Resource, Resources, Scalar, Value};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];
const ROLES: [&str; 3] = ["*", "web", "web/api"];

/// Who owns one port or set item: nobody, `a` or `b`.
fn owners(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..3, n)
}

fn build(scalars: &[(usize, usize, i64)], ports: &[u8], items: &[u8], side: u8) -> Resources {
    let mut r = Resources::new();
    for &(name, role, millis) in scalars {
        let mut res = Resource::new(NAMES[name], Value::Scalar(Scalar::from_millis(millis)));
        if ROLES[role] != "*" {
            res = res.reserved(Reservation::fixed(ROLES[role]));
        }
        r.push(res);
    }
    let pairs: Vec<(u64, u64)> = ports
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == side)
        .map(|(i, _)| (31000 + i as u64, 31000 + i as u64))
        .collect();
    r.push(Resource::ranges("ports", Ranges::new(pairs).unwrap()));
    let set: Vec<String> = items
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == side)
        .map(|(i, _)| format!("item{i}"))
        .collect();
    r.push(Resource::set("zones", set));
    r
}

fn scalars() -> impl Strategy<Value = Vec<(usize, usize, i64)>> {
    prop::collection::vec((0..NAMES.len(), 0..ROLES.len(), 0i64..10_000_000), 0..6)
}

/// Two resource collections with disjoint ports and set items.
fn disjoint_pair() -> impl Strategy<Value = (Resources, Resources)> {
    (scalars(), scalars(), owners(64), owners(12))
        .prop_map(|(sa, sb, ports, items)| (build(&sa, &ports, &items, 1), build(&sb, &ports, &items, 2)))
}

/// Two resource collections that may overlap anywhere.
fn any_pair() -> impl Strategy<Value = (Resources, Resources)> {
    (scalars(), scalars(), owners(64), owners(64), owners(12), owners(12))
        .prop_map(|(sa, sb, pa, pb, ia, ib)| (build(&sa, &pa, &ia, 1), build(&sb, &pb, &ib, 2)))
}

fn no_negative(r: &Resources) -> bool {
    r.iter().all(|res| match &res.value {
        Value::Scalar(s) => s.millis() > 0,
        other => !other.is_empty(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn add_then_subtract_is_identity((a, b) in disjoint_pair()) {
        prop_assert_eq!(&(&a + &b) - &b, a);
    }

    #[test]
    fn addition_commutes_up_to_order((a, b) in any_pair()) {
        let ab = &a + &b;
        let ba = &b + &a;
        prop_assert!(ab.contains(&ba) && ba.contains(&ab));
    }

    #[test]
    fn a_sum_contains_its_parts((a, b) in any_pair()) {
        let sum = &a + &b;
        prop_assert!(sum.contains(&a));
        prop_assert!(sum.contains(&b));
    }

    #[test]
    fn contains_agrees_with_subtract((a, b) in any_pair()) {
        match a.checked_sub(&b) {
            Ok(rest) => {
                prop_assert!(a.contains(&b));
                // Whatever was taken can be given back exactly.
                prop_assert_eq!(&rest + &b, a.clone());
                prop_assert!(a.contains(&rest));
            }
            Err(_) => prop_assert!(!a.contains(&b)),
        }
    }

    #[test]
    fn subtraction_never_goes_negative((a, b) in any_pair()) {
        prop_assert!(no_negative(&(&a - &b)));
        prop_assert!(no_negative(&(&a + &b)));
        prop_assert!(no_negative(&(&a * 0.37)));
    }

    #[test]
    fn scaling_by_a_count_equals_repeated_addition((a, _b) in any_pair(), n in 1u32..8) {
        let mut sum = Resources::new();
        for _ in 0..n {
            sum += &a;
        }
        prop_assert_eq!(&a * f64::from(n), sum);
    }

    #[test]
    fn the_flag_form_round_trips((a, _b) in any_pair()) {
        let text = a.to_string();
        let back: Resources = text.parse().unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn the_json_form_round_trips((a, _b) in any_pair()) {
        let json = serde_json::to_string(&a).unwrap();
        let back: Resources = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,40}") {
        let _ = s.parse::<Resources>();
    }
}

proptest! {
    /// The merge-based union agrees with the set it stands for.
    #[test]
    fn ranges_union_is_the_set_union(
        a in prop::collection::vec((0u64..200, 0u64..8), 0..10),
        b in prop::collection::vec((0u64..200, 0u64..8), 0..10),
    ) {
        let ra = Ranges::new(a.iter().map(|(s, l)| (*s, s + l))).unwrap();
        let rb = Ranges::new(b.iter().map(|(s, l)| (*s, s + l))).unwrap();
        let u = ra.union(&rb);
        for x in 0..220 {
            prop_assert_eq!(u.contains_item(x), ra.contains_item(x) || rb.contains_item(x), "item {}", x);
        }
        // Normalised: sorted, disjoint, not adjacent.
        prop_assert!(u.as_slice().windows(2).all(|w| w[0].end + 1 < w[1].begin));
        prop_assert_eq!(u.clone(), rb.union(&ra));
    }

    /// Adding by value equals adding by reference.
    #[test]
    fn owned_addition_matches_borrowed((a, b) in any_pair()) {
        let mut owned = a.clone();
        owned += b.clone();
        prop_assert_eq!(owned, &a + &b);
    }
}

#[test]
fn equality_ignores_entry_order() {
    // Regression: equality was order-sensitive, so the same resources
    // merged in another order compared unequal.
    let a: Resources = "mem:10;disk:5".parse().unwrap();
    let b: Resources = "disk:5;mem:10".parse().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, "disk:5;mem:11".parse::<Resources>().unwrap());
    assert_ne!(a, "disk:5".parse::<Resources>().unwrap());
}
