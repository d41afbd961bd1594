//! The [`Allocator`] trait for the [`DrfAllocator`]: how agents, frameworks,
//! recovered resources, weights and quotas change its state.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::{
    AgentId, AgentInfo, Allocation, Allocator, Error, FrameworkId, FrameworkInfo, Quota, Resources, Result, RoleInfo,
    Value,
};

use super::slots::{AgentSlot, FrameworkSlot, OfferFilter};
use super::DrfAllocator;
use crate::allocator::index::{AgentIx, ClientIx};
use crate::allocator::quantities::Quantities;
use crate::allocator::stripped;

impl Allocator for DrfAllocator {
    fn add_agent(&mut self, agent_id: AgentId, info: &AgentInfo, used: &[Allocation]) -> Result<()> {
        if self.agent_index.contains_key(&agent_id) {
            return Err(Error::Invalid {
                what: "agent",
                reason: format!("agent {agent_id} is already added"),
            });
        }
        for r in info.resources.iter().filter(|r| r.is_reserved()) {
            self.roles.ensure(r.role())?;
        }
        let total = stripped(&info.resources);
        let mut used_total = Resources::new();
        for u in used {
            used_total += &stripped(&u.resources);
        }
        let available = total.checked_sub(&used_total).map_err(|e| Error::Invalid {
            what: "agent",
            reason: format!("agent {agent_id}: resources in use exceed its total: {e}"),
        })?;
        self.names.learn(&total);
        self.total.add(&self.names.quantities(&total));
        let agent = AgentSlot {
            id: agent_id.clone(),
            total,
            available,
            allocated: Vec::new(),
            active: true,
            filters: Vec::new(),
            verified: None,
            dirty: false,
            reserved_roles: Vec::new(),
            avail_unreserved: Quantities::default(),
            avail_all: Quantities::default(),
            last_refused: None,
        };
        let a = self.agents.insert(agent);
        self.agent_index.insert(agent_id, a);
        for u in used {
            if let Some(f) = self.framework_slot(&u.framework_id) {
                let c = match self.client_for(f, Some(&u.role)) {
                    Some(c) => c,
                    None => {
                        let role = self.roles.ensure(&u.role)?;
                        let c = self.add_client(f, role, true);
                        if let Some(client) = self.clients.get_mut(c) {
                            client.detached = true;
                        }
                        if let Some(fw) = self.frameworks.get_mut(f) {
                            fw.clients.push(c);
                        }
                        c
                    }
                };
                self.record_allocation(c, a, u.resources.allocated_to(&u.role));
            }
        }
        self.refresh_agent(a);
        self.mark_dirty(a);
        Ok(())
    }

    fn update_agent(&mut self, agent_id: &AgentId, total: Resources) -> Result<()> {
        let a = self.agent_slot(agent_id).ok_or_else(|| Error::Invalid {
            what: "agent",
            reason: format!("unknown agent {agent_id}"),
        })?;
        for r in total.iter().filter(|r| r.is_reserved()) {
            self.roles.ensure(r.role())?;
        }
        let total = stripped(&total);
        self.names.learn(&total);
        if let Some(agent) = self.agents.get_mut(a) {
            let mut used = Resources::new();
            for (_, held) in &agent.allocated {
                used += &stripped(&held.total());
            }
            let old = std::mem::replace(&mut agent.total, total.clone());
            agent.available = &total - &used;
            self.total.sub(&self.names.quantities(&old));
            self.total.add(&self.names.quantities(&total));
        }
        self.refresh_agent(a);
        self.mark_dirty(a);
        Ok(())
    }

