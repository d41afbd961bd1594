//! The agent's side of sandbox garbage collection (the policy is in
//! `gc.rs`): a task's sandbox is handed over when the task ends; at start
//! the sandboxes no recovered task uses are handed over with their last
//! change as their end (Mesos does the same on recovery); every
//! `disk_watch_interval` the disk is measured and what is due removed,
//! off the async threads.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{gc, Agent};

impl Agent {
    /// `sandbox`'s task ended now: it is removed when old enough.
    pub(super) fn collect_sandbox(&self, sandbox: PathBuf) {
        let mut gc = self.inner.gc.lock().unwrap_or_else(|p| p.into_inner());
        gc.schedule(sandbox, SystemTime::now());
    }

    /// Hands over the sandboxes (`sandboxes/<framework>/<container>`) that
    /// no task of this agent runs in: ended before a restart.
    pub(super) fn collect_leftover_sandboxes(&self) {
        let root = self.inner.config.work_dir.join("sandboxes");
        let live: Vec<PathBuf> = self.books().tasks.values().map(|r| r.sandbox.clone()).collect();
        let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
        for framework in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for sandbox in std::fs::read_dir(framework.path()).into_iter().flatten().flatten() {
                let path = sandbox.path();
                // Older releases nested a task's runs one level deeper.
                if live.iter().any(|l| l.starts_with(&path)) {
                    continue;
                }
                let changed = sandbox
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                found.push((changed, path));
            }
        }
        if found.is_empty() {
            return;
        }
        tracing::info!(
            count = found.len(),
            "sandboxes of ended tasks found; they are removed when old enough"
        );
        found.sort();
        let mut gc = self.inner.gc.lock().unwrap_or_else(|p| p.into_inner());
        for (changed, path) in found {
            gc.schedule(path, changed);
        }
    }

    /// Removes the sandboxes that are due, every `disk_watch_interval`.
    pub(super) async fn collect_garbage(self) {
        let mut tick = tokio::time::interval(self.inner.config.disk_watch_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let work = self.inner.config.work_dir.clone();
            let usage = gc::disk_usage(&work);
            let due = {
                let mut gc = self.inner.gc.lock().unwrap_or_else(|p| p.into_inner());
                gc.due(SystemTime::now(), usage.unwrap_or(0.0))
            };
            if due.is_empty() {
                continue;
            }
            let count = due.len() as u64;
            let failed = tokio::task::spawn_blocking(move || {
                let mut failed = 0;
                for sandbox in due {
                    if let Err(e) = std::fs::remove_dir_all(&sandbox) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(path = %sandbox.display(), error = %e, "cannot remove an ended task's sandbox");
                            failed += 1;
                        }
                    }
                }
                failed
            })
            .await
            .unwrap_or(0);
            self.inner
                .gc
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .removed(count - failed, failed);
            tracing::info!(
                removed = count - failed,
                failed,
                disk_usage = usage.unwrap_or(f64::NAN),
                "sandboxes of ended tasks removed"
            );
        }
    }
}
