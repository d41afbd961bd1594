//! The master: agents, frameworks, offers and tasks.

mod http;
mod operator;
mod state;

pub use http::{resources_json, AgentCommand, AgentUpdate, MasterHandle, ReregisterAgent, ReregisteredTask, MAX_BODY};
pub use state::{AgentEntry, AgentState, Effect, FrameworkEntry, Master, MasterConfig, TaskEntry};
