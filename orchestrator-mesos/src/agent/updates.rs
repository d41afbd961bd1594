//! The agent's status update streams, as Mesos's status update manager
//! keeps them: one stream per task, in the order the updates were made;
//! only the oldest unacknowledged update of a task is sent, again with a
//! doubling backoff until the master acknowledges it, and the next one only
//! after that. So every update reaches the framework at least once, and a
//! task's updates in order — a retried STARTING can never arrive after
//! RUNNING.
//!
//! Many tasks' heads travel together: the sender takes what is ready in
//! one batch (`POST /api/v1/agents/{id}/updates`), and what becomes ready
//! while a batch is on its way goes in the next. At 10,000 launches that is
//! a few dozen requests instead of 20,000.
//!
//! This is pure bookkeeping; the sending is the agent's (`mod.rs`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use orchestrator_core::{FrameworkId, TaskId};

use crate::api::agent::AgentUpdate;

/// The longest wait between two sends of one update (Mesos: 10 minutes).
const MAX_BACKOFF: Duration = Duration::from_secs(600);

type Key = (FrameworkId, TaskId);

#[derive(Debug)]
struct Pending {
    update: AgentUpdate,
    uuid: String,
    seq: u64,
    /// When to send it again, once sent.
    next: Option<Instant>,
    backoff: Duration,
}

/// Every task's unacknowledged updates.
#[derive(Debug)]
pub(crate) struct UpdateStreams {
    streams: HashMap<Key, VecDeque<Pending>>,
    /// Heads to send now, oldest first.
    ready: BTreeMap<u64, Key>,
    seq: u64,
    retry: Duration,
    len: usize,
}

impl UpdateStreams {
    /// Streams whose updates are first sent again after `retry`.
    pub(crate) fn new(retry: Duration) -> Self {
        Self {
            streams: HashMap::new(),
            ready: BTreeMap::new(),
            seq: 0,
            retry,
            len: 0,
        }
    }

    /// Updates not acknowledged yet.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds an update (it must carry a uuid) at the end of its task's stream.
    pub(crate) fn push(&mut self, update: AgentUpdate) {
        let Some(uuid) = update.status.uuid.clone() else {
            return;
        };
        self.seq += 1;
        let key = (update.framework_id.clone(), update.status.task_id.clone());
        let stream = self.streams.entry(key.clone()).or_default();
        if stream.is_empty() {
            self.ready.insert(self.seq, key);
        }
        stream.push_back(Pending {
            update,
            uuid,
            seq: self.seq,
            next: None,
            backoff: self.retry,
        });
        self.len += 1;
    }

    /// Every unacknowledged update, oldest first (for a checkpoint).
    pub(crate) fn pending(&self) -> Vec<AgentUpdate> {
        let mut all: Vec<&Pending> = self.streams.values().flatten().collect();
        all.sort_unstable_by_key(|p| p.seq);
        all.into_iter().map(|p| p.update.clone()).collect()
    }

