//! The hash MMU backend: the hashed page table (HPT) is a cache of the
//! software tree, as on Linux, reached only through the platform's
//! `HpteOps` (the hypervisor's table on pseries, a table in RAM on bare
//! metal). The kernel bolts HPTEs for its linear map, keeps a bolted
//! SLB entry for the 1 TiB segment at 0xc000000000000000, and fills the rest
//! on demand: a segment miss loads an SLB entry, a storage interrupt with no
//! HPTE walks the tree locklessly (interrupts are off in the handler) and
//! inserts one, recording its slot in the software PTE so that invalidation
//! needs no search. Flushes remove HPTEs four at a time where the platform
//! can (on pseries the hypervisor then does the `tlbie`).

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use alloc::collections::BTreeMap;
use boot::BootInfo;
use kernel::mm::hash::{self as hpt, vsid, HptGeometry, SegmentSize};
use kernel::mm::mmu::{Scope, SpaceId, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{self, Entry, PageSize, ReadSide, Slot, Walked};
use kernel::mm::{self, FRAME_SIZE, LINEAR_MAP_BASE};
use spin::Mutex;

use super::backend::{Detached, MmuBackend, Mode};
use super::space::root_of;
use super::tree::{build_kernel_tree, kernel_root};
use crate::platform::{machine, Hpte, HpteError, HpteOps};
use crate::trap::{dsisr, isi_srr1, vector, FaultAction, TrapFrame};
use crate::{cpu, percpu};

/// The platform's HPT operations, fixed at init.
static HPTE_OPS: kernel::sync::BootOnce<&'static dyn HpteOps> = kernel::sync::BootOnce::new();

/// The hashed page table this backend fills: the platform's.
pub fn table() -> &'static dyn HpteOps {
    *HPTE_OPS.get().expect("the hash MMU is initialised before its table is used")
}

static GEOMETRY: AtomicU32 = AtomicU32::new(0);

pub fn geometry() -> HptGeometry {
    HptGeometry { size_log2: GEOMETRY.load(Ordering::Relaxed) }
}

// --- Segments ---------------------------------------------------------------

/// SLB entry fields (Power ISA Book III, 5.7.6.1; Linux mmu-hash.h).
mod slb {
    /// ESID data: valid.
    pub const VALID: u64 = 0x0800_0000;
    /// VSID data: 1T segment (B = 01), VSID at bit 24.
    pub const B_1T: u64 = 1 << 62;
    pub const VSID_SHIFT_1T: u32 = 24;
    /// Storage keys: Ks (supervisor) and Kp (problem state).
    pub const KS: u64 = 0x800;
    pub const KP: u64 = 0x400;
    /// L = 1, LP = 01: 64 KiB base pages (QEMU's `ibm,segment-page-sizes` sllp 0x110).
    pub const LLP_64K: u64 = 0x110;
}

/// Entry 0 holds the kernel's linear-map segment and is never replaced
/// (`slbia` leaves entry 0 alone).
const BOLTED_SLB_ENTRIES: u64 = 1;
const MAX_SLB: usize = 64;
static SLB_SIZE: AtomicU32 = AtomicU32::new(32);
static SLB_NEXT: AtomicU64 = AtomicU64::new(BOLTED_SLB_ENTRIES);
/// The ESID word each SLB slot was loaded with (0 = empty): `slbmte` over a
/// valid entry does not drop translations made through it, so the old one
/// is `slbie`d first.
static SLB_SHADOW: [AtomicU64; MAX_SLB] = [const { AtomicU64::new(0) }; MAX_SLB];
/// Per CPU: the context translating low addresses (0 = none). Each CPU
/// reads and writes only its own (activate, deactivate, its faults), so
/// program order is all the ordering its accesses need: Relaxed (an
/// Acquire load is `isync`-terminated on POWER, which also ends a TCG
/// block, several times per hash fault).
static ACTIVE_CONTEXT: [AtomicU32; percpu::MAX_CPUS] = [const { AtomicU32::new(0) }; percpu::MAX_CPUS];

