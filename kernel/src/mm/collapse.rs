//! THP collapse of one 2 MiB range, in Linux's order (khugepaged's
//! collapse_huge_page): `pmdp_collapse_flush`, isolate the small pages
//! (each referenced by its mapping alone: a GUP pin makes collapse give up
//! and restore the PMD), copy them into the new huge page, clear the old
//! PTEs, publish with a write barrier and install the huge PMD, release the
//! old pages, and free the old PTE table after a grace period.
//!
//! The MMU-specific steps come from `CollapseArch`; the caller holds the
//! address space's mmap lock for writing.

use core::sync::atomic::AtomicU64;

use super::frame::{Frame, FRAME_SHIFT, FRAME_SIZE};
use super::gup::{first_unexplained_reference, Point, RaceHooks};
use super::page::{flags, PageArray};
use super::pagetable::{Entry, MapError, Prot};
use crate::sync::atomic::{fence, Ordering};

/// log2 of the frames in a 2 MiB page.
pub const HUGE_ORDER: u32 = 21 - FRAME_SHIFT;

/// The MMU steps of `pmdp_collapse_flush`.
pub trait CollapseFlush {
    /// Clears the PMD at `address`, which must point at a PTE table, and
    /// returns that table (still allocated). No flush yet.
    fn clear_pmd_table(&mut self, address: u64) -> Result<u64, MapError>;
    /// The entries of a PTE table, as they are now.
    fn read_pte_table(&mut self, table: u64) -> [Entry; 32];
    /// Returns once every other CPU that may be inside a lockless walk of
    /// this address space (interrupts off) has left it: an IPI each, waited
    /// for (Linux's serialize_against_pte_lookup).
    fn serialize_against_pte_lookup(&mut self);
    /// Drops every translation through the old PTEs (`old_ptes`) of the
    /// 2 MiB at `address` and any cached pointer to their table: radix
    /// `tlbie` of the range and the page-walk cache; hash removes the HPTEs
    /// the PTEs record (flush_hash_table_pmd_range).
    fn flush_collapsed_pmd(&mut self, address: u64, old_ptes: &[Entry]);
}

/// What collapse needs from the MMU and the address space.
pub trait CollapseArch: CollapseFlush {
    /// Puts the PTE table back (collapse gave up).
    fn restore_pmd(&mut self, address: u64, table: u64) -> Result<(), MapError>;
    /// Installs a PMD leaf mapping the 2 MiB at `physical`.
    fn install_huge(&mut self, address: u64, physical: u64, prot: Prot) -> Result<(), MapError>;
    /// Frees the old PTE table after a grace period.
    fn defer_table(&mut self, table: u64);
    /// Copies the 64 KiB page at physical `from` to `to`.
    fn copy_page(&mut self, from: u64, to: u64);
    /// Zeroes the 64 KiB page at physical `to`.
    fn zero_page(&mut self, to: u64);
    /// The kernel's pointer to physical memory (page tables).
    fn virt(&self, physical: u64) -> *mut u8;
    /// Returns a page (`1 << order` frames from `head`) nothing references
    /// any more.
    fn free_page(&mut self, head: Frame, order: u32);
}

/// THP collapse's `pmdp_collapse_flush` (Linux: radix__/hash__pmdp_collapse_flush),
/// in hash__pmdp_collapse_flush's order, which radix's is a special case of:
/// clear the PMD; with `ipi`, wait for every CPU inside a lockless walk that
/// may have read the old PMD; read the old PTEs only then (a hash fault that
/// walked the old table may have recorded an HPTE meanwhile); flush; then a
/// full barrier, because the caller reads page refcounts next and GUP-fast
/// pins before it rechecks the PMD. Returns the old table and its PTEs.
#[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
pub fn pmdp_collapse_flush(
    arch: &mut impl CollapseFlush,
    address: u64,
    ipi: bool,
) -> Result<(u64, [Entry; 32]), MapError> {
    let table = arch.clear_pmd_table(address)?;
    if ipi {
        arch.serialize_against_pte_lookup();
    }
    let ptes = arch.read_pte_table(table);
    arch.flush_collapsed_pmd(address, &ptes);
    // The full barrier (`sync`): orders the cleared PMD before the
    // refcount reads of the isolation check.
    fence(Ordering::SeqCst);
    Ok((table, ptes))
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
/// `ipi` is the collapse_ipi policy as it applies to this MMU.
#[allow(clippy::too_many_arguments)]
pub fn collapse_pmd(
    arch: &mut impl CollapseArch,
    address: u64,
    huge: Frame,
    prot: Prot,
    ipi: bool,
    pages: &PageArray<'_>,
    counters: &Counters,
    hooks: &impl RaceHooks,
) -> Outcome {
    const HUGE_BYTES: u64 = FRAME_SIZE << HUGE_ORDER;
    if !address.is_multiple_of(HUGE_BYTES) || !huge.address().is_multiple_of(HUGE_BYTES) {
        counters.aborted_other.fetch_add(1, Ordering::Relaxed);
        return Outcome::AbortedOther(MapError::Misaligned);
    }
    let (table, ptes) = match pmdp_collapse_flush(arch, address, ipi) {
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
    // Copy (holes become zeros). `huge` is the caller's, not yet mapped; the
    // old pages are unreachable (PMD cleared and flushed) and kept alive by
    // their mappings.
    for (i, pte) in ptes.iter().enumerate() {
        let to = huge.address() + ((i as u64) << FRAME_SHIFT);
        if pte.is_leaf() {
            arch.copy_page(pte.physical(), to);
        } else {
            arch.zero_page(to);
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
