//! Storage and segment interrupts, in Linux's do_page_fault order: first
//! the MMU backend's share (the hash MMU fills its SLB and HPT from the
//! tree), then the resolver of the active address space.

use kernel::mm::LINEAR_MAP_BASE;

use super::backend::backend;
use super::space::{self, Fault};
use crate::cpu;
use crate::trap::{dsisr, isi_srr1, vector, FaultAction, TrapFrame};

/// Returns `Retry` when the access should be re-executed. Returns with
/// interrupts as the faulting code had them (on, if they were on there):
/// the kernel's return path turns them off with MSR[RI] in one mtmsrd (an
/// mtmsrd costs about as much as 100 instructions under TCG, and a fault
/// is about 1,000), and a caller with more to do first turns them off
/// itself.
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
    // interrupt is safe.
    if frame.srr1 & cpu::msr::EE != 0 {
        cpu::enable_interrupts();
    }
    resolver.resolve(&Fault { space, address, store, instruction, missing })
}
