//! Address spaces of anonymous memory: Linux's mm_struct with its VMAs, page
//! faults, unmap/mprotect, THP, GUP and collapse, written once over a small
//! arch trait so that both MMUs (and the host tests) run the same code.
//!
//! Locks, as Linux's: the mmap lock (`regions`, a reader/writer lock) is
//! held for reading by faults and GUP-slow and for writing by whatever
//! changes the shape of the address space (map, unmap, protect, split,
//! collapse). The page-table lock (`arch`) serialises changes to the tree
//! itself; it is taken inside the mmap lock. GUP-fast and the hash fault
//! path take neither: they walk the tree with interrupts off, and tables
//! unhooked from it are freed only after an RCU grace period.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::{Mutex, RwLock};

use super::collapse::{self, CollapseArch, CollapseFlush, Counters, Outcome, HUGE_ORDER};
use super::frame::{Frame, FRAME_SIZE};
use super::gup::{self, GupError, NoHooks, RaceHooks};
pub use super::knobs::RaceSettings;
use super::page::{flags, PageArray};
use super::pagetable::{Entry, InterruptsOff, MapError, PageSize, PageTable, Prot, ReadSide, TableMemory, PTE};
use crate::cmdline::CollapseIpi;

/// A PMD leaf's span (PageSize::Huge2M).
const HUGE_BYTES: u64 = FRAME_SIZE << HUGE_ORDER;

/// What an address space needs from the MMU backend, one trait per
/// concern: its tree, the TLB (`MmuFlush`), the lockless walkers that THP
/// collapse must be serialised against (`LocklessWalkers`), and turning
/// interrupts off for GUP-fast's read side (`InterruptsOff`). Implemented by
/// the kernel's radix/hash address spaces and by the host tests' model.
pub trait MmArch: Send + InterruptsOff + MmuFlush + LocklessWalkers {
    type Tables: TableMemory;
    fn tree(&mut self) -> &mut PageTable<Self::Tables>;
    /// Frees `tables` (unhooked and flushed) after a grace period.
    fn defer_tables(&mut self, tables: &[(u64, usize)]);
    /// Maps the page a fault at `address` resolved, the leaf of `size` at
    /// `leaf`, to `physical` (Linux's set_pte_at, then update_mmu_cache
    /// with the PTE just written): the MMU may load the translation now
    /// rather than fault again for it (the hash MMU: the HPTE of
    /// `address`'s 64 KiB page).
    fn map_faulted(
        &mut self,
        address: u64,
        leaf: u64,
        physical: u64,
        size: PageSize,
        prot: Prot,
    ) -> Result<(), MapError> {
        let _ = address;
        self.tree().map(leaf, physical, size, prot)
    }
}

/// Dropping what the MMU cached from an address space's tree.
pub trait MmuFlush {
    /// Drops every cached translation of the leaf at `address` (of `size`),
    /// whose entry was `old`, on every CPU that may hold it.
    fn flush(&mut self, address: u64, size: PageSize, old: Entry);
    /// Drops every cached translation of the base pages from `start` on,
    /// whose entries were `old` (an empty one: nothing was mapped there),
    /// in one go: the flush of Linux's mmu_gather at the end of a zap.
    fn flush_base_range(&mut self, start: u64, old: &[Entry]);
    /// Drops cached pointers to page tables (a table was unhooked).
    fn flush_page_walk_cache(&mut self);
    /// Drops every translation through the old PTEs of a collapsed PMD
    /// (see `CollapseFlush::flush_collapsed_pmd`).
    fn flush_collapsed_pmd(&mut self, address: u64, old_ptes: &[Entry]);
}

/// The CPUs that walk an address space's tree without locks (GUP-fast, and
/// on hash the MMU's own fault path), as THP collapse must know them.
pub trait LocklessWalkers {
    /// What a walk needs to announce its CPU (Linux: the CPU is in the
    /// mm's cpumask); taken once, when the `Mm` is made.
    type Walker: Send + Sync;
    fn walker(&mut self) -> Self::Walker;
    /// Called by GUP-fast inside its read side, before it reads the tree:
    /// makes this CPU one that collapse's IPI waits for.
    fn enter(walker: &Self::Walker, read_side: &ReadSide);
    /// Waits for every other CPU that may be inside a lockless walk of this
    /// address space (serialize_against_pte_lookup).
    fn serialize_against_pte_lookup(&mut self);
    /// Whether collapse under `policy` sends the IPI on this MMU.
    fn collapse_ipi(policy: CollapseIpi) -> bool;
}

/// Where anonymous pages come from.
pub trait PageMemory: Sync {
    /// `1 << order` contiguous frames aligned to their size.
    fn alloc(&self, order: u32) -> Option<Frame>;
    fn free(&self, head: Frame, order: u32);
    /// The kernel's pointer to physical memory.
    fn virt(physical: u64) -> *mut u8;
    fn pages(&self) -> &PageArray<'_>;
    /// Zeroes the `1 << order` frames from `head`, which nobody else can
    /// reach yet (the arch may have a faster way than stores).
    fn zero(&self, head: Frame, order: u32) {
        // SAFETY: as the contract says: frames the caller owns.
        unsafe { core::ptr::write_bytes(Self::virt(head.address()), 0, (FRAME_SIZE << order) as usize) };
    }
    /// Copies one base page from frame `from` to frame `to` (copy_page),
    /// both the caller's (the arch may have wider loads and stores than
    /// the compiler uses).
    fn copy(&self, from: Frame, to: Frame) {
        // SAFETY: as the contract says: two whole frames of RAM, distinct.
        unsafe {
            core::ptr::copy_nonoverlapping(
                Self::virt(from.address()) as *const u8,
                Self::virt(to.address()),
                FRAME_SIZE as usize,
            )
        };
    }
}

/// A range of the address space with one set of rights (a VMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    /// READ/WRITE/EXECUTE; the mappings add `Prot::USER` (user memory).
    pub prot: Prot,
    /// Transparent huge pages allowed (MADV_HUGEPAGE): faults in aligned
    /// 2 MiB stretches map huge pages, and collapse may merge small ones.
    pub huge: bool,
}

