//! GUP-fast, the lockless get_user_pages walker of the seed thread, and the
//! page-side steps of THP collapse it races with.
//!
//! GUP-fast runs with interrupts off (its sched-RCU read side; the caller
//! turns them off), reads the PMD once, walks the PTE table reached from that
//! copy, pins the page with add-unless-zero, then rechecks the PTE and (the
//! 2022 fix) the PMD, backing off by dropping its pin if either changed.
//!
//! `RaceHooks` are test-only synchronisation points: the race tests use them
//! to drive the exact interleaving of the thread; everywhere else they are
//! `NoHooks`, which the compiler removes.

use alloc::vec::Vec;

use crate::sync::atomic::{fence, Ordering};

use super::frame::{Frame, FRAME_SIZE};
use super::page::PageArray;
use super::pagetable::{self, Entry, PageSize, ReadSide, Slot};

/// Where a racing test may stop GUP-fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// PMD and PTE read, nothing pinned yet.
    GupRead,
    /// Page pinned, nothing rechecked yet.
    GupPinned,
    /// The hash fault path has walked the tree (PMD and PTE read) and not yet
    /// inserted the HPTE.
    HashWalked,
    /// Collapse has passed its isolation check and not yet copied.
    CollapseIsolated,
}

pub trait RaceHooks {
    fn at(&self, _point: Point) {}
}

/// No synchronisation points (the production path).
pub struct NoHooks;
impl RaceHooks for NoHooks {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GupError {
    NotMapped,
    /// A write pin on a read-only mapping.
    ReadOnly,
    /// The page was being freed (its count was zero).
    Freed,
    /// The PTE or PMD changed under the walk: the pin was dropped.
    BackedOff,
    /// GUP-slow could not fault the page in: no memory.
    NoMemory,
}

/// One GUP-fast pin of the page at `address` in the tree rooted at `root`,
/// inside the caller's interrupts-off section (`read_side`). `recheck_pmd` is the
/// fix (`gup_pmd_recheck=`). `free` takes a page whose last reference the
/// walk dropped when it backed off, as (head, order).
#[allow(clippy::too_many_arguments)]
pub fn gup_fast_one(
    root: u64,
    address: u64,
    write: bool,
    recheck_pmd: bool,
    pages: &PageArray<'_>,
    virt: fn(u64) -> *mut u8,
    free: impl FnOnce(Frame, u32),
    hooks: &impl RaceHooks,
    read_side: &ReadSide,
) -> Result<Frame, GupError> {
    let pmd_slot = pagetable::pmd_slot(root, address, virt, read_side).ok_or(GupError::NotMapped)?;
    let pmd = pmd_slot.load_dependent();
    if pmd.is_leaf() {
        let offset = address & (PageSize::Huge2M.bytes() - 1) & !(FRAME_SIZE - 1);
        return pin_huge(pmd_slot, pmd, offset, 1, write, pages, free, hooks);
    }
    if !pmd.is_directory() {
        return Err(GupError::NotMapped);
    }
    let slot = pagetable::pte_slot(pmd, address, virt, read_side);
    pin_pte(pmd_slot, pmd, slot, write, recheck_pmd, pages, free, hooks)
}

/// One small page (Linux's gup_pte_range, one step): read the PTE, pin its
/// page, then the full fence and the rechecks of the PTE and, with
/// `recheck_pmd`, of the PMD `pmd` read from `pmd_slot`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pin_pte(
    pmd_slot: &Slot,
    pmd: Entry,
    slot: &Slot,
    write: bool,
    recheck_pmd: bool,
    pages: &PageArray<'_>,
    free: impl FnOnce(Frame, u32),
    hooks: &impl RaceHooks,
) -> Result<Frame, GupError> {
    let leaf = slot.load_dependent();
    if !leaf.is_leaf() {
        return Err(GupError::NotMapped);
    }
    if write && !leaf.prot().contains(pagetable::Prot::WRITE) {
        return Err(GupError::ReadOnly);
    }
    hooks.at(Point::GupRead);
    let frame = Frame::from_address(leaf.physical()).ok_or(GupError::NotMapped)?;
    let page = pages.head(frame).ok_or(GupError::NotMapped)?;
    if !page.try_pin() {
        return Err(GupError::Freed);
    }
    hooks.at(Point::GupPinned);
    // Order the pin before the rechecks (pairs with the full barrier
    // collapse runs between clearing the PMD and reading refcounts).
    fence(Ordering::SeqCst);
    // The rechecks only compare values: nothing is read through them, so
    // they need no acquire (its isync on POWER); the fence before them is
    // what orders them after the pin.
    let pte_changed = !same(slot.load(Ordering::Relaxed), leaf);
    let pmd_changed = recheck_pmd && !same(pmd_slot.load(Ordering::Relaxed), pmd);
    if pte_changed || pmd_changed {
        // The pin goes as unpin_user_page would drop it: if collapse (or an
        // unmap) dropped the mapping's reference between the pin and the
        // recheck, the pin was the last reference and the page is freed
        // here (Linux: gup_put_folio -> folio_put_refs), or it would be lost.
        pages.unpin(frame, free);
        return Err(GupError::BackedOff);
    }
    Ok(frame)
}

