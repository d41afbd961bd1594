//! Resources as Mesos models them: named scalars, ranges and sets, each
//! optionally reserved for a role.
//!
//! Scalars are fixed-point with three decimal digits, as in Mesos, so that
//! sums and differences are exact and `a + b - b == a` holds to the last digit.
//! Ranges and sets are sets of items: adding is union and subtracting is set
//! difference, so the round-trip law holds when the items of `a` and `b` are
//! disjoint, which is always so for resources drawn from one agent.

mod parse;
mod value;
mod wire;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::{Add, AddAssign, Mul, Sub, SubAssign};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

pub use value::{Range, Ranges, Scalar, Value};

use crate::{Error, Labels, Name, Result};

/// The role of unreserved resources.
pub const ANY_ROLE: &str = "*";

/// How a reservation came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationKind {
    /// From the agent's `--resources` flag.
    Static,
    /// Made by a `RESERVE` operation.
    Dynamic,
}

/// One level of a reservation (Mesos `ReservationInfo`); the last of a
/// resource's reservations names the role that may use it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reservation {
    /// Static or dynamic.
    #[serde(rename = "type")]
    pub kind: ReservationKind,
    /// The role the resource is reserved for.
    pub role: Name,
    /// Who made a dynamic reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Labels attached to a dynamic reservation.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl Reservation {
    /// A static reservation for `role`.
    pub fn fixed(role: impl Into<Name>) -> Self {
        Self {
            kind: ReservationKind::Static,
            role: role.into(),
            principal: None,
            labels: Labels::default(),
        }
    }

    /// A dynamic reservation for `role` made by `principal`.
    pub fn dynamic(role: impl Into<Name>, principal: Option<String>) -> Self {
        Self {
            kind: ReservationKind::Dynamic,
            role: role.into(),
            principal,
            labels: Labels::default(),
        }
    }
}

/// One named resource with its value and reservations.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// `cpus`, `mem`, `disk`, `gpus`, `ports` or any other name.
    pub name: Name,
    /// The quantity, ranges or set.
    pub value: Value,
    /// Reservation stack; empty means unreserved (role `*`).
    pub reservations: Vec<Reservation>,
    /// The role this resource is allocated to, when offered to a
    /// multi-role framework (Mesos `allocation_info.role`).
    pub allocation_role: Option<Name>,
}

impl Resource {
    /// An unreserved scalar resource.
    ///
    /// # Errors
    /// [`Error::InvalidResources`] for negative, infinite or NaN values.
    pub fn scalar(name: impl Into<Name>, value: f64) -> Result<Self> {
        let name = name.into();
        let scalar = Scalar::try_from_f64(value).map_err(|reason| Error::resources(name.as_str(), reason))?;
        Ok(Self::new(name, Value::Scalar(scalar)))
    }

    /// An unreserved ranges resource.
    pub fn ranges(name: impl Into<Name>, ranges: Ranges) -> Self {
        Self::new(name, Value::Ranges(ranges))
    }

    /// An unreserved set resource.
    pub fn set<I: IntoIterator<Item = S>, S: Into<String>>(name: impl Into<Name>, items: I) -> Self {
        Self::new(name, Value::Set(items.into_iter().map(Into::into).collect()))
    }

    /// An unreserved resource with any value.
    pub fn new(name: impl Into<Name>, value: Value) -> Self {
        Self {
            name: name.into(),
            value,
            reservations: Vec::new(),
            allocation_role: None,
        }
    }

    /// This resource with one more reservation level.
    #[must_use]
    pub fn reserved(mut self, reservation: Reservation) -> Self {
        self.reservations.push(reservation);
        self
    }

    /// The role that may use this resource (`*` when unreserved).
    pub fn role(&self) -> &str {
        self.reservations.last().map_or(ANY_ROLE, |r| r.role.as_str())
    }

    /// Whether a reservation holds this resource.
    pub fn is_reserved(&self) -> bool {
        !self.reservations.is_empty()
    }

    /// Whether the value is zero, empty ranges or an empty set.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Two resources can be merged into one entry when everything but the
    /// amount is the same.
    fn same_kind(&self, other: &Resource) -> bool {
        self.name == other.name
            && self.value.same_type(&other.value)
            && self.reservations == other.reservations
            && self.allocation_role == other.allocation_role
    }
}

/// A normalised collection of resources: at most one entry per name,
/// type, reservation and allocation role, and no empty entries. Two
/// collections are equal when they hold the same entries, in any order.
///
/// The entries are shared and copied on write, so cloning — which offers,
/// filters, tasks and allocations do all the time — costs one reference
/// count, not a copy of every entry.
#[derive(Clone, Debug)]
pub struct Resources {
    items: Arc<Vec<Resource>>,
}