impl Region {
    fn covers_huge(&self, address: u64) -> bool {
        let base = address & !(HUGE_BYTES - 1);
        self.huge && base >= self.start && base + HUGE_BYTES <= self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmError {
    /// Not 64 KiB-aligned, empty, or beyond the tree's reach.
    BadRange,
    /// The range overlaps an existing region.
    Overlaps,
    /// No region there (a segmentation fault).
    NoRegion,
    /// The access is not allowed by the region's rights.
    Protection,
    NoMemory,
}

/// Events counted per address space (as /proc/vmstat does system-wide).
#[derive(Debug, Default)]
pub struct Stats {
    pub faults: AtomicU64,
    pub huge_faults: AtomicU64,
    pub splits: AtomicU64,
    pub gup_fast_pages: AtomicU64,
    pub gup_slow_pages: AtomicU64,
    /// Collapse outcomes (collapsed, aborted because pinned, other).
    pub collapse: Counters,
}

pub struct Mm<A: MmArch, P: PageMemory> {
    /// The mmap lock, guarding the regions (start → region).
    regions: RwLock<BTreeMap<u64, Region>>,
    /// The page-table lock, guarding the tree and the backend's state.
    arch: Mutex<A>,
    /// The tree's root, for lockless walkers.
    root: u64,
    /// How GUP-fast announces its CPU to this space's collapses.
    walker: A::Walker,
    memory: P,
    pub stats: Stats,
}

impl<A: MmArch, P: PageMemory> Mm<A, P> {
    pub fn new(mut arch: A, memory: P) -> Self {
        let root = arch.tree().root();
        let walker = arch.walker();
        Mm {
            regions: RwLock::new(BTreeMap::new()),
            arch: Mutex::new(arch),
            root,
            walker,
            memory,
            stats: Stats::default(),
        }
    }

    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn memory(&self) -> &P {
        &self.memory
    }

    /// Runs `f` on the backend, under the page-table lock.
    /// Runs `f` with the mmap lock held for reading (Linux's
    /// mmap_read_lock): no collapse, split, unmap or mprotect meanwhile, so
    /// the tree and every translation the MMU makes from it stay put.
    pub fn with_mmap_read<R>(&self, f: impl FnOnce() -> R) -> R {
        let _regions = self.regions.read();
        f()
    }

    pub fn with_arch<R>(&self, f: impl FnOnce(&mut A) -> R) -> R {
        f(&mut self.arch.lock())
    }

    /// Adds a region of anonymous memory (mmap with MAP_FIXED_NOREPLACE);
    /// pages appear on first touch.
    pub fn map(&self, start: u64, len: u64, prot: Prot, huge: bool) -> Result<(), VmError> {
        let end = check_range(start, len)?;
        let mut regions = self.regions.write();
        if overlapping(&regions, start, end).next().is_some() {
            return Err(VmError::Overlaps);
        }
        regions.insert(start, Region { start, end, prot, huge });
        merge_around(&mut regions, start, end);
        Ok(())
    }

    /// The region containing `address`.
    pub fn region(&self, address: u64) -> Option<Region> {
        find(&self.regions.read(), address)
    }

    /// Removes `[start, start + len)` from the address space (munmap): the
    /// regions, the mappings (a huge page cut by the range is split first),
    /// the pages nothing else references, and emptied tables (after a grace
    /// period). A pinned page lives on until it is unpinned.
    pub fn unmap(&self, start: u64, len: u64) -> Result<(), VmError> {
        let end = check_range(start, len)?;
        let mut regions = self.regions.write();
        let mut arch = self.arch.lock();
        zap_range(&mut *arch, &self.memory, &self.stats, start, end)?;
        carve(&mut regions, start, end, |_| None);
        Ok(())
    }

    /// Changes the rights of `[start, start + len)` (mprotect): the regions
    /// and every mapping in them, flushed.
    pub fn protect(&self, start: u64, len: u64, prot: Prot) -> Result<(), VmError> {
        let end = check_range(start, len)?;
        let mut regions = self.regions.write();
        if !covered(&regions, start, end) {
            return Err(VmError::NoRegion);
        }
        let mut arch = self.arch.lock();
        let mut address = start;
        while address < end {
            let pmd = arch.tree().pmd(address);
            let huge_base = address & !(HUGE_BYTES - 1);
            if pmd.is_leaf() && (huge_base < start || huge_base + HUGE_BYTES > end) {
                split_leaf(&mut *arch, &self.memory, &self.stats, huge_base)?;
                continue;
            }
            if pmd.is_leaf() {
                let (old, size) = arch.tree().protect(huge_base, user(prot)).map_err(map_error)?;
                arch.flush(huge_base, size, old);
                address = huge_base + HUGE_BYTES;
            } else if pmd.is_directory() {
                if let Ok((old, size)) = arch.tree().protect(address, user(prot)) {
                    arch.flush(address, size, old);
                }
                address += FRAME_SIZE;
            } else {
                address = huge_base + HUGE_BYTES;
            }
        }
        carve(&mut regions, start, end, |r| Some(Region { prot, ..r }));
        merge_around(&mut regions, start, end);
        Ok(())
    }

    /// madvise(MADV_HUGEPAGE / MADV_NOHUGEPAGE): whether `[start, start +
    /// len)` may take huge pages from faults and collapse. What is mapped
    /// stays as it is.
    pub fn set_huge(&self, start: u64, len: u64, huge: bool) -> Result<(), VmError> {
        let end = check_range(start, len)?;
        let mut regions = self.regions.write();
        if !covered(&regions, start, end) {
            return Err(VmError::NoRegion);
        }
        carve(&mut regions, start, end, |r| Some(Region { huge, ..r }));
        merge_around(&mut regions, start, end);
        Ok(())
    }

    /// Resolves a fault at `address` (a store if `write`): maps a zeroed
    /// page if the region allows the access, a 2 MiB one where the region
    /// takes huge pages and nothing is mapped in that 2 MiB yet.
    pub fn fault(&self, address: u64, write: bool) -> Result<(), VmError> {
        let regions = self.regions.read();
        self.fault_locked(&regions, address, write)
    }

    fn fault_locked(&self, regions: &BTreeMap<u64, Region>, address: u64, write: bool) -> Result<(), VmError> {
        let region = find(regions, address).ok_or(VmError::NoRegion)?;
        let needed = if write { Prot::WRITE } else { Prot::READ };
        if !region.prot.contains(needed) {
            return Err(VmError::Protection);
        }
        if region.covers_huge(address) {
            // do_huge_pmd_anonymous_page: under the page-table lock, since
            // zeroing 2 MiB only to find the PMD taken would cost the most.
            let mut arch = self.arch.lock();
            if arch.tree().pmd(address).is_empty() {
                if let Some(head) = self.memory.alloc(HUGE_ORDER) {
                    self.zero(head, HUGE_ORDER);
                    let pages = self.memory.pages();
                    pages.init_allocated(head, flags::ANONYMOUS);
                    pages.make_compound(head, HUGE_ORDER, flags::ANONYMOUS);
                    pages.frame(head).expect("allocated frame has a descriptor").map();
                    // Publish the zeroes before the entry (set_pmd_at's barrier).
                    core::sync::atomic::fence(Ordering::Release);
                    let huge_base = address & !(HUGE_BYTES - 1);
                    let prot = user(region.prot);
                    if let Err(error) = arch.map_faulted(address, huge_base, head.address(), PageSize::Huge2M, prot) {
                        self.memory.pages().release_mapping(head, |h, o| self.memory.free(h, o));
                        return Err(map_error(error));
                    }
                    bump_locked(&self.stats.huge_faults);
                    return Ok(());
                }
                // No 2 MiB run free: fall back to a small page, as Linux does.
            }
        }
        // do_anonymous_page: the page is allocated and zeroed before the
        // page-table lock, which then maps it only if the PTE is still
        // empty, in one walk of the tree (the map's).
        let frame = self.memory.alloc(0).ok_or(VmError::NoMemory)?;
        self.zero(frame, 0);
        self.memory.pages().init_mapped(frame, flags::ANONYMOUS);
        core::sync::atomic::fence(Ordering::Release);
        let page_address = address & !(FRAME_SIZE - 1);
        let mut arch = self.arch.lock();
        match arch.map_faulted(address, page_address, frame.address(), PageSize::Base, user(region.prot)) {
            Ok(()) => {
                bump_locked(&self.stats.faults);
                Ok(())
            }
            Err(error) => {
                self.memory.pages().release_mapping(frame, |h, o| self.memory.free(h, o));
                match (error, arch.tree().translate(address)) {
                    // Another CPU resolved it first, or the fault was about
                    // rights the mapping has (a spurious fault): retry the
                    // access.
                    (MapError::AlreadyMapped, Some(found)) if found.entry.prot().contains(needed) => Ok(()),
                    (MapError::AlreadyMapped, Some(_)) => Err(VmError::Protection),
                    (error, _) => Err(map_error(error)),
                }
            }
        }
    }

    fn zero(&self, head: Frame, order: u32) {
        self.memory.zero(head, order);
    }

    /// Splits the huge mapping covering `address` into 32 small ones of the
    /// same page (split_huge_pmd); nothing if it is not huge-mapped.
    pub fn split(&self, address: u64) -> Result<bool, VmError> {
        let _regions = self.regions.write();
        let mut arch = self.arch.lock();
        split_leaf(&mut *arch, &self.memory, &self.stats, address & !(HUGE_BYTES - 1))
    }

    /// GUP-slow (get_user_pages with FOLL_PIN): with the mmap lock held for
    /// reading, pins `count` pages from `start` into `out`, faulting in what
    /// is not mapped. Stops at the first page it cannot pin (no region,
    /// write to a read-only region, no memory) and says where.
    pub fn pin_pages(
        &self,
        start: u64,
        count: usize,
        write: bool,
        out: &mut Vec<Frame>,
    ) -> Result<(), (usize, GupError)> {
        let regions = self.regions.read();
        self.pin_pages_locked(&regions, start, count, write, out)
    }

    fn pin_pages_locked(
        &self,
        regions: &BTreeMap<u64, Region>,
        start: u64,
        count: usize,
        write: bool,
        out: &mut Vec<Frame>,
    ) -> Result<(), (usize, GupError)> {
        for i in 0..count {
            let address = start + i as u64 * FRAME_SIZE;
            let mut faulted = false;
            loop {
                let pinned = {
                    let mut arch = self.arch.lock();
                    match arch.tree().translate(address) {
                        Some(found) if write && !found.entry.prot().contains(Prot::WRITE) => Err(GupError::ReadOnly),
                        Some(found) => {
                            let frame = Frame::from_address(found.physical & !(FRAME_SIZE - 1)).expect("aligned");
                            let page = self.memory.pages().head(frame).ok_or((i, GupError::NotMapped))?;
                            // The mapping holds a reference under this lock:
                            // the count cannot be zero.
                            assert!(page.try_pin(), "mapped page with no references");
                            Ok(Some(frame))
                        }
                        None => Ok(None),
                    }
                };
                match pinned {
                    Ok(Some(frame)) => {
                        out.push(frame);
                        break;
                    }
                    Ok(None) if !faulted => {
                        faulted = true;
                        self.fault_locked(regions, address, write).map_err(|e| (i, vm_to_gup(e)))?;
                    }
                    Ok(None) => return Err((i, GupError::NotMapped)),
                    Err(error) => return Err((i, error)),
                }
            }
        }
        self.stats.gup_slow_pages.fetch_add(count as u64, Ordering::Relaxed);
        Ok(())
    }

    /// pin_user_pages_fast: GUP-fast (no locks, interrupts off, the PMD
    /// recheck as `gup_pmd_recheck=` says) for as much of the range as it
    /// can, then GUP-slow for the rest. Returns how many pages the fast path
    /// pinned.
    pub fn pin_pages_fast(
        &self,
        start: u64,
        count: usize,
        write: bool,
        out: &mut Vec<Frame>,
    ) -> Result<usize, (usize, GupError)> {
        self.pin_pages_fast_as(start, count, write, RaceSettings::CONFIGURED, out)
    }

    /// `pin_pages_fast` with the knobs `settings` fixes.
    pub fn pin_pages_fast_as(
        &self,
        start: u64,
        count: usize,
        write: bool,
        settings: RaceSettings,
        out: &mut Vec<Frame>,
    ) -> Result<usize, (usize, GupError)> {
        let fast = self.pin_pages_fast_only_as(start, count, write, settings, out);
        if fast < count {
            self.pin_pages(start + fast as u64 * FRAME_SIZE, count - fast, write, out)
                .map_err(|(i, e)| (fast + i, e))?;
        }
        Ok(fast)
    }

    /// GUP-fast alone: pins from `start` until the first page it cannot
    /// pin locklessly; how many it pinned.
    pub fn pin_pages_fast_only(&self, start: u64, count: usize, write: bool, out: &mut Vec<Frame>) -> usize {
        self.pin_pages_fast_only_as(start, count, write, RaceSettings::CONFIGURED, out)
    }

    /// `pin_pages_fast_only` with the knobs `settings` fixes.
    #[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
    pub fn pin_pages_fast_only_as(
        &self,
        start: u64,
        count: usize,
        write: bool,
        settings: RaceSettings,
        out: &mut Vec<Frame>,
    ) -> usize {
        let recheck_pmd = settings.gup_pmd_recheck();
        let before = out.len();
        let section = ReadSide::enter::<A>();
        A::enter(&self.walker, section.read_side());
        let free = |head, order| self.memory.free(head, order);
        let pages = self.memory.pages();
        let _ = gup::gup_fast_range(
            self.root,
            start,
            count,
            write,
            recheck_pmd,
            pages,
            P::virt,
            free,
            out,
            &NoHooks,
            section.read_side(),
        );
        drop(section);
        let pinned = out.len() - before;
        self.stats.gup_fast_pages.fetch_add(pinned as u64, Ordering::Relaxed);
        pinned
    }

    /// GUP-fast of one page, with the knobs `settings` fixes and test-only
    /// synchronisation points.
    pub fn pin_page_fast_with(
        &self,
        address: u64,
        write: bool,
        settings: RaceSettings,
        hooks: &impl RaceHooks,
    ) -> Result<Frame, GupError> {
        let recheck_pmd = settings.gup_pmd_recheck();
        let section = ReadSide::enter::<A>();
        A::enter(&self.walker, section.read_side());
        let free = |head, order| self.memory.free(head, order);
        let pages = self.memory.pages();
        gup::gup_fast_one(self.root, address, write, recheck_pmd, pages, P::virt, free, hooks, section.read_side())
    }

    /// Drops a pin taken by any of the GUP calls (unpin_user_page).
    pub fn unpin(&self, frame: Frame) {
        self.memory.pages().unpin(frame, |h, o| self.memory.free(h, o));
    }

    /// Collapses the 2 MiB at `address` into a huge page (khugepaged's
    /// collapse_huge_page), under the mmap lock held for writing, with the
    /// IPI as `collapse_ipi=` says.
    pub fn collapse(&self, address: u64) -> Outcome {
        self.collapse_with(address, RaceSettings::CONFIGURED, &NoHooks)
    }

    /// `collapse` with the knobs `settings` fixes.
    pub fn collapse_as(&self, address: u64, settings: RaceSettings) -> Outcome {
        self.collapse_with(address, settings, &NoHooks)
    }

    /// `collapse_as` with test-only synchronisation points.
    pub fn collapse_with(&self, address: u64, settings: RaceSettings, hooks: &impl RaceHooks) -> Outcome {
        let ipi = settings.collapse_ipi();
        let counters = &self.stats.collapse;
        let regions = self.regions.write();
        let prot = match find(&regions, address) {
            Some(region) if region.covers_huge(address) && region.prot.contains(Prot::WRITE) => user(region.prot),
            _ => return other(counters, MapError::NotMapped),
        };
        let base = address & !(HUGE_BYTES - 1);
        let Some(huge) = self.memory.alloc(HUGE_ORDER) else {
            return other(counters, MapError::NoMemory);
        };
        let mut arch = self.arch.lock();
        let mut collapser = Collapser { arch: &mut *arch, memory: &self.memory };
        let outcome = collapse::collapse_pmd(
            &mut collapser,
            base,
            huge,
            prot,
            A::collapse_ipi(ipi),
            self.memory.pages(),
            counters,
            hooks,
        );
        if outcome != Outcome::Collapsed {
            self.memory.free(huge, HUGE_ORDER);
        }
        outcome
    }

    /// MADV_COLLAPSE: collapses every 2 MiB of `[start, start + len)` that
    /// is mapped with small pages; the outcomes, in order.
    pub fn collapse_range(&self, start: u64, len: u64) -> Vec<(u64, Outcome)> {
        self.collapse_range_as(start, len, RaceSettings::CONFIGURED)
    }

    /// `collapse_range` with the knobs `settings` fixes.
    pub fn collapse_range_as(&self, start: u64, len: u64, settings: RaceSettings) -> Vec<(u64, Outcome)> {
        let mut outcomes = Vec::new();
        let mut base = start & !(HUGE_BYTES - 1);
        while base < start + len {
            if self.arch.lock().tree().pmd(base).is_directory() {
                outcomes.push((base, self.collapse_as(base, settings)));
            }
            base += HUGE_BYTES;
        }
        outcomes
    }

    /// khugepaged's scan of one address space: the 2 MiB ranges of huge
    /// regions that are mapped with small pages, i.e. what it would collapse.
    pub fn collapse_candidates(&self) -> Vec<u64> {
        let regions = self.regions.read();
        let mut arch = self.arch.lock();
        let mut found = Vec::new();
        for region in regions.values().filter(|r| r.huge && r.prot.contains(Prot::WRITE)) {
            let mut base = region.start.next_multiple_of(HUGE_BYTES);
            while base + HUGE_BYTES <= region.end {
                if arch.tree().pmd(base).is_directory() {
                    found.push(base);
                }
                base += HUGE_BYTES;
            }
        }
        found
    }

    /// Pages currently mapped (small, and 2 MiB ones counted as 32).
    pub fn mapped_pages(&self) -> u64 {
        let regions = self.regions.read();
        let mut arch = self.arch.lock();
        regions
            .values()
            .map(|r| {
                (r.start..r.end).step_by(FRAME_SIZE as usize).filter(|&a| arch.tree().translate(a).is_some()).count()
                    as u64
            })
            .sum()
    }
}

impl<A: MmArch, P: PageMemory> Drop for Mm<A, P> {
    /// exit_mmap: unmaps everything (the backend then frees the tree).
    fn drop(&mut self) {
        let spans: Vec<(u64, u64)> = self.regions.get_mut().values().map(|r| (r.start, r.end)).collect();
        let arch = self.arch.get_mut();
        for (start, end) in spans {
            // Only a split can fail (no memory for its table; a huge page
            // that set_huge left across a region boundary): then that huge
            // page stays allocated, which is the most a failure here costs.
            let _ = zap_range(arch, &self.memory, &self.stats, start, end);
        }
        self.regions.get_mut().clear();
    }
}

/// Splits the huge mapping at `base` into 32 small ones of the same page
/// (split_huge_pmd); false if it is not huge-mapped.
fn split_leaf<A: MmArch, P: PageMemory>(arch: &mut A, memory: &P, stats: &Stats, base: u64) -> Result<bool, VmError> {
    if !arch.tree().pmd(base).is_leaf() {
        return Ok(false);
    }
    let (old, table) = arch.tree().split_pmd_leaf(base).map_err(map_error)?;
    arch.flush(base, PageSize::Huge2M, old);
    arch.tree().restore_pmd_table(base, table).expect("the PMD split_pmd_leaf cleared is empty");
    // Each of the 32 PTEs is a mapping of the compound page and holds a
    // reference on it, where the PMD held one.
    let head = memory.pages().frame(Frame::from_address(old.physical()).expect("aligned")).expect("descriptor");
    for _ in 1..1u32 << HUGE_ORDER {
        head.get();
        head.map();
    }
    stats.splits.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Unmaps every leaf in `[start, end)` (splitting a huge one the range
/// cuts), releases what they mapped, and frees emptied tables after the
/// flush and a grace period (zap_page_range + free_pgtables). The base
/// pages under one PTE table go as Linux's mmu_gather takes them: all
/// unmapped, then one flush for them all (radix: one tlbie sequence with
/// one tlbsync; hash: the HPTEs removed four per call), then the pages
/// freed, none before the flush that drops its translations.
fn zap_range<A: MmArch, P: PageMemory>(
    arch: &mut A,
    memory: &P,
    stats: &Stats,
    start: u64,
    end: u64,
) -> Result<(), VmError> {
    let mut address = start;
    let mut tables: Vec<(u64, usize)> = Vec::new();
    while address < end {
        let huge_base = address & !(HUGE_BYTES - 1);
        let pmd = arch.tree().pmd(address);
        if pmd.is_empty() {
            address = huge_base + HUGE_BYTES;
            continue;
        }
        if pmd.is_leaf() && (huge_base < start || huge_base + HUGE_BYTES > end) {
            split_leaf(arch, memory, stats, huge_base)?;
            continue;
        }
        if pmd.is_leaf() {
            if let Ok(gone) = arch.tree().unmap(huge_base) {
                arch.flush(huge_base, gone.size, gone.entry);
                release_leaf(memory, gone.entry);
                tables.extend_from_slice(&gone.tables);
            }
            address = huge_base + HUGE_BYTES;
            continue;
        }
        let first = address;
        let stop = end.min(huge_base + HUGE_BYTES);
        let mut old = [Entry::EMPTY; 1 << PTE.index_bits];
        let mut pages = 0;
        while address < stop {
            // Once the last page goes, so does the table: the rest are holes.
            if let Ok(gone) = arch.tree().unmap(address) {
                old[pages] = gone.entry;
                tables.extend_from_slice(&gone.tables);
            }
            pages += 1;
            address += FRAME_SIZE;
        }
        let old = &old[..pages];
        arch.flush_base_range(first, old);
        old.iter().filter(|entry| !entry.is_empty()).for_each(|&entry| release_leaf(memory, entry));
    }
    if !tables.is_empty() {
        arch.flush_page_walk_cache();
        arch.defer_tables(&tables);
    }
    Ok(())
}

/// Gives back the mapping's reference on the page an unmapped (and flushed)
/// leaf pointed at.
fn release_leaf<P: PageMemory>(memory: &P, entry: Entry) {
    let frame = Frame::from_address(entry.physical()).expect("leaves are frame-aligned");
    memory.pages().release_mapping(frame, |h, o| memory.free(h, o));
}

/// collapse_pmd's view of an address space, under its page-table lock.
struct Collapser<'a, A: MmArch, P: PageMemory> {
    arch: &'a mut A,
    memory: &'a P,
}

impl<A: MmArch, P: PageMemory> CollapseFlush for Collapser<'_, A, P> {
    fn clear_pmd_table(&mut self, address: u64) -> Result<u64, MapError> {
        self.arch.tree().clear_pmd_table(address).map(|(table, _)| table)
    }

    fn read_pte_table(&mut self, table: u64) -> [Entry; 32] {
        self.arch.tree().read_pte_table(table)
    }

    fn serialize_against_pte_lookup(&mut self) {
        self.arch.serialize_against_pte_lookup();
    }

    fn flush_collapsed_pmd(&mut self, address: u64, old_ptes: &[Entry]) {
        self.arch.flush_collapsed_pmd(address, old_ptes);
    }
}

impl<A: MmArch, P: PageMemory> CollapseArch for Collapser<'_, A, P> {
    fn restore_pmd(&mut self, address: u64, table: u64) -> Result<(), MapError> {
        self.arch.tree().restore_pmd_table(address, table)
    }

    fn install_huge(&mut self, address: u64, physical: u64, prot: Prot) -> Result<(), MapError> {
        self.arch.tree().map(address, physical, PageSize::Huge2M, prot)
    }

    fn defer_table(&mut self, table: u64) {
        self.arch.defer_tables(&[(table, PTE.table_bytes())]);
    }

    fn copy_page(&mut self, from: u64, to: u64) {
        // Both are whole frames of RAM: the old page, unreachable and kept
        // alive by its mapping, and a frame of the caller's new page.
        let frame = |physical| Frame::from_address(physical).expect("frames are aligned");
        self.memory.copy(frame(from), frame(to));
    }

    fn zero_page(&mut self, to: u64) {
        self.memory.zero(Frame::from_address(to).expect("frames are aligned"), 0);
    }

    fn virt(&self, physical: u64) -> *mut u8 {
        P::virt(physical)
    }

    fn free_page(&mut self, head: Frame, order: u32) {
        self.memory.free(head, order);
    }
}

/// Counts one more of a statistic that only the page-table lock's holder
/// changes: a load and a store, not a read-modify-write (readers see one
/// value or the next).
fn bump_locked(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The rights of a leaf mapping a region's memory: the region's, as user
/// memory (hash keys and radix EAA then treat it as Linux treats user pages).
fn user(prot: Prot) -> Prot {
    prot | Prot::USER
}

fn other(counters: &Counters, error: MapError) -> Outcome {
    counters.aborted_other.fetch_add(1, Ordering::Relaxed);
    Outcome::AbortedOther(error)
}

fn check_range(start: u64, len: u64) -> Result<u64, VmError> {
    let end = start.checked_add(len).ok_or(VmError::BadRange)?;
    if len == 0
        || !start.is_multiple_of(FRAME_SIZE)
        || !len.is_multiple_of(FRAME_SIZE)
        || end > 1 << super::pagetable::ADDRESS_BITS
    {
        return Err(VmError::BadRange);
    }
    Ok(end)
}

fn find(regions: &BTreeMap<u64, Region>, address: u64) -> Option<Region> {
    regions.range(..=address).next_back().map(|(_, r)| *r).filter(|r| address < r.end)
}

/// Whether regions cover all of `[start, end)`.
fn covered(regions: &BTreeMap<u64, Region>, start: u64, end: u64) -> bool {
    let mut reached = start;
    for (_, region) in overlapping(regions, start, end) {
        if region.start > reached {
            return false;
        }
        reached = region.end;
    }
    reached >= end
}

fn overlapping(regions: &BTreeMap<u64, Region>, start: u64, end: u64) -> impl Iterator<Item = (&u64, &Region)> {
    regions.range(..end).filter(move |(_, r)| r.end > start)
}

/// Replaces the parts of regions inside `[start, end)` with what `change`
/// makes of them (`None` removes), keeping the parts outside.
fn carve(regions: &mut BTreeMap<u64, Region>, start: u64, end: u64, change: impl Fn(Region) -> Option<Region>) {
    let hit: Vec<Region> = overlapping(regions, start, end).map(|(_, r)| *r).collect();
    for region in hit {
        regions.remove(&region.start);
        if region.start < start {
            regions.insert(region.start, Region { end: start, ..region });
        }
        if region.end > end {
            regions.insert(end, Region { start: end, ..region });
        }
        let inside = Region { start: region.start.max(start), end: region.end.min(end), ..region };
        if let Some(changed) = change(inside) {
            regions.insert(changed.start, changed);
        }
    }
}

/// Merges the regions touching `[start, end)` with their neighbours where
/// they are alike (vma_merge), so that a 2 MiB stretch mapped in pieces can
/// still take a huge page.
fn merge_around(regions: &mut BTreeMap<u64, Region>, start: u64, end: u64) {
    let touching: Vec<u64> = regions.range(..=end).filter(|(_, r)| r.end >= start).map(|(&s, _)| s).collect();
    for key in touching {
        // A region that merged with its successor may now meet the next one.
        while let Some(&region) = regions.get(&key) {
            match regions.get(&region.end) {
                Some(&next) if next.prot == region.prot && next.huge == region.huge => {
                    regions.remove(&next.start);
                    regions.insert(region.start, Region { end: next.end, ..region });
                }
                _ => break,
            }
        }
    }
}

fn map_error(error: MapError) -> VmError {
    match error {
        MapError::NoMemory => VmError::NoMemory,
        MapError::Misaligned | MapError::OutOfRange => VmError::BadRange,
        MapError::AlreadyMapped | MapError::NotMapped => VmError::Overlaps,
    }
}

fn vm_to_gup(error: VmError) -> GupError {
    match error {
        VmError::Protection => GupError::ReadOnly,
        VmError::NoMemory => GupError::NoMemory,
        VmError::BadRange | VmError::Overlaps | VmError::NoRegion => GupError::NotMapped,
    }
}

#[cfg(test)]
mod tests {
    //! The address-space code on the host: emulated physical memory, a
    //! backend that counts flushes and frees unhooked tables at once (no
    //! other walker exists here), interrupts as a no-op.
    use super::*;
    use crate::mm::page::{Page, PIN_BIAS};
    use crate::mm::pagetable::tables::emulated::EmulatedFrames;
    use crate::mm::pagetable::{FrameSource, TableAllocator};
    extern crate std;
    use core::cell::Cell;
    use std::sync::{Arc, Mutex as StdMutex};

    /// Host tests fix the knobs: the knobs module's own test changes the globals.
    const AUTO: RaceSettings = RaceSettings::new(true, CollapseIpi::Auto);

    const MIB: u64 = 1 << 20;
    const FRAMES: u64 = 512;

    std::thread_local!(static RAW: Cell<(u64, usize, usize)> = const { Cell::new((0, 0, 0)) });

    /// What the model's MMU and memory saw, in order: a flush of a page's
    /// translations (its address) or a frame freed (its address).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Flushed(u64),
        Freed(u64),
    }

    std::thread_local!(static EVENTS: std::cell::RefCell<Vec<Event>> = const { std::cell::RefCell::new(Vec::new()) });

    fn log(event: Event) {
        EVENTS.with(|events| events.borrow_mut().push(event));
    }

    fn virt(physical: u64) -> *mut u8 {
        let (base, pointer, bytes) = RAW.with(|r| r.get());
        let offset = (physical - base) as usize;
        assert!(offset < bytes, "physical {physical:#x} outside emulated memory");
        (pointer + offset) as *mut u8
    }

    #[derive(Clone)]
    struct Shared(Arc<StdMutex<EmulatedFrames>>);

    impl FrameSource for Shared {
        fn alloc_frame(&mut self) -> Option<u64> {
            self.0.lock().unwrap().alloc_frame()
        }
        fn free_frame(&mut self, frame: u64) {
            self.0.lock().unwrap().free_frame(frame)
        }
        fn virt(&self, physical: u64) -> *mut u8 {
            virt(physical)
        }
    }

    struct Model {
        tree: PageTable<TableAllocator<Shared>>,
        flushes: Vec<(u64, PageSize)>,
        range_flushes: u64,
        collapse_flushes: u64,
    }

    impl InterruptsOff for Model {
        fn disable() -> bool {
            false
        }
        fn restore(_were_on: bool) {}
    }

    impl MmArch for Model {
        type Tables = TableAllocator<Shared>;
        fn tree(&mut self) -> &mut PageTable<Self::Tables> {
            &mut self.tree
        }
        fn defer_tables(&mut self, tables: &[(u64, usize)]) {
            self.tree.release(tables);
        }
    }

    impl MmuFlush for Model {
        fn flush(&mut self, address: u64, size: PageSize, _old: Entry) {
            self.flushes.push((address, size));
            log(Event::Flushed(address));
        }
        fn flush_base_range(&mut self, start: u64, old: &[Entry]) {
            let mapped = (start..).step_by(FRAME_SIZE as usize).zip(old).filter(|(_, e)| !e.is_empty());
            for (address, _) in mapped {
                self.flushes.push((address, PageSize::Base));
                log(Event::Flushed(address));
            }
            self.range_flushes += 1;
        }
        fn flush_page_walk_cache(&mut self) {}
        fn flush_collapsed_pmd(&mut self, _address: u64, _old_ptes: &[Entry]) {
            self.collapse_flushes += 1;
        }
    }

    /// One host thread: no other CPU walks, nothing to wait for.
    impl LocklessWalkers for Model {
        type Walker = ();
        fn walker(&mut self) {}
        fn enter(_: &(), _: &ReadSide) {}
        fn serialize_against_pte_lookup(&mut self) {}
        fn collapse_ipi(policy: CollapseIpi) -> bool {
            policy.enabled(false)
        }
    }

    struct Memory {
        frames: Shared,
        pages: PageArray<'static>,
    }

    impl PageMemory for Memory {
        fn alloc(&self, order: u32) -> Option<Frame> {
            let mut frames = self.frames.0.lock().unwrap();
            if order == 0 {
                frames.allocator.alloc()
            } else {
                frames.allocator.alloc_contiguous(1 << order, 1 << order)
            }
        }
        fn free(&self, head: Frame, order: u32) {
            log(Event::Freed(head.address()));
            self.frames.0.lock().unwrap().allocator.free_contiguous(head, 1 << order);
        }
        fn virt(physical: u64) -> *mut u8 {
            virt(physical)
        }
        fn pages(&self) -> &PageArray<'_> {
            &self.pages
        }
    }

