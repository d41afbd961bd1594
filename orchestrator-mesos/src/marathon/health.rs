//! Health checks: `HTTP`, `HTTPS`, `TCP` and `COMMAND`, as Marathon runs
//! them. Every check is an async task on the runtime (no OS thread per
//! instance); their number in flight is bounded.
//!
//! An instance's failures are ignored during `gracePeriodSeconds` after it
//! started, until its first success. `maxConsecutiveFailures` failures in a
//! row (0: never) make it unhealthy *and* killed, so the scheduler replaces
//! it. HTTP answers 200–399 pass (1xx too with `ignoreHttp1xx`). `COMMAND`
//! checks run `sh -c` on the scheduler's host with the instance's `PORT`
//! variables, so they suit agents on the same host (the all-in-one).

use std::collections::{BTreeMap, HashMap};

mod tls;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::app::HealthCheck;

/// Checks in flight at once.
const IN_FLIGHT: usize = 256;

/// One instance's health under one check, as `healthCheckResults` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResult {
    /// Passing now.
    pub alive: bool,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// First success, ms since the epoch.
    pub first_success: Option<u64>,
    /// Last success.
    pub last_success: Option<u64>,
    /// Last failure.
    pub last_failure: Option<u64>,
    /// Why the last check failed.
    pub last_failure_cause: Option<String>,
    /// The health last reported to the scheduler.
    #[serde(skip)]
    known: Option<bool>,
}

/// What a check's outcome means for the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes.
    Same,
    /// Health flipped to this value.
    Changed(bool),
    /// Too many failures: kill it.
    Kill,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl HealthResult {
    /// Folds one check outcome in. `in_grace`: the instance is within its
    /// grace period (only counts while it never succeeded).
    pub fn record(&mut self, outcome: Result<(), String>, in_grace: bool, check: &HealthCheck) -> Verdict {
        let t = now_ms();
        match outcome {
            Ok(()) => {
                self.alive = true;
                self.consecutive_failures = 0;
                self.first_success.get_or_insert(t);
                self.last_success = Some(t);
            }
            Err(cause) => {
                self.last_failure = Some(t);
                self.last_failure_cause = Some(cause);
                if in_grace && self.first_success.is_none() {
                    return Verdict::Same;
                }
                self.alive = false;
                self.consecutive_failures += 1;
                if check.max_consecutive_failures > 0 && self.consecutive_failures >= check.max_consecutive_failures {
                    self.known = Some(false);
                    return Verdict::Kill;
                }
            }
        }
        if self.known == Some(self.alive) {
            Verdict::Same
        } else {
            self.known = Some(self.alive);
            Verdict::Changed(self.alive)
        }
    }
}

/// Runs one check against an instance on `host` with `ports`.
///
/// # Errors
/// Why it failed, for `lastFailureCause`.
pub async fn run_check(http: &reqwest::Client, check: &HealthCheck, host: &str, ports: &[u64]) -> Result<(), String> {
    let timeout = Duration::from_secs(u64::from(check.timeout_seconds.max(1)));
    let port = match (check.port, check.port_index) {
        (Some(p), _) => Some(u64::from(p)),
        (None, Some(i)) => ports.get(i as usize).copied(),
        (None, None) => ports.first().copied(),
    };
    let protocol = check.protocol.trim_start_matches("MESOS_");
    match protocol {
        "HTTPS" => {
            let port = port.ok_or("no port to check")?;
            let path = check.path.as_deref().unwrap_or("/");
            let url = format!("https://{host}:{port}{path}");
            let code = tokio::time::timeout(timeout, tls::get_status(host, port, path))
                .await
                .map_err(|_| format!("{url}: timed out after {timeout:?}"))?
                .map_err(|e| format!("{url}: {e}"))?;
            if (200..400).contains(&code) || (check.ignore_http1xx && (100..200).contains(&code)) {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {code}"))
            }
        }
        "HTTP" => {
            let port = port.ok_or("no port to check")?;
            let scheme = "http";
            let path = check.path.as_deref().unwrap_or("/");
            let url = format!("{scheme}://{host}:{port}{path}");
            let answer = tokio::time::timeout(timeout, http.get(&url).send())
                .await
                .map_err(|_| format!("{url}: timed out after {timeout:?}"))?
                .map_err(|e| format!("{url}: {e}"))?;
            let code = answer.status().as_u16();
            if (200..400).contains(&code) || (check.ignore_http1xx && (100..200).contains(&code)) {
                Ok(())
            } else {
                Err(format!("{url}: HTTP {code}"))
            }
        }
        "TCP" => {
            let port = port.ok_or("no port to check")?;
            let addr = format!("{host}:{port}");
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr))
                .await
                .map_err(|_| format!("{addr}: timed out after {timeout:?}"))?
                .map(drop)
                .map_err(|e| format!("{addr}: {e}"))
        }
        "COMMAND" => {
            let cmd = check.command.as_ref().map(|c| c.value.clone()).ok_or("no command")?;
            let mut command = tokio::process::Command::new("sh");
            command.arg("-c").arg(&cmd).kill_on_drop(true);
            command
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null());
            command.stderr(std::process::Stdio::null());
            for (i, p) in ports.iter().enumerate() {
                command.env(format!("PORT{i}"), p.to_string());
            }
            if let Some(p) = ports.first() {
                command.env("PORT", p.to_string());
            }
            command.env("HOST", host);
            let status = tokio::time::timeout(timeout, command.status())
                .await
                .map_err(|_| format!("`{cmd}` timed out after {timeout:?}"))?
                .map_err(|e| format!("`{cmd}`: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("`{cmd}` exited with {status}"))
            }
        }
        other => Err(format!("unknown protocol {other}")),
    }
}

