//! Firmware interface: the Open Firmware client interface and the `BootInfo`
//! the kernel reads through it at boot.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod cas;
pub mod info;
pub mod of;
pub mod processor;
pub mod tree;

pub use info::{BootError, BootInfo, Cpu, Firmware, Range, Rtas, RtasTokens};
