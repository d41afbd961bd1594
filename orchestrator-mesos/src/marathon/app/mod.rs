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

mod validate;

pub use validate::{canonical_id, Invalid, Violation};

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
    /// The app's ports: each `port` is a service port (what a load
    /// balancer listens on; 0 has the scheduler assign one from
    /// 10000–20000); the task's host ports come from the offer, unless
    /// `require_ports`.
    #[serde(default = "default_port_definitions")]
    pub port_definitions: Vec<PortDefinition>,
    /// Run on exactly the service ports as host ports.
    #[serde(default)]
    pub require_ports: bool,
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
    /// Apps or groups (absolute, or relative to this app's group) that must
    /// be running and healthy before this app is started.
    #[serde(default)]
    pub dependencies: Vec<String>,
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
    /// Service port (0: assigned from the service-port range).
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

impl AppDefinition {
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
        assert!(!app.require_ports);
        let back = serde_json::to_value(&app).unwrap();
        assert_eq!(back["fetch"][0]["uri"], "http://example/x.tgz");
        assert_eq!(back["upgradeStrategy"]["maximumOverCapacity"], 0.2);
        assert_eq!(AppDefinition::from_value(back).unwrap(), app);
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
