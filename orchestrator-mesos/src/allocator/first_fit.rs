//! [`FirstFitAllocator`]: the smallest honest implementation of the
//! [`Allocator`] seam.
//!
//! Each round walks the active agents in id order and gives each agent's
//! free resources to the first framework (in the order they arrived) that
//! wants them: subscribed in a role that may use them, not suppressed in
//! that role, and without a live refusal filter for the agent. There is no
//! fairness: weights are recorded and reported but do not change the order,
//! and quota is refused (a first-fit allocator cannot guarantee anything).
//!
//! It exists to keep the seam honest (the master, its HTTP API and the
//! operator endpoints run on it unchanged, see `tests/master_http.rs`) and
//! as a starting point for users who write their own allocator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use orchestrator_core::{
    AgentId, AgentInfo, Allocation, Allocator, Error, FrameworkId, FrameworkInfo, Quota, Resources, Result, RoleInfo,
    Value, ANY_ROLE,
};

use super::{stripped, validate_role};

/// An agent's resources, without allocation roles.
#[derive(Debug)]
struct AgentSlot {
    total: Resources,
    free: Resources,
    active: bool,
}

/// A framework's roles, suppressions and refusal filters.
#[derive(Debug)]
struct FrameworkSlot {
    id: FrameworkId,
    roles: Vec<String>,
    suppressed: BTreeSet<String>,
    /// Agents it refused, until when.
    refused: HashMap<AgentId, Instant>,
}

/// First-fit allocation; see the module documentation.
#[derive(Debug)]
pub struct FirstFitAllocator {
    allocation_interval: Duration,
    agents: BTreeMap<AgentId, AgentSlot>,
    /// In arrival order: the first one that fits is served.
    frameworks: Vec<FrameworkSlot>,
    /// What each framework holds on each agent, per role.
    held: HashMap<(FrameworkId, AgentId), BTreeMap<String, Resources>>,
    weights: BTreeMap<String, f64>,
}

fn invalid(reason: String) -> Error {
    Error::Invalid {
        what: "allocation",
        reason,
    }
}

/// Mesos's default `--min_allocatable_resources`: some CPU or some memory.
fn worth_offering(r: &Resources) -> bool {
    r.cpus() >= 0.01 || r.mem() >= 32.0
}

impl FirstFitAllocator {
    /// An allocator whose refusal filters last at least `allocation_interval`.
    pub fn new(allocation_interval: Duration) -> Self {
        Self {
            allocation_interval,
            agents: BTreeMap::new(),
            frameworks: Vec::new(),
            held: HashMap::new(),
            weights: BTreeMap::new(),
        }
    }

    fn framework(&mut self, id: &FrameworkId) -> Option<&mut FrameworkSlot> {
        self.frameworks.iter_mut().find(|f| f.id == *id)
    }

    fn slot(id: FrameworkId, info: &FrameworkInfo, suppressed: &[String]) -> Result<FrameworkSlot> {
        let roles = info.effective_roles();
        for r in &roles {
            validate_role(r)?;
        }
        Ok(FrameworkSlot {
            id,
            roles,
            suppressed: suppressed.iter().cloned().collect(),
            refused: HashMap::new(),
        })
    }
}

impl Allocator for FirstFitAllocator {
    fn add_agent(&mut self, agent_id: AgentId, info: &AgentInfo, used: &[Allocation]) -> Result<()> {
        if self.agents.contains_key(&agent_id) {
            return Err(invalid(format!("agent {agent_id} is already added")));
        }
        let total = stripped(&info.resources);
        let mut free = total.clone();
        for u in used {
            free = free
                .checked_sub(&stripped(&u.resources))
                .map_err(|_| invalid(format!("agent {agent_id} runs more than it has")))?;
            *self
                .held
                .entry((u.framework_id.clone(), agent_id.clone()))
                .or_default()
                .entry(u.role.to_string())
                .or_default() += stripped(&u.resources);
        }
        self.agents.insert(
            agent_id,
            AgentSlot {
                total,
                free,
                active: true,
            },
        );
        Ok(())
    }

