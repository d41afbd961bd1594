//! Container controls: start, stop, restart, pause, unpause, remove, logs
//! and exec, requested by a topology app over the WebSocket this probe
//! keeps open to it (see [`orchestrator_core::report::control`]).
//!
//! [`Executor`] runs requests against the Docker engine and streams pipes;
//! [`connect`] keeps one app's control socket up, reconnecting with
//! backoff. Controls can be switched off entirely or limited to an
//! allow-list; a refused control is answered, never silently dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{SinkExt, StreamExt};
use orchestrator_core::report::control::{FromProbe, ToProbe};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::apps::Endpoint;
use crate::docker::CONTROLS;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Which controls run.
#[derive(Clone, Debug, Default)]
pub struct ControlPolicy {
    /// No control runs at all (`--no-controls`).
    pub disabled: bool,
    /// When set, only these control ids run.
    pub allow: Option<HashSet<String>>,
}

impl ControlPolicy {
    /// Whether `control` may run.
    pub fn allows(&self, control: &str) -> bool {
        !self.disabled && self.allow.as_ref().is_none_or(|a| a.contains(control))
    }

    /// The control ids this policy lets run.
    pub fn offered(&self) -> Vec<String> {
        CONTROLS
            .iter()
            .map(|(id, ..)| (*id).to_string())
            .filter(|id| self.allows(id))
            .collect()
    }
}

/// Open pipes: where their input goes, and how to end them.
type Pipes = Arc<Mutex<HashMap<String, (mpsc::Sender<PipeIn>, tokio::task::AbortHandle)>>>;

/// A pipe a control opened: its output waits for `go`, sent once the
/// control's result (which names the pipe) is on its way, so the app never
/// gets bytes of a pipe it has not heard of (its task could otherwise run
/// first on another thread).
struct Opened {
    pipe: String,
    go: oneshot::Sender<()>,
}

enum PipeIn {
    Data(Vec<u8>),
    Resize(u16, u16),
}

/// Runs controls and pipes against one Docker engine.
pub struct Executor {
    docker: Docker,
    policy: ControlPolicy,
    pipes: Pipes,
    next_pipe: AtomicU64,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        for (_, (_, task)) in self.pipes.lock().drain() {
            task.abort();
        }
    }
}

fn arg<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    args.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

impl Executor {
    /// An executor on `docker` under `policy`.
    pub fn new(docker: Docker, policy: ControlPolicy) -> Executor {
        Executor {
            docker,
            policy,
            pipes: Arc::default(),
            next_pipe: AtomicU64::new(1),
        }
    }

    /// The controls offered.
    pub fn offered(&self) -> Vec<String> {
        self.policy.offered()
    }

    /// Pipes open now.
    pub fn open_pipes(&self) -> usize {
        self.pipes.lock().len()
    }

    /// Handles one message from the app; answers and pipe output go to `out`.
    pub async fn handle(&self, msg: ToProbe, out: &mpsc::Sender<FromProbe>) {
        match msg {
            ToProbe::Control {
                id,
                node,
                control,
                args,
            } => {
                let result = self.control(&node, &control, &args, out).await;
                let (reply, go) = match result {
                    Ok(opened) => {
                        let (pipe, go) = opened.map(|o| (o.pipe, o.go)).unzip();
                        let reply = FromProbe::Result {
                            id,
                            ok: true,
                            error: None,
                            pipe,
                        };
                        (reply, go)
                    }
                    Err(error) => {
                        let reply = FromProbe::Result {
                            id,
                            ok: false,
                            error: Some(error),
                            pipe: None,
                        };
                        (reply, None)
                    }
                };
                let _ = out.send(reply).await;
                // Only now may the pipe's output follow its name.
                if let Some(go) = go {
                    let _ = go.send(());
                }
            }
            ToProbe::PipeInput { pipe, data } => {
                let Ok(bytes) = B64.decode(data.as_bytes()) else {
                    return;
                };
                let tx = self.pipes.lock().get(&pipe).map(|(tx, _)| tx.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(PipeIn::Data(bytes)).await;
                }
            }
            ToProbe::PipeResize { pipe, width, height } => {
                let tx = self.pipes.lock().get(&pipe).map(|(tx, _)| tx.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(PipeIn::Resize(width, height)).await;
                }
            }
            ToProbe::PipeClose { pipe } => {
                if let Some((_, task)) = self.pipes.lock().remove(&pipe) {
                    task.abort();
                    let _ = out.try_send(FromProbe::PipeClosed { pipe, error: None });
                }
            }
        }
    }