    type TestMm = Mm<Model, Memory>;

    fn new_mm() -> (TestMm, Shared) {
        let emulated = EmulatedFrames::new(FRAMES);
        let (base, pointer, bytes) = emulated.raw();
        RAW.with(|r| r.set((base, pointer as usize, bytes)));
        let frames = Shared(Arc::new(StdMutex::new(emulated)));
        let descriptors: &'static [Page] = std::vec::Vec::from_iter((0..FRAMES).map(|_| Page::new())).leak();
        let tree = PageTable::new(TableAllocator::new(frames.clone())).unwrap();
        let mm = Mm::new(
            Model { tree, flushes: Vec::new(), range_flushes: 0, collapse_flushes: 0 },
            Memory { frames: frames.clone(), pages: PageArray::new(base, descriptors) },
        );
        (mm, frames)
    }

    fn free(frames: &Shared) -> u64 {
        frames.0.lock().unwrap().free_frames()
    }

    fn read(mm: &TestMm, address: u64) -> Option<u64> {
        let found = mm.with_arch(|a| a.tree().translate(address))?;
        // SAFETY: a mapped frame of emulated memory, 8-aligned.
        Some(unsafe { (virt(found.physical) as *const u64).read() })
    }

    fn write(mm: &TestMm, address: u64, value: u64) {
        let found = mm.with_arch(|a| a.tree().translate(address)).expect("mapped");
        // SAFETY: as in `read`.
        unsafe { (virt(found.physical) as *mut u64).write(value) };
    }

