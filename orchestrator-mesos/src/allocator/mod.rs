//! Resource allocation: who is offered what, in which order.

mod sorter;

pub use sorter::DrfSorter;
