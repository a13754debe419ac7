//! Self-tests of the portable memory management, run in the kernel on the
//! real memory map: one module per suite.

pub mod frames;
pub mod heap;
pub mod pages;
