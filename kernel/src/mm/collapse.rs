//! THP collapse of one 2 MiB range, in Linux's order (khugepaged's
//! collapse_huge_page): `pmdp_collapse_flush`, isolate the small pages
//! (each referenced by its mapping alone: a GUP pin makes collapse give up
//! and restore the PMD), copy them into the new huge page, clear the old
//! PTEs, publish with a write barrier and install the huge PMD, release the
//! old pages, and free the old PTE table after a grace period.
//!
//! The MMU-specific steps come from `CollapseArch`; the caller holds the
//! address space's mmap lock for writing.

use core::sync::atomic::{fence, AtomicU64, Ordering};

use super::frame::{Frame, FRAME_SHIFT, FRAME_SIZE};
use super::gup::{first_unexplained_reference, Point, RaceHooks};
use super::page::{flags, PageArray};
use super::pagetable::{Entry, MapError, Prot};

/// log2 of the frames in a 2 MiB page.
pub const HUGE_ORDER: u32 = 21 - FRAME_SHIFT;

/// What collapse needs from the MMU and the address space.
pub trait CollapseArch {
    /// Clears the PMD at `address` and makes every CPU stop translating
    /// through the old PTE table (flush, and IPI where the policy says);
    /// returns the table and its entries.
    fn pmdp_collapse_flush(&mut self, address: u64) -> Result<(u64, [Entry; 32]), MapError>;
    /// Puts the PTE table back (collapse gave up).
    fn restore_pmd(&mut self, address: u64, table: u64) -> Result<(), MapError>;
    /// Installs a PMD leaf mapping the 2 MiB at `physical`.
    fn install_huge(&mut self, address: u64, physical: u64, prot: Prot) -> Result<(), MapError>;
    /// Frees the old PTE table after a grace period.
    fn defer_table(&mut self, table: u64);
    /// The kernel's pointer to physical memory.
    fn virt(&self, physical: u64) -> *mut u8;
    /// Returns a page (`1 << order` frames from `head`) nothing references
    /// any more.
    fn free_page(&mut self, head: Frame, order: u32);
}

/// Collapse statistics.
#[derive(Debug, Default)]
pub struct Counters {
    pub collapsed: AtomicU64,
    pub aborted_pinned: AtomicU64,
    pub aborted_other: AtomicU64,
}

impl Counters {
    pub const fn new() -> Self {
        Counters { collapsed: AtomicU64::new(0), aborted_pinned: AtomicU64::new(0), aborted_other: AtomicU64::new(0) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Collapsed,
    /// The small page at this index had a reference its mapping did not
    /// explain (a GUP pin): the PMD was restored.
    AbortedPinned(usize),
    AbortedOther(MapError),
}

/// Collapses the 2 MiB at `address` into the frames at `huge` (32 frames,
/// 2 MiB-aligned, owned by the caller until this succeeds), mapped `prot`.
pub fn collapse_pmd(
    arch: &mut impl CollapseArch,
    address: u64,
    huge: Frame,
    prot: Prot,
    pages: &PageArray<'_>,
    counters: &Counters,
    hooks: &impl RaceHooks,
) -> Outcome {
    const HUGE_BYTES: u64 = FRAME_SIZE << HUGE_ORDER;
    if !address.is_multiple_of(HUGE_BYTES) || !huge.address().is_multiple_of(HUGE_BYTES) {
        counters.aborted_other.fetch_add(1, Ordering::Relaxed);
        return Outcome::AbortedOther(MapError::Misaligned);
    }
    let (table, ptes) = match arch.pmdp_collapse_flush(address) {
        Ok(taken) => taken,
        Err(error) => {
            counters.aborted_other.fetch_add(1, Ordering::Relaxed);
            return Outcome::AbortedOther(error);
        }
    };
    if let Some(index) = first_unexplained_reference(&ptes, pages, 0) {
        let _ = arch.restore_pmd(address, table);
        counters.aborted_pinned.fetch_add(1, Ordering::Relaxed);
        return Outcome::AbortedPinned(index);
    }
    hooks.at(Point::CollapseIsolated);
    // Copy (holes become zeros).
    for (i, pte) in ptes.iter().enumerate() {
        let to = arch.virt(huge.address() + ((i as u64) << FRAME_SHIFT));
        // SAFETY: `huge` is the caller's, not yet mapped; the old page is
        // unreachable (PMD cleared and flushed) and kept alive by its mapping.
        unsafe {
            if pte.is_leaf() {
                core::ptr::copy_nonoverlapping(arch.virt(pte.physical()) as *const u8, to, FRAME_SIZE as usize);
            } else {
                core::ptr::write_bytes(to, 0, FRAME_SIZE as usize);
            }
        }
    }
    // Clear the old PTEs (ptep_clear): the table is already unhooked.
    let slots = arch.virt(table) as *const super::pagetable::Slot;
    for i in 0..ptes.len() {
        // SAFETY: the old PTE table, allocated until defer_table's grace period.
        unsafe { &*slots.add(i) }.store(Entry::EMPTY, Ordering::Release);
    }
    // The huge page: one compound page, mapped once.
    let head = pages.init_allocated(huge, flags::ANONYMOUS);
    pages.make_compound(huge, HUGE_ORDER, flags::ANONYMOUS);
    head.map();
    // Publish the copied data before the PMD that makes it reachable.
    fence(Ordering::Release);
    // The slot is the one pmdp_collapse_flush emptied, under the mmap lock:
    // this cannot fail unless the caller passed a misaligned range, and by
    // now the old PTEs are gone, so there is nothing left to go back to.
    if let Err(error) = arch.install_huge(address, huge.address(), prot) {
        panic!("collapse: installing the huge PMD at {address:#x} failed after the copy: {error:?}");
    }
    // Release the old pages: their mappings are gone. (The 32 PTEs of a
    // split huge page all release the same compound page.)
    for pte in ptes.iter().filter(|p| p.is_leaf()) {
        let Some(frame) = Frame::from_address(pte.physical()) else { continue };
        pages.release_mapping(frame, |head, order| arch.free_page(head, order));
    }
    arch.defer_table(table);
    counters.collapsed.fetch_add(1, Ordering::Relaxed);
    Outcome::Collapsed
}
