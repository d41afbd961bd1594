//! The weighted, hierarchical DRF allocator: its state and how events
//! change it. The allocation round itself is in `round.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use orchestrator_core::{
    AgentId, AgentInfo, Allocation, Allocator, Error, FrameworkId, FrameworkInfo, Quota, Resources, Result, RoleInfo,
    Value,
};

use super::bitset::BitSet;
use super::stripped;
use super::holdings::Holdings;
use super::quantities::{Names, Quantities};
use super::roles::Roles;

/// Settings of the [`DrfAllocator`], built with [`DrfAllocator::builder`].
#[derive(Clone, Debug)]
pub struct AllocatorConfig {
    /// The master's allocation interval; every filter lasts at least this long.
    pub allocation_interval: Duration,
    /// An agent is offered only if what it has for a role contains one of
    /// these quantities (Mesos `--min_allocatable_resources`, default
    /// `cpus:0.01|mem:32`).
    pub min_allocatable: Vec<Resources>,
    /// Resources left out of fair-share computation (Mesos
    /// `--fair_sharing_excluded_resource_names`, e.g. `gpus`).
    pub fair_sharing_excluded: Vec<String>,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            allocation_interval: Duration::from_secs(1),
            min_allocatable: vec![scalar("cpus", 0.01), scalar("mem", 32.0)],
            fair_sharing_excluded: Vec::new(),
        }
    }
}

fn scalar(name: &str, v: f64) -> Resources {
    // Both constants are valid scalars.
    orchestrator_core::Resource::scalar(name, v)
        .map(|r| [r].into_iter().collect())
        .unwrap_or_default()
}

/// Builds a [`DrfAllocator`], validating its settings.
#[derive(Debug, Default)]
pub struct AllocatorBuilder {
    config: AllocatorConfig,
    min_allocatable_text: Option<String>,
}

impl AllocatorBuilder {
    /// The allocation interval (default 1 s), the shortest any filter lasts.
    #[must_use]
    pub fn allocation_interval(mut self, interval: Duration) -> Self {
        self.config.allocation_interval = interval;
        self
    }

    /// Minimum allocatable quantities in the Mesos flag form:
    /// alternatives separated by `|`, e.g. `cpus:0.01|mem:32`.
    #[must_use]
    pub fn min_allocatable(mut self, spec: &str) -> Self {
        self.min_allocatable_text = Some(spec.to_string());
        self
    }

    /// Resource names left out of fair sharing.
    #[must_use]
    pub fn exclude_from_fair_sharing<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.config.fair_sharing_excluded = names.into_iter().map(Into::into).collect();
        self
    }

    /// The allocator.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero interval or minimum quantities that are
    /// not scalars.
    pub fn build(mut self) -> Result<DrfAllocator> {
        if self.config.allocation_interval.is_zero() {
            return Err(Error::Invalid {
                what: "allocation interval",
                reason: "must be positive".into(),
            });
        }
        if let Some(text) = self.min_allocatable_text.take() {
            let mut alternatives = Vec::new();
            for alt in text.split('|').map(str::trim).filter(|a| !a.is_empty()) {
                let r: Resources = alt.parse()?;
                if r.iter()
                    .any(|x| !matches!(x.value, Value::Scalar(_)) || x.is_reserved())
                {
                    return Err(Error::Invalid {
                        what: "min allocatable resources",
                        reason: format!("`{alt}` must be unreserved scalars"),
                    });
                }
                alternatives.push(r);
            }
            self.config.min_allocatable = alternatives;
        }
        Ok(DrfAllocator::with_config(self.config))
    }
}

#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) id: AgentId,
    pub(crate) total: Resources,
    /// `total` minus everything allocated (offers included), without
    /// allocation roles.
    pub(crate) available: Resources,
    /// What each client (framework in a role) holds here, with allocation roles.
    pub(crate) allocated: Vec<(usize, Holdings)>,
    pub(crate) active: bool,
    /// Clients with a filter on this agent.
    pub(crate) filters: Vec<usize>,
    /// `available` when the filter bits were last verified against it.
    pub(crate) verified: Option<Resources>,
    pub(crate) dirty: bool,
    /// Roles whose reserved-availability bit is set for this agent.
    pub(crate) reserved_roles: Vec<usize>,
    /// Unreserved scalars of `available`, for headroom.
    pub(crate) avail_unreserved: Quantities,
    /// All scalars of `available`.
    pub(crate) avail_all: Quantities,
    /// The last refused set filtered on this agent, shared by new filters
    /// that refuse the same.
    pub(crate) last_refused: Option<Arc<Resources>>,
}

