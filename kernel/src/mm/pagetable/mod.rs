//! The software page-table tree both POWER MMUs use, as Linux's book3s64:
//! PGD → PUD → PMD → PTE in the radix format with 64 KiB base pages. Index
//! sizes 13/9/9/5 (Linux's RADIX_{PGD,PUD,PMD,PTE}_INDEX_SIZE for 64K pages),
//! so a PTE maps 64 KiB, a PMD leaf 2 MiB and a PUD leaf 1 GiB, over a 52-bit
//! address. Radix hardware walks this tree directly; the hash MMU fills its
//! hashed page table from it.
//!
//! Changing a valid entry needs a TLB flush afterwards; the caller does that
//! through the arch's flush interface. Tables emptied by `unmap` are handed
//! back in `Unmapped::tables`, to be released with `release` only after the
//! flush (and, once lockless walkers exist, after an RCU grace period).

pub mod entry;
pub mod tables;

use core::sync::atomic::Ordering;

use heapless::Vec;

pub use entry::{Entry, Prot, Slot};
pub use tables::{FrameSource, TableAllocator, TableMemory};

/// Bits of an effective address the tree translates (below the quadrant).
pub const ADDRESS_BITS: u32 = 52;
pub const PAGE_SHIFT: u32 = 16;

/// One level of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub name: &'static str,
    /// log2 of the bytes one entry of this level covers.
    pub shift: u32,
    /// log2 of the number of entries in a table of this level.
    pub index_bits: u32,
}

pub const PGD: Level = Level { name: "PGD", shift: 39, index_bits: 13 };
pub const PUD: Level = Level { name: "PUD", shift: 30, index_bits: 9 };
pub const PMD: Level = Level { name: "PMD", shift: 21, index_bits: 9 };
pub const PTE: Level = Level { name: "PTE", shift: PAGE_SHIFT, index_bits: 5 };
pub const LEVELS: [Level; 4] = [PGD, PUD, PMD, PTE];

impl Level {
    pub fn index(self, address: u64) -> usize {
        ((address >> self.shift) & ((1 << self.index_bits) - 1)) as usize
    }

    /// Bytes in one table of this level.
    pub fn table_bytes(self) -> usize {
        8 << self.index_bits
    }

    pub fn entry_span(self) -> u64 {
        1 << self.shift
    }
}

/// Sizes the tree maps with one leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PageSize {
    /// 64 KiB, a PTE.
    Base,
    /// 2 MiB, a PMD leaf.
    Huge2M,
    /// 1 GiB, a PUD leaf.
    Huge1G,
}

impl PageSize {
    pub fn bytes(self) -> u64 {
        self.level().entry_span()
    }

    /// The level whose entries are leaves of this size.
    pub fn level(self) -> Level {
        match self {
            PageSize::Base => PTE,
            PageSize::Huge2M => PMD,
            PageSize::Huge1G => PUD,
        }
    }

    fn depth(self) -> usize {
        match self {
            PageSize::Base => 3,
            PageSize::Huge2M => 2,
            PageSize::Huge1G => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Address or physical address not aligned to the page size.
    Misaligned,
    /// Address outside the 52 bits the tree translates (after the quadrant).
    OutOfRange,
    /// Something is mapped there already (a leaf, or a table where a huge
    /// leaf was asked for).
    AlreadyMapped,
    NotMapped,
    /// No memory for a table.
    NoMemory,
}

/// A translation found by `translate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub physical: u64,
    pub size: PageSize,
    pub entry: Entry,
}

/// A leaf found by `walk`: its entry, size and the slot holding it.
pub struct Walked<'a> {
    pub entry: Entry,
    pub size: PageSize,
    pub slot: &'a Slot,
}

/// The lockless read side of page tables (Linux's `local_irq_save` around
/// GUP-fast, and the hash fault path, which runs with interrupts off):
/// while a `ReadSide` lives, this CPU has interrupts off, so it passes no
/// sched-RCU quiescent state and answers no IPI. Tables unhooked from a
/// tree are freed only after a grace period (and THP collapse's IPI, where
/// it is on, waits for the section), so every table reached from a live
/// root during the section stays allocated until it ends. The lockless
/// walkers take a `&ReadSide` and return references that borrow it: none
/// can outlive the section. Not `Send`: it stands for this CPU's state.
pub struct ReadSide {
    _this_cpu: core::marker::PhantomData<*const ()>,
}

