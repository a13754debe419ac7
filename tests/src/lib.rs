//! Host harness for the ppc64 kernel: builds the image, boots it in QEMU (`-M pseries`
//! with VOF or SLOF, or bare-metal `-M powernv9`/`powernv10` with skiboot), and judges the
//! console's KTAP output and QEMU's guest-error log.
//!
//! - [`qemu`]: the one QEMU command-line builder, and running a boot with a deadline.
//! - [`qmp`]: asking a running QEMU for an NMI (QMP), when a boot's deadline passes.
//! - [`ktap`], [`banner`]: reading the console.
//! - [`judge`]: pass/fail of one boot, as a pure function of its output.
//! - [`backtrace`]: source lines for the addresses of the kernel's fatal reports (DWARF).
//! - [`results`]: the files each boot leaves under `build/results/`.
//! - [`matrix`]: the boots of `tests/matrix.cfg` (`HARNESS_MATRIX=1 cargo test -p harness --test
//!   matrix`; plain `cargo test` lists them as ignored).
//! - [`image`]: the kernel image (`KERNEL_IMAGE`, or `make kernel` once per process).
//! - [`race`]: the race lab's verdicts, read from boots and loom (`make race`).
//! - [`bench`]: benchmark results: parsing, the Markdown table, the plots (`make bench`).
//! - [`disasm`]: the built kernel's barriers, checked in its disassembly.
//! - [`modules`]: import cycles among a crate's modules.
//!
//! Environment: `QEMU` (binary), `BOOT_TIMEOUT` (seconds), `KERNEL_IMAGE` (skip the build),
//! `HARNESS_MATRIX` (boot the matrix), `HARNESS_ONLY` (boot only matrix rows whose name
//! contains it), `HARNESS_JOBS` (parallel boots; default: the number of host CPUs).

// Only process handling (signals, the parent-death signal) needs unsafe code.
#![deny(unsafe_code)]

pub mod backtrace;
pub mod banner;
pub mod bench;
pub mod disasm;
pub mod image;
pub mod judge;
pub mod ktap;
pub mod matrix;
pub mod modules;
#[allow(unsafe_code)]
mod process;
pub mod qemu;
pub mod qmp;
pub mod race;
pub mod results;
