//! The weighted, hierarchical DRF allocator.
//!
//! - `mod.rs`: the allocator's state and what callers may ask of it;
//! - `config.rs`: its settings and their validation;
//! - `slots.rs`: the slot tables (agents, frameworks, frameworks in a role)
//!   and how allocations are recorded in them;
//! - `availability.rs`: which agents have something worth offering, per role;
//! - `filters.rs`: offer filters and their expiry;
//! - `events.rs`: the [`Allocator`](orchestrator_core::Allocator) trait: how events change the state;
//! - `round.rs`: the allocation round itself.
//!
//! The small helpers the round calls across these files are `#[inline]`,
//! so the split costs the hot path nothing.

mod availability;
mod config;
mod events;
mod filters;
mod round;
mod slots;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use rustc_hash::FxHashMap;

use orchestrator_core::{AgentId, FrameworkId, Resources, RoleInfo};

use super::bitset::BitSet;
use super::index::{AgentIx, ClientIx, FrameworkIx, IxVec, RoleIx, Slots};
use super::quantities::{Names, Quantities};
use super::roles::Roles;
use super::stripped;
pub use config::{AllocatorBuilder, AllocatorConfig};
use slots::{AgentSlot, FrameworkSlot, OfferFilter, RoleClient};

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
    pub(crate) agents: Slots<AgentIx, AgentSlot>,
    pub(super) agent_index: HashMap<AgentId, AgentIx>,
    pub(crate) frameworks: Slots<FrameworkIx, FrameworkSlot>,
    pub(super) framework_index: HashMap<FrameworkId, FrameworkIx>,
    pub(crate) clients: Slots<ClientIx, RoleClient>,
    pub(crate) filters: FxHashMap<(ClientIx, AgentIx), OfferFilter>,
    pub(crate) expiry: BinaryHeap<Reverse<(Instant, ClientIx, AgentIx)>>,
    /// Agents with unreserved resources worth offering.
    pub(crate) avail_unreserved: BitSet,
    /// Per role: agents with resources reserved for exactly that role.
    pub(crate) avail_reserved: IxVec<RoleIx, BitSet>,
    pub(crate) dirty_agents: Vec<AgentIx>,
}

impl Default for DrfAllocator {
    fn default() -> Self {
        Self::with_config(AllocatorConfig::default())
    }
}

impl DrfAllocator {
    /// A builder with Mesos's defaults.
    pub fn builder() -> AllocatorBuilder {
        AllocatorBuilder::default()
    }

    pub(super) fn with_config(config: AllocatorConfig) -> Self {
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
            agents: Slots::default(),
            agent_index: HashMap::new(),
            frameworks: Slots::default(),
            framework_index: HashMap::new(),
            clients: Slots::default(),
            filters: FxHashMap::default(),
            expiry: BinaryHeap::new(),
            avail_unreserved: BitSet::default(),
            avail_reserved: IxVec::default(),
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
        for agent in self.agents.values() {
            for (c, held) in &agent.allocated {
                let client_role = self.clients.get(*c).map(|c| c.role);
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
        self.agents.get(a).map(|a| &a.available)
    }

    #[inline]
    pub(super) fn framework_slot(&self, id: &FrameworkId) -> Option<FrameworkIx> {
        self.framework_index.get(id).copied()
    }

    #[inline]
    pub(super) fn agent_slot(&self, id: &AgentId) -> Option<AgentIx> {
        self.agent_index.get(id).copied()
    }

    #[inline]
    pub(super) fn client_for(&self, f: FrameworkIx, role: Option<&str>) -> Option<ClientIx> {
        let fw = self.frameworks.get(f)?;
        fw.clients.iter().copied().find(|c| {
            self.clients
                .get(*c)
                .is_some_and(|cl| role.is_none_or(|r| self.roles.roles[cl.role].name == r))
        })
    }
}
