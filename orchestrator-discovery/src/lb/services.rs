//! Which service port goes to which tasks: read from the scheduler's
//! `/v2/apps?embed=apps.tasks` (pure, as marathon-lb reads it).

use std::collections::BTreeMap;

use serde_json::Value;

/// How a service spreads its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Each backend in turn.
    RoundRobin,
    /// The backend with the fewest open connections.
    LeastConn,
}

impl Balance {
    /// From marathon-lb's `HAPROXY_{n}_BALANCE` value.
    pub fn parse(value: &str) -> Option<Balance> {
        match value.trim().to_ascii_lowercase().as_str() {
            "roundrobin" => Some(Balance::RoundRobin),
            "leastconn" => Some(Balance::LeastConn),
            _ => None,
        }
    }
}

/// One task that serves a service port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// The task's id.
    pub task_id: String,
    /// Its host (an address or a name).
    pub host: String,
    /// Its host port for this service.
    pub port: u16,
}

/// What HAProxy proxies a service as (`HAPROXY_{n}_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// TCP connections.
    Tcp,
    /// HTTP requests (virtual hosts are routed by `Host`).
    Http,
}

/// One service port of an app and the tasks behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The app's id.
    pub app_id: String,
    /// The service port (what the balancer listens on).
    pub service_port: u16,
    /// How connections are spread.
    pub balance: Balance,
    /// The port HAProxy binds for it (`HAPROXY_{n}_PORT`, else the
    /// service port).
    pub frontend_port: u16,
    /// `HAPROXY_{n}_MODE`.
    pub mode: Mode,
    /// `HAPROXY_{n}_VHOST`: host names routed to it on the HTTP frontend.
    pub vhosts: Vec<String>,
    /// `HAPROXY_GROUP`: the balancer groups that expose it (none: only
    /// balancers serving every group, `*`).
    pub groups: Vec<String>,
    /// The tasks that take connections: running, and healthy where the
    /// app has health checks.
    pub backends: Vec<Backend>,
}

/// Every service port, by port.
pub type Services = BTreeMap<u16, Service>;

/// The services of a `/v2/apps?embed=apps.tasks` answer. Apps without
/// service ports, and ports claimed twice, are left out (the first app
/// keeps a port).
pub fn services_of(apps: &Value, default_balance: Balance) -> Services {
    let mut out = Services::new();
    for app in apps["apps"].as_array().into_iter().flatten() {
        let Some(app_id) = app["id"].as_str() else { continue };
        let ports = service_ports(app);
        let labels = &app["labels"];
        let checked = app["healthChecks"].as_array().is_some_and(|c| !c.is_empty());
        for (index, service_port) in ports.into_iter().enumerate() {
            let Some(service_port) = service_port else { continue };
            if out.contains_key(&service_port) {
                tracing::warn!(
                    app = app_id,
                    port = service_port,
                    "service port claimed twice; the first app keeps it"
                );
                continue;
            }
            let label = |name: &str| labels[format!("HAPROXY_{index}_{name}")].as_str();
            let balance = label("BALANCE").and_then(Balance::parse).unwrap_or(default_balance);
            let mode = match label("MODE").map(str::to_ascii_lowercase).as_deref() {
                Some("http") => Mode::Http,
                _ => Mode::Tcp,
            };
            let frontend_port = label("PORT")
                .and_then(|p| p.trim().parse::<u16>().ok())
                .filter(|p| *p != 0)
                .unwrap_or(service_port);
            let vhosts = label("VHOST")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|h| valid_host(h))
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            let groups = labels["HAPROXY_GROUP"]
                .as_str()
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let mut backends: Vec<Backend> = app["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["state"] == "TASK_RUNNING" && (!checked || healthy(t)))
                .filter_map(|t| {
                    Some(Backend {
                        task_id: t["id"].as_str()?.to_string(),
                        host: t["host"].as_str()?.to_string(),
                        port: u16::try_from(t["ports"][index].as_u64()?).ok().filter(|p| *p != 0)?,
                    })
                })
                .collect();
            backends.sort();
            out.insert(
                service_port,
                Service {
                    app_id: app_id.to_string(),
                    service_port,
                    balance,
                    frontend_port,
                    mode,
                    vhosts,
                    groups,
                    backends,
                },
            );
        }
    }
    out
}

