//! Marathon's v2 app definition: the JSON shapes, the defaults, and the
//! validation that answers 422 with `{message, details:[{path, errors}]}`.
//!
//! Fields Marathon knows but this scheduler does not act on (`fetch`,
//! `user`, `acceptedResourceRoles`, …) are accepted and kept, so existing
//! clients can send their definitions unmodified and read them back; a
//! field Marathon does not know is a validation error, so a typo such as
//! `instaces` never passes silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A long-running app, as Marathon's `/v2/apps` speaks it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDefinition {
    /// Absolute path-like id (`/prod/web`); groups are its parents.
    pub id: String,
    /// Shell command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Command and arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Container to run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Instances to keep running.
    #[serde(default = "one")]
    pub instances: u32,
    /// CPUs per instance.
    #[serde(default = "one_f")]
    pub cpus: f64,
    /// Memory per instance, MB.
    #[serde(default = "mem_default")]
    pub mem: f64,
    /// Disk per instance, MB.
    #[serde(default)]
    pub disk: f64,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host ports to reserve (port 0: any).
    #[serde(default = "default_port_definitions")]
    pub port_definitions: Vec<PortDefinition>,
    /// Placement constraints, `[field, operator, value?]`.
    #[serde(default)]
    pub constraints: Vec<Vec<String>>,
    /// Health checks.
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// Rolling-upgrade bounds.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// First launch delay after a failure, seconds.
    #[serde(default = "one_f")]
    pub backoff_seconds: f64,
    /// Growth of the delay per failure.
    #[serde(default = "backoff_factor_default")]
    pub backoff_factor: f64,
    /// Cap of the delay, seconds.
    #[serde(default = "max_launch_delay_default")]
    pub max_launch_delay_seconds: f64,
    /// Which instances go first when scaling down.
    #[serde(default)]
    pub kill_selection: KillSelection,
    /// Role the app's resources are allocated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Version (ISO-8601 time of the last change), set by the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the app was last scaled and last changed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<VersionInfo>,
    /// Marathon fields kept as sent (see the module docs).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn mem_default() -> f64 {
    128.0
}
fn backoff_factor_default() -> f64 {
    1.15
}
fn max_launch_delay_default() -> f64 {
    300.0
}
fn default_port_definitions() -> Vec<PortDefinition> {
    vec![PortDefinition::default()]
}

/// A container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `DOCKER` or `MESOS`.
    #[serde(rename = "type", default = "container_type_default")]
    pub kind: String,
    /// Docker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Port mappings (Marathon 1.5+ keeps them here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

fn container_type_default() -> String {
    "DOCKER".into()
}

/// Docker settings of a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// Image.
    #[serde(default)]
    pub image: String,
    /// `HOST`, `BRIDGE`, `USER` or `NONE` (Marathon before 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Port mappings (Marathon before 1.5 kept them here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// Run privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Pull the image even when present.
    #[serde(default)]
    pub force_pull_image: bool,
}

/// A container port published on the host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port inside the container.
    #[serde(default)]
    pub container_port: u32,
    /// Host port (0: any from the offer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u32>,
    /// Service port for load balancers.
    #[serde(default)]
    pub service_port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn tcp() -> String {
    "tcp".into()
}

/// A volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Path inside the container.
    pub container_path: String,
    /// Path on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `RO` or `RW`.
    #[serde(default = "rw")]
    pub mode: String,
}

fn rw() -> String {
    "RW".into()
}

/// A host port definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDefinition {
    /// Port (0: any from the offer).
    #[serde(default)]
    pub port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for PortDefinition {
    fn default() -> Self {
        PortDefinition {
            port: 0,
            protocol: tcp(),
            name: None,
            labels: BTreeMap::new(),
        }
    }
}