fn active_context() -> &'static AtomicU32 {
    &ACTIVE_CONTEXT[percpu::index() as usize]
}

/// The context and VSID of an effective address: the kernel region (0xc)
/// is context 0, low addresses belong to the active context.
fn segment_of(ea: u64) -> Option<(SpaceId, u64)> {
    let region = ea >> 60;
    let esid_bits = (ea >> SegmentSize::T1.shift()) & ((1 << vsid::SEGMENT_BITS) - 1);
    if (ea >> (SegmentSize::T1.shift() + vsid::SEGMENT_BITS)) & 0xff != 0 {
        return None; // beyond the 52 bits the kernel uses
    }
    let context = match region {
        0xc => KERNEL_SPACE,
        0 => Some(active_context().load(Ordering::Relaxed)).filter(|&c| c != 0)?,
        _ => return None,
    };
    Some((context, vsid::for_segment(context, esid_bits)))
}

fn slb_insert(index: u64, ea: u64, vsid: u64, user: bool) {
    let keys = if user { slb::KS | slb::KP } else { slb::KP };
    let rs = (vsid << slb::VSID_SHIFT_1T) | slb::B_1T | keys | slb::LLP_64K;
    let esid = ea & !((1u64 << SegmentSize::T1.shift()) - 1);
    let rb = esid | slb::VALID | index;
    let old = SLB_SHADOW[index as usize].swap(esid | slb::VALID, Ordering::Relaxed);
    if old != 0 && index >= BOLTED_SLB_ENTRIES {
        // SAFETY: invalidates the unbolted entry about to be replaced
        // (SLBIE_SSIZE: B = 1T at bit 25 of RB).
        unsafe { asm!("slbie {0}", in(reg) (old & !slb::VALID) | (1 << 25), options(nostack)) };
    }
    // SAFETY: loads one SLB entry; entry 0 (the segment this code runs in)
    // is only ever loaded with the same translation.
    unsafe { asm!("slbmte {0}, {1}", "isync", in(reg) rs, in(reg) rb, options(nostack)) };
}

/// Drops every SLB entry but the bolted one (`slbia` with IH = 0).
fn slb_flush_unbolted() {
    // SAFETY: invalidates the unbolted SLB entries and the translations made
    // through them; entry 0 stays.
    unsafe { asm!("slbia", "isync", options(nostack)) };
    for slot in &SLB_SHADOW[BOLTED_SLB_ENTRIES as usize..] {
        slot.store(0, Ordering::Relaxed);
    }
}

// --- Bring-up -----------------------------------------------------------------

/// Bolts the linear map into the HPT, loads the kernel segment and turns
/// translation on.
pub fn init(info: &BootInfo) -> Result<(), &'static str> {
    machine().check_mmu(info, false)?;
    let size_log2 = machine().hash_table(info)?;
    let ops = machine().hpte().ok_or("the platform has no hashed page table operations")?;
    // SAFETY: mmu::init runs this on the boot CPU before it starts the
    // others; nothing reads the table's operations before translation is on.
    unsafe { HPTE_OPS.set(ops) };
    GEOMETRY.store(size_log2, Ordering::Relaxed);
    SLB_SIZE.store(info.slb_size.unwrap_or(32), Ordering::Relaxed);
    build_kernel_tree(info)?;

    let kernel_vsid = vsid::for_segment(KERNEL_SPACE, 0);
    for range in &info.memory {
        let mut physical = range.start;
        while physical < range.end() {
            let ea = LINEAR_MAP_BASE | physical;
            let v = hpt::encode_v(hpt::vpn(kernel_vsid, ea, SegmentSize::T1), SegmentSize::T1) | hpt::v::BOLTED;
            let r = hpt::encode_r(physical, true, false, true);
            insert(ea, v, r).map_err(|_| "cannot bolt the linear map into the hashed page table")?;
            physical += FRAME_SIZE;
        }
    }
    if info.memory.iter().any(|r| r.end() > 1 << SegmentSize::T1.shift()) {
        return Err("more than 1 TiB of RAM needs more bolted segments");
    }
    machine().register_hash()?;
    if SLB_SIZE.load(Ordering::Relaxed) as usize > MAX_SLB {
        SLB_SIZE.store(MAX_SLB as u32, Ordering::Relaxed);
    }
    // The firmware's entries go (not entry 0, which slbia keeps and
    // slb_insert loads right after, while translation is still off).
    slb_flush_unbolted();
    slb_insert(0, LINEAR_MAP_BASE, kernel_vsid, false);
    machine().relocate_interrupts()?;
    cpu::enable_translation();
    Ok(())
}