/// `count` base pages of the 2 MiB leaf `pmd` from byte `offset` (Linux's
/// gup_huge_pmd): one pin of the compound head carrying a reference per base
/// page (try_grab_folio with a count), one fence, one recheck of the PMD,
/// which is the leaf itself and so is always rechecked. Returns the first
/// base page's frame; the caller unpins each of the `count` frames.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pin_huge(
    pmd_slot: &Slot,
    pmd: Entry,
    offset: u64,
    count: u32,
    write: bool,
    pages: &PageArray<'_>,
    free: impl FnOnce(Frame, u32),
    hooks: &impl RaceHooks,
) -> Result<Frame, GupError> {
    if write && !pmd.prot().contains(pagetable::Prot::WRITE) {
        return Err(GupError::ReadOnly);
    }
    hooks.at(Point::GupRead);
    let frame = Frame::from_address(pmd.physical() + offset).ok_or(GupError::NotMapped)?;
    let page = pages.head(frame).ok_or(GupError::NotMapped)?;
    if !page.try_pin_many(count) {
        return Err(GupError::Freed);
    }
    hooks.at(Point::GupPinned);
    // As pin_pte's: the pins before the recheck.
    fence(Ordering::SeqCst);
    if !same(pmd_slot.load(Ordering::Relaxed), pmd) {
        pages.unpin_many(frame, count, free);
        return Err(GupError::BackedOff);
    }
    Ok(frame)
}

/// GUP-fast over `pages` consecutive 64 KiB pages from `start`: pins them
/// in order into `out` and stops at the first page it cannot pin (a hole, a
/// read-only page for a write pin, a race), which it reports; a PMD found
/// changed after a 2 MiB batch's pins drops them all and is reported at the
/// batch's first page. It runs in the caller's interrupts-off section
/// (`read_side`); the caller unpins what `out` holds when done; `free` and
/// `hooks` are as for [`gup_fast_one`].
#[allow(clippy::too_many_arguments)]
pub fn gup_fast_range(
    root: u64,
    start: u64,
    pages: usize,
    write: bool,
    recheck_pmd: bool,
    descriptors: &PageArray<'_>,
    virt: fn(u64) -> *mut u8,
    free: impl Fn(Frame, u32),
    out: &mut Vec<Frame>,
    hooks: &impl RaceHooks,
    read_side: &ReadSide,
) -> Result<(), (usize, GupError)> {
    // As Linux's gup_fast_pgd_range: the upper levels and the PMD are read
    // once per 2 MiB, then the PTEs under it in order, or a huge PMD pinned
    // for all its base pages in the range at once.
    const PER_PMD: usize = 32; // 64 KiB pages per 2 MiB PMD
    debug_assert_eq!(PER_PMD as u64, PageSize::Huge2M.bytes() / FRAME_SIZE);
    let mut done = 0usize;
    while done < pages {
        let address = start + done as u64 * FRAME_SIZE;
        let in_pmd = (PER_PMD - (address / FRAME_SIZE) as usize % PER_PMD).min(pages - done);
        let pmd_slot = pagetable::pmd_slot(root, address, virt, read_side).ok_or((done, GupError::NotMapped))?;
        let pmd = pmd_slot.load_dependent();
        if pmd.is_leaf() {
            let offset = address & (PageSize::Huge2M.bytes() - 1) & !(FRAME_SIZE - 1);
            let first = pin_huge(pmd_slot, pmd, offset, in_pmd as u32, write, descriptors, &free, hooks)
                .map_err(|e| (done, e))?;
            out.extend((0..in_pmd as u64).map(|i| first.after(i)));
        } else if pmd.is_directory() {
            // Each pin is followed by its full fence and PTE recheck (in
            // pin_pte); the PMD is rechecked once, after the last pin of
            // the batch, whose fence orders every pin of the batch before
            // that load. If it changed, every pin taken under it goes: the
            // same store-buffering argument as one page's, per pin.
            let batch = out.len();
            let mut stopped = None;
            for i in 0..in_pmd {
                let slot = pagetable::pte_slot(pmd, address + i as u64 * FRAME_SIZE, virt, read_side);
                match pin_pte(pmd_slot, pmd, slot, write, false, descriptors, &free, hooks) {
                    Ok(frame) => out.push(frame),
                    Err(error) => {
                        stopped = Some((done + i, error));
                        break;
                    }
                }
            }
            if recheck_pmd && out.len() > batch && !same(pmd_slot.load(Ordering::Relaxed), pmd) {
                for frame in out.drain(batch..) {
                    descriptors.unpin(frame, &free);
                }
                return Err((done, GupError::BackedOff));
            }
            if let Some(stopped) = stopped {
                return Err(stopped);
            }
        } else {
            return Err((done, GupError::NotMapped));
        }
        done += in_pmd;
    }
    Ok(())
}

