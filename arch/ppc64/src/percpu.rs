//! Per-CPU data, reached through SPRG0 (and from the interrupt entry code,
//! which has no other register to spare).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use core::mem::offset_of;

use crate::cpu;
use crate::exceptions::CaughtFault;

#[repr(C)]
pub struct PerCpu {
    /// Scratch for exception_common (the vector number while registers are saved).
    scratch: [u64; 4],
    /// The kernel TOC, reloaded into r2 on interrupt entry.
    toc: u64,
    pub index: u64,
    /// Last fault a probe caught; written only by this CPU's interrupt path.
    last_fault: UnsafeCell<CaughtFault>,
}

// The offsets asm/exceptions.s uses.
const _: () = {
    assert!(offset_of!(PerCpu, scratch) == 0);
    assert!(offset_of!(PerCpu, toc) == 32);
};

// SAFETY: each PerCpu is only touched by the CPU it belongs to (its interrupt
// path included), so there is no concurrent access.
unsafe impl Sync for PerCpu {}

static BOOT_CPU: PerCpu =
    PerCpu { scratch: [0; 4], toc: 0, index: 0, last_fault: UnsafeCell::new(CaughtFault { vector: 0, srr0: 0, srr1: 0, dar: 0, dsisr: 0 }) };

/// Whether SPRG0 points at a PerCpu yet (the firmware's value before that).
static READY: AtomicBool = AtomicBool::new(false);

/// Points SPRG0 at the boot CPU's area and records the TOC for interrupts.
pub fn init_boot_cpu() {
    let area = &BOOT_CPU as *const PerCpu as *mut PerCpu;
    // SAFETY: before interrupts can reach the kernel, nothing else reads it.
    unsafe { (*area).toc = cpu::toc() };
    cpu::set_sprg0(area as u64);
    READY.store(true, Ordering::Release);
}

/// This CPU's index, or 0 before per-CPU data exists (for fatal reports).
pub fn index() -> u64 {
    if READY.load(Ordering::Acquire) {
        this().index
    } else {
        0
    }
}

pub fn this() -> &'static PerCpu {
    let value: u64;
    // SAFETY: reads SPRG0, which init_boot_cpu set before interrupts were
    // possible and which always points at a static PerCpu.
    unsafe {
        core::arch::asm!("mfspr {0}, {1}", out(reg) value, const cpu::spr::SPRG0, options(nomem, nostack, preserves_flags));
        &*(value as *const PerCpu)
    }
}

impl PerCpu {
    pub fn record_fault(&self, fault: CaughtFault) {
        // SAFETY: only this CPU's interrupt path writes it, and the interrupted
        // code reads it only through `last_fault` (a copy), never across the write.
        unsafe { self.last_fault.get().write_volatile(fault) }
    }

    pub fn last_fault(&self) -> CaughtFault {
        // SAFETY: see record_fault.
        unsafe { self.last_fault.get().read_volatile() }
    }
}
