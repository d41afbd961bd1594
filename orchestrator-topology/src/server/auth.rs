//! Bearer tokens with roles.
//!
//! - `viewer` reads everything;
//! - `operator` also runs controls and saves filters;
//! - `admin` also reads the audit log, and may act as a probe;
//! - `probe` posts reports and holds the control socket, nothing else.
//!
//! Tokens come from a file, one per line as `TOKEN ROLE [NAME]` (`#`
//! comments), or as a JSON list of `{"token", "role", "name"}`. A token
//! goes in `Authorization: Bearer …` (the scheme in any case, as RFC 7235
//! says), or in `?token=` on a WebSocket upgrade only, where a browser
//! cannot set headers; elsewhere `?token=` is refused, since URLs end up
//! in logs. Without tokens the app runs open: every
//! caller is an admin, and [`check_exposure`](super::check_exposure) keeps
//! it on loopback.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{error, App};
use crate::error::{Result, TopologyError};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Posts reports and holds the control socket.
    Probe,
    /// Reads.
    Viewer,
    /// Reads and runs controls.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name, as tokens files and audit entries write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Probe => "probe",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The secret.
    pub token: String,
    /// Its role.
    pub role: Role,
    /// Who holds it (for the audit log).
    #[serde(default)]
    pub name: String,
}

/// The configured tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens(Vec<Token>);

impl Tokens {
    /// Tokens from a list.
    pub fn new(tokens: Vec<Token>) -> Self {
        Self(tokens)
    }

    /// Adds a token (a program that starts its own probe gives it one).
    pub fn push(&mut self, token: Token) {
        self.0.push(token);
    }

    /// None configured: the app runs open.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a tokens file.
    ///
    /// # Errors
    /// An unreadable file, an unknown role, a short or repeated token.
    pub fn load(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError::Io {
            what: format!("reading {}", path.display()),
            source: e,
        })?;
        Self::parse(&text).map_err(|e| TopologyError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses the text of a tokens file.
    ///
    /// # Errors
    /// A message naming the bad line.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let tokens: Vec<Token> = if text.trim_start().starts_with('[') {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            let mut out = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (Some(token), Some(role)) = (parts.next(), parts.next()) else {
                    return Err(format!("line {}: expected `TOKEN ROLE [NAME]`", n + 1));
                };
                let role: Role = serde_json::from_value(serde_json::Value::from(role))
                    .map_err(|_| format!("line {}: unknown role `{role}` (probe, viewer, operator, admin)", n + 1))?;
                out.push(Token {
                    token: token.to_string(),
                    role,
                    name: parts.collect::<Vec<_>>().join(" "),
                });
            }
            out
        };
        for (i, t) in tokens.iter().enumerate() {
            if t.token.len() < 8 {
                return Err(format!("token {} is shorter than 8 characters", i + 1));
            }
            if tokens[..i].iter().any(|o| o.token == t.token) {
                return Err(format!("token {} is given twice", i + 1));
            }
        }
        Ok(Tokens(tokens))
    }

    fn find(&self, secret: &str) -> Option<&Token> {
        self.0
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), secret.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who is calling (an extension on every request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token holder's name (`anonymous` when open).
    pub name: String,
    /// Its role; `None` when no token was given.
    pub role: Option<Role>,
}

/// Where a request's token is, if anywhere.
enum Presented {
    Token(String),
    None,
    /// `?token=` on a plain HTTP request: refused, as tokens in URLs end up
    /// in logs and histories.
    InQuery,
}

fn token_of(req: &Request) -> Presented {
    use axum::http::header::{AUTHORIZATION, UPGRADE};
    if let Some(h) = req.headers().get(AUTHORIZATION) {
        // The scheme is case-insensitive (RFC 7235).
        let token = h
            .to_str()
            .ok()
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_string());
        return token.map_or(Presented::None, Presented::Token);
    }
    let in_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(str::to_string);
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    match in_query {
        // Browsers cannot set headers on a WebSocket.
        Some(t) if upgrade => Presented::Token(t),
        Some(_) => Presented::InQuery,
        None => Presented::None,
    }
}

/// Names the caller; a token that is not known is refused here.
pub(super) async fn identify(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let tokens = &app.inner.config.tokens;
    let caller = if tokens.is_empty() {
        Caller {
            name: "anonymous".into(),
            role: Some(Role::Admin),
        }
    } else {
        match token_of(&req) {
            Presented::None => Caller {
                name: String::new(),
                role: None,
            },
            Presented::InQuery => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "send the token in the Authorization header (?token= is only for WebSocket upgrades)",
                )
            }
            Presented::Token(secret) => match tokens.find(&secret) {
                Some(t) => Caller {
                    name: if t.name.is_empty() {
                        t.role.as_str().to_string()
                    } else {
                        t.name.clone()
                    },
                    role: Some(t.role),
                },
                None => return error(StatusCode::UNAUTHORIZED, "unknown token"),
            },
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn allow(req: &Request, ok: impl Fn(Role) -> bool, what: &str) -> Option<Response> {
    match req.extensions().get::<Caller>().and_then(|c| c.role) {
        None => Some(error(StatusCode::UNAUTHORIZED, "a bearer token is required")),
        Some(role) if ok(role) => None,
        Some(role) => Some(error(
            StatusCode::FORBIDDEN,
            format!("a {} token may not {what}", role.as_str()),
        )),
    }
}

pub(super) async fn require_probe(req: Request, next: Next) -> Response {
    match allow(&req, |r| matches!(r, Role::Probe | Role::Admin), "act as a probe") {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

pub(super) async fn require_viewer(req: Request, next: Next) -> Response {
    match allow(&req, |r| r >= Role::Viewer, "read") {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

pub(super) async fn require_operator(req: Request, next: Next) -> Response {
    match allow(&req, |r| r >= Role::Operator, "run controls or change filters") {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

pub(super) async fn require_admin(req: Request, next: Next) -> Response {
    match allow(&req, |r| r == Role::Admin, "read the audit log") {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_and_bad_ones_are_named() {
        let t = Tokens::parse("# team\nviewer-secret viewer alice\nop-secret-1 operator bob smith\n").unwrap();
        assert_eq!(t.find("op-secret-1").unwrap().name, "bob smith");
        assert_eq!(t.find("viewer-secret").unwrap().role, Role::Viewer);
        assert!(t.find("viewer-secreT").is_none());
        let j = Tokens::parse(r#"[{"token": "probe-secret", "role": "probe"}]"#).unwrap();
        assert_eq!(j.find("probe-secret").unwrap().role, Role::Probe);
        assert!(Tokens::parse("short viewer").unwrap_err().contains("shorter"));
        assert!(Tokens::parse("abcdefghij root").unwrap_err().contains("unknown role"));
        assert!(Tokens::parse("abcdefghij viewer\nabcdefghij admin")
            .unwrap_err()
            .contains("twice"));
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer && Role::Viewer > Role::Probe);
    }
}