/// Inserts an HPTE for `ea` into its primary group, else the secondary one,
/// else evicts a non-bolted entry of the primary group. Returns the slot
/// (ptex) and whether it is in the secondary group.
fn insert(ea: u64, v: u64, r: u64) -> Result<(u64, bool), HpteError> {
    let (_, vsid) = segment_of(ea).ok_or(HpteError::Parameter(0))?;
    let vpn = hpt::vpn(vsid, ea, SegmentSize::T1);
    insert_hashed(hpt::hash(vpn, hpt::PAGE_SHIFT, SegmentSize::T1), v, r)
}

/// `insert` for a page whose primary hash is known (the fault path's and
/// the preload's insert).
pub fn insert_hashed(hash: u64, v: u64, r: u64) -> Result<(u64, bool), HpteError> {
    let g = geometry();
    let ops = table();
    match ops.insert(g.group_slot(hash, false), v, r) {
        Ok(slot) => return Ok((slot, false)),
        Err(HpteError::GroupFull) => {}
        Err(e) => return Err(e),
    }
    match ops.insert(g.group_slot(hash, true), v | hpt::v::SECONDARY, r) {
        Ok(slot) => return Ok((slot, true)),
        Err(HpteError::GroupFull) => {}
        Err(e) => return Err(e),
    }
    // Both groups full: evict an entry that is not bolted, rotating the
    // victim (Linux picks pseudo-randomly). The evicted page faults back in.
    static VICTIM: AtomicU64 = AtomicU64::new(0);
    let group = g.group_slot(hash, false);
    for _ in 0..hpt::HPTES_PER_GROUP {
        let ptex = group + VICTIM.fetch_add(1, Ordering::Relaxed) % hpt::HPTES_PER_GROUP;
        let old = ops.read(ptex)?;
        if old.v & hpt::v::BOLTED == 0 {
            let _ = ops.remove(ptex, old.v, Scope::Global);
            EVICTIONS.fetch_add(1, Ordering::Relaxed);
            return ops.insert(group, v, r).map(|slot| (slot, false));
        }
    }
    Err(HpteError::GroupFull)
}

/// HPTEs evicted because both their groups were full.
pub static EVICTIONS: AtomicU64 = AtomicU64::new(0);

// --- Slot tracking --------------------------------------------------------------

use kernel::mm::hash_fault::{self, PTE_HASHED, PTE_SECONDARY, PTE_SLOT_SHIFT};

/// The ptex a recorded slot stands for, given the page's hash.
fn recorded_ptex(hash: u64, bits: u64) -> u64 {
    let secondary = bits & PTE_SECONDARY != 0;
    geometry().group_slot(hash, secondary) + ((bits >> PTE_SLOT_SHIFT) & (hpt::HPTES_PER_GROUP - 1))
}

/// Huge leaves cover 32 (2 MiB) or 16384 (1 GiB) base pages: their slots live
/// beside the tree, keyed by (context, 64 KiB page address). The fault path
/// takes this lock with interrupts off; nothing else it locks is held there.
static HUGE_SLOTS: Mutex<BTreeMap<(SpaceId, u64), u64>> = Mutex::new(BTreeMap::new());

// --- Faults -------------------------------------------------------------------

