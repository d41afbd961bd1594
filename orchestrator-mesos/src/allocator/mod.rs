//! Resource allocation: who is offered what, in which order.

mod bitset;
mod drf;
mod first_fit;
mod holdings;
mod index;
mod quantities;
mod roles;
mod sorter;

pub use drf::{AllocatorBuilder, AllocatorConfig, DrfAllocator};
pub use first_fit::FirstFitAllocator;
pub use orchestrator_core::RoleInfo;
pub(crate) use roles::validate_role;
pub use sorter::DrfSorter;

/// The same resources without allocation roles: how allocators keep totals.
fn stripped(resources: &orchestrator_core::Resources) -> orchestrator_core::Resources {
    let mut r = resources.clone();
    r.set_allocation_role(None);
    r
}
