//! The record set in wire form: every answer made into hickory records
//! once per change of the set, so a query only looks a name up and
//! writes what is there (building names and records per query was a
//! third of an SRV answer's time).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record};

use crate::records::SrvTarget;

/// The answers of every name.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// Name → its A records.
    pub a: HashMap<String, Vec<Record>>,
    /// Name → its SRV records, and the A records of their targets.
    pub srv: HashMap<String, (Vec<Record>, Vec<Record>)>,
}

impl Zone {
    /// The records of `a` and `srv` with `ttl`. Names that are not valid
    /// DNS names (they cannot be: they are built from labels) are skipped.
    pub fn of(a: &HashMap<String, Vec<Ipv4Addr>>, srv: &HashMap<String, Vec<SrvTarget>>, ttl: u32) -> Zone {
        let mut names: HashMap<&str, Name> = HashMap::with_capacity(a.len());
        for name in a.keys() {
            if let Ok(n) = Name::from_ascii(name) {
                names.insert(name.as_str(), n);
            }
        }
        let records = |name: &Name, ips: &[Ipv4Addr]| -> Vec<Record> {
            ips.iter()
                .map(|ip| Record::from_rdata(name.clone(), ttl, RData::A(A(*ip))))
                .collect()
        };
        let zone_a: HashMap<String, Vec<Record>> = a
            .iter()
            .filter_map(|(k, ips)| Some((k.clone(), records(names.get(k.as_str())?, ips))))
            .collect();
        let mut zone_srv = HashMap::with_capacity(srv.len());
        for (k, targets) in srv {
            let Ok(owner) = Name::from_ascii(k) else { continue };
            let mut answers = Vec::with_capacity(targets.len());
            let mut additionals = Vec::with_capacity(targets.len());
            for t in targets {
                let host = match names.get(t.host.as_str()) {
                    Some(n) => n.clone(),
                    None => match Name::from_ascii(&t.host) {
                        Ok(n) => n,
                        Err(_) => continue,
                    },
                };
                answers.push(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(0, 1, t.port, host.clone())),
                ));
                // Targets are sorted: one target's addresses come together.
                let fresh = additionals.last().is_none_or(|r: &Record| r.name() != &host);
                if fresh {
                    if let Some(ips) = a.get(&t.host) {
                        additionals.extend(records(&host, ips));
                    }
                }
            }
            zone_srv.insert(k.clone(), (answers, additionals));
        }
        Zone {
            a: zone_a,
            srv: zone_srv,
        }
    }
}