/// Segment misses load an SLB entry; storage interrupts with no HPTE insert
/// one from the tree. Anything else is not the hash MMU's to fix.
fn hash_fault(frame: &TrapFrame) -> FaultAction {
    let (ea, missing) = match frame.vector {
        vector::DATA_SEGMENT => return load_segment(frame.dar),
        vector::INSTRUCTION_SEGMENT => return load_segment(frame.srr0),
        vector::DATA_STORAGE => (frame.dar, frame.dsisr & dsisr::NO_TRANSLATION != 0),
        vector::INSTRUCTION_STORAGE => (frame.srr0, frame.srr1 & isi_srr1::NO_TRANSLATION != 0),
        _ => return FaultAction::Unhandled,
    };
    if !missing {
        return FaultAction::Unhandled; // a protection fault: the tree says no
    }
    // SAFETY: a storage interrupt's handler: the hardware entered it with
    // interrupts off, and they stay off until it returns.
    let read_side = unsafe { ReadSide::assume_interrupts_off() };
    match hash_page(ea, &read_side) {
        Ok(()) => FaultAction::Retry,
        Err(_) => FaultAction::Unhandled,
    }
}

fn load_segment(ea: u64) -> FaultAction {
    let Some((context, vsid)) = segment_of(ea) else { return FaultAction::Unhandled };
    let size = SLB_SIZE.load(Ordering::Relaxed) as u64;
    let index = BOLTED_SLB_ENTRIES + SLB_NEXT.fetch_add(1, Ordering::Relaxed) % (size - BOLTED_SLB_ENTRIES);
    slb_insert(index, ea, vsid, context != KERNEL_SPACE);
    FaultAction::Retry
}

/// Why `hash_page` did not insert an HPTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPageError {
    NoSegment,
    NotMapped,
    Table(HpteError),
}

/// The hash fault path: walks the tree for `ea` without locks (the caller
/// runs with interrupts off: this is the lockless walker that THP collapse
/// must be serialised against), inserts an HPTE for its 64 KiB page and
/// records the slot.
pub fn hash_page(ea: u64, read_side: &ReadSide) -> Result<(), HashPageError> {
    hash_page_with(ea, &kernel::mm::gup::NoHooks, read_side)
}

/// `hash_page` with synchronisation points (the race tests').
pub fn hash_page_with(
    ea: u64,
    hooks: &impl kernel::mm::gup::RaceHooks,
    read_side: &ReadSide,
) -> Result<(), HashPageError> {
    let (context, vsid) = segment_of(ea).ok_or(HashPageError::NoSegment)?;
    let root = if context == KERNEL_SPACE { kernel_root() } else { root_of(context) };
    hash_fault::hash_fault(root, ea, mm::phys_to_virt, &Segment { context, vsid }, hooks, read_side).map_err(|error| {
        match error {
            hash_fault::HashFaultError::NotMapped => HashPageError::NotMapped,
            hash_fault::HashFaultError::Table(error) => HashPageError::Table(error),
        }
    })
}

/// The hashed page table as seen from one segment of one address space:
/// what `kernel::mm::hash_fault` inserts into and removes from.
struct Segment {
    context: SpaceId,
    vsid: u64,
}

impl Segment {
    fn v(&self, page: u64) -> u64 {
        hpt::encode_v(hpt::vpn(self.vsid, page, SegmentSize::T1), SegmentSize::T1)
    }

    fn hash(&self, page: u64) -> u64 {
        hpt::hash(hpt::vpn(self.vsid, page, SegmentSize::T1), hpt::PAGE_SHIFT, SegmentSize::T1)
    }

    /// Removes the HPTE recorded as `bits`, if it is still `page`'s.
    fn remove_recorded(&self, page: u64, bits: u64) {
        let (_, secondary) = hash_fault::slot_of(bits);
        let _ = table().remove(
            recorded_ptex(self.hash(page), bits),
            self.v(page) | secondary_bit(secondary),
            Scope::Global,
        );
    }
}

impl hash_fault::HashTable for Segment {
    type Error = HpteError;

