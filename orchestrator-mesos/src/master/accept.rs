//! The `ACCEPT` path of the master's state machine: offers taken back,
//! operations (`LAUNCH`, `LAUNCH_GROUP`, `RESERVE`, `UNRESERVE`) checked and
//! applied one after another on what the offers hold, tasks validated
//! against it, and the rest of the resources returned to the allocator.

use std::time::{Duration, Instant};

use orchestrator_core::{AgentId, Allocator, FrameworkId, OfferId, Resources, TaskInfo, TaskReason, TaskState};

use super::state::{master_update, partition_aware, without_roles, Effect, Master, TaskEntry};
use crate::api::scheduler::OfferOperation;

/// The longest id Mesos accepts where it names a file or directory.
const NAME_MAX: usize = 255;

/// Mesos's rules for an id that becomes a path component on the agent
/// (`common/validation.cpp`, `validateID`): not empty, at most `NAME_MAX`
/// bytes, not `.` or `..`, no control characters and no path separator.
fn validate_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".into());
    }
    if id.len() > NAME_MAX {
        return Err(format!("ID must not be greater than {NAME_MAX} characters"));
    }
    if id == "." || id == ".." {
        return Err(format!("'{id}' is disallowed"));
    }
    if id.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(format!("'{id}' contains invalid characters"));
    }
    Ok(())
}

impl<A: Allocator> Master<A> {
    /// Takes the offers out; `Err` with the reason when any is unusable
    /// (unknown, someone else's, or on different agents).
    fn take_offers(
        &mut self,
        fw: &FrameworkId,
        offer_ids: &[OfferId],
        now: Instant,
    ) -> std::result::Result<(AgentId, Resources), String> {
        let mut agent: Option<AgentId> = None;
        let mut problem = None;
        for id in offer_ids {
            match self.offers.get(id) {
                None => problem = Some(format!("Offer {id} is no longer valid")),
                Some(o) if o.framework_id != *fw => problem = Some(format!("Offer {id} is not for framework {fw}")),
                Some(o) if agent.as_ref().is_some_and(|a| *a != o.agent_id) => {
                    problem = Some("Aggregated offers must belong to the same agent".into())
                }
                Some(o) => agent = Some(o.agent_id.clone()),
            }
        }
        if offer_ids.is_empty() {
            problem = Some("No offers given".into());
        }
        // Valid or not, every offer named is used up, as in Mesos.
        let mut total = Resources::new();
        let mut owner_agent = None;
        for id in offer_ids {
            if self.offers.get(id).is_some_and(|o| o.framework_id == *fw) {
                if let Some(o) = self.offers.remove(id) {
                    total += o.resources;
                    owner_agent.get_or_insert(o.agent_id);
                }
            }
        }
        match (problem, agent) {
            (None, Some(a)) => Ok((a, total)),
            (problem, _) => {
                if let Some(a) = owner_agent {
                    self.allocator.recover_resources(fw, &a, &total, None, now);
                }
                Err(problem.unwrap_or_else(|| "No offers given".into()))
            }
        }
    }

