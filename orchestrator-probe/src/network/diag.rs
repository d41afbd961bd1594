//! Socket tables over netlink `sock_diag` (what `ss` uses), in place of
//! `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! The text tables cost the kernel a `printf` per socket and, at every
//! `read`, a fresh walk of the hash to find where it left off; at ten
//! thousand connections that was most of the probe's cycle. A netlink dump
//! hands over fixed binary records, resumes where it stopped, and is parsed
//! here without allocating per socket. The dump covers the namespace the
//! netlink socket was opened in: the probe's own.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

use super::Socket;

/// `AF_INET`, `AF_INET6`, `IPPROTO_TCP`, `IPPROTO_UDP`.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `IPPROTO_TCP`.
pub const TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const UDP: u8 = 17;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The older TCP-only request (answered with messages of this type).
const TCPDIAG_GETSOCK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retrans, the 48-byte
/// socket id, expires, rqueue, wqueue, uid, inode.
const DIAG_MSG: usize = 72;

/// A netlink socket for `sock_diag` dumps, in the namespace it was opened in.
#[derive(Debug)]
pub struct Diag {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    compat_failed: bool,
}

impl Diag {
    /// Opens the socket.
    ///
    /// # Errors
    /// When the kernel has no `sock_diag` (or the process may not use it).
    pub fn open() -> io::Result<Diag> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        Ok(Diag {
            fd,
            // The kernel fills at most 32 kB a read.
            buf: vec![0; 64 << 10],
            seq: 0,
            compat_failed: false,
        })
    }

    /// Every socket of `protocol` (`IPPROTO_TCP` or `IPPROTO_UDP`) of
    /// both address families, in every state, appended to `out`.
    ///
    /// # Errors
    /// When the kernel refuses the dump (no `udp_diag` module, say).
    pub fn dump(&mut self, protocol: u8, out: &mut dyn FnMut(Socket)) -> io::Result<()> {
        let name: &'static str = if protocol == TCP { "tcp" } else { "udp" };
        if protocol == TCP && !self.compat_failed {
            // The older TCP request dumps both families in one walk of the
            // kernel's connection hash (the newer one walks it per family).
            self.seq = self.seq.wrapping_add(1);
            // The kernel refuses such a request before it sends anything.
            self.request_compat()?;
            match self.receive(name, out) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(error = %e, "no TCPDIAG_GETSOCK: dumping per family");
                    self.compat_failed = true;
                }
            }
        }
        for family in [AF_INET, AF_INET6] {
            self.seq = self.seq.wrapping_add(1);
            self.request(family, protocol)?;
            self.receive(name, out)?;
        }
        Ok(())
    }

    /// `TCPDIAG_GETSOCK` with a `struct inet_diag_req`: family, source
    /// and destination prefix lengths, extensions, the socket id, states,
    /// `dbs`. The kernel answers for every family.
    fn request_compat(&self) -> io::Result<()> {
        let mut req = [0u8; 60];
        req[0] = AF_INET;
        req[52..56].copy_from_slice(&u32::MAX.to_ne_bytes());
        self.send(TCPDIAG_GETSOCK, &req)
    }

    /// `SOCK_DIAG_BY_FAMILY` with a `struct inet_diag_req_v2`: family,
    /// protocol, extensions, pad, states, the socket id.
    fn request(&self, family: u8, protocol: u8) -> io::Result<()> {
        let mut req = [0u8; 56];
        req[0] = family;
        req[1] = protocol;
        req[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        self.send(SOCK_DIAG_BY_FAMILY, &req)
    }

    /// Sends a dump request of type `kind` with body `req`.
    fn send(&self, kind: u16, req: &[u8]) -> io::Result<()> {
        let mut msg = vec![0u8; NLMSG_HDR + req.len()];
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[4..6].copy_from_slice(&kind.to_ne_bytes());
        msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        msg[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        msg[NLMSG_HDR..].copy_from_slice(req);
        socket::sendto(self.fd.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
        Ok(())
    }

    fn receive(&mut self, protocol: &'static str, out: &mut dyn FnMut(Socket)) -> io::Result<()> {
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            match parse(&self.buf[..n], self.seq, protocol, out)? {
                Step::More => {}
                Step::Done => return Ok(()),
            }
        }
    }
}

enum Step {
    More,
    Done,
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An address of a socket id: 16 bytes, of which IPv4 uses the first 4.
fn addr(family: u8, raw: &[u8], port: u16) -> SocketAddr {
    let ip = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        let mut b = [0u8; 16];
        b.copy_from_slice(&raw[..16]);
        let v6 = Ipv6Addr::from(b);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    };
    SocketAddr::new(ip, port)
}

/// Parses one datagram of a dump answering `seq`.
fn parse(mut b: &[u8], seq: u32, protocol: &'static str, out: &mut dyn FnMut(Socket)) -> io::Result<Step> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {what}"));
    while b.len() >= NLMSG_HDR {
        let len = u32_ne(b, 0) as usize;
        if len < NLMSG_HDR || len > b.len() {
            return Err(bad("a message longer than its datagram"));
        }
        let kind = u16_ne(b, 4);
        let msg_seq = u32_ne(b, 8);
        let body = &b[NLMSG_HDR..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        if msg_seq != seq {
            continue; // the tail of an earlier, abandoned dump
        }
        match kind {
            NLMSG_DONE => return Ok(Step::Done),
            NLMSG_ERROR => {
                let errno = body
                    .get(..4)
                    .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK if body.len() >= DIAG_MSG => {
                let family = body[0];
                let state = body[1];
                let sport = u16::from_be_bytes([body[4], body[5]]);
                let dport = u16::from_be_bytes([body[6], body[7]]);
                out(Socket {
                    protocol,
                    local: addr(family, &body[8..24], sport),
                    remote: addr(family, &body[24..40], dport),
                    state,
                    inode: u64::from(u32_ne(body, 68)),
                });
            }
            _ => {}
        }
    }
    Ok(Step::More)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_a_listening_and_a_connected_socket_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let listener6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let client6 = std::net::TcpStream::connect(listener6.local_addr().unwrap()).unwrap();
        let mut diag = Diag::open().unwrap();
        let mut tcp = Vec::new();
        diag.dump(TCP, &mut |s| tcp.push(s)).unwrap();
        let listen = tcp
            .iter()
            .find(|s| s.local == addr && s.state == 0x0A)
            .expect("the listener");
        assert!(listen.inode != 0 && listen.remote.ip().is_unspecified());
        let conn = tcp
            .iter()
            // (A closed socket of an earlier test may hold the same port in TIME_WAIT.)
            .find(|s| s.local == client.local_addr().unwrap() && s.state != 0x06)
            .expect("the client's socket");
        assert_eq!((conn.remote, conn.state, conn.protocol), (addr, 0x01, "tcp"));
        // Both families, from the one request.
        assert!(!diag.compat_failed);
        assert!(tcp
            .iter()
            .any(|s| s.local == client6.local_addr().unwrap() && s.state == 0x01));
        // The same view as the text table.
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let from_text = super::super::parse_table(&text, "tcp");
        assert!(from_text.iter().any(|s| s.inode == conn.inode && s.local == conn.local));
        let mut udps = Vec::new();
        match diag.dump(UDP, &mut |s| udps.push(s)) {
            Ok(()) => assert!(udps.iter().any(|s| s.local == udp.local_addr().unwrap())),
            // A kernel without udp_diag: the collector reads the text table.
            Err(e) => eprintln!("no udp_diag here: {e}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let mut push = |s| out.push(s);
        assert!(parse(&[0xff; 20], 1, "tcp", &mut push).is_err());
        assert!(matches!(parse(&[1, 2, 3], 1, "tcp", &mut push), Ok(Step::More)));
        let mut short = [0u8; 16];
        short[0..4].copy_from_slice(&16u32.to_ne_bytes());
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        short[8..12].copy_from_slice(&1u32.to_ne_bytes());
        assert!(matches!(parse(&short, 1, "tcp", &mut push), Ok(Step::More)));
        assert!(out.is_empty());
    }
}
