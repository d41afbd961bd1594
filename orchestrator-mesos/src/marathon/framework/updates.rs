//! Status updates, handled in batches: every update of a run of events is
//! applied to the scheduler under one lock; then the instances are written
//! to the store and the updates acknowledged, many at once. As Marathon
//! does, an update is acknowledged only after what it changed is stored,
//! so a scheduler that fails over never has to learn it again.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::StreamExt;
use orchestrator_core::{FrameworkId, TaskId, TaskState, TaskStatus};
use serde_json::json;

use super::{lock, Marathon};
use crate::marathon::scheduler::Instance;

/// Store writes and acknowledgements in flight at once.
pub(super) const IN_FLIGHT: usize = 64;

/// What an update asks of the store.
enum Write {
    Save(Box<Instance>),
    Delete(TaskId),
}

impl Marathon {
    pub(super) async fn on_updates(&self, fw: &FrameworkId, statuses: Vec<TaskStatus>) {
        let now = Instant::now();
        let applied: Vec<(TaskStatus, Option<Instance>)> = {
            let mut s = lock(&self.inner.sched);
            statuses
                .into_iter()
                .map(|status| {
                    let known = s.update(&status, now);
                    (status, known)
                })
                .collect()
        };
        // The last write per instance wins: two updates of one task in a
        // batch must not race each other into the store.
        let mut writes: HashMap<TaskId, Write> = HashMap::new();
        let mut wake = false;
        let mut kills = Vec::new();
        let mut events = Vec::new();
        for (status, known) in &applied {
            match known {
                Some(i) => {
                    let write = if status.state.is_terminal() {
                        tracing::info!(task = %status.task_id, state = ?status.state, reason = ?status.reason,
                            message = status.message.as_deref().unwrap_or(""), "instance ended");
                        Write::Delete(i.task_id.clone())
                    } else {
                        Write::Save(Box::new(i.clone()))
                    };
                    writes.insert(i.task_id.clone(), write);
                    events.push(
                        json!({"appId": i.app_id, "taskId": status.task_id.as_str(), "taskStatus": status.state,
                            "slaveId": i.agent_id.as_str(), "host": i.hostname, "ports": i.ports, "version": i.version}),
                    );
                }
                None if !status.state.is_terminal() => {
                    // A task this scheduler does not know (an earlier life's): kill it.
                    if let Some(agent) = &status.agent_id {
                        tracing::info!(task = %status.task_id, %agent, "a task this scheduler does not know: killing it");
                        kills.push(json!({"framework_id": fw, "type": "KILL",
                            "kill": {"task_id": status.task_id, "agent_id": agent}}));
                    }
                }
                None => {}
            }
            wake |= status.state.is_terminal() || status.state == TaskState::Running;
        }
        let store = &self.inner.store;
        futures_util::stream::iter(writes.into_values())
            .for_each_concurrent(IN_FLIGHT, |w| async move {
                match w {
                    Write::Save(i) => store.save_instance(&i).await,
                    Write::Delete(t) => store.delete_instance(&t).await,
                }
            })
            .await;
        for e in events {
            self.emit("status_update_event", e);
        }
        let acks = applied.iter().filter_map(|(status, _)| {
            let (uuid, agent) = (status.uuid.as_ref()?, status.agent_id.as_ref()?);
            Some(json!({"framework_id": fw, "type": "ACKNOWLEDGE",
                "acknowledge": {"agent_id": agent, "task_id": status.task_id, "uuid": uuid}}))
        });
        futures_util::stream::iter(kills.into_iter().chain(acks))
            .for_each_concurrent(IN_FLIGHT, |call| self.send(call))
            .await;
        if wake {
            self.inner.wake.notify_one();
        }
    }
}
