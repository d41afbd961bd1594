//! Offer matching: which instances of which apps an offer can host, with
//! their resources, ports and placement constraints — pure, so the
//! scheduler's hot path is tested without a master.

use std::collections::BTreeMap;

use orchestrator_core::{
    AgentId, Attributes, CommandInfo, ContainerInfo, ContainerType, DockerInfo, DockerNetwork, DockerPortMapping,
    Environment, Labels, Offer, Ranges, Resource, Resources, TaskId, TaskInfo, Value, Variable, Volume, VolumeMode,
};
use regex::Regex;

use super::app::AppDefinition;

/// The label that ties a task to its app (the probe's services view reads it too).
pub const APP_LABEL: &str = "orchestrator.app_id";
/// The label with the app version a task runs.
pub const VERSION_LABEL: &str = "orchestrator.app_version";

/// A constraint operator.
#[derive(Clone, Debug)]
enum Op {
    Unique,
    Cluster(Option<String>),
    GroupBy(usize),
    Like(Regex),
    Unlike(Regex),
    MaxPer(usize),
}

/// One parsed placement constraint, `[field, operator, value?]`.
#[derive(Clone, Debug)]
pub struct Constraint {
    field: String,
    op: Op,
}

/// Where an instance of the app already runs, as constraints see it.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The agent's host name.
    pub hostname: String,
    /// The agent's attributes.
    pub attributes: Attributes,
}

impl Constraint {
    /// Parses a Marathon constraint.
    ///
    /// # Errors
    /// A message for a malformed rule or regular expression.
    pub fn parse(rule: &[String]) -> Result<Self, String> {
        let (field, op, value) = match rule {
            [f, o] => (f, o.as_str(), None),
            [f, o, v] => (f, o.as_str(), Some(v.as_str())),
            _ => return Err(format!("{rule:?}: expected [field, operator, value?]")),
        };
        let anchored = |v: Option<&str>| {
            let v = v.ok_or_else(|| format!("{op} needs a regular expression"))?;
            Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("{v:?} is not a regular expression: {e}"))
        };
        let number = |v: Option<&str>| -> Result<usize, String> {
            v.ok_or_else(|| format!("{op} needs a number"))?
                .parse()
                .map_err(|_| format!("{op} needs a number"))
        };
        let op = match op {
            "UNIQUE" => Op::Unique,
            "CLUSTER" => Op::Cluster(value.map(str::to_string)),
            "GROUP_BY" => Op::GroupBy(value.map_or(Ok(0), |v| number(Some(v)))?),
            "LIKE" => Op::Like(anchored(value)?),
            "UNLIKE" => Op::Unlike(anchored(value)?),
            "MAX_PER" => Op::MaxPer(number(value)?),
            other => return Err(format!("unknown operator {other:?}")),
        };
        Ok(Constraint {
            field: field.clone(),
            op,
        })
    }

    fn value_of(&self, hostname: &str, attributes: &Attributes) -> Option<String> {
        if self.field == "hostname" {
            Some(hostname.to_string())
        } else {
            attributes.get(&self.field).map(ToString::to_string)
        }
    }

    /// Whether an agent (`hostname`, `attributes`) may host one more
    /// instance, given where the app's instances already are.
    pub fn accepts(&self, hostname: &str, attributes: &Attributes, placed: &[Placement]) -> bool {
        let value = self.value_of(hostname, attributes);
        let count_of = |v: &str| {
            placed
                .iter()
                .filter(|p| self.value_of(&p.hostname, &p.attributes).as_deref() == Some(v))
                .count()
        };
        match (&self.op, value) {
            (Op::Like(re), v) => v.is_some_and(|v| re.is_match(&v)),
            (Op::Unlike(re), v) => !v.is_some_and(|v| re.is_match(&v)),
            (_, None) => false,
            (Op::Unique, Some(v)) => count_of(&v) == 0,
            (Op::Cluster(Some(want)), Some(v)) => *want == v,
            (Op::Cluster(None), Some(v)) => placed
                .iter()
                .filter_map(|p| self.value_of(&p.hostname, &p.attributes))
                .all(|other| other == v),
            (Op::MaxPer(n), Some(v)) => count_of(&v) < *n,
            (Op::GroupBy(groups), Some(v)) => {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for p in placed {
                    if let Some(pv) = self.value_of(&p.hostname, &p.attributes) {
                        *counts.entry(pv).or_default() += 1;
                    }
                }
                let mine = counts.get(&v).copied().unwrap_or(0);
                let min = if counts.len() < *groups || !counts.contains_key(&v) {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                };
                mine <= min
            }
        }
    }
}

