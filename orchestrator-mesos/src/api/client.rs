//! [`MasterClient`]: what a framework needs from a master, so the same
//! scheduler code runs embedded next to the master (the all-in-one) and as
//! a separate process speaking the v1 HTTP API.

use std::sync::Mutex;

use async_trait::async_trait;
use orchestrator_core::FrameworkId;
use tokio::sync::mpsc;

use super::recordio::Records;
use super::scheduler::{Call, Event, Subscribed};
use crate::zk::MasterDetector;
use crate::{Error, Result};

/// Events buffered between the master and a slow framework.
const EVENTS: usize = 1 << 16;
/// The largest event accepted from a master (an OFFERS event can be big).
const MAX_EVENT: usize = 64 << 20;

/// A framework's subscription: the `SUBSCRIBED` answer and the events after it.
#[derive(Debug)]
pub struct Subscription {
    /// The framework's id (new, or the one it re-subscribed with).
    pub framework_id: FrameworkId,
    /// The `SUBSCRIBED` event's body.
    pub subscribed: Subscribed,
    /// Every later event, in order; closed when the subscription ends.
    pub events: mpsc::Receiver<Event>,
}

/// What a framework needs from a master.
#[async_trait]
pub trait MasterClient: Send + Sync {
    /// Sends a `SUBSCRIBE` call and waits for `SUBSCRIBED`.
    ///
    /// # Errors
    /// When the master refuses the call or cannot be reached.
    async fn subscribe(&self, call: Call) -> Result<Subscription>;

    /// Sends any other call of a subscribed framework.
    ///
    /// # Errors
    /// When the master refuses the call or cannot be reached.
    async fn call(&self, call: Call) -> Result<()>;

    /// Resolves when another master may lead than the one last subscribed
    /// to, so a framework re-subscribes at once instead of after its retry
    /// pause. Never resolves for a client of one fixed master.
    async fn leader_changed(&self) {
        std::future::pending::<()>().await;
    }
}

pub(crate) async fn first_subscribed(events: &mut mpsc::Receiver<Event>) -> Result<Subscribed> {
    match events.recv().await {
        Some(Event {
            subscribed: Some(s), ..
        }) => Ok(s),
        Some(other) => Err(Error::Transport {
            message: format!("expected SUBSCRIBED first, got {:?}", other.kind),
        }),
        None => Err(Error::Transport {
            message: "the subscription ended before SUBSCRIBED".into(),
        }),
    }
}

/// The client of a master in another process, over the v1 HTTP API: a
/// fixed address, or the leader found on ZooKeeper
/// ([`following`](Self::following)). A standby's 307 is followed either way.
#[derive(Debug)]
pub struct HttpMasterClient {
    url: String,
    detector: Option<MasterDetector>,
    /// The leader the last subscription went to (when following).
    subscribed_to: Mutex<Option<String>>,
    http: reqwest::Client,
    stream_id: Mutex<Option<String>>,
}

impl HttpMasterClient {
    /// A client of the master at `address` (`host:port` or an `http://` URL).
    pub fn new(address: &str) -> Self {
        let base = if address.starts_with("http://") || address.starts_with("https://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("http://{address}")
        };
        HttpMasterClient {
            url: format!("{base}/api/v1/scheduler"),
            detector: None,
            subscribed_to: Mutex::new(None),
            http: reqwest::Client::new(),
            stream_id: Mutex::new(None),
        }
    }

    /// A client of whichever master leads under `detector`'s path: every
    /// subscription goes to the leader of the moment, so a framework that
    /// re-subscribes after its stream ended finds the new one.
    pub fn following(detector: MasterDetector) -> Self {
        HttpMasterClient {
            url: String::new(),
            detector: Some(detector),
            subscribed_to: Mutex::new(None),
            http: reqwest::Client::new(),
            stream_id: Mutex::new(None),
        }
    }

    fn endpoint(&self) -> Result<String> {
        match &self.detector {
            None => Ok(self.url.clone()),
            Some(d) => d
                .leader_url()
                .map(|base| format!("{base}/api/v1/scheduler"))
                .ok_or_else(|| transport("finding the master", "no master is leading")),
        }
    }
}

fn transport(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Transport {
        message: format!("{what}: {e}"),
    }
}

async fn refused(response: reqwest::Response) -> Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Error::bad_request(format!("master answered {status}: {body}"))
}

#[async_trait]
impl MasterClient for HttpMasterClient {
    async fn subscribe(&self, call: Call) -> Result<Subscription> {
        let endpoint = self.endpoint()?;
        *self
            .subscribed_to
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(endpoint.clone());
        let response = self
            .http
            .post(endpoint)
            .json(&call)
            .send()
            .await
            .map_err(|e| transport("subscribe", e))?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let stream_id = response
            .headers()
            .get("Mesos-Stream-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        *self.stream_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stream_id;
        let (tx, mut events) = mpsc::channel(EVENTS);
        tokio::spawn(async move {
            let mut records = Records::new(response.bytes_stream(), MAX_EVENT);
            while let Some(Ok(record)) = records.next().await {
                let Ok(event) = serde_json::from_slice::<Event>(&record) else {
                    return;
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        let subscribed = first_subscribed(&mut events).await?;
        Ok(Subscription {
            framework_id: subscribed.framework_id.clone(),
            subscribed,
            events,
        })
    }

    async fn call(&self, call: Call) -> Result<()> {
        let stream_id = self
            .stream_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        let response = self
            .http
            .post(self.endpoint()?)
            .header("Mesos-Stream-Id", stream_id)
            .json(&call)
            .send()
            .await
            .map_err(|e| transport("call", e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(refused(response).await)
        }
    }

    async fn leader_changed(&self) {
        let Some(detector) = &self.detector else {
            return std::future::pending().await;
        };
        let last = self
            .subscribed_to
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut leader = detector.subscribe();
        let _ = leader
            .wait_for(|l| {
                let now = l.as_ref().map(|m| format!("{}/api/v1/scheduler", m.url()));
                now.is_some() && now != last
            })
            .await;
    }
}
