//! The [`StateStore`] seam and [`MemStore`], the embedded default.
//!
//! The model is ZooKeeper's, so that the in-memory store and a ZooKeeper
//! store behave alike: a tree of absolute `/`-separated paths, each node
//! holding bytes and a version that starts at 0 and grows by one per write;
//! a node with children cannot be deleted.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{Error, Result};

mod file;

pub use file::FileStore;

/// A node's version: 0 when created, +1 on every write.
pub type Version = u64;

/// Bytes and the version they were read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The node's data.
    pub data: Vec<u8>,
    /// The version of that data.
    pub version: Version,
}

/// Versioned storage for schedulers' state: Marathon apps, deployments,
/// framework ids. Writes are atomic per node; `compare_and_set` gives
/// optimistic concurrency across processes.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The node at `path`, if any.
    async fn get(&self, path: &str) -> Result<Option<Versioned>>;

    /// Writes `data` at `path` whatever is there, creating missing parents
    /// as empty nodes; returns the new version.
    async fn put(&self, path: &str, data: Vec<u8>) -> Result<Version>;

    /// Writes `data` only if the node is at version `expected`
    /// (`None`: only if it does not exist); creates missing parents.
    ///
    /// # Errors
    /// [`Error::VersionConflict`] with the version found.
    async fn compare_and_set(&self, path: &str, data: Vec<u8>, expected: Option<Version>) -> Result<Version>;

    /// Deletes the node, only at version `expected` when one is given.
    /// Returns whether there was a node.
    ///
    /// # Errors
    /// [`Error::NotEmpty`] while it has children; [`Error::VersionConflict`].
    async fn delete(&self, path: &str, expected: Option<Version>) -> Result<bool>;

    /// The names (not paths) of the node's children, sorted; empty when the
    /// node does not exist.
    async fn children(&self, path: &str) -> Result<Vec<String>>;

    /// Deletes the node and everything below it. Returns whether there was
    /// a node.
    async fn delete_recursive(&self, path: &str) -> Result<bool> {
        let mut stack = vec![(path.to_string(), false)];
        let mut existed = false;
        while let Some((p, expanded)) = stack.pop() {
            if expanded {
                existed |= self.delete(&p, None).await?;
                continue;
            }
            let kids = self.children(&p).await?;
            stack.push((p.clone(), true));
            for kid in kids {
                stack.push((join(&p, &kid), false));
            }
        }
        Ok(existed)
    }
}

/// `parent/child`, without doubling the root's slash.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Checks that `path` is absolute, has no empty, `.` or `..` segment and no
/// trailing slash (the root `/` itself is valid).
///
/// # Errors
/// [`Error::Invalid`] naming the path.
pub fn validate_path(path: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::Invalid {
            what: "path",
            reason: format!("`{path}` {reason}"),
        })
    };
    if path == "/" {
        return Ok(());
    }
    if !path.starts_with('/') {
        return bad("must start with `/`");
    }
    if path.contains('\0') {
        return bad("contains a NUL character");
    }
    for seg in path[1..].split('/') {
        if seg.is_empty() {
            return bad("has an empty segment or a trailing `/`");
        }
        if seg == "." || seg == ".." {
            return bad("has a relative segment");
        }
    }
    Ok(())
}

