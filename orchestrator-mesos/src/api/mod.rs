//! The Mesos v1 HTTP APIs: wire types and framing.

pub mod recordio;
pub mod scheduler;
