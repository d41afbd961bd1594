//! A small client for the records this crate serves: SRV look-ups with
//! the targets' addresses from the same answer, as a program finds its
//! dependencies by Mesos-DNS name.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// One SRV answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvAnswer {
    /// The target's name.
    pub target: String,
    /// The port.
    pub port: u16,
    /// The target's address, when the answer carried it.
    pub ip: Option<IpAddr>,
}

/// The SRV records of `name` from the DNS server at `server`, with the
/// targets' addresses where the answer's additional section has them.
///
/// # Errors
/// A name that is not one, no answer within `timeout`, or an answer that
/// is not NOERROR/NXDOMAIN (NXDOMAIN gives an empty list).
pub async fn srv(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<SrvAnswer>, String> {
    let qname = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    let id = u16::try_from(std::process::id() % 65_536).unwrap_or(1) ^ 0x5a5a;
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(qname, RecordType::SRV));
    // Large answers over UDP, rather than truncated ones.
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(4096);
    message.set_edns(edns);
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let exchange = async {
        let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
        socket.connect(server).await.map_err(|e| e.to_string())?;
        socket.send(&bytes).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
            match Message::from_vec(&buf[..n]) {
                Ok(reply) if reply.id() == id => return Ok::<Message, String>(reply),
                _ => continue,
            }
        }
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from {server} within {timeout:?}"))??;
    match reply.response_code() {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Vec::new()),
        other => return Err(format!("{server} answered {other}")),
    }
    let address = |target: &Name| {
        reply.additionals().iter().find_map(|r| match r.data() {
            RData::A(a) if r.name() == target => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) if r.name() == target => Some(IpAddr::V6(a.0)),
            _ => None,
        })
    };
    Ok(reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(s) => Some(SrvAnswer {
                target: s.target().to_ascii(),
                port: s.port(),
                ip: address(s.target()),
            }),
            _ => None,
        })
        .collect())
}
