//! Dense scalar quantities for the allocator's hot loop: resource names are
//! interned to small indices once, and shares, quota and headroom become
//! arithmetic on short integer arrays instead of name lookups.

use orchestrator_core::{Name, Resource, Resources, Scalar, Value};
use rustc_hash::FxHashMap;

/// Interned scalar resource names.
#[derive(Debug, Default)]
pub(crate) struct Names {
    index: FxHashMap<Name, usize>,
    names: Vec<Name>,
    excluded: Vec<bool>,
    excluded_names: Vec<String>,
}

impl Names {
    pub(crate) fn new(excluded: &[String]) -> Self {
        Self {
            excluded_names: excluded.to_vec(),
            ..Self::default()
        }
    }

    /// Interns every scalar name of `resources`.
    pub(crate) fn learn(&mut self, resources: &Resources) {
        for r in resources {
            if matches!(r.value, Value::Scalar(_)) && !self.index.contains_key(&r.name) {
                self.index.insert(r.name.clone(), self.excluded.len());
                self.names.push(r.name.clone());
                self.excluded
                    .push(self.excluded_names.iter().any(|n| r.name == n.as_str()));
            }
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Scalars back as resources (unreserved).
    pub(crate) fn resources(&self, q: &Quantities) -> Resources {
        q.iter()
            .filter(|(_, v)| *v > 0)
            .filter_map(|(i, v)| {
                let name = self.names.get(i)?;
                Some(Resource::new(name.clone(), Value::Scalar(Scalar::from_millis(v))))
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.excluded.len()
    }

    pub(crate) fn excluded(&self) -> &[bool] {
        &self.excluded
    }

    /// The scalars of `resources` (names never learnt are ignored).
    pub(crate) fn quantities(&self, resources: &Resources) -> Quantities {
        let mut q = Quantities::default();
        for r in resources {
            if let (Value::Scalar(s), Some(i)) = (&r.value, self.get(&r.name)) {
                q.add_at(i, s.millis());
            }
        }
        q
    }
}

/// Slots held inline: cpus, mem, disk, gpus and a few custom names fit
/// without a heap allocation or a pointer to chase.
const INLINE: usize = 8;

/// Scalar amounts in thousandths, indexed by interned name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Quantities {
    inline: [i64; INLINE],
    /// Names past the inline slots (rare).
    spill: Vec<i64>,
}

impl Quantities {
    pub(crate) fn get(&self, i: usize) -> i64 {
        match i.checked_sub(INLINE) {
            None => self.inline[i],
            Some(j) => self.spill.get(j).copied().unwrap_or(0),
        }
    }

    fn slot(&mut self, i: usize) -> &mut i64 {
        match i.checked_sub(INLINE) {
            None => &mut self.inline[i],
            Some(j) => {
                if self.spill.len() <= j {
                    self.spill.resize(j + 1, 0);
                }
                &mut self.spill[j]
            }
        }
    }

    pub(crate) fn add_at(&mut self, i: usize, v: i64) {
        let slot = self.slot(i);
        *slot = (*slot + v).max(0);
    }

    pub(crate) fn add(&mut self, other: &Quantities) {
        for (a, b) in self.inline.iter_mut().zip(&other.inline) {
            *a = (*a + *b).max(0);
        }
        for (j, v) in other.spill.iter().enumerate() {
            self.add_at(INLINE + j, *v);
        }
    }

    /// Subtracts, never going below zero.
    pub(crate) fn sub(&mut self, other: &Quantities) {
        for (a, b) in self.inline.iter_mut().zip(&other.inline) {
            *a = (*a - *b).max(0);
        }
        for (j, v) in other.spill.iter().enumerate() {
            self.add_at(INLINE + j, -*v);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.inline.iter().chain(self.spill.iter()).copied().enumerate()
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.inline.iter().all(|v| *v == 0) && self.spill.iter().all(|v| *v == 0)
    }

    /// Whether every amount of `other` fits in `self`.
    pub(crate) fn contains(&self, other: &Quantities) -> bool {
        other.iter().all(|(i, v)| v <= self.get(i))
    }

    /// The largest fraction of `total` held, over names not excluded.
    pub(crate) fn dominant_share(&self, total: &Quantities, excluded: &[bool]) -> f64 {
        let mut share: f64 = 0.0;
        for (i, v) in self.iter() {
            let t = total.get(i);
            if v > 0 && t > 0 && !excluded.get(i).copied().unwrap_or(false) {
                share = share.max(v as f64 / t as f64);
            }
        }
        share
    }
}
