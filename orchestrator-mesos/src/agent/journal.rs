//! The agent's journal, `<work_dir>/tasks.journal`: one JSON line per
//! change — a task added before its container starts, removed when it
//! ends; a status update made, acknowledged — appended to one open file.
//! Status updates are checkpointed as Mesos's status update manager does,
//! so an agent that crashes with updates unacknowledged sends them again
//! after its restart: none is lost, and a task's stay in order.
//!
//! Why not a file per task (the earlier layout): creating and deleting tens
//! of thousands of small files is where a busy agent spent its time —
//! ext4 scans recently deleted inodes on every create, and at 10,000
//! launches that was 40 % of the whole platform's CPU. An append costs one
//! `write` and no inode. The journal is rewritten from the live tasks
//! (through a temporary file and a rename) once it holds more than twice
//! as many lines as there are tasks and pending updates, so it stays
//! proportional to what runs.
//!
//! Replay is idempotent (the last line about a task wins) and skips a torn
//! last line, so a crash mid-append loses at most the change being written,
//! as a crash mid-rename did before.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use orchestrator_core::{ContainerId, FrameworkId, FrameworkInfo, TaskId, TaskInfo};
use serde::{Deserialize, Serialize};

use crate::api::agent::AgentUpdate;

/// A task as checkpointed: enough to recover its container and re-register it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct CheckpointedTask {
    pub(super) framework: FrameworkInfo,
    pub(super) task: TaskInfo,
    pub(super) container: ContainerId,
    pub(super) containerizer: String,
    pub(super) sandbox: PathBuf,
}

impl CheckpointedTask {
    fn key(&self) -> Option<(FrameworkId, TaskId)> {
        Some((self.framework.id.clone()?, self.task.task_id.clone()))
    }
}

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Entry {
    /// A task is about to start.
    Add(Box<CheckpointedTask>),
    /// A task ended.
    Remove { framework_id: FrameworkId, task_id: TaskId },
    /// A status update was made; kept until acknowledged.
    Update(Box<AgentUpdate>),
    /// The master acknowledged an update.
    Ack { uuid: String },
    /// A framework was torn down: its updates are dropped.
    DropFramework { framework_id: FrameworkId },
}

/// What a journal says is live.
#[derive(Debug, Default)]
pub(super) struct Replayed {
    /// Tasks, in the order they were added.
    pub(super) tasks: Vec<CheckpointedTask>,
    /// Unacknowledged updates, in the order they were made.
    pub(super) updates: Vec<AgentUpdate>,
}

/// Lines the journal may hold before its size is weighed against the live
/// tasks (a small journal is never rewritten).
const COMPACT_FLOOR: usize = 1024;

/// The journal file, opened for appending on first use.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: Option<File>,
    /// Lines in the file (counted from the last rewrite or replay).
    lines: usize,
    /// The file ends in a torn line (found by replay): the next append
    /// starts on a line of its own.
    torn: bool,
    /// Acknowledgements not written yet (see [`note_ack`](Self::note_ack)).
    acks: Vec<u8>,
}

