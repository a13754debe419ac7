//! Self-tests of the kernel's VSX page copy and zeroing (vector.rs): every
//! byte moved or zeroed and nothing beside, in one section and across
//! many, aligned and not; the vector facilities off again afterwards and
//! interrupts as they were.

use alloc::vec::Vec;

use kernel::ktest::{fail, ktest, Env, TestResult};
use kernel::mm::{self, Frame, FRAME_SIZE};
use kernel::{kassert, kassert_eq};

use crate::trap::vector as vectors;
use crate::{cpu, exceptions, vector};

/// A 2 MiB run of frames for source and destination, freed when dropped.
struct Run(Frame);

impl Run {
    const FRAMES: u64 = 32;

    fn new() -> Result<Run, kernel::ktest::Failure> {
        mm::alloc_contiguous(Self::FRAMES, 1).map(Run).ok_or_else(|| fail("no 2 MiB run of frames"))
    }

    fn bytes(&self) -> usize {
        (Self::FRAMES * FRAME_SIZE) as usize
    }

    fn ptr(&self) -> *mut u8 {
        mm::phys_to_virt(self.0.address())
    }

    #[allow(unsafe_code)]
    fn slice(&mut self) -> &mut [u8] {
        // SAFETY: the run's frames belong to this Run alone, through the linear map.
        unsafe { core::slice::from_raw_parts_mut(self.ptr(), self.bytes()) }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        mm::free_contiguous(self.0, Self::FRAMES);
    }
}

fn fill(bytes: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in bytes.chunks_mut(8) {
        let x = kernel::mm::jitter::xorshift(&mut x);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// Copies `len` bytes from `from + src_off` to `to + dst_off` with
/// vector::copy and checks the destination: the copied bytes equal the
/// source's, the bytes around them kept their fill.
#[allow(unsafe_code)]
fn check_copy(from: &mut Run, to: &mut Run, src_off: usize, dst_off: usize, len: usize) -> TestResult {
    fill(from.slice(), 0x5eed_0000 + len as u64);
    fill(to.slice(), 0xdead_0000 + len as u64);
    let before: Vec<u8> = to.slice().to_vec();
    // SAFETY: both ranges lie inside their runs (the callers keep offset +
    // len within 2 MiB), and the runs are distinct.
    unsafe { vector::copy(to.ptr().add(dst_off), from.ptr().add(src_off) as *const u8, len) };
    let (src, dst) = (from.slice(), to.slice());
    let (src, dst): (&[u8], &[u8]) = (src, dst);
    if let Some(i) = (0..len).find(|&i| dst[dst_off + i] != src[src_off + i]) {
        return Err(fail(alloc::format!(
            "copy of {len} bytes (+{src_off} -> +{dst_off}): byte {i} is {:#x}, the source's {:#x}",
            dst[dst_off + i],
            src[src_off + i]
        )));
    }
    let outside = (0..dst_off).chain(dst_off + len..dst.len()).find(|&i| dst[i] != before[i]);
    kassert!(outside.is_none(), "copy of {len} bytes (+{dst_off}) changed byte {outside:?} outside it");
    Ok(())
}

/// One page (one section), many pages (sections in a row, with interrupts
/// on between them), a run of a few blocks, and the compiler's fallback
/// for misaligned ends and lengths.
#[ktest]
fn copy_moves_every_byte_and_nothing_else(_: &Env<'_>) -> TestResult {
    let (from, to) = (&mut Run::new()?, &mut Run::new()?);
    let page = FRAME_SIZE as usize;
    check_copy(from, to, 0, 0, page)?;
    check_copy(from, to, page, 3 * page, page)?;
    check_copy(from, to, 0, 0, from.bytes())?;
    check_copy(from, to, 0, 5 * vector::BLOCK, 3 * vector::BLOCK)?;
    check_copy(from, to, 0, 8, page)?;
    check_copy(from, to, 16, 0, page)?;
    check_copy(from, to, 0, 0, page + 24)?;
    Ok(())
}

/// Zeroes `len` bytes at `run + off` with vector::zero and checks the run:
/// those bytes zero, the bytes around them kept their fill.
#[allow(unsafe_code)]
fn check_zero(run: &mut Run, off: usize, len: usize) -> TestResult {
    fill(run.slice(), 0x2e50_0000 + len as u64);
    let before: Vec<u8> = run.slice().to_vec();
    // SAFETY: the range lies inside the run (the callers keep off + len
    // within 2 MiB).
    unsafe { vector::zero(run.ptr().add(off), len) };
    let bytes: &[u8] = run.slice();
    if let Some(i) = (off..off + len).find(|&i| bytes[i] != 0) {
        return Err(fail(alloc::format!("zeroing {len} bytes at +{off}: byte {} is {:#x}", i - off, bytes[i])));
    }
    let outside = (0..off).chain(off + len..bytes.len()).find(|&i| bytes[i] != before[i]);
    kassert!(outside.is_none(), "zeroing {len} bytes at +{off} changed byte {outside:?} outside it");
    Ok(())
}

/// One page (one section), a huge page (32 sections), a few blocks inside
/// a page, and the compiler's fallback for a misaligned start and length.
#[ktest]
fn zero_clears_every_byte_and_nothing_else(_: &Env<'_>) -> TestResult {
    let run = &mut Run::new()?;
    let page = FRAME_SIZE as usize;
    check_zero(run, 0, page)?;
    check_zero(run, 7 * page, page)?;
    check_zero(run, 0, run.bytes())?;
    check_zero(run, 3 * vector::BLOCK, 5 * vector::BLOCK)?;
    check_zero(run, 8, page)?;
    check_zero(run, 0, page + 40)?;
    Ok(())
}

/// After a copy or a zeroing the vector facilities are off again, so a
/// stray VSX instruction still traps, and interrupts are as before, on or
/// off.
#[ktest]
#[allow(unsafe_code)]
fn facilities_and_interrupts_restored(_: &Env<'_>) -> TestResult {
    let (from, to) = (Run::new()?, Run::new()?);
    for (what, zero) in [("copy", false), ("zeroing", true)] {
        for interrupts in [true, false] {
            if !interrupts {
                crate::percpu::disable_interrupts();
            }
            if zero {
                // SAFETY: one page of a run.
                unsafe { vector::zero(to.ptr(), FRAME_SIZE as usize) };
            } else {
                // SAFETY: one page of each run, distinct runs.
                unsafe { vector::copy(to.ptr(), from.ptr() as *const u8, FRAME_SIZE as usize) };
            }
            let msr = cpu::msr();
            let on = cpu::interrupts_enabled();
            cpu::enable_interrupts();
            kassert!(msr & (cpu::msr::VEC | cpu::msr::VSX) == 0, "MSR {msr:#x}: VEC or VSX left on after the {what}");
            kassert!(on == interrupts, "interrupts {} after the {what}, {} before", on, interrupts);
        }
    }
    // SAFETY: the VSX instruction has an exception-table entry.
    let raised = unsafe { exceptions::probe_vsx_instruction() };
    kassert_eq!(raised, vectors::VSX_UNAVAILABLE);
    Ok(())
}
