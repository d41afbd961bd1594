//! High availability: several schedulers share one store and one
//! [`LeaderElection`]; the leader runs the framework and serves the API,
//! the others stand by and proxy API requests to the leader, as Marathon
//! does. A standby that wins the election recovers apps, instances and the
//! framework id from the store and resubscribes with that id, so the
//! master hands it the running tasks (nothing relaunched, nothing lost).
//!
//! `DELETE /v2/leader` makes the leader abdicate: it stops its framework,
//! resigns, and joins the election again at the end of the line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_core::StateStore;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::framework::{Marathon, MarathonConfig};
use super::http::{self as api, ApiInfo};
use crate::api::client::MasterClient;
use crate::zk::LeaderElection;

/// Marks a request a standby already proxied, so two standbys that both
/// believe the other leads cannot bounce it forever.
const VIA: HeaderName = HeaderName::from_static("x-marathon-via");

struct Shared {
    election: LeaderElection,
    info: ApiInfo,
    /// The leader's API while this scheduler leads.
    leading: RwLock<Option<Router>>,
    elected: AtomicBool,
    abdicate: Notify,
    proxy: reqwest::Client,
}

impl Shared {
    fn router(&self) -> Option<Router> {
        self.leading.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_router(&self, router: Option<Router>) {
        self.elected.store(router.is_some(), Ordering::SeqCst);
        *self.leading.write().unwrap_or_else(PoisonError::into_inner) = router;
    }
}

/// The pieces a scheduler starts with each time it is elected.
pub struct Candidate {
    /// Where the master is.
    pub client: Arc<dyn MasterClient>,
    /// The store every candidate shares (a `ZkStore`).
    pub store: Arc<dyn StateStore>,
    /// The framework's settings.
    pub config: MarathonConfig,
    /// What `/v2/info` tells; `http_address` is also this candidate's
    /// address in the election, where standbys proxy to.
    pub info: ApiInfo,
}

/// Joins `election` and returns the API router (serve it right away: a
/// standby answers by proxying) and the campaign loop's handle; aborting
/// the handle stops the framework and resigns.
pub fn serve_elected(election: LeaderElection, candidate: Candidate) -> (Router, JoinHandle<()>) {
    let shared = Arc::new(Shared {
        election,
        info: candidate.info.clone(),
        leading: RwLock::new(None),
        elected: AtomicBool::new(false),
        abdicate: Notify::new(),
        proxy: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
    });
    let campaign = tokio::spawn(campaign(shared.clone(), candidate));
    let router = Router::new()
        .route("/v2/leader", get(leader).delete(abdicate))
        .route("/ping", get(|| async { "pong" }))
        .fallback(forward)
        .with_state(shared);
    (router, campaign)
}

async fn campaign(shared: Arc<Shared>, c: Candidate) {
    let me = c.info.http_address.clone();
    loop {
        let mut leadership = match shared.election.campaign(&me).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(address = %me, node = leadership.path(), "elected leader");
        match Marathon::start(c.client.clone(), c.store.clone(), c.config.clone()).await {
            Ok((marathon, mut run)) => {
                shared.set_router(Some(api::router(marathon, c.info.clone())));
                tokio::select! {
                    () = leadership.lost() => tracing::warn!("leadership lost"),
                    () = shared.abdicate.notified() => tracing::info!("abdicating"),
                    _ = &mut run => tracing::warn!("the framework stopped"),
                }
                shared.set_router(None);
                run.abort();
                let _ = run.await;
            }
            Err(e) => tracing::warn!(error = %e, "could not start as leader"),
        }
        leadership.resign();
        // Let the next candidate in line take over before joining again.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

async fn leader(State(shared): State<Arc<Shared>>) -> Response {
    if shared.elected.load(Ordering::SeqCst) {
        return Json(json!({ "leader": shared.info.http_address })).into_response();
    }
    match shared.election.leader().await {
        Ok(Some(addr)) => Json(json!({ "leader": addr })).into_response(),
        Ok(None) => message(StatusCode::NOT_FOUND, "There is no leader"),
        Err(e) => message(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn abdicate(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    if shared.elected.load(Ordering::SeqCst) {
        shared.abdicate.notify_one();
        return message(StatusCode::OK, "Leadership abdicated");
    }
    forward(State(shared), req).await
}

/// Serves the request as the leader, or proxies it to the leader.
async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    if let Some(router) = shared.router() {
        return match router.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
    }
    if req.headers().contains_key(&VIA) {
        return message(StatusCode::SERVICE_UNAVAILABLE, "Leader is changing; try again");
    }
    let leader = match shared.election.leader().await {
        Ok(Some(addr)) if addr != shared.info.http_address => addr,
        Ok(_) => {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Could not determine the current leader",
            )
        }
        Err(e) => return message(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    proxy(&shared, &leader, req).await
}

async fn proxy(shared: &Shared, leader: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = shared
        .proxy
        .request(parts.method, format!("http://{leader}{path}"))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONNECTION && name != header::TRANSFER_ENCODING {
            out = out.header(name, value);
        }
    }
    if let Ok(me) = HeaderValue::from_str(&shared.info.http_address) {
        out = out.header(VIA, me);
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            return message(
                StatusCode::BAD_GATEWAY,
                &format!("Could not reach the leader at {leader}: {e}"),
            )
        }
    };
    let mut answer = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if name != header::CONNECTION && name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            answer = answer.header(name, value);
        }
    }
    answer
        .body(Body::from_stream(resp.bytes_stream()))
        .unwrap_or_else(|e| message(StatusCode::BAD_GATEWAY, &e.to_string()))
}
