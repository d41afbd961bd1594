//! [`FileStore`]: the embedded store that survives restarts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{validate_data_path, validate_path, MemStore, Nodes, StateStore, Version, Versioned};
use crate::{Error, Result};

/// Longest file name most file systems take.
const MAX_NAME: usize = 255;
/// Prefix of files being written; node files start with `%2F`.
const TMP_PREFIX: &str = "tmp.";

/// A [`StateStore`] in a directory: what an all-in-one or a single
/// scheduler uses to keep its apps across restarts without ZooKeeper.
///
/// Every node is one file (`%2F`-escaped path, holding the version as 8
/// little-endian bytes, then the data), replaced atomically by a rename, so
/// a crash leaves each node at its old or its new value, never torn. The
/// whole tree is also kept in memory: reads never touch the disk. One
/// process may open a directory at a time (nothing stops a second one, as
/// with [`MemStore`] there is no cross-process concurrency; use the
/// ZooKeeper store for that). Files are not fsynced: the store survives a
/// process crash, not a power cut. Writes are synchronous file writes on
/// the calling task (small, one node each), like the scheduler state they
/// hold.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    nodes: Mutex<Nodes>,
}

fn io_err(path: &Path, message: &str, e: std::io::Error) -> Error {
    Error::store(path.display().to_string(), message, e)
}

/// The file name of a node: its path with `%` and `/` escaped.
fn file_name(path: &str) -> Result<String> {
    let mut name = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        match c {
            '%' => name.push_str("%25"),
            '/' => name.push_str("%2F"),
            c => name.push(c),
        }
    }
    if name.len() > MAX_NAME {
        return Err(Error::Invalid {
            what: "path",
            reason: format!(
                "`{path}` is too long for the file store ({} bytes escaped, {MAX_NAME} at most)",
                name.len()
            ),
        });
    }
    Ok(name)
}

/// The node path of a file name, `None` for files that are not nodes.
fn node_path(name: &str) -> Option<String> {
    if !name.starts_with("%2F") {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%2F") => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    validate_data_path(&out).ok().map(|()| out)
}

impl FileStore {
    /// Opens the store in `dir`, creating the directory when missing and
    /// loading every node in it.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory cannot be created or read, or a
    /// node file is shorter than its version.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, "cannot create the store directory", e))?;
        let mut nodes = Nodes::new();
        let entries = fs::read_dir(&dir).map_err(|e| io_err(&dir, "cannot read the store directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, "cannot read the store directory", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                // A write that a crash interrupted: the node keeps its old file.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some(path) = node_path(name) else { continue };
            let bytes = fs::read(entry.path()).map_err(|e| io_err(&entry.path(), "cannot read a node", e))?;
            if bytes.len() < 8 {
                return Err(Error::Store {
                    path: entry.path().display().to_string(),
                    message: format!("a node file of {} bytes holds no version", bytes.len()),
                    source: None,
                });
            }
            let (version, data) = bytes.split_at(8);
            let version = u64::from_le_bytes(version.try_into().unwrap_or_default());
            nodes.insert(
                path,
                Versioned {
                    data: data.to_vec(),
                    version,
                },
            );
        }
        Ok(Self {
            dir,
            nodes: Mutex::new(nodes),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Nodes> {
        // Every mutation is written to disk before the map changes are
        // visible to anyone else, so a poisoned lock is still consistent.
        self.nodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn persist(&self, nodes: &Nodes, path: &str) -> Result<()> {
        let name = file_name(path)?;
        let target = self.dir.join(&name);
        let Some(node) = nodes.get(path) else {
            return match fs::remove_file(&target) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&target, "cannot delete a node", e)),
                _ => Ok(()),
            };
        };
        let tmp = self.dir.join(format!("{TMP_PREFIX}{name}"));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&node.version.to_le_bytes())?;
            f.write_all(&node.data)?;
            drop(f);
            fs::rename(&tmp, &target)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&target, "cannot write a node", e)
        })
    }

    /// Runs `op` on the map and persists `path` and the parents it created;
    /// when persisting fails the map is put back as it was.
    fn mutate<T>(&self, path: &str, op: impl FnOnce(&mut Nodes, &mut Vec<String>) -> Result<T>) -> Result<T> {
        // Fail on an unstorable path before anything changes.
        file_name(path)?;
        let mut nodes = self.lock();
        let before = nodes.get(path).cloned();
        let mut created = Vec::new();
        let out = op(&mut nodes, &mut created)?;
        let persisted = created
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(path))
            .try_for_each(|p| self.persist(&nodes, p));
        if let Err(e) = persisted {
            match before {
                Some(node) => nodes.insert(path.to_string(), node),
                None => nodes.remove(path),
            };
            for p in &created {
                nodes.remove(p);
                let _ = self.persist(&nodes, p);
            }
            let _ = self.persist(&nodes, path);
            return Err(e);
        }
        Ok(out)
    }
}

#[async_trait]
impl StateStore for FileStore {
    async fn get(&self, path: &str) -> Result<Option<Versioned>> {
        validate_path(path)?;
        Ok(self.lock().get(path).cloned())
    }

    async fn put(&self, path: &str, data: Vec<u8>) -> Result<Version> {
        validate_data_path(path)?;
        self.mutate(path, |nodes, created| {
            Ok(MemStore::write_node(nodes, path, data, created))
        })
    }

    async fn compare_and_set(&self, path: &str, data: Vec<u8>, expected: Option<Version>) -> Result<Version> {
        validate_data_path(path)?;
        self.mutate(path, |nodes, created| {
            MemStore::compare_and_set_in(nodes, path, data, expected, created)
        })
    }

    async fn delete(&self, path: &str, expected: Option<Version>) -> Result<bool> {
        validate_path(path)?;
        if path == "/" {
            return Ok(false);
        }
        self.mutate(path, |nodes, _| MemStore::delete_in(nodes, path, expected))
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        MemStore::children_in(&self.lock(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_files_are_skipped() {
        for path in ["/a", "/marathon/apps/%2Fweb", "/a b/c%d"] {
            assert_eq!(node_path(&file_name(path).unwrap()).as_deref(), Some(path));
        }
        for foreign in ["README", "tmp.%2Fa", "%2F", "%2Fa%2", "%2Fa%zz", "%2Fa%2F%2Fb"] {
            assert_eq!(node_path(foreign), None, "{foreign}");
        }
        assert!(file_name(&format!("/{}", "x".repeat(300))).is_err());
    }
}
