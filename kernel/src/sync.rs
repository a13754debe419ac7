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

/// A value set once while the kernel boots and read by every CPU after,
/// without an acquire on each read: the boot-time choices (platform, MMU
/// backend, page descriptors) that interrupt handlers and the fault path
/// ask for on every call. `spin::Once::get` is an acquire load, which POWER
/// compiles to ld; cmpd; bne; isync, and under TCG the isync ends the
/// translation block; this reads the state Relaxed, as Linux reads its
/// boot-time globals plainly.
///
/// That is sound only because nobody can read before the set is visible to
/// them, which [`BootOnce::set`]'s caller promises: the reader is the
/// setting CPU itself, later in its program order, or a CPU that starts
/// (or synchronizes with the setter) after the set. Every CPU but the boot
/// CPU starts through the firmware after `set`, and the start orders what
/// the boot CPU stored before it, as `percpu::ready` relies on too.
pub struct BootOnce<T> {
    state: core::sync::atomic::AtomicU8,
    value: core::cell::UnsafeCell<core::mem::MaybeUninit<T>>,
}

// SAFETY: the value is written once, before any reader can see the state
// say so (set's contract), and only read after; T itself is shared.
unsafe impl<T: Send + Sync> Sync for BootOnce<T> {}

const UNSET: u8 = 0;
const SETTING: u8 = 1;
const SET: u8 = 2;

impl<T> BootOnce<T> {
    pub const fn new() -> Self {
        BootOnce {
            state: core::sync::atomic::AtomicU8::new(UNSET),
            value: core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()),
        }
    }

    /// Stores `value`; a second call keeps the first value and returns
    /// false.
    ///
    /// # Safety
    /// Every CPU that calls [`BootOnce::get`] later either is this one or
    /// is ordered after this call by something else: it starts after it
    /// (the firmware's start-CPU call follows it), or it synchronizes with
    /// this CPU (an acquire of a release) after it.
    pub unsafe fn set(&self, value: T) -> bool {
        use core::sync::atomic::Ordering;
        if self.state.compare_exchange(UNSET, SETTING, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        // SAFETY: the compare-exchange above made this call the only writer,
        // and no reader looks at the value before the state says SET.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(SET, Ordering::Release);
        true
    }

    /// The value, once set.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(core::sync::atomic::Ordering::Relaxed) == SET {
            // SAFETY: SET is stored after the value is written, and set's
            // caller guarantees that this CPU's view includes that write.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

impl<T> Default for BootOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::BootOnce;

    #[test]
    fn boot_once_is_empty_then_keeps_its_first_value() {
        let cell = BootOnce::new();
        assert_eq!(cell.get(), None);
        // SAFETY: one thread sets and reads.
        assert!(unsafe { cell.set(7u32) });
        assert_eq!(cell.get(), Some(&7));
        // SAFETY: as above.
        assert!(!unsafe { cell.set(8) });
        assert_eq!(cell.get(), Some(&7));
    }
}
