//! The DNS server: UDP and TCP on one port (hickory-server does the wire
//! format, framing and malformed packets), answering from the current
//! [`RecordSet`]; names outside the domain go to the configured resolvers
//! or are REFUSED.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

mod udp;

use crate::config::Config;
use crate::records::RecordSet;
use crate::Error;

/// How long a TCP client may take to send its query.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers queries from the latest record set.
#[derive(Clone)]
pub struct DnsHandler {
    records: watch::Receiver<Arc<RecordSet>>,
    config: Arc<Config>,
}

impl DnsHandler {
    /// A handler answering from `records`.
    pub fn new(records: watch::Receiver<Arc<RecordSet>>, config: Arc<Config>) -> Self {
        Self { records, config }
    }

    fn soa(&self, set: &RecordSet) -> Option<Record> {
        let apex = Name::from_ascii(&set.domain).ok()?;
        let mname = Name::from_ascii(format!("{}.", self.config.soa_mname.trim_end_matches('.'))).ok()?;
        let rname = Name::from_ascii(format!("{}.", self.config.soa_rname.trim_end_matches('.'))).ok()?;
        let c = &self.config;
        let secs = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let soa = SOA::new(
            mname,
            rname,
            set.serial,
            secs(c.soa_refresh),
            secs(c.soa_retry),
            secs(c.soa_expire),
            c.soa_minttl,
        );
        Some(Record::from_rdata(apex, c.ttl, RData::SOA(soa)))
    }

    /// The answers and additional records for `name` (canonical) of type
    /// `qtype` in the domain.
    fn answer(&self, set: &RecordSet, name: &str, qtype: RecordType) -> (Vec<Record>, Vec<Record>) {
        let ttl = self.config.ttl;
        let (mut answers, mut additionals) = (Vec::new(), Vec::new());
        let Ok(owner) = Name::from_ascii(name) else {
            return (answers, additionals);
        };
        let a_records = |owner: &Name, of: &str, out: &mut Vec<Record>| {
            for ip in set.a.get(of).into_iter().flatten() {
                out.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*ip))));
            }
        };
        let any = qtype == RecordType::ANY;
        if qtype == RecordType::A || any {
            a_records(&owner, name, &mut answers);
        }
        if qtype == RecordType::SRV || any {
            for target in set.srv.get(name).into_iter().flatten() {
                let Ok(host) = Name::from_ascii(&target.host) else {
                    continue;
                };
                let srv = SRV::new(0, 1, target.port, host.clone());
                answers.push(Record::from_rdata(owner.clone(), ttl, RData::SRV(srv)));
                if !additionals.iter().any(|r: &Record| r.name() == &host) {
                    a_records(&host, &target.host, &mut additionals);
                }
            }
        }
        if name == set.domain {
            if qtype == RecordType::SOA || any {
                answers.extend(self.soa(set));
            }
            if qtype == RecordType::NS || any {
                let ns_name = format!("{}.", self.config.soa_mname.trim_end_matches('.'));
                if let Ok(ns) = Name::from_ascii(&ns_name) {
                    answers.push(Record::from_rdata(owner.clone(), ttl, RData::NS(NS(ns.clone()))));
                    a_records(&ns, &ns_name.to_ascii_lowercase(), &mut additionals);
                }
            }
        }
        (answers, additionals)
    }

    /// Asks the configured resolvers, in order, and relays the first answer.
    async fn forward(&self, query: &Query, recursion_desired: bool) -> Option<Message> {
        for resolver in &self.config.resolvers {
            let mut message = Message::new();
            message
                .set_id(rand_id())
                .set_message_type(MessageType::Query)
                .set_op_code(OpCode::Query)
                .set_recursion_desired(recursion_desired)
                .add_query(query.clone());
            // Ask for large answers: this server sizes them for its client.
            let mut edns = hickory_proto::op::Edns::new();
            edns.set_max_payload(4096);
            message.set_edns(edns);
            let Ok(bytes) = message.to_vec() else { return None };
            let bind: SocketAddr = if resolver.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let exchange = async {
                let socket = UdpSocket::bind(bind).await.ok()?;
                socket.connect(resolver).await.ok()?;
                socket.send(&bytes).await.ok()?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = socket.recv(&mut buf).await.ok()?;
                    match Message::from_vec(&buf[..n]) {
                        Ok(reply) if reply.id() == message.id() => return Some(reply),
                        _ => continue,
                    }
                }
            };
            match tokio::time::timeout(self.config.timeout, exchange).await {
                Ok(Some(reply)) => return Some(reply),
                _ => tracing::debug!(%resolver, "resolver did not answer"),
            }
        }
        None
    }
}

/// A query id for forwarded queries: the low bits of the clock mixed with
/// a counter, good enough to match replies on a connected socket.
fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos as u16) ^ NEXT.fetch_add(0x9e37, Ordering::Relaxed)
}