impl Default for Resources {
    fn default() -> Self {
        // One shared empty list: `Resources::new()` allocates nothing.
        static EMPTY: OnceLock<Arc<Vec<Resource>>> = OnceLock::new();
        Resources {
            items: Arc::clone(EMPTY.get_or_init(|| Arc::new(Vec::new()))),
        }
    }
}

impl PartialEq for Resources {
    fn eq(&self, other: &Self) -> bool {
        // Entries are unique per kind, so equal length plus containment of
        // every entry is set equality; shared and in-order cases go first.
        Arc::ptr_eq(&self.items, &other.items)
            || (self.items.len() == other.items.len()
                && (self.items == other.items || self.items.iter().all(|r| other.items.contains(r))))
    }
}

impl Resources {
    /// No resources.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries, in insertion order.
    pub fn iter(&self) -> std::slice::Iter<'_, Resource> {
        self.items.iter()
    }

    /// Whether there is nothing at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of distinct entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Adds one resource, merging it into a matching entry.
    pub fn push(&mut self, resource: Resource) {
        if resource.is_empty() {
            return;
        }
        let items = Arc::make_mut(&mut self.items);
        match items.iter_mut().find(|r| r.same_kind(&resource)) {
            Some(existing) => existing.value.add(&resource.value),
            None => items.push(resource),
        }
    }

    /// Whether every entry of `other` is covered by a matching entry here.
    pub fn contains(&self, other: &Resources) -> bool {
        other.items.iter().all(|wanted| {
            self.items
                .iter()
                .find(|r| r.same_kind(wanted))
                .is_some_and(|have| have.value.contains(&wanted.value))
        })
    }

    /// `self - other` when `self` contains `other`.
    ///
    /// # Errors
    /// [`Error::InsufficientResources`] when it does not.
    pub fn checked_sub(&self, other: &Resources) -> Result<Resources> {
        if !self.contains(other) {
            return Err(Error::InsufficientResources {
                available: self.to_string(),
                requested: other.to_string(),
            });
        }
        Ok(self - other)
    }

    fn subtract_one(&mut self, resource: &Resource) {
        if let Some(pos) = self.items.iter().position(|r| r.same_kind(resource)) {
            let items = Arc::make_mut(&mut self.items);
            items[pos].value.subtract(&resource.value);
            if items[pos].is_empty() {
                items.remove(pos);
            }
        }
    }

    /// The sum of the scalar named `name` over all reservations.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        let mut total = Scalar::ZERO;
        let mut seen = false;
        for r in self.items.iter().filter(|r| r.name == name) {
            if let Value::Scalar(s) = r.value {
                total = total + s;
                seen = true;
            }
        }
        seen.then(|| total.value())
    }

    /// CPUs, over all reservations (0 when absent).
    pub fn cpus(&self) -> f64 {
        self.scalar("cpus").unwrap_or(0.0)
    }

    /// Memory in MB, over all reservations (0 when absent).
    pub fn mem(&self) -> f64 {
        self.scalar("mem").unwrap_or(0.0)
    }

    /// Disk in MB, over all reservations (0 when absent).
    pub fn disk(&self) -> f64 {
        self.scalar("disk").unwrap_or(0.0)
    }

    /// GPUs, over all reservations (0 when absent).
    pub fn gpus(&self) -> f64 {
        self.scalar("gpus").unwrap_or(0.0)
    }

    /// The union of every `ports` range, over all reservations.
    pub fn ports(&self) -> Ranges {
        let mut all = Ranges::default();
        for r in self.items.iter().filter(|r| r.name == "ports") {
            if let Value::Ranges(ranges) = &r.value {
                all = all.union(ranges);
            }
        }
        all
    }

    /// The items of the set named `name`, over all reservations.
    pub fn set(&self, name: &str) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for r in self.items.iter().filter(|r| r.name == name) {
            if let Value::Set(items) = &r.value {
                all.extend(items.iter().cloned());
            }
        }
        all
    }

    /// The entries that satisfy `keep`.
    pub fn filter(&self, mut keep: impl FnMut(&Resource) -> bool) -> Resources {
        Resources {
            items: Arc::new(self.items.iter().filter(|r| keep(r)).cloned().collect()),
        }
    }

    /// Only the unreserved entries.
    pub fn unreserved(&self) -> Resources {
        self.filter(|r| !r.is_reserved())
    }

    /// Only the entries reserved for exactly `role`.
    pub fn reserved_for(&self, role: &str) -> Resources {
        self.filter(|r| r.is_reserved() && r.role() == role)
    }

    /// What `role` may use: unreserved entries and those reserved for the
    /// role or one of its ancestors in the role hierarchy (`a` is an
    /// ancestor of `a/b`).
    pub fn allocatable_to(&self, role: &str) -> Resources {
        self.filter(|r| !r.is_reserved() || role_is_within(role, r.role()))
    }

    /// The same amounts with every reservation and allocation role removed,
    /// for totals and comparisons across roles.
    pub fn flatten(&self) -> Resources {
        let mut out = Resources::new();
        for r in self.items.iter() {
            out.push(Resource::new(r.name.clone(), r.value.clone()));
        }
        out
    }

    /// Every entry with `reservation` pushed onto its reservation stack.
    pub fn pushed_reservation(&self, reservation: &Reservation) -> Resources {
        let mut out = Resources::new();
        for r in self.items.iter() {
            out.push(r.clone().reserved(reservation.clone()));
        }
        out
    }

    /// Every entry with its top reservation removed.
    pub fn popped_reservation(&self) -> Resources {
        let mut out = Resources::new();
        for r in self.items.iter() {
            let mut r = r.clone();
            r.reservations.pop();
            out.push(r);
        }
        out
    }

    /// Every entry marked as allocated to `role`.
    pub fn allocated_to(&self, role: &str) -> Resources {
        let mut out = self.clone();
        out.set_allocation_role(Some(role));
        out
    }

    /// Marks every entry as allocated to `role` (or to none), in place.
    pub fn set_allocation_role(&mut self, role: Option<&str>) {
        let Some(first) = self.items.first().map(|r| r.allocation_role.clone()) else {
            return;
        };
        if first.as_deref() == role && self.items.iter().all(|r| r.allocation_role.as_deref() == role) {
            return;
        }
        let role = role.map(Name::from);
        if self.items.iter().all(|r| r.allocation_role == first) {
            // Entries that were distinct with one common role stay distinct.
            for r in Arc::make_mut(&mut self.items) {
                r.allocation_role.clone_from(&role);
            }
            return;
        }
        let items = Arc::unwrap_or_clone(std::mem::take(self).items);
        for mut r in items {
            r.allocation_role.clone_from(&role);
            // Entries that differed only by allocation role merge here.
            self.push(r);
        }
    }
}

