//! Interrupt vectors and their Rust side.
//!
//! The kernel runs with translation off, so interrupts land at their real
//! vector addresses (AIL = 0). `install` writes a 4-instruction stub at each
//! vector that branches to `exception_common` (asm/exceptions.s), which saves
//! a `TrapFrame` and calls `exception_dispatch`.
//!
//! An interrupt at an instruction listed in the exception table (`__ex_table`,
//! the `probe_*` helpers) resumes at its fix-up; anything else is unexpected
//! and fatal: the report shows the vector, SRR0/SRR1, DAR/DSISR, all GPRs and a
//! symbolised backtrace, then the run fails and the machine powers off.
//! The system reset (0x100) is the one other exception: nmi.rs makes it a
//! report of every CPU.

use core::arch::global_asm;
use core::sync::atomic::Ordering;

use crate::mmu;
use crate::platform::machine;
use crate::trap::{self, vector, CaughtFault, FaultAction, TrapFrame, RELOCATED_VECTOR_OFFSET, VECTORS};
use crate::{cpu, fatal, nmi, percpu, sched, smp, timer};

global_asm!(include_str!("asm/exceptions.s"));

extern "C" {
    static vector_stub_template: u32;
    static vector_stub_template_end: u32;
    static exception_common: u32;
    static scv_stub_template: u32;
    static scv_stub_template_end: u32;
    static scv_entry: u32;
    static __ex_table_start: u32;
    static __ex_table_end: u32;
    pub fn probe_trap() -> u64;
    pub static probe_trap_insn: u32;
    pub fn probe_load_u64(address: *const u64, value: *mut u64) -> u64;
    pub static probe_load_insn: u32;
    pub fn probe_fp_instruction() -> u64;
    pub fn probe_vsx_instruction() -> u64;
    pub fn probe_lwarx(address: u64) -> u64;
    pub fn probe_store_u64(address: *mut u64, value: u64) -> u64;
    pub fn probe_execute(address: u64) -> u64;
    static probe_execute_return: u32;
}

const STUB_WORDS: usize = 4;
/// Word 2 of the stub is `li r12, 0`; its low 16 bits take the vector.
const STUB_LI_WORD: usize = 2;
/// Word 3 is `b .`; its LI field (bits 6..29) takes the displacement.
const STUB_BRANCH_WORD: usize = 3;
const BRANCH_DISPLACEMENT_MASK: u32 = 0x03ff_fffc;

/// Writes the vector stubs at their real addresses and at their
/// relocation-on (AIL 3) addresses, 0x4000 higher.
///
/// # Safety
/// Translation must be off and nothing else may use `[0, VECTOR_AREA_END)`
/// (the firmware must be done with it).
pub unsafe fn install(dcache_block: usize, icache_block: usize) {
    // SAFETY: linker/asm symbols; only their addresses are used.
    let (template, template_end, common) = unsafe {
        (
            &vector_stub_template as *const u32,
            &vector_stub_template_end as *const u32,
            &exception_common as *const u32 as u64,
        )
    };
    assert_eq!(template_end as usize - template as usize, STUB_WORDS * 4);
    // In hypervisor state (bare metal) external interrupts go to the
    // hypervisor too (LPCR[LPES0] = 0) and save state in HSRR0/1.
    let hypervisor = cpu::msr() & cpu::msr::HV != 0;
    let places = VECTORS.iter().flat_map(|&(vector, _)| [(vector, vector), (vector, vector + RELOCATED_VECTOR_OFFSET)]);
    for (vector, place) in places {
        let flag = u32::from(trap::uses_hsrr(vector, hypervisor));
        // SAFETY: the vector area is ours (caller contract).
        unsafe { write_stub(place, template, vector as u32 | flag, common, dcache_block, icache_block) };
    }
    // SAFETY: as above (the scv vectors lie in the same area).
    unsafe { install_scv(dcache_block, icache_block) };
}

/// The `scv` vectors: one stub per level (0..128) at 0x3000 + 0x20 * LEV,
/// where `scv` lands with relocation on (AIL 3; a process runs only with
/// translation on, so the AIL 0 vectors at 0x17000 are never used). Each
/// passes its level to `scv_entry`, which makes it vector
/// `trap::SYSTEM_CALL_VECTORED + 0x20 * LEV`.
///
/// # Safety
/// As `install`.
unsafe fn install_scv(dcache_block: usize, icache_block: usize) {
    // SAFETY: linker/asm symbols; only their addresses are used.
    let (template, template_end, entry) = unsafe {
        (&scv_stub_template as *const u32, &scv_stub_template_end as *const u32, &scv_entry as *const u32 as u64)
    };
    assert_eq!(template_end as usize - template as usize, STUB_WORDS * 4);
    for level in 0..trap::SCV_LEVELS {
        let place = trap::vector::SYSTEM_CALL_VECTORED + 0x20 * level;
        // SAFETY: the vector area is ours (caller contract).
        unsafe { write_stub(place, template, level as u32, entry, dcache_block, icache_block) };
    }
}

