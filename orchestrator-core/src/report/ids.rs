//! Deterministic node ids, so that two probes (or two reports of one
//! probe) name the same thing the same way and merge finds it.
//!
//! Fields are joined with `;`, as Weave Scope does. An endpoint on a
//! loopback address is only meaningful on its own host (and network
//! namespace), so its id is scoped by them; any other address names the
//! same socket from both ends of a connection, so the id is unscoped and
//! the edge found on one host meets the node reported by the other.

use std::net::IpAddr;

/// `host;pid`.
pub fn process(host: &str, pid: u32) -> String {
    format!("{host};{pid}")
}

/// Splits a process id into host and pid.
pub fn parse_process(id: &str) -> Option<(&str, u32)> {
    let (host, pid) = id.rsplit_once(';')?;
    Some((host, pid.parse().ok()?))
}

/// `scope;addr;port`, where scope is `host` (plus `/netns` outside the host's
/// own network namespace) for loopback addresses and empty otherwise.
pub fn endpoint(host: &str, netns: Option<u64>, addr: IpAddr, port: u16) -> String {
    // A probe names ten thousand endpoints a cycle: written by hand, not
    // through `format!` (which pads every address it displays).
    let mut id = String::with_capacity(host.len() + 48);
    if addr.is_loopback() {
        id.push_str(host);
        if let Some(ns) = netns {
            id.push('/');
            push_decimal(&mut id, ns);
        }
    }
    id.push(';');
    match addr {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    id.push('.');
                }
                push_decimal(&mut id, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(id, "{v6}");
        }
    }
    id.push(';');
    push_decimal(&mut id, u64::from(port));
    id
}

fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// Splits an endpoint id into scope, address and port.
pub fn parse_endpoint(id: &str) -> Option<(&str, IpAddr, u16)> {
    let (rest, port) = id.rsplit_once(';')?;
    let (scope, addr) = rest.rsplit_once(';')?;
    Some((scope, addr.parse().ok()?, port.parse().ok()?))
}

/// A container is named by its full id.
pub fn container(id: &str) -> String {
    id.to_string()
}

/// An image is named by its id (`sha256:…`).
pub fn container_image(id: &str) -> String {
    id.to_string()
}

/// A host is named by its host name.
pub fn host(hostname: &str) -> String {
    hostname.to_string()
}

/// A pod is named by its uid.
pub fn pod(uid: &str) -> String {
    uid.to_string()
}

/// `namespace;name` for a Kubernetes service, `marathon;/app/id` for a
/// Marathon app.
pub fn service(namespace: &str, name: &str) -> String {
    format!("{namespace};{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_process(&process("h;x", 7)), Some(("h;x", 7)));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(endpoint("h", None, lo, 80), "h;127.0.0.1;80");
        assert_eq!(endpoint("h", Some(9), lo, 80), "h/9;127.0.0.1;80");
        assert_eq!(endpoint("h", Some(9), v6, 80), ";fe80::1;80");
        assert_eq!(parse_endpoint("h/9;127.0.0.1;80"), Some(("h/9", lo, 80)));
        assert_eq!(parse_endpoint(";fe80::1;80"), Some(("", v6, 80)));
        // What the hand-written formatting must agree with.
        for (addr, port) in [
            ("0.0.0.0", 0),
            ("10.200.3.255", 65535),
            ("::1", 7),
            ("2001:db8::ff00:42:8329", 443),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let scope = if ip.is_loopback() { "h/12345678901" } else { "" };
            assert_eq!(
                endpoint("h", Some(12_345_678_901), ip, port),
                format!("{scope};{ip};{port}")
            );
        }
    }
}
