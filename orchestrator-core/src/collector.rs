//! The probe's seam: one [`Collector`] per part of a host report.
//!
//! Only the probe runs collectors, yet the trait lives here, next to the
//! [`Report`] it writes: a collector written elsewhere (for a runtime the
//! probe does not know) then depends on the report model alone, not on the
//! probe's runtime (tokio, the Docker client, procfs).

use async_trait::async_trait;

use crate::report::{Report, TopologyKind};
use crate::BoxError;

/// One source of a host report (host facts, processes, connections,
/// containers). A probe runs its collectors in turn every spy interval,
/// each adding nodes to the same report; an error from one is logged and
/// counted, and the others still report.
#[async_trait]
pub trait Collector: Send {
    /// A short name for logs and metrics (`process`).
    fn name(&self) -> &'static str;

    /// Adds this collector's nodes, observed at `now_ms` (ms since the
    /// epoch), to `report`.
    async fn collect(&mut self, report: &mut Report, now_ms: u64) -> Result<(), BoxError>;

    /// What the last [`Collector::collect`] wrote, taken (a second call
    /// says [`Written::All`] again). The default, for collectors that
    /// always write everything they see.
    fn written(&mut self) -> Written {
        Written::All
    }
}

/// What a collector wrote into the report of its last cycle, relative to
/// what it wrote the cycle before. Collectors that keep state between
/// cycles can say more than "everything", and a probe that keeps each
/// collector's last output then neither rebuilds nor compares what did
/// not change — nor holds two copies of a ten-thousand-node topology.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Written {
    /// Every node it found: the report replaces its earlier output.
    #[default]
    All,
    /// Nothing: it found exactly what it found before, and its earlier
    /// output stands.
    Nothing,
    /// Only the nodes that are new or differ from its earlier output
    /// (each whole, as it would be in a full output); `gone` names the
    /// nodes of that output it no longer sees.
    Changes {
        /// Nodes of the earlier output that are no more.
        gone: Vec<(TopologyKind, String)>,
    },
}
