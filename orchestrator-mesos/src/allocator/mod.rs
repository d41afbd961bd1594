//! Resource allocation: who is offered what, in which order.

mod bitset;
mod drf;
mod holdings;
mod quantities;
mod roles;
mod round;
mod sorter;

pub use drf::{AllocatorBuilder, AllocatorConfig, DrfAllocator};
pub use sorter::DrfSorter;
