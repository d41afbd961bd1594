//! The master: agents, frameworks, offers and tasks.

mod state;

pub use state::{AgentEntry, AgentState, Effect, FrameworkEntry, Master, MasterConfig, TaskEntry};
