//! Page-table entries in the radix format (Power ISA v3.0B, Book III, 6.7.10,
//! "Radix Tree Translation"; the same bits Linux names in
//! arch/powerpc/include/asm/book3s/64/{pgtable,radix}.h). The hash MMU keeps
//! the same software tree and reads it the same way.
//!
//! Values here are in CPU order; in memory every entry is stored big-endian,
//! as the hardware walker reads it (`Slot`).

use crate::sync::atomic::{AtomicU64, Ordering};
use core::fmt;

/// V: the entry is valid (Linux `_PAGE_PRESENT`).
pub const VALID: u64 = 1 << 63;
/// L: the entry is a leaf (a PTE), not a pointer to a lower table (`_PAGE_PTE`).
pub const LEAF: u64 = 1 << 62;
/// Software bit 0 (`_RPAGE_SW0`), free for the kernel's use.
pub const SW0: u64 = 1 << 61;
/// RPN: real page number, bits 7..51 (`PTE_RPN_MASK`).
pub const RPN_MASK: u64 = 0x01ff_ffff_ffff_f000;
/// Software bits 1..3 (`_RPAGE_SW1..3`).
pub const SW1: u64 = 0x800;
pub const SW2: u64 = 0x400;
pub const SW3: u64 = 0x200;
/// R: referenced (`_PAGE_ACCESSED`). C: changed (`_PAGE_DIRTY`).
pub const REFERENCED: u64 = 0x100;
pub const CHANGED: u64 = 0x080;
/// ATT, bits 58..59: 0 normal memory, 2 non-idempotent I/O, 3 tolerant I/O.
pub const ATT_MASK: u64 = 0x030;
pub const ATT_NON_IDEMPOTENT: u64 = 0x020;
pub const ATT_TOLERANT: u64 = 0x030;
/// EAA, bits 60..63: privileged-only, read, read/write, execute.
pub const PRIVILEGED: u64 = 0x8;
pub const READ: u64 = 0x4;
pub const WRITE: u64 = 0x2;
pub const EXECUTE: u64 = 0x1;

/// Bits the hash backend keeps in a base leaf: SW0 ("an HPTE exists") and
/// RPN bits 12..15, which are zero for 64 KiB pages (its slot). Never set
/// under radix.
pub const HASH_SLOT_BITS: u64 = SW0 | 0xf000;

/// NLB: next-level base of a directory entry, bits 4..55.
pub const NEXT_LEVEL_BASE_MASK: u64 = 0x0fff_ffff_ffff_ff00;
/// NLS: log2 of the number of entries in the next-level table, bits 59..63.
pub const NEXT_LEVEL_SIZE_MASK: u64 = 0x1f;

bitflags::bitflags! {
    /// Access rights of a mapping, independent of the MMU.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Prot: u8 {
        const READ = 1 << 0;
        const WRITE = 1 << 1;
        const EXECUTE = 1 << 2;
        /// Accessible from problem state (user); otherwise privileged only.
        const USER = 1 << 3;
        /// Cache-inhibited, guarded I/O (ATT = non-idempotent).
        const IO = 1 << 4;
    }
}

/// A decoded entry value (CPU order).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry(pub u64);

impl Entry {
    pub const EMPTY: Entry = Entry(0);

    /// A leaf mapping `physical` with `prot`. R and C are set: the kernel does
    /// not track them through faults, and hardware (and newer QEMU) would
    /// otherwise fault to have them set.
    #[inline]
    pub fn leaf(physical: u64, prot: Prot) -> Entry {
        debug_assert_eq!(physical & !RPN_MASK, 0, "physical address {physical:#x} not representable");
        Entry(VALID | LEAF | (physical & RPN_MASK) | REFERENCED | CHANGED | prot_bits(prot))
    }

    /// A directory entry pointing at a table of `1 << index_bits` entries.
    #[inline]
    pub fn directory(table: u64, index_bits: u32) -> Entry {
        debug_assert_eq!(table & !NEXT_LEVEL_BASE_MASK, 0, "table {table:#x} misaligned");
        Entry(VALID | (table & NEXT_LEVEL_BASE_MASK) | index_bits as u64)
    }

