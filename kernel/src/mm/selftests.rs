//! Self-tests of the frame allocator and the heap, run in the kernel on the
//! real memory map.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::alloc::Layout;

use super::frame::{FrameAllocator, FRAME_SIZE};
use super::heap::HEAP;
use super::{alloc_contiguous, alloc_frame, free_contiguous, free_frame, free_frames};
use crate::ktest::{fail, Env, Suite, Test, TestResult};
use crate::{kassert, kassert_eq};

pub static FRAMES_SUITE: Suite = Suite {
    name: "frames",
    tests: &[
        Test { name: "alloc_free_roundtrip", run: alloc_free_roundtrip },
        Test { name: "memory_is_usable", run: memory_is_usable },
        Test { name: "no_double_handout", run: no_double_handout },
        Test { name: "exhaustion", run: exhaustion },
        Test { name: "huge_contiguous", run: huge_contiguous },
    ],
};

pub static PAGES_SUITE: Suite =
    Suite { name: "pages", tests: &[Test { name: "descriptors_count_and_pin", run: descriptors_count_and_pin }] };

/// Every frame of RAM has a descriptor; a fresh frame counts one
/// reference, a pin is told from a mapping, and a compound 2 MiB page
/// counts on its head.
fn descriptors_count_and_pin(_: &Env<'_>) -> TestResult {
    use super::page::{flags, PIN_BIAS};
    let pages = super::pages();
    let frame = alloc_frame().ok_or_else(|| fail("no frame"))?;
    let page = pages.init_allocated(frame, flags::ANONYMOUS);
    page.map();
    kassert!(page.only_mapped(0));
    kassert!(page.try_pin());
    kassert!(page.maybe_pinned(0));
    kassert_eq!(page.refcount(), 1 + PIN_BIAS);
    kassert!(!page.unpin());
    page.unmap();
    kassert!(page.put());
    free_frame(frame);
    const HUGE: u64 = (2 << 20) / FRAME_SIZE;
    let huge = alloc_contiguous(HUGE, HUGE).ok_or_else(|| fail("no 2 MiB run"))?;
    pages.init_allocated(huge, 0);
    pages.make_compound(huge, HUGE.trailing_zeros(), flags::ANONYMOUS);
    let tail = super::Frame::from_address(huge.address() + 17 * FRAME_SIZE).ok_or_else(|| fail("tail"))?;
    let head_refs = pages.head(tail).map(|p| p.refcount());
    pages.clear_compound(huge);
    free_contiguous(huge, HUGE);
    kassert_eq!(head_refs, Some(1));
    Ok(())
}

pub static HEAP_SUITE: Suite = Suite {
    name: "heap",
    tests: &[
        Test { name: "box_roundtrip", run: box_roundtrip },
        Test { name: "vec_growth", run: vec_growth },
        Test { name: "large_allocation", run: large_allocation },
        Test { name: "frees_return_memory", run: frees_return_memory },
        Test { name: "page_aligned_allocation", run: page_aligned_allocation },
    ],
};

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

fn memory_is_usable(_: &Env<'_>) -> TestResult {
    let frame = alloc_frame().ok_or_else(|| fail("no frame"))?;
    let words = (FRAME_SIZE / 8) as usize;
    let base = super::phys_to_virt(frame.address()) as *mut u64;
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

fn box_roundtrip(_: &Env<'_>) -> TestResult {
    let boxed = Box::new([0xa5u8; 100]);
    kassert!(boxed.iter().all(|&b| b == 0xa5));
    let moved = *boxed;
    kassert_eq!(moved[99], 0xa5);
    Ok(())
}

fn vec_growth(_: &Env<'_>) -> TestResult {
    let mut values = Vec::new();
    for i in 0..10_000u64 {
        values.push(i);
    }
    kassert_eq!(values.len(), 10_000);
    kassert_eq!(values.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    Ok(())
}

fn large_allocation(_: &Env<'_>) -> TestResult {
    const SIZE: usize = 4 << 20;
    let used = HEAP.stats().used;
    let mut big = alloc::vec![0u8; SIZE];
    for i in (0..SIZE).step_by(4096) {
        big[i] = (i >> 12) as u8;
    }
    kassert!((0..SIZE).step_by(4096).all(|i| big[i] == (i >> 12) as u8));
    kassert!(HEAP.stats().used >= used + SIZE);
    drop(big);
    kassert_eq!(HEAP.stats().used, used);
    Ok(())
}

fn frees_return_memory(_: &Env<'_>) -> TestResult {
    let used = HEAP.stats().used;
    let boxes: Vec<Box<[u8]>> = (1..200).map(|n| alloc::vec![n as u8; n * 13].into_boxed_slice()).collect();
    kassert!(HEAP.stats().used > used);
    kassert!(boxes.iter().enumerate().all(|(i, b)| b.len() == (i + 1) * 13 && b[0] == (i + 1) as u8));
    drop(boxes);
    kassert_eq!(HEAP.stats().used, used);
    Ok(())
}

fn page_aligned_allocation(_: &Env<'_>) -> TestResult {
    let layout = Layout::from_size_align(3 * 4096, 4096).map_err(|_| fail("layout"))?;
    // SAFETY: non-zero size; freed below with the same layout.
    let block = unsafe { alloc::alloc::alloc(layout) };
    kassert!(!block.is_null());
    kassert_eq!(block as usize % 4096, 0);
    // SAFETY: allocated above with `layout`.
    unsafe { alloc::alloc::dealloc(block, layout) };
    Ok(())
}
