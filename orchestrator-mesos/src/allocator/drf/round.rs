//! One allocation round: progressive filling over the role tree.
//!
//! Every node of the role tree keeps a min-heap of its children (child roles
//! and a virtual "own" child standing for the frameworks directly in the
//! role), keyed by quota priority and weighted dominant share. Keys change
//! after every allocation, so heap entries carry a version and stale ones are
//! skipped when they surface (a lazy decrease-key).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use orchestrator_core::{Allocation, Resource, Resources, Scalar, Value};

use super::DrfAllocator;
use crate::allocator::index::{AgentIx, ClientIx, Ix, IxVec, RoleIx};
use crate::allocator::quantities::Quantities;

/// A sort key of a role (`Key<RoleIx>`) or of a client within its role
/// (`Key<ClientIx>`): the lowest goes first.
#[derive(Clone, Copy, Debug)]
struct Key<I> {
    /// 0 while below a quota guarantee, else 1.
    prio: u8,
    share: f64,
    tie: u64,
    id: I,
}

impl<I: Ord> PartialEq for Key<I> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<I: Ord> Eq for Key<I> {}
impl<I: Ord> PartialOrd for Key<I> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<I: Ord> Ord for Key<I> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prio
            .cmp(&other.prio)
            .then(self.share.total_cmp(&other.share))
            .then(self.tie.cmp(&other.tie))
            .then(self.id.cmp(&other.id))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Role(RoleIx),
    /// The frameworks directly in a role.
    Own(RoleIx),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    key: Key<RoleIx>,
    node: Node,
    version: u32,
}

type MinHeap<T> = BinaryHeap<Reverse<T>>;

/// A heap of the role tree: a role's children, or the top-level roles.
#[derive(Clone, Copy, Debug)]
enum Heap {
    Root,
    Of(RoleIx),
}

impl From<Option<RoleIx>> for Heap {
    /// The heap a role with this parent sits in.
    fn from(parent: Option<RoleIx>) -> Self {
        parent.map_or(Heap::Root, Heap::Of)
    }
}

/// Per-round bookkeeping.
struct Round {
    /// Children of each role, and the top-level roles.
    heaps: IxVec<RoleIx, MinHeap<Entry>>,
    root: MinHeap<Entry>,
    clients: IxVec<RoleIx, MinHeap<(Key<ClientIx>, u32)>>,
    role_ver: IxVec<RoleIx, u32>,
    role_active: IxVec<RoleIx, bool>,
    own_ver: IxVec<RoleIx, u32>,
    own_active: IxVec<RoleIx, bool>,
    client_ver: IxVec<ClientIx, u32>,
    client_active: IxVec<ClientIx, bool>,
    /// Per client: the agent bit its scan resumes from.
    cursor: IxVec<ClientIx, usize>,
    /// Per role: the roles of its chain that have reserved resources somewhere.
    reserved_chain: IxVec<RoleIx, Vec<RoleIx>>,
    /// Unallocated unreserved scalars on active agents.
    headroom_available: Quantities,
    /// Unmet guarantees of the top-most roles with quota.
    headroom_required: Quantities,
    /// Per role: whether it or an ancestor has a quota limit.
    limited: IxVec<RoleIx, bool>,
    /// Words of `avail_unreserved` (and per role, of `avail_reserved`) before
    /// this one are empty. Availability only shrinks within a round, so the
    /// hints only move forward, and no scan walks the taken agents again.
    unreserved_hint: usize,
    reserved_hint: IxVec<RoleIx, usize>,
    /// Live entries per heap of `heaps` (and of `root`), and live clients
    /// per role. Nodes only leave during a round, so a heap with one live
    /// entry keeps it and its order needs no re-keying.
    heap_live: IxVec<RoleIx, usize>,
    root_live: usize,
    client_live: IxVec<RoleIx, usize>,
}

/// What an agent can give a framework.
enum Candidate {
    /// Everything it has: taken without copying.
    Whole,
    /// A part (other roles' reservations left out, or shrunk to fit quota).
    Part(Resources),
}

impl Round {
    #[inline]
    fn heap(&self, h: Heap) -> &MinHeap<Entry> {
        match h {
            Heap::Root => &self.root,
            Heap::Of(r) => &self.heaps[r],
        }
    }

    #[inline]
    fn heap_mut(&mut self, h: Heap) -> &mut MinHeap<Entry> {
        match h {
            Heap::Root => &mut self.root,
            Heap::Of(r) => &mut self.heaps[r],
        }
    }

    #[inline]
    fn live(&mut self, h: Heap) -> &mut usize {
        match h {
            Heap::Root => &mut self.root_live,
            Heap::Of(r) => &mut self.heap_live[r],
        }
    }
}

