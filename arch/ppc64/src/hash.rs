//! The hash MMU on pseries: the hashed page table (HPT) is owned by the
//! hypervisor and filled through hcalls; it is a cache of the software tree,
//! as on Linux. The kernel bolts HPTEs for its linear map, keeps a bolted
//! SLB entry for the 1 TiB segment at 0xc000000000000000, and fills the rest
//! on demand: a segment miss loads an SLB entry, a storage interrupt with no
//! HPTE walks the tree locklessly (interrupts are off in the handler) and
//! inserts one, recording its slot in the software PTE so that invalidation
//! needs no search. Flushes remove HPTEs with H_REMOVE / H_BULK_REMOVE; the
//! hypervisor does the `tlbie`.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use alloc::collections::BTreeMap;
use boot::BootInfo;
use kernel::mm::hash::{self as hpt, vsid, HptGeometry, SegmentSize};
use kernel::mm::mmu::{Scope, SpaceId, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{self, Entry, PageSize, Slot};
use kernel::mm::{self, FRAME_SIZE, LINEAR_MAP_BASE};
use spin::Mutex;

use crate::cpu;
use crate::exceptions::{self, vector, TrapFrame};
use crate::hcall::{self, hcall_ret};
use crate::mmu::{self, dsisr, isi_srr1, FaultAction, Mode};

use crate::hcall::{
    H_BULK_REMOVE, H_DROPPED, H_ENTER, H_HARDWARE, H_NOT_FOUND, H_NO_MEM, H_PARAMETER, H_PROTECT, H_PTEG_FULL, H_READ,
    H_REGISTER_PROC_TBL, H_REMOVE,
};

/// Flags (r4): match the AVPN given; H_READ four entries at once.
const H_AVPN: u64 = 1 << 31;
const H_READ_4: u64 = 1 << 37;
/// H_BULK_REMOVE request words (PAPR; QEMU h_bulk_remove): type in the top
/// two bits (request 01, end 11), the AVPN-match flag, ptex below; each is
/// rewritten as a response with a code in bits 60..61 (0 done, 1 not found).
const BULK_REQUEST: u64 = 1 << 62;
const BULK_END: u64 = 3 << 62;
const BULK_AVPN: u64 = 0x0200_0000_0000_0000;
const BULK_RESPONSE_SHIFT: u32 = 60;
/// What H_AVPN compares: all of dword 0 but its low seven bits (B and AVPN).
const AVPN_COMPARE: u64 = !0x7f;

/// hcall status codes of the hash calls (PAPR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashError {
    /// H_PTEG_FULL (-6): all eight slots of the group are valid.
    GroupFull,
    /// H_NOT_FOUND (-7): no such entry (or its AVPN did not match).
    NotFound,
    /// H_PARAMETER (-4) and friends.
    Parameter(i64),
    /// H_HARDWARE (-1).
    Hardware,
    Other(i64),
}

fn status(code: i64) -> Result<(), HashError> {
    match code {
        hcall::H_SUCCESS => Ok(()),
        H_PTEG_FULL => Err(HashError::GroupFull),
        H_NOT_FOUND => Err(HashError::NotFound),
        H_HARDWARE => Err(HashError::Hardware),
        H_PARAMETER | H_DROPPED..=H_NO_MEM => Err(HashError::Parameter(code)),
        other => Err(HashError::Other(other)),
    }
}

/// An HPTE as H_READ returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hpte {
    pub v: u64,
    pub r: u64,
}

pub fn h_read(ptex: u64) -> Result<Hpte, HashError> {
    let (code, out) = hcall_ret(H_READ, [0, ptex, 0, 0]);
    status(code).map(|()| Hpte { v: out[0], r: out[1] })
}

/// Reads the four entries at `ptex & !3` (H_READ_4).
pub fn h_read4(ptex: u64) -> Result<[Hpte; 4], HashError> {
    let (code, out) = hcall_ret(H_READ, [H_READ_4, ptex & !3, 0, 0]);
    status(code)?;
    Ok(core::array::from_fn(|i| Hpte { v: out[2 * i], r: out[2 * i + 1] }))
}

/// H_ENTER into any free slot of the group at `group_ptex`; returns the slot used.
fn h_enter(group_ptex: u64, v: u64, r: u64) -> Result<u64, HashError> {
    let (code, out) = hcall_ret(H_ENTER, [0, group_ptex, v, r]);
    status(code).map(|()| out[0])
}

