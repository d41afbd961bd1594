//! Network connections: TCP and UDP, IPv4 and IPv6, from `/proc/PID/net/*`
//! once per network namespace, with the owning process found through the
//! socket inodes in `/proc/PID/fd`.
//!
//! # Why the descriptor walk is lazy
//!
//! Mapping a socket to its process means a `readlink` for every descriptor
//! of every process — the costly part of any connection tracker (tens of
//! thousands of system calls on a busy host). The socket tables themselves
//! are cheap. So the collector reads the tables first and walks descriptors
//! only when a table names an inode it has not resolved yet, at most once
//! per [`NetworkCollector::min_walk_interval_ms`]; inodes that no visible
//! process owns are remembered until the next walk, so they do not force one.
//!
//! Short-lived connections are caught two ways: sockets in `TIME_WAIT`
//! (closed, still in the table for a minute, no owner) and, when the kernel
//! exposes it, `/proc/net/nf_conntrack`, which keeps finished flows for a
//! while. Neither is required.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use orchestrator_core::report::{Report, TopologyKind};
use orchestrator_core::Written;

use crate::process::namespace_inode;

mod diag;
mod endpoints;

use endpoints::Endpoints;

pub use diag::Diag;

/// A socket with its network namespace (none for the host's).
pub(crate) type Scoped = (Option<u64>, Socket);

/// One socket from a table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Socket {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (unspecified for listeners).
    pub remote: SocketAddr,
    /// The kernel state number (`0A` listen, `01` established, `06` time wait).
    pub state: u8,
    /// The socket inode (0 for sockets no descriptor holds).
    pub inode: u64,
}

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_TIME_WAIT: u8 = 0x06;
const TCP_LISTEN: u8 = 0x0A;

fn tcp_state_name(state: u8) -> &'static str {
    match state {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => {
            // One little-endian 32-bit word.
            let v = u32::from_str_radix(ip, 16).ok()?;
            IpAddr::from(v.swap_bytes().to_be_bytes())
        }
        32 => {
            // Four little-endian 32-bit words.
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.swap_bytes().to_be_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            // IPv4-mapped addresses name the IPv4 socket.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses a `/proc/net/{tcp,tcp6,udp,udp6}` table; bad lines are skipped.
pub fn parse_table(text: &str, protocol: &'static str) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let mut f = line.split_ascii_whitespace();
            let local = parse_hex_addr(f.nth(1)?)?;
            let remote = parse_hex_addr(f.next()?)?;
            let state = u8::from_str_radix(f.next()?, 16).ok()?;
            let inode = f.nth(5)?.parse().ok()?;
            Some(Socket {
                protocol,
                local,
                remote,
                state,
                inode,
            })
        })
        .collect()
}

/// One flow from `nf_conntrack`, in its original direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// The side that opened it.
    pub client: SocketAddr,
    /// The side it was opened to.
    pub server: SocketAddr,
}

/// Parses `/proc/net/nf_conntrack` (TCP and UDP flows).
pub fn parse_conntrack(text: &str) -> Vec<Flow> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let protocol = match f.nth(2)? {
                "tcp" => "tcp",
                "udp" => "udp",
                _ => return None,
            };
            let (mut src, mut dst, mut sport, mut dport) = (None, None, None, None);
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else { continue };
                match k {
                    "src" if src.is_none() => src = v.parse::<IpAddr>().ok(),
                    "dst" if dst.is_none() => dst = v.parse::<IpAddr>().ok(),
                    "sport" if sport.is_none() => sport = v.parse::<u16>().ok(),
                    "dport" if dport.is_none() => {
                        dport = v.parse::<u16>().ok();
                        break;
                    }
                    _ => {}
                }
            }
            Some(Flow {
                protocol,
                client: SocketAddr::new(src?, sport?),
                server: SocketAddr::new(dst?, dport?),
            })
        })
        .collect()
}

/// What a `sock_diag` dump of a namespace covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dumped {
    Nothing,
    Tcp,
    All,
}