#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) framework: usize,
    pub(crate) role: usize,
    pub(crate) suppressed: bool,
    /// The framework left this role; kept until its allocation is recovered.
    pub(crate) detached: bool,
    pub(crate) allocated: Quantities,
    pub(crate) allocations: u64,
    /// Agents on which an active filter covers what the agent has.
    pub(crate) filtered: BitSet,
    /// Agents on which the client has a filter at all (list and bits).
    pub(crate) filter_agents: Vec<usize>,
    pub(crate) has_filter: BitSet,
    /// On how many agents the client holds something.
    pub(crate) holding: usize,
}

#[derive(Debug)]
pub(crate) struct Framework {
    pub(crate) id: FrameworkId,
    pub(crate) clients: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct Filter {
    /// Shared between the filters of one agent that refused the same thing
    /// (every framework declining the same offer), so a million filters do
    /// not hold a million copies.
    pub(crate) refused: Arc<Resources>,
    pub(crate) expires: Instant,
}

/// Weighted Dominant Resource Fairness over hierarchical roles, then over
/// frameworks within a role, with quota guarantees and limits, reservations,
/// offer filters and suppression: the allocation policy of Apache Mesos.
///
/// A round is *progressive filling*: the role with the lowest weighted
/// dominant share (roles below their quota guarantee first) picks, its
/// framework with the lowest share receives one agent's free resources, the
/// shares are updated, and so on until no framework can use anything. An
/// agent is found for a framework by scanning a bitset of available agents
/// minus the agents it has filtered, from a per-framework cursor that never
/// moves back within a round, so a round costs about
/// `frameworks × agents / 64` word operations plus a heap operation per offer,
/// instead of Mesos's `agents × frameworks` filter checks.
#[derive(Debug)]
pub struct DrfAllocator {
    pub(crate) config: AllocatorConfig,
    pub(crate) min_allocatable: Vec<Quantities>,
    pub(crate) names: Names,
    pub(crate) roles: Roles,
    pub(crate) total: Quantities,
    pub(crate) agents: Vec<Option<Agent>>,
    agent_index: HashMap<AgentId, usize>,
    free_agent_slots: Vec<usize>,
    pub(crate) frameworks: Vec<Option<Framework>>,
    framework_index: HashMap<FrameworkId, usize>,
    free_framework_slots: Vec<usize>,
    pub(crate) clients: Vec<Option<Client>>,
    free_client_slots: Vec<usize>,
    pub(crate) filters: FxHashMap<(usize, usize), Filter>,
    pub(crate) expiry: BinaryHeap<Reverse<(Instant, usize, usize)>>,
    /// Agents with unreserved resources worth offering.
    pub(crate) avail_unreserved: BitSet,
    /// Per role: agents with resources reserved for exactly that role.
    pub(crate) avail_reserved: Vec<BitSet>,
    pub(crate) dirty_agents: Vec<usize>,
}

impl Default for DrfAllocator {
    fn default() -> Self {
        Self::with_config(AllocatorConfig::default())
    }
}

/// Puts `value` in a freed slot or a new one and returns its index; slots
/// are indices into the allocator's bitsets, so they are reused.
fn insert_slot<T>(slots: &mut Vec<Option<T>>, free: &mut Vec<usize>, value: T) -> usize {
    match free.pop() {
        Some(slot) => {
            slots[slot] = Some(value);
            slot
        }
        None => {
            slots.push(Some(value));
            slots.len() - 1
        }
    }
}

impl DrfAllocator {
    /// A builder with Mesos's defaults.
    pub fn builder() -> AllocatorBuilder {
        AllocatorBuilder::default()
    }

