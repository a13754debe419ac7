//! IPIs on bare metal: directed hypervisor doorbells (Power ISA v3.0B,
//! Book III, 11 "Processor control"): `msgsnd` raises a doorbell exception
//! on the thread whose PIR is in RB, taken at 0xe80 with HSRR0/1 when its
//! MSR[EE] is on. They need no interrupt controller, so cross-calls,
//! `serialize_against_pte_lookup` and RCU work without one (Linux powernv
//! and kvm-unit-tests send IPIs this way on POWER9; XIVE is only needed for
//! device interrupts, which this kernel has none of).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform::IrqController;

/// RB's message type (bits 32:36): 5, a directed hypervisor doorbell
/// (Linux PPC_DBELL_SERVER); the target's PIR goes in the low bits.
const DOORBELL_HYPERVISOR: u64 = 5 << 27;
const PIR_MASK: u64 = 0x3fff;

/// Clears this thread's pending hypervisor doorbell.
fn msgclr() {
    // SAFETY: msgclr only clears this thread's pending doorbell exception
    // (hypervisor-privileged; the kernel runs in hypervisor state here).
    // The assembler does not know msgclr: X-form, opcode 31, XO 238, RB = r4.
    unsafe { asm!(".long 0x7c0021dc", in("r4") DOORBELL_HYPERVISOR, options(nomem, nostack)) };
}

/// Doorbell interrupts taken, on all CPUs (a doorbell stands for every
/// IPI sent since the last one, so this counts arrivals, not IPIs).
static TAKEN: AtomicU64 = AtomicU64::new(0);

pub fn taken() -> u64 {
    TAKEN.load(Ordering::Relaxed)
}

/// Hypervisor doorbells.
pub struct Doorbells;
pub static DOORBELLS: Doorbells = Doorbells;

impl IrqController for Doorbells {
    /// A doorbell left pending from before the kernel (skiboot's, or one
    /// sent while this thread waited in OPAL) is dropped: nothing is
    /// posted for it.
    fn init_cpu(&self) -> Result<(), &'static str> {
        msgclr();
        Ok(())
    }

    /// 0xe80; an external interrupt (0x500) is then no IPI but a device
    /// interrupt the kernel never enabled, reported as unexpected.
    fn ipi_vector(&self) -> u64 {
        crate::trap::vector::DIRECTED_HYPERVISOR_DOORBELL
    }

    /// `sync` first: the work the IPI announces (a mailbox) is visible to
    /// the target before the doorbell is (Linux's doorbell_global_ipi).
    fn send_ipi(&self, server: u32) {
        let rb = DOORBELL_HYPERVISOR | (server as u64 & PIR_MASK);
        // SAFETY: msgsnd raises a doorbell on another thread; the sync only
        // orders this thread's earlier stores.
        // msgsnd r4 by hand (opcode 31, XO 206), as msgclr.
        unsafe { asm!("sync", ".long 0x7c00219c", in("r4") rb, options(nostack)) };
    }

    /// One doorbell stands for every IPI sent since the last: the pending
    /// state is cleared before `on_ipi` looks at the mailboxes, so an IPI
    /// sent while it runs raises the doorbell again instead of being lost.
    /// `msgsync; lwsync` order the sender's stores before this thread's
    /// loads (POWER9 hypervisor doorbells; Linux ppc_msgsync).
    fn handle_external(&self, _my_server: u32, on_ipi: &dyn Fn()) -> u32 {
        msgclr();
        TAKEN.fetch_add(1, Ordering::Relaxed);
        // SAFETY: barriers only: msgsync (opcode 31, XO 886, by hand as
        // well), then lwsync.
        unsafe { asm!(".long 0x7c0006ec", "lwsync", options(nostack)) };
        on_ipi();
        0
    }
}