/// Entries compared without the hash backend's slot bits (an HPTE being
/// recorded is not a change of mapping).
fn same(a: Entry, b: Entry) -> bool {
    (a.0 ^ b.0) & !pagetable::entry::HASH_SLOT_BITS == 0
}

/// Collapse's isolation check (khugepaged's __collapse_huge_page_isolate):
/// every page of the old PTE table must be referenced by its mapping alone
/// (plus `held` references collapse took itself); a GUP pin makes collapse
/// give up. Returns the index of the first page that is not, if any.
pub fn first_unexplained_reference(ptes: &[Entry], pages: &PageArray<'_>, held: u32) -> Option<usize> {
    ptes.iter().position(|pte| {
        pte.is_leaf()
            && Frame::from_address(pte.physical())
                .and_then(|f| pages.head(f))
                .is_some_and(|page| !page.only_mapped(held))
    })
}

#[cfg(test)]
#[allow(unsafe_code)] // the emulated memory and the host read side
mod tests {
    //! The seed thread's race, driven step by step on one host thread: the
    //! GUP-fast hook runs collapse's steps at the exact point of the thread.
    use super::*;
    use crate::mm::page::{flags, Page};
    use crate::mm::pagetable::tables::emulated::EmulatedFrames;

    /// The host tests' read side: one thread, nothing frees tables under it.
    fn read_side() -> ReadSide {
        // SAFETY: the host tests free no table while a walk runs.
        unsafe { ReadSide::assume_interrupts_off() }
    }
    use crate::mm::pagetable::{FrameSource, PageTable, Prot, TableAllocator};
    extern crate std;
    use core::cell::{Cell, RefCell};
    use std::vec::Vec;

    const BASE: u64 = 0x1000_0000; // a 2 MiB-aligned user address
    const PAGES: u64 = 32;

    std::thread_local!(static MEMORY: Cell<*mut EmulatedFrames> = const { Cell::new(core::ptr::null_mut()) });
    fn virt(physical: u64) -> *mut u8 {
        // SAFETY: set by World::new to this thread's live emulated memory.
        MEMORY.with(|m| unsafe { (*m.get()).virt(physical) })
    }

    struct World {
        tree: RefCell<PageTable<TableAllocator<EmulatedFrames>>>,
        descriptors: Vec<Page>,
        base: u64,
        small: Vec<Frame>,
        huge: Frame,
        /// What GUP-fast freed when it backed off: (head, order).
        freed: RefCell<Vec<(Frame, u32)>>,
    }

    impl World {
        /// Boxed, so that the emulated memory `virt` points into stays put.
        fn new() -> std::boxed::Box<World> {
            let mut tree = PageTable::new(TableAllocator::new(EmulatedFrames::new(256))).unwrap();
            let base = tree.memory_mut().frame_source().base;
            let descriptors: Vec<Page> = (0..256).map(|_| Page::new()).collect();
            let (small, huge) = {
                let source = tree.memory_mut().frame_source();
                let small: Vec<Frame> =
                    (0..PAGES).map(|_| Frame::from_address(source.alloc_frame().unwrap()).unwrap()).collect();
                let huge = source.allocator.alloc_contiguous(PAGES, PAGES).unwrap();
                (small, huge)
            };
            let world = std::boxed::Box::new(World {
                tree: RefCell::new(tree),
                descriptors,
                base,
                small,
                huge,
                freed: RefCell::new(Vec::new()),
            });
            let memory = world.tree.borrow_mut().memory_mut().frame_source() as *mut EmulatedFrames;
            MEMORY.with(|m| m.set(memory));
            let pages = world.pages();
            for (i, &frame) in world.small.iter().enumerate() {
                world
                    .tree
                    .borrow_mut()
                    .map(
                        BASE + i as u64 * FRAME_SIZE,
                        frame.address(),
                        PageSize::Base,
                        Prot::READ | Prot::WRITE | Prot::USER,
                    )
                    .unwrap();
                let page = pages.init_allocated(frame, flags::ANONYMOUS);
                page.map();
            }
            world
        }

