//! Self-tests of the portable memory management, run in the kernel on the
//! real memory map: one module per suite.

// Unsafe code only in the items that say so (each block with its SAFETY).
#![deny(unsafe_code)]

pub mod frames;
pub mod heap;
pub mod pages;
