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

use core::arch::global_asm;
use core::fmt;
use core::mem::offset_of;

use crate::{cpu, fatal, percpu};

global_asm!(include_str!("asm/exceptions.s"));

/// Interrupt vector offsets (Power ISA v3.0B, Book III, 7.5 "Interrupt
/// Definitions", Figure 70).
pub mod vector {
    pub const SYSTEM_RESET: u64 = 0x100;
    pub const MACHINE_CHECK: u64 = 0x200;
    pub const DATA_STORAGE: u64 = 0x300;
    pub const DATA_SEGMENT: u64 = 0x380;
    pub const INSTRUCTION_STORAGE: u64 = 0x400;
    pub const INSTRUCTION_SEGMENT: u64 = 0x480;
    pub const EXTERNAL: u64 = 0x500;
    pub const ALIGNMENT: u64 = 0x600;
    pub const PROGRAM: u64 = 0x700;
    pub const FP_UNAVAILABLE: u64 = 0x800;
    pub const DECREMENTER: u64 = 0x900;
    pub const HYPERVISOR_DECREMENTER: u64 = 0x980;
    pub const DIRECTED_PRIVILEGED_DOORBELL: u64 = 0xa00;
    pub const SYSTEM_CALL: u64 = 0xc00;
    pub const TRACE: u64 = 0xd00;
    pub const HYPERVISOR_DATA_STORAGE: u64 = 0xe00;
    pub const HYPERVISOR_INSTRUCTION_STORAGE: u64 = 0xe20;
    pub const HYPERVISOR_EMULATION_ASSIST: u64 = 0xe40;
    pub const HYPERVISOR_MAINTENANCE: u64 = 0xe60;
    pub const DIRECTED_HYPERVISOR_DOORBELL: u64 = 0xe80;
    pub const HYPERVISOR_VIRTUALIZATION: u64 = 0xea0;
    pub const PERFORMANCE_MONITOR: u64 = 0xf00;
    pub const VECTOR_UNAVAILABLE: u64 = 0xf20;
    pub const VSX_UNAVAILABLE: u64 = 0xf40;
    pub const FACILITY_UNAVAILABLE: u64 = 0xf60;
    pub const HYPERVISOR_FACILITY_UNAVAILABLE: u64 = 0xf80;
}

/// Every vector that gets a stub, with its name for reports.
pub const VECTORS: [(u64, &str); 26] = [
    (vector::SYSTEM_RESET, "system reset"),
    (vector::MACHINE_CHECK, "machine check"),
    (vector::DATA_STORAGE, "data storage"),
    (vector::DATA_SEGMENT, "data segment"),
    (vector::INSTRUCTION_STORAGE, "instruction storage"),
    (vector::INSTRUCTION_SEGMENT, "instruction segment"),
    (vector::EXTERNAL, "external"),
    (vector::ALIGNMENT, "alignment"),
    (vector::PROGRAM, "program"),
    (vector::FP_UNAVAILABLE, "floating-point unavailable"),
    (vector::DECREMENTER, "decrementer"),
    (vector::HYPERVISOR_DECREMENTER, "hypervisor decrementer"),
    (vector::DIRECTED_PRIVILEGED_DOORBELL, "directed privileged doorbell"),
    (vector::SYSTEM_CALL, "system call"),
    (vector::TRACE, "trace"),
    (vector::HYPERVISOR_DATA_STORAGE, "hypervisor data storage"),
    (vector::HYPERVISOR_INSTRUCTION_STORAGE, "hypervisor instruction storage"),
    (vector::HYPERVISOR_EMULATION_ASSIST, "hypervisor emulation assistance"),
    (vector::HYPERVISOR_MAINTENANCE, "hypervisor maintenance"),
    (vector::DIRECTED_HYPERVISOR_DOORBELL, "directed hypervisor doorbell"),
    (vector::HYPERVISOR_VIRTUALIZATION, "hypervisor virtualization"),
    (vector::PERFORMANCE_MONITOR, "performance monitor"),
    (vector::VECTOR_UNAVAILABLE, "vector unavailable"),
    (vector::VSX_UNAVAILABLE, "VSX unavailable"),
    (vector::FACILITY_UNAVAILABLE, "facility unavailable"),
    (vector::HYPERVISOR_FACILITY_UNAVAILABLE, "hypervisor facility unavailable"),
];

/// The end of the vector area; the frame allocator reserves `[0, VECTOR_AREA_END)`.
pub const VECTOR_AREA_END: u64 = 0x10000;
/// Where interrupts land with relocation on (AIL 3): 0xc000000000004000 + vector.
pub const RELOCATED_VECTOR_OFFSET: u64 = 0x4000;

pub fn vector_name(vector: u64) -> &'static str {
    VECTORS.iter().find(|(v, _)| *v == vector).map_or("unknown", |(_, name)| name)
}

/// SRR1 bits of a program interrupt (Power ISA v3.0B, Book III, 7.5.9).
pub mod program_srr1 {
    pub const TRAP: u64 = 1 << (63 - 46);
}

/// The interrupted state, as exception_common saves it.
#[repr(C)]
pub struct TrapFrame {
    pub gpr: [u64; 32],
    pub srr0: u64,
    pub srr1: u64,
    pub lr: u64,
    pub ctr: u64,
    pub xer: u64,
    pub cr: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub vector: u64,
    _pad: u64,
}

