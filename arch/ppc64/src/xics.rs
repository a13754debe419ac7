//! The XICS interrupt presentation layer through hcalls (PAPR "Interrupt
//! Support"): each CPU accepts every priority (CPPR 0xff), an IPI is a write
//! of a priority to the target's MFRR (H_IPI), and the target's external
//! interrupt handler fetches the source (H_XIRR), clears its own MFRR and
//! signals end of interrupt (H_EOI). CAS asked the platform for XICS.

use crate::hcall::{self, hcall4, hcall_ret, H_CPPR, H_EOI, H_IPI, H_XIRR};

/// The XICS source number of inter-processor interrupts.
const XICS_IPI: u32 = 2;
/// Priorities: lower is more favoured; 0xff is "none" (CPPR: accept all).
const IPI_PRIORITY: u64 = 4;
const PRIORITY_NONE: u64 = 0xff;
/// XIRR: CPPR in the top byte, the source (XISR) below.
const XISR_MASK: u64 = 0x00ff_ffff;

/// Lets this CPU take interrupts of every priority.
pub fn init_cpu() -> Result<(), i64> {
    match hcall4(H_CPPR, PRIORITY_NONE, 0, 0, 0) {
        hcall::H_SUCCESS => Ok(()),
        status => Err(status),
    }
}

/// Interrupts the CPU with interrupt server `server`.
pub fn send_ipi(server: u32) {
    hcall4(H_IPI, server as u64, IPI_PRIORITY, 0, 0);
}

/// Handles an external interrupt: every pending source, each ended with
/// H_EOI. IPIs run `on_ipi`; any other source is counted and ended.
pub fn handle_external(my_server: u32, on_ipi: impl Fn()) -> u32 {
    let mut other = 0;
    loop {
        let (status, out) = hcall_ret(H_XIRR, [0; 4]);
        let xirr = out[0];
        let source = (xirr & XISR_MASK) as u32;
        if status != hcall::H_SUCCESS || source == 0 {
            return other; // nothing (more) pending
        }
        if source == XICS_IPI {
            // Clear our MFRR first, so an IPI sent while we run is not lost.
            hcall4(H_IPI, my_server as u64, PRIORITY_NONE, 0, 0);
            on_ipi();
        } else {
            other += 1;
        }
        hcall4(H_EOI, xirr, 0, 0, 0);
    }
}
