//! DNS over UDP without a task per query: each loop receives, answers
//! inline and sends, two loops sharing the socket. (hickory-server's UDP
//! path spawns a task per request; at tens of thousands of queries a
//! second that was most of the cost.) Answers are sized as RFC 6891 asks:
//! up to 512 bytes, or the client's EDNS payload size; a larger answer
//! loses its additional records first, then is sent truncated (TC) so the
//! client retries over TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use tokio::net::UdpSocket;

use super::{DnsHandler, Reply};

/// What this server accepts in one UDP answer when the client says more.
const MAX_PAYLOAD: u16 = 4096;

/// Serves queries arriving on `socket` until it fails for good.
pub(crate) async fn serve(socket: Arc<UdpSocket>, handler: Arc<DnsHandler>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            // Answer FORMERR when at least the header can be read.
            if let Some(reply) = formerr(&buf[..n]) {
                let _ = socket.send_to(&reply, peer).await;
            }
            continue;
        };
        if query.queries().len() == 1 && handler.forwards(&query.queries()[0]) {
            // A resolver's round trip must not hold the loop up.
            let (socket, handler) = (Arc::clone(&socket), Arc::clone(&handler));
            tokio::spawn(async move { answer(&socket, &handler, query, peer).await });
            continue;
        }
        answer(&socket, &handler, query, peer).await;
    }
}

async fn answer(socket: &UdpSocket, handler: &DnsHandler, query: Message, peer: SocketAddr) {
    if query.message_type() != MessageType::Query {
        return;
    }
    let mut header = Header::response_from_request(query.header());
    let mut out = Message::new();
    let code = if query.op_code() != OpCode::Query {
        Some(ResponseCode::NotImp)
    } else if query.queries().len() != 1 {
        Some(ResponseCode::FormErr)
    } else {
        None
    };
    out.add_queries(query.queries().iter().cloned());
    let limit = match query.extensions() {
        Some(edns) => {
            let mut ours = Edns::new();
            ours.set_max_payload(MAX_PAYLOAD);
            out.set_edns(ours);
            edns.max_payload().clamp(512, MAX_PAYLOAD)
        }
        None => 512,
    };
    if let Some(code) = code {
        header.set_response_code(code);
        out.set_header(header);
        return send(socket, &out, peer).await;
    }
    match handler.reply(&query.queries()[0], query.recursion_desired()).await {
        Reply::Code(code) => {
            header.set_response_code(code);
        }
        Reply::Forwarded(mut reply) => {
            header.set_response_code(reply.response_code());
            header.set_recursion_available(true);
            out.add_answers(reply.take_answers());
            out.add_name_servers(reply.take_name_servers());
            out.add_additionals(reply.take_additionals());
        }
        Reply::Answer {
            code,
            answers,
            additionals,
            soa,
        } => {
            header.set_authoritative(true);
            header.set_response_code(code);
            out.add_answers(answers);
            out.add_name_servers(soa);
            out.add_additionals(additionals);
        }
    }
    out.set_header(header);
    let Ok(mut bytes) = out.to_vec() else { return };
    if bytes.len() > usize::from(limit) {
        out.take_additionals();
        bytes = match out.to_vec() {
            Ok(b) => b,
            Err(_) => return,
        };
        if bytes.len() > usize::from(limit) {
            out.take_answers();
            out.take_name_servers();
            header.set_truncated(true);
            out.set_header(header);
            let Ok(b) = out.to_vec() else { return };
            bytes = b;
        }
    }
    let _ = socket.send_to(&bytes, peer).await;
}

async fn send(socket: &UdpSocket, message: &Message, peer: SocketAddr) {
    if let Ok(bytes) = message.to_vec() {
        let _ = socket.send_to(&bytes, peer).await;
    }
}

/// A FORMERR answer to a packet whose header is readable: its id and
/// opcode, QR set, no records; none for a packet shorter than a header or
/// one that is itself an answer.
fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None;
    }
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&packet[..2]);
    reply[2] = 0x80 | (packet[2] & 0x78);
    reply[3] = 1;
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::formerr;

    #[test]
    fn formerr_keeps_the_id_and_opcode() {
        assert_eq!(
            formerr(&[0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff]).unwrap(),
            [0x12, 0x34, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(formerr(&[0; 11]).is_none(), "no header, no answer");
        assert!(
            formerr(&[0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none(),
            "answers are not answered"
        );
    }
}
