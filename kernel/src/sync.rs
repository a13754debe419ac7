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

/// A spinning mutex (`spin::Mutex`), or loom's model of a mutex.
pub struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(loom))]
pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Mutex { inner: spin::Mutex::new(value) }
    }

    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex { inner: loom::sync::Mutex::new(value) }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self.inner.lock().expect("a loom model thread panicked holding the lock");
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        return self.inner.try_lock();
        #[cfg(loom)]
        return self.inner.try_lock().ok();
    }
}
