//! Property tests of the radix page-table encoding and geometry
//! (`kernel::mm::pagetable`), over random inputs:
//! - a leaf built from any 64 KiB-aligned physical address the RPN field
//!   holds and any `Prot` decodes back to that address and those rights
//!   (WRITE reading back as READ | WRITE), survives the hash backend's slot
//!   bits, and `with_prot` changes the rights and nothing but them;
//! - a directory entry decodes back to its table address and index size, and
//!   leaves, directories and the empty entry are never mistaken for each other;
//! - a `Slot` stores entries big-endian and loads, swaps and compare-exchanges
//!   them back unchanged;
//! - the four level indexes and the page offset of any address below 2^52
//!   recompose the address, each index fits its table, the quadrant bits are
//!   ignored, and each page size spans exactly one entry of its level.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::mm::pagetable::entry::{
    ATT_MASK, CHANGED, EXECUTE, HASH_SLOT_BITS, NEXT_LEVEL_BASE_MASK, PRIVILEGED, READ, REFERENCED, RPN_MASK, SW1, SW2,
    SW3, WRITE,
};
use kernel::mm::pagetable::{Entry, Level, PageSize, Prot, Slot, ADDRESS_BITS, LEVELS, PAGE_SHIFT, PGD, PMD, PTE, PUD};
use proptest::prelude::*;

/// Physical addresses a leaf can map: 64 KiB aligned, inside the RPN field
/// (bits 16..56 of the address).
fn physical() -> impl Strategy<Value = u64> {
    (0u64..=(RPN_MASK >> PAGE_SHIFT)).prop_map(|frame| (frame << PAGE_SHIFT) & RPN_MASK)
}

/// Any combination of the five rights flags (IO included: it is encoded as
/// ATT = non-idempotent and decoded from it).
fn prot() -> impl Strategy<Value = Prot> {
    (0u8..32).prop_map(Prot::from_bits_truncate)
}

/// The rights a leaf reads back as: write access is encoded as EAA
/// read/write, so WRITE always comes back with READ.
fn readback(prot: Prot) -> Prot {
    if prot.contains(Prot::WRITE) {
        prot | Prot::READ
    } else {
        prot
    }
}

/// A 256-byte-aligned table address inside the NLB field.
fn table() -> impl Strategy<Value = u64> {
    any::<u64>().prop_map(|t| t & NEXT_LEVEL_BASE_MASK)
}

/// An address the tree translates (below 2^52, quadrant bits clear).
fn tree_address() -> impl Strategy<Value = u64> {
    0u64..(1 << ADDRESS_BITS)
}

fn page_size() -> impl Strategy<Value = PageSize> {
    prop_oneof![Just(PageSize::Base), Just(PageSize::Huge2M), Just(PageSize::Huge1G)]
}

/// Bits `with_prot` may change: the rights, ATT and the hash slot.
const RIGHTS_BITS: u64 = PRIVILEGED | READ | WRITE | EXECUTE | ATT_MASK | HASH_SLOT_BITS;