const TABLES: [(&str, &str); 4] = [("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")];

/// Reads a socket table in large reads. The kernel restarts its hash walk
/// at every `read` call, so small reads (as `read_to_string` starts with)
/// make a big table quadratic.
fn read_table<'a>(path: &Path, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    if buf.len() < 1 << 20 {
        buf.resize(1 << 20, 0);
    }
    let mut at = 0;
    loop {
        if at == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = f.read(&mut buf[at..]).ok()?;
        if n == 0 {
            break;
        }
        at += n;
    }
    std::str::from_utf8(&buf[..at]).ok()
}

/// Socket counts of one namespace, from `sockstat` and `sockstat6`
/// (cheap: no table walk).
#[derive(Debug, Default)]
struct SocketCounts {
    tcp: u64,
    tcp6: u64,
    tw: u64,
    udp: u64,
    udp6: u64,
    known: bool,
}

impl SocketCounts {
    fn read(net_dir: &Path) -> SocketCounts {
        let mut c = SocketCounts::default();
        let mut buf = Vec::with_capacity(1024);
        for file in ["sockstat", "sockstat6"] {
            let Some(text) = crate::process::read_line_file(&net_dir.join(file), &mut buf) else {
                continue;
            };
            c.known = true;
            for line in text.lines() {
                let Some((proto, rest)) = line.split_once(':') else {
                    continue;
                };
                let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
                let get = |k: &str| {
                    fields
                        .windows(2)
                        .find(|w| w[0] == k)
                        .and_then(|w| w[1].parse::<u64>().ok())
                        .unwrap_or(0)
                };
                match proto {
                    "TCP" => {
                        c.tcp = get("inuse");
                        c.tw = get("tw");
                    }
                    "TCP6" => c.tcp6 = get("inuse"),
                    "UDP" => c.udp = get("inuse"),
                    "UDP6" => c.udp6 = get("inuse"),
                    _ => {}
                }
            }
        }
        c
    }

    /// Whether a table may hold sockets (unknown counts: read it).
    fn has(&self, table: &str) -> bool {
        !self.known
            || match table {
                "tcp" => self.tcp + self.tw > 0,
                "tcp6" => self.tcp6 + self.tw > 0,
                "udp" => self.udp > 0,
                "udp6" => self.udp6 > 0,
                _ => true,
            }
    }
}

/// The socket inode of a `socket:[12345]` descriptor link.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Collects the endpoint topology.
#[derive(Debug)]
pub struct NetworkCollector {
    root: PathBuf,
    host: String,
    host_netns: Option<u64>,
    /// pid → network namespace inode.
    netns_of: HashMap<u32, u64>,
    /// socket inode → owning pid.
    owner: HashMap<u64, u32>,
    /// Inodes the last walk could not place.
    unresolved: HashSet<u64>,
    last_walk_ms: Option<u64>,
    /// Fewest milliseconds between two descriptor walks.
    pub min_walk_interval_ms: u64,
    /// Whether to read `nf_conntrack` when it exists.
    pub use_conntrack: bool,
    /// Whether to dump the probe's own namespace over netlink `sock_diag`
    /// (the text tables are read when it is off or fails).
    pub use_sock_diag: bool,
    /// The probe's own network namespace, when `root` is its `/proc`.
    own_netns: Option<u64>,
    diag: Option<Diag>,
    /// `sock_diag` failed for TCP (for everything) or for UDP only.
    diag_failed: bool,
    diag_udp_failed: bool,
    walks: u64,
    /// For [`NetworkCollector::collect_changes`]: a hash of what the last
    /// cycle saw (each socket with its owner, the flows), the hash of each
    /// endpoint's part of it, and what this cycle wrote.
    last_seen: Option<u64>,
    sums: Option<endpoints::Sums>,
    written: Written,
    /// Sockets the last cycle saw.
    last_count: usize,
}

impl NetworkCollector {
    /// Collects from `/proc` for the host named `host`.
    pub fn new(host: &str) -> NetworkCollector {
        NetworkCollector::with_root("/proc", host)
    }

