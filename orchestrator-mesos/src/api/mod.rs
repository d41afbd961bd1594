//! The Mesos v1 HTTP APIs: wire types and framing.

pub mod client;
pub mod recordio;
pub mod scheduler;
