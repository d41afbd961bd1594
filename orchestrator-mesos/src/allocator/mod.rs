//! Resource allocation: who is offered what, in which order.

mod bitset;
mod drf;
mod holdings;
mod quantities;
mod roles;
mod round;
mod sorter;

pub use drf::{AllocatorBuilder, AllocatorConfig, DrfAllocator, RoleInfo};
pub(crate) use roles::validate_role;
pub use sorter::DrfSorter;