    pub(super) fn accept(
        &mut self,
        fw: &FrameworkId,
        offer_ids: &[OfferId],
        operations: Vec<OfferOperation>,
        refuse: Duration,
        now: Instant,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let partition_aware = self.frameworks.get(fw).is_some_and(|f| partition_aware(&f.info));
        let (agent_id, mut remaining) = match self.take_offers(fw, offer_ids, now) {
            Ok(x) => x,
            Err(reason) => {
                // Tasks in a call with bad offers are dropped (lost for
                // frameworks that are not partition-aware).
                let state = if partition_aware {
                    TaskState::Dropped
                } else {
                    TaskState::Lost
                };
                for op in operations {
                    if let OfferOperation::Launch(tasks) | OfferOperation::LaunchGroup(tasks) = op {
                        for t in tasks {
                            let s =
                                master_update(t.task_id, Some(t.agent_id), state, TaskReason::Other, reason.clone());
                            effects.push(self.update(fw, s));
                        }
                    }
                }
                return effects;
            }
        };
        let framework_info = self.frameworks.get(fw).map(|f| f.info.clone());
        for op in operations {
            match op {
                OfferOperation::Launch(tasks) | OfferOperation::LaunchGroup(tasks) => {
                    for task in tasks {
                        match self.validate_task(fw, &agent_id, &task, &remaining) {
                            Err(reason) => {
                                let s = master_update(
                                    task.task_id.clone(),
                                    Some(agent_id.clone()),
                                    TaskState::Error,
                                    TaskReason::ReasonTaskInvalid,
                                    reason,
                                );
                                effects.push(self.update(fw, s));
                            }
                            Ok(used) => {
                                remaining -= &used;
                                if let Some(f) = self.frameworks.get_mut(fw) {
                                    f.tasks
                                        .insert(task.task_id.clone(), TaskEntry::new(task.clone(), TaskState::Staging));
                                }
                                if let Some(info) = &framework_info {
                                    effects.push(Effect::Launch {
                                        agent_id: agent_id.clone(),
                                        framework: Box::new(info.clone()),
                                        task: Box::new(task),
                                    });
                                }
                            }
                        }
                    }
                }
                OfferOperation::Reserve(reserved) => {
                    // RESERVE names the result; the offer holds it without
                    // that reservation level.
                    let from = reserved.popped_reservation();
                    self.convert(fw, &agent_id, &mut remaining, from, reserved);
                }
                OfferOperation::Unreserve(reserved) => {
                    let to = reserved.popped_reservation();
                    self.convert(fw, &agent_id, &mut remaining, reserved, to);
                }
            }
        }
        if !remaining.is_empty() {
            self.allocator
                .recover_resources(fw, &agent_id, &remaining, Some(refuse), now);
        }
        effects
    }

    /// Replaces `from` by `to` in the offered resources and the allocator.
    /// An invalid conversion (`from` not offered, amounts that differ) is
    /// dropped, as Mesos drops invalid operations without operation ids;
    /// the resources stay in the offer's remainder and go back.
    fn convert(
        &mut self,
        fw: &FrameworkId,
        agent_id: &AgentId,
        remaining: &mut Resources,
        from: Resources,
        to: Resources,
    ) {
        let role = remaining.iter().find_map(|r| r.allocation_role.clone());
        let (mut from, mut to) = (from, to);
        from.set_allocation_role(role.as_deref());
        to.set_allocation_role(role.as_deref());
        if remaining.contains(&from) && self.allocator.update_allocation(fw, agent_id, &from, &to).is_ok() {
            *remaining -= &from;
            *remaining += &to;
        }
    }

    /// What a task takes from `remaining`, or why it cannot run.
    fn validate_task(
        &self,
        fw: &FrameworkId,
        agent_id: &AgentId,
        task: &TaskInfo,
        remaining: &Resources,
    ) -> std::result::Result<Resources, String> {
        if task.agent_id != *agent_id {
            return Err(format!(
                "Task uses agent {} but the offers are from agent {agent_id}",
                task.agent_id
            ));
        }
        if self
            .frameworks
            .get(fw)
            .is_some_and(|f| f.tasks.contains_key(&task.task_id))
        {
            return Err(format!("Task ID '{}' is already in use", task.task_id));
        }
        validate_id(task.task_id.as_str()).map_err(|e| format!("Task ID is invalid: {e}"))?;
        if task.resources.is_empty() {
            return Err("Task uses no resources".into());
        }
        if task.command.is_none() && task.container.is_none() {
            return Err("Task has neither a command nor a container".into());
        }
        orchestrator_core::ContainerSpec::from_task(task).map_err(|e| e.to_string())?;
        // Tasks of frameworks that are not multi-role omit allocation roles.
        let have = without_roles(remaining);
        let want = without_roles(&task.resources);
        if !have.contains(&want) {
            return Err(format!(
                "Task uses more resources ({want}) than available in the offers ({have})"
            ));
        }
        let role = remaining.iter().find_map(|r| r.allocation_role.clone());
        let mut used = want;
        used.set_allocation_role(role.as_deref());
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn task_ids_follow_mesos_rules_for_path_components() {
        assert!(validate_id("web.00000001").is_ok());
        assert!(validate_id("with space").is_ok());
        assert!(validate_id(&"a".repeat(255)).is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "tab\t"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id(&"a".repeat(256)).unwrap_err().contains("255"));
    }
}