    const RW: Prot = Prot::READ.union(Prot::WRITE);
    const SMALL: u64 = 0x1000_0000;
    const HUGE: u64 = 0x2000_0000;

    #[test]
    fn faults_map_zeroed_pages_huge_where_the_region_allows() {
        let (mm, _frames) = new_mm();
        mm.map(SMALL, 4 * FRAME_SIZE, RW, false).unwrap();
        mm.map(HUGE, 4 * MIB, RW, true).unwrap();
        mm.map(HUGE + 8 * MIB, FRAME_SIZE, Prot::READ, false).unwrap();
        assert_eq!(mm.map(SMALL + FRAME_SIZE, FRAME_SIZE, RW, false), Err(VmError::Overlaps));
        assert_eq!(mm.map(SMALL + 1, FRAME_SIZE, RW, false), Err(VmError::BadRange));

        mm.fault(SMALL + FRAME_SIZE + 8, true).unwrap();
        let small = mm.with_arch(|a| a.tree().translate(SMALL + FRAME_SIZE)).unwrap();
        assert_eq!(small.size, PageSize::Base);
        assert_eq!(small.entry.prot(), RW | Prot::USER, "anonymous memory is user memory");
        assert_eq!(read(&mm, SMALL + FRAME_SIZE), Some(0));
        assert!(mm.with_arch(|a| a.tree().translate(SMALL)).is_none(), "only the faulting page is mapped");

        mm.fault(HUGE + 3 * FRAME_SIZE, false).unwrap();
        let huge = mm.with_arch(|a| a.tree().translate(HUGE + 3 * FRAME_SIZE)).unwrap();
        assert_eq!(huge.size, PageSize::Huge2M);
        let head = Frame::from_address(huge.entry.physical()).unwrap();
        let page = mm.memory().pages().frame(head).unwrap();
        assert_eq!((page.refcount(), page.mapcount(), page.flags()), (1, 1, flags::HEAD | flags::ANONYMOUS));
        assert_eq!(mm.stats.huge_faults.load(Ordering::Relaxed), 1);

        assert_eq!(mm.fault(HUGE + 8 * MIB, true), Err(VmError::Protection));
        mm.fault(HUGE + 8 * MIB, false).unwrap();
        assert_eq!(mm.fault(HUGE + 8 * MIB, true), Err(VmError::Protection), "a read-only page stays read-only");
        assert_eq!(mm.fault(HUGE + 6 * MIB, false), Err(VmError::NoRegion));
        // A second fault on a mapped page changes nothing.
        mm.fault(SMALL + FRAME_SIZE, true).unwrap();
        assert_eq!(mm.stats.faults.load(Ordering::Relaxed), 2);
    }