impl Journal {
    /// The journal at `path` (nothing is opened yet).
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            lines: 0,
            torn: false,
            acks: Vec::new(),
        }
    }

    /// Notes that update `uuid` was acknowledged; written with the next
    /// append or [`flush`](Self::flush), which must come before the task's
    /// next update is sent (else a restarted agent would send the older one
    /// again after it). Until then a crash only makes the restarted agent
    /// send the update once more (at least once), so it need not cost a
    /// write of its own.
    pub(super) fn note_ack(&mut self, uuid: String) {
        let entry = Entry::Ack { uuid };
        if serde_json::to_writer(&mut self.acks, &entry).is_ok() {
            self.acks.push(b'\n');
            self.lines += 1;
        }
    }

    /// Writes the noted acknowledgements.
    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        if self.acks.is_empty() {
            return Ok(());
        }
        self.append(&[])
    }

    /// Appends `entries` (after any noted acknowledgements) in one write.
    pub(super) fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.acks.len() + entries.len() * 512 + 1);
        if self.torn {
            buf.push(b'\n');
        }
        buf.append(&mut self.acks);
        for e in entries {
            serde_json::to_writer(&mut buf, e).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        if self.file.is_none() {
            self.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(&buf)?;
        self.torn = false;
        self.lines += entries.len();
        Ok(())
    }

    /// Whether the journal is long enough, next to `live` tasks, to be rewritten.
    pub(super) fn wants_rewrite(&self, live: usize) -> bool {
        self.lines > COMPACT_FLOOR && self.lines > 2 * live
    }

    /// Replaces the journal by one `Add` line per task in `live` and one
    /// `Update` line per update in `pending` (oldest first).
    pub(super) fn rewrite(&mut self, live: Vec<CheckpointedTask>, pending: Vec<AgentUpdate>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("journal.tmp");
        let mut buf = Vec::with_capacity((live.len() + pending.len()) * 512);
        let n = live.len() + pending.len();
        let entries = live
            .into_iter()
            .map(|t| Entry::Add(Box::new(t)))
            .chain(pending.into_iter().map(|u| Entry::Update(Box::new(u))));
        for e in entries {
            serde_json::to_writer(&mut buf, &e).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let written = std::fs::write(&tmp, &buf).and_then(|()| std::fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        // Appends go to the new file from now on; noted acknowledgements
        // are in what it lists.
        self.file = None;
        self.acks.clear();
        self.lines = n;
        self.torn = false;
        Ok(())
    }

    /// What the journal says is live; counts its lines for the next rewrite.
    pub(super) fn replay(&mut self) -> Replayed {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return Replayed::default();
        };
        let (live, lines) = replay(&bytes);
        self.lines = lines;
        self.torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
        live
    }

    /// Where the journal is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// What a journal's bytes say is live, and its line count. Lines that do
/// not parse (a torn last append) are skipped.
fn replay(bytes: &[u8]) -> (Replayed, usize) {
    let mut order: Vec<(FrameworkId, TaskId)> = Vec::new();
    let mut live: HashMap<(FrameworkId, TaskId), CheckpointedTask> = HashMap::new();
    let mut updates: Vec<Option<AgentUpdate>> = Vec::new();
    let mut by_uuid: HashMap<String, usize> = HashMap::new();
    let mut lines = 0;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        lines += 1;
        match serde_json::from_slice::<Entry>(line) {
            Ok(Entry::Add(t)) => {
                let Some(key) = t.key() else { continue };
                if live.insert(key.clone(), *t).is_none() {
                    order.push(key);
                }
            }
            Ok(Entry::Remove { framework_id, task_id }) => {
                live.remove(&(framework_id, task_id));
            }
            Ok(Entry::Update(u)) => {
                let Some(uuid) = u.status.uuid.clone() else { continue };
                by_uuid.insert(uuid, updates.len());
                updates.push(Some(*u));
            }
            Ok(Entry::Ack { uuid }) => {
                if let Some(at) = by_uuid.remove(&uuid) {
                    updates[at] = None;
                }
            }
            Ok(Entry::DropFramework { framework_id }) => {
                for u in &mut updates {
                    if u.as_ref().is_some_and(|u| u.framework_id == framework_id) {
                        *u = None;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "a line of the task journal does not parse; skipped"),
        }
    }
    let tasks = order.into_iter().filter_map(|k| live.remove(&k)).collect();
    let updates = updates.into_iter().flatten().collect();
    (Replayed { tasks, updates }, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(fw: &str, id: &str) -> CheckpointedTask {
        let framework: FrameworkInfo =
            serde_json::from_value(serde_json::json!({"id": {"value": fw}, "user": "u", "name": "f"})).unwrap();
        let task: TaskInfo = serde_json::from_value(serde_json::json!({
            "name": id, "task_id": {"value": id}, "agent_id": {"value": "a"}, "resources": []
        }))
        .unwrap();
        CheckpointedTask {
            framework,
            task,
            container: ContainerId::new(format!("{id}-c")).unwrap(),
            containerizer: "recording".into(),
            sandbox: PathBuf::from("/s"),
        }
    }

    /// A fresh directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("orch-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn update(task: &str, uuid: &str) -> AgentUpdate {
        let state = orchestrator_core::TaskState::Running;
        let mut status = orchestrator_core::TaskStatus::new(TaskId::new(task).unwrap(), state);
        status.uuid = Some(uuid.into());
        AgentUpdate {
            framework_id: FrameworkId::new("f").unwrap(),
            status,
        }
    }

    #[test]
    fn updates_stay_until_acknowledged_or_their_framework_is_dropped() {
        let dir = scratch("updates");
        let mut j = Journal::new(dir.join("tasks.journal"));
        let mut other = update("b", "u3");
        other.framework_id = FrameworkId::new("g").unwrap();
        let entries = [
            Entry::Update(Box::new(update("a", "u1"))),
            Entry::Update(Box::new(update("a", "u2"))),
            Entry::Update(Box::new(other.clone())),
            Entry::Ack { uuid: "u1".into() },
            Entry::Update(Box::new(update("c", "u4"))),
            Entry::DropFramework {
                framework_id: FrameworkId::new("f").unwrap(),
            },
            Entry::Update(Box::new(update("d", "u5"))),
        ];
        j.append(&entries).unwrap();
        let replayed = Journal::new(j.path().to_path_buf()).replay();
        assert_eq!(replayed.updates, [other.clone(), update("d", "u5")]);
        // A noted acknowledgement is written with the next flush.
        j.note_ack("u5".into());
        assert_eq!(Journal::new(j.path().to_path_buf()).replay().updates.len(), 2);
        j.flush().unwrap();
        assert_eq!(Journal::new(j.path().to_path_buf()).replay().updates, [other]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn remove(fw: &str, id: &str) -> Entry {
        Entry::Remove {
            framework_id: FrameworkId::new(fw).unwrap(),
            task_id: TaskId::new(id).unwrap(),
        }
    }

    #[test]
    fn replay_keeps_what_was_added_and_not_removed_and_skips_a_torn_line() {
        let dir = scratch("replay");
        let mut j = Journal::new(dir.join("tasks.journal"));
        j.append(&[
            Entry::Add(Box::new(task("f", "a"))),
            Entry::Add(Box::new(task("f", "b"))),
        ])
        .unwrap();
        j.append(&[remove("f", "a"), Entry::Add(Box::new(task("g", "a")))])
            .unwrap();
        // A crash in the middle of an append.
        let mut f = std::fs::OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(br#"{"add": {"framework": {"#).unwrap();
        let mut again = Journal::new(j.path().to_path_buf());
        let live = again.replay().tasks;
        let ids: Vec<_> = live
            .iter()
            .map(|t| format!("{}/{}", t.framework.id.as_ref().unwrap(), t.task.task_id))
            .collect();
        assert_eq!(ids, ["f/b", "g/a"]);
        assert_eq!(again.lines, 5);
        // Appending after the torn line starts a new line that parses.
        again.append(&[remove("f", "b")]).unwrap();
        let live = Journal::new(j.path().to_path_buf()).replay().tasks;
        assert_eq!(live.len(), 1, "the torn line swallowed the next one: {live:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rewrite_keeps_only_the_live_tasks() {
        let dir = scratch("rewrite");
        let mut j = Journal::new(dir.join("tasks.journal"));
        for i in 0..1500 {
            let id = format!("t{i}");
            j.append(&[Entry::Add(Box::new(task("f", &id)))]).unwrap();
            if i % 100 != 0 {
                j.append(&[remove("f", &id)]).unwrap();
            }
        }
        let live = Journal::new(j.path().to_path_buf()).replay().tasks;
        assert_eq!(live.len(), 15);
        assert!(j.wants_rewrite(live.len()));
        j.rewrite(live.clone(), vec![update("t7", "u1")]).unwrap();
        assert!(!j.wants_rewrite(live.len()));
        j.append(&[remove("f", "t0")]).unwrap();
        let after = Journal::new(j.path().to_path_buf()).replay();
        assert_eq!(after.tasks.len(), 14);
        assert_eq!(after.tasks, live[1..]);
        assert_eq!(after.updates, [update("t7", "u1")]);
        let text = std::fs::read_to_string(j.path()).unwrap();
        assert_eq!(text.lines().count(), 17);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
