//! The atomics the lockless mm code is written with: the processor's, or
//! under `cfg(loom)` loom's models of them, so that the same source (GUP-fast,
//! collapse, page refcounts, page-table entries, RCU) is what the model
//! checker explores (kernel/tests/loom_*.rs). Statistics and settings that
//! are not part of any protocol keep `core` atomics.

#[cfg(not(loom))]
pub mod atomic {
    pub use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
}

#[cfg(loom)]
pub mod atomic {
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
}

/// A busy-wait hint; under loom, a yield, so the model lets others run.
pub fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
