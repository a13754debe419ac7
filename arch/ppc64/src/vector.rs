//! Kernel-mode VSX for moving pages: collapse's copy and the zeroing of
//! every anonymous page, 16 bytes per load and store (asm/vector.s), as
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
    fn vsx_zero_blocks_v3(dst: *mut u8, len: u64);
    fn vsx_zero_blocks(dst: *mut u8, len: u64);
}

type BlockCopy = unsafe extern "C" fn(*mut u8, *const u8, u64);
type BlockZero = unsafe extern "C" fn(*mut u8, u64);

/// The block routines this processor runs: lxv/stxv from ISA 3.0 on, the
/// ISA 2.06 forms before (POWER8).
fn blocks() -> (BlockCopy, BlockZero) {
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
        (vsx_copy_blocks_v3, vsx_zero_blocks_v3)
    } else {
        (vsx_copy_blocks, vsx_zero_blocks)
    }
}

/// The unit the assembly moves per iteration.
pub const BLOCK: usize = 128;
/// The most one section moves (one base page): interrupts stay off that long.
pub const SECTION: usize = 64 * 1024;

/// Runs `f` with MSR[VEC] and MSR[VSX] on and interrupts off; afterwards the
/// facilities are off again (a stray vector instruction traps as before)
/// and interrupts are as they were. One mtmsrd turns the facilities on and
/// interrupts off, one puts the MSR back: from ISA 2.06 on, mtmsrd with
/// L = 0 is context synchronizing, so the first vector instruction sees
/// the change without an isync (Linux's mtmsr_isync leaves it out there
/// too; this kernel runs on ISA 2.07 and later). Under TCG each mtmsrd and
/// each isync ends a translation block, which is what a 64 KiB section
/// costs beside its stores.
fn with_vsx<R>(f: impl FnOnce() -> R) -> R {
    let saved = cpu::msr();
    percpu::note_interrupts_off();
    // SAFETY: clears EE and sets the two facility bits of this CPU's MSR in
    // one write; translation and endianness stay as they are. The saved
    // value is this CPU's MSR even if an interrupt came between the read
    // and here: every interrupt returns with the MSR it interrupted.
    unsafe { asm!("mtmsrd {0}", in(reg) (saved & !msr::EE) | msr::VEC | msr::VSX, options(nostack)) };
    let result = f();
    // SAFETY: puts back the MSR read above, VEC and VSX off, in the same
    // write that gives EE back: no interrupt is taken with them on.
    unsafe { asm!("mtmsrd {0}", in(reg) saved, options(nostack)) };
    result
}

/// Whether `address` and `len` suit the block routines: 128-byte aligned,
/// a whole number of blocks.
fn whole_blocks(address: usize, len: usize) -> bool {
    address.is_multiple_of(BLOCK) && len.is_multiple_of(BLOCK)
}

/// Runs `f` over `[0, len)` in steps of at most [`SECTION`] bytes, each in
/// its own VSX section (interrupts come back between sections).
fn in_sections(len: usize, mut f: impl FnMut(usize, usize)) {
    let mut done = 0;
    while done < len {
        let step = (len - done).min(SECTION);
        with_vsx(|| f(done, step));
        done += step;
    }
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
    if !whole_blocks(dst as usize, len) || !(src as usize).is_multiple_of(BLOCK) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let (blocks, _) = blocks();
    // SAFETY: [done, done + step) lies inside both ranges (the caller's
    // contract), step is a positive multiple of 128 and both addresses are
    // 128-byte aligned; the assembly touches vs32-vs39 and volatile GPRs
    // only, inside a VSX section.
    in_sections(len, |done, step| unsafe { blocks(dst.add(done), src.add(done), step as u64) });
}

/// Zeroes `len` bytes at `dst` (`write_bytes`'s contract) with VSX stores
/// where `dst` is 128-byte aligned and `len` a multiple of 128, in sections
/// of at most [`SECTION`] bytes; with the compiler's `write_bytes`
/// otherwise.
///
/// # Safety
/// As `core::ptr::write_bytes::<u8>`: `dst` writable for `len` bytes.
pub unsafe fn zero(dst: *mut u8, len: usize) {
    if !whole_blocks(dst as usize, len) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::write_bytes(dst, 0, len) };
        return;
    }
    let (_, blocks) = blocks();
    // SAFETY: [done, done + step) lies inside the range (the caller's
    // contract), step is a positive multiple of 128 and the address
    // 128-byte aligned; the assembly touches vs32 and volatile GPRs only,
    // inside a VSX section.
    in_sections(len, |done, step| unsafe { blocks(dst.add(done), step as u64) });
}