impl DrfAllocator {
    fn role_key(&self, r: RoleIx) -> Key<RoleIx> {
        let role = &self.roles.roles[r];
        Key {
            prio: u8::from(!role.below_guarantee()),
            share: role.subtree.dominant_share(&self.total, self.names.excluded()) / role.weight,
            tie: 0,
            id: r,
        }
    }

    fn own_key(&self, r: RoleIx) -> Key<RoleIx> {
        let role = &self.roles.roles[r];
        Key {
            prio: 1,
            share: role.own.dominant_share(&self.total, self.names.excluded()) / role.weight,
            tie: 0,
            id: r,
        }
    }

    fn client_key(&self, c: ClientIx) -> Key<ClientIx> {
        let client = self.clients.get(c);
        Key {
            prio: 0,
            share: client.map_or(0.0, |cl| {
                cl.allocated.dominant_share(&self.total, self.names.excluded())
            }),
            tie: client.map_or(0, |cl| cl.allocations),
            id: c,
        }
    }

    /// The top-most role of `r`'s chain that has a guarantee.
    fn top_guaranteed(&self, r: RoleIx) -> Option<RoleIx> {
        self.roles
            .chain(r)
            .filter(|x| !self.roles.roles[*x].guarantee.is_zero())
            .last()
    }

    fn start_round(&self) -> Round {
        let n = self.roles.roles.len();
        let clients = self.clients.capacity();
        let has_reserved = |r: RoleIx| self.avail_reserved.get(r).is_some_and(|b| !b.is_empty());
        let roles = self.roles.roles.indices();
        let mut st = Round {
            heaps: IxVec::with(n, BinaryHeap::new),
            root: BinaryHeap::new(),
            clients: IxVec::with(n, BinaryHeap::new),
            role_ver: IxVec::filled(0, n),
            role_active: IxVec::filled(false, n),
            own_ver: IxVec::filled(0, n),
            own_active: IxVec::filled(false, n),
            client_ver: IxVec::filled(0, clients),
            client_active: IxVec::filled(false, clients),
            cursor: IxVec::filled(0, clients),
            reserved_chain: IxVec::from_vec(
                roles
                    .clone()
                    .map(|r| self.roles.chain(r).filter(|x| has_reserved(*x)).collect())
                    .collect(),
            ),
            headroom_available: Quantities::default(),
            headroom_required: Quantities::default(),
            limited: IxVec::from_vec(
                roles
                    .clone()
                    .map(|r| {
                        self.roles
                            .chain(r)
                            .any(|x| self.roles.roles[x].limit.iter().any(Option::is_some))
                    })
                    .collect(),
            ),
            unreserved_hint: 0,
            reserved_hint: IxVec::filled(0, n),
            heap_live: IxVec::filled(0, n),
            root_live: 0,
            client_live: IxVec::filled(0, n),
        };
        for r in roles.clone() {
            if self.top_guaranteed(r) == Some(r) {
                st.headroom_required.add(&self.roles.roles[r].unmet_guarantee());
            }
        }
        // Headroom matters only while some guarantee is unmet.
        if !st.headroom_required.is_zero() {
            for agent in self.agents.values().filter(|a| a.active) {
                st.headroom_available.add(&agent.avail_unreserved);
            }
        }
        for (c, client) in self.clients.iter() {
            if client.suppressed || client.detached || self.frameworks.get(client.framework).is_none() {
                continue;
            }
            st.client_active[c] = true;
            st.client_live[client.role] += 1;
            let heap = &mut st.clients[client.role];
            if heap.capacity() == 0 {
                heap.reserve(self.roles.roles[client.role].clients.len() * 4);
            }
            heap.push(Reverse((self.client_key(c), 0)));
        }
        // Children have larger indices than their parents: bottom-up.
        for r in roles.rev() {
            if !st.clients[r].is_empty() {
                st.own_active[r] = true;
                st.heap_live[r] += 1;
                st.heaps[r].push(Reverse(Entry {
                    key: self.own_key(r),
                    node: Node::Own(r),
                    version: 0,
                }));
            }
            if !st.heaps[r].is_empty() {
                st.role_active[r] = true;
                let parent = Heap::from(self.roles.roles[r].parent);
                *st.live(parent) += 1;
                st.heap_mut(parent).push(Reverse(Entry {
                    key: self.role_key(r),
                    node: Node::Role(r),
                    version: 0,
                }));
            }
        }
        st
    }

