//! Processor registers (Power ISA v3.0B, Book III) and small wrappers around
//! the instructions that touch them.

use core::arch::asm;

/// Special-purpose register numbers (Power ISA v3.0B, Book III, 4.3 and
/// the SPR table in 1.3.3 of Book III).
/// (asm/exceptions.s names SPRG1/SPRG2, SRR0/1, HSRR0/1, DAR, DSISR itself.)
pub mod spr {
    /// SPRG0 holds this CPU's `PerCpu` pointer (see percpu.rs).
    pub const SPRG0: u32 = 272;
    pub const PVR: u32 = 287;
    pub const PIR: u32 = 1023;
    /// Facility Status and Control Register (ISA 3.0: bit SCV enables `scv`).
    pub const FSCR: u32 = 153;
}

/// FSCR[SCV] (Power ISA v3.0B, Book III, 9.2.2: bit 51).
pub const FSCR_SCV: u64 = 1 << 12;

/// Machine State Register bits (Power ISA v3.0B, Book III, 4.2.1).
pub mod msr {
    pub const SF: u64 = 1 << 63;
    pub const HV: u64 = 1 << 60;
    pub const VEC: u64 = 1 << 25;
    pub const VSX: u64 = 1 << 23;
    pub const EE: u64 = 1 << 15;
    pub const PR: u64 = 1 << 14;
    pub const FP: u64 = 1 << 13;
    pub const ME: u64 = 1 << 12;
    pub const IR: u64 = 1 << 5;
    pub const DR: u64 = 1 << 4;
    pub const RI: u64 = 1 << 1;
    pub const LE: u64 = 1 << 0;
}

macro_rules! read_spr {
    ($spr:expr) => {{
        let value: u64;
        // SAFETY: reading this SPR has no side effects and is permitted in
        // supervisor state.
        unsafe { asm!("mfspr {0}, {1}", out(reg) value, const $spr, options(nomem, nostack, preserves_flags)) };
        value
    }};
}

/// Lets problem state use `scv` (ISA 3.0 and later; on POWER8 `scv` stays
/// an illegal instruction). Each CPU sets its own FSCR. Whether it took:
/// a hypervisor may keep the facility from its partition.
pub fn enable_scv() -> bool {
    if processor().isa < boot::processor::IsaLevel::V3_00 {
        return false;
    }
    let fscr = read_spr!(spr::FSCR) | FSCR_SCV;
    // SAFETY: FSCR only controls facilities of problem state; SCV is the one set.
    unsafe { asm!("mtspr {0}, {1}", const spr::FSCR, in(reg) fscr, options(nomem, nostack, preserves_flags)) };
    read_spr!(spr::FSCR) & FSCR_SCV != 0
}

pub fn pir() -> u32 {
    read_spr!(spr::PIR) as u32
}

/// This processor, from its PVR; a PVR the kernel does not know is fatal,
/// since it cannot tell which ISA level to ask the platform for.
pub fn processor() -> boot::processor::Processor {
    let pvr = pvr();
    boot::processor::Processor::from_pvr(pvr).unwrap_or_else(|| {
        panic!("unsupported processor: PVR {pvr:#010x} is none of POWER8, POWER9, POWER10 (QEMU: -cpu POWER9)")
    })
}

pub fn pvr() -> u32 {
    read_spr!(spr::PVR) as u32
}

