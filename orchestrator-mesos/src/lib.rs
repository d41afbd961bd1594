//! Mesos-style cluster management: a master that offers agents' resources
//! to frameworks, agents that run tasks, and a Marathon-style scheduler.
//!
//! # Why Mesos's design
//!
//! Two-level scheduling keeps the master simple and fast: the master only
//! decides *who is offered what* (by weighted Dominant Resource Fairness),
//! and each framework decides *what to run where*. Speaking Mesos's v1 HTTP
//! API lets existing frameworks run here unmodified.
//!
//! # Why a pure allocator
//!
//! Allocation is the hot path of the master; it is written as synchronous,
//! side-effect-free code over plain data so it can be property-tested
//! (never over-commit, serve the lowest share first) and benchmarked
//! without a network. This crate starts with its ordering, the weighted
//! [`DrfSorter`].
//!
//! ```
//! use orchestrator_mesos::DrfSorter;
//!
//! let mut sorter = DrfSorter::new();
//! sorter.add_total(&"cpus:10;mem:100".parse()?);
//! sorter.add("analytics", 1.0);
//! sorter.add("web", 2.0);
//! sorter.allocated("analytics", &"cpus:2;mem:10".parse()?);
//! sorter.allocated("web", &"cpus:3;mem:10".parse()?);
//! // web holds more, but its weight halves its share: 0.15 < 0.2.
//! assert_eq!(sorter.sort(), vec!["web", "analytics"]);
//! # Ok::<(), orchestrator_core::Error>(())
//! ```

mod allocator;

pub use allocator::{AllocatorBuilder, AllocatorConfig, DrfAllocator, DrfSorter};