/// A health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// `HTTP`, `HTTPS`, `TCP` or `COMMAND`.
    #[serde(default = "http")]
    pub protocol: String,
    /// Path for HTTP(S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the app's ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// A fixed port instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Command for `COMMAND` checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures ignored this long after start, seconds.
    #[serde(default = "grace_default")]
    pub grace_period_seconds: u32,
    /// Time between checks, seconds.
    #[serde(default = "interval_default")]
    pub interval_seconds: u32,
    /// Time a check may take, seconds.
    #[serde(default = "timeout_default")]
    pub timeout_seconds: u32,
    /// Consecutive failures before the instance is killed (0: never).
    #[serde(default = "failures_default")]
    pub max_consecutive_failures: u32,
    /// Treat 1xx answers as passing.
    #[serde(default)]
    pub ignore_http1xx: bool,
}

fn http() -> String {
    "HTTP".into()
}
fn grace_default() -> u32 {
    300
}
fn interval_default() -> u32 {
    60
}
fn timeout_default() -> u32 {
    20
}
fn failures_default() -> u32 {
    3
}

/// The command of a `COMMAND` health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCheck {
    /// Shell command; exit 0 passes.
    pub value: String,
}

/// Bounds of a rolling upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Share of instances that must stay healthy (0 to 1).
    #[serde(default = "one_f")]
    pub minimum_health_capacity: f64,
    /// Share of extra instances allowed during the upgrade (0 to 1).
    #[serde(default = "one_f")]
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// Which instances a scale-down kills first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// The most recently started.
    #[default]
    YoungestFirst,
    /// The longest running.
    OldestFirst,
}

/// When an app was last scaled and last changed otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Last change of `instances` only.
    pub last_scaling_at: String,
    /// Last change of anything else.
    pub last_config_change_at: String,
}

/// Marathon's app fields that are accepted and kept but not acted on.
const KEPT_FIELDS: &[&str] = &[
    "user",
    "executor",
    "fetch",
    "uris",
    "storeUrls",
    "dependencies",
    "readinessChecks",
    "acceptedResourceRoles",
    "ipAddress",
    "residency",
    "secrets",
    "taskKillGracePeriodSeconds",
    "unreachableStrategy",
    "requirePorts",
    "networks",
    "gpus",
    "tty",
    "executorResources",
    "ports",
    // Read-only fields a client may echo back from a GET.
    "deployments",
    "tasks",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "lastTaskFailure",
];

const KNOWN_FIELDS: &[&str] = &[
    "id",
    "cmd",
    "args",
    "container",
    "instances",
    "cpus",
    "mem",
    "disk",
    "env",
    "labels",
    "portDefinitions",
    "constraints",
    "healthChecks",
    "upgradeStrategy",
    "backoffSeconds",
    "backoffFactor",
    "maxLaunchDelaySeconds",
    "killSelection",
    "role",
    "version",
    "versionInfo",
];

/// One path with its errors, as Marathon's 422 answers list them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON path (`/cpus`, `/healthChecks(0)/protocol`).
    pub path: String,
    /// What is wrong there.
    pub errors: Vec<String>,
}

/// A 422 answer body: `{message, details}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalid {
    /// `Object is not valid`, or what stopped reading the JSON.
    pub message: String,
    /// Every violation.
    pub details: Vec<Violation>,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        for v in &self.details {
            write!(f, "; {}: {}", v.path, v.errors.join(", "))?;
        }
        Ok(())
    }
}

struct Checker(Vec<Violation>);

impl Checker {
    fn fail(&mut self, path: impl Into<String>, error: impl Into<String>) {
        let path = path.into();
        let error = error.into();
        match self.0.iter_mut().find(|v| v.path == path) {
            Some(v) => v.errors.push(error),
            None => self.0.push(Violation {
                path,
                errors: vec![error],
            }),
        }
    }

    fn at_least(&mut self, path: &str, value: f64, min: f64) {
        if !value.is_finite() || value < min {
            self.fail(path, format!("got {value:?}, expected {min:?} or more"));
        }
    }

    fn port(&mut self, path: &str, port: u32) {
        if port > u32::from(u16::MAX) {
            self.fail(path, format!("got {port}, expected between 0 and 65535"));
        }
    }