    fn remove_agent(&mut self, agent_id: &AgentId) {
        let Some(a) = self.agent_index.remove(agent_id) else {
            return;
        };
        let Some(agent) = self.agents.remove(a) else { return };
        for c in &agent.filters {
            self.filters.remove(&(*c, a));
            if let Some(client) = self.clients.get_mut(*c) {
                client.filtered.clear(a);
                client.has_filter.clear(a);
                client.filter_agents.retain(|x| *x != a);
            }
        }
        for (c, held) in &agent.allocated {
            let q = self.names.quantities(&held.total());
            if let Some(client) = self.clients.get_mut(*c) {
                client.allocated.sub(&q);
                client.holding -= 1;
                self.roles.unallocate(client.role, &q);
            }
        }
        self.total.sub(&self.names.quantities(&agent.total));
        self.avail_unreserved.clear(a);
        for role in agent.reserved_roles {
            self.reserved_bits(role).clear(a);
        }
    }

    fn deactivate_agent(&mut self, agent_id: &AgentId) {
        if let Some(a) = self.agent_slot(agent_id) {
            if let Some(agent) = self.agents.get_mut(a) {
                agent.active = false;
            }
            self.refresh_agent(a);
        }
    }

    fn activate_agent(&mut self, agent_id: &AgentId) {
        if let Some(a) = self.agent_slot(agent_id) {
            if let Some(agent) = self.agents.get_mut(a) {
                agent.active = true;
            }
            self.refresh_agent(a);
        }
    }

    fn add_framework(&mut self, framework_id: FrameworkId, info: &FrameworkInfo, suppressed: &[String]) -> Result<()> {
        if self.framework_index.contains_key(&framework_id) {
            return Err(Error::Invalid {
                what: "framework",
                reason: format!("framework {framework_id} is already added"),
            });
        }
        for role in info.effective_roles() {
            crate::allocator::roles::validate_role(&role)?;
        }
        let fw = FrameworkSlot {
            id: framework_id.clone(),
            clients: Vec::new(),
        };
        let f = self.frameworks.insert(fw);
        self.framework_index.insert(framework_id, f);
        self.set_roles(f, info, suppressed)
    }

    fn update_framework(
        &mut self,
        framework_id: &FrameworkId,
        info: &FrameworkInfo,
        suppressed: &[String],
    ) -> Result<()> {
        let f = self.framework_slot(framework_id).ok_or_else(|| Error::Invalid {
            what: "framework",
            reason: format!("unknown framework {framework_id}"),
        })?;
        for role in info.effective_roles() {
            crate::allocator::roles::validate_role(&role)?;
        }
        self.set_roles(f, info, suppressed)?;
        self.prune_detached(f);
        Ok(())
    }

    fn remove_framework(&mut self, framework_id: &FrameworkId) {
        let Some(f) = self.framework_index.remove(framework_id) else {
            return;
        };
        let Some(fw) = self.frameworks.get(f) else { return };
        let clients = fw.clients.clone();
        // Removing a framework is rare: find its agents by a scan rather
        // than keep a per-framework index up to date on every offer.
        let agents: Vec<AgentIx> = self
            .agents
            .iter()
            .filter(|(_, ag)| ag.allocated.iter().any(|(c, _)| clients.contains(c)))
            .map(|(a, _)| a)
            .collect();
        for &a in &agents {
            for &c in &clients {
                let held = self
                    .agents
                    .get(a)
                    .and_then(|ag| ag.allocated.iter().find(|(x, _)| *x == c).map(|(_, h)| h.total()));
                if let Some(held) = held {
                    self.give_back(c, a, &held);
                }
            }
            self.refresh_agent(a);
            self.mark_dirty(a);
        }
        for c in clients {
            self.drop_client(c);
        }
        self.frameworks.remove(f);
    }

