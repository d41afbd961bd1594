//! Operator endpoints with Mesos's shapes: `/metrics/snapshot`,
//! `GET|PUT /weights`, `GET|POST /quota`, `DELETE /quota/{role}`, `/roles`.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use orchestrator_core::{Allocator, Quota, Resources, TaskState};
use serde::Deserialize;
use serde_json::json;

use super::handle::MasterHandle;
use super::registry::StoredQuota;
use super::state::{AgentState, Master};
use crate::api::json::{error, resources_json};

/// What any master answers, leading or not.
pub(super) fn routes<A: Allocator + 'static>() -> Router<MasterHandle<A>> {
    Router::new().route("/metrics/snapshot", get(metrics::<A>))
}

/// What only the leader answers (a standby redirects).
pub(super) fn leader_routes<A: Allocator + 'static>() -> Router<MasterHandle<A>> {
    Router::new()
        .route("/weights", get(get_weights::<A>).put(put_weights::<A>))
        .route("/quota", get(get_quota::<A>).post(set_quota::<A>))
        .route("/quota/{role}", delete(remove_quota::<A>))
        .route("/roles", get(roles::<A>))
}

/// `TASK_RUNNING` → `master/tasks_running`, as Mesos names its gauges.
fn metric_name(state: TaskState) -> String {
    format!(
        "master/tasks_{}",
        state.to_string().trim_start_matches("TASK_").to_lowercase()
    )
}

async fn metrics<A: Allocator + 'static>(State(h): State<MasterHandle<A>>) -> Response {
    h.with_master(|m| {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        let active = m.agents().values().filter(|a| a.state == AgentState::Active).count();
        out.insert("master/slaves_active".into(), active as f64);
        out.insert("master/slaves_inactive".into(), (m.agents().len() - active) as f64);
        out.insert(
            "master/frameworks_active".into(),
            m.frameworks().values().filter(|f| f.connected).count() as f64,
        );
        out.insert(
            "master/frameworks_disconnected".into(),
            m.frameworks().values().filter(|f| !f.connected).count() as f64,
        );
        out.insert("master/outstanding_offers".into(), m.offers().count() as f64);
        for state in [
            TaskState::Staging,
            TaskState::Starting,
            TaskState::Running,
            TaskState::Killing,
        ] {
            let n = m
                .frameworks()
                .values()
                .flat_map(|f| f.tasks.values())
                .filter(|t| t.state == state)
                .count();
            out.insert(metric_name(state), n as f64);
        }
        for state in [
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Lost,
            TaskState::Error,
        ] {
            let n = m
                .frameworks()
                .values()
                .flat_map(|f| f.completed.iter())
                .filter(|t| t.state == state)
                .count();
            out.insert(metric_name(state), n as f64);
        }
        let mut total = Resources::new();
        for a in m.agents().values() {
            total += &a.info.resources;
        }
        let used: Resources = m
            .frameworks()
            .values()
            .flat_map(|f| f.tasks.values())
            .map(|t| t.info.resources.flatten())
            .fold(Resources::new(), |mut acc, r| {
                acc += r;
                acc
            });
        for (name, t, u) in [
            ("cpus", total.cpus(), used.cpus()),
            ("mem", total.mem(), used.mem()),
            ("disk", total.disk(), used.disk()),
            ("gpus", total.gpus(), used.gpus()),
        ] {
            out.insert(format!("master/{name}_total"), t);
            out.insert(format!("master/{name}_used"), u);
            out.insert(format!("master/{name}_percent"), if t > 0.0 { u / t } else { 0.0 });
        }
        out.insert(
            "master/uptime_secs".into(),
            Instant::now().duration_since(m.started()).as_secs_f64(),
        );
        out.insert("master/elected".into(), if h.leads() { 1.0 } else { 0.0 });
        Json(out).into_response()
    })
}

#[derive(Deserialize)]
struct Weight {
    role: String,
    weight: f64,
}

async fn get_weights<A: Allocator + 'static>(State(h): State<MasterHandle<A>>) -> Response {
    let weights: Vec<_> = h.with_master(|m| {
        m.allocator()
            .roles()
            .into_iter()
            .filter(|r| r.weight != 1.0)
            .map(|r| json!({"role": r.name, "weight": r.weight}))
            .collect()
    });
    Json(weights).into_response()
}