    fn insert(&self, page: u64, physical: u64, prot: pagetable::Prot) -> Result<u64, HpteError> {
        let r = hpt::encode_r(
            physical,
            prot.contains(pagetable::Prot::WRITE),
            prot.contains(pagetable::Prot::USER),
            prot.contains(pagetable::Prot::EXECUTE),
        );
        let (ptex, secondary) = insert_hashed(self.hash(page), self.v(page), r)?;
        Ok(hash_fault::slot_bits(ptex % hpt::HPTES_PER_GROUP, secondary))
    }

    fn remove(&self, page: u64, bits: u64) {
        self.remove_recorded(page, bits);
    }

    /// Huge leaves keep their pieces' slots in HUGE_SLOTS. The check of the
    /// leaf is made under the lock the flushes take after they changed the
    /// entry, so either the flush finds the record or this finds the change
    /// (the part of Linux's busy-bit protocol for hashed PTEs this kernel needs). One
    /// record per piece: an HPTE recorded before by another CPU goes.
    fn record_huge(&self, page: u64, leaf: &Slot, seen: Entry, bits: u64) {
        let mut slots = HUGE_SLOTS.lock();
        if leaf.load(Ordering::Acquire) == seen {
            if let Some(before) = slots.insert((self.context, page), bits).filter(|&before| before != bits) {
                drop(slots);
                self.remove_recorded(page, before);
            }
        } else {
            drop(slots);
            self.remove_recorded(page, bits);
        }
    }
}

// --- Flushes ----------------------------------------------------------------------

/// The HPTE(s) a cleared entry may have left, as (ptex, v) pairs.
fn hashed_slots(space: SpaceId, address: u64, size: PageSize, old: Entry, mut each: impl FnMut(u64, u64)) {
    let base = address & !(size.bytes() - 1);
    let Some((_, vsid)) = segment_for(space, base) else { return };
    let page_v = |page: u64| hpt::encode_v(hpt::vpn(vsid, page, SegmentSize::T1), SegmentSize::T1);
    let page_hash = |page: u64| hpt::hash(hpt::vpn(vsid, page, SegmentSize::T1), hpt::PAGE_SHIFT, SegmentSize::T1);
    match size {
        PageSize::Base => {
            if old.0 & PTE_HASHED != 0 {
                let secondary = old.0 & PTE_SECONDARY != 0;
                each(recorded_ptex(page_hash(base), old.0), page_v(base) | secondary_bit(secondary));
            }
        }
        _ => {
            let mut slots = HUGE_SLOTS.lock();
            let keys: alloc::vec::Vec<(SpaceId, u64)> =
                slots.range((space, base)..(space, base + size.bytes())).map(|(&k, _)| k).collect();
            for key in keys {
                let bits = slots.remove(&key).unwrap_or(0);
                let secondary = bits & PTE_SECONDARY != 0;
                each(recorded_ptex(page_hash(key.1), bits), page_v(key.1) | secondary_bit(secondary));
            }
        }
    }
}

/// The context and VSID of `address` in address space `space` (not the
/// active one: flushes name their space).
fn segment_for(space: SpaceId, address: u64) -> Option<(SpaceId, u64)> {
    let esid_bits = (address >> SegmentSize::T1.shift()) & ((1 << vsid::SEGMENT_BITS) - 1);
    Some((space, vsid::for_segment(space, esid_bits)))
}

/// Dword 0's H bit for an entry in its secondary group.
pub fn secondary_bit(secondary: bool) -> u64 {
    if secondary {
        hpt::v::SECONDARY
    } else {
        0
    }
}

/// Removes the HPTEs `entries` name as (ptex, v), four per call.
pub fn remove_all(entries: &[(u64, u64)], scope: Scope) {
    let ops = table();
    for chunk in entries.chunks(4) {
        if ops.remove_four(chunk, scope).is_err() {
            // One was gone already (evicted): remove the rest one by one.
            for &(ptex, v) in chunk {
                let _ = ops.remove(ptex, v, scope);
            }
        }
    }
}