/// Turning interrupts off and back on, as the platform does it.
pub trait InterruptsOff {
    /// Turns interrupts off on this CPU; whether they were on.
    fn disable() -> bool;
    fn restore(were_on: bool);
}

impl ReadSide {
    /// A read side for code that already runs with interrupts off.
    ///
    /// # Safety
    /// Interrupts stay off on this CPU for as long as the value lives (an
    /// interrupt handler, entered with them off by the hardware; a model
    /// thread that nothing interrupts).
    pub unsafe fn assume_interrupts_off() -> ReadSide {
        ReadSide { _this_cpu: core::marker::PhantomData }
    }

    /// Turns interrupts off (through `I`) for as long as the returned
    /// section lives; it restores them when dropped.
    pub fn enter<I: InterruptsOff>() -> Section<I> {
        let were_on = I::disable();
        // SAFETY: interrupts are off from here until the section, which owns
        // this read side, is dropped and restores them.
        let read_side = unsafe { ReadSide::assume_interrupts_off() };
        Section { read_side, were_on, _arch: core::marker::PhantomData }
    }
}

/// An interrupts-off section: its read side, and whether to turn interrupts
/// back on at the end.
pub struct Section<I: InterruptsOff> {
    read_side: ReadSide,
    were_on: bool,
    _arch: core::marker::PhantomData<I>,
}

impl<I: InterruptsOff> Section<I> {
    pub fn read_side(&self) -> &ReadSide {
        &self.read_side
    }
}

impl<I: InterruptsOff> Drop for Section<I> {
    fn drop(&mut self) {
        I::restore(self.were_on);
    }
}

/// The slot of `address` in the table at physical `table` of `level`.
/// Raw table indexing lives here and in `PageTable`, nowhere else.
#[inline]
fn slot_in(table: u64, level: Level, tree: u64, virt: fn(u64) -> *mut u8, _: &ReadSide) -> &Slot {
    let slots = virt(table) as *const Slot;
    // SAFETY: `table` is a live tree's root or was read from one of its
    // directory entries during the read side, so it is a table of `level`
    // that stays allocated until a grace period after it is unhooked, which
    // the read side holds off; the reference borrows the read side.
    unsafe { &*slots.add(level.index(tree)) }
}

/// Walks the tree rooted at physical `root` for `address` without locks:
/// each entry is read once, atomically, and the walk follows what it read.
/// `virt` must map the tree's physical table addresses.
pub fn walk<'g>(root: u64, address: u64, virt: fn(u64) -> *mut u8, read_side: &'g ReadSide) -> Option<Walked<'g>> {
    walk_from(root, address, |table, level, tree| slot_in(table, level, tree, virt, read_side))
}

/// The walk itself, over a way to reach a table's slot.
#[inline]
fn walk_from<'a>(root: u64, address: u64, slot_at: impl Fn(u64, Level, u64) -> &'a Slot) -> Option<Walked<'a>> {
    let tree = tree_address(address).ok()?;
    if root == 0 {
        return None;
    }
    let mut table = root;
    for (depth, level) in LEVELS.iter().copied().enumerate() {
        let slot = slot_at(table, level, tree);
        let entry = slot.load_dependent();
        if entry.is_leaf() {
            let size = match depth {
                1 => PageSize::Huge1G,
                2 => PageSize::Huge2M,
                3 => PageSize::Base,
                _ => return None,
            };
            return Some(Walked { entry, size, slot });
        }
        if !entry.is_directory() {
            return None;
        }
        table = entry.next_table();
    }
    None
}

/// The PMD slot covering `address`, walking PGD and PUD without locks.
#[inline]
pub fn pmd_slot(root: u64, address: u64, virt: fn(u64) -> *mut u8, read_side: &ReadSide) -> Option<&Slot> {
    let tree = address & ((1 << ADDRESS_BITS) - 1);
    let mut table = root;
    for level in [PGD, PUD] {
        let entry = slot_in(table, level, tree, virt, read_side).load_dependent();
        if !entry.is_directory() {
            return None;
        }
        table = entry.next_table();
    }
    Some(slot_in(table, PMD, tree, virt, read_side))
}