    /// Runs one control; `Ok(Some(pipe))` for logs and exec.
    async fn control(
        &self,
        node: &str,
        control: &str,
        args: &BTreeMap<String, String>,
        out: &mpsc::Sender<FromProbe>,
    ) -> Result<Option<Opened>, String> {
        if !CONTROLS.iter().any(|(id, ..)| *id == control) {
            return Err(format!("unknown control {control:?}"));
        }
        if !self.policy.allows(control) {
            return Err(format!("control {control:?} is disabled on this probe"));
        }
        let timeout = || -> Result<i32, String> {
            arg(args, "timeout").map_or(Ok(10), |t| {
                t.parse::<i32>()
                    .ok()
                    .filter(|t| (0..=3600).contains(t))
                    .ok_or_else(|| format!("timeout must be 0–3600 seconds, not {t:?}"))
            })
        };
        let d = &self.docker;
        let done = |r: Result<(), bollard::errors::Error>| r.map(|()| None).map_err(|e| daemon_error(&e));
        match control {
            "docker_start_container" => done(d.start_container(node, None).await),
            "docker_stop_container" => {
                let opts = StopContainerOptionsBuilder::default().t(timeout()?).build();
                done(d.stop_container(node, Some(opts)).await)
            }
            "docker_restart_container" => {
                let opts = RestartContainerOptionsBuilder::default().t(timeout()?).build();
                done(d.restart_container(node, Some(opts)).await)
            }
            "docker_pause_container" => done(d.pause_container(node).await),
            "docker_unpause_container" => done(d.unpause_container(node).await),
            "docker_remove_container" => {
                let force = arg(args, "force") == Some("true");
                let opts = RemoveContainerOptionsBuilder::default().force(force).build();
                done(d.remove_container(node, Some(opts)).await)
            }
            "docker_logs" => self.logs(node, args, out).await.map(Some),
            "docker_exec_container" => self.exec(node, args, out).await.map(Some),
            _ => Err(format!("unknown control {control:?}")),
        }
    }

