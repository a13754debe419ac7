//! The khugepaged thread: `kernel::mm::khugepaged` decides what to scan and
//! collapse; here it is one kernel thread, pinned to a CPU, that gives the
//! CPU away between passes.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use kernel::mm::khugepaged::Khugepaged;
use spin::Mutex;

use crate::sched::{self, Thread};
use crate::vm::{KernelPages, SpaceArch, UserMm};

/// The one daemon of the kernel's address spaces.
pub static KHUGEPAGED: Khugepaged<SpaceArch, KernelPages> = Khugepaged::new();
static THREAD: Mutex<Option<Arc<Thread>>> = Mutex::new(None);

/// Asks the daemon to scan `mm` (khugepaged_enter).
pub fn register(mm: &Arc<UserMm>) {
    KHUGEPAGED.register(mm);
}

/// Stops scanning `mm`.
pub fn unregister(mm: &Arc<UserMm>) {
    KHUGEPAGED.unregister(mm);
}

/// Ranges the daemon collapsed since boot.
pub fn collapsed() -> u64 {
    KHUGEPAGED.collapsed.load(Ordering::Acquire)
}

/// Starts the daemon on CPU `cpu`, scanning every `sleep_us`; false if it
/// runs already or the CPU is not online.
pub fn start(cpu: usize, sleep_us: u64) -> bool {
    let mut thread = THREAD.lock();
    if thread.is_some() {
        return false;
    }
    KHUGEPAGED.prepare(sleep_us);
    *thread = sched::spawn(cpu, "khugepaged", daemon, 0, None);
    thread.is_some()
}

/// Stops the daemon and waits for it (up to `timeout_us`); false if it did
/// not stop in time (it is then left running).
pub fn stop(timeout_us: u64) -> bool {
    let Some(thread) = THREAD.lock().take() else { return true };
    KHUGEPAGED.request_stop();
    if thread.clone().join(timeout_us) {
        return true;
    }
    *THREAD.lock() = Some(thread);
    false
}

fn daemon(_: u64) {
    KHUGEPAGED.run(sched::yield_now);
}