// The offsets asm/exceptions.s uses.
const _: () = {
    assert!(offset_of!(TrapFrame, gpr) == 0);
    assert!(offset_of!(TrapFrame, srr0) == 256);
    assert!(offset_of!(TrapFrame, srr1) == 264);
    assert!(offset_of!(TrapFrame, lr) == 272);
    assert!(offset_of!(TrapFrame, ctr) == 280);
    assert!(offset_of!(TrapFrame, xer) == 288);
    assert!(offset_of!(TrapFrame, cr) == 296);
    assert!(offset_of!(TrapFrame, dar) == 304);
    assert!(offset_of!(TrapFrame, dsisr) == 312);
    assert!(offset_of!(TrapFrame, vector) == 320);
    assert!(core::mem::size_of::<TrapFrame>() == 336);
};

impl TrapFrame {
    /// The address the fault is about: DAR for data storage and alignment
    /// interrupts, the instruction otherwise.
    pub fn fault_address(&self) -> u64 {
        match self.vector {
            vector::DATA_STORAGE | vector::DATA_SEGMENT | vector::ALIGNMENT => self.dar,
            _ => self.srr0,
        }
    }
}

impl fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  SRR0: {:016x}  SRR1: {:016x}  MSR-at-fault: {}", self.srr0, self.srr1, MsrBits(self.srr1))?;
        writeln!(f, "  DAR:  {:016x}  DSISR: {:08x}", self.dar, self.dsisr)?;
        writeln!(f, "  LR:   {:016x}  CTR: {:016x}  CR: {:08x}  XER: {:016x}", self.lr, self.ctr, self.cr, self.xer)?;
        for row in 0..8 {
            write!(f, " ")?;
            for column in 0..4 {
                let n = row * 4 + column;
                write!(f, " r{n:<2} {:016x}", self.gpr[n])?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Names of the MSR bits that are set, for reports.
struct MsrBits(u64);

impl fmt::Display for MsrBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use cpu::msr;
        const NAMES: [(u64, &str); 10] = [
            (msr::SF, "SF"),
            (msr::HV, "HV"),
            (msr::EE, "EE"),
            (msr::PR, "PR"),
            (msr::FP, "FP"),
            (msr::ME, "ME"),
            (msr::IR, "IR"),
            (msr::DR, "DR"),
            (msr::RI, "RI"),
            (msr::LE, "LE"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                write!(f, "{}{name}", if first { "" } else { "|" })?;
                first = false;
            }
        }
        Ok(())
    }
}

extern "C" {
    static vector_stub_template: u32;
    static vector_stub_template_end: u32;
    static exception_common: u32;
    static __ex_table_start: u32;
    static __ex_table_end: u32;
    pub fn probe_trap() -> u64;
    pub static probe_trap_insn: u32;
    pub fn probe_load_u64(address: *const u64, value: *mut u64) -> u64;
    pub static probe_load_insn: u32;
    pub fn probe_fp_instruction() -> u64;
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
    let places = VECTORS.iter().flat_map(|&(vector, _)| [(vector, vector), (vector, vector + RELOCATED_VECTOR_OFFSET)]);
    for (vector, place) in places {
        let stub = kernel::mm::phys_to_virt(place) as *mut u32;
        for word in 0..STUB_WORDS {
            // SAFETY: the vector area is ours (caller contract) and real-mode
            // addressable; the template is STUB_WORDS words of kernel text.
            unsafe { stub.add(word).write_volatile(template.add(word).read()) };
        }
        let branch_at = stub as u64 + 4 * STUB_BRANCH_WORD as u64;
        let displacement = common.wrapping_sub(branch_at) as i64;
        assert!((-(1 << 25)..(1 << 25)).contains(&displacement), "exception_common out of branch range");
        // SAFETY: as above; patching the words just written.
        unsafe {
            let li = stub.add(STUB_LI_WORD);
            li.write_volatile(li.read() | vector as u32);
            let branch = stub.add(STUB_BRANCH_WORD);
            branch.write_volatile(
                (branch.read() & !BRANCH_DISPLACEMENT_MASK) | (displacement as u32 & BRANCH_DISPLACEMENT_MASK),
            );
        }
        cpu::sync_icache(stub as usize, STUB_WORDS * 4, dcache_block, icache_block);
    }
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

/// H_SET_MODE_RESOURCE_AIL's mflags 3: vectors at 0xc000000000004000 with
/// translation on (PAPR; Linux plpar_set_mode).
const AIL_0XC000000000004000: u64 = 3;

/// Asks for interrupts taken with translation on to land at
/// 0xc000000000004000 + vector, relocated (`install` wrote stubs there).
pub fn enable_relocation_on_interrupts() -> Result<(), &'static str> {
    let status = crate::hcall::hcall4_retry(
        crate::hcall::H_SET_MODE,
        AIL_0XC000000000004000,
        crate::hcall::H_SET_MODE_RESOURCE_AIL,
        0,
        0,
    );
    if status != crate::hcall::H_SUCCESS {
        return Err("H_SET_MODE refused relocation-on interrupts (AIL 3)");
    }
    Ok(())
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

/// The last fault that a probe caught on this CPU, for tests to inspect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaughtFault {
    pub vector: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub dar: u64,
    pub dsisr: u64,
}

#[no_mangle]
extern "C" fn exception_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        vector::EXTERNAL => return crate::smp::external_interrupt(),
        vector::DECREMENTER => return crate::smp::decrementer_interrupt(),
        _ => {}
    }
    // A fault the active address space can resolve is retried, as Linux's
    // do_page_fault runs before the exception-table fix-up.
    if crate::mmu::handle_fault(frame) == crate::mmu::FaultAction::Retry {
        return;
    }
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