    pub(crate) fn run_round(&mut self) -> Vec<Allocation> {
        let mut st = self.start_round();
        let mut out = Vec::with_capacity(self.agents.capacity());
        'round: loop {
            // Descend to the lowest-share group of frameworks.
            let mut node = Heap::Root;
            let r = loop {
                let top = loop {
                    match st.heap(node).peek() {
                        None => break None,
                        Some(Reverse(e)) if Self::entry_live(&st, e) => break Some(e.node),
                        Some(_) => {
                            st.heap_mut(node).pop();
                        }
                    }
                };
                match (top, node) {
                    (None, Heap::Root) => break 'round,
                    (None, Heap::Of(role)) => {
                        st.role_active[role] = false;
                        st.role_ver[role] += 1;
                        *st.live(Heap::from(self.roles.roles[role].parent)) -= 1;
                        continue 'round;
                    }
                    (Some(Node::Role(child)), _) => node = Heap::Of(child),
                    (Some(Node::Own(r)), _) => break r,
                }
            };
            // Its lowest-share framework.
            let c = loop {
                match st.clients[r].peek() {
                    None => break None,
                    Some(Reverse((k, v))) if st.client_active[k.id] && *v == st.client_ver[k.id] => break Some(k.id),
                    Some(_) => {
                        st.clients[r].pop();
                    }
                }
            };
            let Some(c) = c else {
                st.own_active[r] = false;
                st.own_ver[r] += 1;
                st.heap_live[r] -= 1;
                continue;
            };
            let Some((a, candidate)) = self.find_agent(&mut st, c) else {
                st.client_active[c] = false;
                st.client_ver[c] += 1;
                st.client_live[r] -= 1;
                continue;
            };
            self.commit(&mut st, c, a, candidate, &mut out);
            // Re-key the framework, its role's own group and the role chain.
            if st.client_live[r] > 1 {
                st.client_ver[c] += 1;
                st.clients[r].push(Reverse((self.client_key(c), st.client_ver[c])));
            }
            if st.heap_live[r] > 1 {
                st.own_ver[r] += 1;
                st.heaps[r].push(Reverse(Entry {
                    key: self.own_key(r),
                    node: Node::Own(r),
                    version: st.own_ver[r],
                }));
            }
            let mut next = Some(r);
            while let Some(x) = next {
                next = self.roles.roles[x].parent;
                if !st.role_active[x] || *st.live(Heap::from(next)) <= 1 {
                    continue;
                }
                st.role_ver[x] += 1;
                let entry = Entry {
                    key: self.role_key(x),
                    node: Node::Role(x),
                    version: st.role_ver[x],
                };
                st.heap_mut(Heap::from(next)).push(Reverse(entry));
            }
        }
        out
    }

    fn entry_live(st: &Round, e: &Entry) -> bool {
        match e.node {
            Node::Role(x) => st.role_active[x] && e.version == st.role_ver[x],
            Node::Own(x) => st.own_active[x] && e.version == st.own_ver[x],
        }
    }

    /// The next agent the client can be offered, scanning from its cursor.
    fn find_agent(&self, st: &mut Round, c: ClientIx) -> Option<(AgentIx, Candidate)> {
        let client = self.clients.get(c)?;
        let words = self.agents.capacity().div_ceil(64);
        while st.unreserved_hint < words && self.avail_unreserved.word(st.unreserved_hint) == 0 {
            st.unreserved_hint += 1;
        }
        let mut first = st.unreserved_hint;
        for i in 0..st.reserved_chain[client.role].len() {
            let rr = st.reserved_chain[client.role][i];
            let hint = &mut st.reserved_hint[rr];
            while *hint < words && self.avail_reserved[rr].word(*hint) == 0 {
                *hint += 1;
            }
            first = first.min(*hint);
        }
        let chain = &st.reserved_chain[client.role];
        let mut pos = st.cursor[c].max(first * 64);
        while pos < words * 64 {
            let w = pos / 64;
            let mut bits = self.avail_unreserved.word(w);
            for &rr in chain {
                bits |= self.avail_reserved[rr].word(w);
            }
            bits &= !client.filtered.word(w);
            bits &= u64::MAX << (pos % 64);
            while bits != 0 {
                let a = AgentIx::new(w * 64 + bits.trailing_zeros() as usize);
                if let Some(offer) = self.try_offer(st, c, a) {
                    st.cursor[c] = a.ix();
                    return Some((a, offer));
                }
                bits &= bits - 1;
            }
            pos = (w + 1) * 64;
        }
        st.cursor[c] = pos;
        None
    }

    /// What agent `a` would offer client `c` now, if anything.
    fn try_offer(&self, st: &Round, c: ClientIx, a: AgentIx) -> Option<Candidate> {
        let client = self.clients.get(c)?;
        let agent = self.agents.get(a).filter(|ag| ag.active)?;
        let role = client.role;
        let role_name = &self.roles.roles[role].name;
        let quota_role = self.roles.chain_below_guarantee(role);
        let owes_headroom = !quota_role && !st.headroom_required.is_zero();
        let all_usable = agent
            .available
            .iter()
            .all(|r| !r.is_reserved() || orchestrator_core::role_is_within(role_name, r.role()));
        if all_usable && !st.limited[role] && !owes_headroom {
            // The common case: everything the agent has, checked in place.
            let filtered = client.has_filter.get(a)
                && self
                    .filters
                    .get(&(c, a))
                    .is_some_and(|f| f.refused.contains(&agent.available));
            return (!filtered && !agent.available.is_empty() && self.meets_min(&agent.avail_all))
                .then_some(Candidate::Whole);
        }
        let offer = agent.available.allocatable_to(role_name);
        let caps: Vec<Option<i64>> = (0..self.names.len())
            .map(|i| {
                let limit = self.roles.headroom_under_limits(role, i);
                let headroom = (owes_headroom && st.headroom_required.get(i) > 0)
                    .then(|| (st.headroom_available.get(i) - st.headroom_required.get(i)).max(0));
                match (limit, headroom) {
                    (Some(l), Some(h)) => Some(l.min(h)),
                    (l, h) => l.or(h),
                }
            })
            .collect();
        let offer = if caps.iter().all(Option::is_none) {
            offer
        } else {
            self.shrink(&offer, caps)
        };
        // Filters refuse the offer as it would really be made (after quota
        // shrinking), as Mesos checks them.
        if self.filters.get(&(c, a)).is_some_and(|f| f.refused.contains(&offer)) {
            return None;
        }
        let q = self.names.quantities(&offer);
        (!offer.is_empty() && self.meets_min(&q)).then_some(Candidate::Part(offer))
    }

    /// Caps the unreserved scalars of `offer` at `caps`.
    fn shrink(&self, offer: &Resources, mut caps: Vec<Option<i64>>) -> Resources {
        let mut out = Resources::new();
        for r in offer {
            let idx = self.names.get(&r.name);
            match (&r.value, idx.and_then(|i| caps[i].map(|cap| (i, cap)))) {
                (Value::Scalar(s), Some((i, cap))) if !r.is_reserved() => {
                    let take = s.millis().min(cap);
                    caps[i] = Some(cap - take);
                    let mut shrunk = Resource::new(r.name.clone(), Value::Scalar(Scalar::from_millis(take)));
                    shrunk.reservations.clone_from(&r.reservations);
                    out.push(shrunk);
                }
                _ => out.push(r.clone()),
            }
        }
        out
    }

    fn commit(&mut self, st: &mut Round, c: ClientIx, a: AgentIx, candidate: Candidate, out: &mut Vec<Allocation>) {
        let Some(client) = self.clients.get(c) else { return };
        let (role, f) = (client.role, client.framework);
        let top = self.top_guaranteed(role);
        let unmet_before = top.map(|t| self.roles.roles[t].unmet_guarantee());
        let Some(agent) = self.agents.get_mut(a) else { return };
        let (mut offer, q) = match candidate {
            Candidate::Whole => {
                st.headroom_available.sub(&agent.avail_unreserved);
                (
                    std::mem::take(&mut agent.available),
                    std::mem::take(&mut agent.avail_all),
                )
            }
            Candidate::Part(offer) => {
                agent.available -= &offer;
                for r in offer.iter().filter(|r| !r.is_reserved()) {
                    if let (Value::Scalar(s), Some(i)) = (&r.value, self.names.get(&r.name)) {
                        st.headroom_available.add_at(i, -s.millis());
                    }
                }
                let q = self.names.quantities(&offer);
                (offer, q)
            }
        };
        let agent_id = agent.id.clone();
        let role_name = self.roles.roles[role].name.clone();
        offer.set_allocation_role(Some(&role_name));
        self.record_allocation_of(c, a, offer.clone(), &q);
        if let (Some(t), Some(before)) = (top, unmet_before) {
            st.headroom_required.sub(&before);
            st.headroom_required.add(&self.roles.roles[t].unmet_guarantee());
        }
        // No re-verification of filter bits: a set bit (the filter covers
        // what the agent has) stays true when the agent has less, and a
        // clear bit is checked exactly when the agent is picked.
        self.refresh_agent(a);
        let Some(fw) = self.frameworks.get(f) else { return };
        out.push(Allocation {
            framework_id: fw.id.clone(),
            agent_id,
            role: role_name,
            resources: offer,
        });
    }
}
