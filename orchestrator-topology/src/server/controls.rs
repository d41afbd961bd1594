//! Controls: probes hold a WebSocket to the app (`/api/v1/ws`); a control
//! request (`POST /api/control/{probe}/{node}/{control}`) is checked —
//! role, read-only mode, the allow-list, what the probe and the node
//! offer — sent down that socket, awaited, audited and answered. Logs and
//! exec open a pipe the caller attaches to at `/api/pipe/{id}`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use orchestrator_core::report::control::{FromProbe, ToProbe};
use orchestrator_core::report::TopologyKind;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::auth::Caller;
use super::{error, App};
use crate::error::{Result, TopologyError};

/// Audit entries kept in memory for `GET /api/audit`.
const AUDIT_MEMORY: usize = 1000;
/// Output chunks buffered for a pipe before its caller attaches.
const PIPE_BUFFER: usize = 1024;

/// One line of the audit log.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// When (ms since the epoch).
    pub ts_ms: u64,
    /// Who (the token's name).
    pub who: String,
    /// The token's role.
    pub role: String,
    /// What (`control`).
    pub action: String,
    /// The probe it went to.
    pub probe: String,
    /// The node.
    pub node: String,
    /// The control.
    pub control: String,
    /// Its arguments.
    pub args: BTreeMap<String, String>,
    /// Whether it worked.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct ProbeConn {
    conn: u64,
    tx: mpsc::Sender<ToProbe>,
    controls: BTreeSet<String>,
}

enum PipeEvent {
    Data(Vec<u8>),
    Closed(Option<String>),
}

struct Pipe {
    probe: String,
    tx: mpsc::Sender<PipeEvent>,
    rx: Option<mpsc::Receiver<PipeEvent>>,
}

/// The control sockets, requests in flight, pipes and the audit log.
pub(crate) struct Controls {
    probes: Mutex<HashMap<String, ProbeConn>>,
    pending: Mutex<HashMap<u64, (String, oneshot::Sender<FromProbe>)>>,
    pipes: Mutex<HashMap<String, Pipe>>,
    next: AtomicU64,
    audit_file: Option<Mutex<std::fs::File>>,
    audit: Mutex<VecDeque<AuditEntry>>,
}

impl Controls {
    pub(crate) fn new(audit_log: Option<PathBuf>) -> Result<Self> {
        let audit_file = match audit_log {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| TopologyError::Io {
                        what: format!("opening the audit log {}", path.display()),
                        source: e,
                    })?,
            )),
            None => None,
        };
        Ok(Self {
            probes: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            pipes: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            audit_file,
            audit: Mutex::new(VecDeque::new()),
        })
    }

    /// Probes with a control socket.
    pub(crate) fn connected(&self) -> BTreeSet<String> {
        self.probes.lock().keys().cloned().collect()
    }

    fn record(&self, entry: AuditEntry) {
        if let Some(f) = &self.audit_file {
            if let Ok(mut line) = serde_json::to_vec(&entry) {
                line.push(b'\n');
                if let Err(e) = f.lock().write_all(&line) {
                    tracing::error!(error = %e, "writing the audit log");
                }
            }
        }
        tracing::info!(who = %entry.who, control = %entry.control, node = %entry.node, ok = entry.ok, "control");
        let mut ring = self.audit.lock();
        if ring.len() == AUDIT_MEMORY {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    fn sender(&self, probe: &str) -> Option<mpsc::Sender<ToProbe>> {
        self.probes.lock().get(probe).map(|p| p.tx.clone())
    }

    /// Handles one message from a probe.
    fn on_message(&self, probe: &str, conn: u64, msg: FromProbe) {
        match msg {
            FromProbe::Hello { controls, .. } => {
                if let Some(p) = self.probes.lock().get_mut(probe).filter(|p| p.conn == conn) {
                    p.controls = controls.into_iter().collect();
                }
            }
            FromProbe::Result { id, ref pipe, .. } => {
                if let Some(pipe) = pipe {
                    let (tx, rx) = mpsc::channel(PIPE_BUFFER);
                    self.pipes.lock().insert(
                        pipe.clone(),
                        Pipe {
                            probe: probe.to_string(),
                            tx,
                            rx: Some(rx),
                        },
                    );
                }
                let waiter = self.pending.lock().remove(&id);
                match waiter {
                    Some((from, tx)) if from == probe => {
                        let _ = tx.send(msg);
                    }
                    _ => tracing::warn!(probe, id, "a result nobody waits for"),
                }
            }
            FromProbe::PipeOutput { pipe, data } => {
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
                    tracing::warn!(probe, pipe, "pipe output is not base64");
                    return;
                };
                if let Some(p) = self.pipes.lock().get(&pipe).filter(|p| p.probe == probe) {
                    // A caller that does not read loses output, not memory.
                    let _ = p.tx.try_send(PipeEvent::Data(bytes));
                }
            }
            FromProbe::PipeClosed { pipe, error } => {
                if let Some(p) = self.pipes.lock().get(&pipe).filter(|p| p.probe == probe) {
                    let _ = p.tx.try_send(PipeEvent::Closed(error));
                }
            }
        }
    }

    /// A probe's socket went away: its requests fail, its pipes close.
    fn gone(&self, probe: &str, conn: u64) {
        let mut probes = self.probes.lock();
        if probes.get(probe).is_some_and(|p| p.conn == conn) {
            probes.remove(probe);
        }
        drop(probes);
        self.pending.lock().retain(|_, (p, _)| p != probe);
        let mut pipes = self.pipes.lock();
        for p in pipes.values().filter(|p| p.probe == probe) {
            let _ = p.tx.try_send(PipeEvent::Closed(Some("the probe disconnected".into())));
        }
        pipes.retain(|_, p| p.probe != probe || p.rx.is_some());
    }
}

