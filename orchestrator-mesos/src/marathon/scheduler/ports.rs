//! Service ports, as Marathon means them: the ports a load balancer listens
//! on for an app (`portDefinitions[].port`, or `portMappings[].servicePort`),
//! unique across apps and assigned from a range when given as 0. They are
//! host ports only for an app with `requirePorts`.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use super::Scheduler;
use crate::marathon::app::AppDefinition;

/// Marathon's default service-port range (`--local_port_min/max`).
pub const SERVICE_PORTS: RangeInclusive<u32> = 10_000..=20_000;

/// An app's service ports, to read or to assign.
pub(super) fn service_ports_mut(def: &mut AppDefinition) -> Vec<&mut u32> {
    if let Some(c) = def.container.as_mut() {
        if !c.port_mappings.is_empty() {
            return c.port_mappings.iter_mut().map(|m| &mut m.service_port).collect();
        }
        if let Some(d) = c.docker.as_mut().filter(|d| !d.port_mappings.is_empty()) {
            return d.port_mappings.iter_mut().map(|m| &mut m.service_port).collect();
        }
    }
    def.port_definitions.iter_mut().map(|p| &mut p.port).collect()
}

fn service_ports(def: &AppDefinition) -> Vec<u32> {
    let mut def = def.clone();
    service_ports_mut(&mut def).into_iter().map(|p| *p).collect()
}

impl Scheduler {
    /// The service ports of every app but `except`.
    fn service_ports_in_use(&self, except: &str) -> BTreeSet<u32> {
        self.apps
            .values()
            .filter(|a| a.def.id != except)
            .flat_map(|a| service_ports(&a.def))
            .filter(|p| *p != 0)
            .collect()
    }

    /// A service port `def` asks for that another app holds: the port and
    /// that app, for a 422.
    pub fn service_port_conflict(&self, def: &AppDefinition) -> Option<(u32, String)> {
        let asked: Vec<u32> = service_ports(def).into_iter().filter(|p| *p != 0).collect();
        if asked.is_empty() {
            return None;
        }
        self.apps.values().filter(|a| a.def.id != def.id).find_map(|a| {
            let held = service_ports(&a.def);
            asked.iter().find(|p| held.contains(p)).map(|p| (*p, a.def.id.clone()))
        })
    }

    /// Gives every service port of `def` that is 0 a free one from
    /// [`SERVICE_PORTS`]: the one the app had at that place before when it
    /// had one (a load balancer's port stays put across updates), else the
    /// lowest free. `false` when the range is exhausted.
    pub(super) fn assign_service_ports(&self, def: &mut AppDefinition) -> bool {
        let mut used = self.service_ports_in_use(&def.id);
        let before: Vec<u32> = self
            .apps
            .get(&def.id)
            .map(|a| service_ports(&a.def))
            .unwrap_or_default();
        for p in service_ports_mut(def).iter().filter(|p| ***p != 0) {
            used.insert(**p);
        }
        let mut next = *SERVICE_PORTS.start();
        for (i, port) in service_ports_mut(def).into_iter().enumerate() {
            if *port != 0 {
                continue;
            }
            if let Some(old) = before.get(i).filter(|o| **o != 0 && !used.contains(o)) {
                *port = *old;
                used.insert(*old);
                continue;
            }
            while used.contains(&next) && next <= *SERVICE_PORTS.end() {
                next += 1;
            }
            if next > *SERVICE_PORTS.end() {
                return false;
            }
            *port = next;
            used.insert(next);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scheduler;
    use crate::marathon::app::AppDefinition;

    fn app(json: &str) -> AppDefinition {
        AppDefinition::from_json(json.as_bytes()).unwrap()
    }

    fn ports(s: &Scheduler, id: &str) -> Vec<u32> {
        s.app(id).unwrap().def.port_definitions.iter().map(|p| p.port).collect()
    }

    #[test]
    fn service_ports_are_assigned_unique_and_kept_across_updates() {
        let mut s = Scheduler::new();
        s.put_app(
            app(r#"{"id": "/a", "cmd": "x", "portDefinitions": [{"port": 0}, {"port": 0}]}"#),
            "v1",
            "d1",
            false,
        )
        .unwrap();
        assert_eq!(ports(&s, "/a"), vec![10_000, 10_001]);
        // An explicit port is kept, and others skip it.
        s.put_app(
            app(r#"{"id": "/b", "cmd": "x", "portDefinitions": [{"port": 10002}, {"port": 0}]}"#),
            "v1",
            "d2",
            false,
        )
        .unwrap();
        assert_eq!(ports(&s, "/b"), vec![10_002, 10_003]);
        // An update with 0 again keeps the load balancer's ports.
        s.put_app(
            app(r#"{"id": "/a", "cmd": "y", "portDefinitions": [{"port": 0}, {"port": 0}]}"#),
            "v2",
            "d3",
            true,
        )
        .unwrap();
        assert_eq!(ports(&s, "/a"), vec![10_000, 10_001]);
        // Asking for another app's port is a conflict, naming the app.
        let taken = app(r#"{"id": "/c", "cmd": "x", "portDefinitions": [{"port": 10001}]}"#);
        assert_eq!(s.service_port_conflict(&taken), Some((10_001, "/a".to_string())));
        let own = app(r#"{"id": "/a", "cmd": "x", "portDefinitions": [{"port": 10001}]}"#);
        assert_eq!(s.service_port_conflict(&own), None);
    }
}