/// The PTE slot for `address` in the table the PMD entry `pmd` (a
/// directory entry, as read during this read side) points at.
#[inline]
pub fn pte_slot(pmd: Entry, address: u64, virt: fn(u64) -> *mut u8, read_side: &ReadSide) -> &Slot {
    slot_in(pmd.next_table(), PTE, address & ((1 << ADDRESS_BITS) - 1), virt, read_side)
}

/// What `unmap` took away.
#[derive(Debug)]
pub struct Unmapped {
    pub entry: Entry,
    pub size: PageSize,
    /// Tables left empty and unhooked, to `release` after the TLB and
    /// page-walk-cache flush: (physical address, bytes).
    pub tables: Vec<(u64, usize), 3>,
}

pub struct PageTable<M: TableMemory> {
    root: u64,
    memory: M,
}

/// Strips the quadrant (EA bits 0:1) and checks that the rest fits.
/// The ordering of the tree owner's loads (PageTable's methods, under the
/// page-table lock): none is needed. Directory entries and leaves change
/// only under that lock, whose acquire orders this holder's loads after
/// every earlier holder's stores; what changes without it, the hash
/// backend's slot bits in a leaf, carries nothing a load here reads through.
/// (Acquire, before: on POWER a compare, branch and isync after each load,
/// and under TCG the isync ends the translation block.) Lockless walkers
/// (`walk`, `pmd_slot`) keep their acquire loads.
const OWNER: Ordering = Ordering::Relaxed;

fn tree_address(address: u64) -> Result<u64, MapError> {
    let in_quadrant = address & ((1 << 62) - 1);
    if in_quadrant >> ADDRESS_BITS != 0 {
        return Err(MapError::OutOfRange);
    }
    Ok(in_quadrant)
}

impl<M: TableMemory> PageTable<M> {
    pub fn new(mut memory: M) -> Result<Self, MapError> {
        let root = memory.alloc_table(PGD.table_bytes()).ok_or(MapError::NoMemory)?;
        Ok(PageTable { root, memory })
    }