fn valid_probe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 253 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// `GET /api/v1/ws?probe_id=…`: a probe's control socket.
pub(super) async fn probe_socket(
    State(app): State<App>,
    Query(q): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(id) = q.get("probe_id").filter(|id| valid_probe_id(id)).cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "probe_id= (letters, digits, `-_.:`) is required",
        );
    };
    ws.max_message_size(16 << 20)
        .on_upgrade(move |socket| run_probe(app, id, socket))
}

async fn run_probe(app: App, id: String, socket: WebSocket) {
    let controls = &app.inner.controls;
    let conn = controls.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<ToProbe>(256);
    controls.probes.lock().insert(
        id.clone(),
        ProbeConn {
            conn,
            tx,
            controls: BTreeSet::new(),
        },
    );
    tracing::info!(probe = %id, "control socket open");
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let Ok(text) = serde_json::to_string(&m) else { continue };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(t) => match serde_json::from_str::<FromProbe>(&t) {
                Ok(m) => controls.on_message(&id, conn, m),
                Err(e) => tracing::warn!(probe = %id, error = %e, "a message that is not the control protocol"),
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    writer.abort();
    controls.gone(&id, conn);
    tracing::info!(probe = %id, "control socket closed");
}

/// Whether the probe reports `node` offering `control`.
fn node_offers(app: &App, probe: &str, node: &str, control: &str) -> bool {
    app.with_store(|s| {
        s.probes().get(probe).is_some_and(|p| {
            TopologyKind::ALL.into_iter().any(|k| {
                p.report
                    .topologies
                    .get(k)
                    .nodes
                    .get(node)
                    .and_then(|n| n.controls.as_ref())
                    .is_some_and(|c| c.ids.contains(control))
            })
        })
    })
}

/// `POST /api/control/{probe}/{node}/{control}` with optional string
/// arguments as a JSON object (`{"timeout": "5"}`, `{"tail": "100"}`).
pub(super) async fn control(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((probe, node, control)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let args: BTreeMap<String, String> = if body.iter().all(u8::is_ascii_whitespace) {
        BTreeMap::new()
    } else {
        match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("control arguments must be a JSON object of strings: {e}"),
                )
            }
        }
    };
    let config = app.config();
    let mut entry = AuditEntry {
        ts_ms: crate::now_ms(),
        who: caller.name.clone(),
        role: caller.role.map(|r| r.as_str().to_string()).unwrap_or_default(),
        action: "control".into(),
        probe: probe.clone(),
        node: node.clone(),
        control: control.clone(),
        args: args.clone(),
        ok: false,
        error: None,
    };
    let controls = &app.inner.controls;
    let refuse = |status: StatusCode, why: String, mut entry: AuditEntry| {
        entry.error = Some(why.clone());
        controls.record(entry);
        error(status, why)
    };
    if caller.role.is_none_or(|r| r < super::Role::Operator) {
        let role = entry.role.clone();
        return refuse(
            StatusCode::FORBIDDEN,
            format!("a {role} token may not run controls"),
            entry,
        );
    }
    if config.read_only {
        return refuse(StatusCode::FORBIDDEN, "the app is read-only".into(), entry);
    }
    if config.allowed_controls.as_ref().is_some_and(|a| !a.contains(&control)) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("control `{control}` is not allowed here"),
            entry,
        );
    }
    let offered = controls
        .probes
        .lock()
        .get(&probe)
        .map(|p| p.controls.contains(&control));
    match offered {
        // A probe nobody has heard of is not there (404); one that reports
        // but has no control socket open right now is unavailable (503).
        None if !app.inner.store.read().probes().contains_key(&probe) => {
            return refuse(StatusCode::NOT_FOUND, format!("no probe `{probe}`"), entry);
        }
        None => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("probe `{probe}` has no control socket"),
                entry,
            )
        }
        Some(false) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("probe `{probe}` does not run `{control}`"),
                entry,
            )
        }
        Some(true) => {}
    }
    if !node_offers(&app, &probe, &node, &control) {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("probe `{probe}` reports no node `{node}` offering `{control}`"),
            entry,
        );
    }
    let id = controls.next.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    controls.pending.lock().insert(id, (probe.clone(), tx));
    let sent = match controls.sender(&probe) {
        Some(s) => s
            .send(ToProbe::Control {
                id,
                node: node.clone(),
                control: control.clone(),
                args,
            })
            .await
            .is_ok(),
        None => false,
    };
    app.inner.counters.controls.fetch_add(1, Ordering::Relaxed);
    // `Ok(None)`: the probe went away; `Err`: it did not answer in time.
    let answer = if sent {
        tokio::time::timeout(config.control_timeout, rx).await.map(Result::ok)
    } else {
        Ok(None)
    };
    controls.pending.lock().remove(&id);
    match answer {
        Ok(Some(FromProbe::Result {
            ok, error: why, pipe, ..
        })) => {
            entry.ok = ok;
            entry.error.clone_from(&why);
            controls.record(entry);
            let status = if ok { StatusCode::OK } else { StatusCode::BAD_GATEWAY };
            let mut body = json!({ "ok": ok, "probe": probe, "node": node, "control": control });
            if let Some(w) = why {
                body["error"] = json!(w);
            }
            if let Some(p) = pipe {
                body["pipe"] = json!(p);
                body["pipe_url"] = json!(format!("/api/pipe/{p}"));
            }
            (status, Json(body)).into_response()
        }
        Ok(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("probe `{probe}` went away before answering"),
            entry,
        ),
        Err(_) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            format!("probe `{probe}` did not answer within {:?}", config.control_timeout),
            entry,
        ),
    }
}