async fn put_weights<A: Allocator + 'static>(State(h): State<MasterHandle<A>>, body: Bytes) -> Response {
    let weights: Vec<Weight> = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Failed to parse weights: {e}")),
    };
    // All or nothing: check every entry before changing any.
    for (i, w) in weights.iter().enumerate() {
        // Mesos's rule: finite, normal, positive (1e-320 is not normal).
        if !(w.weight.is_normal() && w.weight > 0.0) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Invalid weight {} for role '{}'", w.weight, w.role),
            );
        }
        if let Err(e) = crate::allocator::validate_role(&w.role) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        if weights[..i].iter().any(|o| o.role == w.role) {
            return error(StatusCode::BAD_REQUEST, format!("Role '{}' is given twice", w.role));
        }
    }
    // With a registry, the weights are stored before they are used.
    let registry = h.registry();
    let _turn = match &registry {
        Some(r) => Some(r.turn().await),
        None => None,
    };
    if let Some(registry) = &registry {
        let mut stored: BTreeMap<String, f64> = h.with_master(|m| {
            m.allocator()
                .roles()
                .into_iter()
                .filter(|r| r.weight != 1.0)
                .map(|r| (r.name, r.weight))
                .collect()
        });
        for w in &weights {
            if w.weight == 1.0 {
                stored.remove(&w.role);
            } else {
                stored.insert(w.role.clone(), w.weight);
            }
        }
        if let Err(e) = registry.set_weights(&stored).await {
            return registry_failed(&e);
        }
    }
    h.with_master(|m| {
        for w in &weights {
            // Validated above; a failure here would be a bug, not input.
            let _ = m.allocator_mut().set_weight(&w.role, w.weight);
        }
    });
    StatusCode::OK.into_response()
}

fn registry_failed(e: &crate::Error) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The registry could not be written; nothing changed: {e}"),
    )
}

/// Every role's quota, as the registry stores them.
fn quotas_of<A: Allocator>(m: &Master<A>) -> BTreeMap<String, StoredQuota> {
    m.allocator()
        .roles()
        .into_iter()
        .filter(|r| !r.guarantees.is_empty() || r.limits.is_some())
        .map(|r| {
            (
                r.name,
                StoredQuota {
                    guarantees: r.guarantees,
                    limits: r.limits,
                },
            )
        })
        .collect()
}

/// Puts a role's quota back as it was.
fn restore_quota<A: Allocator>(m: &mut Master<A>, role: &str, previous: Option<Quota>) {
    match previous {
        Some(q) if !q.guarantees.is_empty() || q.limits.is_some() => {
            let _ = m.allocator_mut().set_quota(role, q);
        }
        _ => m.allocator_mut().remove_quota(role),
    }
}

#[derive(Deserialize)]
struct QuotaRequest {
    role: String,
    #[serde(default, alias = "guarantees")]
    guarantee: Resources,
    #[serde(default, alias = "limits")]
    limit: Option<Resources>,
    /// Set the guarantee even where the cluster cannot satisfy it.
    #[serde(default)]
    force: bool,
}

async fn get_quota<A: Allocator + 'static>(State(h): State<MasterHandle<A>>) -> Response {
    let infos: Vec<_> = h.with_master(|m| {
        m.allocator()
            .roles()
            .into_iter()
            .filter(|r| !r.guarantees.is_empty() || r.limits.is_some())
            .map(|r| json!({"role": r.name, "guarantee": r.guarantees, "limit": r.limits}))
            .collect()
    });
    Json(json!({ "infos": infos })).into_response()
}

