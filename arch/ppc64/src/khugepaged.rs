//! khugepaged: a kernel thread that scans the address spaces registered
//! with it (as MADV_HUGEPAGE registers an mm with Linux's khugepaged) for
//! 2 MiB stretches of huge regions still mapped with small pages, and
//! collapses them under the `collapse_ipi=` policy in force. The scan
//! itself (`Mm::collapse_candidates`) and the collapse are kernel/ code.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::mm::collapse::Outcome;
use kernel::time;
use spin::Mutex;

use crate::sched::{self, Thread};
use crate::vm::UserMm;

static REGISTERED: Mutex<Vec<Weak<UserMm>>> = Mutex::new(Vec::new());
static THREAD: Mutex<Option<Arc<Thread>>> = Mutex::new(None);
static STOP: AtomicBool = AtomicBool::new(false);
/// Pause between scans, in microseconds (khugepaged_scan_sleep_millisecs).
static SLEEP_US: AtomicU64 = AtomicU64::new(10_000);

/// What the daemon has done since boot.
pub static PASSES: AtomicU64 = AtomicU64::new(0);
pub static COLLAPSED: AtomicU64 = AtomicU64::new(0);
pub static ABORTED_PINNED: AtomicU64 = AtomicU64::new(0);
pub static ABORTED_OTHER: AtomicU64 = AtomicU64::new(0);

/// Asks the daemon to scan `mm` (khugepaged_enter).
pub fn register(mm: &Arc<UserMm>) {
    let mut registered = REGISTERED.lock();
    registered.retain(|weak| weak.strong_count() > 0);
    if !registered.iter().any(|weak| core::ptr::eq(weak.as_ptr(), Arc::as_ptr(mm))) {
        registered.push(Arc::downgrade(mm));
    }
}

/// Stops scanning `mm`.
pub fn unregister(mm: &Arc<UserMm>) {
    REGISTERED.lock().retain(|weak| weak.strong_count() > 0 && !core::ptr::eq(weak.as_ptr(), Arc::as_ptr(mm)));
}

/// Starts the daemon on CPU `cpu`, scanning every `sleep_us`; false if it
/// runs already or the CPU is not online.
pub fn start(cpu: usize, sleep_us: u64) -> bool {
    let mut thread = THREAD.lock();
    if thread.is_some() {
        return false;
    }
    SLEEP_US.store(sleep_us, Ordering::Relaxed);
    STOP.store(false, Ordering::Release);
    *thread = sched::spawn(cpu, "khugepaged", daemon, 0, None);
    thread.is_some()
}

/// Stops the daemon and waits for it (up to `timeout_us`); false if it did
/// not stop in time (it is then left running).
pub fn stop(timeout_us: u64) -> bool {
    let Some(thread) = THREAD.lock().take() else { return true };
    STOP.store(true, Ordering::Release);
    if thread.clone().join(timeout_us) {
        return true;
    }
    *THREAD.lock() = Some(thread);
    false
}

/// One pass over every registered address space; how many ranges it
/// collapsed.
pub fn scan_once() -> u64 {
    let live: Vec<Arc<UserMm>> = REGISTERED.lock().iter().filter_map(Weak::upgrade).collect();
    let mut collapsed = 0;
    for mm in live {
        for base in mm.collapse_candidates() {
            if STOP.load(Ordering::Acquire) {
                return collapsed;
            }
            // With the IPI as `collapse_ipi=` says (the knob governs khugepaged).
            match mm.collapse(base) {
                Outcome::Collapsed => {
                    collapsed += 1;
                    COLLAPSED.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::AbortedPinned(_) => {
                    ABORTED_PINNED.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::AbortedOther(_) => {
                    ABORTED_OTHER.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    PASSES.fetch_add(1, Ordering::Release);
    collapsed
}

fn daemon(_: u64) {
    while !STOP.load(Ordering::Acquire) {
        scan_once();
        let deadline = time::deadline_us(SLEEP_US.load(Ordering::Relaxed));
        while time::now() < deadline && !STOP.load(Ordering::Acquire) {
            sched::yield_now();
            core::hint::spin_loop();
        }
    }
}
