//! What the example binaries share.

use std::time::Duration;

// The allocator's hot path clones and frees many small objects; mimalloc
// keeps that cheap (the benchmarks in benches/ use it too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs to standard error, at `RUST_LOG`'s levels (`info` without it).
#[allow(dead_code)] // Not every binary logs.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Turns transparent huge pages off for this process (a probe's setting).
///
/// The probe builds and frees a report's worth of small objects every
/// cycle. With huge pages the allocator's fresh memory arrives in 2 MB
/// pages that the kernel zeroes whole on first touch — a fifth of the
/// probe's CPU at a 1 s interval, measured with `perf` — and resident
/// memory counts them whole. A kernel without the setting is no error:
/// the probe then just costs more.
#[allow(dead_code)] // Only the probe binaries use it.
pub fn no_huge_pages() {
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// A `/metrics` answer from an OpenMetrics `body`, in the format the
/// scraper's `Accept` asks for (OpenMetrics for Prometheus, the classic
/// text format for curl and older tools).
#[allow(dead_code)] // Only the binaries that serve /metrics themselves.
pub fn metrics_response(headers: &axum::http::HeaderMap, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = orchestrator::core::exposition::negotiate(accept, body);
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, for graceful shutdown.
///
/// # Panics
/// When the signal handlers cannot be installed (no runtime signal driver).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Parses `500ms`, `1s`, `2m`, `3hrs`, `1weeks` (Mesos's units; a bare
/// number is seconds) for duration flags.
///
/// # Errors
/// A message for clap when the text is not a positive duration.
#[allow(dead_code)] // Not every example has a duration flag.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.trim().len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 1s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" | "secs" => n,
        "m" | "mins" => n * 60.0,
        "h" | "hrs" => n * 3600.0,
        "d" | "days" => n * 86_400.0,
        "w" | "weeks" => n * 604_800.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`")),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{s}` must be positive"))
}

/// Splits `zk://HOST:PORT[,HOST:PORT]/path` into the server list and the
/// path (`default_root` when the URL has none).
#[allow(dead_code)] // Only the examples with a `--zk` flag use it.
pub fn parse_zk_url(url: &str, default_root: &str) -> (String, String) {
    let rest = url.strip_prefix("zk://").unwrap_or(url);
    match rest.split_once('/') {
        Some((servers, root)) if !root.is_empty() => (servers.to_string(), format!("/{}", root.trim_end_matches('/'))),
        Some((servers, _)) => (servers.to_string(), default_root.to_string()),
        None => (rest.to_string(), default_root.to_string()),
    }
}
