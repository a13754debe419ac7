//! The portable kernel core: console and logging, command line, memory
//! management, and the self-test framework. No inline assembly here: what
//! needs the machine comes from `arch/`.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bench;
pub mod cmdline;
pub mod console;
pub mod cpuset;
pub mod ktest;
pub mod mm;
pub mod rcu;
pub mod symbols;
pub mod sync;
pub mod time;