pub struct Hash;
pub static HASH_MMU: Hash = Hash;

impl Hash {
    /// Invalidates the HPTEs that the base PTEs of a PTE table (the one a
    /// collapsed PMD pointed at) recorded: Linux's flush_hash_table_pmd_range.
    /// It flushes hash-table entries; the hypervisor flushes the TLB.
    pub fn flush_hash_table_pmd_range(&self, space: SpaceId, address: u64, old_ptes: &[Entry], scope: Scope) {
        let start = address & !(PageSize::Huge2M.bytes() - 1);
        let mut victims = alloc::vec::Vec::new();
        for (i, &old) in old_ptes.iter().enumerate() {
            hashed_slots(space, start + i as u64 * FRAME_SIZE, PageSize::Base, old, |ptex, v| victims.push((ptex, v)));
        }
        remove_all(&victims, scope);
    }
}

impl TlbFlush for Hash {
    fn flush_page(&self, space: SpaceId, address: u64, size: PageSize, old: Entry, scope: Scope) {
        let mut victims = heapless::Vec::<(u64, u64), 4>::new();
        let mut many = alloc::vec::Vec::new();
        hashed_slots(space, address, size, old, |ptex, v| {
            if victims.push((ptex, v)).is_err() {
                many.push((ptex, v));
            }
        });
        remove_all(&victims, scope);
        remove_all(&many, scope);
    }

    fn flush_range(&self, space: SpaceId, start: u64, size: PageSize, old: &[Entry], scope: Scope) {
        let mut victims = alloc::vec::Vec::new();
        for (i, &entry) in old.iter().enumerate() {
            hashed_slots(space, start + i as u64 * size.bytes(), size, entry, |ptex, v| victims.push((ptex, v)));
        }
        remove_all(&victims, scope);
    }

    /// Scans the whole HPT for the space's VSIDs. Teardown does not: it
    /// leaves the space's id to the next scrub (`detach_space`).
    fn flush_space(&self, space: SpaceId, scope: Scope) {
        if space == KERNEL_SPACE {
            return; // bolted; the kernel space is never torn down
        }
        remove_unbolted(&|context| context == space, scope);
        HUGE_SLOTS.lock().retain(|&(s, _), _| s != space);
    }

    fn flush_collapsed_pmd(&self, space: SpaceId, address: u64, old_ptes: &[Entry], scope: Scope) {
        self.flush_hash_table_pmd_range(space, address, old_ptes, scope);
    }

    /// The hash MMU has no page-walk cache: it never walks the tree.
    fn flush_page_walk_cache(&self, _space: SpaceId, _scope: Scope) {}
}

/// Removes every HPTE that is not bolted and belongs to a context for which
/// `doomed` holds: one pass over the whole table, four entries a read.
fn remove_unbolted(doomed: &dyn Fn(SpaceId) -> bool, scope: Scope) {
    // AVPN bits 7..61 hold VSID << 24 for a 1T segment (vpn >> 11 << 7).
    let context = |v: u64| vsid::context_of((v & hpt::v::AVPN_MASK) >> slb::VSID_SHIFT_1T);
    let total = geometry().groups() * hpt::HPTES_PER_GROUP;
    let ops = table();
    for ptex in (0..total).step_by(4) {
        if let Ok(four) = ops.read4(ptex) {
            for (i, hpte) in four.iter().enumerate() {
                if hpte.v & hpt::v::VALID != 0 && hpte.v & hpt::v::BOLTED == 0 && doomed(context(hpte.v)) {
                    let _ = ops.remove(ptex + i as u64, hpte.v, scope);
                }
            }
        }
    }
}