async fn set_quota<A: Allocator + 'static>(State(h): State<MasterHandle<A>>, body: Bytes) -> Response {
    let req: QuotaRequest = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Failed to parse quota request: {e}")),
    };
    // Mesos's rules (issue 18): no quota for `*`, each resource once, and
    // a guarantee the cluster can hold unless `force` says otherwise.
    if req.role == "*" {
        return error(StatusCode::BAD_REQUEST, "Quota cannot be set for role '*'");
    }
    // Resources merge same-named entries when parsed: look at the request.
    let raw: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let entries = raw.get("guarantee").or_else(|| raw.get("guarantees"));
    let names: Vec<&str> = entries
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.get("name")?.as_str()).collect())
        .unwrap_or_default();
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Quota guarantee names resource '{dup}' more than once"),
        );
    }
    let quota = Quota {
        guarantees: req.guarantee,
        limits: req.limit,
    };
    let force = req.force;
    let registry = h.registry();
    let _turn = match &registry {
        Some(r) => Some(r.turn().await),
        None => None,
    };
    // Tried (checks and capacity) under the lock; with a registry, undone
    // again, stored, then applied for good.
    let outcome = h.with_master(|m| {
        let previous = m
            .allocator()
            .roles()
            .into_iter()
            .find(|r| r.name == req.role)
            .map(|r| Quota {
                guarantees: r.guarantees,
                limits: r.limits,
            });
        // The quota's own checks (a guarantee within its limit) come first.
        m.allocator_mut()
            .set_quota(&req.role, quota.clone())
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let tried = |m: &mut Master<A>| {
            if registry.is_none() {
                return Ok(None);
            }
            let stored = quotas_of(m);
            restore_quota(m, &req.role, previous.clone());
            Ok(Some(stored))
        };
        if force {
            return tried(m);
        }
        let mut capacity = Resources::new();
        for a in m.agents().values() {
            capacity += &a.info.resources;
        }
        let mut guaranteed = Resources::new();
        for r in m.allocator().roles() {
            guaranteed += &r.guarantees;
        }
        let short = quota.guarantees.iter().find_map(|r| {
            let name = r.name.as_str();
            let want = guaranteed.scalar(name)?;
            let have = capacity.scalar(name).unwrap_or(0.0);
            (want > have).then(|| format!("{name}: {want} guaranteed in all, {have} in the cluster"))
        });
        let Some(short) = short else { return tried(m) };
        restore_quota(m, &req.role, previous);
        Err((
            StatusCode::CONFLICT,
            format!("Not enough available cluster capacity to reasonably satisfy quota request ({short}); the force flag can be used to override this check"),
        ))
    });
    match outcome {
        Ok(None) => StatusCode::OK.into_response(),
        Ok(Some(stored)) => {
            if let Some(registry) = &registry {
                if let Err(e) = registry.set_quotas(&stored).await {
                    return registry_failed(&e);
                }
            }
            match h.with_master(|m| m.allocator_mut().set_quota(&req.role, quota)) {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        Err((status, why)) => error(status, why),
    }
}

async fn remove_quota<A: Allocator + 'static>(State(h): State<MasterHandle<A>>, Path(role): Path<String>) -> Response {
    if let Some(registry) = h.registry() {
        let _turn = registry.turn().await;
        let mut stored = h.with_master(|m| quotas_of(m));
        if stored.remove(&role).is_some() {
            if let Err(e) = registry.set_quotas(&stored).await {
                return registry_failed(&e);
            }
        }
    }
    let had = h.with_master(|m| {
        let had = m
            .allocator()
            .roles()
            .iter()
            .any(|r| r.name == role && (!r.guarantees.is_empty() || r.limits.is_some()));
        if had {
            m.allocator_mut().remove_quota(&role);
        }
        had
    });
    if had {
        StatusCode::OK.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("Role '{role}' has no quota"))
    }
}

async fn roles<A: Allocator + 'static>(State(h): State<MasterHandle<A>>) -> Response {
    let roles: Vec<_> = h.with_master(|m| {
        m.allocator()
            .roles()
            .into_iter()
            .map(|r| {
                let frameworks: Vec<String> = m
                    .frameworks()
                    .iter()
                    .filter(|(_, f)| f.info.effective_roles().contains(&r.name))
                    .map(|(id, _)| id.to_string())
                    .collect();
                json!({
                    "name": r.name,
                    "weight": r.weight,
                    "frameworks": frameworks,
                    "resources": resources_json(&r.allocated),
                    "quota": {"guarantee": resources_json(&r.guarantees), "limit": r.limits.as_ref().map(resources_json)},
                })
            })
            .collect()
    });
    Json(json!({ "roles": roles })).into_response()
}
