//! `GET /master/state`, serialized straight from the master's books.
//!
//! At 100,000 tasks the answer is about 40 MB, written while the master's
//! lock is held (it must be one consistent picture). Building it as a
//! `serde_json::Value` tree first took 1.3 s — a second and more in which
//! no status update, offer or call was handled. These views write the same
//! JSON in one pass with no intermediate tree.

use std::collections::BTreeMap;

use orchestrator_core::{Allocator, FrameworkId, Resources, Value};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::json;

use super::state::{AgentState, FrameworkEntry, Master, TaskEntry};
use crate::zk::MasterInfo;

/// Resources as Mesos's state shows them: `{"cpus": 1.5, "ports": "[…]"}`,
/// scalars of one name summed (the same as [`resources_json`](crate::resources_json)).
pub(super) struct ResourcesJson<'a>(pub(super) &'a Resources);

impl Serialize for ResourcesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        enum Entry {
            Scalar(f64),
            Other(String),
        }
        let mut entries: BTreeMap<&str, Entry> = BTreeMap::new();
        for r in self.0 {
            match &r.value {
                Value::Scalar(v) => {
                    let e = entries.entry(r.name.as_str()).or_insert(Entry::Scalar(0.0));
                    if let Entry::Scalar(sum) = e {
                        *sum += v.value();
                    }
                }
                other => {
                    entries
                        .entry(r.name.as_str())
                        .or_insert_with(|| Entry::Other(other.to_string()));
                }
            }
        }
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (name, e) in entries {
            match e {
                Entry::Scalar(v) => map.serialize_entry(name, &v)?,
                Entry::Other(text) => map.serialize_entry(name, &text)?,
            }
        }
        map.end()
    }
}

struct TaskJson<'a> {
    framework_id: &'a FrameworkId,
    task: &'a TaskEntry,
}

impl Serialize for TaskJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.task;
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("id", t.info.task_id.as_str())?;
        map.serialize_entry("name", &t.info.name)?;
        map.serialize_entry("framework_id", self.framework_id.as_str())?;
        map.serialize_entry("slave_id", t.info.agent_id.as_str())?;
        map.serialize_entry("state", &t.state)?;
        map.serialize_entry("resources", &ResourcesJson(&t.info.resources))?;
        map.serialize_entry("statuses", &t.status.as_slice())?;
        map.end()
    }
}

struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = T>, T: Serialize> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(items) => s.collect_seq(items),
            None => s.collect_seq(std::iter::empty::<T>()),
        }
    }
}

fn seq<I: Iterator<Item = T>, T: Serialize>(items: I) -> Seq<I> {
    Seq(std::cell::Cell::new(Some(items)))
}

struct FrameworkJson<'a, A: Allocator> {
    master: &'a Master<A>,
    id: &'a FrameworkId,
    f: &'a FrameworkEntry,
}

impl<A: Allocator> Serialize for FrameworkJson<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (id, f) = (self.id, self.f);
        let mut map = s.serialize_map(Some(11))?;
        map.serialize_entry("id", id.as_str())?;
        map.serialize_entry("name", &f.info.name)?;
        map.serialize_entry("user", &f.info.user)?;
        map.serialize_entry("roles", &f.info.effective_roles())?;
        map.serialize_entry("active", &f.connected)?;
        map.serialize_entry("connected", &f.connected)?;
        map.serialize_entry("failover_timeout", &f.info.failover_timeout.unwrap_or(0.0))?;
        let task = |task| TaskJson { framework_id: id, task };
        map.serialize_entry("tasks", &seq(f.tasks.values().map(task)))?;
        map.serialize_entry("completed_tasks", &seq(f.completed.iter().map(task)))?;
        let offers = self
            .master
            .offers()
            .filter(|o| o.framework_id == *id)
            .map(|o| o.id.as_str());
        map.serialize_entry("offers", &seq(offers))?;
        map.end()
    }
}

/// Who this master is, as `/master/state` shows it.
pub(super) struct Identity {
    pub(super) me: Option<MasterInfo>,
    pub(super) leader: Option<MasterInfo>,
    pub(super) elected_time: Option<f64>,
}

/// The whole `/master/state` answer, as JSON bytes.
pub(super) fn render<A: Allocator>(master: &Master<A>, who: &Identity) -> serde_json::Result<Vec<u8>> {
    let slaves = master.agents().iter().map(|(id, a)| {
        json!({
            "id": id.as_str(),
            "hostname": a.info.hostname,
            "port": a.info.port,
            "resources": ResourcesJson(&a.info.resources),
            "attributes": a.info.attributes,
            "active": a.state == AgentState::Active,
        })
    });
    let recovered = master.recovering_agents().values().map(|(info, _)| {
        json!({
            "id": info.id.as_ref().map(orchestrator_core::AgentId::as_str),
            "hostname": info.hostname,
            "port": info.port,
            "resources": ResourcesJson(&info.resources),
            "attributes": info.attributes,
        })
    });
    let active = master
        .agents()
        .values()
        .filter(|a| a.state == AgentState::Active)
        .count();
    let frameworks = master
        .frameworks()
        .iter()
        .map(|(id, f)| FrameworkJson { master, id, f });
    // Tasks are most of the bytes: 400 per task is a fair first guess.
    let tasks: usize = master
        .frameworks()
        .values()
        .map(|f| f.tasks.len() + f.completed.len())
        .sum();
    let mut out = Vec::with_capacity(4096 + tasks * 400);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut map = ser.serialize_map(None)?;
    map.serialize_entry("id", &master.config().master_id)?;
    map.serialize_entry("pid", &who.me.as_ref().map(|m| &m.pid))?;
    map.serialize_entry("hostname", &who.me.as_ref().map(|m| &m.hostname))?;
    map.serialize_entry("leader", &who.leader.as_ref().map(|l| &l.pid))?;
    map.serialize_entry("leader_info", &who.leader)?;
    map.serialize_entry("elected_time", &who.elected_time)?;
    map.serialize_entry("recovered_slaves", &seq(recovered))?;
    map.serialize_entry("activated_slaves", &active)?;
    map.serialize_entry("deactivated_slaves", &(master.agents().len() - active))?;
    map.serialize_entry("slaves", &seq(slaves))?;
    map.serialize_entry("frameworks", &seq(frameworks))?;
    SerializeMap::end(map)?;
    Ok(out)
}