    fn pipe_id(&self) -> String {
        format!(
            "pipe-{}-{}",
            std::process::id(),
            self.next_pipe.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn logs(
        &self,
        node: &str,
        args: &BTreeMap<String, String>,
        out: &mpsc::Sender<FromProbe>,
    ) -> Result<Opened, String> {
        // Fail now, in the control's result, for a container that is not there.
        self.docker
            .inspect_container(node, None)
            .await
            .map_err(|e| daemon_error(&e))?;
        let tail = arg(args, "tail").unwrap_or("100");
        if tail != "all" && tail.parse::<u32>().is_err() {
            return Err(format!("tail must be a number or \"all\", not {tail:?}"));
        }
        let follow = arg(args, "follow") == Some("true");
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(tail)
            .build();
        let mut stream = self.docker.logs(node, Some(opts));
        let pipe = self.pipe_id();
        let (tx, mut rx) = mpsc::channel::<PipeIn>(16);
        let (go, gate) = oneshot::channel();
        let (out, name, pipes) = (out.clone(), pipe.clone(), self.pipes.clone());
        let task = tokio::spawn(async move {
            let _ = gate.await;
            let error = loop {
                tokio::select! {
                    item = stream.next() => if let ControlFlow::Break(end) = forward(&out, &name, item).await {
                        break end;
                    },
                    // Logs take no input; keep draining so senders never block.
                    m = rx.recv() => if m.is_none() { break None },
                }
            };
            pipes.lock().remove(&name);
            let _ = out.send(FromProbe::PipeClosed { pipe: name, error }).await;
        });
        self.pipes.lock().insert(pipe.clone(), (tx, task.abort_handle()));
        Ok(Opened { pipe, go })
    }

    async fn exec(
        &self,
        node: &str,
        args: &BTreeMap<String, String>,
        out: &mpsc::Sender<FromProbe>,
    ) -> Result<Opened, String> {
        let cmd: Vec<String> = arg(args, "cmd")
            .unwrap_or("/bin/sh")
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        let tty = arg(args, "tty") != Some("false");
        let created = self
            .docker
            .create_exec(
                node,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    cmd: Some(cmd),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| daemon_error(&e))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| daemon_error(&e))?;
        let StartExecResults::Attached { mut output, mut input } = started else {
            return Err("the exec did not attach".into());
        };
        let pipe = self.pipe_id();
        let (tx, mut rx) = mpsc::channel::<PipeIn>(64);
        let (go, gate) = oneshot::channel();
        let (out, name, pipes, docker, exec_id) = (
            out.clone(),
            pipe.clone(),
            self.pipes.clone(),
            self.docker.clone(),
            created.id,
        );
        let task = tokio::spawn(async move {
            let _ = gate.await;
            let error = loop {
                tokio::select! {
                    item = output.next() => if let ControlFlow::Break(end) = forward(&out, &name, item).await {
                        break end;
                    },
                    m = rx.recv() => match m {
                        Some(PipeIn::Data(bytes)) => {
                            if let Err(e) = input.write_all(&bytes).await {
                                break Some(format!("writing to the exec: {e}"));
                            }
                            let _ = input.flush().await;
                        }
                        Some(PipeIn::Resize(width, height)) => {
                            let _ = docker.resize_exec(&exec_id, ResizeExecOptions { width, height }).await;
                        }
                        None => break None,
                    },
                }
            };
            pipes.lock().remove(&name);
            let _ = out.send(FromProbe::PipeClosed { pipe: name, error }).await;
        });
        self.pipes.lock().insert(pipe.clone(), (tx, task.abort_handle()));
        Ok(Opened { pipe, go })
    }
}

/// Sends one chunk of a pipe's output to the app. `Break` ends the pipe:
/// with the daemon's error, or `None` when the stream or the app is done.
async fn forward(
    out: &mpsc::Sender<FromProbe>,
    pipe: &str,
    item: Option<Result<bollard::container::LogOutput, bollard::errors::Error>>,
) -> ControlFlow<Option<String>> {
    match item {
        Some(Ok(chunk)) => {
            let data = B64.encode(chunk.into_bytes());
            let sent = out.send(FromProbe::PipeOutput {
                pipe: pipe.to_string(),
                data,
            });
            if sent.await.is_err() {
                ControlFlow::Break(None)
            } else {
                ControlFlow::Continue(())
            }
        }
        Some(Err(e)) => ControlFlow::Break(Some(daemon_error(&e))),
        None => ControlFlow::Break(None),
    }
}

/// The daemon's own message for an error (`No such container: …`).
fn daemon_error(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// One control socket per app endpoint (see [`crate::apps`]), kept in
/// step as the endpoints change: a replica that goes away loses its
/// socket, a new one gets one.
pub(crate) struct Sockets {
    executor: Arc<Executor>,
    token: Option<String>,
    probe_id: String,
    hostname: String,
    stopped: tokio::sync::watch::Receiver<bool>,
    open: HashMap<Endpoint, tokio::task::JoinHandle<()>>,
}

impl Sockets {
    /// Sockets run by `executor` until `stopped` turns true.
    pub(crate) fn new(
        executor: Arc<Executor>,
        token: Option<String>,
        probe_id: &str,
        hostname: &str,
        stopped: tokio::sync::watch::Receiver<bool>,
    ) -> Sockets {
        Sockets {
            executor,
            token,
            probe_id: probe_id.to_string(),
            hostname: hostname.to_string(),
            stopped,
            open: HashMap::new(),
        }
    }

    /// Opens a socket to each of `endpoints` not yet connected and closes
    /// those to endpoints no longer there.
    pub(crate) fn set(&mut self, endpoints: &[Endpoint]) {
        self.open.retain(|e, task| {
            let keep = endpoints.contains(e);
            if !keep {
                task.abort();
            }
            keep
        });
        for e in endpoints {
            if self.open.contains_key(e) {
                continue;
            }
            let (endpoint, token) = (e.clone(), self.token.clone());
            let (id, host, executor) = (self.probe_id.clone(), self.hostname.clone(), self.executor.clone());
            let mut stopped = self.stopped.clone();
            let task = tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                connect(
                    &endpoint.url,
                    endpoint.address,
                    token.as_deref(),
                    &id,
                    &host,
                    executor,
                    stop,
                )
                .await;
            });
            self.open.insert(e.clone(), task);
        }
    }