    fn with_config(config: AllocatorConfig) -> Self {
        let mut names = Names::new(&config.fair_sharing_excluded);
        for m in &config.min_allocatable {
            names.learn(m);
        }
        let min_allocatable = config.min_allocatable.iter().map(|m| names.quantities(m)).collect();
        Self {
            config,
            min_allocatable,
            names,
            roles: Roles::default(),
            total: Quantities::default(),
            agents: Vec::new(),
            agent_index: HashMap::new(),
            free_agent_slots: Vec::new(),
            frameworks: Vec::new(),
            framework_index: HashMap::new(),
            free_framework_slots: Vec::new(),
            clients: Vec::new(),
            free_client_slots: Vec::new(),
            filters: FxHashMap::default(),
            expiry: BinaryHeap::new(),
            avail_unreserved: BitSet::default(),
            avail_reserved: Vec::new(),
            dirty_agents: Vec::new(),
        }
    }

    /// The weighted dominant share of a role (its subtree), for `/roles`.
    pub fn role_share(&self, role: &str) -> Option<f64> {
        let r = &self.roles.roles[self.roles.get(role)?];
        Some(r.subtree.dominant_share(&self.total, self.names.excluded()) / r.weight)
    }

    /// What a role (with its descendants) holds, offers included.
    pub fn role_allocation(&self, role: &str) -> Option<Resources> {
        let r = self.roles.get(role)?;
        let mut out = Resources::new();
        for agent in self.agents.iter().flatten() {
            for (c, held) in &agent.allocated {
                let client_role = self.clients[*c].as_ref().map(|c| c.role);
                if client_role.is_some_and(|cr| self.roles.chain(cr).any(|x| x == r)) {
                    out += &stripped(&held.total());
                }
            }
        }
        Some(out)
    }

    /// Every role the allocator knows, with its weight, quota and what it
    /// (with its descendants) holds, for `/roles`, `/weights` and `/quota`.
    pub fn roles(&self) -> Vec<RoleInfo> {
        self.roles
            .roles
            .iter()
            .map(|r| RoleInfo {
                name: r.name.to_string(),
                weight: r.weight,
                guarantees: self.names.resources(&r.guarantee),
                limits: {
                    let mut q = Quantities::default();
                    for (i, l) in r.limit.iter().enumerate() {
                        if let Some(l) = l {
                            q.add_at(i, *l);
                        }
                    }
                    (!r.limit.iter().all(Option::is_none)).then(|| self.names.resources(&q))
                },
                allocated: self.names.resources(&r.subtree),
            })
            .collect()
    }

    /// What is free (neither used nor offered) on an agent.
    pub fn available(&self, agent_id: &AgentId) -> Option<&Resources> {
        let a = *self.agent_index.get(agent_id)?;
        self.agents[a].as_ref().map(|a| &a.available)
    }

    pub(crate) fn meets_min(&self, q: &Quantities) -> bool {
        self.min_allocatable.is_empty() || self.min_allocatable.iter().any(|m| q.contains(m))
    }

    fn reserved_bits(&mut self, role: usize) -> &mut BitSet {
        if self.avail_reserved.len() <= role {
            self.avail_reserved.resize_with(role + 1, BitSet::default);
        }
        &mut self.avail_reserved[role]
    }

    /// Recomputes an agent's availability bits from its `available`.
    pub(crate) fn refresh_agent(&mut self, a: usize) {
        let Some(agent) = self.agents[a].as_mut() else { return };
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
        let mut roles_now: Vec<(usize, Quantities)> = Vec::new();
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
        if let Some(agent) = self.agents[a].as_mut() {
            agent.reserved_roles = kept;
        }
    }

    pub(crate) fn mark_dirty(&mut self, a: usize) {
        if let Some(agent) = self.agents[a].as_mut() {
            if !agent.dirty {
                agent.dirty = true;
                self.dirty_agents.push(a);
            }
        }
    }

    /// Whether the filter of client `c` on agent `a` refuses what the agent
    /// would offer to the client's role now.
    pub(crate) fn filter_covers(&self, c: usize, a: usize) -> bool {
        let (Some(filter), Some(agent), Some(client)) = (
            self.filters.get(&(c, a)),
            self.agents[a].as_ref(),
            self.clients[c].as_ref(),
        ) else {
            return false;
        };
        let offerable = agent.available.allocatable_to(&self.roles.roles[client.role].name);
        filter.refused.contains(&offerable)
    }