    fn recover_resources(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        resources: &Resources,
        refuse: Option<Duration>,
        now: Instant,
    ) {
        let (Some(f), Some(a)) = (self.framework_slot(framework_id), self.agent_slot(agent_id)) else {
            return;
        };
        // Group by allocation role; entries without one go to whichever of
        // the framework's roles holds them.
        let mut by_role: Vec<(Option<orchestrator_core::Name>, Resources)> = Vec::new();
        for r in resources {
            match by_role.iter_mut().find(|(role, _)| *role == r.allocation_role) {
                Some((_, acc)) => acc.push(r.clone()),
                None => by_role.push((r.allocation_role.clone(), [r.clone()].into_iter().collect())),
            }
        }
        let mut touched = Vec::new();
        for (role, res) in by_role {
            let candidates: Vec<ClientIx> = match role.as_deref() {
                Some(name) => self.client_for(f, Some(name)).into_iter().collect(),
                None => self.frameworks.get(f).map(|fw| fw.clients.clone()).unwrap_or_default(),
            };
            let mut rest = stripped(&res);
            for c in candidates {
                if rest.is_empty() {
                    break;
                }
                let back = self.give_back(c, a, &rest);
                if !back.is_empty() || role.is_some() {
                    touched.push((c, back.clone()));
                }
                rest -= &back;
            }
        }
        self.refresh_agent(a);
        // OfferFilter bits were verified against `verified`; an agent whose free
        // resources are back to exactly that (an offer declined whole) needs
        // no re-verification.
        let unchanged = self
            .agents
            .get(a)
            .is_some_and(|ag| ag.verified.as_ref() == Some(&ag.available));
        if !unchanged {
            self.mark_dirty(a);
        }
        if let Some(refuse) = refuse.filter(|d| !d.is_zero()) {
            let expires = now + refuse.max(self.config.allocation_interval);
            for (c, refused) in touched {
                let refused = stripped(&refused);
                if refused.is_empty() {
                    continue;
                }
                let Some(agent) = self.agents.get_mut(a) else { continue };
                let refused = match &agent.last_refused {
                    Some(shared) if **shared == refused => Arc::clone(shared),
                    _ => {
                        let shared = Arc::new(refused);
                        agent.last_refused = Some(Arc::clone(&shared));
                        shared
                    }
                };
                let replaced = self.filters.insert((c, a), OfferFilter { refused, expires });
                self.expiry.push(Reverse((expires, c, a)));
                if replaced.is_none() {
                    if let Some(agent) = self.agents.get_mut(a) {
                        agent.filters.push(c);
                    }
                    if let Some(client) = self.clients.get_mut(c) {
                        client.filter_agents.push(a);
                        client.has_filter.set(a);
                    }
                }
                self.set_filter_bit(c, a);
            }
        }
        self.prune_detached(f);
    }

    fn update_allocation(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        from: &Resources,
        to: &Resources,
    ) -> Result<()> {
        let invalid = |reason: String| Error::Invalid {
            what: "allocation update",
            reason,
        };
        let f = self
            .framework_slot(framework_id)
            .ok_or_else(|| invalid(format!("unknown framework {framework_id}")))?;
        let a = self
            .agent_slot(agent_id)
            .ok_or_else(|| invalid(format!("unknown agent {agent_id}")))?;
        if from.flatten() != to.flatten() {
            return Err(invalid(format!("`{from}` and `{to}` are not the same amounts")));
        }
        for r in to.iter().filter(|r| r.is_reserved()) {
            self.roles.ensure(r.role())?;
        }
        let role_name = from.iter().find_map(|r| r.allocation_role.clone());
        let c = self
            .client_for(f, role_name.as_deref())
            .ok_or_else(|| invalid(format!("framework {framework_id} holds nothing in that role")))?;
        let role = self
            .clients
            .get(c)
            .map(|cl| self.roles.roles[cl.role].name.clone())
            .ok_or_else(|| invalid(format!("framework {framework_id} holds nothing in that role")))?;
        let (from_r, to_r) = (from.allocated_to(&role), to.allocated_to(&role));
        let agent = self
            .agents
            .get_mut(a)
            .ok_or_else(|| invalid(format!("unknown agent {agent_id}")))?;
        let held = agent
            .allocated
            .iter_mut()
            .find(|(x, _)| *x == c)
            .map(|(_, r)| r)
            .ok_or_else(|| invalid(format!("framework {framework_id} holds nothing on agent {agent_id}")))?;
        held.replace(&from_r, &to_r).ok_or_else(|| {
            invalid(format!(
                "`{from}` is not allocated to framework {framework_id} on agent {agent_id}"
            ))
        })?;
        agent.total = &(&agent.total - &stripped(from)) + &stripped(to);
        self.refresh_agent(a);
        Ok(())
    }

