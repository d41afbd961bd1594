//! Reading and validating an app definition as Marathon does: unknown
//! fields refused, every violation listed with its path, and the limits that
//! keep one definition from taking the scheduler down.

use serde_json::Value;

use serde::{Deserialize, Serialize};

use super::AppDefinition;

/// Marathon's app fields that are accepted and kept but not acted on.
const KEPT_FIELDS: &[&str] = &[
    "user",
    "executor",
    "fetch",
    "uris",
    "storeUrls",
    "readinessChecks",
    "acceptedResourceRoles",
    "ipAddress",
    "residency",
    "secrets",
    "taskKillGracePeriodSeconds",
    "unreachableStrategy",
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
    "dependencies",
    "requirePorts",
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

/// The longest app id: a task id is the id (with `/` as `_`), a dot and a
/// sequence number, and must fit in a file name (255 bytes) on the agent,
/// as Mesos requires of task ids.
pub const MAX_ID_LEN: usize = 200;

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
    if trimmed.len() + 1 > MAX_ID_LEN {
        return Err(format!(
            "must not be longer than {MAX_ID_LEN} characters (task ids, sandbox directories and DNS names are made from it)"
        ));
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let longest = format!("/{}", "a".repeat(MAX_ID_LEN - 1));
        assert_eq!(canonical_id(&longest).unwrap(), longest);
        let err = canonical_id(&format!("/{}", "a".repeat(MAX_ID_LEN))).unwrap_err();
        assert!(err.contains("longer than 200"), "{err}");
    }
}