    #[inline]
    pub fn is_valid(self) -> bool {
        self.0 & VALID != 0
    }

    #[inline]
    pub fn is_leaf(self) -> bool {
        self.0 & (VALID | LEAF) == VALID | LEAF
    }

    #[inline]
    pub fn is_directory(self) -> bool {
        self.0 & (VALID | LEAF) == VALID
    }

    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Physical address a leaf maps (pages are at least 64 KiB, so RPN bits
    /// 12..15 are not part of it: see HASH_SLOT_BITS).
    #[inline]
    pub fn physical(self) -> u64 {
        self.0 & RPN_MASK & !0xf000
    }

    /// Physical address of the table a directory entry points at.
    #[inline]
    pub fn next_table(self) -> u64 {
        self.0 & NEXT_LEVEL_BASE_MASK
    }

    #[inline]
    pub fn next_table_index_bits(self) -> u32 {
        (self.0 & NEXT_LEVEL_SIZE_MASK) as u32
    }

    #[inline]
    pub fn prot(self) -> Prot {
        let mut prot = Prot::empty();
        if self.0 & READ != 0 {
            prot |= Prot::READ;
        }
        if self.0 & WRITE != 0 {
            prot |= Prot::WRITE;
        }
        if self.0 & EXECUTE != 0 {
            prot |= Prot::EXECUTE;
        }
        if self.0 & PRIVILEGED == 0 {
            prot |= Prot::USER;
        }
        if self.0 & ATT_MASK == ATT_NON_IDEMPOTENT {
            prot |= Prot::IO;
        }
        prot
    }

    /// The same leaf with other access rights (and no hash slot: the old
    /// HPTE is flushed by whoever changes the rights).
    pub fn with_prot(self, prot: Prot) -> Entry {
        Entry((self.0 & !(PRIVILEGED | READ | WRITE | EXECUTE | ATT_MASK | HASH_SLOT_BITS)) | prot_bits(prot))
    }
}

fn prot_bits(prot: Prot) -> u64 {
    let mut bits = 0;
    if prot.contains(Prot::READ) {
        bits |= READ;
    }
    if prot.contains(Prot::WRITE) {
        // EAA "read/write" permits both (Linux's _PAGE_RW is READ | WRITE).
        bits |= READ | WRITE;
    }
    if prot.contains(Prot::EXECUTE) {
        bits |= EXECUTE;
    }
    if !prot.contains(Prot::USER) {
        bits |= PRIVILEGED;
    }
    if prot.contains(Prot::IO) {
        bits |= ATT_NON_IDEMPOTENT;
    }
    bits
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_leaf() {
            write!(f, "Leaf({:#x}, {:?}, raw {:#018x})", self.physical(), self.prot(), self.0)
        } else if self.is_directory() {
            write!(f, "Dir({:#x}/{} bits)", self.next_table(), self.next_table_index_bits())
        } else {
            write!(f, "Entry({:#018x})", self.0)
        }
    }
}

/// One entry in memory: big-endian, accessed atomically, because the MMU
/// and lockless walkers read it while the kernel changes it.
#[repr(transparent)]
pub struct Slot(AtomicU64);

impl Slot {
    /// A slot outside any table (for models and tests; tables are memory
    /// the tree carves itself).
    pub fn new(entry: Entry) -> Slot {
        Slot(AtomicU64::new(entry.0.to_be()))
    }

    #[inline]
    pub fn load(&self, order: Ordering) -> Entry {
        Entry(u64::from_be(self.0.load(order)))
    }

    /// A lockless walker's load of an entry whose value it uses only to
    /// form the addresses of what it reads next (the next table's slot, the
    /// page's descriptor): Linux's READ_ONCE of a page-table entry. The
    /// writer publishes with a release store (lwsync) after initialising
    /// what the entry points at; on POWER a load whose address depends on
    /// this one's value is ordered after it (an address dependency, in the
    /// Power model's preserved program order; litmus/pte-publish+addr-only),
    /// so the acquire's compare, branch and isync are not needed: the isync
    /// alone ends the translation block under TCG at every level of every
    /// walk. loom models no dependencies, so there it is an acquire.
    #[inline]
    pub fn load_dependent(&self) -> Entry {
        #[cfg(loom)]
        let order = Ordering::Acquire;
        #[cfg(not(loom))]
        let order = Ordering::Relaxed;
        self.load(order)
    }