proptest! {
    #[test]
    fn leaf_round_trips(p in physical(), prot in prot()) {
        let e = Entry::leaf(p, prot);
        prop_assert!(e.is_valid() && e.is_leaf() && !e.is_directory() && !e.is_empty());
        prop_assert_eq!(e.physical(), p);
        prop_assert_eq!(e.prot(), readback(prot));
        // R and C are always preset (see Entry::leaf) and no hash slot is claimed.
        prop_assert_eq!(e.0 & (REFERENCED | CHANGED), REFERENCED | CHANGED);
        prop_assert_eq!(e.0 & HASH_SLOT_BITS, 0);
    }

    /// Distinct physical addresses or distinct (read-back) rights give
    /// distinct leaves: nothing is lost in the encoding.
    #[test]
    fn leaf_encoding_is_injective(p in physical(), q in physical(), same_address: bool, a in prot(), b in prot()) {
        // Random addresses almost never collide: half the cases share one, to
        // compare rights on the same address.
        let q = if same_address { p } else { q };
        let same = p == q && readback(a) == readback(b);
        prop_assert_eq!(Entry::leaf(p, a) == Entry::leaf(q, b), same);
    }

    /// The hash backend keeps its slot in SW0 and RPN bits 12..15 of a base
    /// leaf; the address and rights must read the same with any slot there.
    #[test]
    fn hash_slot_bits_do_not_change_the_leaf(p in physical(), prot in prot(), slot in any::<u64>()) {
        let e = Entry::leaf(p, prot);
        let slotted = Entry(e.0 | (slot & HASH_SLOT_BITS));
        prop_assert!(slotted.is_leaf());
        prop_assert_eq!(slotted.physical(), p);
        prop_assert_eq!(slotted.prot(), e.prot());
    }

    /// `with_prot` sets exactly the new rights, drops the hash slot, and
    /// keeps every other bit (V, L, address, R, C, software bits 1..3).
    #[test]
    fn with_prot_changes_only_the_rights(
        p in physical(), old in prot(), new in prot(), slot in any::<u64>(), sw in any::<u64>(),
    ) {
        let e = Entry(Entry::leaf(p, old).0 | (slot & HASH_SLOT_BITS) | (sw & (SW1 | SW2 | SW3)));
        let changed = e.with_prot(new);
        prop_assert_eq!(changed.prot(), readback(new));
        prop_assert_eq!(changed.0 & HASH_SLOT_BITS, 0);
        prop_assert_eq!(changed.0 & !RIGHTS_BITS, e.0 & !RIGHTS_BITS);
        prop_assert!(changed.is_leaf());
        prop_assert_eq!(changed.physical(), p);
        // Same as building the leaf with the new rights in the first place
        // (when no software bit was set).
        prop_assert_eq!(Entry::leaf(p, old).with_prot(new), Entry::leaf(p, new));
    }

    #[test]
    fn directory_round_trips(t in table(), bits in 0u32..32) {
        let e = Entry::directory(t, bits);
        prop_assert!(e.is_valid() && e.is_directory() && !e.is_leaf() && !e.is_empty());
        prop_assert_eq!(e.next_table(), t);
        prop_assert_eq!(e.next_table_index_bits(), bits);
    }

    /// Whatever an entry holds, it is at most one of leaf, directory, empty;
    /// invalid non-zero entries are none of them.
    #[test]
    fn entry_kinds_are_exclusive(raw in any::<u64>()) {
        let e = Entry(raw);
        let kinds = [e.is_leaf(), e.is_directory(), e.is_empty()].iter().filter(|&&k| k).count();
        prop_assert!(kinds <= 1);
        prop_assert_eq!(kinds == 1, e.is_valid() || raw == 0);
    }

    /// In memory an entry is big-endian (the hardware walker's order), and
    /// every Slot access converts back to the same CPU-order value. Not
    /// under loom, whose AtomicU64 a Slot then wraps (and which only runs
    /// inside a model).
    #[cfg(not(loom))]
    #[test]
    fn slot_round_trips(a in any::<u64>(), b in any::<u64>(), other in any::<u64>()) {
        let (a, b) = (Entry(a), Entry(b));
        let cell = AtomicU64::new(0);
        // SAFETY: Slot is #[repr(transparent)] over AtomicU64, and the
        // kernel itself views table memory as Slots the same way.
        let slot = unsafe { &*(&cell as *const AtomicU64).cast::<Slot>() };
        slot.store(a, Ordering::Relaxed);
        prop_assert_eq!(slot.raw().to_ne_bytes(), a.0.to_be_bytes());
        prop_assert_eq!(slot.load(Ordering::Relaxed), a);
        prop_assert_eq!(slot.swap(b, Ordering::Relaxed), a);
        prop_assert_eq!(slot.load(Ordering::Relaxed), b);
        // A compare-exchange against a stale value fails and reports the
        // current one; against the current one it succeeds.
        let stale = Entry(other);
        if stale != b {
            prop_assert_eq!(slot.compare_exchange(stale, a), Err(b));
            prop_assert_eq!(slot.load(Ordering::Relaxed), b);
        }
        prop_assert_eq!(slot.compare_exchange(b, a), Ok(b));
        prop_assert_eq!(slot.load(Ordering::Relaxed), a);
    }

    #[test]
    fn indexes_recompose_the_address(a in tree_address()) {
        let offset = a & ((1 << PAGE_SHIFT) - 1);
        let back = LEVELS.iter().fold(offset, |acc, l| acc | ((l.index(a) as u64) << l.shift));
        prop_assert_eq!(back, a);
        for l in LEVELS {
            prop_assert!(l.index(a) < 1 << l.index_bits, "{} index {:#x}", l.name, l.index(a));
        }
    }

    /// The quadrant (EA bits 0:1) and anything else above bit 52 are not
    /// translated: they never change an index.
    #[test]
    fn high_bits_do_not_change_indexes(a in tree_address(), high in any::<u64>()) {
        let full = a | (high & !((1 << ADDRESS_BITS) - 1));
        for l in LEVELS {
            prop_assert_eq!(l.index(full), l.index(a));
        }
    }

    /// An address is aligned to a page size exactly when the page offset and
    /// the indexes of every level below that size's level are zero, and a
    /// page of that size is one entry of its level.
    #[test]
    fn page_sizes_are_level_spans(a in tree_address(), size in page_size()) {
        let level = size.level();
        prop_assert_eq!(size.bytes(), level.entry_span());
        let below: Vec<Level> = LEVELS.iter().copied().filter(|l| l.shift < level.shift).collect();
        let low_zero = a & ((1 << PAGE_SHIFT) - 1) == 0 && below.iter().all(|l| l.index(a) == 0);
        prop_assert_eq!(a % size.bytes() == 0, low_zero);
        // Every address inside one page of this size has the same indexes
        // down to the page's level.
        let base = a - a % size.bytes();
        for l in LEVELS.iter().filter(|l| l.shift >= level.shift) {
            prop_assert_eq!(l.index(base), l.index(a));
            prop_assert_eq!(l.index(base + size.bytes() - 1), l.index(a));
        }
    }
}

/// The levels tile the 52-bit address exactly: each level starts where the
/// one below ends, and sizes grow with the level. (Constants: no random input.)
#[test]
fn levels_tile_the_address() {
    assert_eq!(LEVELS, [PGD, PUD, PMD, PTE]);
    assert_eq!(PTE.shift, PAGE_SHIFT);
    for pair in LEVELS.windows(2) {
        assert_eq!(pair[0].shift, pair[1].shift + pair[1].index_bits, "{} over {}", pair[0].name, pair[1].name);
    }
    assert_eq!(PGD.shift + PGD.index_bits, ADDRESS_BITS);
    assert!(PageSize::Base.bytes() < PageSize::Huge2M.bytes() && PageSize::Huge2M.bytes() < PageSize::Huge1G.bytes());
    assert!(PageSize::Base < PageSize::Huge2M && PageSize::Huge2M < PageSize::Huge1G);
}