    /// Collects from another procfs mount.
    pub fn with_root(root: impl Into<PathBuf>, host: &str) -> NetworkCollector {
        let root = root.into();
        let host_netns = std::fs::read_link(root.join("1/ns/net"))
            .or_else(|_| std::fs::read_link(root.join("self/ns/net")))
            .ok()
            .and_then(|l| namespace_inode(&l));
        NetworkCollector {
            root: root.clone(),
            host: host.to_string(),
            host_netns,
            netns_of: HashMap::new(),
            owner: HashMap::new(),
            unresolved: HashSet::new(),
            last_walk_ms: None,
            min_walk_interval_ms: 1_000,
            use_conntrack: true,
            use_sock_diag: true,
            own_netns: (root == Path::new("/proc"))
                .then(|| {
                    std::fs::read_link("/proc/self/ns/net")
                        .ok()
                        .and_then(|l| namespace_inode(&l))
                })
                .flatten(),
            diag: None,
            diag_failed: false,
            diag_udp_failed: false,
            walks: 0,
            last_seen: None,
            sums: None,
            written: Written::All,
            last_count: 0,
        }
    }

    /// Descriptor walks done so far.
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// One cycle: adds every endpoint node to `report`.
    pub fn collect_into(&mut self, report: &mut Report, now_ms: u64) -> std::io::Result<()> {
        let (sockets, flows) = self.read(now_ms)?;
        Endpoints::new(&self.host, &self.owner, &sockets, &flows).build(report, now_ms, |_| true);
        Ok(())
    }

    /// One cycle that adds to `report` only the endpoint nodes that
    /// changed since the last call ([`NetworkCollector::written`] says
    /// what it wrote): the probe's way, which never builds a second copy
    /// of ten thousand unchanged endpoints (see the `endpoints` module).
    pub fn collect_changes(&mut self, report: &mut Report, now_ms: u64) -> std::io::Result<()> {
        // Whatever fails, the next cycle starts afresh.
        self.written = Written::All;
        let (sockets, flows) = match self.read(now_ms) {
            Ok(read) => read,
            Err(e) => {
                (self.last_seen, self.sums) = (None, None);
                return Err(e);
            }
        };
        let t0 = std::time::Instant::now();
        // The same sockets with the same owners (in the kernel's order,
        // which a new socket disturbs) make the same nodes: one 64-bit
        // hash of the list says so for the common, quiet cycle (a
        // collision, at 2⁻⁶⁴, would skip one refresh).
        let endpoints = Endpoints::new(&self.host, &self.owner, &sockets, &flows);
        let parts = endpoints.parts();
        let seen = parts.whole();
        if self.last_seen == Some(seen) {
            self.written = Written::Nothing;
        } else {
            let sums = endpoints.sums(&parts);
            self.written = match self.sums.take() {
                Some(old) => {
                    endpoints.build(report, now_ms, |k| old.get(k) != sums.get(k));
                    let gone = old
                        .keys()
                        .filter(|k| !sums.contains_key(*k))
                        .map(|k| (TopologyKind::Endpoint, Endpoints::id(&self.host, k)))
                        .collect();
                    Written::Changes { gone }
                }
                None => {
                    endpoints.build(report, now_ms, |_| true);
                    Written::All
                }
            };
            self.sums = Some(sums);
        }
        self.last_seen = Some(seen);
        tracing::trace!(
            sockets = sockets.len(),
            written = ?self.written_summary(),
            endpoints_us = t0.elapsed().as_micros(),
            "network cycle"
        );
        Ok(())
    }

    /// What the last [`NetworkCollector::collect_changes`] wrote, taken.
    pub fn written(&mut self) -> Written {
        std::mem::take(&mut self.written)
    }

    fn written_summary(&self) -> (&'static str, usize) {
        match &self.written {
            Written::All => ("all", 0),
            Written::Nothing => ("nothing", 0),
            Written::Changes { gone } => ("changes", gone.len()),
        }
    }