    /// Done-when 5: the fast and slow paths return the same pages, over huge
    /// and small mappings; read-only pins of read-only memory; holes.
    #[test]
    fn gup_fast_and_slow_agree() {
        let (mm, _frames) = new_mm();
        mm.map(HUGE, 2 * MIB, RW, true).unwrap();
        mm.map(HUGE + 2 * MIB, 4 * FRAME_SIZE, RW, false).unwrap();
        let span = 32 + 4;
        // Nothing mapped yet: GUP-fast pins nothing, GUP-slow faults all in.
        let mut fast = Vec::new();
        assert_eq!(mm.pin_pages_fast_only_as(HUGE, span, true, RaceSettings::recheck(true), &mut fast), 0);
        let mut slow = Vec::new();
        mm.pin_pages(HUGE, span, true, &mut slow).unwrap();
        assert_eq!(mm.with_arch(|a| a.tree().translate(HUGE)).unwrap().size, PageSize::Huge2M);
        assert_eq!(mm.pin_pages_fast_only_as(HUGE, span, true, RaceSettings::recheck(true), &mut fast), span);
        assert_eq!(fast, slow, "fast and slow GUP disagree");
        let head = mm.memory().pages().head(slow[0]).unwrap();
        assert_eq!(head.refcount(), 1 + 2 * 32 * PIN_BIAS);
        for frame in fast.drain(..).chain(slow.drain(..)) {
            mm.unpin(frame);
        }
        assert_eq!(head.refcount(), 1);

        // The fallback: fast for what is mapped, slow for the rest.
        mm.map(SMALL, 8 * FRAME_SIZE, RW, false).unwrap();
        mm.fault(SMALL, true).unwrap();
        mm.fault(SMALL + FRAME_SIZE, true).unwrap();
        let mut both = Vec::new();
        assert_eq!(mm.pin_pages_fast_as(SMALL, 8, true, RaceSettings::recheck(true), &mut both), Ok(2));
        let mut again = Vec::new();
        mm.pin_pages(SMALL, 8, true, &mut again).unwrap();
        assert_eq!(both, again);
        both.drain(..).chain(again.drain(..)).for_each(|f| mm.unpin(f));

        // Read-only memory: a read pin works, a write pin does not.
        mm.map(SMALL + MIB, FRAME_SIZE, Prot::READ, false).unwrap();
        let mut pins = Vec::new();
        assert_eq!(mm.pin_pages(SMALL + MIB, 1, true, &mut pins), Err((0, GupError::ReadOnly)));
        mm.pin_pages(SMALL + MIB, 1, false, &mut pins).unwrap();
        assert_eq!(mm.pin_pages_fast_only_as(SMALL + MIB, 1, true, RaceSettings::recheck(true), &mut pins), 0);
        assert_eq!(mm.pin_pages_fast_only_as(SMALL + MIB, 1, false, RaceSettings::recheck(true), &mut pins), 1);
        assert_eq!(pins[0], pins[1]);
        pins.drain(..).for_each(|f| mm.unpin(f));

        // A hole stops both at the same page.
        let mut held = Vec::new();
        assert_eq!(mm.pin_pages(SMALL + 6 * FRAME_SIZE, 4, false, &mut held), Err((2, GupError::NotMapped)));
        assert_eq!(held.len(), 2);
        assert_eq!(
            mm.pin_pages_fast_as(SMALL + 6 * FRAME_SIZE, 4, false, RaceSettings::recheck(true), &mut held),
            Err((2, GupError::NotMapped))
        );
        assert_eq!(held.len(), 4);
        assert_eq!(held[..2], held[2..]);
        held.drain(..).for_each(|f| mm.unpin(f));
    }

