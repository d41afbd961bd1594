//! `/v2/groups`: the tree of groups the apps' ids make (`/prod/web` is in
//! `/prod`), read whole or by group; a group's apps created, updated,
//! scaled (`scaleBy`) or deleted together, started in dependency order and
//! deleted in the reverse. A dependency cycle is a 422.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::app::{canonical_id, AppDefinition, Invalid, Violation};
use super::framework::version_now;
use super::http::{app_value, flag, invalid, locked, message, storage, Api};
use super::scheduler::{dependency_cycle, parent, resolve, Deployment, Scheduler};

/// The group `id` as Marathon shows it, with its apps and subgroups; `None`
/// when no app lives in it (the root always exists).
fn group_json(api: &Api, s: &Scheduler, id: &str) -> Option<Value> {
    // An app's own id is not a group.
    let inside: Vec<String> = s.apps_in(id).into_iter().filter(|a| a != id).collect();
    if inside.is_empty() && id != "/" {
        return None;
    }
    let mut apps = Vec::new();
    let mut subgroups = BTreeSet::new();
    for app in &inside {
        if parent(app) == id {
            if let Some(a) = s.app(app) {
                apps.push(app_value(api, s, &a.def));
            }
        } else {
            // The subgroup of `id` this app is under.
            let rest = app[id.len()..].trim_start_matches('/');
            let first = rest.split('/').next().unwrap_or_default();
            subgroups.insert(if id == "/" {
                format!("/{first}")
            } else {
                format!("{id}/{first}")
            });
        }
    }
    let groups: Vec<Value> = subgroups.iter().filter_map(|g| group_json(api, s, g)).collect();
    let version = inside
        .iter()
        .filter_map(|a| s.app(a).and_then(|a| a.def.version.clone()))
        .max()
        .unwrap_or_else(version_now);
    Some(json!({
        "id": id,
        "apps": apps,
        "groups": groups,
        "pods": [],
        "dependencies": [],
        "version": version,
    }))
}

pub(super) async fn root(
    State(api): State<Api>,
    method: Method,
    q: Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    route(State(api), method, Path(String::new()), q, body).await
}

pub(super) async fn route(
    State(api): State<Api>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let id = if rest.trim_matches('/').is_empty() {
        "/".to_string()
    } else {
        match canonical_id(&rest) {
            Ok(id) => id,
            Err(e) => return message(StatusCode::BAD_REQUEST, format!("invalid group id {rest:?}: {e}")),
        }
    };
    let force = flag(&q, "force");
    match method {
        Method::GET => api.marathon.with(|s| match group_json(&api, s, &id) {
            Some(g) => Json(g).into_response(),
            None => message(StatusCode::NOT_FOUND, format!("Group '{id}' does not exist")),
        }),
        Method::POST | Method::PUT => {
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
                return message(StatusCode::BAD_REQUEST, "Invalid JSON: expected a group object");
            };
            if method == Method::PUT {
                if let Some(by) = body.get("scaleBy") {
                    return scale_by(&api, &id, by, force).await;
                }
            }
            let group_id = match body.get("id").and_then(Value::as_str) {
                Some(g) if method == Method::POST => match resolve("/", g).and_then(|g| canonical_id(&g).ok()) {
                    Some(g) => g,
                    None => return message(StatusCode::BAD_REQUEST, format!("invalid group id {g:?}")),
                },
                _ => id.clone(),
            };
            let mut apps = Vec::new();
            if let Err(e) = collect_apps(&group_id, &body, &[], "", &mut apps) {
                return invalid(&e);
            }
            if method == Method::POST {
                let taken = api
                    .marathon
                    .with(|s| apps.iter().find(|a| s.app(&a.id).is_some()).map(|a| a.id.clone()));
                if let Some(t) = taken {
                    return message(StatusCode::CONFLICT, format!("An app with id [{t}] already exists."));
                }
            }
            if let Some(r) = check_dependencies(&api, &apps) {
                return r;
            }
            deploy(
                &api,
                apps,
                force,
                if method == Method::POST {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
            )
            .await
        }
        Method::DELETE => {
            let ids = api.marathon.with(|s| {
                let ids = s.apps_in(&id);
                let mut order = s.in_dependency_order(&ids);
                // Dependents stop first.
                order.reverse();
                order
            });
            if ids.is_empty() {
                return message(StatusCode::NOT_FOUND, format!("Group '{id}' does not exist"));
            }
            let mut first: Option<Deployment> = None;
            for app in ids {
                match api.marathon.delete_app(&app, force).await {
                    Err(e) => return storage(&e),
                    Ok(Err(l)) => return locked(&l),
                    Ok(Ok(d)) => first = first.or(d),
                }
            }
            answer(StatusCode::OK, first.as_ref())
        }
        m => message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not supported on /v2/groups"),
        ),
    }
}

/// `{"deploymentId", "version"}` for a group change.
fn answer(status: StatusCode, d: Option<&Deployment>) -> Response {
    let version = d.map_or_else(version_now, |d| d.version.clone());
    (
        status,
        Json(json!({"deploymentId": d.map(|d| d.id.clone()), "version": version})),
    )
        .into_response()
}

