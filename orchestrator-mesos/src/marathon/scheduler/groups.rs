//! Groups and dependencies, as Marathon has them: apps live in a tree of
//! groups named by their ids' paths (`/prod/db` is in `/prod`), and an app
//! that depends on apps or groups is started only once every app they name
//! runs its instances, healthy where it has checks. A stack `db ← api ← web`
//! therefore deploys in that order, whatever order it was submitted in.

use std::collections::{BTreeMap, BTreeSet};

use super::{ready, Scheduler};
use crate::marathon::app::AppDefinition;

/// The group an app or group id is in: `/prod/web` → `/prod`, `/web` → `/`.
pub fn parent(id: &str) -> &str {
    match id.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/",
        Some(i) => &id[..i],
    }
}

/// `dep` as an absolute id: absolute already, or relative to `group` (with
/// `..` going up). `None` when it climbs above the root.
pub fn resolve(group: &str, dep: &str) -> Option<String> {
    let mut parts: Vec<&str> = if dep.starts_with('/') {
        Vec::new()
    } else {
        group.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in dep.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if seg == ".." {
            parts.pop()?;
        } else {
            parts.push(seg);
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `app_id` is `target` or inside the group `target`.
fn within(app_id: &str, target: &str) -> bool {
    target == "/" || app_id == target || app_id.strip_prefix(target).is_some_and(|r| r.starts_with('/'))
}

/// A cycle among the dependencies of `apps` (every app id a dependency of
/// one of them resolves to), as the path around it, or `None`.
pub fn dependency_cycle(apps: &[&AppDefinition]) -> Option<Vec<String>> {
    let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
    let edges: BTreeMap<&str, Vec<&str>> = apps
        .iter()
        .map(|a| {
            let targets: Vec<&str> = a
                .dependencies
                .iter()
                .filter_map(|d| resolve(parent(&a.id), d))
                .flat_map(|d| ids.iter().copied().filter(move |id| within(id, &d)).collect::<Vec<_>>())
                .collect();
            (a.id.as_str(), targets)
        })
        .collect();
    // Depth-first search with the path on a stack.
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| *p == n) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_string()).collect();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n);
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for id in &ids {
        if let Some(c) = visit(id, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

impl Scheduler {
    /// Whether every app `def` depends on runs its instances (healthy
    /// where it has checks). A dependency that names no app is not ready.
    pub(super) fn dependencies_ready(&self, def: &AppDefinition) -> bool {
        def.dependencies.iter().all(|d| {
            let Some(target) = resolve(parent(&def.id), d) else {
                return false;
            };
            let mut named = self.apps.values().filter(|a| within(&a.def.id, &target)).peekable();
            named.peek().is_some()
                && named.all(|a| {
                    let up = self.instances_of(&a.def.id).filter(|i| ready(&a.def, i)).count();
                    up >= a.def.instances as usize
                })
        })
    }

    /// The ids of the apps in group `group` (and its subgroups).
    pub fn apps_in(&self, group: &str) -> Vec<String> {
        self.apps.keys().filter(|id| within(id, group)).cloned().collect()
    }

    /// `ids` ordered so that every app comes after the apps it depends on
    /// (apps in a cycle, refused at the API, keep their order).
    pub fn in_dependency_order(&self, ids: &[String]) -> Vec<String> {
        let mut left: Vec<String> = ids.to_vec();
        let mut out: Vec<String> = Vec::new();
        while !left.is_empty() {
            let before = left.len();
            left.retain(|id| {
                let Some(app) = self.apps.get(id) else {
                    out.push(id.clone());
                    return false;
                };
                let waits = app
                    .def
                    .dependencies
                    .iter()
                    .filter_map(|d| resolve(parent(id), d))
                    .any(|d| {
                        ids.iter()
                            .any(|other| other != id && within(other, &d) && !out.contains(other))
                    });
                if waits {
                    true
                } else {
                    out.push(id.clone());
                    false
                }
            });
            if left.len() == before {
                out.append(&mut left);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, deps: &[&str]) -> AppDefinition {
        let deps: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
        AppDefinition::from_json(
            format!(r#"{{"id": "{id}", "cmd": "x", "dependencies": [{}]}}"#, deps.join(",")).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn paths_resolve_as_marathon_s() {
        assert_eq!(parent("/prod/web"), "/prod");
        assert_eq!(parent("/web"), "/");
        assert_eq!(resolve("/prod", "db").as_deref(), Some("/prod/db"));
        assert_eq!(resolve("/prod/api", "../db").as_deref(), Some("/prod/db"));
        assert_eq!(resolve("/prod", "/other/x").as_deref(), Some("/other/x"));
        assert_eq!(resolve("/", "../x"), None);
    }

    #[test]
    fn cycles_are_found_and_chains_are_not_cycles() {
        let (db, api, web) = (app("/s/db", &[]), app("/s/api", &["db"]), app("/s/web", &["/s/api"]));
        assert_eq!(dependency_cycle(&[&web, &api, &db]), None);
        let loop_db = app("/s/db", &["web"]);
        let cycle = dependency_cycle(&[&web, &api, &loop_db]).unwrap();
        assert!(cycle.len() == 4 && cycle.first() == cycle.last(), "{cycle:?}");
        // A dependency on a group is a dependency on every app in it.
        let on_group = app("/t/front", &["/s"]);
        let back = app("/s/x", &["/t"]);
        assert!(dependency_cycle(&[&on_group, &back]).is_some());
    }
}
