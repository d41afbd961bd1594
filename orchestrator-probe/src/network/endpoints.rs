//! Endpoint nodes from sockets and flows: all of them, or only those of
//! the endpoints whose sockets changed.
//!
//! # Why changes only
//!
//! A busy host's socket table changes every second somewhere (a request,
//! a connection in `TIME_WAIT` expiring), while almost all of its ten
//! thousand endpoints stay as they were. Rebuilding them all makes a
//! second copy of the whole endpoint topology next to the one the probe
//! keeps — the probe's peak memory — only to find them equal. Instead
//! each endpoint gets a hash of everything its node is built from (the
//! sockets and flows that touch it, in order, with their owners); the
//! next cycle builds nodes only where that hash differs and names the
//! endpoints that are gone.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

use orchestrator_core::report::{ids, Node, Report, TopologyKind};

use super::{tcp_state_name, Flow, Scoped, Socket, TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT};

/// An endpoint: network namespace (none for the host's), address, port.
/// Its node id is [`ids::endpoint`] of the same.
pub(super) type Key = (Option<u64>, IpAddr, u16);

/// Per endpoint, the hash of what its node is built from.
pub(super) type Sums = HashMap<Key, u64, foldhash::fast::RandomState>;

/// Hashes sockets: fast and well mixed (a change detector, no secret to
/// keep), and the same in every cycle.
const HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5EED);
const SEED: u64 = 0x243F_6A88_85A3_08D3;

/// Mixes `part` into `sum`, order-sensitively.
fn mix(sum: u64, part: u64) -> u64 {
    (sum.rotate_left(29) ^ part).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The hashes of one cycle's sockets and flows ([`Endpoints::parts`]).
pub(super) struct Parts {
    /// Per socket, its hash and whether it touches its remote endpoint
    /// too; none for a socket that adds nothing.
    sockets: Vec<Option<(u64, bool)>>,
    flows: Vec<u64>,
}

impl Parts {
    /// The hash of the whole cycle: equal hashes, equal topologies.
    pub(super) fn whole(&self) -> u64 {
        let sockets = self.sockets.iter().flatten().map(|(hash, _)| *hash);
        sockets.chain(self.flows.iter().copied()).fold(SEED, mix)
    }
}

/// What one socket adds to the endpoint topology.
struct Touch {
    listen: bool,
    /// A connection: its remote endpoint gets a node too, and whether the
    /// connection is incoming (to a port listening here).
    remote: Option<bool>,
}

/// How alive a TCP state is, for an endpoint that several sockets share:
/// listening beats connected beats closing beats gone.
fn liveliness(state: &str) -> u8 {
    match state {
        "LISTEN" => 4,
        "ESTABLISHED" => 3,
        "TIME_WAIT" | "CLOSE" | "UNKNOWN" => 1,
        _ => 2,
    }
}

/// Builds the endpoint nodes of one cycle's sockets and flows.
pub(super) struct Endpoints<'a> {
    host: &'a str,
    owner: &'a HashMap<u64, u32>,
    sockets: &'a [Scoped],
    flows: &'a [Flow],
    /// Who listens where, per namespace: a connection to a listening port
    /// is incoming, and its edge runs from the remote client to us.
    listening: HashSet<(Option<u64>, u16)>,
}

impl<'a> Endpoints<'a> {
    pub(super) fn new(host: &'a str, owner: &'a HashMap<u64, u32>, sockets: &'a [Scoped], flows: &'a [Flow]) -> Self {
        let listening = sockets
            .iter()
            .filter(|(_, s)| s.protocol == "tcp" && s.state == TCP_LISTEN)
            .map(|(ns, s)| (*ns, s.local.port()))
            .collect();
        Endpoints {
            host,
            owner,
            sockets,
            flows,
            listening,
        }
    }

    fn touch(&self, ns: Option<u64>, s: &Socket) -> Option<Touch> {
        let listen = s.protocol == "tcp" && s.state == TCP_LISTEN;
        let unconnected = s.remote.ip().is_unspecified();
        if !listen && unconnected && s.protocol == "tcp" {
            return None;
        }
        let connected = !unconnected && (s.protocol == "udp" || s.state == TCP_ESTABLISHED || s.state == TCP_TIME_WAIT);
        Some(Touch {
            listen,
            remote: connected.then(|| self.listening.contains(&(ns, s.local.port()))),
        })
    }

    /// One hash per socket of everything it adds to the endpoint
    /// topology (itself, its owner, whether it is incoming), and one per
    /// flow.
    pub(super) fn parts(&self) -> Parts {
        Parts {
            sockets: self
                .sockets
                .iter()
                .map(|(ns, s)| {
                    let t = self.touch(*ns, s)?;
                    let hash = HASH.hash_one((ns, s, self.owner.get(&s.inode), t.listen, t.remote));
                    Some((hash, t.remote.is_some()))
                })
                .collect(),
            flows: self.flows.iter().map(|f| HASH.hash_one(f)).collect(),
        }
    }

