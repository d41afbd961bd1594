//! Search and filter expressions, and saved filters.
//!
//! A query is whitespace-separated terms, all of which must hold:
//!
//! - `app=web,tier!=db` — label selectors, as Kubernetes writes them
//!   (`key=value`, `key==value`, `key!=value`, or a bare `key` inside a
//!   selector list meaning "has it"); a key matches a container label
//!   (`label_<key>`) or any other metadata key of the node;
//! - `cpu>80`, `memory>512MB`, `open_files<=10` — metric thresholds on the
//!   latest sample (`cpu`, `memory`/`mem` and `open_files` are short for
//!   the metric names; sizes take `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`);
//! - `type:container` (or `kind:`) — the node's topology;
//! - anything else — text found (ignoring case) in the node's label or
//!   any metadata value.
//!
//! ```
//! use orchestrator_topology::search::Query;
//! use orchestrator_core::report::{Node, TopologyKind};
//!
//! let q = Query::parse("web app=shop memory>1MB").unwrap();
//! let mut n = Node::default()
//!     .with_latest("docker_container_name", "web-1", 0)
//!     .with_latest("label_app", "shop", 0);
//! n.set_metric("memory_usage_bytes", 0, 4e6);
//! assert!(q.matches(TopologyKind::Container, "web-1", Some(&n)));
//! assert!(!Query::parse("cpu>50").unwrap().matches(TopologyKind::Container, "web-1", Some(&n)));
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use orchestrator_core::report::{Node, TopologyKind};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TopologyError};

#[derive(Clone, Debug, PartialEq)]
enum Selector {
    Eq(String, String),
    Ne(String, String),
    Has(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
enum Term {
    Labels(Vec<Selector>),
    Metric(String, Cmp, f64),
    Kind(TopologyKind),
    Text(String),
}

/// A parsed search or filter expression.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    terms: Vec<Term>,
    text: String,
}

fn bad(query: &str, reason: impl Into<String>) -> TopologyError {
    TopologyError::Query {
        query: query.to_string(),
        reason: reason.into(),
    }
}

/// `topology` names and view names for `type:`.
fn kind_named(name: &str) -> Option<TopologyKind> {
    Some(match name.trim_end_matches('s') {
        "process" => TopologyKind::Process,
        "container" => TopologyKind::Container,
        "image" | "container_image" | "containers-by-image" | "container-image" => TopologyKind::ContainerImage,
        "host" => TopologyKind::Host,
        "pod" => TopologyKind::Pod,
        "service" => TopologyKind::Service,
        "endpoint" => TopologyKind::Endpoint,
        _ => return None,
    })
}

fn metric_named(name: &str) -> String {
    match name {
        "cpu" => "cpu_usage_percent".into(),
        "memory" | "mem" => "memory_usage_bytes".into(),
        "open_files" | "files" => "open_files_count".into(),
        other => other.to_string(),
    }
}

fn number(query: &str, text: &str) -> Result<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| bad(query, format!("`{text}` is not a number")))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "%" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(bad(query, format!("unknown unit `{other}`"))),
    };
    Ok(n * scale)
}

