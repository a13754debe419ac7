//! Kernel-mode VSX for moving pages: the copy of collapse and the copy
//! floor of the benchmarks, 16 bytes per load and store (asm/vector.s), as
//! Linux's copypage_power7 does with VMX.
//!
//! The kernel is built soft-float and keeps MSR[FP], MSR[VEC] and MSR[VSX]
//! off (`cpu::disable_fp_and_vector`), so no compiled code touches a vector
//! register. A section here turns VEC and VSX on for the current CPU only,
//! the way Linux's enter_vmx_ops does (preemption off, then
//! enable_kernel_altivec): with interrupts off, so no tick can switch to a
//! thread that would find the registers in use, and off again before
//! interrupts come back. An interrupt that cannot be masked (system reset,
//! machine check) enters its handler with VEC and VSX cleared by the
//! hardware and returns with SRR1's MSR, so it can neither use nor disturb
//! the registers; nothing else owns vector state either: user programs are
//! killed on their first FP or vector instruction (process.rs), so there is
//! no state of theirs to save first. A section is one 64 KiB page at most,
//! which bounds how long it holds interrupts off.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use boot::processor::IsaLevel;

use crate::cpu::{self, msr};
use crate::percpu;

core::arch::global_asm!(include_str!("asm/vector.s"));

extern "C" {
    fn vsx_copy_blocks_v3(dst: *mut u8, src: *const u8, len: u64);
    fn vsx_copy_blocks(dst: *mut u8, src: *const u8, len: u64);
}

type BlockCopy = unsafe extern "C" fn(*mut u8, *const u8, u64);

/// The block copy this processor runs: lxv/stxv from ISA 3.0 on, the
/// ISA 2.06 forms before (POWER8).
fn block_copy() -> BlockCopy {
    // 0: not decided yet, 1: ISA 2.06 forms, 2: ISA 3.0 forms. Every CPU
    // of a machine is the same processor, so a race here writes one value.
    static CHOSEN: AtomicU8 = AtomicU8::new(0);
    let chosen = match CHOSEN.load(Ordering::Relaxed) {
        0 => {
            let v3 = cpu::processor().isa >= IsaLevel::V3_00;
            let chosen = if v3 { 2 } else { 1 };
            CHOSEN.store(chosen, Ordering::Relaxed);
            chosen
        }
        chosen => chosen,
    };
    if chosen == 2 {
        vsx_copy_blocks_v3
    } else {
        vsx_copy_blocks
    }
}

/// The unit the assembly moves per iteration.
pub const BLOCK: usize = 128;
/// The most one section moves (one base page): interrupts stay off that long.
pub const SECTION: usize = 64 * 1024;

/// Runs `f` with MSR[VEC] and MSR[VSX] on and interrupts off; afterwards the
/// facilities are off again (a stray vector instruction traps as before)
/// and interrupts are as they were.
fn with_vsx<R>(f: impl FnOnce() -> R) -> R {
    let were_on = percpu::disable_interrupts();
    let saved = cpu::msr();
    // SAFETY: turns on two facility bits of this CPU's MSR; translation,
    // endianness and EE are as they are. The isync makes the change take
    // effect before the first vector instruction.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) saved | msr::VEC | msr::VSX, options(nostack)) };
    let result = f();
    // SAFETY: restores the MSR read above, EE still off (it was read after
    // disable_interrupts), so the vector facilities go off before any
    // interrupt can be taken.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) saved, options(nostack)) };
    if were_on {
        cpu::enable_interrupts();
    }
    result
}

/// Copies `len` bytes from `src` to `dst` (`copy_nonoverlapping`'s
/// contract) with VSX where both are 128-byte aligned and `len` a multiple
/// of 128, in sections of at most [`SECTION`] bytes; with the compiler's
/// copy otherwise.
///
/// # Safety
/// As `core::ptr::copy_nonoverlapping::<u8>`: `src` readable and `dst`
/// writable for `len` bytes, not overlapping.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    if !(dst as usize).is_multiple_of(BLOCK) || !(src as usize).is_multiple_of(BLOCK) || !len.is_multiple_of(BLOCK) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let blocks = block_copy();
    let mut done = 0;
    while done < len {
        let step = (len - done).min(SECTION);
        // SAFETY: [done, done + step) lies inside both ranges (the caller's
        // contract), step is a positive multiple of 128 and both addresses
        // are 128-byte aligned; the assembly touches vs32-vs39 and volatile
        // GPRs only, inside with_vsx.
        with_vsx(|| unsafe { blocks(dst.add(done), src.add(done), step as u64) });
        done += step;
    }
}
