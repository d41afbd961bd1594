//! What the agent keeps on disk, and how it comes back after a restart:
//! its id is checkpointed in `<work_dir>/agent.json` and its tasks in the
//! task journal (`journal.rs`: a line when a task is added, before its
//! container starts, and one when it ends); on start the containerizers
//! recover the containers they still run, the agent re-registers with its
//! old id and those tasks, and tasks that did not survive are reported
//! failed. Checkpoints of older releases (a list in `agent.json`, then a
//! file per task under `<work_dir>/tasks/`) are read and moved into the
//! journal.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use orchestrator_core::{AgentId, AgentInfo, ContainerId, FrameworkId, TaskId, TaskReason, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::journal::{CheckpointedTask, Entry};
use super::{Agent, Running};
use crate::api::agent::AgentUpdate;
use crate::api::agent::{ReregisterAgent, ReregisteredTask};
use crate::{Error, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    agent_id: Option<AgentId>,
    /// Tasks as the oldest releases kept them (read, never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tasks: Vec<CheckpointedTask>,
}

/// Writes a checkpoint through a temporary file and a rename. A failure is
/// logged, not returned: the task runs on, but a restarted agent will not
/// recover it, and the operator should know why.
fn write_atomically(path: &std::path::Path, value: &impl Serialize) {
    let tmp = path.with_extension("json.tmp");
    let written = serde_json::to_vec(value)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), error = %e, "cannot write a checkpoint: a restarted agent will not recover this");
    }
}

impl Agent {
    fn checkpoint_path(&self) -> PathBuf {
        self.inner.config.work_dir.join("agent.json")
    }

    /// Where releases before the journal kept each task.
    fn legacy_tasks_dir(&self) -> PathBuf {
        self.inner.config.work_dir.join("tasks")
    }

    /// Writes the agent's id, atomically (a crash mid-write leaves the
    /// previous checkpoint).
    pub(super) fn checkpoint(&self) {
        let cp = Checkpoint {
            agent_id: self.id(),
            tasks: Vec::new(),
        };
        write_atomically(&self.checkpoint_path(), &cp);
    }

    /// The checkpoint record of a task in the books.
    fn record(&self, books: &super::Books, key: &(FrameworkId, TaskId)) -> Option<CheckpointedTask> {
        books.tasks.get(key).map(|r| CheckpointedTask {
            framework: r.framework.clone(),
            task: r.task.clone(),
            container: r.container.clone(),
            containerizer: self.inner.containerizers[r.containerizer].name().to_string(),
            sandbox: r.sandbox.clone(),
        })
    }

    /// Records a task before its container starts.
    pub(super) fn checkpoint_task(&self, framework_id: &FrameworkId, task_id: &TaskId) {
        let mut journal = self.journal();
        let record = self.record(&self.books(), &(framework_id.clone(), task_id.clone()));
        if let Some(record) = record {
            self.journal_append(&mut journal, Entry::Add(Box::new(record)));
        }
    }

    /// Forgets a task that ended; rewrites the journal once it is mostly
    /// ended tasks.
    pub(super) fn forget_task(&self, framework_id: &FrameworkId, task_id: &TaskId) {
        let mut journal = self.journal();
        let removed = Entry::Remove {
            framework_id: framework_id.clone(),
            task_id: task_id.clone(),
        };
        self.journal_append(&mut journal, removed);
        let live = {
            let books = self.books();
            books.tasks.len() + books.updates.len()
        };
        if journal.wants_rewrite(live) {
            self.rewrite_journal(&mut journal);
        }
    }

    /// Replaces the journal by the tasks and unacknowledged updates in the books.
    fn rewrite_journal(&self, journal: &mut super::journal::Journal) {
        let (live, pending) = {
            let books = self.books();
            let live: Vec<CheckpointedTask> = books.tasks.keys().filter_map(|k| self.record(&books, k)).collect();
            (live, books.updates.pending())
        };
        if let Err(e) = journal.rewrite(live, pending) {
            tracing::warn!(path = %journal.path().display(), error = %e, "cannot rewrite the task journal; it keeps growing");
        }
    }

