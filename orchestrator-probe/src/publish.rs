//! Publishing reports to one or more topology apps.
//!
//! Each app has its own sender task and its own bounded queue, so a slow
//! or absent app never delays the others or the collection loop. While an
//! app is down its queue keeps the newest [`PublishConfig::buffer`]
//! reports; older ones are dropped and counted, and because a dropped
//! delta breaks the chain the app holds, the next report that app gets is
//! a full one. Retries back off exponentially with jitter, so a fleet of
//! probes does not hammer an app that comes back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::report::CONTENT_TYPE;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::apps::Endpoint;

/// How reports are sent.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// Bearer token for the apps (`Authorization: Bearer …`).
    pub token: Option<String>,
    /// Reports kept per app while it is unreachable.
    pub buffer: usize,
    /// First retry delay; doubles up to [`PublishConfig::max_backoff`].
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Longest wait for one POST.
    pub timeout: Duration,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            token: None,
            buffer: 64,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of one app's publisher.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Reports the app accepted.
    pub sent: AtomicU64,
    /// Reports dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Failed attempts (connection refused, timeouts, 5xx answers).
    pub errors: AtomicU64,
    /// Reports the app refused as invalid (4xx): not retried.
    pub rejected: AtomicU64,
    /// Bytes of accepted reports.
    pub bytes: AtomicU64,
}

struct Queue {
    items: Mutex<VecDeque<Arc<Vec<u8>>>>,
    ready: Notify,
    needs_full: AtomicBool,
    stats: Arc<PublishStats>,
}

/// The publisher of one app (one replica of it, when its name resolves
/// to several addresses: see [`crate::apps`]).
pub struct AppPublisher {
    endpoint: Endpoint,
    url: String,
    queue: Arc<Queue>,
    task: tokio::task::JoinHandle<()>,
    buffer: usize,
}

impl std::fmt::Debug for AppPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppPublisher")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Drop for AppPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small xorshift for retry jitter: no cryptographic need, no dependency.
fn jitter(seed: &mut u64, max: Duration) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(*seed % ms)
}

impl AppPublisher {
    /// Starts a sender for the app at `base_url` (`http://host:4040`).
    pub fn start(base_url: &str, http: reqwest::Client, config: PublishConfig) -> AppPublisher {
        let endpoint = Endpoint {
            url: base_url.to_string(),
            host: String::new(),
            address: None,
        };
        AppPublisher::start_at(endpoint, http, config)
    }

    /// Starts a sender for one endpoint of an app: requests go to its
    /// address when it has one (still naming the app's host), with a
    /// client of their own; otherwise through `http`.
    pub fn start_at(endpoint: Endpoint, http: reqwest::Client, config: PublishConfig) -> AppPublisher {
        let http = match endpoint.address {
            Some(address) => reqwest::Client::builder()
                .resolve(&endpoint.host, address)
                .build()
                .unwrap_or_else(|e| {
                    tracing::warn!(%endpoint, error = %e, "no client pinned to the address; resolving by name");
                    http
                }),
            None => http,
        };
        let url = format!("{}/api/v1/reports", endpoint.url.trim_end_matches('/'));
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            needs_full: AtomicBool::new(true),
            stats: Arc::default(),
        });
        let task = tokio::spawn(send_loop(url.clone(), http, config.clone(), queue.clone()));
        AppPublisher {
            endpoint,
            url,
            queue,
            task,
            buffer: config.buffer.max(1),
        }
    }

    /// The app (and the address) this publisher sends to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Where reports go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the next report for this app must be full (at start, after
    /// a drop, or when the app asked for one).
    pub fn needs_full(&self) -> bool {
        self.queue.needs_full.load(Ordering::SeqCst)
    }

    /// Queues an encoded report; `full` says whether it is a full one.
    pub fn enqueue(&self, encoded: Arc<Vec<u8>>, full: bool) {
        if full {
            self.queue.needs_full.store(false, Ordering::SeqCst);
        }
        let mut items = self.queue.items.lock();
        if full {
            // A full report supersedes everything queued before it.
            items.clear();
        }
        items.push_back(encoded);
        let mut dropped = false;
        while items.len() > self.buffer {
            items.pop_front();
            self.queue.stats.dropped.fetch_add(1, Ordering::Relaxed);
            dropped = true;
        }
        drop(items);
        if dropped {
            self.queue.needs_full.store(true, Ordering::SeqCst);
        }
        self.queue.ready.notify_one();
    }

    /// Reports waiting.
    pub fn queued(&self) -> usize {
        self.queue.items.lock().len()
    }

    /// This app's counters.
    pub fn stats(&self) -> &PublishStats {
        &self.queue.stats
    }

    /// This app's counters, to read from elsewhere (a metrics endpoint).
    pub fn shared_stats(&self) -> Arc<PublishStats> {
        self.queue.stats.clone()
    }
}

async fn send_loop(url: String, http: reqwest::Client, config: PublishConfig, queue: Arc<Queue>) {
    let mut backoff = config.min_backoff;
    let mut seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    loop {
        let next = queue.items.lock().front().cloned();
        let Some(body) = next else {
            queue.ready.notified().await;
            continue;
        };
        let mut req = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .timeout(config.timeout)
            .body(body.as_ref().clone());
        if let Some(t) = &config.token {
            req = req.bearer_auth(t);
        }
        let outcome = req.send().await;
        let pop = |queue: &Queue| {
            let mut items = queue.items.lock();
            if items.front().is_some_and(|f| Arc::ptr_eq(f, &body)) {
                items.pop_front();
            }
        };
        match outcome {
            Ok(r) if r.status().is_success() => {
                pop(&queue);
                queue.stats.sent.fetch_add(1, Ordering::Relaxed);
                queue.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                backoff = config.min_backoff;
            }
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                // The app lost our chain (it restarted): send a full report next.
                pop(&queue);
                queue.needs_full.store(true, Ordering::SeqCst);
            }
            Ok(r) if r.status().is_client_error() && r.status() != reqwest::StatusCode::TOO_MANY_REQUESTS => {
                pop(&queue);
                queue.stats.rejected.fetch_add(1, Ordering::Relaxed);
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::warn!(%url, %status, answer = %text.chars().take(200).collect::<String>(), "report refused");
            }
            other => {
                queue.stats.errors.fetch_add(1, Ordering::Relaxed);
                match other {
                    Ok(r) => tracing::debug!(%url, status = %r.status(), "app busy, retrying"),
                    Err(e) => tracing::debug!(%url, error = %e, "app unreachable, retrying"),
                }
                let wait = backoff / 2 + jitter(&mut seed, backoff / 2 + Duration::from_millis(1));
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound() {
        let mut seed = 42;
        for _ in 0..1000 {
            assert!(jitter(&mut seed, Duration::from_millis(100)) < Duration::from_millis(100));
        }
    }
}