    /// Reads every namespace's sockets (walking descriptors for owners
    /// when needed) and the conntrack flows.
    fn read(&mut self, now_ms: u64) -> std::io::Result<(Vec<Scoped>, Vec<Flow>)> {
        let t0 = std::time::Instant::now();
        let pids = self.list_pids()?;
        // One reader pid per namespace; the host's own is read at /proc/net.
        let mut namespaces: HashMap<u64, u32> = HashMap::new();
        for &pid in &pids {
            let ns = match self.netns_of.get(&pid) {
                Some(ns) => *ns,
                None => {
                    let Some(ns) = std::fs::read_link(self.root.join(format!("{pid}/ns/net")))
                        .ok()
                        .and_then(|l| namespace_inode(&l))
                    else {
                        continue;
                    };
                    self.netns_of.insert(pid, ns);
                    ns
                }
            };
            namespaces.entry(ns).or_insert(pid);
        }
        let alive: HashSet<u32> = pids.iter().copied().collect();
        self.netns_of.retain(|pid, _| alive.contains(pid));

        // Sized from the last cycle: growing by doubling would hold the
        // old and the new list at once, and a third of it unused.
        let mut sockets: Vec<Scoped> = Vec::with_capacity(self.last_count + self.last_count / 16);
        let mut buf = Vec::new();
        for (&ns, &pid) in &namespaces {
            let dir = if Some(ns) == self.host_netns {
                self.root.join("net")
            } else {
                self.root.join(format!("{pid}/net"))
            };
            let scope = (Some(ns) != self.host_netns).then_some(ns);
            // The kernel walks its whole (global) socket hash for every
            // table read, whichever namespace asks: namespaces with no
            // sockets of a kind, as `sockstat` counts them, are not read.
            let counts = SocketCounts::read(&dir);
            let dumped = if Some(ns) == self.own_netns {
                self.dump_own(scope, &mut sockets)
            } else {
                Dumped::Nothing
            };
            for (file, protocol) in TABLES {
                if scope.is_some() && !counts.has(file) {
                    continue;
                }
                if dumped == Dumped::All || (dumped == Dumped::Tcp && protocol == "tcp") {
                    continue;
                }
                if let Some(text) = read_table(&dir.join(file), &mut buf) {
                    sockets.extend(parse_table(text, protocol).into_iter().map(|s| (scope, s)));
                }
            }
        }
        if namespaces.is_empty() {
            // No readable process (a restricted /proc): the host tables still are.
            for (file, protocol) in TABLES {
                if let Some(text) = read_table(&self.root.join("net").join(file), &mut buf) {
                    sockets.extend(parse_table(text, protocol).into_iter().map(|s| (None, s)));
                }
            }
        }

        let t_read = t0.elapsed();
        let unknown = sockets
            .iter()
            .any(|(_, s)| s.inode != 0 && !self.owner.contains_key(&s.inode) && !self.unresolved.contains(&s.inode));
        let may_walk = self
            .last_walk_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= self.min_walk_interval_ms);
        if unknown && may_walk {
            let started = std::time::Instant::now();
            self.walk(&pids, now_ms);
            tracing::debug!(
                sockets = sockets.len(),
                owned = self.owner.len(),
                took_ms = started.elapsed().as_millis(),
                "socket owners walked"
            );
            self.unresolved = sockets
                .iter()
                .map(|(_, s)| s.inode)
                .filter(|i| *i != 0 && !self.owner.contains_key(i))
                .collect();
        }

        let t_walk = t0.elapsed();
        let flows = if self.use_conntrack {
            std::fs::read_to_string(self.root.join("net/nf_conntrack"))
                .map(|text| parse_conntrack(&text))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        self.last_count = sockets.len();
        tracing::trace!(
            namespaces = namespaces.len(),
            sockets = sockets.len(),
            read_us = t_read.as_micros(),
            walk_us = (t_walk - t_read).as_micros(),
            flows_us = (t0.elapsed() - t_walk).as_micros(),
            "network read"
        );
        Ok((sockets, flows))
    }