    /// Every task the work directory lists — the journal's, and those of
    /// the older layouts (`legacy`, and a file per task) — and the
    /// unacknowledged updates.
    fn checkpointed(&self, legacy: Vec<CheckpointedTask>) -> (Vec<CheckpointedTask>, Vec<AgentUpdate>) {
        let mut out = legacy;
        for fw in std::fs::read_dir(self.legacy_tasks_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(fw.path()).into_iter().flatten().flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "json") {
                    if let Some(t) = std::fs::read(&p)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<CheckpointedTask>(&b).ok())
                    {
                        out.push(t);
                    }
                }
            }
        }
        let journaled = self.journal().replay();
        out.extend(journaled.tasks);
        (out, journaled.updates)
    }

    /// Takes back what the checkpoint says this agent ran.
    pub(super) async fn recover(&self) {
        let Some(cp) = std::fs::read(self.checkpoint_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok())
        else {
            return;
        };
        *self.inner.agent_id.lock().unwrap_or_else(|p| p.into_inner()) = cp.agent_id;
        let (tasks, updates) = self.checkpointed(cp.tasks);
        let cp = Checkpoint { agent_id: None, tasks };
        // Updates the last run did not have acknowledged go out again,
        // before anything this run reports.
        let resent = updates.len();
        {
            let mut books = self.books();
            for u in updates {
                books.updates.push(u);
            }
        }
        if resent > 0 {
            tracing::info!(
                updates = resent,
                "status updates not acknowledged before the restart are sent again"
            );
        }
        self.inner.registered.store(false, Ordering::SeqCst);
        let mut lost = Vec::new();
        for (index, c) in self.inner.containerizers.iter().enumerate() {
            let mine: Vec<&CheckpointedTask> = cp.tasks.iter().filter(|t| t.containerizer == c.name()).collect();
            let known: Vec<ContainerId> = mine.iter().map(|t| t.container.clone()).collect();
            let recovered = c.recover(&known).await.unwrap_or_default();
            for t in mine {
                let Some(framework_id) = t.framework.id.clone() else {
                    continue;
                };
                if !recovered.contains(&t.container) {
                    lost.push((framework_id, t.task.task_id.clone()));
                    continue;
                }
                self.books().tasks.insert(
                    (framework_id.clone(), t.task.task_id.clone()),
                    Running {
                        container: t.container.clone(),
                        containerizer: index,
                        kill_grace: None,
                        task: t.task.clone(),
                        sandbox: t.sandbox.clone(),
                        state: TaskState::Running,
                        framework: t.framework.clone(),
                    },
                );
                let agent = self.clone();
                let (task_id, container) = (t.task.task_id.clone(), t.container.clone());
                self.spawn(async move { agent.watch(framework_id, task_id, container, index).await });
            }
        }
        for t in cp
            .tasks
            .iter()
            .filter(|t| !self.inner.containerizers.iter().any(|c| c.name() == t.containerizer))
        {
            if let Some(fw) = t.framework.id.clone() {
                lost.push((fw, t.task.task_id.clone()));
            }
        }
        self.checkpoint();
        // The journal now lists exactly the recovered tasks; the older
        // layouts' files are gone.
        self.rewrite_journal(&mut self.journal());
        let legacy = self.legacy_tasks_dir();
        if legacy.exists() {
            if let Err(e) = std::fs::remove_dir_all(&legacy) {
                tracing::warn!(path = %legacy.display(), error = %e, "cannot remove the older task checkpoints");
            }
        }
        for (framework_id, task_id) in lost {
            self.report(
                &framework_id,
                &task_id,
                TaskState::Failed,
                Some(TaskReason::ReasonAgentRestarted),
                "the task did not survive the agent's restart",
            );
        }
    }

    /// Registers again under the old id, with the tasks still running.
    pub(super) async fn reregister(&self, id: &AgentId) -> Result<()> {
        let c = &self.inner.config;
        let body = ReregisterAgent {
            agent_id: id.clone(),
            agent_info: AgentInfo {
                hostname: c.hostname.clone(),
                port: Some(c.port),
                resources: c.resources.clone(),
                attributes: c.attributes.clone(),
                id: Some(id.clone()),
            },
            tasks: self
                .books()
                .tasks
                .iter()
                .map(|((fw, _), r)| ReregisteredTask {
                    framework_id: fw.clone(),
                    task: r.task.clone(),
                    state: r.state,
                    framework: Some(r.framework.clone()),
                })
                .collect(),
        };
        let resp = self
            .inner
            .http
            .post(self.url("/api/v1/agents/reregister")?)
            .json(&json!(body))
            .send()
            .await
            .map_err(|e| Error::bad_request(format!("re-registering with the master: {e}")))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Error::bad_request(format!(
                "the master refused re-registration ({})",
                resp.status()
            )))
        }
    }
}