    fn suppress(&mut self, framework_id: &FrameworkId, roles: &[String]) {
        let Some(f) = self.framework_slot(framework_id) else {
            return;
        };
        let clients = self.frameworks.get(f).map(|fw| fw.clients.clone()).unwrap_or_default();
        for c in clients {
            if let Some(client) = self.clients.get_mut(c) {
                if roles.is_empty() || roles.iter().any(|n| self.roles.roles[client.role].name == n.as_str()) {
                    client.suppressed = true;
                }
            }
        }
    }

    fn revive(&mut self, framework_id: &FrameworkId, roles: &[String]) {
        let Some(f) = self.framework_slot(framework_id) else {
            return;
        };
        let clients = self.frameworks.get(f).map(|fw| fw.clients.clone()).unwrap_or_default();
        for c in clients {
            let hit = self.clients.get(c).is_some_and(|cl| {
                !cl.detached && (roles.is_empty() || roles.iter().any(|n| self.roles.roles[cl.role].name == n.as_str()))
            });
            if hit {
                if let Some(client) = self.clients.get_mut(c) {
                    client.suppressed = false;
                }
                self.clear_client_filters(c);
            }
        }
    }

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<()> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(Error::Invalid {
                what: "weight",
                reason: format!("{weight} is not a positive number"),
            });
        }
        let r = self.roles.ensure(role)?;
        self.roles.roles[r].weight = weight;
        Ok(())
    }

    fn set_quota(&mut self, role: &str, quota: Quota) -> Result<()> {
        let invalid = |reason: String| Error::Invalid { what: "quota", reason };
        let check = |r: &Resources, what: &str| {
            if r.iter()
                .any(|x| !matches!(x.value, Value::Scalar(_)) || x.is_reserved())
            {
                Err(invalid(format!("{what} `{r}` must be unreserved scalar quantities")))
            } else {
                Ok(())
            }
        };
        check(&quota.guarantees, "guarantees")?;
        if let Some(limits) = &quota.limits {
            check(limits, "limits")?;
            for g in &quota.guarantees {
                let limit = limits.scalar(&g.name);
                let wanted = quota.guarantees.scalar(&g.name).unwrap_or(0.0);
                if limit.is_some_and(|l| l < wanted) {
                    return Err(invalid(format!("guarantee of {} exceeds its limit", g.name)));
                }
            }
        }
        let r = self.roles.ensure(role)?;
        self.names.learn(&quota.guarantees);
        if let Some(l) = &quota.limits {
            self.names.learn(l);
        }
        let guarantee = self.names.quantities(&quota.guarantees);
        let mut limit = vec![None; self.names.len()];
        if let Some(l) = &quota.limits {
            for res in l {
                if let (Some(i), Value::Scalar(s)) = (self.names.get(&res.name), &res.value) {
                    limit[i] = Some(s.millis());
                }
            }
        }
        let role = &mut self.roles.roles[r];
        role.guarantee = guarantee;
        role.limit = limit;
        Ok(())
    }

    fn remove_quota(&mut self, role: &str) {
        if let Some(r) = self.roles.get(role) {
            self.roles.roles[r].guarantee = Quantities::default();
            self.roles.roles[r].limit.clear();
        }
    }

    fn roles(&self) -> Vec<RoleInfo> {
        DrfAllocator::roles(self)
    }

    fn allocate(&mut self, now: Instant) -> Vec<Allocation> {
        self.maintain_filters(now);
        self.run_round()
    }
}
