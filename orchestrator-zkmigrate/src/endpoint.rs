//! Where a tree lives: servers plus an absolute root (chroot and path),
//! and who the tool is there (`addauth` credentials).

use std::fmt;
use std::path::PathBuf;
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
    /// Credentials every session adds (as `addauth` does), in order.
    pub credentials: Vec<Credential>,
    /// TLS to the servers' secure client port, when set.
    pub tls: Option<Tls>,
    /// The session timeout asked for (10 s, as Mesos and Marathon use);
    /// the servers bound it to 2–20 ticks.
    pub session_timeout: Duration,
    /// SASL DIGEST-MD5 login, when set (see [`SaslLogin::from_jaas`]).
    pub sasl: Option<SaslLogin>,
}

/// A SASL DIGEST-MD5 login, as ZooKeeper's `DigestLoginModule` takes it in
/// a JAAS file's `Client` section. Its `Debug` form hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    /// The user (what `sasl:USER` ACL entries name).
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SaslLogin({}:***)", self.username)
    }
}

impl SaslLogin {
    /// The login of section `section` (ZooKeeper clients read `Client`) of
    /// a JAAS configuration:
    ///
    /// ```text
    /// Client {
    ///     org.apache.zookeeper.server.auth.DigestLoginModule required
    ///     username="bob"
    ///     password="bobsecret";
    /// };
    /// ```
    ///
    /// # Errors
    /// [`Error::Endpoint`] when the section is missing, uses another login
    /// module (Kerberos is not supported: use DIGEST-MD5, `digest`
    /// credentials or TLS client certificates), or lacks a username or
    /// password.
    pub fn from_jaas(text: &str, section: &str) -> Result<SaslLogin> {
        let bad = |reason: String| Error::Endpoint {
            endpoint: format!("JAAS section {section}"),
            reason,
        };
        // Comments out, then `Name { module flag key="value" …; };` entries.
        let text: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = text.as_str();
        let body = loop {
            let Some(open) = rest.find('{') else {
                return Err(bad("not found".to_string()));
            };
            let name = rest[..open]
                .trim()
                .rsplit(|c: char| c.is_whitespace() || c == ';')
                .next()
                .unwrap_or("");
            let close = rest[open..]
                .find("};")
                .map(|i| open + i)
                .ok_or_else(|| bad("not closed with `};`".to_string()))?;
            if name == section {
                break &rest[open + 1..close];
            }
            rest = &rest[close + 2..];
        };
        let module = body.split_whitespace().next().unwrap_or("");
        if !module.ends_with("DigestLoginModule") {
            return Err(bad(format!(
                "uses {module}; only DIGEST-MD5 (org.apache.zookeeper.server.auth.DigestLoginModule) is supported: \
                 for Kerberos use digest credentials (--source-auth) or TLS client certificates"
            )));
        }
        let option = |key: &str| {
            let at = body.find(&format!("{key}=\""))? + key.len() + 2;
            let end = body[at..].find('"')?;
            Some(body[at..at + end].to_string())
        };
        match (option("username"), option("password")) {
            (Some(username), Some(password)) if !username.is_empty() => Ok(SaslLogin { username, password }),
            _ => Err(bad("needs username=\"…\" and password=\"…\"".to_string())),
        }
    }
}

/// TLS to a ZooKeeper ensemble's `secureClientPort`: the CA that signed the
/// servers' certificates (which must name the address connected to), and
/// a client certificate for servers with `ssl.clientAuth=need`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the CA certificate(s).
    pub ca: PathBuf,
    /// PEM file of the client certificate (chain), if the servers ask for one.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
}

impl Tls {
    /// The client's TLS options, read from the files.
    ///
    /// # Errors
    /// [`Error::Endpoint`] naming the file that cannot be read or parsed,
    /// or a certificate without its key.
    pub fn options(&self) -> Result<zk::TlsOptions> {
        let read = |p: &PathBuf, what: &str| {
            std::fs::read_to_string(p).map_err(|e| Error::Endpoint {
                endpoint: p.display().to_string(),
                reason: format!("cannot read the TLS {what}: {e}"),
            })
        };
        let bad = |p: &PathBuf, what: &str, e: zk::Error| Error::Endpoint {
            endpoint: p.display().to_string(),
            reason: format!("not a PEM {what}: {e}"),
        };
        let mut options = zk::TlsOptions::new()
            .with_pem_ca(&read(&self.ca, "CA")?)
            .map_err(|e| bad(&self.ca, "CA certificate", e))?;
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                options = options
                    .with_pem_identity(&read(cert, "certificate")?, &read(key, "key")?)
                    .map_err(|e| bad(cert, "certificate and key", e))?;
            }
            (None, None) => {}
            (Some(p), None) | (None, Some(p)) => {
                return Err(Error::Endpoint {
                    endpoint: p.display().to_string(),
                    reason: "a client certificate needs its key, and a key its certificate".to_string(),
                })
            }
        }
        Ok(options)
    }
}

