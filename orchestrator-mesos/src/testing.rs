//! Fixtures for tests and benchmarks of code built on this crate (behind the
//! `test-util` feature): a master served on loopback, an agent with the
//! process containerizer, and a framework's event stream read as a v1
//! client reads it. Everything is real: HTTP over 127.0.0.1, real processes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::{Allocator, Containerizer, Resources};
use tokio::task::JoinHandle;

use crate::api::recordio::Records;
use crate::api::scheduler::{Event, EventType};
use crate::{Agent, AgentConfig, Cgroups, DrfAllocator, Master, MasterConfig, MasterHandle, ProcessContainerizer};

/// A master serving its HTTP API on a free loopback port, with its loops
/// running; both stop when this is dropped.
pub struct LoopbackMaster<A: Allocator + 'static = DrfAllocator> {
    /// The running master.
    pub handle: MasterHandle<A>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    tasks: [JoinHandle<()>; 2],
}

impl<A: Allocator + 'static> std::fmt::Debug for LoopbackMaster<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackMaster")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LoopbackMaster {
    /// A DRF master allocating every `allocation_interval`, heartbeating
    /// frameworks every `heartbeat`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(allocation_interval: Duration, heartbeat: Duration) -> Self {
        Self::with_allocator(DrfAllocator::default(), allocation_interval, heartbeat).await
    }
}

impl<A: Allocator + 'static> LoopbackMaster<A> {
    /// A master around `allocator`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn with_allocator(allocator: A, allocation_interval: Duration, heartbeat: Duration) -> Self {
        let config = MasterConfig {
            heartbeat_interval: heartbeat,
            ..MasterConfig::default()
        };
        let handle = MasterHandle::new(Master::new(config, allocator), allocation_interval);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the master");
        let addr = listener.local_addr().expect("a bound address").to_string();
        let router = handle.router();
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let loops = tokio::spawn(handle.clone().run_loops());
        Self {
            base: format!("http://{addr}"),
            addr,
            handle,
            tasks: [serve, loops],
        }
    }
}

impl<A: Allocator + 'static> Drop for LoopbackMaster<A> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// An agent of `master_base` offering `resources`, running tasks as
/// processes under `work` (with cgroups under `cgroup_root` where the host
/// allows), retrying updates every 300 ms, heartbeating every 500 ms and
/// keeping ended tasks' sandboxes without disk headroom; the agent and its
/// run loop.
///
/// # Panics
/// When the work directory cannot be made.
pub fn process_agent(master_base: &str, work: &Path, resources: &str, cgroup_root: &str) -> (Agent, JoinHandle<()>) {
    process_agent_with(master_base, work, resources, cgroup_root, |_| {})
}

/// [`process_agent`], its settings changed by `configure` first.
///
/// # Panics
/// When the work directory cannot be made.
pub fn process_agent_with(
    master_base: &str,
    work: &Path,
    resources: &str,
    cgroup_root: &str,
    configure: impl FnOnce(&mut AgentConfig),
) -> (Agent, JoinHandle<()>) {
    let cgroups = Cgroups::detect(cgroup_root, false);
    let containerizer: Arc<dyn Containerizer> =
        Arc::new(ProcessContainerizer::with_cgroups(work, cgroups).expect("a process containerizer"));
    let resources: Resources = resources.parse().expect("valid agent resources");
    let mut config = AgentConfig::new(master_base, resources, work);
    config.update_retry = Duration::from_millis(300);
    config.heartbeat_interval = Duration::from_millis(500);
    // Tests read ended tasks' sandboxes: no headroom, so a test machine's
    // disk that is 90 % full does not make them go at the next check.
    config.gc_disk_headroom = 0.0;
    configure(&mut config);
    let agent = Agent::new(config, vec![containerizer]);
    let run = tokio::spawn({
        let agent = agent.clone();
        async move {
            let _ = agent.run().await;
        }
    });
    (agent, run)
}

/// A subscription's events as a v1 framework reads them off the wire.
pub struct EventStream {
    records: Records<std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>>,
    /// How long [`next`](Self::next) waits for a record.
    pub timeout: Duration,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// The events of a `SUBSCRIBE` response.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            records: Records::new(Box::pin(response.bytes_stream()), 64 << 20),
            timeout: Duration::from_secs(20),
        }
    }

    /// The next record, raw.
    ///
    /// # Panics
    /// When none comes within the timeout, or the stream ends or breaks.
    pub async fn record(&mut self) -> Vec<u8> {
        tokio::time::timeout(self.timeout, self.records.next())
            .await
            .unwrap_or_else(|_| panic!("a record within {:?}", self.timeout))
            .expect("the stream open")
            .expect("valid RecordIO")
    }

    /// The next event other than a heartbeat.
    ///
    /// # Panics
    /// As [`record`](Self::record), or when the record is not an event.
    pub async fn event(&mut self) -> Event {
        loop {
            let e: Event = serde_json::from_slice(&self.record().await).expect("event JSON");
            if e.kind != EventType::Heartbeat {
                return e;
            }
        }
    }

    /// The next event of `kind`, skipping others.
    ///
    /// # Panics
    /// As [`event`](Self::event).
    pub async fn next_of(&mut self, kind: EventType) -> Event {
        loop {
            let e = self.event().await;
            if e.kind == kind {
                return e;
            }
        }
    }
}

/// A framework speaking the v1 scheduler API over HTTP, as tests drive
/// one: its subscription's stream id and framework id, and its calls.
#[derive(Debug)]
pub struct SchedulerClient {
    /// The master's base URL.
    pub base: String,
    /// The framework id the master gave.
    pub id: String,
    http: reqwest::Client,
    stream_id: String,
}

impl SchedulerClient {
    /// Subscribes a framework named `name` (user root, failover timeout
    /// 60 s); returns it and its events after `SUBSCRIBED`.
    ///
    /// # Panics
    /// When the master does not answer with a subscription.
    pub async fn subscribe(base: &str, name: &str) -> (Self, EventStream) {
        let http = reqwest::Client::new();
        let body = serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info":
            {"user": "root", "name": name, "failover_timeout": 60}}});
        let resp = http
            .post(format!("{base}/api/v1/scheduler"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the master answers SUBSCRIBE");
        let stream_id = resp.headers()["Mesos-Stream-Id"]
            .to_str()
            .expect("a stream id")
            .to_string();
        let mut events = EventStream::new(resp);
        let sub = events.next_of(EventType::Subscribed).await;
        let id = sub.subscribed.expect("SUBSCRIBED").framework_id.to_string();
        let client = SchedulerClient {
            base: base.into(),
            id,
            http,
            stream_id,
        };
        (client, events)
    }

    /// Sends a call; returns the HTTP status.
    ///
    /// # Panics
    /// When the master cannot be reached.
    pub async fn call(&self, body: serde_json::Value) -> u16 {
        self.http
            .post(format!("{}/api/v1/scheduler", self.base))
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(body.to_string())
            .send()
            .await
            .expect("the master answers")
            .status()
            .as_u16()
    }

    /// Acknowledges an update (one without a uuid needs none): the status.
    pub async fn acknowledge(&self, status: &orchestrator_core::TaskStatus) -> u16 {
        let (Some(uuid), Some(agent)) = (&status.uuid, &status.agent_id) else {
            return 202;
        };
        self.call(
            serde_json::json!({"framework_id": {"value": self.id}, "type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": {"value": agent.as_str()}, "task_id": {"value": status.task_id.as_str()}, "uuid": uuid}}),
        )
        .await
    }
}
