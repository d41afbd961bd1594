//! The master: agents, frameworks, offers and tasks.
//!
//! `state.rs` is the pure state machine (its `ACCEPT` path in `accept.rs`),
//! `handle.rs` runs it (locks, streams, timers), `leading.rs` decides
//! whether it leads (ZooKeeper, 307s), `registry.rs` keeps what survives a
//! failover, `http.rs` and `operator.rs` serve it.

mod accept;
mod events;
mod handle;
mod http;
mod leading;
mod operator;
mod registry;
mod state;
mod state_json;

pub use handle::MasterHandle;
pub use http::MAX_BODY;
pub use leading::ReplicaConfig;
pub use registry::{Recovered, Registry, StoredQuota};
pub use state::{AgentEntry, AgentState, Effect, FrameworkEntry, Master, MasterConfig, TaskEntry};
