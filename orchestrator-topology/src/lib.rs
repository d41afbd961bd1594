//! The monitoring app: merges the reports of every probe into topology
//! views (processes, containers, container images, hosts, pods, services),
//! keeps metric history, and serves it over REST and WebSocket, routing
//! container controls back to the probes.
//!
//! The pieces, each usable on its own:
//!
//! - [`store`]: per-probe state, merged incrementally (a report touches only
//!   its own probe's nodes and the endpoint owner index);
//! - [`views`]: the views as petgraph graphs, with pseudo nodes and filters;
//! - [`diff`]: what changed between two renders, for WebSocket clients;
//! - [`search`]: the query language and saved filters;
//! - [`TimeSeries`]: fixed-bound per-metric history;
//! - [`server`]: the axum app (API, auth, audit, controls, metrics) and
//!   the web UI it serves at `/`, built from the workspace's `ui/` by this
//!   crate's build script and embedded in the binary;
//! - [`synthetic`]: a cluster generator for benchmarks and load tests.
//!
//! # Why fixed-memory time series
//!
//! A monitoring server that keeps a growing history per node is the first
//! thing to fall over in a large cluster. Every series here has two levels
//! — 15 s buckets for the last hour, 1 min buckets for a day by default —
//! each with a fixed number of buckets, so memory per node and metric is
//! known up front, whatever the uptime, and old data leaves without a
//! cleanup pass.
//!
//! ```
//! use orchestrator_topology::{Retention, TimeSeries};
//!
//! let mut cpu = TimeSeries::new(Retention::default());
//! cpu.record(1_000, 12.5);
//! cpu.record(9_000, 37.5);
//! let points = cpu.query(0, 15_000);
//! assert_eq!(points.len(), 1);
//! assert_eq!((points[0].min, points[0].max, points[0].avg), (12.5, 37.5, 25.0));
//! ```

pub mod diff;
mod error;
pub mod search;
pub mod server;
pub mod store;
pub mod synthetic;
mod timeseries;
pub mod views;

pub use error::{Result, TopologyError};
pub use store::{ReportStore, StoreConfig};
pub use timeseries::{Point, Retention, TimeSeries};
pub use views::{render, Filters, Rendered, View};

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