    fn set_filter_bit(&mut self, c: usize, a: usize) {
        let covers = self.filter_covers(c, a);
        if let Some(client) = self.clients[c].as_mut() {
            if covers {
                client.filtered.set(a);
            } else {
                client.filtered.clear(a);
            }
        }
    }

    /// Drops expired filters and re-verifies the filters of agents whose
    /// free resources changed since they were last verified.
    pub(crate) fn maintain_filters(&mut self, now: Instant) {
        while let Some(Reverse((when, c, a))) = self.expiry.peek().copied() {
            if when > now {
                break;
            }
            self.expiry.pop();
            if self.filters.get(&(c, a)).is_some_and(|f| f.expires == when) {
                self.remove_filter(c, a);
            }
        }
        for a in std::mem::take(&mut self.dirty_agents) {
            let Some(agent) = self.agents[a].as_mut() else { continue };
            agent.dirty = false;
            if agent.verified.as_ref() == Some(&agent.available) {
                continue;
            }
            agent.verified = Some(agent.available.clone());
            let clients = agent.filters.clone();
            for c in clients {
                self.set_filter_bit(c, a);
            }
        }
    }

    fn remove_filter(&mut self, c: usize, a: usize) {
        self.filters.remove(&(c, a));
        if let Some(client) = self.clients[c].as_mut() {
            client.filtered.clear(a);
            client.has_filter.clear(a);
            client.filter_agents.retain(|x| *x != a);
        }
        if let Some(agent) = self.agents[a].as_mut() {
            agent.filters.retain(|x| *x != c);
        }
    }

    fn clear_client_filters(&mut self, c: usize) {
        let Some(agents) = self.clients[c].as_mut().map(|cl| std::mem::take(&mut cl.filter_agents)) else {
            return;
        };
        for a in agents {
            self.remove_filter(c, a);
        }
        if let Some(client) = self.clients[c].as_mut() {
            client.filtered.clear_all();
            client.has_filter.clear_all();
        }
    }

    fn add_client(&mut self, framework: usize, role: usize, suppressed: bool) -> usize {
        let client = Client {
            framework,
            role,
            suppressed,
            detached: false,
            allocated: Quantities::default(),
            allocations: 0,
            filtered: BitSet::default(),
            filter_agents: Vec::new(),
            has_filter: BitSet::default(),
            holding: 0,
        };
        let c = insert_slot(&mut self.clients, &mut self.free_client_slots, client);
        self.roles.roles[role].clients.push(c);
        c
    }

    fn drop_client(&mut self, c: usize) {
        self.clear_client_filters(c);
        if let Some(client) = self.clients[c].take() {
            self.roles.roles[client.role].clients.retain(|x| *x != c);
            self.free_client_slots.push(c);
        }
    }

    fn framework_slot(&self, id: &FrameworkId) -> Option<usize> {
        self.framework_index.get(id).copied()
    }

    fn agent_slot(&self, id: &AgentId) -> Option<usize> {
        self.agent_index.get(id).copied()
    }

    fn set_roles(&mut self, f: usize, info: &FrameworkInfo, suppressed_roles: &[String]) -> Result<()> {
        let wanted = info.effective_roles();
        let mut role_ids = Vec::with_capacity(wanted.len());
        for name in &wanted {
            role_ids.push(self.roles.ensure(name)?);
        }
        let existing: Vec<usize> = self.frameworks[f]
            .as_ref()
            .map(|fw| fw.clients.clone())
            .unwrap_or_default();
        let mut clients = Vec::new();
        for &c in &existing {
            let Some(client) = self.clients[c].as_mut() else {
                continue;
            };
            let keep = role_ids.contains(&client.role);
            client.detached = !keep;
            client.suppressed = !keep
                || suppressed_roles
                    .iter()
                    .any(|n| self.roles.roles[client.role].name == n.as_str());
            clients.push(c);
        }
        for (name, role) in wanted.iter().zip(role_ids) {
            let known = existing
                .iter()
                .any(|c| self.clients[*c].as_ref().is_some_and(|cl| cl.role == role));
            if !known {
                clients.push(self.add_client(f, role, suppressed_roles.contains(name)));
            }
        }
        if let Some(fw) = self.frameworks[f].as_mut() {
            fw.clients = clients;
        }
        Ok(())
    }

