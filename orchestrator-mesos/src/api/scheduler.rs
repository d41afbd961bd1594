//! The Mesos v1 scheduler API in its JSON encoding: the `Call`s a
//! framework POSTs to `/api/v1/scheduler` and the `Event`s streamed back.
//!
//! [`Call`] is the wire shape (a `type` plus one optional field per call,
//! as protobuf JSON has it); [`Call::validate`] turns it into a
//! [`SchedulerCall`] or a Mesos-style error message, so handlers never see
//! a half-filled call.

use std::time::Duration;

use orchestrator_core::{
    AgentId, ExecutorId, FrameworkId, FrameworkInfo, KillPolicy, Offer, OfferId, Resources, TaskId, TaskInfo,
    TaskStatus,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Mesos's default `refuse_seconds` when a framework gives none.
pub const DEFAULT_REFUSE: Duration = Duration::from_secs(5);

/// The longest filter honoured; Mesos caps them at a year as well.
pub const MAX_REFUSE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The kinds of scheduler calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum CallType {
    Subscribe,
    Teardown,
    Accept,
    Decline,
    AcceptInverseOffers,
    DeclineInverseOffers,
    Revive,
    Kill,
    Shutdown,
    Acknowledge,
    AcknowledgeOperationStatus,
    Reconcile,
    ReconcileOperations,
    Message,
    Request,
    Suppress,
    UpdateFramework,
    /// A type this master does not know.
    #[serde(other)]
    Unknown,
}

/// `SUBSCRIBE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Who subscribes (with `id` set when re-subscribing).
    pub framework_info: FrameworkInfo,
    /// Roles whose offers start suppressed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed_roles: Vec<String>,
}

/// Offer filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    /// How long the declined resources are not offered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_seconds: Option<f64>,
}

impl Filters {
    /// The filter duration as Mesos applies it: the default 5 s when absent
    /// or not a usable number, capped at a year.
    pub fn refuse(filters: Option<&Filters>) -> Duration {
        match filters.and_then(|f| f.refuse_seconds) {
            Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s.min(MAX_REFUSE.as_secs_f64())),
            Some(s) if s == f64::INFINITY => MAX_REFUSE,
            _ => DEFAULT_REFUSE,
        }
    }
}

/// `LAUNCH`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The tasks.
    pub task_infos: Vec<TaskInfo>,
}

/// A group of tasks launched together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskGroup {
    /// The tasks.
    pub tasks: Vec<TaskInfo>,
}

/// `LAUNCH_GROUP`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    /// The executor (kept as JSON; this master runs groups as plain tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<serde_json::Value>,
    /// The tasks.
    pub task_group: TaskGroup,
}

/// `RESERVE` / `UNRESERVE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The resources, with the reservation to add (or remove).
    pub resources: Resources,
}

/// The kinds of offer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum OperationType {
    Launch,
    LaunchGroup,
    Reserve,
    Unreserve,
    Create,
    Destroy,
    GrowVolume,
    ShrinkVolume,
    CreateDisk,
    DestroyDisk,
    /// A type this master does not know.
    #[serde(other)]
    Unknown,
}

/// One operation of an `ACCEPT`, wire shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Which operation.
    #[serde(rename = "type")]
    pub kind: OperationType,
    /// For `LAUNCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    /// For `LAUNCH_GROUP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
    /// For `RESERVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve: Option<Reservation>,
    /// For `UNRESERVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreserve: Option<Reservation>,
}

/// `ACCEPT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    /// Offers used (each at most once; what is left counts as declined).
    pub offer_ids: Vec<OfferId>,
    /// What to do with them.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Filter for what is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `DECLINE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    /// Offers declined.
    pub offer_ids: Vec<OfferId>,
    /// Filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `REVIVE` and `SUPPRESS`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Roles {
    /// The roles (all of the framework's when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// `KILL`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    /// The task.
    pub task_id: TaskId,
    /// Its agent, when the framework knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Overrides the task's grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

/// `SHUTDOWN`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shutdown {
    /// The executor.
    pub executor_id: ExecutorId,
    /// Its agent.
    pub agent_id: AgentId,
}

/// `ACKNOWLEDGE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledge {
    /// The agent of the update.
    pub agent_id: AgentId,
    /// The task of the update.
    pub task_id: TaskId,
    /// The update's uuid (base64, as received).
    pub uuid: String,
}

/// One task of a `RECONCILE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconcileTask {
    /// The task.
    pub task_id: TaskId,
    /// Its agent, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
}

/// `RECONCILE`: explicit with tasks, implicit without.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The tasks asked about.
    #[serde(default)]
    pub tasks: Vec<ReconcileTask>,
}