/// Whether `role` is `ancestor` itself or lies below it (`a/b` within `a`).
pub fn role_is_within(role: &str, ancestor: &str) -> bool {
    ancestor == ANY_ROLE
        || role == ancestor
        || (role.len() > ancestor.len() && role.starts_with(ancestor) && role.as_bytes()[ancestor.len()] == b'/')
}

impl FromIterator<Resource> for Resources {
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> Self {
        let mut out = Resources::new();
        for r in iter {
            out.push(r);
        }
        out
    }
}

impl<'a> IntoIterator for &'a Resources {
    type Item = &'a Resource;
    type IntoIter = std::slice::Iter<'a, Resource>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, rhs: &Resources) {
        for r in rhs.items.iter() {
            self.push(r.clone());
        }
    }
}

/// Adds by moving `rhs`'s entries in (no copies).
impl AddAssign<Resources> for Resources {
    fn add_assign(&mut self, rhs: Resources) {
        if self.items.is_empty() {
            *self = rhs;
            return;
        }
        for r in Arc::unwrap_or_clone(rhs.items) {
            self.push(r);
        }
    }
}

impl Add<&Resources> for &Resources {
    type Output = Resources;
    fn add(self, rhs: &Resources) -> Resources {
        let mut out = self.clone();
        out += rhs;
        out
    }
}

/// Subtracts what is there; never goes below zero (an entry that would
/// is removed), as Mesos does. Use [`Resources::checked_sub`] to insist.
impl SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, rhs: &Resources) {
        for r in rhs.items.iter() {
            self.subtract_one(r);
        }
    }
}

impl Sub<&Resources> for &Resources {
    type Output = Resources;
    fn sub(self, rhs: &Resources) -> Resources {
        let mut out = self.clone();
        out -= rhs;
        out
    }
}

/// Scales every scalar by `factor` (so `per_task * instances` works).
/// Ranges and sets name particular items that cannot be multiplied: they are
/// kept as they are for a positive factor and dropped for zero. A negative or
/// NaN factor counts as zero.
impl Mul<f64> for &Resources {
    type Output = Resources;
    fn mul(self, factor: f64) -> Resources {
        let factor = if factor.is_nan() || factor < 0.0 { 0.0 } else { factor };
        let mut out = Resources::new();
        for r in self.items.iter() {
            let mut r = r.clone();
            match &mut r.value {
                Value::Scalar(s) => *s = s.scaled(factor),
                _ if factor == 0.0 => continue,
                _ => {}
            }
            out.push(r);
        }
        out
    }
}

/// The agent flag form: `cpus:4;mem:8192;ports:[31000-32000]`, with a
/// reserved role in parentheses (`cpus(web):2`).
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            f.write_str(&r.name)?;
            if r.is_reserved() {
                write!(f, "({})", r.role())?;
            }
            write!(f, ":{}", r.value)?;
        }
        Ok(())
    }
}
