//! What the example binaries share.

// The allocator's hot path clones and frees many small objects; mimalloc
// keeps that cheap (the benchmarks in benches/ use it too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
