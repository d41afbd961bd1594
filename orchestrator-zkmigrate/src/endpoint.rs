//! Where a tree lives: servers plus an absolute root (chroot and path).

use std::fmt;
use std::time::Duration;

use zookeeper_client as zk;

use crate::error::{Error, Result};

/// One side of a migration: `host:port[,host:port…][/chroot]` plus the
/// subtree (`--path`) below the chroot.
///
/// The chroot is applied by this crate, not by the client, so that the
/// subtree's root itself can be created, read and compared like any node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port[,host:port…]`.
    pub servers: String,
    /// Absolute root of the migrated subtree on these servers (`/` for all).
    pub root: String,
    /// A short label for messages (`source`, `target`).
    pub label: String,
}

fn check_path(endpoint: &str, path: &str) -> Result<()> {
    let bad = |reason: &str| Error::Endpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    if !path.starts_with('/') {
        return Err(bad("a path must start with '/'"));
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(bad("a path must not end with '/'"));
    }
    if path.contains("//") || path.split('/').any(|c| c == "." || c == "..") || path.contains('\0') {
        return Err(bad("a path must not contain empty, '.' or '..' components"));
    }
    Ok(())
}

impl Endpoint {
    /// Parses `host:port[,host:port…][/chroot]` and joins `path` below it.
    ///
    /// # Errors
    /// [`Error::Endpoint`] for an empty server list, a missing port or a
    /// malformed path.
    pub fn parse(label: &str, spec: &str, path: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Endpoint {
            endpoint: spec.to_string(),
            reason: reason.to_string(),
        };
        let spec_trim = spec.trim().trim_start_matches("zk://");
        let (servers, chroot) = match spec_trim.find('/') {
            Some(i) => (&spec_trim[..i], &spec_trim[i..]),
            None => (spec_trim, "/"),
        };
        if servers.is_empty() {
            return Err(bad("no server given"));
        }
        for s in servers.split(',') {
            let Some((host, port)) = s.rsplit_once(':') else {
                return Err(bad(&format!("{s:?} has no port (HOST:PORT)")));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad(&format!("{s:?} is not HOST:PORT")));
            }
        }
        check_path(spec, chroot)?;
        check_path(path, path)?;
        let root = match (chroot, path) {
            ("/", p) => p.to_string(),
            (c, "/") => c.to_string(),
            (c, p) => format!("{c}{p}"),
        };
        Ok(Endpoint {
            servers: servers.to_string(),
            root,
            label: label.to_string(),
        })
    }

    /// The absolute path of `rel` (`/` is the root itself).
    pub fn abs(&self, rel: &str) -> String {
        match (self.root.as_str(), rel) {
            (root, "/") => root.to_string(),
            ("/", rel) => rel.to_string(),
            (root, rel) => format!("{root}{rel}"),
        }
    }

    /// The path relative to the root of an absolute path, if it is inside.
    pub fn rel<'a>(&self, abs: &'a str) -> Option<&'a str> {
        if self.root == "/" {
            return abs.starts_with('/').then_some(abs);
        }
        let rest = abs.strip_prefix(self.root.as_str())?;
        match rest {
            "" => Some("/"),
            r if r.starts_with('/') => Some(r),
            _ => None,
        }
    }

    /// Whether an absolute path is ZooKeeper's own (`/zookeeper/…`), never migrated.
    pub fn is_system(abs: &str) -> bool {
        abs == "/zookeeper" || abs.starts_with("/zookeeper/")
    }

    /// Connects, retrying until `timeout` passes.
    ///
    /// # Errors
    /// [`Error::Zk`] when no session could be established in time.
    pub async fn connect(&self, timeout: Duration) -> Result<zk::Client> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let attempt = zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_connection_timeout(Duration::from_secs(2))
                .connect(&self.servers)
                .await;
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::zk(&self.label, "connect", &self.servers, e));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.label, self.servers, self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers_chroot_and_path() {
        let e = Endpoint::parse("source", "127.0.0.1:2181,h2:2182/app", "/mesos").unwrap();
        assert_eq!(e.servers, "127.0.0.1:2181,h2:2182");
        assert_eq!(e.root, "/app/mesos");
        assert_eq!(e.abs("/"), "/app/mesos");
        assert_eq!(e.abs("/x/y"), "/app/mesos/x/y");
        assert_eq!(e.rel("/app/mesos/x"), Some("/x"));
        assert_eq!(e.rel("/app/mesos"), Some("/"));
        assert_eq!(e.rel("/app/mesosphere"), None);
        let all = Endpoint::parse("t", "zk://h:1", "/").unwrap();
        assert_eq!((all.root.as_str(), all.abs("/a")), ("/", "/a".to_string()));
        assert_eq!(all.rel("/a"), Some("/a"));
    }

    #[test]
    fn rejects_bad_specs() {
        for (spec, path) in [
            ("", "/"),
            ("h", "/"),
            ("h:x", "/"),
            ("h:1/a/", "/"),
            ("h:1", "a"),
            ("h:1", "/a/../b"),
        ] {
            assert!(Endpoint::parse("s", spec, path).is_err(), "{spec} {path}");
        }
    }
}