    /// Gives `resources` (with or without allocation roles) held by client
    /// `c` on agent `a` back to the agent; returns what was really held.
    fn give_back(&mut self, c: usize, a: usize, resources: &Resources) -> Resources {
        let Some(client) = self.clients[c].as_ref() else {
            return Resources::new();
        };
        let role_name = self.roles.roles[client.role].name.clone();
        let role = client.role;
        let wanted = resources.allocated_to(&role_name);
        let Some(agent) = self.agents[a].as_mut() else {
            return Resources::new();
        };
        let Some(pos) = agent.allocated.iter().position(|(x, _)| *x == c) else {
            return Resources::new();
        };
        // Only what is really held goes back: a framework cannot return
        // more than it was given.
        let returned = agent.allocated[pos].1.take(&wanted);
        let emptied = agent.allocated[pos].1.is_empty();
        if emptied {
            agent.allocated.swap_remove(pos);
        }
        let plain = stripped(&returned);
        agent.available += &plain;
        let q = self.names.quantities(&plain);
        if let Some(client) = self.clients[c].as_mut() {
            client.allocated.sub(&q);
            if emptied {
                client.holding -= 1;
            }
        }
        self.roles.unallocate(role, &q);
        plain
    }

    /// Drops detached clients that no longer hold anything.
    fn prune_detached(&mut self, f: usize) {
        let Some(fw) = self.frameworks[f].as_ref() else { return };
        let idle: Vec<usize> = fw
            .clients
            .iter()
            .copied()
            .filter(|c| {
                self.clients[*c]
                    .as_ref()
                    .is_some_and(|cl| cl.detached && cl.allocated.is_zero())
            })
            .filter(|c| self.clients[*c].as_ref().is_some_and(|cl| cl.holding == 0))
            .collect();
        for c in idle {
            self.drop_client(c);
            if let Some(fw) = self.frameworks[f].as_mut() {
                fw.clients.retain(|x| *x != c);
            }
        }
    }

    fn record_allocation(&mut self, c: usize, a: usize, resources: Resources) {
        let q = self.names.quantities(&resources);
        self.record_allocation_of(c, a, resources, &q);
    }

    /// [`record_allocation`](Self::record_allocation) with the scalars known.
    pub(crate) fn record_allocation_of(&mut self, c: usize, a: usize, resources: Resources, q: &Quantities) {
        let Some(client) = self.clients[c].as_ref() else { return };
        let role = client.role;
        if let Some(agent) = self.agents[a].as_mut() {
            match agent.allocated.iter_mut().find(|(x, _)| *x == c) {
                Some((_, held)) => held.add(resources),
                None => {
                    agent.allocated.push((c, Holdings::of(resources)));
                    if let Some(client) = self.clients[c].as_mut() {
                        client.holding += 1;
                    }
                }
            }
        }
        if let Some(client) = self.clients[c].as_mut() {
            client.allocated.add(q);
            client.allocations += 1;
        }
        self.roles.allocate(role, q);
    }

