//! The decrementer tick (Power ISA Book III, 9.2): DEC counts down at the
//! timebase frequency and interrupts (0x900, when MSR[EE] = 1) once it goes
//! negative; the handler re-arms it. A CPU whose interrupts are off takes no
//! tick, which is what makes every tick a quiescent state for sched-RCU.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::percpu::{self, MAX_CPUS};

/// Ticks per second.
pub const HZ: u64 = 100;
/// SPR 22: the decrementer.
const SPR_DEC: u32 = 22;

static INTERVAL: AtomicU64 = AtomicU64::new(FARTHEST);

pub fn init(timebase_frequency: u64) {
    // A 32-bit decrementer holds at most 2^31 - 1 (the large decrementer is
    // the hypervisor's to enable); at 512 MHz a 10 ms tick is well below.
    INTERVAL.store((timebase_frequency / HZ).min(FARTHEST), Ordering::Relaxed);
}

/// The CPUs whose tick a self-test holds back (`hold`).
static HELD: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// The CPUs whose decrementer `arm` last set that far out (`held`).
static ARMED_FAR: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// As far out as the decrementer reaches: about 4 s at 512 MHz.
const FARTHEST: u64 = u32::MAX as u64 >> 1;

/// Holds back CPU `cpu`'s tick, or lets it go: the next tick it takes
/// re-arms the decrementer as far out as it reaches instead of one tick
/// ahead, so that until then only an interrupt from another CPU wakes it.
/// Whoever lets it go has it re-arm (`arm` on that CPU), or it ticks again
/// only that far out.
pub fn hold(cpu: usize, held: bool) {
    if let Some(flag) = HELD.get(cpu) {
        flag.store(held, Ordering::Relaxed);
    }
}

/// Whether CPU `cpu`'s decrementer was last armed held back (far out).
pub fn held(cpu: usize) -> bool {
    ARMED_FAR.get(cpu).is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// Sets the decrementer to one tick from now (or, while this CPU's tick is
/// held, as far out as it reaches).
pub fn arm() {
    let cpu = percpu::index() as usize;
    let held = HELD.get(cpu).is_some_and(|flag| flag.load(Ordering::Relaxed));
    let interval = if held { FARTHEST } else { INTERVAL.load(Ordering::Relaxed) };
    // SAFETY: writing DEC only schedules the next decrementer interrupt.
    unsafe { asm!("mtspr {spr}, {0}", in(reg) interval, spr = const SPR_DEC, options(nomem, nostack)) };
    if let Some(flag) = ARMED_FAR.get(cpu) {
        if flag.load(Ordering::Relaxed) != held {
            flag.store(held, Ordering::Relaxed);
        }
    }
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