/// `MESSAGE` (call and event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The agent.
    pub agent_id: AgentId,
    /// The executor.
    pub executor_id: ExecutorId,
    /// Opaque data (base64).
    pub data: String,
}

/// A scheduler call as it arrives on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The caller (absent only on a first `SUBSCRIBE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    /// Which call.
    #[serde(rename = "type")]
    pub kind: CallType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub subscribe: Option<Subscribe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub accept: Option<Accept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub decline: Option<Decline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub revive: Option<Roles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub suppress: Option<Roles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub kill: Option<Kill>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub shutdown: Option<Shutdown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub acknowledge: Option<Acknowledge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub reconcile: Option<Reconcile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub message: Option<Message>,
}

/// An offer operation, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum OfferOperation {
    /// Launch tasks.
    Launch(Vec<TaskInfo>),
    /// Launch tasks together (run as plain tasks by this master).
    LaunchGroup(Vec<TaskInfo>),
    /// Reserve offered resources.
    Reserve(Resources),
    /// Unreserve offered resources.
    Unreserve(Resources),
}

/// A scheduler call, validated: every variant carries what it needs.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedulerCall {
    /// Register, or re-register after a failover.
    Subscribe(Box<Subscribe>),
    /// Unregister and kill all tasks.
    Teardown,
    /// Use offers.
    Accept {
        /// Offers used.
        offer_ids: Vec<OfferId>,
        /// Operations, in order.
        operations: Vec<OfferOperation>,
        /// Filter for the unused rest.
        refuse: Duration,
    },
    /// Decline offers.
    Decline {
        /// Offers declined.
        offer_ids: Vec<OfferId>,
        /// Filter.
        refuse: Duration,
    },
    /// Resume offers and clear filters.
    Revive(Vec<String>),
    /// Stop offers.
    Suppress(Vec<String>),
    /// Kill a task.
    Kill(Kill),
    /// Shut down an executor.
    Shutdown(Shutdown),
    /// Acknowledge a status update.
    Acknowledge(Acknowledge),
    /// Ask for task states.
    Reconcile(Vec<ReconcileTask>),
    /// Send data to an executor.
    Message(Message),
}

fn missing(field: &str) -> Error {
    Error::bad_request(format!(
        "Failed to validate scheduler::Call: Expecting '{field}' to be present"
    ))
}

impl Call {
    /// Parses a JSON body.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the JSON problem.
    pub fn from_json(body: &[u8]) -> Result<Call> {
        serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("Failed to parse body into Call: {e}")))
    }

    /// Checks that the call carries what its type needs.
    ///
    /// # Errors
    /// [`Error::BadRequest`] with a Mesos-style message.
    pub fn validate(self) -> Result<(Option<FrameworkId>, SchedulerCall)> {
        let framework_id = self.framework_id;
        if self.kind != CallType::Subscribe && framework_id.is_none() {
            return Err(missing("framework_id"));
        }
        let call = match self.kind {
            CallType::Subscribe => {
                let s = self.subscribe.ok_or_else(|| missing("subscribe"))?;
                if let (Some(outer), Some(inner)) = (&framework_id, &s.framework_info.id) {
                    if outer != inner {
                        return Err(Error::bad_request(
                            "Failed to validate scheduler::Call: 'framework_id' differs from \
                             'subscribe.framework_info.id'",
                        ));
                    }
                }
                SchedulerCall::Subscribe(Box::new(s))
            }
            CallType::Teardown => SchedulerCall::Teardown,
            CallType::Accept => {
                let a = self.accept.ok_or_else(|| missing("accept"))?;
                let mut operations = Vec::with_capacity(a.operations.len());
                for op in a.operations {
                    operations.push(match op.kind {
                        OperationType::Launch => {
                            OfferOperation::Launch(op.launch.ok_or_else(|| missing("launch"))?.task_infos)
                        }
                        OperationType::LaunchGroup => OfferOperation::LaunchGroup(
                            op.launch_group.ok_or_else(|| missing("launch_group"))?.task_group.tasks,
                        ),
                        OperationType::Reserve => {
                            OfferOperation::Reserve(op.reserve.ok_or_else(|| missing("reserve"))?.resources)
                        }
                        OperationType::Unreserve => {
                            OfferOperation::Unreserve(op.unreserve.ok_or_else(|| missing("unreserve"))?.resources)
                        }
                        other => {
                            return Err(Error::bad_request(format!(
                                "Unsupported offer operation {other:?}: this master supports LAUNCH, \
                                 LAUNCH_GROUP, RESERVE and UNRESERVE"
                            )))
                        }
                    });
                }
                SchedulerCall::Accept {
                    offer_ids: a.offer_ids,
                    operations,
                    refuse: Filters::refuse(a.filters.as_ref()),
                }
            }
            CallType::Decline => {
                let d = self.decline.ok_or_else(|| missing("decline"))?;
                SchedulerCall::Decline {
                    offer_ids: d.offer_ids,
                    refuse: Filters::refuse(d.filters.as_ref()),
                }
            }
            CallType::Revive => SchedulerCall::Revive(self.revive.unwrap_or_default().roles),
            CallType::Suppress => SchedulerCall::Suppress(self.suppress.unwrap_or_default().roles),
            CallType::Kill => SchedulerCall::Kill(self.kill.ok_or_else(|| missing("kill"))?),
            CallType::Shutdown => SchedulerCall::Shutdown(self.shutdown.ok_or_else(|| missing("shutdown"))?),
            CallType::Acknowledge => {
                SchedulerCall::Acknowledge(self.acknowledge.ok_or_else(|| missing("acknowledge"))?)
            }
            CallType::Reconcile => SchedulerCall::Reconcile(self.reconcile.unwrap_or_default().tasks),
            CallType::Message => SchedulerCall::Message(self.message.ok_or_else(|| missing("message"))?),
            other => {
                return Err(Error::bad_request(format!("Unsupported scheduler call type {other:?}")));
            }
        };
        Ok((framework_id, call))
    }
}