/// The HPTE the tree records for the 64 KiB page at `ea` (whose leaf is
/// `entry` of `size`), read back from the table: what the tree and the HPT
/// agree on, for diagnostics.
pub fn recorded_hpte(space: SpaceId, ea: u64, size: PageSize, entry: Entry) -> Option<(u64, Hpte)> {
    let page = ea & !(FRAME_SIZE - 1);
    let bits = match size {
        PageSize::Base => Some(entry.0).filter(|bits| bits & PTE_HASHED != 0)?,
        _ => *HUGE_SLOTS.lock().get(&(space, page))?,
    };
    let ptex = recorded_ptex(page_hash(space, page)?, bits);
    Some((ptex, table().read(ptex).ok()?))
}

/// The VPN of the 64 KiB page at `ea` in address space `space`.
pub fn page_vpn(space: SpaceId, ea: u64) -> Option<u64> {
    let (_, vsid) = segment_for(space, ea)?;
    Some(hpt::vpn(vsid, ea & !(FRAME_SIZE - 1), SegmentSize::T1))
}

/// The primary hash of the 64 KiB page at `ea` in address space `space`.
pub fn page_hash(space: SpaceId, ea: u64) -> Option<u64> {
    Some(hpt::hash(page_vpn(space, ea)?, hpt::PAGE_SHIFT, SegmentSize::T1))
}

pub fn is_hashed(entry: Entry) -> bool {
    hash_fault::is_hashed(entry)
}

// --- Inspection -------------------------------------------------------------------

/// Every valid HPTE in the hash table translating the 64 KiB page at `ea`
/// of address space `space`, as (ptex, entry): both its groups searched, as
/// the MMU would, but without stopping at the first. More than one, or one
/// whose RPN is not the tree's page, is an HPTE that outlived the PTE it
/// came from (the MMU may use any of them).
pub fn hptes_of(space: SpaceId, ea: u64) -> heapless::Vec<(u64, Hpte), 16> {
    let mut found = heapless::Vec::new();
    let Some(vpn) = page_vpn(space, ea) else { return found };
    let hash = hpt::hash(vpn, hpt::PAGE_SHIFT, SegmentSize::T1);
    let g = geometry();
    let ops = table();
    for secondary in [false, true] {
        let group = g.group_slot(hash, secondary);
        for four in (group..group + hpt::HPTES_PER_GROUP).step_by(4) {
            let Ok(hptes) = ops.read4(four) else { continue };
            for (ptex, hpte) in (four..).zip(hptes) {
                let in_this_group = (hpte.v & hpt::v::SECONDARY != 0) == secondary;
                if in_this_group && hpt::v_matches(hpte.v, vpn, SegmentSize::T1) {
                    // 16 slots searched, 16 places: the push cannot fail.
                    let _ = found.push((ptex, hpte));
                }
            }
        }
    }
    found
}

/// The physical 64 KiB page an HPTE's doubleword 1 translates to.
pub fn hpte_page(r: u64) -> u64 {
    r & hpt::r::RPN_MASK & !(FRAME_SIZE - 1)
}

/// The HPTE a base PTE records, as (ptex, v), if any.
pub fn recorded_slot(space: SpaceId, address: u64, entry: Entry) -> Option<(u64, u64)> {
    let mut found = None;
    hashed_slots(space, address, PageSize::Base, entry, |ptex, v| found = Some((ptex, v)));
    found
}

impl MmuBackend for Hash {
    fn mode(&self) -> Mode {
        Mode::Hash
    }