/// [`validate_path`] for a node that holds data: the root holds none.
///
/// # Errors
/// [`Error::Invalid`] naming the path.
pub fn validate_data_path(path: &str) -> Result<()> {
    validate_path(path)?;
    if path == "/" {
        return Err(Error::Invalid {
            what: "path",
            reason: "the root holds no data".into(),
        });
    }
    Ok(())
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// An in-memory [`StateStore`]: the embedded default, lost when the process
/// ends. Cheap to clone handles to by wrapping in an `Arc`.
#[derive(Debug, Default)]
pub struct MemStore {
    nodes: Mutex<BTreeMap<String, Versioned>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Versioned>> {
        // A panic elsewhere cannot leave a node half-written (every
        // mutation is one map operation), so a poisoned lock is still sound.
        self.nodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes one node, creating missing parents; `created` receives the
    /// parents it had to create (for stores that persist each node).
    pub(crate) fn write_node(
        nodes: &mut BTreeMap<String, Versioned>,
        path: &str,
        data: Vec<u8>,
        created: &mut Vec<String>,
    ) -> Version {
        let mut p = parent(path);
        while let Some(dir) = p.filter(|d| *d != "/") {
            if !nodes.contains_key(dir) {
                nodes.insert(
                    dir.to_string(),
                    Versioned {
                        data: Vec::new(),
                        version: 0,
                    },
                );
                created.push(dir.to_string());
            }
            p = parent(dir);
        }
        match nodes.get_mut(path) {
            Some(node) => {
                node.data = data;
                node.version += 1;
                node.version
            }
            None => {
                nodes.insert(path.to_string(), Versioned { data, version: 0 });
                0
            }
        }
    }

    fn write(nodes: &mut Nodes, path: &str, data: Vec<u8>) -> Version {
        Self::write_node(nodes, path, data, &mut Vec::new())
    }

    fn has_children(nodes: &BTreeMap<String, Versioned>, path: &str) -> bool {
        let prefix = join(path, "");
        nodes
            .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }
}

/// A node map, kept behind a lock.
type Nodes = BTreeMap<String, Versioned>;

/// The operations on a locked node map, shared by [`MemStore`] and
/// [`FileStore`] (which persists what they change).
impl MemStore {
    pub(crate) fn compare_and_set_in(
        nodes: &mut Nodes,
        path: &str,
        data: Vec<u8>,
        expected: Option<Version>,
        created: &mut Vec<String>,
    ) -> Result<Version> {
        validate_data_path(path)?;
        let actual = nodes.get(path).map(|n| n.version);
        if actual != expected {
            return Err(Error::VersionConflict {
                path: path.to_string(),
                expected,
                actual,
            });
        }
        Ok(Self::write_node(nodes, path, data, created))
    }

    pub(crate) fn delete_in(nodes: &mut Nodes, path: &str, expected: Option<Version>) -> Result<bool> {
        validate_path(path)?;
        let Some(actual) = nodes.get(path).map(|n| n.version) else {
            return Ok(false);
        };
        if expected.is_some_and(|e| e != actual) {
            return Err(Error::VersionConflict {
                path: path.to_string(),
                expected,
                actual: Some(actual),
            });
        }
        if Self::has_children(nodes, path) {
            return Err(Error::NotEmpty { path: path.to_string() });
        }
        nodes.remove(path);
        Ok(true)
    }

    pub(crate) fn children_in(nodes: &Nodes, path: &str) -> Result<Vec<String>> {
        validate_path(path)?;
        let prefix = join(path, "");
        let mut out: Vec<String> = nodes
            .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.contains('/')).then(|| rest.to_string())
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl StateStore for MemStore {
    async fn get(&self, path: &str) -> Result<Option<Versioned>> {
        validate_path(path)?;
        Ok(self.lock().get(path).cloned())
    }

    async fn put(&self, path: &str, data: Vec<u8>) -> Result<Version> {
        validate_data_path(path)?;
        Ok(Self::write(&mut self.lock(), path, data))
    }

    async fn compare_and_set(&self, path: &str, data: Vec<u8>, expected: Option<Version>) -> Result<Version> {
        Self::compare_and_set_in(&mut self.lock(), path, data, expected, &mut Vec::new())
    }

    async fn delete(&self, path: &str, expected: Option<Version>) -> Result<bool> {
        Self::delete_in(&mut self.lock(), path, expected)
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        Self::children_in(&self.lock(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated() {
        for good in ["/", "/a", "/a/b.c", "/marathon/apps/%2Fweb"] {
            validate_path(good).unwrap();
        }
        for bad in ["", "a", "/a/", "//a", "/a/../b", "/a/./b", "/a\0"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
    }
}
