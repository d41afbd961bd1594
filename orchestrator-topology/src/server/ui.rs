//! The web UI: TypeScript sources in the workspace's `ui/`, bundled by this
//! crate's build script and embedded in the binary, so the app server
//! serves it at `/` (same origin as the API) with no second server and no
//! build step for the user. Where Node.js is missing the build embeds a
//! page that says how to get the UI instead.
//!
//! The assets are public: they hold no data, and the page must load to
//! show its login form. Everything it shows comes from the API.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error;

// `ASSETS: &[(name, content type, bytes)]`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// Whether the embedded UI is the real one (not the how-to-build page).
pub fn built() -> bool {
    UI_BUILT
}

/// Where scripts, styles, workers and sockets may come from: this origin only.
const CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'";

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, CSP),
            ],
            *body,
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no UI file `{name}`")),
    }
}

/// `GET /`: the page.
pub(super) async fn index() -> Response {
    asset("index.html")
}

/// `GET /ui/{file}`: its scripts, styles and fonts.
pub(super) async fn file(Path(name): Path<String>) -> Response {
    asset(&name)
}