/// An app's parsed constraints.
///
/// # Errors
/// The first malformed rule.
pub fn constraints(app: &AppDefinition) -> Result<Vec<Constraint>, String> {
    app.constraints.iter().map(|r| Constraint::parse(r)).collect()
}

/// What one instance needs, from its app.
fn needs(app: &AppDefinition) -> Result<Resources, orchestrator_core::Error> {
    let mut r = Resources::new();
    for (name, value) in [("cpus", app.cpus), ("mem", app.mem), ("disk", app.disk)] {
        if value > 0.0 {
            r.push(Resource::scalar(name, value)?);
        }
    }
    Ok(r)
}

/// Picks the app's host ports from what the offer has left: fixed ports
/// (port mappings' host ports, or with `requirePorts` the service ports)
/// must be free, port 0 takes the lowest free one.
fn pick_ports(app: &AppDefinition, free: &Ranges) -> Option<Vec<u64>> {
    let wanted: Vec<u32> = match app.container.as_ref() {
        Some(c) if !c.port_mappings.is_empty() => c.port_mappings.iter().map(|m| m.host_port.unwrap_or(0)).collect(),
        Some(c) if c.docker.as_ref().is_some_and(|d| !d.port_mappings.is_empty()) => c
            .docker
            .as_ref()
            .map(|d| d.port_mappings.iter().map(|m| m.host_port.unwrap_or(0)).collect())
            .unwrap_or_default(),
        // Service ports are not host ports, unless the app requires them.
        _ if app.require_ports => app.port_definitions.iter().map(|p| p.port).collect(),
        _ => vec![0; app.port_definitions.len()],
    };
    let mut left = free.clone();
    let mut out = Vec::with_capacity(wanted.len());
    for p in wanted {
        let port = if p == 0 {
            left.as_slice().first().map(|r| r.begin)?
        } else if left.contains_item(u64::from(p)) {
            u64::from(p)
        } else {
            return None;
        };
        left = left.difference(&Ranges::single(port, port));
        out.push(port);
    }
    Some(out)
}

/// One instance an offer will host.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The app.
    pub app_id: String,
    /// The host ports it got, in the app's port order.
    pub ports: Vec<u64>,
    /// The task to send.
    pub task: TaskInfo,
}

fn var(name: impl Into<String>, value: String) -> Variable {
    Variable {
        name: name.into(),
        value,
    }
}