/// H_REMOVE of `ptex` if its AVPN still matches `v`'s; returns what it held.
fn h_remove(ptex: u64, v: u64) -> Result<Hpte, HashError> {
    let (code, out) = hcall_ret(H_REMOVE, [H_AVPN, ptex, v & AVPN_COMPARE, 0]);
    status(code).map(|()| Hpte { v: out[0], r: out[1] })
}

/// H_PROTECT: gives `ptex` (if its AVPN still matches `v`'s) the PP0, PP1,
/// PP2 and N bits of `r`. The flags carry them as QEMU's h_protect and
/// Linux's pSeries_lpar_hpte_updatepp do: PP1/PP2 in bits 1:0, N in 0x4,
/// PP0 in 0x100.
fn h_protect(ptex: u64, v: u64, r: u64) -> Result<(), HashError> {
    const FLAG_PP0: u64 = 0x100;
    let mut flags = H_AVPN | (r & (hpt::r::N | hpt::r::PP_MASK));
    if r & hpt::r::PP0 != 0 {
        flags |= FLAG_PP0;
    }
    let (code, _) = hcall_ret(H_PROTECT, [flags, ptex, v & AVPN_COMPARE, 0]);
    status(code)
}

/// Removes up to four entries in one H_BULK_REMOVE; `Err` for the first that failed.
fn h_bulk_remove(entries: &[(u64, u64)]) -> Result<(), HashError> {
    debug_assert!(entries.len() <= 4);
    let mut words = [BULK_END; 8];
    for (i, &(ptex, v)) in entries.iter().enumerate() {
        words[2 * i] = BULK_REQUEST | BULK_AVPN | ptex;
        words[2 * i + 1] = v & AVPN_COMPARE;
    }
    let status_word: u64;
    let mut out = [0u64; 8];
    // SAFETY: as hcall_ret, with the eight request words in r4..r11.
    unsafe {
        asm!(
            "sc 1",
            inout("r3") H_BULK_REMOVE => status_word,
            inout("r4") words[0] => out[0], inout("r5") words[1] => out[1],
            inout("r6") words[2] => out[2], inout("r7") words[3] => out[3],
            inout("r8") words[4] => out[4], inout("r9") words[5] => out[5],
            inout("r10") words[6] => out[6], inout("r11") words[7] => out[7],
            out("r0") _, out("r12") _, out("ctr") _, out("xer") _,
            out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
            options(nostack)
        );
    }
    status(status_word as i64)?;
    for i in 0..entries.len() {
        match (out[2 * i] >> BULK_RESPONSE_SHIFT) & 3 {
            0 => {}
            1 => return Err(HashError::NotFound),
            code => return Err(HashError::Other(code as i64)),
        }
    }
    Ok(())
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
/// The context translating low addresses, or 0 for none.
/// Per CPU: the context translating low addresses (0 = none).
static ACTIVE_CONTEXT: [AtomicU32; crate::percpu::MAX_CPUS] = [const { AtomicU32::new(0) }; crate::percpu::MAX_CPUS];

fn active_context() -> &'static AtomicU32 {
    &ACTIVE_CONTEXT[crate::percpu::index() as usize]
}
/// Roots of the trees of address-space contexts, for the lockless walk.
static CONTEXT_ROOTS: [AtomicU64; mmu::SPACE_IDS as usize] = [const { AtomicU64::new(0) }; mmu::SPACE_IDS as usize];

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
        0 => Some(active_context().load(Ordering::Acquire)).filter(|&c| c != 0)?,
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
    if boot::cas::negotiated_radix(&info.arch_vec5) {
        return Err("CAS chose radix; mmu=hash needs the hash MMU");
    }
    let size_log2 = info.hpt_size_log2.ok_or("no ibm,pft-size: the platform has no hashed page table")?;
    GEOMETRY.store(size_log2, Ordering::Relaxed);
    SLB_SIZE.store(info.slb_size.unwrap_or(32), Ordering::Relaxed);
    mmu::build_kernel_tree(info)?;

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
    // ISA 3.0 hash partitions tell the hypervisor they use the HPT with SLBs
    // (flags 0: keep the registration; a no-op under TCG, needed under KVM).
    // Before ISA 3.0 there is no process table to register (Linux makes the
    // call only with CPU_FTR_ARCH_300).
    if crate::cpu::processor().isa >= boot::processor::IsaLevel::V3_00 {
        let status = hcall::hcall4_retry(H_REGISTER_PROC_TBL, 0, 0, 0, 0);
        if status != hcall::H_SUCCESS {
            return Err("H_REGISTER_PROC_TBL refused hash with SLBs");
        }
    }
    if SLB_SIZE.load(Ordering::Relaxed) as usize > MAX_SLB {
        SLB_SIZE.store(MAX_SLB as u32, Ordering::Relaxed);
    }
    // The firmware's entries go (not entry 0, which slbia keeps and
    // slb_insert loads right after, while translation is still off).
    slb_flush_unbolted();
    slb_insert(0, LINEAR_MAP_BASE, kernel_vsid, false);
    exceptions::enable_relocation_on_interrupts()?;
    cpu::enable_translation();
    mmu::set_mode(Mode::Hash);
    Ok(())
}