impl Query {
    /// Parses an expression; an empty one matches everything.
    ///
    /// # Errors
    /// [`TopologyError::Query`] naming what does not parse.
    pub fn parse(text: &str) -> Result<Query> {
        if text.len() > 4096 {
            return Err(bad(&text[..64], "longer than 4096 bytes"));
        }
        let mut terms = Vec::new();
        for token in text.split_whitespace() {
            if let Some(kind) = token.strip_prefix("type:").or_else(|| token.strip_prefix("kind:")) {
                let k = kind_named(kind).ok_or_else(|| bad(text, format!("unknown type `{kind}`")))?;
                terms.push(Term::Kind(k));
            } else if token.contains('=') && !token.contains(">=") && !token.contains("<=") {
                let mut sels = Vec::new();
                for part in token.split(',').filter(|p| !p.is_empty()) {
                    let sel = if let Some((k, v)) = part.split_once("!=") {
                        Selector::Ne(k.to_string(), v.to_string())
                    } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                        Selector::Eq(k.to_string(), v.to_string())
                    } else {
                        Selector::Has(part.to_string())
                    };
                    if matches!(&sel, Selector::Eq(k, _) | Selector::Ne(k, _) | Selector::Has(k) if k.is_empty()) {
                        return Err(bad(text, format!("selector `{part}` has no key")));
                    }
                    sels.push(sel);
                }
                terms.push(Term::Labels(sels));
            } else if let Some(i) = token.find(['>', '<']) {
                let (name, rest) = token.split_at(i);
                let (cmp, value) = match rest.as_bytes() {
                    [b'>', b'=', ..] => (Cmp::Ge, &rest[2..]),
                    [b'<', b'=', ..] => (Cmp::Le, &rest[2..]),
                    [b'>', ..] => (Cmp::Gt, &rest[1..]),
                    _ => (Cmp::Lt, &rest[1..]),
                };
                if name.is_empty() {
                    return Err(bad(text, format!("`{token}` names no metric")));
                }
                terms.push(Term::Metric(metric_named(name), cmp, number(text, value)?));
            } else {
                terms.push(Term::Text(token.to_lowercase()));
            }
        }
        Ok(Query {
            terms,
            text: text.to_string(),
        })
    }

    /// Matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a node (of `kind`, shown as `label`; pseudo nodes have no
    /// `node`) passes every term.
    pub fn matches(&self, kind: TopologyKind, label: &str, node: Option<&Node>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Kind(k) => *k == kind,
            Term::Text(text) => {
                contains_ci(label, text)
                    || node.is_some_and(|n| {
                        n.latest.values().any(|l| contains_ci(&l.value, text))
                            || n.sets.values().flatten().any(|v| contains_ci(v, text))
                    })
            }
            Term::Labels(sels) => node.is_some_and(|n| sels.iter().all(|s| selector_matches(s, n))),
            Term::Metric(name, cmp, limit) => node
                .and_then(|n| n.metrics.get(name))
                .and_then(|m| m.last())
                .is_some_and(|s| match cmp {
                    Cmp::Gt => s.value > *limit,
                    Cmp::Ge => s.value >= *limit,
                    Cmp::Lt => s.value < *limit,
                    Cmp::Le => s.value <= *limit,
                }),
        })
    }
}

fn label_value<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    n.latest(&format!("label_{key}")).or_else(|| n.latest(key))
}

fn selector_matches(s: &Selector, n: &Node) -> bool {
    match s {
        Selector::Eq(k, v) => label_value(n, k) == Some(v.as_str()),
        Selector::Ne(k, v) => label_value(n, k) != Some(v.as_str()),
        Selector::Has(k) => label_value(n, k).is_some(),
    }
}

/// Case-insensitive `contains` with `needle` already lower case.
fn contains_ci(hay: &str, needle: &str) -> bool {
    if hay.len() < needle.len() {
        return false;
    }
    if hay.is_ascii() && needle.is_ascii() {
        return hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    }
    hay.to_lowercase().contains(needle)
}

/// A filter saved under an id anyone can share (`/api/topology/containers?filter=<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedFilter {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The expression ([`Query`]).
    pub query: String,
    /// The view it is for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// Who saved it.
    #[serde(default)]
    pub created_by: String,
    /// When (ms since the epoch).
    #[serde(default)]
    pub created_ms: u64,
}

/// Saved filters, kept in a JSON file when a data directory is given.
#[derive(Debug, Default)]
pub struct FilterStore {
    path: Option<PathBuf>,
    filters: BTreeMap<String, SavedFilter>,
}