    #[inline]
    pub fn store(&self, entry: Entry, order: Ordering) {
        self.0.store(entry.0.to_be(), order)
    }

    /// Replaces the entry, returning the old one.
    #[inline]
    pub fn swap(&self, entry: Entry, order: Ordering) -> Entry {
        Entry(u64::from_be(self.0.swap(entry.0.to_be(), order)))
    }

    #[inline]
    pub fn compare_exchange(&self, current: Entry, new: Entry) -> Result<Entry, Entry> {
        self.0
            .compare_exchange(current.0.to_be(), new.0.to_be(), Ordering::AcqRel, Ordering::Acquire)
            .map(|v| Entry(u64::from_be(v)))
            .map_err(|v| Entry(u64::from_be(v)))
    }

    /// The raw bytes as memory holds them (big-endian), for tests.
    pub fn raw(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_encoding_matches_the_isa_bits() {
        // Kernel RW data at 0x1230000: V | L | RPN | R | C | privileged | R/W.
        let e = Entry::leaf(0x123_0000, Prot::READ | Prot::WRITE);
        assert_eq!(e.0, 0xc000_0000_0123_0000 | 0x100 | 0x080 | 0x8 | 0x4 | 0x2);
        assert!(e.is_leaf() && e.is_valid() && !e.is_directory());
        assert_eq!(e.physical(), 0x123_0000);
        assert_eq!(e.prot(), Prot::READ | Prot::WRITE);
        // User read-execute.
        let e = Entry::leaf(0x40_0000, Prot::READ | Prot::EXECUTE | Prot::USER);
        assert_eq!(e.0 & 0xf, 0x4 | 0x1);
        assert_eq!(e.prot(), Prot::READ | Prot::EXECUTE | Prot::USER);
        // I/O: ATT = non-idempotent.
        assert_eq!(Entry::leaf(0, Prot::READ | Prot::IO).0 & ATT_MASK, 0x20);
        // The highest physical address the RPN field holds (bit 7 of the entry = 2^56).
        assert_eq!(Entry::leaf(0x01ff_ffff_ffff_0000, Prot::READ).physical(), 0x01ff_ffff_ffff_0000);
    }

    #[test]
    fn directory_encoding() {
        let e = Entry::directory(0x20_0100, 9);
        assert_eq!(e.0, 0x8000_0000_0020_0109);
        assert!(e.is_directory() && !e.is_leaf());
        assert_eq!(e.next_table(), 0x20_0100);
        assert_eq!(e.next_table_index_bits(), 9);
    }

    #[test]
    fn with_prot_keeps_address_and_flags() {
        let e = Entry::leaf(0x5_0000, Prot::READ | Prot::WRITE).with_prot(Prot::READ);
        assert_eq!(e.physical(), 0x5_0000);
        assert_eq!(e.prot(), Prot::READ);
        assert!(e.0 & REFERENCED != 0 && e.0 & CHANGED != 0 && e.is_leaf());
    }

    #[test]
    fn slots_are_big_endian_in_memory() {
        let slot = Slot(AtomicU64::new(0));
        let e = Entry::leaf(0x1_0000, Prot::READ);
        slot.store(e, Ordering::Relaxed);
        assert_eq!(slot.raw().to_ne_bytes(), e.0.to_be_bytes());
        assert_eq!(slot.load(Ordering::Relaxed), e);
        assert_eq!(slot.swap(Entry::EMPTY, Ordering::Relaxed), e);
        assert_eq!(slot.compare_exchange(Entry::EMPTY, e), Ok(Entry::EMPTY));
        assert_eq!(slot.compare_exchange(Entry::EMPTY, e), Err(e));
    }
}
