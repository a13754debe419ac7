//! The XICS interrupt presentation layer through hcalls (PAPR "Interrupt
//! Support"): each CPU accepts every priority (CPPR 0xff), an IPI is a write
//! of a priority to the target's MFRR (H_IPI), and the target's external
//! interrupt handler fetches the source (H_XIRR), clears its own MFRR and
//! signals end of interrupt (H_EOI). CAS asked the platform for XICS.

use super::hcall::{self, hcall4, hcall_ret, H_CPPR, H_EOI, H_IPI, H_XIRR};
use crate::platform::IrqController;

/// The XICS source number of inter-processor interrupts.
const XICS_IPI: u32 = 2;
/// Priorities: lower is more favoured; 0xff is "none" (CPPR: accept all).
const IPI_PRIORITY: u64 = 4;
const PRIORITY_NONE: u64 = 0xff;
/// XIRR: CPPR in the top byte, the source (XISR) below.
const XISR_MASK: u64 = 0x00ff_ffff;

/// XICS through hcalls.
pub struct Xics;
pub static XICS: Xics = Xics;

impl IrqController for Xics {
    /// CPPR 0xff: this CPU takes interrupts of every priority.
    fn init_cpu(&self) -> Result<(), &'static str> {
        match hcall4(H_CPPR, PRIORITY_NONE, 0, 0, 0) {
            hcall::H_SUCCESS => Ok(()),
            _ => Err("H_CPPR failed"),
        }
    }

    /// XICS presents IPIs as external interrupts.
    fn ipi_vector(&self) -> u64 {
        crate::trap::vector::EXTERNAL
    }

    /// A write of the IPI priority to the target's MFRR.
    fn send_ipi(&self, server: u32) {
        hcall4(H_IPI, server as u64, IPI_PRIORITY, 0, 0);
    }

    /// Every pending source, each ended with H_EOI. IPIs run `on_ipi`; any
    /// other source is counted and ended.
    fn handle_external(&self, my_server: u32, on_ipi: &dyn Fn()) -> u32 {
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
}