/// When each instance's checks are next due, and their results.
#[derive(Debug)]
pub struct Checks {
    /// Results by (task, check index), ordered so one task's are a range.
    pub results: BTreeMap<(String, usize), HealthResult>,
    /// Next due time by (task, check index).
    pub due: HashMap<(String, usize), Instant>,
    /// Bounds the checks in flight.
    pub permits: Arc<Semaphore>,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            results: BTreeMap::new(),
            due: HashMap::new(),
            permits: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> HealthCheck {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn failures_count_after_the_grace_period_and_kill_at_the_limit() {
        let hc = check(r#"{"protocol": "TCP", "maxConsecutiveFailures": 2}"#);
        let mut r = HealthResult::default();
        assert_eq!(r.record(Err("down".into()), true, &hc), Verdict::Same, "grace");
        assert_eq!(r.consecutive_failures, 0);
        assert_eq!(r.record(Ok(()), true, &hc), Verdict::Changed(true));
        assert_eq!(r.record(Ok(()), false, &hc), Verdict::Same);
        // After a first success, the grace period no longer hides failures.
        assert_eq!(r.record(Err("down".into()), true, &hc), Verdict::Changed(false));
        assert_eq!(r.record(Err("down".into()), false, &hc), Verdict::Kill);
        let never = check(r#"{"protocol": "TCP", "maxConsecutiveFailures": 0}"#);
        let mut r = HealthResult::default();
        for _ in 0..10 {
            assert_ne!(r.record(Err("x".into()), false, &never), Verdict::Kill);
        }
    }

    #[tokio::test]
    async fn tcp_http_and_command_checks_against_real_sockets_and_processes() {
        let http = reqwest::Client::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = u64::from(listener.local_addr().unwrap().port());
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .route(
                "/bad",
                axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let tcp = check(r#"{"protocol": "TCP"}"#);
        assert!(run_check(&http, &tcp, "127.0.0.1", &[port]).await.is_ok());
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(run_check(&http, &tcp, "127.0.0.1", &[u64::from(free)]).await.is_err());
        let ok = check(r#"{"protocol": "HTTP", "path": "/ok", "portIndex": 0}"#);
        assert!(run_check(&http, &ok, "127.0.0.1", &[port]).await.is_ok());
        let bad = check(r#"{"protocol": "HTTP", "path": "/bad"}"#);
        let e = run_check(&http, &bad, "127.0.0.1", &[port]).await.unwrap_err();
        assert!(e.ends_with("HTTP 503"), "{e}");
        let cmd = check(r#"{"protocol": "COMMAND", "command": {"value": "test \"$PORT0\" = 4242"}}"#);
        assert!(run_check(&http, &cmd, "127.0.0.1", &[4242]).await.is_ok());
        assert!(run_check(&http, &cmd, "127.0.0.1", &[1]).await.is_err());
    }
}
