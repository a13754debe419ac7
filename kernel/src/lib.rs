//! The portable kernel core: console and logging, command line, memory
//! management, and the self-test framework. No inline assembly here: what
//! needs the machine comes from `arch/`.
#![no_std]
// Unsafe code only where a module says it needs it (and there every block
// has its SAFETY comment): the allow lines below are the whole list, with
// ktest::registered, which reads the linker's .ktest section, and the link
// section of each #[ktest] registration.
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;
// What #[ktest] expands to names `::kernel::ktest`, here as in other crates.
extern crate self as kernel;

pub mod bench;
pub mod cmdline;
pub mod console;
pub mod cpuset;
pub mod ktest;
#[allow(unsafe_code)]
pub mod mm;
#[allow(unsafe_code)]
pub mod rcu;
pub mod rollcall;
#[deny(unsafe_code)]
pub mod sched;
pub mod symbols;
#[allow(unsafe_code)]
pub mod sync;
pub mod time;
