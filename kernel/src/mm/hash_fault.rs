//! The hash MMU's fault path (Linux's __hash_page_64K) without its table:
//! walk the tree without locks, insert an HPTE for the 64 KiB page through
//! `HashTable`, and record where it went in the PTE (or, for a piece of a
//! huge leaf, beside the tree). The caller has interrupts off: this is the
//! second lockless walker of the seed thread, the reason hash still needs
//! the collapse IPI. The arch backend reaches the table through the
//! platform; the loom model
//! (kernel/tests/loom_hash.rs) runs this same code against collapse.

use super::frame::FRAME_SIZE;
use super::gup::{Point, RaceHooks};
use super::pagetable::entry::{HASH_SLOT_BITS, SW0};
use super::pagetable::{self, Entry, PageSize, Prot, ReadSide, Slot, Walked};

/// A base PTE with an HPTE records it in bits the radix format leaves free
/// for a 64 KiB page: SW0 says "hashed", bits 12..14 give the slot in its
/// group, bit 15 the secondary group (Linux's hashed-PTE bit and
/// F_GIX/F_SECOND).
pub const PTE_HASHED: u64 = SW0;
pub const PTE_SLOT_SHIFT: u32 = 12;
pub const PTE_SECONDARY: u64 = 0x8000;
const _: () = assert!(PTE_HASHED | (7 << PTE_SLOT_SHIFT) | PTE_SECONDARY == HASH_SLOT_BITS);

/// The recorded form of slot `index` (0..8) of the primary or secondary group.
pub fn slot_bits(index: u64, secondary: bool) -> u64 {
    ((index & 7) << PTE_SLOT_SHIFT) | if secondary { PTE_SECONDARY } else { 0 }
}

/// (slot index in its group, secondary) of recorded `bits`.
pub fn slot_of(bits: u64) -> (u64, bool) {
    ((bits >> PTE_SLOT_SHIFT) & 7, bits & PTE_SECONDARY != 0)
}

pub fn is_hashed(entry: Entry) -> bool {
    entry.0 & PTE_HASHED != 0
}

/// The hashed page table as the fault path uses it.
pub trait HashTable {
    type Error;
    /// Inserts an HPTE translating the 64 KiB page at `page` to `physical`
    /// with `prot`; returns where it went (`slot_bits`).
    fn insert(&self, page: u64, physical: u64, prot: Prot) -> Result<u64, Self::Error>;
    /// Removes the HPTE for `page` recorded as `bits`, if it is still there
    /// and still this page's (its AVPN still matches).
    fn remove(&self, page: u64, bits: u64);
    /// Records the HPTE of a piece of a huge leaf, unless `leaf` no longer
    /// holds `seen` (then removes it); keeps one record per piece.
    fn record_huge(&self, page: u64, leaf: &Slot, seen: Entry, bits: u64);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFaultError<E> {
    NotMapped,
    Table(E),
}

/// The fault path for `ea` in the tree rooted at `root`, inside the
/// interrupt's interrupts-off section (`read_side`).
pub fn hash_fault<T: HashTable>(
    root: u64,
    ea: u64,
    virt: fn(u64) -> *mut u8,
    table: &T,
    hooks: &impl RaceHooks,
    read_side: &ReadSide,
) -> Result<(), HashFaultError<T::Error>> {
    let found = pagetable::walk(root, ea, virt, read_side).ok_or(HashFaultError::NotMapped)?;
    hooks.at(Point::HashWalked);
    hash_leaf(found, ea, table).map_err(HashFaultError::Table)
}

/// Inserts an HPTE for the 64 KiB page at `ea` of the leaf `found` and
/// records where it went: the fault path after its walk, and the preload
/// (Linux's hash_preload), which is handed the leaf a fault just set.
pub fn hash_leaf<T: HashTable>(found: Walked<'_>, ea: u64, table: &T) -> Result<(), T::Error> {
    let page = ea & !(FRAME_SIZE - 1);
    let physical = found.entry.physical() + (page & (found.size.bytes() - 1));
    let bits = table.insert(page, physical, found.entry.prot())?;
    match found.size {
        PageSize::Base => record_base_slot(found.slot, found.entry, page, bits, table),
        _ => table.record_huge(page, found.slot, found.entry, bits),
    }
    Ok(())
}

/// Records the slot in the PTE, unless the PTE changed since the walk read
/// it (then the new HPTE must not outlive it: a flush of the new entry
/// would not know it).
///
/// If the PTE already recorded another HPTE, that one goes: two CPUs that
/// fault on one page at once both insert one, and the second may read the
/// PTE after the first recorded its slot. Only one can be recorded, and an
/// HPTE recorded nowhere survives every flush of the page, translating to
/// it after collapse has freed it. (Linux avoids the double insert with
/// its busy bit and updates a recorded HPTE in place.)
#[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
pub fn record_base_slot<T: HashTable>(slot: &Slot, seen: Entry, page: u64, bits: u64, table: &T) {
    let recorded = Entry((seen.0 & !HASH_SLOT_BITS) | PTE_HASHED | bits);
    if slot.compare_exchange(seen, recorded).is_err() {
        table.remove(page, bits);
        return;
    }
    let before = seen.0 & (HASH_SLOT_BITS & !PTE_HASHED);
    if is_hashed(seen) && before != bits {
        table.remove(page, before);
    }
}
