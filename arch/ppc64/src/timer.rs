//! The decrementer tick (Power ISA Book III, 9.2): DEC counts down at the
//! timebase frequency and interrupts (0x900, when MSR[EE] = 1) once it goes
//! negative; the handler re-arms it. A CPU whose interrupts are off takes no
//! tick, which is what makes every tick a quiescent state for sched-RCU.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// Ticks per second.
pub const HZ: u64 = 100;
/// SPR 22: the decrementer.
const SPR_DEC: u32 = 22;

static INTERVAL: AtomicU64 = AtomicU64::new(u32::MAX as u64 >> 1);

pub fn init(timebase_frequency: u64) {
    // A 32-bit decrementer holds at most 2^31 - 1 (the large decrementer is
    // the hypervisor's to enable); at 512 MHz a 10 ms tick is well below.
    INTERVAL.store((timebase_frequency / HZ).min(u32::MAX as u64 >> 1), Ordering::Relaxed);
}

/// Sets the decrementer to one tick from now.
pub fn arm() {
    let interval = INTERVAL.load(Ordering::Relaxed);
    // SAFETY: writing DEC only schedules the next decrementer interrupt.
    unsafe { asm!("mtspr {spr}, {0}", in(reg) interval, spr = const SPR_DEC, options(nomem, nostack)) };
}

/// The timebase when the kernel was entered, for the boot-time report.
static KERNEL_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Notes that the kernel was entered now (first thing at boot).
pub fn record_kernel_entry() {
    KERNEL_ENTRY.store(crate::cpu::timebase(), Ordering::Relaxed);
}

pub fn kernel_entry() -> u64 {
    KERNEL_ENTRY.load(Ordering::Relaxed)
}