/// The Mesos `ContainerInfo` of an app's container, host ports paired with
/// its port mappings in order. `None` for a `MESOS` container without an
/// image (a plain command).
fn container_for(c: &super::app::Container, ports: &[u64]) -> Option<ContainerInfo> {
    let volumes = c
        .volumes
        .iter()
        .map(|v| Volume {
            container_path: v.container_path.clone(),
            host_path: v.host_path.clone(),
            mode: if v.mode.eq_ignore_ascii_case("RO") {
                VolumeMode::Ro
            } else {
                VolumeMode::Rw
            },
        })
        .collect();
    let docker = c.docker.as_ref().filter(|d| !d.image.is_empty())?;
    let network = match docker.network.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("BRIDGE") => Some(DockerNetwork::Bridge),
        Some("USER") => Some(DockerNetwork::User),
        Some("NONE") => Some(DockerNetwork::None),
        Some("HOST") => Some(DockerNetwork::Host),
        // Marathon 1.5+ puts the network in `networks`; with port mappings
        // that is a bridge.
        _ if !c.port_mappings.is_empty() => Some(DockerNetwork::Bridge),
        _ => Some(DockerNetwork::Host),
    };
    let mappings = if c.port_mappings.is_empty() {
        &docker.port_mappings
    } else {
        &c.port_mappings
    };
    let port_mappings = mappings
        .iter()
        .zip(ports)
        .flat_map(|(m, host)| {
            // `udp,tcp` maps both protocols.
            m.protocol.split(',').map(move |proto| DockerPortMapping {
                host_port: *host as u32,
                container_port: if m.container_port == 0 {
                    *host as u32
                } else {
                    m.container_port
                },
                protocol: Some(proto.trim().to_ascii_lowercase()),
            })
        })
        .collect();
    let kind = if c.kind.eq_ignore_ascii_case("MESOS") {
        ContainerType::Mesos
    } else {
        ContainerType::Docker
    };
    Some(ContainerInfo {
        kind,
        docker: Some(DockerInfo {
            image: docker.image.clone(),
            network,
            port_mappings,
            privileged: docker.privileged.then_some(true),
            parameters: Vec::new(),
            force_pull_image: docker.force_pull_image.then_some(true),
        }),
        volumes,
        hostname: None,
        network_infos: Vec::new(),
    })
}

/// The name Marathon gives an app's tasks: the app id's path reversed and
/// dotted (`/prod/web` → `web.prod`), which Mesos-DNS turns into the
/// name `web-prod.marathon.mesos`.
pub(crate) fn task_name(app_id: &str) -> String {
    app_id
        .split('/')
        .filter(|p| !p.is_empty())
        .rev()
        .collect::<Vec<_>>()
        .join(".")
}

/// Builds the task of one instance.
fn task_for(app: &AppDefinition, task_id: TaskId, agent: &AgentId, resources: Resources, ports: &[u64]) -> TaskInfo {
    let mut variables: Vec<Variable> = app
        .env
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| var(k.clone(), v.to_string())))
        .collect();
    for (i, p) in ports.iter().enumerate() {
        variables.push(var(format!("PORT{i}"), p.to_string()));
    }
    // Named ports as Marathon names them: `PORT_HTTP` for a port named
    // `http` (other characters as `_`).
    let names: Vec<Option<&str>> = match app.container.as_ref().filter(|c| !c.port_mappings.is_empty()) {
        Some(c) => c.port_mappings.iter().map(|m| m.name.as_deref()).collect(),
        None => app.port_definitions.iter().map(|d| d.name.as_deref()).collect(),
    };
    for (name, p) in names.into_iter().zip(ports) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let key: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            variables.push(var(format!("PORT_{key}"), p.to_string()));
        }
    }
    if let Some(p) = ports.first() {
        variables.push(var("PORT", p.to_string()));
    }
    variables.push(var("MARATHON_APP_ID", app.id.clone()));
    variables.push(var("MESOS_TASK_ID", task_id.to_string()));
    let mut command = match (&app.cmd, &app.args) {
        (Some(cmd), _) => CommandInfo::shell(cmd.clone()),
        (None, Some(args)) => CommandInfo {
            value: args.first().cloned(),
            shell: false,
            arguments: args.clone(),
            ..CommandInfo::shell("")
        },
        (None, None) => CommandInfo {
            value: None,
            shell: false,
            ..CommandInfo::shell("")
        },
    };
    command.environment = Some(Environment { variables });
    let mut labels = Labels::new();
    for (k, v) in &app.labels {
        labels.0.insert(k.clone(), v.clone());
    }
    labels.0.insert(APP_LABEL.into(), app.id.clone());
    if let Some(v) = &app.version {
        labels.0.insert(VERSION_LABEL.into(), v.clone());
    }
    TaskInfo {
        name: task_name(&app.id),
        task_id,
        agent_id: agent.clone(),
        resources,
        command: Some(command),
        container: app.container.as_ref().and_then(|c| container_for(c, ports)),
        kill_policy: None,
        labels,
    }
}

