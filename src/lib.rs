//! The orchestrator toolkit: build container control planes in Rust.
//!
//! This facade re-exports the toolkit's crates so that one dependency gives
//! `orchestrator::core::Resources`, `orchestrator::mesos::…`,
//! `orchestrator::probe::…`, `orchestrator::topology::…` and
//! `orchestrator::zkmigrate::…`. Each area sits behind a feature of the same
//! name (all on by default); a program that embeds only one area can turn the
//! others off, or depend on that crate alone.
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`core`] | `orchestrator-core` | ids, resources, tasks, offers, container specs, the `Containerizer` and `StateStore` seams |
//! | `mesos` | `orchestrator-mesos` | Mesos-style master, agents, weighted DRF allocator, Marathon-style scheduler |
//! | `probe` | `orchestrator-probe` | per-host agent that reports hosts, processes, connections and containers |
//! | `topology` | `orchestrator-topology` | the monitoring app that merges reports into views |
//! | `zkmigrate` | `orchestrator-zkmigrate` | live ZooKeeper-to-ZooKeeper migration |
//! | `discovery` | `orchestrator-discovery` | Mesos-DNS-compatible DNS and its HTTP API, fed by the master |
//! | `platform` | this crate | master, agent, scheduler, probe and topology app in one process (the all-in-one) |
//!
//! ```
//! let offer: orchestrator::core::Resources = "cpus:2;mem:1024".parse()?;
//! assert_eq!(offer.cpus(), 2.0);
//! # Ok::<(), orchestrator::core::Error>(())
//! ```

pub use orchestrator_core as core;
#[cfg(feature = "discovery")]
pub use orchestrator_discovery as discovery;
#[cfg(feature = "platform")]
pub mod platform;
#[cfg(feature = "mesos")]
pub use orchestrator_mesos as mesos;
#[cfg(feature = "probe")]
pub use orchestrator_probe as probe;
#[cfg(feature = "topology")]
pub use orchestrator_topology as topology;
#[cfg(feature = "zkmigrate")]
pub use orchestrator_zkmigrate as zkmigrate;
