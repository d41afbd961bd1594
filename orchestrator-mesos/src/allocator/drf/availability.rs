//! Which agents have something worth offering: unreserved, and per role
//! reserved; recomputed lazily for agents marked dirty.

use orchestrator_core::Value;

use super::DrfAllocator;
use crate::allocator::bitset::BitSet;
use crate::allocator::index::{AgentIx, RoleIx};
use crate::allocator::quantities::Quantities;

impl DrfAllocator {
    #[inline]
    pub(crate) fn meets_min(&self, q: &Quantities) -> bool {
        self.min_allocatable.is_empty() || self.min_allocatable.iter().any(|m| q.contains(m))
    }

    #[inline]
    pub(super) fn reserved_bits(&mut self, role: RoleIx) -> &mut BitSet {
        self.avail_reserved.get_or_grow(role, BitSet::default)
    }

    /// Recomputes an agent's availability bits from its `available`.
    pub(crate) fn refresh_agent(&mut self, a: AgentIx) {
        let Some(agent) = self.agents.get_mut(a) else { return };
        if agent.available.is_empty() {
            // The common case after an offer took everything.
            agent.avail_unreserved = Quantities::default();
            agent.avail_all = Quantities::default();
            self.avail_unreserved.clear(a);
            for role in std::mem::take(&mut agent.reserved_roles) {
                self.reserved_bits(role).clear(a);
            }
            return;
        }
        let mut unreserved = Quantities::default();
        let mut all = Quantities::default();
        let mut roles_now: Vec<(RoleIx, Quantities)> = Vec::new();
        for r in &agent.available {
            let (Value::Scalar(s), Some(i)) = (&r.value, self.names.get(&r.name)) else {
                continue;
            };
            all.add_at(i, s.millis());
            if !r.is_reserved() {
                unreserved.add_at(i, s.millis());
            } else if let Some(role) = self.roles.get(r.role()) {
                match roles_now.iter_mut().find(|(x, _)| *x == role) {
                    Some((_, acc)) => acc.add_at(i, s.millis()),
                    None => {
                        let mut q = Quantities::default();
                        q.add_at(i, s.millis());
                        roles_now.push((role, q));
                    }
                }
            }
        }
        agent.avail_unreserved = unreserved;
        agent.avail_all = all;
        let active = agent.active;
        let unreserved_ok = active && !agent.avail_unreserved.is_zero();
        let previous = std::mem::take(&mut agent.reserved_roles);
        let unreserved_meets = unreserved_ok && {
            let q = &agent.avail_unreserved;
            self.min_allocatable.is_empty() || self.min_allocatable.iter().any(|m| q.contains(m))
        };
        if unreserved_meets {
            self.avail_unreserved.set(a);
        } else {
            self.avail_unreserved.clear(a);
        }
        for role in previous {
            self.reserved_bits(role).clear(a);
        }
        let mut kept = Vec::new();
        for (role, q) in roles_now {
            if active && self.meets_min(&q) {
                self.reserved_bits(role).set(a);
                kept.push(role);
            }
        }
        if let Some(agent) = self.agents.get_mut(a) {
            agent.reserved_roles = kept;
        }
    }

    #[inline]
    pub(crate) fn mark_dirty(&mut self, a: AgentIx) {
        if let Some(agent) = self.agents.get_mut(a) {
            if !agent.dirty {
                agent.dirty = true;
                self.dirty_agents.push(a);
            }
        }
    }
}