    fn update_agent(&mut self, agent_id: &AgentId, total: Resources) -> Result<()> {
        let agent = self
            .agents
            .get_mut(agent_id)
            .ok_or_else(|| invalid(format!("unknown agent {agent_id}")))?;
        let used = &agent.total - &agent.free;
        let total = stripped(&total);
        agent.free = total
            .checked_sub(&used)
            .map_err(|_| invalid(format!("agent {agent_id} would have less than it runs")))?;
        agent.total = total;
        Ok(())
    }

    fn remove_agent(&mut self, agent_id: &AgentId) {
        self.agents.remove(agent_id);
        self.held.retain(|(_, a), _| a != agent_id);
        for f in &mut self.frameworks {
            f.refused.remove(agent_id);
        }
    }

    fn deactivate_agent(&mut self, agent_id: &AgentId) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.active = false;
        }
    }

    fn activate_agent(&mut self, agent_id: &AgentId) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.active = true;
        }
    }

    fn add_framework(
        &mut self,
        framework_id: FrameworkId,
        info: &FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<()> {
        if self.framework(&framework_id).is_some() {
            return Err(invalid(format!("framework {framework_id} is already added")));
        }
        self.frameworks.push(Self::slot(framework_id, info, suppressed_roles)?);
        Ok(())
    }

    fn update_framework(
        &mut self,
        framework_id: &FrameworkId,
        info: &FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<()> {
        let slot = Self::slot(framework_id.clone(), info, suppressed_roles)?;
        let f = self
            .framework(framework_id)
            .ok_or_else(|| invalid(format!("unknown framework {framework_id}")))?;
        f.roles = slot.roles;
        f.suppressed = slot.suppressed;
        Ok(())
    }

    fn remove_framework(&mut self, framework_id: &FrameworkId) {
        self.frameworks.retain(|f| f.id != *framework_id);
        let gone: Vec<_> = self.held.keys().filter(|(f, _)| f == framework_id).cloned().collect();
        for key in gone {
            if let (Some(held), Some(agent)) = (self.held.remove(&key), self.agents.get_mut(&key.1)) {
                for r in held.values() {
                    agent.free += r;
                }
            }
        }
    }

    fn recover_resources(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        resources: &Resources,
        refuse: Option<Duration>,
        now: Instant,
    ) {
        let back = stripped(resources);
        let key = (framework_id.clone(), agent_id.clone());
        let mut recovered = Resources::new();
        if let Some(held) = self.held.get_mut(&key) {
            // Each entry names its role; give back what the framework holds there.
            for r in resources {
                let role = r.allocation_role.as_deref().unwrap_or(ANY_ROLE);
                let one: Resources = [r.clone()].into_iter().collect();
                let one = stripped(&one);
                let role = if held.contains_key(role) {
                    Some(role.to_string())
                } else {
                    held.iter().find(|(_, h)| h.contains(&one)).map(|(r, _)| r.clone())
                };
                if let Some(h) = role.and_then(|r| held.get_mut(&r)) {
                    if let Ok(rest) = h.checked_sub(&one) {
                        *h = rest;
                        recovered += &one;
                    }
                }
            }
            held.retain(|_, h| !h.is_empty());
            if held.is_empty() {
                self.held.remove(&key);
            }
        }
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.free += &recovered;
        }
        let interval = self.allocation_interval;
        if let (Some(refuse), Some(f)) = (refuse.filter(|d| !d.is_zero()), self.framework(framework_id)) {
            if !back.is_empty() {
                f.refused.insert(agent_id.clone(), now + refuse.max(interval));
            }
        }
    }

    fn update_allocation(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        from: &Resources,
        to: &Resources,
    ) -> Result<()> {
        let role = from
            .iter()
            .find_map(|r| r.allocation_role.as_deref())
            .unwrap_or(ANY_ROLE)
            .to_string();
        let (from, to) = (stripped(from), stripped(to));
        if from.flatten() != to.flatten() {
            return Err(invalid(
                "a reservation changes how resources are held, not how many".into(),
            ));
        }
        let held = self
            .held
            .get_mut(&(framework_id.clone(), agent_id.clone()))
            .and_then(|h| h.get_mut(&role))
            .ok_or_else(|| {
                invalid(format!(
                    "framework {framework_id} holds nothing on {agent_id} in {role}"
                ))
            })?;
        let rest = held
            .checked_sub(&from)
            .map_err(|_| invalid(format!("framework {framework_id} does not hold {from} on {agent_id}")))?;
        *held = &rest + &to;
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.total = &agent.total.checked_sub(&from).unwrap_or_else(|_| agent.total.clone()) + &to;
        }
        Ok(())
    }

    fn suppress(&mut self, framework_id: &FrameworkId, roles: &[String]) {
        if let Some(f) = self.framework(framework_id) {
            let all = if roles.is_empty() {
                f.roles.clone()
            } else {
                roles.to_vec()
            };
            f.suppressed.extend(all);
        }
    }

    fn revive(&mut self, framework_id: &FrameworkId, roles: &[String]) {
        if let Some(f) = self.framework(framework_id) {
            if roles.is_empty() {
                f.suppressed.clear();
            } else {
                for r in roles {
                    f.suppressed.remove(r);
                }
            }
            f.refused.clear();
        }
    }

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<()> {
        validate_role(role)?;
        if !(weight.is_finite() && weight > 0.0) {
            return Err(invalid(format!("weight {weight} is not a positive number")));
        }
        self.weights.insert(role.to_string(), weight);
        Ok(())
    }

    fn set_quota(&mut self, role: &str, _quota: Quota) -> Result<()> {
        Err(invalid(format!(
            "the first-fit allocator cannot guarantee quota (role {role}): use the DRF allocator"
        )))
    }

    fn remove_quota(&mut self, _role: &str) {}

    fn roles(&self) -> Vec<RoleInfo> {
        let mut roles: BTreeMap<String, Resources> = BTreeMap::new();
        for f in &self.frameworks {
            for r in &f.roles {
                roles.entry(r.clone()).or_default();
            }
        }
        for r in self.weights.keys() {
            roles.entry(r.clone()).or_default();
        }
        for held in self.held.values() {
            for (role, r) in held {
                *roles.entry(role.clone()).or_default() += &r.filter(|e| matches!(e.value, Value::Scalar(_)));
            }
        }
        roles
            .into_iter()
            .map(|(name, allocated)| RoleInfo {
                weight: self.weights.get(&name).copied().unwrap_or(1.0),
                name,
                guarantees: Resources::new(),
                limits: None,
                allocated,
            })
            .collect()
    }

    fn allocate(&mut self, now: Instant) -> Vec<Allocation> {
        let mut out = Vec::new();
        for f in &mut self.frameworks {
            f.refused.retain(|_, until| *until > now);
        }
        for (agent_id, agent) in self.agents.iter_mut().filter(|(_, a)| a.active) {
            for f in &self.frameworks {
                if agent.free.is_empty() {
                    break;
                }
                if f.refused.contains_key(agent_id) {
                    continue;
                }
                for role in f.roles.iter().filter(|r| !f.suppressed.contains(*r)) {
                    let offer = agent.free.allocatable_to(role);
                    if !worth_offering(&offer) {
                        continue;
                    }
                    agent.free -= &offer;
                    *self
                        .held
                        .entry((f.id.clone(), agent_id.clone()))
                        .or_default()
                        .entry(role.clone())
                        .or_default() += &offer;
                    out.push(Allocation {
                        framework_id: f.id.clone(),
                        agent_id: agent_id.clone(),
                        role: role.as_str().into(),
                        resources: offer.allocated_to(role),
                    });
                }
            }
        }
        out
    }
}