    fn client_for(&self, f: usize, role: Option<&str>) -> Option<usize> {
        let fw = self.frameworks[f].as_ref()?;
        fw.clients.iter().copied().find(|c| {
            self.clients[*c]
                .as_ref()
                .is_some_and(|cl| role.is_none_or(|r| self.roles.roles[cl.role].name == r))
        })
    }
}

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
        let agent = Agent {
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
        let a = insert_slot(&mut self.agents, &mut self.free_agent_slots, agent);
        self.agent_index.insert(agent_id, a);
        for u in used {
            if let Some(f) = self.framework_slot(&u.framework_id) {
                let c = match self.client_for(f, Some(&u.role)) {
                    Some(c) => c,
                    None => {
                        let role = self.roles.ensure(&u.role)?;
                        let c = self.add_client(f, role, true);
                        if let Some(client) = self.clients[c].as_mut() {
                            client.detached = true;
                        }
                        if let Some(fw) = self.frameworks[f].as_mut() {
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
        if let Some(agent) = self.agents[a].as_mut() {
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
        let Some(agent) = self.agents[a].take() else { return };
        for c in &agent.filters {
            self.filters.remove(&(*c, a));
            if let Some(client) = self.clients[*c].as_mut() {
                client.filtered.clear(a);
                client.has_filter.clear(a);
                client.filter_agents.retain(|x| *x != a);
            }
        }
        for (c, held) in &agent.allocated {
            let q = self.names.quantities(&held.total());
            if let Some(client) = self.clients[*c].as_mut() {
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
        self.free_agent_slots.push(a);
    }

    fn deactivate_agent(&mut self, agent_id: &AgentId) {
        if let Some(a) = self.agent_slot(agent_id) {
            if let Some(agent) = self.agents[a].as_mut() {
                agent.active = false;
            }
            self.refresh_agent(a);
        }
    }

    fn activate_agent(&mut self, agent_id: &AgentId) {
        if let Some(a) = self.agent_slot(agent_id) {
            if let Some(agent) = self.agents[a].as_mut() {
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
            super::roles::validate_role(&role)?;
        }
        let fw = Framework {
            id: framework_id.clone(),
            clients: Vec::new(),
        };
        let f = insert_slot(&mut self.frameworks, &mut self.free_framework_slots, fw);
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
            super::roles::validate_role(&role)?;
        }
        self.set_roles(f, info, suppressed)?;
        self.prune_detached(f);
        Ok(())
    }

    fn remove_framework(&mut self, framework_id: &FrameworkId) {
        let Some(f) = self.framework_index.remove(framework_id) else {
            return;
        };
        let Some(fw) = self.frameworks[f].as_ref() else { return };
        let clients = fw.clients.clone();
        // Removing a framework is rare: find its agents by a scan rather
        // than keep a per-framework index up to date on every offer.
        let agents: Vec<usize> = (0..self.agents.len())
            .filter(|a| {
                self.agents[*a]
                    .as_ref()
                    .is_some_and(|ag| ag.allocated.iter().any(|(c, _)| clients.contains(c)))
            })
            .collect();
        for &a in &agents {
            for &c in &clients {
                let held = self.agents[a]
                    .as_ref()
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
        self.frameworks[f] = None;
        self.free_framework_slots.push(f);
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
            let candidates: Vec<usize> = match role.as_deref() {
                Some(name) => self.client_for(f, Some(name)).into_iter().collect(),
                None => self.frameworks[f]
                    .as_ref()
                    .map(|fw| fw.clients.clone())
                    .unwrap_or_default(),
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
        // Filter bits were verified against `verified`; an agent whose free
        // resources are back to exactly that (an offer declined whole) needs
        // no re-verification.
        let unchanged = self.agents[a]
            .as_ref()
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
                let Some(agent) = self.agents[a].as_mut() else { continue };
                let refused = match &agent.last_refused {
                    Some(shared) if **shared == refused => Arc::clone(shared),
                    _ => {
                        let shared = Arc::new(refused);
                        agent.last_refused = Some(Arc::clone(&shared));
                        shared
                    }
                };
                let replaced = self.filters.insert((c, a), Filter { refused, expires });
                self.expiry.push(Reverse((expires, c, a)));
                if replaced.is_none() {
                    if let Some(agent) = self.agents[a].as_mut() {
                        agent.filters.push(c);
                    }
                    if let Some(client) = self.clients[c].as_mut() {
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
        let role = self.clients[c]
            .as_ref()
            .map(|cl| self.roles.roles[cl.role].name.clone())
            .ok_or_else(|| invalid(format!("framework {framework_id} holds nothing in that role")))?;
        let (from_r, to_r) = (from.allocated_to(&role), to.allocated_to(&role));
        let agent = self.agents[a]
            .as_mut()
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
        let clients = self.frameworks[f]
            .as_ref()
            .map(|fw| fw.clients.clone())
            .unwrap_or_default();
        for c in clients {
            if let Some(client) = self.clients[c].as_mut() {
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
        let clients = self.frameworks[f]
            .as_ref()
            .map(|fw| fw.clients.clone())
            .unwrap_or_default();
        for c in clients {
            let hit = self.clients[c].as_ref().is_some_and(|cl| {
                !cl.detached && (roles.is_empty() || roles.iter().any(|n| self.roles.roles[cl.role].name == n.as_str()))
            });
            if hit {
                if let Some(client) = self.clients[c].as_mut() {
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