/// Launches one offer may hold, whatever the apps ask: bounds the work and
/// memory of one match (the rest waits for the next offer).
pub const MAX_LAUNCHES_PER_OFFER: usize = 1_000;

/// Fits as many of the `wanted` instances (app, how many) into `offer` as
/// its resources, ports, each app's constraints and
/// [`MAX_LAUNCHES_PER_OFFER`] allow, in order.
/// `placed` holds where each app's instances already run; `next_id` makes
/// task ids. Returns the launches; what is left of the offer is the rest.
pub fn match_offer(
    offer: &Offer,
    wanted: &[(&AppDefinition, u32)],
    placed: &BTreeMap<String, Vec<Placement>>,
    mut next_id: impl FnMut(&AppDefinition) -> TaskId,
) -> Vec<Launch> {
    let mut left = offer.resources.clone();
    let role = offer.resources.iter().find_map(|r| r.allocation_role.clone());
    let mut launches = Vec::new();
    for (app, count) in wanted {
        let Ok(rules) = constraints(app) else { continue };
        let Ok(base) = needs(app) else { continue };
        // Where the app runs, grown as this offer places more (only built
        // when there are constraints to check).
        let mut here: Vec<Placement> = if rules.is_empty() {
            Vec::new()
        } else {
            placed.get(&app.id).cloned().unwrap_or_default()
        };
        for _ in 0..*count {
            if launches.len() >= MAX_LAUNCHES_PER_OFFER {
                return launches;
            }
            if !rules
                .iter()
                .all(|c| c.accepts(&offer.hostname, &offer.attributes, &here))
            {
                break;
            }
            let Some(ports) = pick_ports(app, &left.ports()) else {
                break;
            };
            let mut want = base.clone();
            if !ports.is_empty() {
                let Ok(ranges) = Ranges::new(ports.iter().map(|p| (*p, *p))) else {
                    break;
                };
                want.push(Resource::new("ports", Value::Ranges(ranges)));
            }
            want.set_allocation_role(role.as_deref());
            let Ok(rest) = left.checked_sub(&want) else { break };
            left = rest;
            let task = task_for(app, next_id(app), &offer.agent_id, want, &ports);
            if !rules.is_empty() {
                here.push(Placement {
                    hostname: offer.hostname.clone(),
                    attributes: offer.attributes.clone(),
                });
            }
            launches.push(Launch {
                app_id: app.id.clone(),
                ports,
                task,
            });
        }
    }
    launches
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::{FrameworkId, OfferId};

    fn offer(host: &str, resources: &str, attributes: &str) -> Offer {
        Offer {
            id: OfferId::new("o1").unwrap(),
            framework_id: FrameworkId::new("f").unwrap(),
            agent_id: AgentId::new(format!("agent-{host}")).unwrap(),
            hostname: host.into(),
            resources: resources.parse().unwrap(),
            attributes: attributes.parse().unwrap(),
            executor_ids: Vec::new(),
        }
    }

    fn app(json: &str) -> AppDefinition {
        AppDefinition::from_json(json.as_bytes()).unwrap()
    }

    fn ids() -> impl FnMut(&AppDefinition) -> TaskId {
        let mut n = 0;
        move |a: &AppDefinition| {
            n += 1;
            TaskId::new(format!("{}.{n}", a.id.trim_start_matches('/'))).unwrap()
        }
    }

    #[test]
    fn a_docker_app_launches_its_image_with_the_offered_host_ports() {
        let web = app(r#"{"id": "/web", "cmd": "httpd -f -p 80", "cpus": 0.1, "mem": 32,
            "container": {"type": "DOCKER", "docker": {"image": "busybox", "network": "BRIDGE"},
              "portMappings": [{"containerPort": 80, "hostPort": 0}, {"containerPort": 53, "protocol": "udp,tcp"}],
              "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]}}"#);
        let o = offer("h1", "cpus:1;mem:100;ports:[31000-31005]", "");
        let l = match_offer(&o, &[(&web, 1)], &BTreeMap::new(), ids());
        assert_eq!(l[0].ports, vec![31000, 31001]);
        let spec = orchestrator_core::ContainerSpec::from_task(&l[0].task).unwrap();
        assert_eq!(spec.image.as_deref(), Some("busybox"));
        assert_eq!(spec.network, orchestrator_core::NetworkMode::Bridge);
        let mapped: Vec<(u16, u16, &str)> = spec
            .port_mappings
            .iter()
            .map(|m| (m.host_port, m.container_port, m.protocol.as_str()))
            .collect();
        assert_eq!(mapped, vec![(31000, 80, "tcp"), (31001, 53, "udp"), (31001, 53, "tcp")]);
        let docker = l[0].task.container.as_ref().unwrap();
        assert_eq!(docker.volumes[0].mode, VolumeMode::Ro);

        // Host networking (the default without mappings) takes the ports
        // of the port definitions; a command app gets no container at all.
        let host =
            app(r#"{"id": "/h", "cmd": "x", "cpus": 0.1, "mem": 32, "container": {"docker": {"image": "busybox"}}}"#);
        let l = match_offer(&o, &[(&host, 1)], &BTreeMap::new(), ids());
        let info = l[0].task.container.as_ref().unwrap().docker.as_ref().unwrap();
        assert_eq!(info.network, Some(DockerNetwork::Host));
        let plain = app(r#"{"id": "/p", "cmd": "x", "cpus": 0.1, "mem": 32}"#);
        assert!(match_offer(&o, &[(&plain, 1)], &BTreeMap::new(), ids())[0]
            .task
            .container
            .is_none());
    }

    /// Issue 18: one offer placed launches towards 4e9 instances until the
    /// scheduler ran out of memory.
    #[test]
    fn one_offer_places_at_most_the_cap() {
        let tiny = app(
            r#"{"id": "/tiny", "cmd": "x", "cpus": 0.001, "mem": 1, "instances": 2000000000, "portDefinitions": []}"#,
        );
        let other =
            app(r#"{"id": "/other", "cmd": "x", "cpus": 0.001, "mem": 1, "instances": 10, "portDefinitions": []}"#);
        // Room for 10,000 of them.
        let o = offer("h1", "cpus:10;mem:10000", "");
        let l = match_offer(&o, &[(&tiny, 2_000_000_000), (&other, 10)], &BTreeMap::new(), ids());
        assert_eq!(l.len(), MAX_LAUNCHES_PER_OFFER);
    }

    #[test]
    fn fits_instances_by_resources_and_ports() {
        let web = app(r#"{"id": "web", "cmd": "x", "cpus": 1, "mem": 100, "instances": 10}"#);
        let o = offer("h1", "cpus:2.5;mem:1000;ports:[31000-31001]", "");
        let l = match_offer(&o, &[(&web, 10)], &BTreeMap::new(), ids());
        assert_eq!(l.len(), 2, "cpus run out first");
        assert_eq!((l[0].ports.clone(), l[1].ports.clone()), (vec![31000], vec![31001]));
        let cmd = l[0].task.command.as_ref().unwrap();
        let env = &cmd.environment.as_ref().unwrap().variables;
        assert!(env.iter().any(|v| v.name == "PORT0" && v.value == "31000"), "{env:?}");
        let named = app(
            r#"{"id": "n", "cmd": "x", "cpus": 0.1, "mem": 10, "portDefinitions": [{"port": 0, "name": "http-api"}]}"#,
        );
        let l2 = match_offer(&o, &[(&named, 1)], &BTreeMap::new(), ids());
        let env2 = &l2[0]
            .task
            .command
            .as_ref()
            .unwrap()
            .environment
            .as_ref()
            .unwrap()
            .variables;
        assert!(
            env2.iter().any(|v| v.name == "PORT_HTTP_API" && v.value == "31000"),
            "{env2:?}"
        );
        assert_eq!(l[0].task.labels.0[APP_LABEL], "/web");
        assert!(o.resources.contains(&l[0].task.resources));

        // A port definition's port is a service port: the host port comes
        // from the offer, unless the app requires its ports as host ports.
        let service = app(r#"{"id": "svc", "cmd": "x", "cpus": 0.1, "mem": 10, "portDefinitions": [{"port": 10050}]}"#);
        let l = match_offer(&o, &[(&service, 1)], &BTreeMap::new(), ids());
        assert_eq!(l[0].ports, vec![31000]);
        let fixed = app(
            r#"{"id": "fixed", "cmd": "x", "cpus": 0.1, "mem": 10, "requirePorts": true, "portDefinitions": [{"port": 31005}]}"#,
        );
        assert!(match_offer(&o, &[(&fixed, 1)], &BTreeMap::new(), ids()).is_empty());
        let fits = app(
            r#"{"id": "fits", "cmd": "x", "cpus": 0.1, "mem": 10, "requirePorts": true, "portDefinitions": [{"port": 31001}]}"#,
        );
        assert_eq!(
            match_offer(&o, &[(&fits, 1)], &BTreeMap::new(), ids())[0].ports,
            vec![31001]
        );
        let none = app(r#"{"id": "none", "cmd": "x", "cpus": 0.1, "mem": 10, "portDefinitions": []}"#);
        assert_eq!(
            match_offer(
                &offer("h", "cpus:1;mem:100", ""),
                &[(&none, 3)],
                &BTreeMap::new(),
                ids()
            )
            .len(),
            3
        );
    }

    #[test]
    fn constraints_follow_marathon() {
        let c = |rule: &[&str]| Constraint::parse(&rule.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap();
        let at = |h: &str, a: &str| Placement {
            hostname: h.into(),
            attributes: a.parse().unwrap(),
        };
        let none = Attributes::default();
        let rack1: Attributes = "rack:r1".parse().unwrap();
        let placed = vec![at("h1", "rack:r1"), at("h2", "rack:r2"), at("h3", "rack:r1")];

        assert!(!c(&["hostname", "UNIQUE"]).accepts("h1", &none, &placed));
        assert!(c(&["hostname", "UNIQUE"]).accepts("h9", &none, &placed));
        assert!(c(&["rack", "CLUSTER", "r1"]).accepts("h9", &rack1, &[]));
        assert!(!c(&["rack", "CLUSTER", "r1"]).accepts("h9", &none, &[]));
        assert!(c(&["hostname", "LIKE", "h[0-9]"]).accepts("h7", &none, &[]));
        assert!(!c(&["hostname", "LIKE", "h[0-9]"]).accepts("h77", &none, &[]));
        assert!(c(&["hostname", "UNLIKE", "h1"]).accepts("h2", &none, &[]));
        assert!(!c(&["rack", "MAX_PER", "2"]).accepts("h9", &rack1, &placed));
        assert!(c(&["rack", "MAX_PER", "3"]).accepts("h9", &rack1, &placed));
        // GROUP_BY spreads: r1 has 2, r2 has 1, so r2 (or a new rack) next.
        let r2: Attributes = "rack:r2".parse().unwrap();
        assert!(!c(&["rack", "GROUP_BY", "2"]).accepts("h9", &rack1, &placed));
        assert!(c(&["rack", "GROUP_BY", "2"]).accepts("h9", &r2, &placed));
        assert!(Constraint::parse(&["h".into(), "LIKE".into(), "(".into()]).is_err());
    }

    #[test]
    fn unique_hostname_puts_one_instance_per_offer_and_agent() {
        let web = app(
            r#"{"id": "web", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3, "constraints": [["hostname", "UNIQUE"]]}"#,
        );
        let o = offer("h1", "cpus:4;mem:1000;ports:[31000-32000]", "");
        assert_eq!(match_offer(&o, &[(&web, 3)], &BTreeMap::new(), ids()).len(), 1);
        let placed = BTreeMap::from([(
            "/web".to_string(),
            vec![Placement {
                hostname: "h1".into(),
                attributes: Attributes::default(),
            }],
        )]);
        assert!(match_offer(&o, &[(&web, 3)], &placed, ids()).is_empty());
    }
}
