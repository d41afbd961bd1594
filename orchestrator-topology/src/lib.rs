//! The monitoring app: merges the reports of every probe into topology
//! views (processes, containers, hosts, pods, services), keeps metric
//! history, and serves it over REST, WebSocket and a web UI.
//!
//! # Why fixed-memory time series
//!
//! A monitoring server that keeps a growing history per node is the first
//! thing to fall over in a large cluster. Every series here is a pair of
//! rings — 15 s buckets for the last hour, 1 min buckets for a day by
//! default — so memory per node and metric is known up front, whatever the
//! uptime, and old data leaves without a cleanup pass.
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

mod timeseries;

pub use timeseries::{Point, Retention, TimeSeries};