    /// Per endpoint, the hashes of the sockets and flows that touch it
    /// ([`Endpoints::parts`]), mixed in order: equal sums build equal
    /// nodes.
    pub(super) fn sums(&self, parts: &Parts) -> Sums {
        let mut sums = Sums::with_capacity_and_hasher(self.sockets.len() / 2, Default::default());
        // Order matters (the first owned socket names the pid): each
        // contribution is mixed into what came before.
        let mut add = |key: Key, part: u64| {
            let sum = sums.entry(key).or_insert(SEED);
            *sum = mix(*sum, part);
        };
        for ((ns, s), part) in self.sockets.iter().zip(&parts.sockets) {
            let Some((hash, remote)) = *part else {
                continue;
            };
            add((*ns, s.local.ip(), s.local.port()), hash);
            if remote {
                add((*ns, s.remote.ip(), s.remote.port()), hash ^ 1);
            }
        }
        for (f, hash) in self.flows.iter().zip(&parts.flows) {
            add((None, f.client.ip(), f.client.port()), hash ^ 2);
            add((None, f.server.ip(), f.server.port()), hash ^ 3);
        }
        sums
    }

    /// The node id of an endpoint.
    pub(super) fn id(host: &str, (ns, ip, port): &Key) -> String {
        ids::endpoint(host, *ns, *ip, *port)
    }

    /// Adds to `report` the nodes of the endpoints `wanted` says yes to,
    /// each whole.
    pub(super) fn build(&self, report: &mut Report, now_ms: u64, wanted: impl Fn(&Key) -> bool) {
        let topology = report.topologies.get_mut(TopologyKind::Endpoint);
        for (ns, s) in self.sockets {
            let Some(t) = self.touch(*ns, s) else {
                continue;
            };
            let local_key = (*ns, s.local.ip(), s.local.port());
            let remote_key = (*ns, s.remote.ip(), s.remote.port());
            let want_local = wanted(&local_key);
            let want_remote = t.remote.is_some() && wanted(&remote_key);
            if !want_local && !want_remote {
                continue;
            }
            let local_id = Self::id(self.host, &local_key);
            if want_local {
                // Many sockets share an endpoint (a server's port): the
                // node is built once and then only touched.
                let local = topology
                    .nodes
                    .entry(local_id.clone())
                    .or_insert_with(|| self.node(*ns, s.local, s.protocol, now_ms));
                // Sockets sharing a local port can be in different states
                // (a port reused while its last connection lingers in
                // TIME_WAIT): the endpoint shows the liveliest.
                if s.protocol == "tcp" {
                    let name = tcp_state_name(s.state);
                    if local
                        .latest("state")
                        .is_none_or(|was| liveliness(name) > liveliness(was))
                    {
                        local.set_latest("state", name, now_ms);
                    }
                }
                if let Some(pid) = self.owner.get(&s.inode) {
                    if local.latest("pid").is_none() {
                        local.set_latest("pid", pid.to_string(), now_ms);
                        local
                            .parents
                            .entry(TopologyKind::Process)
                            .or_default()
                            .insert(ids::process(self.host, *pid));
                    }
                }
                if t.listen {
                    local.set_latest("listening", "true", now_ms);
                }
                if t.remote == Some(false) {
                    local.adjacency.insert(Self::id(self.host, &remote_key));
                }
            }
            if want_remote {
                let remote = topology
                    .nodes
                    .entry(Self::id(self.host, &remote_key))
                    .or_insert_with(|| self.node(*ns, s.remote, s.protocol, now_ms));
                if t.remote == Some(true) {
                    remote.adjacency.insert(local_id);
                }
            }
        }
        for f in self.flows {
            let client_key = (None, f.client.ip(), f.client.port());
            let server_key = (None, f.server.ip(), f.server.port());
            let server_id = Self::id(self.host, &server_key);
            if wanted(&client_key) {
                let mut client = self.node(None, f.client, f.protocol, now_ms);
                client.set_latest("conntracked", "true", now_ms);
                client.adjacency.insert(server_id.clone());
                topology.insert(Self::id(self.host, &client_key), client);
            }
            if wanted(&server_key) {
                let mut server = self.node(None, f.server, f.protocol, now_ms);
                server.set_latest("conntracked", "true", now_ms);
                topology.insert(server_id, server);
            }
        }
        // Kept until they change, by the ten thousand: no room to spare.
        for node in topology.nodes.values_mut() {
            node.shrink_to_fit();
        }
    }

    /// An endpoint's node. Address and port are in its id
    /// ([`ids::parse_endpoint`]); the protocol is written only for UDP
    /// (TCP is the default): ten thousand endpoints a cycle make every
    /// allocation count.
    fn node(&self, ns: Option<u64>, addr: SocketAddr, protocol: &str, now_ms: u64) -> Node {
        let mut n = Node::default();
        if protocol != "tcp" {
            n.set_latest("protocol", protocol, now_ms);
        }
        if let Some(ns) = ns {
            n.set_latest("netns", ns.to_string(), now_ms);
        }
        if addr.ip().is_loopback() {
            n = n.with_parent(TopologyKind::Host, ids::host(self.host));
        }
        n
    }
}
