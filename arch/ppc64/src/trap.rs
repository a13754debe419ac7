//! What an interrupt leaves behind: the saved registers (`TrapFrame`), the
//! vector numbers and the status bits that say why (DSISR, SRR1), with
//! their names for reports. A leaf: it imports nothing of the kernel's but
//! the MSR bit names.

use core::fmt;
use core::mem::offset_of;

use crate::cpu;

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
    /// `scv 0` (ISA 3.0), with relocation on; level LEV is 0x20 * LEV above.
    /// Not a vector of VECTORS: scv_entry makes a frame of it.
    pub const SYSTEM_CALL_VECTORED: u64 = 0x3000;
}

/// `scv` levels (LEV is 7 bits).
pub const SCV_LEVELS: u64 = 128;

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

/// Whether an interrupt at `vector` saves state in HSRR0/1 rather than
/// SRR0/1 (Power ISA v3.0B, Book III, 7.5): the hypervisor interrupts, and
/// in hypervisor state the external interrupt too (LPCR[LPES0] = 0, as
/// skiboot leaves it).
pub fn uses_hsrr(vector: u64, hypervisor_state: bool) -> bool {
    match vector {
        vector::HYPERVISOR_DECREMENTER
        | vector::HYPERVISOR_DATA_STORAGE
        | vector::HYPERVISOR_INSTRUCTION_STORAGE
        | vector::HYPERVISOR_EMULATION_ASSIST
        | vector::HYPERVISOR_MAINTENANCE
        | vector::DIRECTED_HYPERVISOR_DOORBELL
        | vector::HYPERVISOR_VIRTUALIZATION
        | vector::HYPERVISOR_FACILITY_UNAVAILABLE => true,
        vector::EXTERNAL => hypervisor_state,
        _ => false,
    }
}

/// The end of the vector area; the frame allocator reserves `[0, VECTOR_AREA_END)`.
pub const VECTOR_AREA_END: u64 = 0x10000;
/// Where interrupts land with relocation on (AIL 3): 0xc000000000004000 + vector.
pub const RELOCATED_VECTOR_OFFSET: u64 = 0x4000;

/// Bytes of each vector's stub (exceptions.rs writes four instructions).
pub const STUB_BYTES: u64 = 16;

/// The vector whose stub, at its real or its relocated (AIL 3) place,
/// holds physical address `physical`, and the offset into the stub: where
/// an interrupt that came on top of another one finds the first.
pub fn stub_at(physical: u64) -> Option<(u64, u64)> {
    let place = if physical >= RELOCATED_VECTOR_OFFSET { physical - RELOCATED_VECTOR_OFFSET } else { physical };
    VECTORS
        .iter()
        .find(|&&(vector, _)| (vector..vector + STUB_BYTES).contains(&place))
        .map(|&(vector, _)| (vector, place - vector))
}

pub fn vector_name(vector: u64) -> &'static str {
    if (vector::SYSTEM_CALL_VECTORED..vector::SYSTEM_CALL_VECTORED + 0x20 * SCV_LEVELS).contains(&vector) {
        return "system call vectored";
    }
    VECTORS.iter().find(|(v, _)| *v == vector).map_or("unknown", |(_, name)| name)
}

/// SRR1 bits of a program interrupt (Power ISA v3.0B, Book III, 7.5.9).
pub mod program_srr1 {
    pub const TRAP: u64 = 1 << (63 - 46);
}

/// The interrupted state, as exception_common saves it.
#[repr(C)]
#[derive(Default)]
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
    /// Non-zero when the interrupt saved state in HSRR0/1 (a hypervisor
    /// interrupt): `srr0`/`srr1` then hold HSRR0/HSRR1, and the return is
    /// `hrfid`.
    pub hsrr: u64,
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
    assert!(offset_of!(TrapFrame, hsrr) == 328);
    assert!(core::mem::size_of::<TrapFrame>() == 336);
};

impl TrapFrame {
    /// Whether the interrupt came from problem state (a process).
    pub fn came_from_user(&self) -> bool {
        self.srr1 & cpu::msr::PR != 0
    }

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
        let (srr0, srr1) = if self.hsrr != 0 { ("HSRR0", "HSRR1") } else { ("SRR0", "SRR1") };
        writeln!(f, "  {srr0}: {:016x}  {srr1}: {:016x}  MSR-at-fault: {}", self.srr0, self.srr1, MsrBits(self.srr1))?;
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

/// The last fault that a probe caught on this CPU, for tests to inspect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaughtFault {
    pub vector: u64,
    pub srr0: u64,
    pub srr1: u64,
    pub dar: u64,
    pub dsisr: u64,
}

/// DSISR bits (Power ISA Book III, 7.5.3; the same for radix and hash).
pub mod dsisr {
    /// No translation: no radix PTE, or no HPTE.
    pub const NO_TRANSLATION: u64 = 0x4000_0000;
    pub const PROTECTION: u64 = 0x0800_0000;
    pub const STORE: u64 = 0x0200_0000;
    pub const BAD_CONFIG: u64 = 0x0008_0000;
    pub const ATOMIC_RC: u64 = 0x0004_0000;
    pub const PROCESS_TABLE: u64 = 0x0002_0000;
}

/// SRR1 bits of an instruction storage interrupt (Linux SRR1_ISI_*).
pub mod isi_srr1 {
    pub const NO_TRANSLATION: u64 = 0x4000_0000;
    pub const NO_EXECUTE: u64 = 0x1000_0000;
}

/// Describes a DSISR for reports.
pub fn describe_dsisr(value: u64) -> impl core::fmt::Display {
    struct Bits(u64);
    impl core::fmt::Display for Bits {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let names = [
                (dsisr::NO_TRANSLATION, "no translation"),
                (dsisr::PROTECTION, "protection"),
                (dsisr::BAD_CONFIG, "bad radix config"),
                (dsisr::ATOMIC_RC, "R/C update"),
                (dsisr::PROCESS_TABLE, "process-table fault"),
            ];
            for (bit, name) in names {
                if self.0 & bit != 0 {
                    write!(f, "{name}, ")?;
                }
            }
            write!(f, "{}", if self.0 & dsisr::STORE != 0 { "store" } else { "load" })
        }
    }
    Bits(value)
}

/// What a handler decides about a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The handler fixed the mapping: retry the access.
    Retry,
    /// Not handled: fall through to fix-ups or the fatal report.
    Unhandled,
}