    /// Waits for every socket to close (after `stopped` turned true).
    pub(crate) async fn closed(self) {
        for (_, task) in self.open {
            let _ = task.await;
        }
    }
}

/// Keeps a control socket to the app at `app_url` (`http://host:4040`)
/// open until `shutdown` resolves, handing requests to `executor`.
/// Reconnects with backoff (0.5 s doubling to 30 s) when the app goes away.
/// With an `address` (one replica of an app whose name resolves to
/// several: see [`crate::apps`]) the socket goes there, still naming the
/// app's host.
pub async fn connect(
    app_url: &str,
    address: Option<SocketAddr>,
    token: Option<&str>,
    probe_id: &str,
    hostname: &str,
    executor: Arc<Executor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let base = app_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base.strip_prefix("http://").unwrap_or(base))
    };
    let url = format!("{ws}/api/v1/ws?probe_id={probe_id}");
    let mut backoff = Duration::from_millis(500);
    loop {
        let attempt = session(&url, address, token, probe_id, hostname, &executor);
        tokio::select! {
            () = &mut shutdown => return,
            r = attempt => {
                match r {
                    Ok(()) => backoff = Duration::from_millis(500),
                    Err(e) => tracing::debug!(%url, ?address, error = %e, "control socket failed"),
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn session(
    url: &str,
    address: Option<SocketAddr>,
    token: Option<&str>,
    probe_id: &str,
    hostname: &str,
    executor: &Arc<Executor>,
) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| "token is not a valid header value")?;
        request.headers_mut().insert("authorization", value);
    }
    let socket = match address {
        // A plain socket to the replica; the request still names the host.
        Some(a) if url.starts_with("ws://") => {
            let tcp = tokio::net::TcpStream::connect(a).await.map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
                .await
                .map_err(|e| e.to_string())?
                .0
        }
        _ => {
            tokio_tungstenite::connect_async(request)
                .await
                .map_err(|e| e.to_string())?
                .0
        }
    };
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<FromProbe>(256);
    let hello = FromProbe::Hello {
        probe_id: probe_id.to_string(),
        hostname: hostname.to_string(),
        controls: executor.offered(),
    };
    let _ = out_tx.send(hello).await;
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let Ok(text) = serde_json::to_string(&m) else { continue };
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    let result = loop {
        let Some(frame) = stream.next().await else {
            break Ok(());
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => break Err(e.to_string()),
        };
        match frame {
            Message::Text(text) => match serde_json::from_str::<ToProbe>(&text) {
                Ok(msg) => {
                    // Each request runs on its own task: a slow stop does
                    // not hold up a pipe's keystrokes.
                    let (executor, out) = (executor.clone(), out_tx.clone());
                    tokio::spawn(async move { executor.handle(msg, &out).await });
                }
                Err(e) => tracing::warn!(error = %e, "malformed control message ignored"),
            },
            Message::Close(_) => break Ok(()),
            _ => {}
        }
    };
    drop(out_tx);
    writer.abort();
    result
}