/// An app's service ports by port index: `portDefinitions[].port`, or
/// the container's `portMappings[].servicePort`.
fn service_ports(app: &Value) -> Vec<Option<u16>> {
    let port = |v: &Value| v.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
    if let Some(defs) = app["portDefinitions"].as_array().filter(|d| !d.is_empty()) {
        return defs.iter().map(|d| port(&d["port"])).collect();
    }
    app["container"]["portMappings"]
        .as_array()
        .or_else(|| app["container"]["docker"]["portMappings"].as_array())
        .into_iter()
        .flatten()
        .map(|m| port(&m["servicePort"]))
        .collect()
}

/// A host name fit for an HAProxy ACL: letters, digits, `-`, `.`, `*`.
fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c))
}

/// Whether every health check of a task passes (none reported yet: not
/// healthy, as marathon-lb waits for the first result).
fn healthy(task: &Value) -> bool {
    task["healthCheckResults"]
        .as_array()
        .is_some_and(|r| !r.is_empty() && r.iter().all(|h| h["alive"] == true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_map_to_running_healthy_tasks() {
        let apps = json!({"apps": [
            {"id": "/web", "portDefinitions": [{"port": 10001}, {"port": 10002}],
             "labels": {"HAPROXY_1_BALANCE": "leastconn", "HAPROXY_GROUP": "external, internal",
                        "HAPROXY_0_MODE": "HTTP", "HAPROXY_0_VHOST": "Web.Example.com, bad host;, b.example.com",
                        "HAPROXY_1_PORT": "9090"},
             "healthChecks": [{"protocol": "HTTP"}],
             "tasks": [
                {"id": "a", "host": "h1", "state": "TASK_RUNNING", "ports": [31000, 31001],
                 "healthCheckResults": [{"alive": true}]},
                {"id": "b", "host": "h2", "state": "TASK_RUNNING", "ports": [31002, 31003],
                 "healthCheckResults": [{"alive": false}]},
                {"id": "c", "host": "h3", "state": "TASK_RUNNING", "ports": [31004, 31005]},
                {"id": "d", "host": "h4", "state": "TASK_KILLING", "ports": [31006, 31007],
                 "healthCheckResults": [{"alive": true}]}]},
            {"id": "/db", "container": {"portMappings": [{"containerPort": 5432, "servicePort": 10003}]},
             "tasks": [{"id": "e", "host": "h5", "state": "TASK_RUNNING", "ports": [31010]}]},
            {"id": "/thief", "portDefinitions": [{"port": 10001}], "tasks": []},
            {"id": "/none", "portDefinitions": [{"port": 0}], "tasks": []}
        ]});
        let s = services_of(&apps, Balance::RoundRobin);
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), [10001, 10002, 10003]);
        assert_eq!(s[&10001].app_id, "/web", "the first app keeps a port");
        assert_eq!(s[&10001].balance, Balance::RoundRobin);
        assert_eq!(s[&10002].balance, Balance::LeastConn);
        let only_a = vec![Backend {
            task_id: "a".into(),
            host: "h1".into(),
            port: 31000,
        }];
        assert_eq!(
            s[&10001].backends, only_a,
            "unhealthy, unchecked and killing tasks take no connections"
        );
        assert_eq!(s[&10002].backends[0].port, 31001);
        assert_eq!(s[&10003].backends[0].port, 31010);
        assert_eq!(s[&10001].mode, Mode::Http);
        assert_eq!(
            s[&10001].vhosts,
            ["web.example.com", "b.example.com"],
            "invalid host names are dropped"
        );
        assert_eq!(s[&10001].groups, ["external", "internal"]);
        assert_eq!((s[&10001].frontend_port, s[&10002].frontend_port), (10001, 9090));
        assert_eq!(s[&10002].mode, Mode::Tcp);
        assert!(s[&10003].groups.is_empty());
    }
}
