//! Self-tests of the frame allocator, run in the kernel on the real memory
//! map.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::ktest::{fail, ktest, Env, TestResult};
use crate::mm::frame::{FrameAllocator, FRAME_SIZE};
use crate::mm::{alloc_contiguous, alloc_frame, free_contiguous, free_frame, free_frames};
use crate::{kassert, kassert_eq};

#[ktest]
fn alloc_free_roundtrip(_: &Env<'_>) -> TestResult {
    let before = free_frames();
    kassert!(before > 16, "only {before} free frames");
    let frames: Vec<_> = (0..8).filter_map(|_| alloc_frame()).collect();
    kassert_eq!(frames.len(), 8);
    kassert_eq!(free_frames(), before - 8);
    for frame in frames {
        kassert!(frame.address() % FRAME_SIZE == 0);
        free_frame(frame);
    }
    kassert_eq!(free_frames(), before);
    Ok(())
}

#[ktest]
#[allow(unsafe_code)]
fn memory_is_usable(_: &Env<'_>) -> TestResult {
    let frame = alloc_frame().ok_or_else(|| fail("no frame"))?;
    let words = (FRAME_SIZE / 8) as usize;
    let base = crate::mm::phys_to_virt(frame.address()) as *mut u64;
    for i in 0..words {
        // SAFETY: the frame was just allocated, so nothing else uses it.
        unsafe { base.add(i).write_volatile(frame.address() ^ i as u64) };
    }
    let mut mismatches = 0;
    for i in 0..words {
        // SAFETY: as above.
        if unsafe { base.add(i).read_volatile() } != frame.address() ^ i as u64 {
            mismatches += 1;
        }
    }
    free_frame(frame);
    kassert_eq!(mismatches, 0);
    Ok(())
}

#[ktest]
fn no_double_handout(_: &Env<'_>) -> TestResult {
    let count = 256.min(free_frames() as usize / 2);
    let mut seen = BTreeSet::new();
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        let frame = alloc_frame().ok_or_else(|| fail("frame allocation failed"))?;
        let fresh = seen.insert(frame);
        frames.push(frame);
        if !fresh {
            frames.into_iter().for_each(free_frame);
            return Err(fail("a frame was handed out twice"));
        }
    }
    frames.into_iter().for_each(free_frame);
    Ok(())
}

/// Exhausts a private allocator built over 16 frames borrowed from the
/// system one: allocation then fails cleanly and frees make room again.
#[ktest]
fn exhaustion(_: &Env<'_>) -> TestResult {
    const COUNT: u64 = 16;
    let run = alloc_contiguous(COUNT, 1).ok_or_else(|| fail("no run of 16 frames"))?;
    let (start, end) = (run.address(), run.address() + COUNT * FRAME_SIZE);
    let mut bits = [0u64; 1];
    let result = (|| {
        let mut private = FrameAllocator::new(&mut bits, start, end);
        private.add_free_range(start, end);
        let mut got = Vec::new();
        while let Some(frame) = private.alloc() {
            kassert!(frame.address() >= start && frame.address() < end, "{frame:?} outside the run");
            got.push(frame);
        }
        kassert_eq!(got.len() as u64, COUNT);
        kassert_eq!(private.free_frames(), 0);
        kassert!(private.alloc_contiguous(1, 1).is_none());
        private.free(got[7]);
        kassert_eq!(private.alloc(), Some(got[7]));
        Ok(())
    })();
    free_contiguous(run, COUNT);
    result
}

#[ktest]
fn huge_contiguous(_: &Env<'_>) -> TestResult {
    const HUGE_FRAMES: u64 = (2 << 20) / FRAME_SIZE;
    let before = free_frames();
    let huge = alloc_contiguous(HUGE_FRAMES, HUGE_FRAMES);
    let huge = huge.ok_or_else(|| fail("no free 2 MiB-aligned run"))?;
    kassert_eq!(huge.address() % (2 << 20), 0);
    kassert_eq!(free_frames(), before - HUGE_FRAMES);
    free_contiguous(huge, HUGE_FRAMES);
    kassert_eq!(free_frames(), before);
    Ok(())
}