    fn between(&mut self, path: &str, value: f64, lo: f64, hi: f64) {
        if !(lo..=hi).contains(&value) {
            self.fail(path, format!("got {value:?}, expected between {lo:?} and {hi:?}"));
        }
    }
}

/// The longest backoff or launch delay accepted: a day.
const MAX_DELAY_SECONDS: f64 = 86_400.0;

const ID_SEGMENT: &str = r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$";

fn valid_segment(s: &str) -> bool {
    // ID_SEGMENT without a regex engine: dot-separated labels of [a-z0-9-]
    // that neither start nor end with '-'.
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Makes an app id absolute (`web` → `/web`) and canonical; `Err` with
/// Marathon's message when a segment is not allowed.
pub fn canonical_id(id: &str) -> Result<String, String> {
    let trimmed = id.trim_matches('/');
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(bad) = trimmed
        .split('/')
        .find(|s| !valid_segment(s) && *s != "." && *s != "..")
    {
        return Err(format!(
            "must fully match regular expression '{ID_SEGMENT}' (segment {bad:?})"
        ));
    }
    if trimmed.split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain '.' or '..' segments".into());
    }
    Ok(format!("/{trimmed}"))
}

impl AppDefinition {
    /// Reads an app from a request body, with Marathon's defaults, and
    /// validates it.
    ///
    /// # Errors
    /// [`Invalid`] listing every violation (unknown fields, wrong types,
    /// impossible values), for a 422 answer.
    pub fn from_json(body: &[u8]) -> Result<Self, Invalid> {
        let value: Value = serde_json::from_slice(body).map_err(|e| Invalid {
            message: format!("Invalid JSON: {e}"),
            details: Vec::new(),
        })?;
        Self::from_value(value)
    }