pub fn msr() -> u64 {
    let value: u64;
    // SAFETY: mfmsr only reads the MSR.
    unsafe { asm!("mfmsr {0}", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// The timebase (Power ISA Book II, 5.2): the clock for every timing here.
#[inline]
pub fn timebase() -> u64 {
    let value: u64;
    // SAFETY: mftb only reads the timebase.
    unsafe { asm!("mftb {0}", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Turns off MSR[FP], MSR[VEC] and MSR[VSX]: the kernel is built soft-float
/// and saves no FP/vector state, so any such instruction must trap (0x800,
/// 0xf20, 0xf40) and be reported rather than silently corrupt a register.
pub fn disable_fp_and_vector() {
    let value = msr() & !(msr::FP | msr::VEC | msr::VSX);
    // SAFETY: clearing facility-enable bits only; translation, endianness and
    // interrupt enables are unchanged.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) value, options(nomem, nostack)) };
}

/// Turns on MSR[ME], so that a machine check reaches the kernel's vector
/// (skiboot hands over with ME off, where one stops the machine). Only in
/// hypervisor state, where the kernel owns ME (a partition's is the
/// hypervisor's business): `mtmsrd` cannot change ME (Book III, 4.4.4), so
/// this returns to the next instruction with `hrfid` and HSRR1 = the MSR
/// with ME set.
pub fn enable_machine_checks() {
    let value = msr() | msr::ME;
    if value & msr::HV == 0 {
        return;
    }
    // SAFETY: EE and RI go off first, so no interrupt overwrites HSRR0/1
    // before the hrfid, which restores the MSR as it was plus ME and
    // continues at label 2; the machine-check vector is the kernel's from
    // exceptions::install on (before, skiboot's).
    unsafe {
        asm!(
            "li {pc}, 0",
            "mtmsrd {pc}, 1",
            "bcl 20, 31, 1f",
            "1: mflr {pc}",
            "addi {pc}, {pc}, 2f - 1b",
            "mtspr 314, {pc}",
            "mtspr 315, {msr}",
            "hrfid",
            "2:",
            // Not r0: as addi's RA it would read as 0, not the address.
            pc = out(reg_nonzero) _,
            msr = in(reg) value,
            out("lr") _,
            options(nostack)
        )
    };
}

/// Turns on instruction and data translation (MSR[IR,DR]). The MMU must map
/// everything the kernel uses at the addresses it uses them.
pub fn enable_translation() {
    let value = msr() | msr::IR | msr::DR;
    // SAFETY: the caller (an MMU backend) has mapped the kernel's code,
    // stack and data at the addresses it runs with; isync makes it take effect.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) value, options(nostack)) };
}

/// Whether external and decrementer interrupts are on (MSR[EE]).
pub fn interrupts_enabled() -> bool {
    msr() & msr::EE != 0
}

/// Turns MSR[EE] on (and RI: state is recoverable outside interrupt entry).
pub fn enable_interrupts() {
    // SAFETY: `mtmsrd r, 1` changes only EE and RI; the handlers for
    // external and decrementer interrupts are installed.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) msr::EE | msr::RI, options(nostack)) };
}

/// Turns MSR[EE] off; returns whether it was on. Most code calls
/// `percpu::disable_interrupts`, which also records where and when.
#[inline]
pub fn disable_interrupts() -> bool {
    let was = interrupts_enabled();
    // SAFETY: `mtmsrd r, 1` changes only EE and RI.
    unsafe { asm!("mtmsrd {0}, 1", in(reg) msr::RI, options(nostack)) };
    was
}

/// The link register: in a function that has called nothing yet, its
/// return address.
#[inline(always)]
pub fn link_register() -> u64 {
    let value: u64;
    // SAFETY: reads LR only.
    unsafe { asm!("mflr {0}", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn set_sprg0(value: u64) {
    // SAFETY: SPRG0 is software-defined; the kernel reserves it for the PerCpu
    // pointer and sets it once per CPU before interrupts can be taken.
    unsafe { asm!("mtspr {0}, {1}", const spr::SPRG0, in(reg) value, options(nomem, nostack, preserves_flags)) };
}

/// The TOC pointer (r2) of the running kernel, for the interrupt path.
pub fn toc() -> u64 {
    let value: u64;
    // SAFETY: copies r2, which the ABI keeps pointing at the kernel's TOC.
    unsafe { asm!("mr {0}, 2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Makes `len` bytes of freshly written instructions at `start` visible to
/// instruction fetch (Power ISA Book II, 1.8: dcbst, sync, icbi, isync).
pub fn sync_icache(start: usize, len: usize, dcache_block: usize, icache_block: usize) {
    let end = start + len;
    let mut line = start & !(dcache_block - 1);
    while line < end {
        // SAFETY: dcbst only writes back a cache block of memory we own.
        unsafe { asm!("dcbst 0, {0}", in(reg) line, options(nostack, preserves_flags)) };
        line += dcache_block;
    }
    // SAFETY: ordering instruction only.
    unsafe { asm!("sync", options(nostack, preserves_flags)) };
    let mut line = start & !(icache_block - 1);
    while line < end {
        // SAFETY: icbi only invalidates an instruction cache block.
        unsafe { asm!("icbi 0, {0}", in(reg) line, options(nostack, preserves_flags)) };
        line += icache_block;
    }
    // SAFETY: context synchronisation only.
    unsafe { asm!("sync", "isync", options(nostack, preserves_flags)) };
}

/// Stops this CPU for good with interrupts off (used after a fatal error
/// when even power-off failed).
pub fn halt() -> ! {
    loop {
        // SAFETY: clearing MSR[EE] (mtmsrd L=1 touches only EE and RI) and
        // spinning has no other effect.
        unsafe { asm!("li {0}, 0", "mtmsrd {0}, 1", out(reg) _, options(nomem, nostack)) };
        core::hint::spin_loop();
    }
}
