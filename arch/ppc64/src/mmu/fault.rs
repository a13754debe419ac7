//! Storage and segment interrupts, in Linux's do_page_fault order: first
//! the MMU backend's share (the hash MMU fills its SLB and HPT from the
//! tree), then the resolver of the active address space.

use kernel::mm::LINEAR_MAP_BASE;

use super::backend::backend;
use super::space::{self, Fault};
use crate::cpu;
use crate::trap::{dsisr, isi_srr1, vector, FaultAction, TrapFrame};

/// Returns `Retry` when the access should be re-executed.
pub fn handle_fault(frame: &TrapFrame) -> FaultAction {
    // In real mode the backend fixes nothing and no space is active.
    let backend = backend();
    if backend.handle_fault(frame) == FaultAction::Retry {
        return FaultAction::Retry;
    }
    let (address, store, instruction, missing) = match frame.vector {
        vector::DATA_STORAGE => {
            (frame.dar, frame.dsisr & dsisr::STORE != 0, false, frame.dsisr & dsisr::NO_TRANSLATION != 0)
        }
        vector::INSTRUCTION_STORAGE => (frame.srr0, false, true, frame.srr1 & isi_srr1::NO_TRANSLATION != 0),
        _ => return FaultAction::Unhandled,
    };
    if address >= LINEAR_MAP_BASE {
        return FaultAction::Unhandled; // kernel addresses belong to no address space
    }
    let Some(space) = backend.active_space() else { return FaultAction::Unhandled };
    let Some(resolver) = space::resolver_of(space) else { return FaultAction::Unhandled };
    // As Linux's do_page_fault: if the faulting code had interrupts on, the
    // resolver runs with them on (it may wait for locks whose holder waits
    // for this CPU's answer to an IPI). The frame is saved, so a nested
    // interrupt is safe; they go off again before the return path.
    let reenable = frame.srr1 & cpu::msr::EE != 0;
    if reenable {
        cpu::enable_interrupts();
    }
    let action = resolver.resolve(&Fault { space, address, store, instruction, missing });
    if reenable {
        // Off again for the return path; not recorded for the watchdog
        // (no caller waits on an interrupt handler's exit).
        cpu::disable_interrupts();
    }
    action
}
