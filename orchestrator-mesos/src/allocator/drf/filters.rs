//! Offer filters: a framework that refused an agent's resources is not
//! offered them again until the filter expires or the agent has more.

use std::cmp::Reverse;
use std::time::Instant;

use super::DrfAllocator;
use crate::allocator::index::{AgentIx, ClientIx};

impl DrfAllocator {
    /// Whether the filter of client `c` on agent `a` refuses what the agent
    /// would offer to the client's role now.
    #[inline]
    pub(crate) fn filter_covers(&self, c: ClientIx, a: AgentIx) -> bool {
        let (Some(filter), Some(agent), Some(client)) =
            (self.filters.get(&(c, a)), self.agents.get(a), self.clients.get(c))
        else {
            return false;
        };
        let offerable = agent.available.allocatable_to(&self.roles.roles[client.role].name);
        filter.refused.contains(&offerable)
    }

    #[inline]
    pub(super) fn set_filter_bit(&mut self, c: ClientIx, a: AgentIx) {
        let covers = self.filter_covers(c, a);
        if let Some(client) = self.clients.get_mut(c) {
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
            let Some(agent) = self.agents.get_mut(a) else { continue };
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

    pub(super) fn remove_filter(&mut self, c: ClientIx, a: AgentIx) {
        self.filters.remove(&(c, a));
        if let Some(client) = self.clients.get_mut(c) {
            client.filtered.clear(a);
            client.has_filter.clear(a);
            client.filter_agents.retain(|x| *x != a);
        }
        if let Some(agent) = self.agents.get_mut(a) {
            agent.filters.retain(|x| *x != c);
        }
    }

    pub(super) fn clear_client_filters(&mut self, c: ClientIx) {
        let Some(agents) = self.clients.get_mut(c).map(|cl| std::mem::take(&mut cl.filter_agents)) else {
            return;
        };
        for a in agents {
            self.remove_filter(c, a);
        }
        if let Some(client) = self.clients.get_mut(c) {
            client.filtered.clear_all();
            client.has_filter.clear_all();
        }
    }
}