/// One `addauth` credential: a scheme and what it is given, e.g. `digest`
/// and `USER:PASSWORD`. Its `Debug` form hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The scheme (`digest`, or another the servers have a provider for).
    pub scheme: String,
    /// What the scheme is given (`USER:PASSWORD` for `digest`).
    pub auth: Vec<u8>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = match self.scheme.as_str() {
            "digest" => String::from_utf8_lossy(&self.auth)
                .split(':')
                .next()
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        write!(f, "{}:{user}:***", self.scheme)
    }
}

impl Credential {
    /// Parses `SCHEME:AUTH` (`digest:USER:PASSWORD`), as `addauth` takes it.
    ///
    /// # Errors
    /// [`Error::Endpoint`] without a scheme, or a `digest` without
    /// `USER:PASSWORD`; the message never repeats the secret.
    pub fn parse(spec: &str) -> Result<Credential> {
        let bad = |reason: &str| Error::Endpoint {
            endpoint: "credential".to_string(),
            reason: reason.to_string(),
        };
        let spec = spec.trim_end_matches(['\r', '\n']);
        let Some((scheme, auth)) = spec.split_once(':') else {
            return Err(bad("expected SCHEME:AUTH, e.g. digest:USER:PASSWORD"));
        };
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("the scheme (before the first ':') must be a word, e.g. digest"));
        }
        if scheme == "digest" && auth.split_once(':').is_none_or(|(u, _)| u.is_empty()) {
            return Err(bad("digest needs USER:PASSWORD"));
        }
        Ok(Credential {
            scheme: scheme.to_string(),
            auth: auth.as_bytes().to_vec(),
        })
    }

    /// The credentials in `text`: one `SCHEME:AUTH` per line; blank lines
    /// and lines starting with `#` are skipped (a credentials file).
    ///
    /// # Errors
    /// [`Error::Endpoint`] naming the line of the first malformed one.
    pub fn parse_lines(text: &str) -> Result<Vec<Credential>> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(i, l)| {
                Credential::parse(l.trim()).map_err(|e| match e {
                    Error::Endpoint { reason, .. } => Error::Endpoint {
                        endpoint: format!("credential on line {}", i + 1),
                        reason,
                    },
                    other => other,
                })
            })
            .collect()
    }
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
            credentials: Vec::new(),
            tls: None,
            session_timeout: Duration::from_secs(10),
            sasl: None,
        })
    }

    /// This endpoint, with sessions of this timeout.
    #[must_use]
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// This endpoint, logging in with SASL DIGEST-MD5.
    #[must_use]
    pub fn with_sasl(mut self, login: Option<SaslLogin>) -> Self {
        self.sasl = login;
        self
    }

    /// This endpoint, reached over TLS.
    #[must_use]
    pub fn with_tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// This endpoint, with sessions that add `credentials`.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Vec<Credential>) -> Self {
        self.credentials = credentials;
        self
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
        let tls = match &self.tls {
            Some(t) => {
                // The client library builds its TLS configuration on the
                // process's default provider; ours is ring.
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some(t.options()?)
            }
            None => None,
        };
        loop {
            let mut connector = zk::Client::connector()
                .with_session_timeout(self.session_timeout)
                .with_connection_timeout(Duration::from_secs(2));
            for c in &self.credentials {
                connector = connector.with_auth(&c.scheme, &c.auth);
            }
            if let Some(login) = &self.sasl {
                connector = connector.with_sasl(zk::SaslOptions::digest_md5(
                    login.username.clone(),
                    login.password.clone(),
                ));
            }
            let attempt = match &tls {
                Some(options) => connector.with_tls(options.clone()).secure_connect(&self.servers).await,
                None => connector.connect(&self.servers).await,
            };
            match attempt {
                Ok(c) => return Ok(c),
                // Credentials the servers refuse are not worth retrying.
                Err(e @ zk::Error::AuthFailed) => return Err(Error::zk(&self.label, "authenticate", &self.servers, e)),
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
    fn reads_a_digest_login_from_a_jaas_file_and_refuses_kerberos() {
        let jaas = r#"
            // the server's part
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_bob="bobsecret";
            };
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                username="bob"
                password="bobsecret";
            };
            Kerberos {
                com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;
            };
        "#;
        let login = SaslLogin::from_jaas(jaas, "Client").unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("bob", "bobsecret"));
        assert_eq!(format!("{login:?}"), "SaslLogin(bob:***)");
        let krb = SaslLogin::from_jaas(jaas, "Kerberos").unwrap_err().to_string();
        assert!(krb.contains("only DIGEST-MD5"), "{krb}");
        assert!(SaslLogin::from_jaas(jaas, "Nope")
            .unwrap_err()
            .to_string()
            .contains("not found"));
        assert!(
            SaslLogin::from_jaas(jaas, "Server").is_err(),
            "no username in the server's part"
        );
    }

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
