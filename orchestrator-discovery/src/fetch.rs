//! What the followers share: a bounded JSON read over HTTP, and waiting
//! on an event stream for the next burst of events.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// The largest answer read from a master or a scheduler (a 100,000-task
/// state is about 60 MB).
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// Events that come together are acted on once: this long after the first.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// `GET url` as `T`, refusing answers over [`MAX_BODY_BYTES`]; `what`
/// names the expected answer in errors.
pub(crate) async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T, String> {
    let mut response = client.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("{url}: over {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not {what}: {e}"))
}

/// Waits for the next event of `stream` and the burst it starts; `true`
/// when the stream ended instead. Never returns without a stream.
pub(crate) async fn next_burst(stream: &mut Option<reqwest::Response>) -> bool {
    let Some(s) = stream.as_mut() else {
        return std::future::pending().await;
    };
    match s.chunk().await {
        Ok(Some(_)) => {
            tokio::time::sleep(DEBOUNCE).await;
            while let Ok(next) = tokio::time::timeout(Duration::ZERO, s.chunk()).await {
                if !matches!(next, Ok(Some(_))) {
                    return true;
                }
            }
            false
        }
        _ => true,
    }
}