    fn name(&self) -> &'static str {
        "hash"
    }

    /// A secondary CPU's SLB holds only the bolted kernel segment.
    fn enable_on_secondary(&self) {
        slb_flush_unbolted();
        slb_insert(0, LINEAR_MAP_BASE, vsid::for_segment(KERNEL_SPACE, 0), false);
        cpu::enable_translation();
    }

    /// The context's root is in the space registry, where the fault path
    /// reads it; nothing is hashed yet.
    fn attach_space(&self, _context: SpaceId, _root: u64) {}

    /// Teardown removed the HPTEs the tree recorded, page by page, as
    /// Linux's exit_mmap does; an HPTE that no PTE records can only be
    /// found by reading the whole table (~130,000 reads of four entries for
    /// 8 MiB under a hypervisor, which made every process exit cost
    /// milliseconds and emptied the host's caches). So the context waits:
    /// `scrub` reads the table once for all the contexts that died since
    /// the last time, when the ids run out.
    fn detach_space(&self, context: SpaceId) -> Detached {
        HUGE_SLOTS.lock().retain(|&(s, _), _| s != context);
        Detached::NeedsScrub
    }

    fn scrub(&self, dead: &dyn Fn(SpaceId) -> bool) {
        remove_unbolted(&|context| context != KERNEL_SPACE && dead(context), Scope::Global);
    }

    fn activate(&self, context: SpaceId) {
        active_context().store(context, Ordering::Relaxed);
        slb_flush_unbolted();
    }

    fn deactivate(&self) {
        active_context().store(0, Ordering::Relaxed);
        slb_flush_unbolted();
    }

    fn active_space(&self) -> Option<SpaceId> {
        Some(active_context().load(Ordering::Relaxed)).filter(|&c| c != 0)
    }

    fn handle_fault(&self, frame: &TrapFrame) -> FaultAction {
        hash_fault(frame)
    }

    /// After the tree changed the rights of the leaf at `address` (from `old`
    /// to `new`): a base page's HPTE is updated in place (the platform's protect) and its
    /// slot recorded again (Linux's hpte_updatepp); anything else is flushed and
    /// faults back in with the new rights.
    fn reprotect(&self, space: SpaceId, address: u64, size: PageSize, slot: &Slot, old: Entry, new: Entry) {
        if size == PageSize::Base && old.0 & PTE_HASHED != 0 {
            if let Some(vpn) = page_vpn(space, address) {
                let secondary = old.0 & PTE_SECONDARY != 0;
                let ptex = recorded_ptex(hpt::hash(vpn, hpt::PAGE_SHIFT, SegmentSize::T1), old.0);
                let v = hpt::encode_v(vpn, SegmentSize::T1) | secondary_bit(secondary);
                let prot = new.prot();
                let r = hpt::encode_r(
                    new.physical(),
                    prot.contains(pagetable::Prot::WRITE),
                    prot.contains(pagetable::Prot::USER),
                    prot.contains(pagetable::Prot::EXECUTE),
                );
                if table().protect(ptex, v, r, super::space::flush_scope(space)).is_ok() {
                    // The HPTE lives on: the PTE says so again, unless it changed.
                    let _ = slot.compare_exchange(new, Entry(new.0 | (old.0 & pagetable::entry::HASH_SLOT_BITS)));
                    return;
                }
            }
        }
        self.flush_page(space, address, size, old, Scope::Global);
    }

    /// The hash fault path walks the tree with interrupts off and no lock.
    fn faults_walk_locklessly(&self) -> bool {
        true
    }

    /// hash_preload: the HPTE of the page a fault just mapped, inserted by
    /// the fault (under the page-table lock, so no collapse runs meanwhile)
    /// for the leaf it set, instead of by a second interrupt when the
    /// access is retried. Only for the space active on this CPU, whose
    /// access is the one retried (a fault made for another space,
    /// GUP-slow's, leaves it to that space's first access); if the insert
    /// fails, that access takes the hash fault path as before. Interrupts
    /// are off while the HPTE goes in and its slot is recorded, as on the
    /// fault path.
    fn preload(&self, space: SpaceId, address: u64, leaf: Walked<'_>) {
        if self.active_space() != Some(space) {
            return;
        }
        let Some((context, vsid)) = segment_for(space, address) else { return };
        let _section = ReadSide::enter::<crate::percpu::IrqsOff>();
        let _ = hash_fault::hash_leaf(leaf, address, &Segment { context, vsid });
    }

    /// Whoever issues the `tlbie`s of HPTE removal applies them: the
    /// hypervisor on pseries (none here), the kernel's own table on bare metal.
    fn tlbie_fixups(&self) -> &'static str {
        table().tlbie_fixups()
    }
}
