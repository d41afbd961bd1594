//! Following the scheduler as marathon-lb does: its apps with their tasks
//! are read at start, again soon after any event on its `/v2/events`
//! stream, and every `resync` in any case.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::services::{services_of, Balance, Services};
use super::status::SyncStatus;
use crate::fetch::{get_json, next_burst};

/// Publishes the services of the scheduler at `marathon` into `services`
/// until the returned task is aborted or every receiver is gone; every
/// read and failure is noted in `status`.
pub fn follow_scheduler(
    marathon: String,
    default_balance: Balance,
    resync: Duration,
    services: watch::Sender<Arc<Services>>,
    status: Arc<SyncStatus>,
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
                        status.read();
                        last_failure.clear();
                        let next = services_of(&apps, default_balance);
                        if **services.borrow() != next && services.send(Arc::new(next)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        status.failed(&e);
                        if e != last_failure {
                            tracing::warn!(error = %e, "could not read the scheduler's apps; keeping the last ones");
                            last_failure = e;
                        }
                    }
                }
                if services.is_closed() {
                    return;
                }
                if events.is_none() {
                    tokio::time::sleep(Duration::from_millis(500).min(resync)).await;
                    break;
                }
                // An event burst, or `resync` of quiet: read the apps again;
                // the stream's end: read once more, then subscribe again.
                let ended = tokio::select! {
                    ended = next_burst(&mut events) => ended,
                    () = tokio::time::sleep(resync) => false,
                };
                if ended {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    })
}

async fn read_apps(client: &reqwest::Client, base: &str) -> Result<serde_json::Value, String> {
    get_json(client, &format!("{base}/v2/apps?embed=apps.tasks"), "Marathon's apps").await
}
