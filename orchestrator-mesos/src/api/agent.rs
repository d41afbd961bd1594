//! The agents' channel to the master, under `/api/v1/agents`: what an
//! agent sends (registration, re-registration, status updates) and what the
//! master tells it on its RecordIO command stream. Both sides use these
//! types, so they live in the API layer and neither imports the other.

use orchestrator_core::{AgentId, AgentInfo, FrameworkId, FrameworkInfo, TaskId, TaskInfo, TaskState, TaskStatus};
use serde::{Deserialize, Serialize};

/// What the master tells an agent, RecordIO-framed JSON on its command stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentCommand {
    /// Run a task.
    Launch {
        /// The framework.
        framework: Box<FrameworkInfo>,
        /// The task.
        task: Box<TaskInfo>,
    },
    /// Kill a task.
    Kill {
        /// The framework.
        framework_id: FrameworkId,
        /// The task.
        task_id: TaskId,
        /// Grace period override.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_seconds: Option<f64>,
    },
    /// The framework was torn down: kill its tasks, and drop its status
    /// updates (Mesos's `ShutdownFrameworkMessage`).
    ShutdownFramework {
        /// The framework.
        framework_id: FrameworkId,
    },
    /// An update was acknowledged: stop retrying it.
    Acknowledged {
        /// The framework.
        framework_id: FrameworkId,
        /// The task.
        task_id: TaskId,
        /// The update.
        uuid: String,
    },
}

/// An agent's status update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentUpdate {
    /// The task's framework.
    pub framework_id: FrameworkId,
    /// The status.
    pub status: TaskStatus,
}

/// The most updates an agent sends in one batch, and a master takes.
pub const MAX_UPDATE_BATCH: usize = 1_000;

/// Status updates of many tasks in one request (`POST
/// /api/v1/agents/{id}/updates`); at most one per task, the oldest it has
/// not had acknowledged, so a task's updates stay in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentUpdates {
    /// The updates, applied in this order.
    pub updates: Vec<AgentUpdate>,
}

/// The master's answer to [`AgentUpdates`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentUpdatesAnswer {
    /// Updates not taken (`task_id`, `message`); sent again at their retry.
    #[serde(default)]
    pub refused: Vec<serde_json::Value>,
    /// Uuids of updates held back because their framework's stream is
    /// full; the agent sends them again shortly.
    #[serde(default)]
    pub deferred: Vec<String>,
}

/// An agent's first registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterAgent {
    /// What the agent is and offers.
    pub agent_info: AgentInfo,
}

/// A restarted agent's re-registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReregisterAgent {
    /// Its id from before.
    pub agent_id: AgentId,
    /// What it is now.
    pub agent_info: AgentInfo,
    /// The tasks it still runs.
    #[serde(default)]
    pub tasks: Vec<ReregisteredTask>,
}

/// A task a re-registering agent still runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReregisteredTask {
    /// Its framework.
    pub framework_id: FrameworkId,
    /// The task.
    pub task: TaskInfo,
    /// Its state on the agent.
    pub state: TaskState,
    /// Its framework's info, so a master that failed over can recover a
    /// framework that has not re-subscribed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<FrameworkInfo>,
}
