//! Weighted Dominant Resource Fairness ordering.
//!
//! A client's *dominant share* is the largest fraction of any cluster
//! resource it holds; dividing by its weight gives the weighted share, and
//! clients are served lowest first (Ghodsi et al., NSDI 2011; Mesos's
//! `DRFSorter`). Resources such as `gpus` can be excluded from fair sharing,
//! so that a GPU job does not look "dominant" to CPU-only clients.

use std::collections::{BTreeMap, BTreeSet};

use orchestrator_core::{Resources, Value};

#[derive(Clone, Debug)]
struct Client {
    weight: f64,
    /// Allocated scalar amounts in thousandths, by resource name.
    allocated: BTreeMap<String, i64>,
    /// How many allocations it received: breaks ties toward the least served.
    allocations: u64,
}

/// Orders clients (roles, or frameworks within a role) by weighted dominant share.
#[derive(Clone, Debug, Default)]
pub struct DrfSorter {
    total: BTreeMap<String, i64>,
    excluded: BTreeSet<String>,
    clients: BTreeMap<String, Client>,
}

fn scalars(resources: &Resources) -> impl Iterator<Item = (&str, i64)> {
    resources.iter().filter_map(|r| match r.value {
        Value::Scalar(s) => Some((r.name.as_str(), s.millis())),
        _ => None,
    })
}

fn add_into(map: &mut BTreeMap<String, i64>, resources: &Resources, sign: i64) {
    for (name, millis) in scalars(resources) {
        let entry = map.entry(name.to_string()).or_insert(0);
        *entry = (*entry + sign * millis).max(0);
    }
    map.retain(|_, v| *v > 0);
}

impl DrfSorter {
    /// An empty sorter that shares every resource.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sorter that leaves the named resources out of fair sharing.
    pub fn excluding<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self {
            excluded: names.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds a client with `weight` (a non-positive or NaN weight counts as 1,
    /// as Mesos rejects such weights before they reach the sorter).
    pub fn add(&mut self, name: &str, weight: f64) {
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.clients
            .entry(name.to_string())
            .and_modify(|c| c.weight = weight)
            .or_insert(Client {
                weight,
                allocated: BTreeMap::new(),
                allocations: 0,
            });
    }

    /// Removes a client and its allocation.
    pub fn remove(&mut self, name: &str) {
        self.clients.remove(name);
    }

    /// Whether `name` is a client.
    pub fn contains(&self, name: &str) -> bool {
        self.clients.contains_key(name)
    }

    /// Adds to the cluster total that shares are fractions of.
    pub fn add_total(&mut self, resources: &Resources) {
        add_into(&mut self.total, resources, 1);
    }

    /// Removes from the cluster total.
    pub fn remove_total(&mut self, resources: &Resources) {
        add_into(&mut self.total, resources, -1);
    }

    /// Records that `name` was allocated `resources`; unknown clients are ignored.
    pub fn allocated(&mut self, name: &str, resources: &Resources) {
        if let Some(c) = self.clients.get_mut(name) {
            add_into(&mut c.allocated, resources, 1);
            c.allocations += 1;
        }
    }

    /// Records that `name` gave `resources` back.
    pub fn unallocated(&mut self, name: &str, resources: &Resources) {
        if let Some(c) = self.clients.get_mut(name) {
            add_into(&mut c.allocated, resources, -1);
        }
    }

    /// The client's weighted dominant share (0 for unknown clients).
    pub fn share(&self, name: &str) -> f64 {
        self.clients.get(name).map_or(0.0, |c| self.weighted_share(c))
    }

    fn weighted_share(&self, c: &Client) -> f64 {
        let mut dominant: f64 = 0.0;
        for (name, &have) in &c.allocated {
            if self.excluded.contains(name) {
                continue;
            }
            if let Some(&total) = self.total.get(name).filter(|t| **t > 0) {
                dominant = dominant.max(have as f64 / total as f64);
            }
        }
        dominant / c.weight
    }

    /// Client names, lowest weighted share first; ties go to the client
    /// with fewer allocations, then by name, so the order is deterministic.
    pub fn sort(&self) -> Vec<&str> {
        let mut keyed: Vec<(f64, u64, &str)> = self
            .clients
            .iter()
            .map(|(n, c)| (self.weighted_share(c), c.allocations, n.as_str()))
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
        keyed.into_iter().map(|(_, _, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> Resources {
        s.parse().unwrap()
    }

    #[test]
    fn the_drf_paper_example() {
        // 9 CPUs, 18 GB; A runs <1 CPU, 4 GB> tasks, B <3 CPU, 1 GB>.
        // DRF converges on A with 3 tasks and B with 2 (shares 2/3 each).
        let mut s = DrfSorter::new();
        s.add_total(&r("cpus:9;mem:18"));
        s.add("a", 1.0);
        s.add("b", 1.0);
        let mut free = r("cpus:9;mem:18");
        let task = |n: &str| if n == "a" { r("cpus:1;mem:4") } else { r("cpus:3;mem:1") };
        loop {
            let next = s
                .sort()
                .into_iter()
                .find(|n| free.contains(&task(n)))
                .map(str::to_string);
            let Some(n) = next else { break };
            free = free.checked_sub(&task(&n)).unwrap();
            s.allocated(&n, &task(&n));
        }
        assert!((s.share("a") - 12.0 / 18.0).abs() < 1e-9);
        assert!((s.share("b") - 6.0 / 9.0).abs() < 1e-9);
    }

    #[test]
    fn weights_and_exclusions_change_the_order() {
        let mut s = DrfSorter::excluding(["gpus"]);
        s.add_total(&r("cpus:100;gpus:4"));
        s.add("heavy", 2.0);
        s.add("light", 1.0);
        s.add("gpu", 1.0);
        s.allocated("heavy", &r("cpus:30"));
        s.allocated("light", &r("cpus:20"));
        s.allocated("gpu", &r("cpus:1;gpus:4"));
        assert_eq!(s.sort(), vec!["gpu", "heavy", "light"]);
        s.unallocated("heavy", &r("cpus:30"));
        assert_eq!(s.share("heavy"), 0.0);
        s.remove("gpu");
        assert_eq!(s.sort(), vec!["heavy", "light"]);
    }

    proptest! {
        #[test]
        fn the_lowest_weighted_share_comes_first(
            allocs in prop::collection::vec((0i64..1000, 0i64..1000, 1u32..5), 1..20)
        ) {
            let mut s = DrfSorter::new();
            s.add_total(&r("cpus:1000;mem:1000"));
            for (i, (c, m, w)) in allocs.iter().enumerate() {
                let name = format!("c{i}");
                s.add(&name, f64::from(*w));
                s.allocated(&name, &r(&format!("cpus:{c};mem:{m}")));
            }
            let order = s.sort();
            prop_assert_eq!(order.len(), allocs.len());
            for pair in order.windows(2) {
                prop_assert!(s.share(pair[0]) <= s.share(pair[1]));
            }
        }
    }
}
