//! Self-tests of the page descriptors, run in the kernel on the real memory
//! map.

use crate::ktest::{fail, ktest, Env, TestResult};
use crate::mm::{alloc_contiguous, alloc_frame, free_contiguous, free_frame, FRAME_SIZE};
use crate::{kassert, kassert_eq};

/// Every frame of RAM has a descriptor; a fresh frame counts one
/// reference, a pin is told from a mapping, and a compound 2 MiB page
/// counts on its head.
#[ktest]
fn descriptors_count_and_pin(_: &Env<'_>) -> TestResult {
    use crate::mm::page::{flags, PIN_BIAS};
    let pages = crate::mm::pages();
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
    let tail = crate::mm::Frame::from_address(huge.address() + 17 * FRAME_SIZE).ok_or_else(|| fail("tail"))?;
    let head_refs = pages.head(tail).map(|p| p.refcount());
    pages.clear_compound(huge);
    free_contiguous(huge, HUGE);
    kassert_eq!(head_refs, Some(1));
    Ok(())
}