    /// Physical address of the PGD (for the process table / hash code).
    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn memory(&self) -> &M {
        &self.memory
    }

    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.memory
    }

    /// The leaf for `address`, found by the tree's owner (who holds it, so
    /// no table can go while the result is borrowed).
    pub fn lookup(&self, address: u64) -> Option<Walked<'_>> {
        walk_from(self.root, address, |table, level, tree| self.slot(table, level, tree))
    }

    /// The entry of `level` covering `address` in the table at `table`.
    fn slot(&self, table: u64, level: Level, address: u64) -> &Slot {
        let slots = self.memory.virt(table) as *const Slot;
        // SAFETY: `table` is a live table of `level` (allocated by this tree
        // and reached from its root), so it holds 1 << index_bits slots.
        unsafe { &*slots.add(level.index(address)) }
    }

    /// Maps `[address, address + size)` to `physical`.
    pub fn map(&mut self, address: u64, physical: u64, size: PageSize, prot: Prot) -> Result<(), MapError> {
        self.map_then(address, physical, size, prot, |_| {})
    }

    /// `map`, then `then` with the leaf it set, while the tree is still
    /// the caller's: Linux hands update_mmu_cache the PTE that set_pte_at
    /// wrote, so that the hash MMU's preload need not walk to it again.
    pub fn map_then(
        &mut self,
        address: u64,
        physical: u64,
        size: PageSize,
        prot: Prot,
        then: impl FnOnce(Walked<'_>),
    ) -> Result<(), MapError> {
        let tree = tree_address(address)?;
        if !tree.is_multiple_of(size.bytes()) || !physical.is_multiple_of(size.bytes()) {
            return Err(MapError::Misaligned);
        }
        let mut table = self.root;
        for depth in 0..size.depth() {
            let level = LEVELS[depth];
            let slot = self.slot(table, level, tree);
            let entry = slot.load(OWNER);
            table = if entry.is_empty() {
                let next = LEVELS[depth + 1];
                let new = self.memory.alloc_table(next.table_bytes()).ok_or(MapError::NoMemory)?;
                // Release: the zeroed table is visible before the entry that links it.
                self.slot(table, level, tree).store(Entry::directory(new, next.index_bits), Ordering::Release);
                new
            } else if entry.is_directory() {
                entry.next_table()
            } else {
                return Err(MapError::AlreadyMapped);
            };
        }
        let slot = self.slot(table, size.level(), tree);
        if !slot.load(OWNER).is_empty() {
            return Err(MapError::AlreadyMapped);
        }
        let entry = Entry::leaf(physical, prot);
        slot.store(entry, Ordering::Release);
        self.memory.sync();
        then(Walked { entry, size, slot });
        Ok(())
    }

    /// The slots from the root down to the leaf covering `address`.
    fn path(&self, tree: u64) -> Result<(Vec<(u64, Level), 4>, PageSize), MapError> {
        let mut path = Vec::new();
        let mut table = self.root;
        for (depth, level) in LEVELS.iter().copied().enumerate() {
            let _ = path.push((table, level));
            let entry = self.slot(table, level, tree).load(OWNER);
            if entry.is_leaf() {
                let size = match depth {
                    1 => PageSize::Huge1G,
                    2 => PageSize::Huge2M,
                    3 => PageSize::Base,
                    _ => return Err(MapError::NotMapped), // a leaf in the PGD is not something we create
                };
                return Ok((path, size));
            }
            if !entry.is_directory() {
                return Err(MapError::NotMapped);
            }
            table = entry.next_table();
        }
        Err(MapError::NotMapped)
    }

    pub fn translate(&self, address: u64) -> Option<Translation> {
        let tree = tree_address(address).ok()?;
        let (path, size) = self.path(tree).ok()?;
        let &(table, level) = path.last()?;
        let entry = self.slot(table, level, tree).load(OWNER);
        Some(Translation { physical: entry.physical() + (tree & (size.bytes() - 1)), size, entry })
    }

    /// Changes the access rights of the leaf covering `address`; returns the
    /// old entry. The caller flushes the TLB.
    pub fn protect(&mut self, address: u64, prot: Prot) -> Result<(Entry, PageSize), MapError> {
        let tree = tree_address(address)?;
        let (path, size) = self.path(tree)?;
        let &(table, level) = path.last().ok_or(MapError::NotMapped)?;
        let slot = self.slot(table, level, tree);
        let old = slot.load(OWNER);
        slot.store(old.with_prot(prot), Ordering::Release);
        self.memory.sync();
        Ok((old, size))
    }

    /// Points the leaf covering `address` at `physical` (same size and rights);
    /// returns the old entry. The caller flushes the TLB.
    pub fn remap(&mut self, address: u64, physical: u64) -> Result<Entry, MapError> {
        let tree = tree_address(address)?;
        let (path, size) = self.path(tree)?;
        if !physical.is_multiple_of(size.bytes()) {
            return Err(MapError::Misaligned);
        }
        let &(table, level) = path.last().ok_or(MapError::NotMapped)?;
        let slot = self.slot(table, level, tree);
        let old = slot.load(OWNER);
        slot.store(Entry::leaf(physical, old.prot()), Ordering::Release);
        self.memory.sync();
        Ok(old)
    }

    /// Removes the leaf covering `address` (which must be its first byte), and
    /// unhooks the tables that leaves empty.
    pub fn unmap(&mut self, address: u64) -> Result<Unmapped, MapError> {
        let tree = tree_address(address)?;
        let (path, size) = self.path(tree)?;
        if tree % size.bytes() != 0 {
            return Err(MapError::Misaligned);
        }
        let &(table, level) = path.last().ok_or(MapError::NotMapped)?;
        let entry = self.slot(table, level, tree).swap(Entry::EMPTY, Ordering::AcqRel);
        let mut tables = Vec::new();
        // Walk back up: a table with no entry left is unhooked from its parent.
        for pair in path.windows(2).rev() {
            let ((parent, parent_level), (child, child_level)) = (pair[0], pair[1]);
            if !self.table_is_empty(child, child_level) {
                break;
            }
            self.slot(parent, parent_level, tree).store(Entry::EMPTY, Ordering::Release);
            let _ = tables.push((child, child_level.table_bytes()));
        }
        self.memory.sync();
        Ok(Unmapped { entry, size, tables })
    }

    /// THP collapse's first step: clears the PMD entry covering `address`,
    /// which must point at a PTE table, and returns that table with the
    /// entries it held. The table stays allocated (the caller restores it on
    /// abort, or frees it after a grace period); the caller flushes.
    pub fn clear_pmd_table(&mut self, address: u64) -> Result<(u64, [Entry; 32]), MapError> {
        let tree = tree_address(address)?;
        let (pmd_table, entry) = self.pmd_slot(tree)?;
        if !entry.is_directory() {
            return Err(if entry.is_leaf() { MapError::AlreadyMapped } else { MapError::NotMapped });
        }
        self.slot(pmd_table, PMD, tree).store(Entry::EMPTY, Ordering::Release);
        self.memory.sync();
        let table = entry.next_table();
        Ok((table, self.read_pte_table(table)))
    }

    /// The entries of a PTE table of this tree (hooked in or just unhooked).
    pub fn read_pte_table(&self, table: u64) -> [Entry; 32] {
        core::array::from_fn(|i| self.slot(table, PTE, (i as u64) << PTE.shift).load(OWNER))
    }

    /// Puts back a PTE table that `clear_pmd_table` took (collapse gave up).
    pub fn restore_pmd_table(&mut self, address: u64, table: u64) -> Result<(), MapError> {
        let tree = tree_address(address)?;
        let (pmd_table, entry) = self.pmd_slot(tree)?;
        if !entry.is_empty() {
            return Err(MapError::AlreadyMapped);
        }
        self.slot(pmd_table, PMD, tree).store(Entry::directory(table, PTE.index_bits), Ordering::Release);
        self.memory.sync();
        Ok(())
    }

    /// The PMD entry covering `address` (`Entry::EMPTY` if no PMD table
    /// reaches it): a PTE-table pointer, a 2 MiB leaf, or nothing.
    pub fn pmd(&self, address: u64) -> Entry {
        tree_address(address).and_then(|tree| self.pmd_slot(tree)).map_or(Entry::EMPTY, |(_, entry)| entry)
    }

    /// First half of splitting the 2 MiB leaf at `address` (Linux's
    /// __split_huge_pmd_locked): fills a new PTE table mapping the same 32
    /// frames with the same rights, then clears the PMD. Returns the old
    /// leaf and the table; the caller flushes the leaf's translations (a
    /// walker must never use both mappings) and links the table with
    /// `restore_pmd_table`.
    pub fn split_pmd_leaf(&mut self, address: u64) -> Result<(Entry, u64), MapError> {
        let tree = tree_address(address)?;
        if !tree.is_multiple_of(PageSize::Huge2M.bytes()) {
            return Err(MapError::Misaligned);
        }
        let (pmd_table, leaf) = self.pmd_slot(tree)?;
        if !leaf.is_leaf() {
            return Err(MapError::NotMapped);
        }
        let table = self.memory.alloc_table(PTE.table_bytes()).ok_or(MapError::NoMemory)?;
        let slots = self.memory.virt(table) as *const Slot;
        for i in 0..1usize << PTE.index_bits {
            let physical = leaf.physical() + ((i as u64) << PTE.shift);
            // SAFETY: the new table, not yet linked, holds 1 << index_bits slots.
            unsafe { &*slots.add(i) }.store(Entry::leaf(physical, leaf.prot()), Ordering::Relaxed);
        }
        self.slot(pmd_table, PMD, tree).store(Entry::EMPTY, Ordering::Release);
        self.memory.sync();
        Ok((leaf, table))
    }

    /// The PMD table and entry covering `tree` (a tree address).
    fn pmd_slot(&self, tree: u64) -> Result<(u64, Entry), MapError> {
        let mut table = self.root;
        for level in [PGD, PUD] {
            let entry = self.slot(table, level, tree).load(OWNER);
            if !entry.is_directory() {
                return Err(MapError::NotMapped);
            }
            table = entry.next_table();
        }
        Ok((table, self.slot(table, PMD, tree).load(OWNER)))
    }

    /// Frees tables `unmap` unhooked, once no walker can hold them any more.
    pub fn release(&mut self, tables: &[(u64, usize)]) {
        for &(table, bytes) in tables {
            self.memory.free_table(table, bytes);
        }
    }

    fn table_is_empty(&self, table: u64, level: Level) -> bool {
        let slots = self.memory.virt(table) as *const Slot;
        // SAFETY: a live table of `level` holds 1 << index_bits slots.
        let slots = unsafe { core::slice::from_raw_parts(slots, 1 << level.index_bits) };
        slots.iter().all(|s| s.load(Ordering::Relaxed).is_empty())
    }

    /// Frees every table of the tree (not the pages it maps).
    pub fn destroy(mut self) -> M {
        self.free_subtree(self.root, 0);
        self.memory
    }

    fn free_subtree(&mut self, table: u64, depth: usize) {
        let level = LEVELS[depth];
        if depth + 1 < LEVELS.len() {
            for index in 0..1u64 << level.index_bits {
                let entry = self.slot(table, level, index << level.shift).load(Ordering::Relaxed);
                if entry.is_directory() {
                    self.free_subtree(entry.next_table(), depth + 1);
                }
            }
        }
        self.memory.free_table(table, level.table_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::tables::emulated::EmulatedFrames;
    use super::*;

    const KERNEL: u64 = 0xc000_0000_0000_0000;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn tree(frames: u64) -> PageTable<TableAllocator<EmulatedFrames>> {
        PageTable::new(TableAllocator::new(EmulatedFrames::new(frames))).unwrap()
    }

    #[test]
    fn geometry_is_linux_radix_64k() {
        assert_eq!(LEVELS.iter().map(|l| l.index_bits).sum::<u32>() + PAGE_SHIFT, ADDRESS_BITS);
        assert_eq!(PageSize::Base.bytes(), 64 << 10);
        assert_eq!(PageSize::Huge2M.bytes(), 2 * MIB);
        assert_eq!(PageSize::Huge1G.bytes(), GIB);
        assert_eq!(PGD.table_bytes(), 64 << 10);
        assert_eq!(PUD.table_bytes(), 4096);
        assert_eq!(PTE.table_bytes(), 256);
        // 0x0003_4567_89ab_0000 = 0x68a << 39 | 0x19e << 30 | 0x4d << 21 | 0xb << 16.
        let a = 0x0003_4567_89ab_0000;
        assert_eq!((PGD.index(a), PUD.index(a), PMD.index(a), PTE.index(a)), (0x68a, 0x19e, 0x4d, 0xb));
        assert_eq!((0x68a << 39) | (0x19e << 30) | (0x4d << 21) | (0xb << 16), a);
    }

    #[test]
    fn index_reassembles_the_address() {
        for a in [0u64, 0x1_0000, 0x1234_5678_0000, 0x000f_ffff_ffff_0000] {
            let back = LEVELS.iter().fold(0u64, |acc, l| acc | ((l.index(a) as u64) << l.shift));
            assert_eq!(back, a);
        }
    }

    #[test]
    fn map_translate_unmap_base_page() {
        let mut t = tree(64);
        let va = KERNEL + 0x1234_0000;
        t.map(va, 0x4010_0000, PageSize::Base, Prot::READ | Prot::WRITE).unwrap();
        let found = t.translate(va + 0x1234).unwrap();
        assert_eq!(found.physical, 0x4010_1234);
        assert_eq!(found.size, PageSize::Base);
        assert_eq!(found.entry.prot(), Prot::READ | Prot::WRITE);
        assert_eq!(t.translate(va + 0x1_0000), None);
        assert_eq!(t.map(va, 0x4020_0000, PageSize::Base, Prot::READ), Err(MapError::AlreadyMapped));
        let gone = t.unmap(va).unwrap();
        assert_eq!(gone.entry.physical(), 0x4010_0000);
        assert_eq!(gone.tables.len(), 3, "PTE, PMD and PUD tables emptied");
        assert_eq!(t.translate(va), None);
        assert_eq!(t.unmap(va).unwrap_err(), MapError::NotMapped);
    }

    #[test]
    fn huge_leaves_translate() {
        let mut t = tree(64);
        t.map(KERNEL + 2 * MIB, 0x4020_0000, PageSize::Huge2M, Prot::READ).unwrap();
        t.map(KERNEL + 4 * GIB, 0, PageSize::Huge1G, Prot::READ | Prot::EXECUTE).unwrap();
        let two_m = t.translate(KERNEL + 2 * MIB + 0x1_2345).unwrap();
        assert_eq!((two_m.physical, two_m.size), (0x4021_2345, PageSize::Huge2M));
        let one_g = t.translate(KERNEL + 4 * GIB + 0x3abc_def0).unwrap();
        assert_eq!((one_g.physical, one_g.size), (0x3abc_def0, PageSize::Huge1G));
        // A base page inside a huge leaf is refused, and so is a huge leaf over a table.
        assert_eq!(t.map(KERNEL + 2 * MIB, 0x4000_0000, PageSize::Base, Prot::READ), Err(MapError::AlreadyMapped));
        t.map(KERNEL + 8 * MIB, 0x4000_0000, PageSize::Base, Prot::READ).unwrap();
        assert_eq!(t.map(KERNEL + 8 * MIB, 0x4000_0000, PageSize::Huge2M, Prot::READ), Err(MapError::AlreadyMapped));
        assert_eq!(t.unmap(KERNEL + 2 * MIB + 0x1_0000).unwrap_err(), MapError::Misaligned);
        assert_eq!(t.unmap(KERNEL + 2 * MIB).unwrap().size, PageSize::Huge2M);
    }

    #[test]
    fn alignment_and_range_are_checked() {
        let mut t = tree(16);
        assert_eq!(t.map(KERNEL + 0x1000, 0, PageSize::Base, Prot::READ), Err(MapError::Misaligned));
        assert_eq!(t.map(KERNEL, 0x1_0000, PageSize::Huge2M, Prot::READ), Err(MapError::Misaligned));
        assert_eq!(t.map(KERNEL | (1 << 52), 0, PageSize::Base, Prot::READ), Err(MapError::OutOfRange));
        // Quadrants 0 and 3 share the tree layout: the quadrant bits are not translated.
        t.map(0x10_0000, 0x4000_0000, PageSize::Base, Prot::READ | Prot::USER).unwrap();
        assert_eq!(t.translate(0x10_0000).unwrap().physical, 0x4000_0000);
    }

    #[test]
    fn remap_keeps_size_and_rights() {
        let mut t = tree(16);
        t.map(KERNEL + 2 * MIB, 0x4020_0000, PageSize::Huge2M, Prot::READ).unwrap();
        let old = t.remap(KERNEL + 2 * MIB + 0x1234, 0x4040_0000).unwrap();
        assert_eq!(old.physical(), 0x4020_0000);
        let now = t.translate(KERNEL + 2 * MIB).unwrap();
        assert_eq!((now.physical, now.size, now.entry.prot()), (0x4040_0000, PageSize::Huge2M, Prot::READ));
        assert_eq!(t.remap(KERNEL + 2 * MIB, 0x4041_0000), Err(MapError::Misaligned));
        assert_eq!(t.remap(KERNEL + 8 * MIB, 0x4000_0000), Err(MapError::NotMapped));
    }

    #[test]
    fn lockless_walk_finds_leaves() {
        let mut t = tree(16);
        t.map(KERNEL + 2 * MIB, 0x4020_0000, PageSize::Huge2M, Prot::READ).unwrap();
        t.map(KERNEL, 0x4001_0000, PageSize::Base, Prot::READ | Prot::WRITE).unwrap();
        let memory = t.memory_mut().frame_source() as *mut EmulatedFrames;
        // The walker takes a plain function: route it to this test's memory.
        std::thread_local!(static MEMORY: core::cell::Cell<*mut EmulatedFrames> = const { core::cell::Cell::new(core::ptr::null_mut()) });
        MEMORY.with(|m| m.set(memory));
        fn virt(physical: u64) -> *mut u8 {
            // SAFETY: set above to a live EmulatedFrames for this thread.
            MEMORY.with(|m| unsafe { (*m.get()).virt(physical) })
        }
        // SAFETY: one thread; nothing frees tables during these walks.
        let rs = unsafe { ReadSide::assume_interrupts_off() };
        let base = walk(t.root(), KERNEL + 0x1234, virt, &rs).unwrap();
        assert_eq!((base.entry.physical(), base.size), (0x4001_0000, PageSize::Base));
        let huge = walk(t.root(), KERNEL + 2 * MIB + 0x5_0000, virt, &rs).unwrap();
        assert_eq!((huge.entry.physical(), huge.size), (0x4020_0000, PageSize::Huge2M));
        assert!(walk(t.root(), KERNEL + 8 * MIB, virt, &rs).is_none());
        assert!(walk(0, KERNEL, virt, &rs).is_none());
    }

    #[test]
    fn clear_and_restore_a_pmd_table() {
        let mut t = tree(16);
        let base = KERNEL + 4 * MIB;
        for i in 0..32u64 {
            t.map(base + i * 0x1_0000, 0x4000_0000 + i * 0x1_0000, PageSize::Base, Prot::READ).unwrap();
        }
        let (table, ptes) = t.clear_pmd_table(base + 0x5_0000).unwrap();
        assert!(ptes.iter().enumerate().all(|(i, e)| e.physical() == 0x4000_0000 + i as u64 * 0x1_0000));
        assert_eq!(t.translate(base), None);
        assert_eq!(t.clear_pmd_table(base).unwrap_err(), MapError::NotMapped);
        t.restore_pmd_table(base, table).unwrap();
        assert_eq!(t.translate(base + 0x3_0000).unwrap().physical, 0x4003_0000);
        assert_eq!(t.restore_pmd_table(base, table).unwrap_err(), MapError::AlreadyMapped);
        // A huge leaf is not a PTE table.
        t.map(KERNEL + 8 * MIB, 0x4020_0000, PageSize::Huge2M, Prot::READ).unwrap();
        assert_eq!(t.clear_pmd_table(KERNEL + 8 * MIB).unwrap_err(), MapError::AlreadyMapped);
    }

    #[test]
    fn protect_changes_rights_only() {
        let mut t = tree(16);
        t.map(KERNEL, 0x4000_0000, PageSize::Base, Prot::READ | Prot::WRITE).unwrap();
        let (old, size) = t.protect(KERNEL, Prot::READ).unwrap();
        assert_eq!((old.prot(), size), (Prot::READ | Prot::WRITE, PageSize::Base));
        let now = t.translate(KERNEL).unwrap();
        assert_eq!((now.physical, now.entry.prot()), (0x4000_0000, Prot::READ));
        assert_eq!(t.protect(KERNEL + 0x1_0000, Prot::READ).unwrap_err(), MapError::NotMapped);
    }

    #[test]
    fn tables_return_to_the_frame_allocator() {
        let mut t = tree(64);
        let frames_before = t.memory_mut().frame_source().free_frames();
        let tables_before = t.memory().frames_in_use();
        // Pages spread over two PMDs and two PTE tables.
        let pages = [0u64, 0x1_0000, 2 * MIB, 2 * MIB + 0x1_0000, GIB];
        for (i, &offset) in pages.iter().enumerate() {
            t.map(KERNEL + offset, 0x4000_0000 + i as u64 * 0x1_0000, PageSize::Base, Prot::READ).unwrap();
        }
        assert!(t.memory().frames_in_use() > tables_before);
        for &offset in &pages {
            let gone = t.unmap(KERNEL + offset).unwrap();
            t.release(&gone.tables);
        }
        assert_eq!(t.memory().frames_in_use(), tables_before);
        assert_eq!(t.memory_mut().frame_source().free_frames(), frames_before);
        let mut memory = t.destroy();
        assert_eq!(memory.frames_in_use(), 0);
        assert_eq!(memory.frame_source().free_frames(), 64);
    }

    #[test]
    fn entries_are_stored_big_endian() {
        let mut t = tree(16);
        t.map(KERNEL, 0x4001_0000, PageSize::Base, Prot::READ).unwrap();
        let root = t.root();
        // SAFETY: reads the first PGD slot of the live tree.
        let raw = unsafe { (t.memory().virt(root) as *const u64).read() };
        let pde = Entry(u64::from_be(raw));
        assert!(pde.is_directory());
        assert_eq!(pde.next_table_index_bits(), PUD.index_bits);
    }

    #[test]
    fn running_out_of_table_memory_is_an_error() {
        let mut t = tree(1); // the PGD takes the only frame
        assert_eq!(t.map(KERNEL, 0x4000_0000, PageSize::Base, Prot::READ), Err(MapError::NoMemory));
    }
}