    /// Up to `max` heads that are due, oldest first, marked sent at `now`.
    pub(crate) fn take_ready(&mut self, now: Instant, max: usize) -> Vec<AgentUpdate> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, key)) = self.ready.pop_first() else { break };
            let Some(head) = self.streams.get_mut(&key).and_then(VecDeque::front_mut) else {
                continue;
            };
            head.next = Some(now + head.backoff);
            head.backoff = (head.backoff * 2).min(MAX_BACKOFF);
            out.push(head.update.clone());
        }
        out
    }

    /// Whether heads wait to be sent now.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The master held back update `uuid` of a task (its framework is
    /// busy): it is sent again at `at`, with the backoff it had before.
    pub(crate) fn defer(&mut self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str, at: Instant) {
        let key = (framework_id.clone(), task_id.clone());
        let head = self.streams.get_mut(&key).and_then(VecDeque::front_mut);
        if let Some(head) = head.filter(|h| h.uuid == uuid) {
            head.next = Some(at);
            head.backoff = (head.backoff / 2).max(self.retry);
        }
    }

    /// Makes heads whose retry time has come ready again.
    pub(crate) fn retry_due(&mut self, now: Instant) {
        for (key, stream) in &self.streams {
            if let Some(head) = stream.front() {
                if head.next.is_some_and(|n| n <= now) {
                    self.ready.insert(head.seq, key.clone());
                }
            }
        }
    }

    /// Makes every head ready now (a new master leads), backoffs reset.
    pub(crate) fn resend_all(&mut self) {
        for (key, stream) in &mut self.streams {
            if let Some(head) = stream.front_mut() {
                head.backoff = self.retry;
                self.ready.insert(head.seq, key.clone());
            }
        }
    }

    /// The master acknowledged `uuid` of a task: when it is the head, it is
    /// dropped and the next update of the task becomes ready. Returns
    /// whether it was the head (a late duplicate acknowledgement is not).
    pub(crate) fn acknowledge(&mut self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str) -> bool {
        let key = (framework_id.clone(), task_id.clone());
        let Some(stream) = self.streams.get_mut(&key) else {
            return false;
        };
        if stream.front().is_none_or(|h| h.uuid != uuid) {
            return false;
        }
        if let Some(head) = stream.pop_front() {
            self.ready.remove(&head.seq);
        }
        self.len -= 1;
        match stream.front() {
            Some(next) => {
                self.ready.insert(next.seq, key);
            }
            None => {
                self.streams.remove(&key);
            }
        }
        true
    }

    /// Drops every update of a framework (torn down: nobody would
    /// acknowledge them).
    pub(crate) fn drop_framework(&mut self, framework_id: &FrameworkId) {
        let mut dropped = 0;
        self.streams.retain(|(f, _), s| {
            let keep = f != framework_id;
            if !keep {
                dropped += s.len();
            }
            keep
        });
        self.ready.retain(|_, (f, _)| f != framework_id);
        self.len -= dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::{TaskState, TaskStatus};
    use proptest::prelude::*;

    fn update(task: &str, state: TaskState, uuid: &str) -> AgentUpdate {
        let mut status = TaskStatus::new(TaskId::new(task).unwrap(), state);
        status.uuid = Some(uuid.into());
        AgentUpdate {
            framework_id: FrameworkId::new("f").unwrap(),
            status,
        }
    }

    fn fw() -> FrameworkId {
        FrameworkId::new("f").unwrap()
    }

    #[test]
    fn only_a_tasks_oldest_update_is_sent_and_the_next_after_its_ack() {
        let mut s = UpdateStreams::new(Duration::from_secs(10));
        let now = Instant::now();
        s.push(update("a", TaskState::Starting, "a1"));
        s.push(update("b", TaskState::Starting, "b1"));
        s.push(update("a", TaskState::Running, "a2"));
        let sent: Vec<_> = s
            .take_ready(now, 100)
            .into_iter()
            .map(|u| u.status.uuid.unwrap())
            .collect();
        assert_eq!(sent, ["a1", "b1"]);
        assert!(s.take_ready(now, 100).is_empty());
        assert!(!s.acknowledge(&fw(), &TaskId::new("a").unwrap(), "a2"), "not the head");
        assert!(s.acknowledge(&fw(), &TaskId::new("a").unwrap(), "a1"));
        let sent: Vec<_> = s
            .take_ready(now, 100)
            .into_iter()
            .map(|u| u.status.uuid.unwrap())
            .collect();
        assert_eq!(sent, ["a2"]);
        assert_eq!(s.len(), 2);
        // Not acknowledged: sent again after the retry, then after twice that.
        s.retry_due(now + Duration::from_secs(9));
        assert!(!s.has_ready());
        s.retry_due(now + Duration::from_secs(10));
        assert_eq!(s.take_ready(now + Duration::from_secs(10), 100).len(), 2);
        s.retry_due(now + Duration::from_secs(29));
        assert!(!s.has_ready());
        s.retry_due(now + Duration::from_secs(30));
        assert_eq!(s.take_ready(now, 1).len(), 1, "batches are bounded");
        s.drop_framework(&fw());
        assert_eq!(s.len(), 0);
        assert!(s.take_ready(now, 100).is_empty());
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// A new update for task n.
        Push(u8),
        /// The master takes the next batch of up to n updates; each one it
        /// receives is forwarded and acknowledged, unless the answer (or
        /// the acknowledgement) is lost.
        Deliver(u8, bool),
        /// Time passes (retries come due).
        Wait,
        /// The agent re-registers with a new master.
        Failover,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..6).prop_map(Step::Push),
            4 => (1u8..8, any::<bool>()).prop_map(|(n, lost)| Step::Deliver(n, lost)),
            1 => Just(Step::Wait),
            1 => Just(Step::Failover),
        ]
    }

    proptest! {
        /// Whatever is lost or retried, the framework sees each task's
        /// updates in the order they were made, every one of them, and
        /// none again after it was acknowledged.
        #[test]
        fn every_update_arrives_in_order_and_none_after_its_ack(steps in prop::collection::vec(step(), 1..200)) {
            let mut s = UpdateStreams::new(Duration::from_secs(1));
            let mut now = Instant::now();
            let mut made: HashMap<String, Vec<String>> = HashMap::new();
            // What the framework saw per task, duplicates collapsed.
            let mut seen: HashMap<String, Vec<String>> = HashMap::new();
            let mut acked = std::collections::HashSet::new();
            let mut n = 0;
            for st in steps {
                match st {
                    Step::Push(t) => {
                        n += 1;
                        let task = format!("t{t}");
                        let uuid = format!("u{n}");
                        made.entry(task.clone()).or_default().push(uuid.clone());
                        s.push(update(&task, TaskState::Running, &uuid));
                    }
                    Step::Deliver(max, lost) => {
                        for u in s.take_ready(now, usize::from(max)) {
                            let task = u.status.task_id.to_string();
                            let uuid = u.status.uuid.unwrap();
                            prop_assert!(!acked.contains(&uuid), "{uuid} sent after its acknowledgement");
                            let seen = seen.entry(task.clone()).or_default();
                            if seen.last() != Some(&uuid) {
                                prop_assert!(!seen.contains(&uuid), "{uuid} of {task} out of order: {seen:?}");
                                seen.push(uuid.clone());
                            }
                            if !lost {
                                prop_assert!(s.acknowledge(&fw(), &TaskId::new(&task).unwrap(), &uuid));
                                acked.insert(uuid);
                            }
                        }
                    }
                    Step::Wait => {
                        now += Duration::from_secs(700);
                        s.retry_due(now);
                    }
                    Step::Failover => s.resend_all(),
                }
            }
            // Everything left is delivered eventually.
            for _ in 0..1000 {
                now += Duration::from_secs(700);
                s.retry_due(now);
                for u in s.take_ready(now, 1000) {
                    let task = u.status.task_id.to_string();
                    let uuid = u.status.uuid.unwrap();
                    let seen = seen.entry(task.clone()).or_default();
                    if seen.last() != Some(&uuid) {
                        seen.push(uuid.clone());
                    }
                    prop_assert!(s.acknowledge(&fw(), &TaskId::new(&task).unwrap(), &uuid));
                }
                if s.len() == 0 {
                    break;
                }
            }
            prop_assert_eq!(s.len(), 0);
            prop_assert_eq!(seen, made);
        }
    }
}
