//! khugepaged's policy: the address spaces registered with it (as
//! MADV_HUGEPAGE registers an mm with Linux's khugepaged) are scanned for
//! 2 MiB stretches of huge regions still mapped with small pages
//! (`Mm::collapse_candidates`), and each is collapsed under the
//! `collapse_ipi=` policy in force. The daemon thread itself (spawning it,
//! giving the CPU away between passes) is the platform's.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;

use super::collapse::Outcome;
use super::vm::{Mm, MmArch, PageMemory};
use crate::time;

pub struct Khugepaged<A: MmArch, P: PageMemory> {
    registered: Mutex<Vec<Weak<Mm<A, P>>>>,
    stop: AtomicBool,
    /// Pause between passes, in microseconds (khugepaged_scan_sleep_millisecs).
    sleep_us: AtomicU64,
    /// What the daemon has done since boot.
    pub passes: AtomicU64,
    pub collapsed: AtomicU64,
    pub aborted_pinned: AtomicU64,
    pub aborted_other: AtomicU64,
}

impl<A: MmArch, P: PageMemory> Default for Khugepaged<A, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: MmArch, P: PageMemory> Khugepaged<A, P> {
    pub const fn new() -> Self {
        Khugepaged {
            registered: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            sleep_us: AtomicU64::new(10_000),
            passes: AtomicU64::new(0),
            collapsed: AtomicU64::new(0),
            aborted_pinned: AtomicU64::new(0),
            aborted_other: AtomicU64::new(0),
        }
    }

    /// Asks the daemon to scan `mm` (khugepaged_enter); once is enough.
    pub fn register(&self, mm: &Arc<Mm<A, P>>) {
        let mut registered = self.registered.lock();
        registered.retain(|weak| weak.strong_count() > 0);
        if !registered.iter().any(|weak| core::ptr::eq(weak.as_ptr(), Arc::as_ptr(mm))) {
            registered.push(Arc::downgrade(mm));
        }
    }

    /// Stops scanning `mm`.
    pub fn unregister(&self, mm: &Arc<Mm<A, P>>) {
        self.registered.lock().retain(|weak| weak.strong_count() > 0 && !core::ptr::eq(weak.as_ptr(), Arc::as_ptr(mm)));
    }

    /// One pass over every registered address space; how many ranges it
    /// collapsed. Stops early when asked to stop.
    pub fn scan_once(&self) -> u64 {
        let live: Vec<Arc<Mm<A, P>>> = self.registered.lock().iter().filter_map(Weak::upgrade).collect();
        let mut collapsed = 0;
        for mm in live {
            for base in mm.collapse_candidates() {
                if self.stop.load(Ordering::Acquire) {
                    return collapsed;
                }
                // With the IPI as `collapse_ipi=` says (the knob governs khugepaged).
                match mm.collapse(base) {
                    Outcome::Collapsed => {
                        collapsed += 1;
                        self.collapsed.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::AbortedPinned(_) => {
                        self.aborted_pinned.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::AbortedOther(_) => {
                        self.aborted_other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.passes.fetch_add(1, Ordering::Release);
        collapsed
    }

    /// Prepares a run of the daemon that pauses `sleep_us` between passes.
    pub fn prepare(&self, sleep_us: u64) {
        self.sleep_us.store(sleep_us, Ordering::Relaxed);
        self.stop.store(false, Ordering::Release);
    }

    /// Asks a running daemon to stop at its next check.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// The daemon's body, on its thread: passes until asked to stop, giving
    /// the CPU away (`yield_now`) while it waits between them.
    pub fn run(&self, yield_now: impl Fn()) {
        while !self.stop.load(Ordering::Acquire) {
            self.scan_once();
            let deadline = time::deadline_us(self.sleep_us.load(Ordering::Relaxed));
            while time::now() < deadline && !self.stop.load(Ordering::Acquire) {
                yield_now();
                core::hint::spin_loop();
            }
        }
    }
}