    /// munmap as Linux's mmu_gather does it: the pages under one PTE table
    /// are flushed in one go, and no page is freed before the flush that
    /// drops its translations (the TLB could still write to it).
    #[test]
    fn unmap_flushes_a_table_at_once_and_frees_its_pages_after() {
        let (mm, _frames) = new_mm();
        // 40 pages: a whole PTE table's 32, and 8 of the next, with holes.
        mm.map(SMALL, 40 * FRAME_SIZE, RW, false).unwrap();
        let touched: Vec<u64> = (0..40).filter(|i| i % 5 != 3).map(|i| SMALL + i * FRAME_SIZE).collect();
        for &address in &touched {
            mm.fault(address, true).unwrap();
        }
        let frame_of: Vec<(u64, u64)> =
            touched.iter().map(|&a| (a, mm.with_arch(|arch| arch.tree().translate(a)).unwrap().physical)).collect();
        EVENTS.with(|events| events.borrow_mut().clear());
        mm.unmap(SMALL, 40 * FRAME_SIZE).unwrap();
        assert_eq!(mm.with_arch(|a| a.range_flushes), 2, "one flush per PTE table");
        let events = EVENTS.with(|events| events.borrow().clone());
        for &(address, frame) in &frame_of {
            let flushed = events.iter().position(|&e| e == Event::Flushed(address));
            let freed = events.iter().position(|&e| e == Event::Freed(frame));
            assert!(flushed.is_some() && freed.is_some(), "{address:#x}: {events:?}");
            assert!(flushed < freed, "page at {address:#x} freed before its flush: {events:?}");
        }
        // Holes are not flushed as pages.
        assert!(!events.contains(&Event::Flushed(SMALL + 3 * FRAME_SIZE)));
        assert_eq!(mm.mapped_pages(), 0);
    }

