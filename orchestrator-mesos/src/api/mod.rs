//! The Mesos v1 HTTP APIs: wire types and framing, shared by the master,
//! the agent and frameworks (none of which imports another for them).

pub mod agent;
pub mod client;
pub mod json;
pub mod recordio;
pub mod scheduler;