impl FilterStore {
    /// Loads the filters saved in `path` (none yet when it does not exist);
    /// `None` keeps them in memory only.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let mut filters = BTreeMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => {
                    let list: Vec<SavedFilter> = serde_json::from_slice(&bytes)
                        .map_err(|e| TopologyError::Config(format!("{}: {e}", p.display())))?;
                    filters = list.into_iter().map(|f| (f.id.clone(), f)).collect();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(TopologyError::Io {
                        what: format!("reading {}", p.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(Self { path, filters })
    }

    /// Every filter.
    pub fn list(&self) -> impl Iterator<Item = &SavedFilter> {
        self.filters.values()
    }

    /// One filter.
    pub fn get(&self, id: &str) -> Option<&SavedFilter> {
        self.filters.get(id)
    }

    /// Saves a filter (its query must parse) and returns it with its id.
    ///
    /// # Errors
    /// A query that does not parse, or the file cannot be written.
    pub fn save(&mut self, f: SavedFilter, now_ms: u64) -> Result<SavedFilter> {
        let f = self.prepare(f, now_ms)?;
        self.insert(f.clone())?;
        Ok(f)
    }

    /// Checks a filter (its query must parse) and gives it its id, without
    /// saving it (a shared store writes it first, then [`insert`](Self::insert)s).
    ///
    /// # Errors
    /// A query that does not parse, a bad name, or too many filters.
    pub fn prepare(&self, mut f: SavedFilter, now_ms: u64) -> Result<SavedFilter> {
        Query::parse(&f.query)?;
        if f.name.trim().is_empty() || f.name.len() > 200 {
            return Err(bad(&f.query, "a filter needs a name of 1 to 200 bytes"));
        }
        if self.filters.len() >= 10_000 {
            return Err(bad(&f.query, "10,000 filters are saved already"));
        }
        let key = format!("{}\n{}\n{:?}\n{now_ms}", f.name, f.query, f.view);
        f.id = format!("{:012x}", crate::store::id_hash(&key) >> 16);
        f.created_ms = now_ms;
        Ok(f)
    }

    /// Adds a prepared filter.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn insert(&mut self, f: SavedFilter) -> Result<()> {
        self.filters.insert(f.id.clone(), f);
        self.persist()
    }

    /// Replaces every filter with `list` (what a shared store holds now).
    pub fn replace_all(&mut self, list: Vec<SavedFilter>) {
        self.filters = list.into_iter().map(|f| (f.id.clone(), f)).collect();
    }

    /// Deletes a filter; whether it existed.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn delete(&mut self, id: &str) -> Result<bool> {
        let existed = self.filters.remove(id).is_some();
        if existed {
            self.persist()?;
        }
        Ok(existed)
    }

    fn persist(&self) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let list: Vec<&SavedFilter> = self.filters.values().collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| TopologyError::Config(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| TopologyError::Io {
                what: format!("writing {}", path.display()),
                source: e,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut n = Node::default()
            .with_latest("docker_container_name", "shop-web", 0)
            .with_latest("label_app", "web", 0)
            .with_latest("label_tier", "front", 0);
        n.set_metric("cpu_usage_percent", 0, 85.0);
        n.set_metric("memory_usage_bytes", 0, 600e6);
        n
    }

    #[test]
    fn selectors_thresholds_types_and_text() {
        let n = node();
        let m = |q: &str| {
            Query::parse(q)
                .unwrap()
                .matches(TopologyKind::Container, "shop-web", Some(&n))
        };
        assert!(m(""));
        assert!(m("app=web,tier!=db"));
        assert!(!m("app=web,tier!=front"));
        assert!(m("app,tier=front"));
        assert!(!m("zone,tier=front"));
        assert!(m("cpu>80"));
        assert!(!m("cpu>90"));
        assert!(m("memory>512MB"));
        assert!(!m("memory>1GiB"));
        assert!(m("type:container"));
        assert!(m("type:containers"));
        assert!(!m("type:host"));
        assert!(m("SHOP"));
        assert!(m("shop web"));
        assert!(!m("nginx"));
        assert!(m("docker_container_name==shop-web"));
    }

    #[test]
    fn bad_expressions_are_named() {
        for q in ["type:bogus", "cpu>lots", "memory>5XB", "=x", ">5"] {
            let e = Query::parse(q).unwrap_err();
            assert!(matches!(e, TopologyError::Query { .. }), "{q}: {e}");
        }
    }

    #[test]
    fn saved_filters_persist() {
        let dir = std::env::temp_dir().join(format!("orch-filters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("filters.json");
        let mut store = FilterStore::open(Some(path.clone())).unwrap();
        let f = store
            .save(
                SavedFilter {
                    id: String::new(),
                    name: "busy".into(),
                    query: "cpu>80".into(),
                    view: Some("containers".into()),
                    created_by: "alice".into(),
                    created_ms: 0,
                },
                5,
            )
            .unwrap();
        assert!(store
            .save(
                SavedFilter {
                    query: "cpu>x".into(),
                    ..f.clone()
                },
                6
            )
            .is_err());
        let again = FilterStore::open(Some(path)).unwrap();
        assert_eq!(again.get(&f.id), Some(&f));
        let _ = std::fs::remove_dir_all(dir);
    }
}
