//! The allocator's slot tables: agents, frameworks and *role clients* (a
//! framework in one of its roles, what DRF sorts within a role). Slots are
//! indices into the allocator's bitsets, so freed ones are reused.

use std::sync::Arc;
use std::time::Instant;

use orchestrator_core::{AgentId, FrameworkId, FrameworkInfo, Resources, Result};

use super::DrfAllocator;
use crate::allocator::bitset::BitSet;
use crate::allocator::holdings::Holdings;
use crate::allocator::index::{AgentIx, ClientIx, FrameworkIx, RoleIx};
use crate::allocator::quantities::Quantities;
use crate::allocator::stripped;

#[derive(Debug)]
pub(crate) struct AgentSlot {
    pub(crate) id: AgentId,
    pub(crate) total: Resources,
    /// `total` minus everything allocated (offers included), without
    /// allocation roles.
    pub(crate) available: Resources,
    /// What each client (framework in a role) holds here, with allocation roles.
    pub(crate) allocated: Vec<(ClientIx, Holdings)>,
    pub(crate) active: bool,
    /// Clients with a filter on this agent.
    pub(crate) filters: Vec<ClientIx>,
    /// `available` when the filter bits were last verified against it.
    pub(crate) verified: Option<Resources>,
    pub(crate) dirty: bool,
    /// Roles whose reserved-availability bit is set for this agent.
    pub(crate) reserved_roles: Vec<RoleIx>,
    /// Unreserved scalars of `available`, for headroom.
    pub(crate) avail_unreserved: Quantities,
    /// All scalars of `available`.
    pub(crate) avail_all: Quantities,
    /// The last refused set filtered on this agent, shared by new filters
    /// that refuse the same.
    pub(crate) last_refused: Option<Arc<Resources>>,
}

#[derive(Debug)]
pub(crate) struct RoleClient {
    pub(crate) framework: FrameworkIx,
    pub(crate) role: RoleIx,
    pub(crate) suppressed: bool,
    /// The framework left this role; kept until its allocation is recovered.
    pub(crate) detached: bool,
    pub(crate) allocated: Quantities,
    pub(crate) allocations: u64,
    /// Agents on which an active filter covers what the agent has.
    pub(crate) filtered: BitSet,
    /// Agents on which the client has a filter at all (list and bits).
    pub(crate) filter_agents: Vec<AgentIx>,
    pub(crate) has_filter: BitSet,
    /// On how many agents the client holds something.
    pub(crate) holding: usize,
}

#[derive(Debug)]
pub(crate) struct FrameworkSlot {
    pub(crate) id: FrameworkId,
    pub(crate) clients: Vec<ClientIx>,
}

#[derive(Debug)]
pub(crate) struct OfferFilter {
    /// Shared between the filters of one agent that refused the same thing
    /// (every framework declining the same offer), so a million filters do
    /// not hold a million copies.
    pub(crate) refused: Arc<Resources>,
    pub(crate) expires: Instant,
}

impl DrfAllocator {
    pub(super) fn add_client(&mut self, framework: FrameworkIx, role: RoleIx, suppressed: bool) -> ClientIx {
        let client = RoleClient {
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
        let c = self.clients.insert(client);
        self.roles.roles[role].clients.push(c);
        c
    }

    pub(super) fn drop_client(&mut self, c: ClientIx) {
        self.clear_client_filters(c);
        if let Some(client) = self.clients.remove(c) {
            self.roles.roles[client.role].clients.retain(|x| *x != c);
        }
    }

    pub(super) fn set_roles(
        &mut self,
        f: FrameworkIx,
        info: &FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<()> {
        let wanted = info.effective_roles();
        let mut role_ids = Vec::with_capacity(wanted.len());
        for name in &wanted {
            role_ids.push(self.roles.ensure(name)?);
        }
        let existing: Vec<ClientIx> = self.frameworks.get(f).map(|fw| fw.clients.clone()).unwrap_or_default();
        let mut clients = Vec::new();
        for &c in &existing {
            let Some(client) = self.clients.get_mut(c) else {
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
                .any(|c| self.clients.get(*c).is_some_and(|cl| cl.role == role));
            if !known {
                clients.push(self.add_client(f, role, suppressed_roles.contains(name)));
            }
        }
        if let Some(fw) = self.frameworks.get_mut(f) {
            fw.clients = clients;
        }
        Ok(())
    }

    /// Gives `resources` (with or without allocation roles) held by client
    /// `c` on agent `a` back to the agent; returns what was really held.
    pub(super) fn give_back(&mut self, c: ClientIx, a: AgentIx, resources: &Resources) -> Resources {
        let Some(client) = self.clients.get(c) else {
            return Resources::new();
        };
        let role_name = self.roles.roles[client.role].name.clone();
        let role = client.role;
        let wanted = resources.allocated_to(&role_name);
        let Some(agent) = self.agents.get_mut(a) else {
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
        if let Some(client) = self.clients.get_mut(c) {
            client.allocated.sub(&q);
            if emptied {
                client.holding -= 1;
            }
        }
        self.roles.unallocate(role, &q);
        plain
    }

    /// Drops detached clients that no longer hold anything.
    pub(super) fn prune_detached(&mut self, f: FrameworkIx) {
        let Some(fw) = self.frameworks.get(f) else { return };
        let idle: Vec<ClientIx> = fw
            .clients
            .iter()
            .copied()
            .filter(|c| {
                self.clients
                    .get(*c)
                    .is_some_and(|cl| cl.detached && cl.allocated.is_zero())
            })
            .filter(|c| self.clients.get(*c).is_some_and(|cl| cl.holding == 0))
            .collect();
        for c in idle {
            self.drop_client(c);
            if let Some(fw) = self.frameworks.get_mut(f) {
                fw.clients.retain(|x| *x != c);
            }
        }
    }

    #[inline]
    pub(super) fn record_allocation(&mut self, c: ClientIx, a: AgentIx, resources: Resources) {
        let q = self.names.quantities(&resources);
        self.record_allocation_of(c, a, resources, &q);
    }

    /// [`record_allocation`](Self::record_allocation) with the scalars known.
    pub(crate) fn record_allocation_of(&mut self, c: ClientIx, a: AgentIx, resources: Resources, q: &Quantities) {
        let Some(client) = self.clients.get(c) else { return };
        let role = client.role;
        if let Some(agent) = self.agents.get_mut(a) {
            match agent.allocated.iter_mut().find(|(x, _)| *x == c) {
                Some((_, held)) => held.add(resources),
                None => {
                    agent.allocated.push((c, Holdings::of(resources)));
                    if let Some(client) = self.clients.get_mut(c) {
                        client.holding += 1;
                    }
                }
            }
        }
        if let Some(client) = self.clients.get_mut(c) {
            client.allocated.add(q);
            client.allocations += 1;
        }
        self.roles.allocate(role, q);
    }
}