/// The kinds of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum EventType {
    Subscribed,
    Offers,
    Rescind,
    Update,
    Message,
    Failure,
    Error,
    Heartbeat,
    /// A type this client does not know.
    #[serde(other)]
    Unknown,
}

/// The master's own address, in `SUBSCRIBED`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterInfo {
    /// The master's id.
    pub id: String,
    /// IPv4 address as a number (network byte order), as Mesos sends it.
    pub ip: u32,
    /// Port.
    pub port: u32,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `SUBSCRIBED`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The framework's (possibly new) id.
    pub framework_id: FrameworkId,
    /// How often `HEARTBEAT`s come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
    /// Who answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

/// `OFFERS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offers {
    /// The offers.
    pub offers: Vec<Offer>,
}

/// `RESCIND`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rescind {
    /// The offer taken back.
    pub offer_id: OfferId,
}

/// `UPDATE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The new status (acknowledge it when it has a uuid).
    pub status: TaskStatus,
}

/// `FAILURE`: an agent or executor is gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// The executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    /// The executor's exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
}

/// `ERROR`: the subscription is over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Why.
    pub message: String,
}

/// An event on the subscription stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Which event.
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub subscribed: Option<Subscribed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub offers: Option<Offers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rescind: Option<Rescind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub update: Option<Update>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub failure: Option<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub error: Option<ErrorEvent>,
}

impl Event {
    fn of(kind: EventType) -> Self {
        Event {
            kind,
            subscribed: None,
            offers: None,
            rescind: None,
            update: None,
            message: None,
            failure: None,
            error: None,
        }
    }

    /// `SUBSCRIBED`.
    pub fn subscribed(subscribed: Subscribed) -> Self {
        Event {
            subscribed: Some(subscribed),
            ..Self::of(EventType::Subscribed)
        }
    }

    /// `OFFERS`.
    pub fn offers(offers: Vec<Offer>) -> Self {
        Event {
            offers: Some(Offers { offers }),
            ..Self::of(EventType::Offers)
        }
    }

    /// `RESCIND`.
    pub fn rescind(offer_id: OfferId) -> Self {
        Event {
            rescind: Some(Rescind { offer_id }),
            ..Self::of(EventType::Rescind)
        }
    }

    /// `UPDATE`.
    pub fn update(status: TaskStatus) -> Self {
        Event {
            update: Some(Update { status }),
            ..Self::of(EventType::Update)
        }
    }

    /// `MESSAGE`.
    pub fn message(message: Message) -> Self {
        Event {
            message: Some(message),
            ..Self::of(EventType::Message)
        }
    }

    /// `FAILURE`.
    pub fn failure(failure: Failure) -> Self {
        Event {
            failure: Some(failure),
            ..Self::of(EventType::Failure)
        }
    }

    /// `ERROR`.
    pub fn error(message: impl Into<String>) -> Self {
        Event {
            error: Some(ErrorEvent {
                message: message.into(),
            }),
            ..Self::of(EventType::Error)
        }
    }

    /// `HEARTBEAT`.
    pub fn heartbeat() -> Self {
        Self::of(EventType::Heartbeat)
    }

    /// The event as one RecordIO record of JSON.
    pub fn to_record(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        super::recordio::encode(&serde_json::to_vec(self).unwrap_or_default())
    }
}
