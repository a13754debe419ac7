//! Firmware interface: the device tree, read through the Open Firmware client
//! interface (pseries) or from a flattened blob (skiboot on powernv), and the
//! `BootInfo` the kernel builds from it at boot.
#![no_std]
// Only the client interface (calls into firmware) and `Fdt::from_raw` (a blob
// at a firmware-given address) need unsafe code.
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod cas;
pub mod fdt;
pub mod info;
#[allow(unsafe_code)]
pub mod of;
pub mod processor;
pub mod tree;

pub use fdt::{Fdt, FdtError};
pub use info::{BootError, BootInfo, Cpu, Firmware, Range, Rtas, RtasTokens};