/// Copies the STUB_WORDS-word `template` to physical `place`, ORs `li` into
/// its `li` (word STUB_LI_WORD) and points its branch (word
/// STUB_BRANCH_WORD) at `target`, then makes it visible to instruction fetch.
///
/// # Safety
/// `place` must be in the vector area, which is the caller's to write and
/// real-mode addressable; `template` is STUB_WORDS words of kernel text.
unsafe fn write_stub(place: u64, template: *const u32, li: u32, target: u64, dcache_block: usize, icache_block: usize) {
    let stub = kernel::mm::phys_to_virt(place) as *mut u32;
    for word in 0..STUB_WORDS {
        // SAFETY: as the caller promises, for both ends.
        unsafe { stub.add(word).write_volatile(template.add(word).read()) };
    }
    let branch_at = stub as u64 + 4 * STUB_BRANCH_WORD as u64;
    let displacement = target.wrapping_sub(branch_at) as i64;
    assert!((-(1 << 25)..(1 << 25)).contains(&displacement), "a vector stub's target is out of branch range");
    // SAFETY: patching the words just written.
    unsafe {
        let li_word = stub.add(STUB_LI_WORD);
        li_word.write_volatile(li_word.read() | li);
        let branch = stub.add(STUB_BRANCH_WORD);
        branch.write_volatile(
            (branch.read() & !BRANCH_DISPLACEMENT_MASK) | (displacement as u32 & BRANCH_DISPLACEMENT_MASK),
        );
    }
    cpu::sync_icache(stub as usize, STUB_WORDS * 4, dcache_block, icache_block);
}

/// Loads the doubleword at `address`; `Err(vector)` if the load raised an
/// interrupt (caught through probe_load_u64's exception-table entry).
pub fn try_load(address: u64) -> Result<u64, u64> {
    let mut value = 0;
    // SAFETY: probe_load_u64's load has an exception-table entry, so a fault
    // comes back as its vector instead of being fatal.
    match unsafe { probe_load_u64(address as *const u64, &mut value) } {
        0 => Ok(value),
        vector => Err(vector),
    }
}

/// Stores `value` at `address`; `Err(vector)` if the store raised an
/// interrupt that nothing resolved.
pub fn try_store(address: u64, value: u64) -> Result<(), u64> {
    // SAFETY: probe_store_u64's store has an exception-table entry, so a
    // fault comes back as its vector instead of being fatal.
    match unsafe { probe_store_u64(address as *mut u64, value) } {
        0 => Ok(()),
        vector => Err(vector),
    }
}

/// The fix-up for a faulting instruction, from the exception table.
fn search_exception_table(address: u64) -> Option<u64> {
    // SAFETY: linker-defined bounds of __ex_table, which holds pairs of i32.
    let (start, end) = unsafe { (&__ex_table_start as *const u32 as usize, &__ex_table_end as *const u32 as usize) };
    let mut entry = start;
    while entry + 8 <= end {
        // SAFETY: entry..entry+8 lies inside __ex_table.
        let (insn, fixup) = unsafe { ((entry as *const i32).read(), ((entry + 4) as *const i32).read()) };
        let insn_address = (entry as i64 + insn as i64) as u64;
        if insn_address == address {
            return Some((entry as i64 + 4 + fixup as i64) as u64);
        }
        entry += 8;
    }
    None
}

#[no_mangle]
extern "C" fn exception_dispatch(frame: &mut TrapFrame) {
    dispatch(frame);
    if frame.came_from_user() {
        crate::process::returning_to_user(frame);
    }
}

fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        // IPIs: an external interrupt (an interrupt controller's) or, on
        // bare metal, a hypervisor doorbell, whichever the platform's
        // IrqController sends; the other is unexpected (below).
        v @ (vector::EXTERNAL | vector::DIRECTED_HYPERVISOR_DOORBELL) if v == machine().irq().ipi_vector() => {
            return smp::external_interrupt()
        }
        vector::DECREMENTER => return decrementer_interrupt(),
        // Sent from outside (the harness's NMI): every CPU reports, then
        // the machine powers off.
        vector::SYSTEM_RESET => return nmi::system_reset(frame),
        _ => {}
    }
    // From a process: its system calls and faults, or its end.
    if frame.came_from_user() {
        return crate::process::interrupt_from_user(frame);
    }
    // A fault the active address space can resolve is retried, as Linux's
    // do_page_fault runs before the exception-table fix-up. The resolver
    // may have turned interrupts on: the return path (exception_common)
    // turns them off with MSR[RI]; the fix-up and the fatal report below
    // run with them off, as every handler does. Not recorded for the
    // watchdog (no caller waits on an interrupt handler's exit).
    if mmu::handle_fault(frame) == FaultAction::Retry {
        return;
    }
    cpu::disable_interrupts();
    let cpu = percpu::this();
    // SAFETY: address of an asm label only.
    let execute_return = unsafe { &probe_execute_return as *const u32 as u64 };
    let fixup = match frame.vector {
        // probe_execute: the fault is at the callee, so resume at the return.
        vector::INSTRUCTION_STORAGE if frame.lr == execute_return => Some(execute_return),
        _ => search_exception_table(frame.srr0),
    };
    if let Some(fixup) = fixup {
        cpu.record_fault(CaughtFault {
            vector: frame.vector,
            srr0: frame.srr0,
            srr1: frame.srr1,
            dar: frame.dar,
            dsisr: frame.dsisr,
        });
        frame.gpr[3] = frame.vector;
        frame.gpr[4] = frame.fault_address();
        frame.srr0 = fixup;
        return;
    }
    fatal::unexpected_exception(frame)
}

/// 0x900: the tick. It is only taken with interrupts on, so it is a
/// sched-RCU quiescent state.
fn decrementer_interrupt() {
    timer::arm();
    percpu::this().ticks.fetch_add(1, Ordering::Relaxed);
    kernel::rcu::quiescent_state();
    sched::preempt();
}
