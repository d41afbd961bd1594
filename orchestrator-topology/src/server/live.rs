//! `GET /api/topology/{view}/ws`: a view kept current over a WebSocket.
//! The first message is a reset with every node; after each store change
//! the client gets `{add, update, remove}` (nothing when nothing in its
//! view changed). `t=` (ms) sets the least time between two messages.
//!
//! A client that does not take a message within
//! [`AppConfig::ws_send_timeout`](super::AppConfig::ws_send_timeout) is
//! disconnected: a client that stops reading would otherwise hold its last
//! render and an unsent diff for as long as it stays connected. It gets a
//! reset when it comes back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{error, App};
use crate::views::{Filters, Rendered, View};

/// Views rendered for a socket wait at least this long apart by default.
const MIN_INTERVAL: Duration = Duration::from_millis(20);

/// Nodes per message: a browser parses and applies one in a few
/// milliseconds (see [`crate::diff::Diff::chunks`]).
const CHUNK: usize = 2_000;

pub(super) async fn view_socket(
    State(app): State<App>,
    Path(view): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let view: View = match view.parse() {
        Ok(v) => v,
        Err(e) => return crate::TopologyError::into_response(e),
    };
    let filters = match super::api::filters(&app, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let interval = match q.get("t").map(|t| t.parse::<u64>()) {
        None => MIN_INTERVAL,
        Some(Ok(ms)) => Duration::from_millis(ms).max(MIN_INTERVAL),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "t= is milliseconds"),
    };
    ws.on_upgrade(move |socket| run(app, view, filters, interval, socket))
}

async fn run(app: App, view: View, filters: Filters, interval: Duration, mut socket: WebSocket) {
    let mut changes = app.inner.generation.subscribe();
    let mut prev: Option<Arc<Rendered>> = None;
    loop {
        // At most one render per interval, counted from the last one's
        // start: a change after a quiet spell goes out at once.
        let started = tokio::time::Instant::now();
        changes.mark_unchanged();
        let next = app.view_filtered(view, filters.clone()).await;
        if prev.as_ref().is_none_or(|p| p.generation != next.generation) {
            let before = prev.clone();
            let after = next.clone();
            let texts = tokio::task::spawn_blocking(move || {
                let d = crate::diff::diff(before.as_deref(), &after);
                if d.is_empty() {
                    return Vec::new();
                }
                d.chunks(CHUNK)
                    .iter()
                    .map(|c| serde_json::to_string(c).unwrap_or_default())
                    .collect()
            })
            .await
            .unwrap_or_default();
            let limit = app.inner.config.ws_send_timeout;
            for text in texts {
                match tokio::time::timeout(limit, socket.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::info!(view = view.id(), "a live view's client fell behind; disconnected");
                        return;
                    }
                }
            }
            prev = Some(next);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
        }
        tokio::time::sleep_until(started + interval).await;
    }
}