        fn pages(&self) -> PageArray<'_> {
            PageArray::new(self.base, &self.descriptors)
        }

        /// Collapse up to and including the isolation check; None = aborted.
        fn collapse_until_isolated(&self) -> Option<(u64, [Entry; 32])> {
            let (table, ptes) = self.tree.borrow_mut().clear_pmd_table(BASE).unwrap();
            if first_unexplained_reference(&ptes, &self.pages(), 0).is_some() {
                self.tree.borrow_mut().restore_pmd_table(BASE, table).unwrap();
                return None;
            }
            Some((table, ptes))
        }

        /// The rest: (copy,) clear the PTEs, install the huge PMD, release
        /// the old pages.
        fn collapse_finish(&self, table: u64, ptes: [Entry; 32]) {
            let slots = virt(table) as *const Slot;
            for i in 0..32 {
                // SAFETY: the unhooked PTE table, still allocated.
                unsafe { &*slots.add(i) }.store(Entry::EMPTY, Ordering::Release);
            }
            self.tree
                .borrow_mut()
                .map(BASE, self.huge.address(), PageSize::Huge2M, Prot::READ | Prot::WRITE | Prot::USER)
                .unwrap();
            let pages = self.pages();
            for pte in ptes {
                let page = pages.head(Frame::from_address(pte.physical()).unwrap()).unwrap();
                page.unmap();
                page.put();
            }
        }
    }

    /// At GupRead, collapse runs past its isolation check (nothing is pinned
    /// yet). Then collapse finishes (drops the old pages' mapping
    /// references) either after GUP returns, or, with `finish_before_recheck`,
    /// at GupPinned: between the pin and the recheck.
    struct CollapseDuringWalk<'w> {
        world: &'w World,
        isolated: Cell<Option<(u64, [Entry; 32])>>,
        finish_before_recheck: bool,
    }

    impl RaceHooks for CollapseDuringWalk<'_> {
        fn at(&self, point: Point) {
            match point {
                Point::GupRead => self.isolated.set(self.world.collapse_until_isolated()),
                Point::GupPinned if self.finish_before_recheck => {
                    let (table, ptes) = self.isolated.take().expect("collapse got past isolation during the walk");
                    self.world.collapse_finish(table, ptes);
                }
                _ => {}
            }
        }
    }

    fn race_in_order(
        recheck_pmd: bool,
        finish_before_recheck: bool,
    ) -> (std::boxed::Box<World>, Result<Frame, GupError>, usize) {
        let world = World::new();
        let target = BASE + 5 * FRAME_SIZE;
        let root = world.tree.borrow().root();
        let hooks = CollapseDuringWalk { world: &world, isolated: Cell::new(None), finish_before_recheck };
        let result = gup_fast_one(
            root,
            target,
            true,
            recheck_pmd,
            &world.pages(),
            virt,
            |h, o| world.freed.borrow_mut().push((h, o)),
            &hooks,
            &read_side(),
        );
        if let Some((table, ptes)) = hooks.isolated.take() {
            world.collapse_finish(table, ptes);
        }
        (world, result, 5)
    }

    fn race(recheck_pmd: bool) -> (std::boxed::Box<World>, Result<Frame, GupError>, usize) {
        race_in_order(recheck_pmd, false)
    }

    /// The other order: collapse drops the old page's mapping reference
    /// after the pin and before the recheck. The back-off's unpin is then
    /// the page's last reference, and GUP-fast must free it.
    #[test]
    fn backing_off_after_collapse_released_the_page_frees_it() {
        let (world, result, index) = race_in_order(true, true);
        assert_eq!(result, Err(GupError::BackedOff));
        let old = world.small[index];
        assert_eq!(world.pages().frame(old).unwrap().refcount(), 0);
        assert_eq!(world.freed.borrow().as_slice(), &[(old, 0)], "the page nobody references any more was freed, once");
    }

    #[test]
    fn without_the_recheck_gup_returns_a_page_collapse_discarded() {
        let (world, result, index) = race(false);
        let old = world.small[index];
        assert_eq!(result, Ok(old), "GUP-fast pinned the old page");
        // The address is now the huge page's subpage: the pinned page is stale.
        let now = world.tree.borrow().translate(BASE + index as u64 * FRAME_SIZE).unwrap();
        assert_eq!(now.physical, world.huge.address() + index as u64 * FRAME_SIZE);
        assert_ne!(now.physical, old.address());
        let page = world.pages().frame(old).unwrap().refcount();
        assert_eq!(page, crate::mm::page::PIN_BIAS, "only the stale pin keeps the discarded page alive");
    }

    #[test]
    fn with_the_recheck_gup_backs_off() {
        let (world, result, index) = race(true);
        assert_eq!(result, Err(GupError::BackedOff));
        // The pin was dropped while the mapping still held the page, so
        // collapse's put released it for good, not GUP-fast.
        assert_eq!(world.pages().frame(world.small[index]).unwrap().refcount(), 0);
        assert!(world.freed.borrow().is_empty());
    }

    /// With the IPI, collapse cannot get past pmdp_collapse_flush while the
    /// walker has interrupts off, so it runs after GUP-fast: it then sees
    /// the pin and gives up, restoring the PMD.
    #[test]
    fn with_the_ipi_collapse_sees_the_pin_and_gives_up() {
        let world = World::new();
        let target = BASE + 9 * FRAME_SIZE;
        let root = world.tree.borrow().root();
        let frame =
            gup_fast_one(root, target, true, false, &world.pages(), virt, |_, _| {}, &NoHooks, &read_side()).unwrap();
        assert_eq!(world.collapse_until_isolated(), None, "collapse went ahead over a pinned page");
        assert_eq!(world.tree.borrow().translate(target).unwrap().physical, frame.address(), "PMD restored");
        assert!(world.pages().frame(frame).unwrap().maybe_pinned(0));
    }

    /// Collapse runs past its isolation check when a range's walk has read
    /// the PMD and its first PTE (nothing pinned yet), and finishes after.
    struct CollapseAtFirstRead<'w> {
        world: &'w World,
        isolated: Cell<Option<(u64, [Entry; 32])>>,
        reads: Cell<u32>,
    }

    impl RaceHooks for CollapseAtFirstRead<'_> {
        fn at(&self, point: Point) {
            if point == Point::GupRead {
                self.reads.set(self.reads.get() + 1);
                if self.reads.get() == 1 {
                    self.isolated.set(self.world.collapse_until_isolated());
                }
            }
        }
    }

    /// A range of 8 small pages under one PMD, with collapse going ahead
    /// during the walk: the result, what was pinned, the world after
    /// collapse finished.
    type RangeResult = Result<(), (usize, GupError)>;

    fn range_race(recheck_pmd: bool) -> (std::boxed::Box<World>, RangeResult, Vec<Frame>) {
        let world = World::new();
        let root = world.tree.borrow().root();
        let hooks = CollapseAtFirstRead { world: &world, isolated: Cell::new(None), reads: Cell::new(0) };
        let mut out = Vec::new();
        let result = gup_fast_range(
            root,
            BASE,
            8,
            true,
            recheck_pmd,
            &world.pages(),
            virt,
            |h, o| world.freed.borrow_mut().push((h, o)),
            &mut out,
            &hooks,
            &read_side(),
        );
        let (table, ptes) = hooks.isolated.take().expect("collapse got past isolation: nothing was pinned yet");
        world.collapse_finish(table, ptes);
        (world, result, out)
    }

    /// The range's one PMD recheck, after the batch's last pin, catches the
    /// collapse for every page pinned under the old PMD: all are dropped.
    #[test]
    fn a_range_backs_off_every_pin_when_the_pmd_changed() {
        let (world, result, out) = range_race(true);
        assert_eq!(result, Err((0, GupError::BackedOff)));
        assert!(out.is_empty(), "pins kept: {out:?}");
        for &old in &world.small[..8] {
            assert_eq!(world.pages().frame(old).unwrap().refcount(), 0, "{old:?} still referenced");
        }
    }

    #[test]
    fn without_the_recheck_a_range_returns_pages_collapse_discarded() {
        let (world, result, out) = range_race(false);
        assert_eq!(result, Ok(()));
        assert_eq!(out, world.small[..8].to_vec(), "GUP-fast pinned the old pages");
        for &old in &out {
            assert_eq!(world.pages().frame(old).unwrap().refcount(), crate::mm::page::PIN_BIAS);
        }
    }

    /// GUP-fast of one page with the PMD recheck on, no hooks, nothing to free.
    fn pin_one(root: u64, pages: &PageArray<'_>, address: u64, write: bool) -> Result<Frame, GupError> {
        gup_fast_one(root, address, write, true, pages, virt, |_, _| {}, &NoHooks, &read_side())
    }

    /// GUP-fast of a range, as `pin_one`.
    fn pin_range(
        root: u64,
        pages: &PageArray<'_>,
        start: u64,
        count: usize,
        write: bool,
        out: &mut Vec<Frame>,
    ) -> Result<(), (usize, GupError)> {
        gup_fast_range(root, start, count, write, true, pages, virt, |_, _| {}, out, &NoHooks, &read_side())
    }

    /// Huge and small mappings, read-only and write pins, and a hole.
    #[test]
    fn gup_fast_ranges() {
        let world = World::new();
        let pages = world.pages();
        // A 2 MiB leaf right after the small pages, read-only.
        let huge_at = BASE + 2 * PageSize::Huge2M.bytes();
        pages.init_allocated(world.huge, flags::ANONYMOUS);
        pages.make_compound(world.huge, (PageSize::Huge2M.bytes() / FRAME_SIZE).trailing_zeros(), flags::ANONYMOUS);
        world.tree.borrow_mut().map(huge_at, world.huge.address(), PageSize::Huge2M, Prot::READ | Prot::USER).unwrap();
        let root = world.tree.borrow().root();

        // Small pages: 32 pins, in order, of the mapped frames.
        let mut pinned: Vec<Frame> = Vec::new();
        pin_range(root, &pages, BASE, 32, true, &mut pinned).unwrap();
        assert_eq!(pinned, world.small);
        for frame in pinned.drain(..) {
            pages.head(frame).unwrap().unpin();
        }

        // The huge page: each 64 KiB piece is its own frame, all pinned on the head
        // (a start inside a page pins that page, as GUP does).
        pin_range(root, &pages, huge_at + 4 * FRAME_SIZE + 0x123, 3, false, &mut pinned).unwrap();
        assert_eq!(
            pinned.iter().map(|f| f.address()).collect::<Vec<_>>(),
            (4..7).map(|i| world.huge.address() + i * FRAME_SIZE).collect::<Vec<_>>()
        );
        assert_eq!(pages.frame(world.huge).unwrap().refcount(), 1 + 3 * crate::mm::page::PIN_BIAS);
        for frame in pinned.drain(..) {
            pages.head(frame).unwrap().unpin();
        }
        // A write pin of the read-only huge mapping fails at once.
        assert_eq!(pin_range(root, &pages, huge_at, 2, true, &mut pinned), Err((0, GupError::ReadOnly)));

        // A hole stops GUP there: the 32 small pages, then nothing mapped.
        assert_eq!(
            pin_range(root, &pages, BASE + 30 * FRAME_SIZE, 4, false, &mut pinned),
            Err((2, GupError::NotMapped))
        );
        assert_eq!(pinned.len(), 2);
        for frame in pinned.drain(..) {
            pages.head(frame).unwrap().unpin();
        }
        assert!(world.small.iter().all(|&f| pages.frame(f).unwrap().refcount() == 1), "every pin dropped");
    }

    #[test]
    fn gup_fast_basics() {
        let world = World::new();
        let root = world.tree.borrow().root();
        let pages = world.pages();
        let frame = pin_one(root, &pages, BASE + 3 * FRAME_SIZE + 0x123, true).unwrap();
        assert_eq!(frame, world.small[3]);
        assert!(pages.frame(frame).unwrap().maybe_pinned(0));
        assert!(!pages.frame(frame).unwrap().unpin());
        assert_eq!(pin_one(root, &pages, BASE + 64 * FRAME_SIZE, false), Err(GupError::NotMapped));
        world.tree.borrow_mut().protect(BASE, Prot::READ | Prot::USER).unwrap();
        assert_eq!(pin_one(root, &pages, BASE, true), Err(GupError::ReadOnly));
        assert!(pin_one(root, &pages, BASE, false).is_ok());
        // A page whose count is zero is not resurrected.
        let page = pages.frame(world.small[7]).unwrap();
        page.unmap();
        assert!(page.put());
        assert_eq!(pin_one(root, &pages, BASE + 7 * FRAME_SIZE, false), Err(GupError::Freed));
    }
}