/// The group's apps (and its subgroups'), their ids made absolute and the
/// group's own dependencies added to each, validated as apps are.
fn collect_apps(
    group: &str,
    body: &Map<String, Value>,
    inherited: &[String],
    at: &str,
    out: &mut Vec<AppDefinition>,
) -> Result<(), Invalid> {
    let mut deps: Vec<String> = inherited.to_vec();
    for d in body.get("dependencies").and_then(Value::as_array).into_iter().flatten() {
        if let Some(abs) = d.as_str().and_then(|d| resolve(parent(group), d)) {
            deps.push(abs);
        }
    }
    for (i, app) in body
        .get("apps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut app = app.clone();
        let Some(rel) = app.get("id").and_then(Value::as_str).map(str::to_string) else {
            return Err(violation(format!("{at}/apps({i})/id"), "is required"));
        };
        let Some(abs) = resolve(group, &rel) else {
            return Err(violation(format!("{at}/apps({i})/id"), "climbs above the root"));
        };
        app["id"] = json!(abs);
        let mut def = AppDefinition::from_value(app).map_err(|mut e| {
            for v in &mut e.details {
                v.path = format!("{at}/apps({i}){}", v.path);
            }
            e
        })?;
        // Relative dependencies are relative to the app's group.
        def.dependencies = def
            .dependencies
            .iter()
            .filter_map(|d| resolve(parent(&def.id), d))
            .chain(deps.iter().cloned())
            .collect();
        out.push(def);
    }
    for (i, sub) in body
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Value::Object(sub) = sub else {
            return Err(violation(format!("{at}/groups({i})"), "expected a group object"));
        };
        let Some(sub_id) = sub.get("id").and_then(Value::as_str).and_then(|g| resolve(group, g)) else {
            return Err(violation(format!("{at}/groups({i})/id"), "is required"));
        };
        collect_apps(&sub_id, sub, &deps, &format!("{at}/groups({i})"), out)?;
    }
    Ok(())
}

fn violation(path: String, error: &str) -> Invalid {
    Invalid {
        message: "Object is not valid".into(),
        details: vec![Violation {
            path,
            errors: vec![error.to_string()],
        }],
    }
}

/// A 422 when the new apps, with the apps already there, depend on each
/// other in a cycle, or depend on nothing that exists.
pub(super) fn check_dependencies(api: &Api, new: &[AppDefinition]) -> Option<Response> {
    api.marathon.with(|s| {
        let new_ids: BTreeSet<&str> = new.iter().map(|a| a.id.as_str()).collect();
        let existing: Vec<AppDefinition> = s
            .apps()
            .filter(|a| !new_ids.contains(a.def.id.as_str()))
            .map(|a| a.def.clone())
            .collect();
        let all: Vec<&AppDefinition> = new.iter().chain(existing.iter()).collect();
        for app in new {
            for dep in &app.dependencies {
                let Some(d) = resolve(parent(&app.id), dep) else {
                    return Some(invalid(&violation(
                        "/dependencies".into(),
                        &format!("{}: dependency {dep} climbs above the root", app.id),
                    )));
                };
                let names_something = all.iter().any(|a| {
                    a.id == d || a.id.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with('/')) || d == "/"
                });
                if !names_something {
                    return Some(invalid(&violation(
                        "/dependencies".into(),
                        &format!("{}: dependency {d} names no app or group", app.id),
                    )));
                }
            }
        }
        dependency_cycle(&all).map(|cycle| {
            invalid(&violation(
                "/dependencies".into(),
                &format!("Dependency graph has cyclic dependencies: {}", cycle.join(" -> ")),
            ))
        })
    })
}

/// Creates or updates every app; the scheduler starts each once its
/// dependencies run. Answers the first deployment.
async fn deploy(api: &Api, apps: Vec<AppDefinition>, force: bool, status: StatusCode) -> Response {
    let ids: Vec<String> = apps.iter().map(|a| a.id.clone()).collect();
    let mut first: Option<Deployment> = None;
    for def in apps {
        if let Some(r) = super::http::port_conflict(api, &def) {
            return r;
        }
        match api.marathon.put_app(def, force).await {
            Err(e) => return storage(&e),
            Ok(Err(l)) => return locked(&l),
            Ok(Ok(d)) => first = first.or(d),
        }
    }
    tracing::debug!(apps = ?ids, "group deployed");
    answer(status, first.as_ref())
}

/// `PUT /v2/groups/{id}` with `{"scaleBy": f}`: every app's instances
/// times `f`, rounded up.
async fn scale_by(api: &Api, id: &str, by: &Value, force: bool) -> Response {
    let Some(f) = by.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f <= 1000.0) else {
        return invalid(&violation("/scaleBy".into(), "must be a number from 0 to 1000"));
    };
    let apps: Vec<AppDefinition> = api.marathon.with(|s| {
        s.apps_in(id)
            .iter()
            .filter_map(|a| s.app(a).map(|a| a.def.clone()))
            .collect()
    });
    if apps.is_empty() {
        return message(StatusCode::NOT_FOUND, format!("Group '{id}' does not exist"));
    }
    let mut first: Option<Deployment> = None;
    for mut def in apps {
        let scaled = (f64::from(def.instances) * f).ceil();
        def.instances = if scaled >= f64::from(i32::MAX) {
            i32::MAX as u32
        } else {
            scaled as u32
        };
        match api.marathon.put_app(def, force).await {
            Err(e) => return storage(&e),
            Ok(Err(l)) => return locked(&l),
            Ok(Ok(d)) => first = first.or(d),
        }
    }
    answer(StatusCode::OK, first.as_ref())
}