    #[test]
    fn unmap_returns_pages_and_tables_and_a_pin_outlives_it() {
        let (mm, frames) = new_mm();
        let baseline = free(&frames);
        mm.map(HUGE, 4 * MIB, RW, true).unwrap();
        mm.map(SMALL, 16 * FRAME_SIZE, RW, false).unwrap();
        for i in 0..16 {
            mm.fault(SMALL + i * FRAME_SIZE, true).unwrap();
        }
        mm.fault(HUGE, true).unwrap();
        mm.fault(HUGE + 2 * MIB, true).unwrap();
        assert!(free(&frames) < baseline - 64);
        let mut pin = Vec::new();
        mm.pin_pages(SMALL + 3 * FRAME_SIZE, 1, true, &mut pin).unwrap();
        // Unmapping part of a huge page splits it, keeps the rest mapped.
        mm.unmap(HUGE + MIB, MIB + FRAME_SIZE).unwrap();
        assert_eq!(mm.stats.splits.load(Ordering::Relaxed), 2);
        assert!(mm.with_arch(|a| a.tree().translate(HUGE + MIB - FRAME_SIZE)).is_some());
        assert!(mm.with_arch(|a| a.tree().translate(HUGE + MIB)).is_none());
        assert!(mm.with_arch(|a| a.tree().translate(HUGE + 2 * MIB + FRAME_SIZE)).is_some());
        assert_eq!(mm.region(HUGE + MIB), None);
        assert_eq!(mm.region(HUGE + 2 * MIB + FRAME_SIZE).map(|r| r.start), Some(HUGE + 2 * MIB + FRAME_SIZE));
        mm.unmap(SMALL, 16 * FRAME_SIZE).unwrap();
        // The pinned page lives on, unmapped, until the pin goes.
        let page = mm.memory().pages().frame(pin[0]).unwrap();
        assert_eq!((page.refcount(), page.mapcount()), (PIN_BIAS, 0));
        mm.unpin(pin[0]);
        assert_eq!(page.refcount(), 0);
        mm.unmap(HUGE, 4 * MIB).unwrap();
        assert_eq!(mm.mapped_pages(), 0);
        // Every page and every table but the PGD is back.
        let pgd = crate::mm::pagetable::PGD.table_bytes() as u64 / FRAME_SIZE;
        assert_eq!(free(&frames), baseline);
        drop(mm);
        assert!(pgd >= 1);
    }

    #[test]
    fn drop_unmaps_everything() {
        let (mm, frames) = new_mm();
        let baseline = free(&frames);
        mm.map(HUGE, 2 * MIB, RW, true).unwrap();
        mm.map(SMALL, 4 * FRAME_SIZE, RW, false).unwrap();
        mm.fault(HUGE, true).unwrap();
        mm.fault(SMALL, true).unwrap();
        assert!(free(&frames) < baseline);
        drop(mm);
        // Pages and tables came back (the PGD, allocated before the
        // baseline, stays with the host model's tree).
        assert_eq!(free(&frames), baseline);
    }

    #[test]
    fn split_then_collapse_keeps_the_data() {
        let (mm, frames) = new_mm();
        mm.map(HUGE, 2 * MIB, RW, true).unwrap();
        mm.fault(HUGE, true).unwrap();
        for i in 0..32 {
            write(&mm, HUGE + i * FRAME_SIZE + 16, 0x5eed_0000 + i);
        }
        assert_eq!(mm.split(HUGE), Ok(true));
        let first = mm.with_arch(|a| a.tree().translate(HUGE)).unwrap();
        assert_eq!(first.size, PageSize::Base);
        let head = mm.memory().pages().head(Frame::from_address(first.physical).unwrap()).unwrap();
        assert_eq!((head.refcount(), head.mapcount()), (32, 32), "each PTE maps and references the compound page");
        assert_eq!(mm.collapse_candidates(), [HUGE]);
        let before = free(&frames);
        assert_eq!(mm.collapse_as(HUGE, AUTO), Outcome::Collapsed);
        let collapsed = mm.with_arch(|a| a.tree().translate(HUGE)).unwrap();
        assert_eq!((collapsed.size, collapsed.entry.prot()), (PageSize::Huge2M, RW | Prot::USER));
        assert_ne!(mm.with_arch(|a| a.tree().translate(HUGE)).unwrap().physical, first.physical);
        for i in 0..32 {
            assert_eq!(read(&mm, HUGE + i * FRAME_SIZE + 16), Some(0x5eed_0000 + i));
        }
        // The old compound page went back for the new one, and so did the
        // frame that held the split's PTE table.
        assert_eq!(head.refcount(), 0);
        assert_eq!(free(&frames), before + 1);
        assert!(mm.collapse_candidates().is_empty());
    }