/// `GET /api/pipe/{pipe}`: the caller's end of a logs or exec pipe.
/// Output arrives as binary frames; binary or text frames are input, and
/// a text frame `{"type":"resize","width":W,"height":H}` resizes a TTY.
pub(super) async fn pipe_socket(State(app): State<App>, Path(pipe): Path<String>, ws: WebSocketUpgrade) -> Response {
    let taken = {
        let mut pipes = app.inner.controls.pipes.lock();
        match pipes.get_mut(&pipe) {
            None => return error(StatusCode::NOT_FOUND, format!("no pipe `{pipe}`")),
            Some(p) => p.rx.take().map(|rx| (p.probe.clone(), rx)),
        }
    };
    let Some((probe, rx)) = taken else {
        return error(StatusCode::CONFLICT, format!("pipe `{pipe}` is attached already"));
    };
    ws.on_upgrade(move |socket| run_pipe(app, pipe, probe, rx, socket))
}

async fn run_pipe(app: App, pipe: String, probe: String, mut rx: mpsc::Receiver<PipeEvent>, socket: WebSocket) {
    let controls = &app.inner.controls;
    let (mut sink, mut stream) = socket.split();
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(PipeEvent::Data(bytes)) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(PipeEvent::Closed(why)) => {
                    if let Some(w) = why {
                        let _ = sink.send(Message::Text(json!({"error": w}).to_string().into())).await;
                    }
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                None => break,
            },
            msg = stream.next() => {
                let to_probe = match msg {
                    Some(Ok(Message::Binary(b))) => ToProbe::PipeInput { pipe: pipe.clone(), data: b64.encode(b) },
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<serde_json::Value>(&t) {
                        Ok(v) if v["type"] == "resize" => ToProbe::PipeResize {
                            pipe: pipe.clone(),
                            width: v["width"].as_u64().and_then(|w| u16::try_from(w).ok()).unwrap_or(80),
                            height: v["height"].as_u64().and_then(|h| u16::try_from(h).ok()).unwrap_or(24),
                        },
                        _ => ToProbe::PipeInput { pipe: pipe.clone(), data: b64.encode(t.as_bytes()) },
                    },
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                match controls.sender(&probe) {
                    Some(s) => { let _ = s.send(to_probe).await; }
                    None => break,
                }
            }
        }
    }
    if let Some(s) = controls.sender(&probe) {
        let _ = s.send(ToProbe::PipeClose { pipe: pipe.clone() }).await;
    }
    controls.pipes.lock().remove(&pipe);
}

/// `GET /api/audit?limit=`: the latest audit entries, newest last.
pub(super) async fn audit(State(app): State<App>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let ring = app.inner.controls.audit.lock();
    let entries: Vec<&AuditEntry> = ring.iter().skip(ring.len().saturating_sub(limit)).collect();
    Json(json!({ "entries": entries })).into_response()
}