    /// Dumps the probe's own namespace over `sock_diag`; says what it got.
    fn dump_own(&mut self, scope: Option<u64>, sockets: &mut Vec<Scoped>) -> Dumped {
        if !self.use_sock_diag || self.diag_failed {
            return Dumped::Nothing;
        }
        if self.diag.is_none() {
            match Diag::open() {
                Ok(d) => self.diag = Some(d),
                Err(e) => {
                    tracing::info!(error = %e, "no netlink sock_diag: reading /proc/net tables");
                    self.diag_failed = true;
                    return Dumped::Nothing;
                }
            }
        }
        let Some(diag) = self.diag.as_mut() else {
            return Dumped::Nothing;
        };
        let before = sockets.len();
        if let Err(e) = diag.dump(diag::TCP, &mut |s| sockets.push((scope, s))) {
            tracing::info!(error = %e, "netlink sock_diag failed: reading /proc/net tables");
            sockets.truncate(before);
            self.diag_failed = true;
            self.diag = None;
            return Dumped::Nothing;
        }
        let mut dumped = Dumped::Tcp;
        if !self.diag_udp_failed {
            let before = sockets.len();
            match diag.dump(diag::UDP, &mut |s| sockets.push((scope, s))) {
                Ok(()) => dumped = Dumped::All,
                Err(e) => {
                    tracing::info!(error = %e, "no UDP over netlink sock_diag: reading /proc/net/udp*");
                    sockets.truncate(before);
                    self.diag_udp_failed = true;
                }
            }
        }
        dumped
    }

    fn list_pids(&self) -> std::io::Result<Vec<u32>> {
        Ok(std::fs::read_dir(&self.root)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect())
    }