    #[test]
    fn collapse_of_small_pages_and_a_pinned_one() {
        let (mm, frames) = new_mm();
        // Small pages in a huge region: fault the first half while it is a
        // region of its own, then map the second half next to it (the two
        // merge into one region that covers the 2 MiB).
        mm.map(HUGE, MIB, RW, true).unwrap();
        mm.fault(HUGE, true).unwrap();
        mm.map(HUGE + MIB, MIB, RW, true).unwrap();
        assert_eq!(mm.region(HUGE), Some(Region { start: HUGE, end: HUGE + 2 * MIB, prot: RW, huge: true }));
        mm.fault(HUGE + MIB + FRAME_SIZE, true).unwrap();
        assert_eq!(mm.with_arch(|a| a.tree().translate(HUGE)).unwrap().size, PageSize::Base);
        write(&mm, HUGE + MIB + FRAME_SIZE, 77);
        let mut pin = Vec::new();
        mm.pin_pages(HUGE + MIB + FRAME_SIZE, 1, true, &mut pin).unwrap();
        let before = free(&frames);
        assert_eq!(mm.collapse_as(HUGE, AUTO), Outcome::AbortedPinned(17));
        assert_eq!(free(&frames), before, "an aborted collapse gives its huge page back");
        assert_eq!(mm.stats.collapse.aborted_pinned.load(Ordering::Relaxed), 1);
        assert_eq!(mm.with_arch(|a| a.tree().translate(HUGE + MIB + FRAME_SIZE)).unwrap().physical, pin[0].address());
        mm.unpin(pin[0]);
        assert_eq!(mm.collapse_range_as(HUGE, 2 * MIB, AUTO), [(HUGE, Outcome::Collapsed)]);
        assert_eq!(read(&mm, HUGE + MIB + FRAME_SIZE), Some(77));
        assert_eq!(read(&mm, HUGE + MIB + 2 * FRAME_SIZE), Some(0), "holes collapse to zeroes");
        // Not in a huge region, or nothing small-mapped: nothing to do.
        mm.map(SMALL, 2 * MIB, RW, false).unwrap();
        mm.fault(SMALL, true).unwrap();
        assert_eq!(mm.collapse_as(SMALL, AUTO), Outcome::AbortedOther(MapError::NotMapped));
        assert_eq!(mm.stats.collapse.collapsed.load(Ordering::Relaxed), 1);
    }

    /// collapse_pmd refuses a range (or a huge page) that is not 2 MiB-aligned,
    /// and counts it, before touching the address space.
    #[test]
    fn collapse_pmd_refuses_misaligned_ranges() {
        let (mm, frames) = new_mm();
        mm.map(HUGE, 2 * MIB, RW, false).unwrap();
        mm.fault(HUGE + FRAME_SIZE, true).unwrap();
        let huge = frames.0.lock().unwrap().allocator.alloc_contiguous(32, 32).unwrap();
        let counters = Counters::new();
        let tree_before = mm.with_arch(|a| a.tree().pmd(HUGE));
        for (address, head) in
            [(HUGE + FRAME_SIZE, huge), (HUGE, Frame::from_address(huge.address() + FRAME_SIZE).unwrap())]
        {
            let outcome = mm.with_arch(|arch| {
                let mut collapser = Collapser { arch, memory: mm.memory() };
                collapse::collapse_pmd(
                    &mut collapser,
                    address,
                    head,
                    RW,
                    false,
                    mm.memory().pages(),
                    &counters,
                    &NoHooks,
                )
            });
            assert_eq!(outcome, Outcome::AbortedOther(MapError::Misaligned));
        }
        assert_eq!(counters.aborted_other.load(Ordering::Relaxed), 2);
        assert_eq!(counters.collapsed.load(Ordering::Relaxed), 0);
        assert_eq!(mm.with_arch(|a| a.tree().pmd(HUGE)), tree_before, "the PMD was touched");
        assert_eq!(mm.with_arch(|a| a.collapse_flushes), 0);
    }

    #[test]
    fn madvise_hugepage_lets_small_pages_collapse() {
        let (mm, _frames) = new_mm();
        mm.map(HUGE, 2 * MIB, RW, false).unwrap();
        for i in 0..32 {
            mm.fault(HUGE + i * FRAME_SIZE, true).unwrap();
        }
        assert_eq!(mm.collapse_as(HUGE, AUTO), Outcome::AbortedOther(MapError::NotMapped), "not a THP region");
        assert_eq!(mm.set_huge(HUGE, 4 * MIB, true), Err(VmError::NoRegion));
        mm.set_huge(HUGE, 2 * MIB, true).unwrap();
        assert_eq!(mm.region(HUGE).map(|r| r.huge), Some(true));
        assert_eq!(mm.collapse_as(HUGE, AUTO), Outcome::Collapsed);
        mm.set_huge(HUGE + MIB, MIB, false).unwrap();
        assert_eq!(mm.region(HUGE).map(|r| (r.end, r.huge)), Some((HUGE + MIB, true)));
        assert_eq!(mm.region(HUGE + MIB).map(|r| r.huge), Some(false));
    }

    #[test]
    fn protect_changes_rights_and_splits_what_it_cuts() {
        let (mm, _frames) = new_mm();
        mm.map(HUGE, 2 * MIB, RW, true).unwrap();
        mm.fault(HUGE, true).unwrap();
        mm.protect(HUGE, MIB, Prot::READ).unwrap();
        assert_eq!(mm.stats.splits.load(Ordering::Relaxed), 1);
        assert_eq!(mm.fault(HUGE, true), Err(VmError::Protection));
        mm.fault(HUGE + MIB, true).unwrap();
        let mut pins = Vec::new();
        assert_eq!(
            mm.pin_pages_fast_as(HUGE + MIB - FRAME_SIZE, 2, true, RaceSettings::recheck(true), &mut pins),
            Err((0, GupError::ReadOnly))
        );
        assert_eq!(mm.pin_pages_fast_as(HUGE + MIB, 1, true, RaceSettings::recheck(true), &mut pins), Ok(1));
        pins.drain(..).for_each(|f| mm.unpin(f));
        assert!(
            mm.with_arch(|a| a.flushes.contains(&(HUGE, PageSize::Huge2M))),
            "the split flushed the huge translation"
        );
        assert_eq!(mm.region(HUGE).unwrap().prot, Prot::READ);
        assert_eq!(mm.region(HUGE + MIB).unwrap().prot, RW);
        assert_eq!(mm.protect(HUGE, 4 * MIB, RW), Err(VmError::NoRegion));
        // Giving the first half its rights back merges the two again.
        mm.protect(HUGE, MIB, RW).unwrap();
        assert_eq!(mm.region(HUGE), Some(Region { start: HUGE, end: HUGE + 2 * MIB, prot: RW, huge: true }));
        // So does filling a gap between two alike regions.
        mm.map(SMALL, FRAME_SIZE, RW, false).unwrap();
        mm.map(SMALL + 2 * FRAME_SIZE, FRAME_SIZE, RW, false).unwrap();
        mm.map(SMALL + FRAME_SIZE, FRAME_SIZE, RW, false).unwrap();
        assert_eq!(mm.region(SMALL).map(|r| r.end), Some(SMALL + 3 * FRAME_SIZE));
    }
}