    /// As [`from_json`](Self::from_json), from parsed JSON.
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json).
    pub fn from_value(value: Value) -> Result<Self, Invalid> {
        let mut c = Checker(Vec::new());
        let Value::Object(map) = &value else {
            return Err(Invalid {
                message: "Object is not valid".into(),
                details: vec![Violation {
                    path: "/".into(),
                    errors: vec!["expected a JSON object".into()],
                }],
            });
        };
        for key in map.keys() {
            if !KNOWN_FIELDS.contains(&key.as_str()) && !KEPT_FIELDS.contains(&key.as_str()) {
                c.fail(format!("/{key}"), "is not a known app field");
            }
        }
        if !c.0.is_empty() {
            return Err(Invalid {
                message: "Object is not valid".into(),
                details: c.0,
            });
        }
        let mut app: AppDefinition = serde_json::from_value(value).map_err(|e| Invalid {
            message: "Object is not valid".into(),
            details: vec![Violation {
                path: "/".into(),
                errors: vec![e.to_string()],
            }],
        })?;
        app.validate()?;
        app.id = canonical_id(&app.id).unwrap_or(app.id);
        Ok(app)
    }

    /// Checks everything Marathon checks that this scheduler acts on.
    ///
    /// # Errors
    /// [`Invalid`] listing every violation.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker(Vec::new());
        if let Err(e) = canonical_id(&self.id) {
            c.fail("/id", e);
        }
        if self.cmd.is_some() && self.args.is_some() {
            c.fail("/", "AppDefinition must not contain both 'cmd' and 'args'.");
        }
        if self.cmd.is_none() && self.args.is_none() && self.container.is_none() {
            c.fail(
                "/",
                "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
            );
        }
        c.at_least("/cpus", self.cpus, 0.0);
        c.at_least("/mem", self.mem, 0.0);
        c.at_least("/disk", self.disk, 0.0);
        // Issue 18: 4e9 instances of nothing made one offer place launches
        // until memory ran out. Marathon's instances are an int32, and an
        // instance must take something from an offer.
        if self.instances > i32::MAX as u32 {
            c.fail(
                "/instances",
                format!("got {}, expected at most {}", self.instances, i32::MAX),
            );
        }
        if self.cpus == 0.0 && self.mem == 0.0 && self.disk == 0.0 && self.port_count() == 0 {
            c.fail("/", "an instance needs some resource: cpus, mem, disk or a port");
        }
        // Bounded so the delay stays a delay (1e308 overflowed to none).
        c.between("/backoffSeconds", self.backoff_seconds, 0.0, MAX_DELAY_SECONDS);
        c.between("/backoffFactor", self.backoff_factor, 1.0, 100.0);
        c.between(
            "/maxLaunchDelaySeconds",
            self.max_launch_delay_seconds,
            0.0,
            MAX_DELAY_SECONDS,
        );
        for (i, p) in self.port_definitions.iter().enumerate() {
            c.port(&format!("/portDefinitions({i})/port"), p.port);
        }
        if let Some(container) = &self.container {
            let docker = container.docker.iter().flat_map(|d| &d.port_mappings);
            for (i, m) in container.port_mappings.iter().chain(docker).enumerate() {
                c.port(&format!("/container/portMappings({i})/containerPort"), m.container_port);
                c.port(&format!("/container/portMappings({i})/servicePort"), m.service_port);
                if let Some(h) = m.host_port {
                    c.port(&format!("/container/portMappings({i})/hostPort"), h);
                }
            }
        }
        c.between(
            "/upgradeStrategy/minimumHealthCapacity",
            self.upgrade_strategy.minimum_health_capacity,
            0.0,
            1.0,
        );
        c.between(
            "/upgradeStrategy/maximumOverCapacity",
            self.upgrade_strategy.maximum_over_capacity,
            0.0,
            1.0,
        );
        if let Some(container) = &self.container {
            match container.kind.as_str() {
                "DOCKER" => {
                    if container.docker.as_ref().is_none_or(|d| d.image.is_empty()) {
                        c.fail("/container/docker/image", "must not be empty");
                    }
                }
                "MESOS" => {}
                other => c.fail("/container/type", format!("got {other:?}, expected DOCKER or MESOS")),
            }
        }
        let ports = self.port_count();
        for (i, hc) in self.health_checks.iter().enumerate() {
            let at = |f: &str| format!("/healthChecks({i}){f}");
            match hc.protocol.as_str() {
                "HTTP" | "HTTPS" | "TCP" | "MESOS_HTTP" | "MESOS_HTTPS" | "MESOS_TCP" => {
                    match (hc.port_index, hc.port) {
                        (Some(_), Some(_)) => c.fail(at(""), "portIndex and port are mutually exclusive"),
                        (Some(p), None) if p as usize >= ports => {
                            c.fail(at("/portIndex"), format!("got {p}, but the app has {ports} port(s)"))
                        }
                        (None, None) if ports == 0 => c.fail(at("/portIndex"), "the app has no port to check"),
                        _ => {}
                    }
                }
                "COMMAND" | "MESOS_COMMAND" => {
                    if hc.command.as_ref().is_none_or(|cmd| cmd.value.trim().is_empty()) {
                        c.fail(at("/command"), "a COMMAND health check needs a command");
                    }
                }
                other => c.fail(
                    at("/protocol"),
                    format!("got {other:?}, expected HTTP, HTTPS, TCP or COMMAND"),
                ),
            }
            if hc.interval_seconds == 0 {
                c.fail(at("/intervalSeconds"), "got 0, expected 1 or more");
            }
            if hc.timeout_seconds == 0 {
                c.fail(at("/timeoutSeconds"), "got 0, expected 1 or more");
            }
            if hc.timeout_seconds > hc.interval_seconds {
                c.fail(
                    at("/timeoutSeconds"),
                    "must be smaller than or equal to intervalSeconds",
                );
            }
        }
        for (i, rule) in self.constraints.iter().enumerate() {
            let path = format!("/constraints({i})");
            match rule.as_slice() {
                [_, op] if op == "UNIQUE" || op == "CLUSTER" || op == "GROUP_BY" => {}
                [_, op, _] if matches!(op.as_str(), "CLUSTER" | "GROUP_BY" | "LIKE" | "UNLIKE" | "MAX_PER") => {
                    if op == "MAX_PER" && rule[2].parse::<u32>().is_err() {
                        c.fail(path, "MAX_PER needs a number");
                    } else if op == "GROUP_BY" && rule[2].parse::<u32>().is_err() {
                        c.fail(path, "GROUP_BY needs a number of groups");
                    } else if (op == "LIKE" || op == "UNLIKE")
                        && regex::RegexBuilder::new(&rule[2]).size_limit(1 << 20).build().is_err()
                    {
                        // Issue 18: an app whose regex does not compile waited forever.
                        c.fail(path, format!("{op} needs a regular expression that compiles: {:?}", rule[2]));
                    }
                }
                _ => c.fail(
                    path,
                    "Each constraint must be [field, operator] or [field, operator, value] with operator UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE or MAX_PER",
                ),
            }
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                message: "Object is not valid".into(),
                details: c.0,
            })
        }
    }

    /// How many ports an instance gets (port mappings or port definitions).
    pub fn port_count(&self) -> usize {
        let mappings = self.container.as_ref().map_or(0, |c| {
            c.port_mappings
                .len()
                .max(c.docker.as_ref().map_or(0, |d| d.port_mappings.len()))
        });
        if mappings > 0 {
            mappings
        } else {
            self.port_definitions.len()
        }
    }

    /// Whether `other` differs only in `instances` (a scale, not a restart).
    pub fn only_scaled_from(&self, other: &AppDefinition) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        for x in [&mut a, &mut b] {
            x.instances = 0;
            x.version = None;
            x.version_info = None;
        }
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marathon_defaults_apply() {
        let app = AppDefinition::from_json(br#"{"id": "web", "cmd": "sleep 100"}"#).unwrap();
        assert_eq!(app.id, "/web");
        assert_eq!((app.instances, app.cpus, app.mem, app.disk), (1, 1.0, 128.0, 0.0));
        assert_eq!(
            (app.backoff_seconds, app.backoff_factor, app.max_launch_delay_seconds),
            (1.0, 1.15, 300.0)
        );
        assert_eq!(app.upgrade_strategy, UpgradeStrategy::default());
        assert_eq!(app.kill_selection, KillSelection::YoungestFirst);
        assert_eq!(app.port_definitions, vec![PortDefinition::default()]);
        let hc: HealthCheck = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (
                hc.protocol.as_str(),
                hc.grace_period_seconds,
                hc.interval_seconds,
                hc.timeout_seconds,
                hc.max_consecutive_failures
            ),
            ("HTTP", 300, 60, 20, 3)
        );
    }

    #[test]
    fn a_marathon_client_definition_round_trips_with_fields_it_does_not_act_on() {
        let body = br#"{
            "id": "/prod/web", "cmd": "python3 -m http.server $PORT0", "instances": 2, "cpus": 0.1, "mem": 32,
            "container": {"type": "DOCKER", "docker": {"image": "busybox", "network": "BRIDGE",
                "portMappings": [{"containerPort": 8080, "hostPort": 0}]}},
            "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 5}],
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2},
            "constraints": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"]],
            "fetch": [{"uri": "http://example/x.tgz"}], "requirePorts": false, "labels": {"tier": "web"}
        }"#;
        let app = AppDefinition::from_json(body).unwrap();
        assert_eq!(app.port_count(), 1);
        assert_eq!(app.other["requirePorts"], Value::Bool(false));
        let back = serde_json::to_value(&app).unwrap();
        assert_eq!(back["fetch"][0]["uri"], "http://example/x.tgz");
        assert_eq!(back["upgradeStrategy"]["maximumOverCapacity"], 0.2);
        assert_eq!(AppDefinition::from_value(back).unwrap(), app);
    }

    #[test]
    fn every_violation_is_reported_with_its_path() {
        let body = br#"{"id": "Bad_Id", "cpus": -1, "instaces": 3}"#;
        let e = AppDefinition::from_json(body).unwrap_err();
        assert_eq!(
            e.details,
            vec![Violation {
                path: "/instaces".into(),
                errors: vec!["is not a known app field".into()]
            }]
        );
        let body = br#"{"id": "Bad_Id", "cpus": -1, "cmd": "x", "args": ["y"],
            "upgradeStrategy": {"minimumHealthCapacity": 1.5},
            "healthChecks": [{"protocol": "COMMAND"}, {"portIndex": 3}],
            "constraints": [["hostname", "NEAR"]]}"#;
        let e = AppDefinition::from_json(body).unwrap_err();
        let paths: Vec<&str> = e.details.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/id",
                "/",
                "/cpus",
                "/upgradeStrategy/minimumHealthCapacity",
                "/healthChecks(0)/command",
                "/healthChecks(1)/portIndex",
                "/constraints(0)"
            ]
        );
        assert_eq!(e.details[2].errors, vec!["got -1.0, expected 0.0 or more"]);
        let e = AppDefinition::from_json(b"{\"id\": 5").unwrap_err();
        assert!(e.message.starts_with("Invalid JSON"), "{e}");
        let e = AppDefinition::from_json(br#"{"id": "x", "cmd": "y", "instances": "many"}"#).unwrap_err();
        assert!(e.details[0].errors[0].contains("invalid type"), "{e}");
    }

    /// Issue 18: definitions Marathon refuses were accepted, and one of them
    /// took the scheduler down.
    #[test]
    fn impossible_definitions_are_refused_with_the_field_named() {
        let paths = |body: &str| -> Vec<String> {
            AppDefinition::from_json(body.as_bytes())
                .unwrap_err()
                .details
                .into_iter()
                .map(|v| v.path)
                .collect()
        };
        assert_eq!(
            paths(
                r#"{"id": "/huge", "cmd": "sleep 1", "instances": 4000000000, "cpus": 0, "mem": 0,
                    "disk": 0, "portDefinitions": []}"#
            ),
            vec!["/instances", "/"]
        );
        assert_eq!(
            paths(r#"{"id": "/p", "cmd": "x", "portDefinitions": [{"port": 99999}]}"#),
            vec!["/portDefinitions(0)/port"]
        );
        assert_eq!(
            paths(
                r#"{"id": "/p", "cmd": "x", "container": {"type": "DOCKER", "docker": {"image": "b"},
                "portMappings": [{"containerPort": 70000, "hostPort": 65536}]}}"#
            ),
            vec![
                "/container/portMappings(0)/containerPort",
                "/container/portMappings(0)/hostPort"
            ]
        );
        assert_eq!(
            paths(r#"{"id": "/r", "cmd": "x", "constraints": [["hostname", "LIKE", "a[b"]]}"#),
            vec!["/constraints(0)"]
        );
        assert_eq!(
            paths(
                r#"{"id": "/b", "cmd": "x", "backoffSeconds": 1e308, "backoffFactor": 1e9,
                "maxLaunchDelaySeconds": 1e300}"#
            ),
            vec!["/backoffSeconds", "/backoffFactor", "/maxLaunchDelaySeconds"]
        );
        // What Marathon accepts still is.
        AppDefinition::from_json(
            br#"{"id": "/ok", "cmd": "x", "instances": 2147483647, "cpus": 0, "mem": 1,
                "constraints": [["hostname", "LIKE", "web-[0-9]+"]], "backoffSeconds": 3600}"#,
        )
        .unwrap();
    }

    #[test]
    fn ids_are_made_absolute_and_checked() {
        assert_eq!(canonical_id("prod/web/").unwrap(), "/prod/web");
        assert_eq!(canonical_id("/a.b-c/d0").unwrap(), "/a.b-c/d0");
        for bad in ["", "/", "/Web", "/a_b", "/-a", "/a/../b", "/a..b"] {
            assert!(canonical_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scaling_is_told_apart_from_a_config_change() {
        let a = AppDefinition::from_json(br#"{"id": "w", "cmd": "x"}"#).unwrap();
        let mut b = a.clone();
        b.instances = 5;
        assert!(b.only_scaled_from(&a));
        b.cmd = Some("y".into());
        assert!(!b.only_scaled_from(&a));
    }
}