    /// Maps every socket descriptor of every visible process to its pid.
    fn walk(&mut self, pids: &[u32], now_ms: u64) {
        self.walks += 1;
        self.last_walk_ms = Some(now_ms);
        self.owner.clear();
        for &pid in pids {
            let Ok(fds) = std::fs::read_dir(self.root.join(format!("{pid}/fd"))) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Some(inode) = std::fs::read_link(fd.path()).ok().and_then(|l| socket_inode(&l)) {
                    self.owner.insert(inode, pid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::report::ids;

    const HEADER: &str =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    /// A procfs stand-in with an empty `net/`.
    fn proc_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("netroot-{name}-{}", std::process::id()));
        std::fs::create_dir_all(root.join("net")).unwrap();
        root
    }

    #[test]
    fn parses_tcp_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000 100 0 0 10 0\n   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 23456 1\n";
        let s = parse_table(v4, "tcp");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((s[0].state, s[0].inode), (TCP_LISTEN, 12345));
        assert_eq!(s[1].remote, "127.0.0.1:8080".parse().unwrap());
        let v6 = "header\n   0: 00000000000000000000000001000000:0050 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000 0 0 777 1\n";
        let s = parse_table(v6, "tcp");
        assert_eq!(s[0].local, "[::1]:80".parse().unwrap());
        assert_eq!(s[0].remote, "127.0.0.1:54321".parse().unwrap());
        assert!(parse_table("header\ngarbage line\n", "tcp").is_empty());
    }

    #[test]
    fn parses_conntrack() {
        let text = "ipv4     2 tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=5000 [ASSURED] mark=0 use=1\nipv4     2 icmp     1 29 src=1.1.1.1 dst=2.2.2.2 type=8 code=0 id=1\n";
        let f = parse_conntrack(text);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].client, "10.0.0.1:5000".parse().unwrap());
        assert_eq!(f[0].server, "10.0.0.2:80".parse().unwrap());
    }

    #[test]
    fn socket_counts() {
        let dir = std::env::temp_dir().join(format!("sockstat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("sockstat"),
            "sockets: used 5\nTCP: inuse 0 orphan 0 tw 0 alloc 1 mem 0\nUDP: inuse 2 mem 0\n",
        )
        .unwrap();
        std::fs::write(dir.join("sockstat6"), "TCP6: inuse 1\nUDP6: inuse 0\n").unwrap();
        let c = SocketCounts::read(&dir);
        assert!(!c.has("tcp") && c.has("tcp6") && c.has("udp") && !c.has("udp6"));
        assert!(SocketCounts::read(&dir.join("missing")).has("tcp"));
        let mut buf = Vec::new();
        assert_eq!(
            read_table(&dir.join("sockstat6"), &mut buf),
            Some("TCP6: inuse 1\nUDP6: inuse 0\n")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cycle_writes_only_the_endpoints_that_changed() {
        let root = proc_root("changes");
        // A server on :8080, a client on :50000 connected to it, and an
        // unrelated listener on :9090.
        let listen =
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1\n";
        let conn =
            "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 23456 1\n";
        let other =
            "   2: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 34567 1\n";
        let mut c = NetworkCollector::with_root(&root, "h");
        c.use_conntrack = false;
        let cycle = |c: &mut NetworkCollector, table: String| {
            std::fs::write(root.join("net/tcp"), table).unwrap();
            let mut r = Report::new("p", "h", 0);
            c.collect_changes(&mut r, 1_000).unwrap();
            let mut ids: Vec<String> = r.topologies.endpoint.nodes.keys().cloned().collect();
            ids.sort();
            (ids, c.written())
        };
        let ep = |port: u16| ids::endpoint("h", None, "127.0.0.1".parse().unwrap(), port);
        // The first cycle writes everything.
        let (first, written) = cycle(&mut c, format!("{HEADER}{listen}{other}"));
        assert_eq!((first, written), (vec![ep(8080), ep(9090)], Written::All));
        // The same again: nothing.
        assert_eq!(
            cycle(&mut c, format!("{HEADER}{listen}{other}")),
            (vec![], Written::Nothing)
        );
        // A connection: the server's endpoint (a new incoming edge) and
        // the client's; the other listener is not rebuilt.
        let (changed, written) = cycle(&mut c, format!("{HEADER}{listen}{conn}{other}"));
        assert_eq!(changed, vec![ep(50000), ep(8080)]);
        assert_eq!(written, Written::Changes { gone: vec![] });
        // It closes: the server changes back and the client is gone.
        let (changed, written) = cycle(&mut c, format!("{HEADER}{listen}{other}"));
        assert_eq!(changed, vec![ep(8080)]);
        assert_eq!(
            written,
            Written::Changes {
                gone: vec![(TopologyKind::Endpoint, ep(50000))]
            }
        );
        // What changes write is what a whole cycle builds.
        std::fs::write(root.join("net/tcp"), format!("{HEADER}{listen}{conn}{other}")).unwrap();
        let mut whole = Report::new("p", "h", 0);
        c.collect_into(&mut whole, 1_000).unwrap();
        let mut patch = Report::new("p", "h", 0);
        c.collect_changes(&mut patch, 1_000).unwrap();
        for (id, node) in &patch.topologies.endpoint.nodes {
            assert_eq!(&whole.topologies.endpoint.nodes[id], node);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_reused_port_shows_its_live_connection_not_the_lingering_one() {
        let root = proc_root("reuse");
        // Port 50000 lingers in TIME_WAIT towards :8081 and is connected
        // again towards :8080; the kernel lists them in either order.
        let lingering =
            "   0: 0100007F:C350 0100007F:1F91 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n";
        let live =
            "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 23456 1\n";
        for table in [
            format!("{HEADER}{lingering}{live}"),
            format!("{HEADER}{live}{lingering}"),
        ] {
            std::fs::write(root.join("net/tcp"), table).unwrap();
            let mut c = NetworkCollector::with_root(&root, "h");
            c.use_conntrack = false;
            let mut r = Report::new("p", "h", 0);
            c.collect_into(&mut r, 1_000).unwrap();
            let id = ids::endpoint("h", None, "127.0.0.1".parse().unwrap(), 50_000);
            assert_eq!(r.topologies.endpoint.nodes[&id].latest("state"), Some("ESTABLISHED"));
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(Path::new("socket:[42]")), Some(42));
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }
}
