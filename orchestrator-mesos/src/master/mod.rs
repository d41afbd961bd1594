//! The master: agents, frameworks, offers and tasks.
//!
//! `state.rs` is the pure state machine (its `ACCEPT` path in `accept.rs`), `handle.rs` runs it (locks, streams,
//! timers), `http.rs` and `operator.rs` serve it.

mod accept;
mod events;
mod handle;
mod http;
mod operator;
mod state;

pub use handle::MasterHandle;
pub use http::MAX_BODY;
pub use state::{AgentEntry, AgentState, Effect, FrameworkEntry, Master, MasterConfig, TaskEntry};