/// What a query gets.
pub(crate) enum Reply {
    /// Only a response code (REFUSED, SERVFAIL).
    Code(ResponseCode),
    /// A resolver's answer to a name outside the domain.
    Forwarded(Message),
    /// An authoritative answer (NOERROR with or without records, or NXDOMAIN).
    Answer {
        code: ResponseCode,
        answers: Vec<Record>,
        additionals: Vec<Record>,
        soa: Vec<Record>,
    },
}

impl DnsHandler {
    /// The reply to one question, whatever carries it.
    pub(crate) async fn reply(&self, query: &Query, recursion_desired: bool) -> Reply {
        let name = query.name().to_ascii().to_ascii_lowercase();
        let name = if name.ends_with('.') { name } else { format!("{name}.") };
        let set = Arc::clone(&self.records.borrow());
        if !set.in_domain(&name) {
            if self.config.resolvers.is_empty() {
                return Reply::Code(ResponseCode::Refused);
            }
            return match self.forward(query, recursion_desired).await {
                Some(reply) => Reply::Forwarded(reply),
                None => Reply::Code(ResponseCode::ServFail),
            };
        }
        let (answers, additionals) = self.answer(&set, &name, query.query_type());
        let mut soa = Vec::new();
        let mut code = ResponseCode::NoError;
        if answers.is_empty() {
            if !set.exists(&name) {
                code = ResponseCode::NXDomain;
            }
            soa.extend(self.soa(&set));
        }
        Reply::Answer {
            code,
            answers,
            additionals,
            soa,
        }
    }

    /// Whether a name outside the domain would be forwarded (a UDP loop
    /// hands such queries to a task of their own).
    pub(crate) fn forwards(&self, query: &Query) -> bool {
        if self.config.resolvers.is_empty() {
            return false;
        }
        let name = query.name().to_ascii().to_ascii_lowercase();
        let name = if name.ends_with('.') { name } else { format!("{name}.") };
        !self.records.borrow().in_domain(&name)
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        let fail = |mut header: Header, code: ResponseCode| {
            header.set_response_code(code);
            ResponseInfo::from(header)
        };
        if request.op_code() != OpCode::Query || request.message_type() != MessageType::Query {
            let msg = builder.error_msg(request.header(), ResponseCode::NotImp);
            return response
                .send_response(msg)
                .await
                .unwrap_or_else(|_| fail(header, ResponseCode::ServFail));
        }
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(request.header(), ResponseCode::FormErr);
            return response
                .send_response(msg)
                .await
                .unwrap_or_else(|_| fail(header, ResponseCode::ServFail));
        };
        let sent = match self.reply(info.query.original(), request.recursion_desired()).await {
            Reply::Code(code) => response.send_response(builder.error_msg(request.header(), code)).await,
            Reply::Forwarded(reply) => {
                header.set_response_code(reply.response_code());
                header.set_recursion_available(true);
                let msg = builder.build(
                    header,
                    reply.answers().iter(),
                    reply.name_servers().iter(),
                    std::iter::empty(),
                    reply.additionals().iter(),
                );
                response.send_response(msg).await
            }
            Reply::Answer {
                code,
                answers,
                additionals,
                soa,
            } => {
                header.set_authoritative(true);
                header.set_response_code(code);
                let msg = builder.build(
                    header,
                    answers.iter(),
                    std::iter::empty(),
                    soa.iter(),
                    additionals.iter(),
                );
                response.send_response(msg).await
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "could not send a DNS answer");
            fail(header, ResponseCode::ServFail)
        })
    }
}

/// A running DNS server.
pub struct DnsServer {
    /// Where it answers over UDP and TCP.
    pub addr: SocketAddr,
    tcp: ServerFuture<DnsHandler>,
    udp: Vec<tokio::task::JoinHandle<()>>,
}

/// UDP loops per server: one per core of the development machine, so
/// answering and sending overlap.
const UDP_LOOPS: usize = 2;

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0: a free port, the same for
    /// both) and answers with `handler`: UDP in loops of its own, TCP
    /// through hickory-server (framing, timeouts, pipelining).
    pub async fn bind(addr: SocketAddr, handler: DnsHandler) -> Result<DnsServer, Error> {
        let bind_err = |what: &'static str| move |source| Error::Bind { what, addr, source };
        let udp = UdpSocket::bind(addr).await.map_err(bind_err("DNS (UDP)"))?;
        let addr = udp.local_addr().map_err(bind_err("DNS (UDP)"))?;
        let tcp = TcpListener::bind(addr).await.map_err(bind_err("DNS (TCP)"))?;
        let shared = Arc::new(handler.clone());
        let socket = Arc::new(udp);
        let loops = (0..UDP_LOOPS)
            .map(|_| tokio::spawn(udp::serve(Arc::clone(&socket), Arc::clone(&shared))))
            .collect();
        let mut server = ServerFuture::new(handler);
        server.register_listener(tcp, TCP_TIMEOUT);
        Ok(DnsServer {
            addr,
            tcp: server,
            udp: loops,
        })
    }

    /// Stops answering.
    pub async fn shutdown(mut self) {
        for l in &self.udp {
            l.abort();
        }
        if let Err(e) = self.tcp.shutdown_gracefully().await {
            tracing::debug!(error = %e, "DNS server stopped with an error");
        }
    }
}
