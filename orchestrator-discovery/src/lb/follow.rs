//! Following the scheduler as marathon-lb does: its apps with their tasks
//! are read at start, again soon after any event on its `/v2/events`
//! stream, and every `resync` in any case.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::services::{services_of, Balance, Services};

/// The largest apps answer accepted.
const MAX_APPS_BYTES: usize = 256 << 20;

/// Events that come together are read as one: the apps are read this
/// long after the first.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Publishes the services of the scheduler at `marathon` into `services`
/// until the returned task is aborted or every receiver is gone.
pub fn follow_scheduler(
    marathon: String,
    default_balance: Balance,
    resync: Duration,
    services: watch::Sender<Arc<Services>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let base = marathon.trim_end_matches('/').to_string();
        let mut last_failure = String::new();
        loop {
            // Subscribe first, so no change between the read and the stream is missed.
            let mut events = client
                .get(format!("{base}/v2/events"))
                .header("accept", "text/event-stream")
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            loop {
                match read_apps(&client, &base).await {
                    Ok(apps) => {
                        last_failure.clear();
                        let next = services_of(&apps, default_balance);
                        if **services.borrow() != next && services.send(Arc::new(next)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if e != last_failure {
                            tracing::warn!(error = %e, "could not read the scheduler's apps; keeping the last ones");
                            last_failure = e;
                        }
                    }
                }
                if services.is_closed() {
                    return;
                }
                let Some(stream) = events.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(500).min(resync)).await;
                    break;
                };
                match tokio::time::timeout(resync, stream.chunk()).await {
                    // An event: read the apps once the burst it starts has come.
                    Ok(Ok(Some(_))) => {
                        tokio::time::sleep(DEBOUNCE).await;
                        let mut ended = false;
                        while let Ok(next) = tokio::time::timeout(Duration::ZERO, stream.chunk()).await {
                            if !matches!(next, Ok(Some(_))) {
                                ended = true;
                                break;
                            }
                        }
                        if ended {
                            break;
                        }
                    }
                    // The stream ended: read once more, then subscribe again.
                    Ok(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                    // Quiet for `resync`: read anyway.
                    Err(_) => {}
                }
            }
        }
    })
}

async fn read_apps(client: &reqwest::Client, base: &str) -> Result<serde_json::Value, String> {
    let url = format!("{base}/v2/apps?embed=apps.tasks");
    let mut response = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_APPS_BYTES {
            return Err(format!("{url}: over {MAX_APPS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not Marathon's apps: {e}"))
}
