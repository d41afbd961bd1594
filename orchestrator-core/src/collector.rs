//! The probe's seam: one [`Collector`] per part of a host report.

use async_trait::async_trait;

use crate::report::Report;
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

    /// Whether the last [`Collector::collect`] found exactly what the one
    /// before it did and so wrote nothing: the probe keeps the earlier
    /// output instead of rebuilding, joining and comparing the same nodes.
    /// A collector that cannot tell cheaply says `false`, the default.
    fn unchanged(&self) -> bool {
        false
    }
}