/// A secondary CPU's SLB: only the bolted kernel segment.
pub fn init_secondary() {
    slb_flush_unbolted();
    slb_insert(0, LINEAR_MAP_BASE, vsid::for_segment(KERNEL_SPACE, 0), false);
}

/// Inserts an HPTE for `ea` into its primary group, else the secondary one,
/// else evicts a non-bolted entry of the primary group. Returns the slot
/// (ptex) and whether it is in the secondary group.
fn insert(ea: u64, v: u64, r: u64) -> Result<(u64, bool), HashError> {
    let (_, vsid) = segment_of(ea).ok_or(HashError::Parameter(0))?;
    let vpn = hpt::vpn(vsid, ea, SegmentSize::T1);
    let hash = hpt::hash(vpn, hpt::PAGE_SHIFT, SegmentSize::T1);
    let g = geometry();
    match h_enter(g.group_slot(hash, false), v, r) {
        Ok(slot) => return Ok((slot, false)),
        Err(HashError::GroupFull) => {}
        Err(e) => return Err(e),
    }
    match h_enter(g.group_slot(hash, true), v | hpt::v::SECONDARY, r) {
        Ok(slot) => return Ok((slot, true)),
        Err(HashError::GroupFull) => {}
        Err(e) => return Err(e),
    }
    // Both groups full: evict an entry that is not bolted, rotating the
    // victim (Linux picks pseudo-randomly). The evicted page faults back in.
    static VICTIM: AtomicU64 = AtomicU64::new(0);
    let group = g.group_slot(hash, false);
    for _ in 0..hpt::HPTES_PER_GROUP {
        let ptex = group + VICTIM.fetch_add(1, Ordering::Relaxed) % hpt::HPTES_PER_GROUP;
        let old = h_read(ptex)?;
        if old.v & hpt::v::BOLTED == 0 {
            let _ = h_remove(ptex, old.v);
            EVICTIONS.fetch_add(1, Ordering::Relaxed);
            return h_enter(group, v, r).map(|slot| (slot, false));
        }
    }
    Err(HashError::GroupFull)
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
pub fn handle_fault(frame: &TrapFrame) -> FaultAction {
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
    match hash_page(ea) {
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
    Hcall(HashError),
}

/// The hash fault path: walks the tree for `ea` without locks (the caller
/// runs with interrupts off: this is the lockless walker that THP collapse
/// must be serialised against), inserts an HPTE for its 64 KiB page and
/// records the slot.
pub fn hash_page(ea: u64) -> Result<(), HashPageError> {
    hash_page_with(ea, &kernel::mm::gup::NoHooks)
}

/// `hash_page` with test-only synchronisation points.
pub fn hash_page_with(ea: u64, hooks: &impl kernel::mm::gup::RaceHooks) -> Result<(), HashPageError> {
    let (context, vsid) = segment_of(ea).ok_or(HashPageError::NoSegment)?;
    let root = if context == KERNEL_SPACE {
        mmu::kernel_root()
    } else {
        CONTEXT_ROOTS[context as usize].load(Ordering::Acquire)
    };
    hash_fault::hash_fault(root, ea, mm::phys_to_virt, &Segment { context, vsid }, hooks).map_err(|error| match error {
        hash_fault::HashFaultError::NotMapped => HashPageError::NotMapped,
        hash_fault::HashFaultError::Table(error) => HashPageError::Hcall(error),
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

    /// H_REMOVE of the HPTE recorded as `bits`, if it is still `page`'s.
    fn remove_recorded(&self, page: u64, bits: u64) {
        let (_, secondary) = hash_fault::slot_of(bits);
        let _ = h_remove(
            recorded_ptex(self.hash(page), bits),
            self.v(page) | if secondary { hpt::v::SECONDARY } else { 0 },
        );
    }
}

impl hash_fault::HashTable for Segment {
    type Error = HashError;

    fn insert(&self, page: u64, physical: u64, prot: pagetable::Prot) -> Result<u64, HashError> {
        let r = hpt::encode_r(
            physical,
            prot.contains(pagetable::Prot::WRITE),
            prot.contains(pagetable::Prot::USER),
            prot.contains(pagetable::Prot::EXECUTE),
        );
        let (ptex, secondary) = insert(page, self.v(page), r)?;
        Ok(hash_fault::slot_bits(ptex % hpt::HPTES_PER_GROUP, secondary))
    }

    fn remove(&self, page: u64, bits: u64) {
        self.remove_recorded(page, bits);
    }

    /// Huge leaves keep their pieces' slots in HUGE_SLOTS. The check of the
    /// leaf is made under the lock the flushes take after they changed the
    /// entry, so either the flush finds the record or this finds the change
    /// (the part of Linux's H_PAGE_BUSY protocol this kernel needs). One
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

// --- Address spaces -------------------------------------------------------------

pub fn attach_space(context: SpaceId, root: u64) {
    CONTEXT_ROOTS[context as usize].store(root, Ordering::Release);
}

/// Removes every HPTE the space still has, then forgets the space.
pub fn detach_space(context: SpaceId) {
    HASH_FLUSH.flush_space(context, Scope::Global);
    CONTEXT_ROOTS[context as usize].store(0, Ordering::Release);
}

pub fn activate(context: SpaceId) {
    active_context().store(context, Ordering::Release);
    slb_flush_unbolted();
}

pub fn deactivate() {
    active_context().store(0, Ordering::Release);
    slb_flush_unbolted();
}

pub fn active() -> Option<SpaceId> {
    Some(active_context().load(Ordering::Acquire)).filter(|&c| c != 0)
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
                each(
                    recorded_ptex(page_hash(base), old.0),
                    page_v(base) | if secondary { hpt::v::SECONDARY } else { 0 },
                );
            }
        }
        _ => {
            let mut slots = HUGE_SLOTS.lock();
            let keys: alloc::vec::Vec<(SpaceId, u64)> =
                slots.range((space, base)..(space, base + size.bytes())).map(|(&k, _)| k).collect();
            for key in keys {
                let bits = slots.remove(&key).unwrap_or(0);
                let secondary = bits & PTE_SECONDARY != 0;
                each(
                    recorded_ptex(page_hash(key.1), bits),
                    page_v(key.1) | if secondary { hpt::v::SECONDARY } else { 0 },
                );
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

/// Removes HPTEs four at a time.
fn remove_all(entries: &[(u64, u64)]) {
    for chunk in entries.chunks(4) {
        if h_bulk_remove(chunk).is_err() {
            // One was gone already (evicted): remove the rest one by one.
            for &(ptex, v) in chunk {
                let _ = h_remove(ptex, v);
            }
        }
    }
}

pub struct HashFlush;
pub static HASH_FLUSH: HashFlush = HashFlush;

impl HashFlush {
    /// Invalidates the HPTEs that the base PTEs of a PTE table (the one a
    /// collapsed PMD pointed at) recorded: Linux's flush_hash_table_pmd_range.
    /// It flushes hash-table entries; the hypervisor flushes the TLB.
    pub fn flush_hash_table_pmd_range(&self, space: SpaceId, address: u64, old_ptes: &[Entry]) {
        let start = address & !(PageSize::Huge2M.bytes() - 1);
        let mut victims = alloc::vec::Vec::new();
        for (i, &old) in old_ptes.iter().enumerate() {
            hashed_slots(space, start + i as u64 * FRAME_SIZE, PageSize::Base, old, |ptex, v| victims.push((ptex, v)));
        }
        remove_all(&victims);
    }
}

impl TlbFlush for HashFlush {
    fn flush_page(&self, space: SpaceId, address: u64, size: PageSize, old: Entry, _scope: Scope) {
        let mut victims = heapless::Vec::<(u64, u64), 4>::new();
        let mut many = alloc::vec::Vec::new();
        hashed_slots(space, address, size, old, |ptex, v| {
            if victims.push((ptex, v)).is_err() {
                many.push((ptex, v));
            }
        });
        remove_all(&victims);
        remove_all(&many);
    }

    fn flush_range(&self, space: SpaceId, start: u64, size: PageSize, old: &[Entry], _scope: Scope) {
        let mut victims = alloc::vec::Vec::new();
        for (i, &entry) in old.iter().enumerate() {
            hashed_slots(space, start + i as u64 * size.bytes(), size, entry, |ptex, v| victims.push((ptex, v)));
        }
        remove_all(&victims);
    }

    /// Scans the whole HPT for the space's VSIDs: only for address-space
    /// teardown, where the tree may still hold hashed pages.
    fn flush_space(&self, space: SpaceId, _scope: Scope) {
        if space == KERNEL_SPACE {
            return; // bolted; the kernel space is never torn down
        }
        // AVPN bits 7..61 hold VSID << 24 for a 1T segment (vpn >> 11 << 7).
        let belongs = |v: u64| vsid::context_of((v & hpt::v::AVPN_MASK) >> slb::VSID_SHIFT_1T) == space;
        let total = geometry().groups() * hpt::HPTES_PER_GROUP;
        let mut ptex = 0;
        while ptex < total {
            if let Ok(four) = h_read4(ptex) {
                for (i, hpte) in four.iter().enumerate() {
                    if hpte.v & hpt::v::VALID != 0 && hpte.v & hpt::v::BOLTED == 0 && belongs(hpte.v) {
                        let _ = h_remove(ptex + i as u64, hpte.v);
                    }
                }
            }
            ptex += 4;
        }
        HUGE_SLOTS.lock().retain(|&(s, _), _| s != space);
    }

    fn flush_collapsed_pmd(&self, space: SpaceId, address: u64, old_ptes: &[Entry], _scope: Scope) {
        self.flush_hash_table_pmd_range(space, address, old_ptes);
    }

    /// The hash MMU has no page-walk cache: it never walks the tree.
    fn flush_page_walk_cache(&self, _space: SpaceId, _scope: Scope) {}
}

/// The HPTE the tree records for the 64 KiB page at `ea` (whose leaf is
/// `entry` of `size`), read back with H_READ: for tests.
pub fn recorded_hpte(space: SpaceId, ea: u64, size: PageSize, entry: Entry) -> Option<(u64, Hpte)> {
    let page = ea & !(FRAME_SIZE - 1);
    let bits = match size {
        PageSize::Base => Some(entry.0).filter(|bits| bits & PTE_HASHED != 0)?,
        _ => *HUGE_SLOTS.lock().get(&(space, page))?,
    };
    let ptex = recorded_ptex(page_hash(space, page)?, bits);
    Some((ptex, h_read(ptex).ok()?))
}

/// After the tree changed the rights of the leaf at `address` (from `old`
/// to `new`): a base page's HPTE is updated in place with H_PROTECT and its
/// slot recorded again (Linux's hpte_updatepp); anything else is flushed and
/// faults back in with the new rights.
pub fn reprotect(space: SpaceId, address: u64, size: PageSize, slot: &Slot, old: Entry, new: Entry) {
    if size == PageSize::Base && old.0 & PTE_HASHED != 0 {
        if let Some(vpn) = page_vpn(space, address) {
            let secondary = old.0 & PTE_SECONDARY != 0;
            let ptex = recorded_ptex(hpt::hash(vpn, hpt::PAGE_SHIFT, SegmentSize::T1), old.0);
            let v = hpt::encode_v(vpn, SegmentSize::T1) | if secondary { hpt::v::SECONDARY } else { 0 };
            let prot = new.prot();
            let r = hpt::encode_r(
                new.physical(),
                prot.contains(pagetable::Prot::WRITE),
                prot.contains(pagetable::Prot::USER),
                prot.contains(pagetable::Prot::EXECUTE),
            );
            if h_protect(ptex, v, r).is_ok() {
                // The HPTE lives on: the PTE says so again, unless it changed.
                let _ = slot.compare_exchange(new, Entry(new.0 | (old.0 & pagetable::entry::HASH_SLOT_BITS)));
                return;
            }
        }
    }
    HASH_FLUSH.flush_page(space, address, size, old, Scope::Global);
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

// --- For the benchmarks ------------------------------------------------------------

/// The HPTE a base PTE records, as (ptex, v), if any.
pub fn recorded_slot(space: SpaceId, address: u64, entry: Entry) -> Option<(u64, u64)> {
    let mut found = None;
    hashed_slots(space, address, PageSize::Base, entry, |ptex, v| found = Some((ptex, v)));
    found
}

/// H_REMOVE of one HPTE; false if it was not there.
pub fn remove_one(ptex: u64, v: u64) -> bool {
    h_remove(ptex, v).is_ok()
}

/// H_BULK_REMOVE of up to four HPTEs; false if one was not there.
pub fn remove_four(entries: &[(u64, u64)]) -> bool {
    h_bulk_remove(entries).is_ok()
}
