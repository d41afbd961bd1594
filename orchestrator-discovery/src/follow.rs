//! Following the master: its state is read every `refresh`, and a new
//! record set is published when the records change. The masters are
//! tried in order; the first that answers is taken as the leader unless
//! its state names another.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::fetch::{get_json, next_burst};
use crate::records::{RecordSet, Resolved};
use crate::state::MasterState;

/// Publishes the record set of the masters' state into `records` until
/// the returned task is aborted or every receiver is gone. The state is
/// read again soon after every event of the master's v1 operator stream
/// (`POST /api/v1` `SUBSCRIBE`) and every `config.resync` regardless;
/// a master without that stream is read every `config.refresh`. With
/// `config.marathon`, the scheduler's health-check results are read with
/// it (and again on its `/v2/events`), and tasks failing them are left
/// out. A master that cannot be read keeps the last set (Mesos-DNS does
/// the same) and is logged.
pub fn follow_masters(config: Arc<Config>, records: watch::Sender<Arc<RecordSet>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        // The event streams last: no overall timeout, only for connecting.
        let streaming = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let mut names: HashMap<String, Ipv4Addr> = HashMap::new();
        let mut serial: u32 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(1));
        let mut last_failure = String::new();
        let mut events: Option<reqwest::Response> = None;
        let mut health_events: Option<reqwest::Response> = None;
        let mut unhealthy: HashSet<String> = HashSet::new();
        loop {
            if let Some(marathon) = &config.marathon {
                if health_events.is_none() {
                    health_events = subscribe_marathon(&streaming, marathon).await;
                }
                // A scheduler that cannot be read keeps its last verdicts.
                if let Some(now) = unhealthy_tasks(&client, marathon).await {
                    unhealthy = now;
                }
            }
            match read_state(&client, &config.masters).await {
                Ok((state, master)) => {
                    last_failure.clear();
                    if events.is_none() {
                        events = subscribe(&streaming, &master).await;
                    }
                    let mut resolved = resolve(&state, &master, &mut names).await;
                    resolved.unhealthy.clone_from(&unhealthy);
                    let mut set = RecordSet::build(&state, &resolved, &config);
                    let changed = !records.borrow().same_records(&set);
                    if changed {
                        serial = serial.wrapping_add(1);
                        set.serial = serial;
                        if records.send(Arc::new(set)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    events = None;
                    if e != last_failure {
                        tracing::warn!(error = %e, "could not read the master's state; answering from the last one");
                        last_failure = e;
                    }
                }
            }
            if records.is_closed() {
                return;
            }
            let quiet = if events.is_some() {
                config.resync
            } else {
                config.refresh
            };
            tokio::select! {
                ended = next_burst(&mut events) => if ended { events = None },
                ended = next_burst(&mut health_events) => if ended { health_events = None },
                () = tokio::time::sleep(quiet) => {}
            }
        }
    })
}

/// The scheduler's event stream, for health-check changes and task updates.
async fn subscribe_marathon(client: &reqwest::Client, marathon: &str) -> Option<reqwest::Response> {
    let url = format!(
        "{}/v2/events?event_type=health_status_changed_event&event_type=status_update_event",
        marathon.trim_end_matches('/')
    );
    let r = client
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .ok()?;
    r.status().is_success().then_some(r)
}

/// Ids of tasks of apps with health checks that do not pass them all
/// (none reported yet counts as not passing), from the scheduler; `None`
/// when it cannot be read.
async fn unhealthy_tasks(client: &reqwest::Client, marathon: &str) -> Option<HashSet<String>> {
    let url = format!("{}/v2/apps?embed=apps.tasks", marathon.trim_end_matches('/'));
    let apps: serde_json::Value = get_json(client, &url, "Marathon's apps").await.ok()?;
    let mut out = HashSet::new();
    for app in apps["apps"].as_array()? {
        if app["healthChecks"].as_array().is_none_or(|c| c.is_empty()) {
            continue;
        }
        for task in app["tasks"].as_array().into_iter().flatten() {
            let passing = task["healthCheckResults"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && r.iter().all(|h| h["alive"] == true));
            if let (false, Some(id)) = (passing, task["id"].as_str()) {
                out.insert(id.to_string());
            }
        }
    }
    Some(out)
}

/// The master's v1 operator event stream, where it has one.
async fn subscribe(client: &reqwest::Client, master: &str) -> Option<reqwest::Response> {
    let url = format!("{}/api/v1", master.trim_end_matches('/'));
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(r#"{"type":"SUBSCRIBE"}"#)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        tracing::info!(%url, status = %response.status(), "no operator event stream; reading the state every refresh");
        return None;
    }
    Some(response)
}

/// The first master's state that can be read, with that master's URL.
async fn read_state(client: &reqwest::Client, masters: &[String]) -> Result<(MasterState, String), String> {
    let mut errors = Vec::new();
    for master in masters {
        let url = format!("{}/master/state", master.trim_end_matches('/'));
        match get_json::<MasterState>(client, &url, "a master state").await {
            Ok(state) => return Ok((state, master.clone())),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        return Err("no master is configured".into());
    }
    Err(errors.join("; "))
}

/// Addresses of agents known by host name only, looked up once and
/// remembered, and the leader's address when the state does not say.
async fn resolve(state: &MasterState, master: &str, names: &mut HashMap<String, Ipv4Addr>) -> Resolved {
    let mut resolved = Resolved::default();
    for agent in &state.slaves {
        let by_pid = agent.pid.as_deref().and_then(crate::state::pid_ip);
        if by_pid.is_some() || agent.hostname.parse::<Ipv4Addr>().is_ok() {
            continue;
        }
        if let Some(ip) = lookup(&agent.hostname, names).await {
            resolved.agents.insert(agent.id.clone(), ip);
        }
    }
    if state.leader.is_none() {
        if let Some((host, port)) = host_port(master) {
            if let Some(ip) = lookup(&host, names).await {
                resolved.leader = Some((ip, port));
            }
        }
    }
    resolved
}

async fn lookup(host: &str, names: &mut HashMap<String, Ipv4Addr>) -> Option<Ipv4Addr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    if let Some(ip) = names.get(host) {
        return Some(*ip);
    }
    let found = tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host((host, 0)))
        .await
        .ok()?
        .ok()?
        .find_map(|a| match a.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })?;
    names.insert(host.to_string(), found);
    Some(found)
}

/// The host and port of a master's URL (`http://host:5050`).
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let (host, port) = authority
        .rsplit_once(':')
        .map_or((authority, None), |(h, p)| (h, p.parse().ok()));
    Some((host.to_string(), port.unwrap_or(5050)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_urls_give_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:5050/"), Some(("127.0.0.1".into(), 5050)));
        assert_eq!(host_port("http://m1"), Some(("m1".into(), 5050)));
    }
}
