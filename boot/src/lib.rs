//! Firmware interface: the Open Firmware client interface and the `BootInfo`
//! the kernel reads through it at boot.
#![no_std]
// Only the client interface (calls into firmware) needs unsafe code.
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod cas;
pub mod info;
#[allow(unsafe_code)]
pub mod of;
pub mod processor;
pub mod tree;

pub use info::{BootError, BootInfo, Cpu, Firmware, Range, Rtas, RtasTokens};
