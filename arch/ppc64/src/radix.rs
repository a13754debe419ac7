//! The radix MMU on pseries: process table, kernel linear map, address
//! spaces (PIDs), translation on, and the flush interface with `tlbie`.
//!
//! Order (as Linux's radix_init_pseries): CAS granted radix with GTSE in the
//! firmware phase; here the kernel builds its tree, registers the process
//! table with H_REGISTER_PROC_TBL (which switches the partition to radix),
//! parks PIDR on a guard PID with no tree (so quadrant-0 accesses, NULL
//! included, fault), asks for relocation-on interrupts (AIL 3) and turns
//! MSR[IR,DR] on. The kernel already runs at 0xc000... addresses, which the
//! linear map (PID 0, quadrant 3) now translates to the same RAM.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use boot::BootInfo;
use kernel::mm::mmu::{Scope, SpaceId, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{self, MapError, PageSize, PageTable, Prot, TableAllocator, FrameSource, PGD};
use kernel::mm::{self, Frame, FRAME_SIZE, LINEAR_MAP_BASE};
use spin::Mutex;

use crate::{cpu, exceptions, hcall};

/// Page-table frames for kernel-owned trees, from the global frame allocator.
pub struct KernelFrames;

impl FrameSource for KernelFrames {
    fn alloc_frame(&mut self) -> Option<u64> {
        mm::alloc_frame().map(Frame::address)
    }

    fn free_frame(&mut self, frame: u64) {
        mm::free_frame(Frame::from_address(frame).expect("table frames are frame-aligned"));
    }

    fn virt(&self, physical: u64) -> *mut u8 {
        mm::phys_to_virt(physical)
    }

    /// `ptesync` orders page-table stores before the accesses the walker
    /// makes with them (Power ISA Book III, 6.10.2 "Radix PTE updates").
    fn sync(&self) {
        ptesync();
    }
}

pub type Tree = PageTable<TableAllocator<KernelFrames>>;

/// Process table: 2^16 bytes of 16-byte entries, one per PID.
const PROCESS_TABLE_SHIFT: u32 = 16;
pub const PID_COUNT: u32 = 1 << (PROCESS_TABLE_SHIFT - 4);
/// PIDR while no address space is active: its entry stays empty, so every
/// quadrant-0 access (NULL included) faults.
pub const GUARD_PID: SpaceId = 1;
/// PRTB0's radix tree size for a 52-bit space: RTS = 52 - 31 = 21 = 0b10101,
/// split as RTS1 (bits 1:2) = 0b10 and RTS2 (bits 56:58) = 0b101 (Power ISA
/// Book III, 6.7.10.1; Linux radix__get_tree_size).
const PRTB0_RTS_52_BITS: u64 = (0b10 << 61) | (0b101 << 5);

/// H_REGISTER_PROC_TBL (PAPR; Linux hvcall.h) and its flags.
const H_REGISTER_PROC_TBL: u64 = 0x37c;
const PROC_TABLE_NEW: u64 = 0x18;
const PROC_TABLE_RADIX: u64 = 0x04;
const PROC_TABLE_GTSE: u64 = 0x01;
/// H_SET_MODE resource 3: alternate interrupt location; mflags 3 = vectors at
/// 0xc000000000004000 with translation on.
const H_SET_MODE_RESOURCE_AIL: u64 = 3;
const AIL_0XC000000000004000: u64 = 3;

/// SPR 48: the PID register (quadrant-0 translations use its process-table entry).
const SPR_PIDR: u32 = 48;

/// AP (actual page size) encodings for tlbie (`ibm,processor-radix-AP-encodings`).
fn ap(size: PageSize) -> u64 {
    match size {
        PageSize::Base => 5,
        PageSize::Huge2M => 1,
        PageSize::Huge1G => 2,
    }
}

static PROCESS_TABLE: AtomicU64 = AtomicU64::new(0);
static KERNEL_TREE: Mutex<Option<Tree>> = Mutex::new(None);
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Builds the kernel's tree and process table and turns translation on.
pub fn init(info: &BootInfo) -> Result<(), &'static str> {
    if !boot::cas::negotiated_radix(&info.arch_vec5) {
        return Err("CAS did not grant radix (/chosen ibm,architecture-vec-5 byte 24)");
    }
    let mut tree = PageTable::new(TableAllocator::new(KernelFrames)).map_err(|_| "no memory for the kernel PGD")?;
    for range in &info.memory {
        map_linear(&mut tree, range.start, range.end()).map_err(|_| "cannot build the linear map")?;
    }

    let table = mm::alloc_frame().ok_or("no frame for the process table")?;
    // SAFETY: a frame just allocated, reached through the linear-map address.
    unsafe { core::ptr::write_bytes(mm::phys_to_virt(table.address()), 0, FRAME_SIZE as usize) };
    PROCESS_TABLE.store(table.address(), Ordering::Release);
    set_process_table_entry(KERNEL_SPACE, Some(tree.root()));
    *KERNEL_TREE.lock() = Some(tree);

    let status = hcall::hcall4_retry(
        H_REGISTER_PROC_TBL,
        PROC_TABLE_NEW | PROC_TABLE_RADIX | PROC_TABLE_GTSE,
        table.address(),
        0,
        (PROCESS_TABLE_SHIFT - 12) as u64,
    );
    if status != hcall::H_SUCCESS {
        return Err("H_REGISTER_PROC_TBL refused the process table");
    }
    set_pidr(GUARD_PID);
    RADIX_FLUSH.flush_space(KERNEL_SPACE, Scope::Global);
    RADIX_FLUSH.flush_space(GUARD_PID, Scope::Global);

    let status = hcall::hcall4_retry(hcall::H_SET_MODE, AIL_0XC000000000004000, H_SET_MODE_RESOURCE_AIL, 0, 0);
    if status != hcall::H_SUCCESS {
        return Err("H_SET_MODE refused relocation-on interrupts (AIL 3)");
    }
    let msr = cpu::msr() | cpu::msr::IR | cpu::msr::DR;
    // SAFETY: the linear map covers all RAM at the addresses the kernel
    // already uses (PC, stack, TOC, data), so turning translation on changes
    // nothing the code depends on; isync makes it take effect.
    unsafe { asm!("mtmsrd {0}", "isync", in(reg) msr, options(nostack)) };
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// Maps `[start, end)` of RAM at LINEAR_MAP_BASE with the largest leaves
/// that fit (1 GiB, 2 MiB, 64 KiB).
fn map_linear(tree: &mut Tree, start: u64, end: u64) -> Result<(), MapError> {
    let mut physical = start;
    while physical < end {
        let size = [PageSize::Huge1G, PageSize::Huge2M, PageSize::Base]
            .into_iter()
            .find(|size| physical % size.bytes() == 0 && physical + size.bytes() <= end)
            .ok_or(MapError::Misaligned)?;
        tree.map(LINEAR_MAP_BASE | physical, physical, size, Prot::READ | Prot::WRITE | Prot::EXECUTE)?;
        physical += size.bytes();
    }
    Ok(())
}

/// Runs `f` on the kernel's tree (PID 0): for mappings outside the linear map.
pub fn with_kernel_tree<R>(f: impl FnOnce(&mut Tree) -> R) -> Option<R> {
    KERNEL_TREE.lock().as_mut().map(f)
}

fn process_table_entry(pid: SpaceId) -> &'static [AtomicU64; 2] {
    assert!(pid < PID_COUNT, "PID {pid} beyond the process table");
    let table = PROCESS_TABLE.load(Ordering::Acquire);
    assert_ne!(table, 0, "process table not set up");
    let entries = mm::phys_to_virt(table) as *const [AtomicU64; 2];
    // SAFETY: the process table is a live frame of PID_COUNT 16-byte entries.
    unsafe { &*entries.add(pid as usize) }
}

/// Points a PID at a tree (or at nothing). Entries are big-endian.
fn set_process_table_entry(pid: SpaceId, root: Option<u64>) {
    let prtb0 = root.map_or(0, |root| PRTB0_RTS_52_BITS | root | PGD.index_bits as u64);
    let entry = process_table_entry(pid);
    entry[1].store(0, Ordering::Relaxed);
    entry[0].store(prtb0.to_be(), Ordering::Release);
    ptesync();
}

pub fn set_pidr(pid: SpaceId) {
    // SAFETY: PIDR only selects the process-table entry for quadrant 0; the
    // kernel runs in quadrant 3. isync makes later accesses use it.
    unsafe { asm!("mtspr {spr}, {0}", "isync", in(reg) pid as u64, spr = const SPR_PIDR, options(nostack)) };
}

pub fn pidr() -> SpaceId {
    let value: u64;
    // SAFETY: reads PIDR.
    unsafe { asm!("mfspr {0}, {spr}", out(reg) value, spr = const SPR_PIDR, options(nomem, nostack)) };
    value as SpaceId
}

fn ptesync() {
    // SAFETY: a barrier only.
    unsafe { asm!("ptesync", options(nostack, preserves_flags)) };
}

// --- Address spaces -------------------------------------------------------

/// PIDs in use (bit per PID); 0 (kernel) and 1 (guard) are never handed out.
static PIDS: Mutex<[u64; (PID_COUNT / 64) as usize]> = Mutex::new({
    let mut bits = [0u64; (PID_COUNT / 64) as usize];
    bits[0] = 0b11;
    bits
});

/// What a fault handler decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The handler fixed the mapping: retry the access.
    Retry,
    /// Not handled: fall through to fix-ups or the fatal report.
    Unhandled,
}

/// A translation fault in quadrant 0, as the handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub pid: SpaceId,
    pub address: u64,
    pub store: bool,
    pub instruction: bool,
    /// No translation (as opposed to a protection violation).
    pub missing: bool,
}

pub type FaultHandler = fn(&Fault) -> FaultAction;

/// Fault handlers by PID, as function addresses (0 = none). Read from the
/// interrupt path, so no lock.
const HANDLER_SLOTS: usize = 64;
static FAULT_HANDLERS: [AtomicUsize; HANDLER_SLOTS] = [const { AtomicUsize::new(0) }; HANDLER_SLOTS];

/// A radix address space: a PID with its own tree, translating quadrant 0
/// while it is active on a CPU (PIDR).
pub struct AddressSpace {
    pid: SpaceId,
    /// Always `Some` until drop takes it to destroy it.
    tree: Option<Tree>,
}

impl AddressSpace {
    pub fn new() -> Result<AddressSpace, MapError> {
        let pid = {
            let mut pids = PIDS.lock();
            let pid = (0..PID_COUNT).find(|&p| pids[(p / 64) as usize] & (1 << (p % 64)) == 0).ok_or(MapError::NoMemory)?;
            pids[(pid / 64) as usize] |= 1 << (pid % 64);
            pid
        };
        let tree = match PageTable::new(TableAllocator::new(KernelFrames)) {
            Ok(tree) => tree,
            Err(error) => {
                release_pid(pid);
                return Err(error);
            }
        };
        set_process_table_entry(pid, Some(tree.root()));
        // A PID reused from an earlier space may still have translations.
        RADIX_FLUSH.flush_space(pid, Scope::Global);
        Ok(AddressSpace { pid, tree: Some(tree) })
    }

    pub fn pid(&self) -> SpaceId {
        self.pid
    }

    pub fn tree(&mut self) -> &mut Tree {
        self.tree.as_mut().expect("tree lives until drop")
    }

    /// Makes this space translate quadrant 0 on this CPU.
    pub fn activate(&self) {
        set_pidr(self.pid);
    }

    /// Calls `handler` for faults in this space that fix-ups do not cover.
    pub fn set_fault_handler(&self, handler: Option<FaultHandler>) {
        let slot = FAULT_HANDLERS.get(self.pid as usize).expect("fault handlers exist for the first 64 PIDs");
        slot.store(handler.map_or(0, |h| h as usize), Ordering::Release);
    }

    /// Unmaps one page and flushes it, releasing emptied tables after the flush.
    pub fn unmap(&mut self, address: u64) -> Result<pagetable::Entry, MapError> {
        let pid = self.pid;
        let tree = self.tree();
        let gone = tree.unmap(address)?;
        RADIX_FLUSH.flush_page(pid, address, gone.size, Scope::Global);
        if !gone.tables.is_empty() {
            RADIX_FLUSH.flush_page_walk_cache(pid, Scope::Global);
        }
        tree.release(&gone.tables);
        Ok(gone.entry)
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if pidr() == self.pid {
            set_pidr(GUARD_PID);
        }
        if let Some(slot) = FAULT_HANDLERS.get(self.pid as usize) {
            slot.store(0, Ordering::Release);
        }
        set_process_table_entry(self.pid, None);
        RADIX_FLUSH.flush_space(self.pid, Scope::Global);
        if let Some(tree) = self.tree.take() {
            drop(tree.destroy());
        }
        release_pid(self.pid);
    }
}

fn release_pid(pid: SpaceId) {
    PIDS.lock()[(pid / 64) as usize] &= !(1 << (pid % 64));
}

/// DSISR bits for radix faults (Power ISA Book III, 7.5.3; QEMU mmu-radix64.h).
pub mod dsisr {
    pub const NO_TRANSLATION: u64 = 0x4000_0000;
    pub const PROTECTION: u64 = 0x0800_0000;
    pub const STORE: u64 = 0x0200_0000;
    pub const BAD_CONFIG: u64 = 0x0008_0000;
    pub const ATOMIC_RC: u64 = 0x0004_0000;
    pub const PROCESS_TABLE: u64 = 0x0002_0000;
}

/// SRR1 bits of an instruction storage interrupt.
mod isi_srr1 {
    pub const NO_TRANSLATION: u64 = 0x4000_0000;
}

/// Offers a DSI/ISI to the fault handler of the active address space.
pub fn handle_fault(frame: &exceptions::TrapFrame) -> FaultAction {
    use exceptions::vector;
    if !enabled() {
        return FaultAction::Unhandled;
    }
    let (address, store, instruction, missing) = match frame.vector {
        vector::DATA_STORAGE => {
            (frame.dar, frame.dsisr & dsisr::STORE != 0, false, frame.dsisr & dsisr::NO_TRANSLATION != 0)
        }
        vector::INSTRUCTION_STORAGE => (frame.srr0, false, true, frame.srr1 & isi_srr1::NO_TRANSLATION != 0),
        _ => return FaultAction::Unhandled,
    };
    if address >> 62 != 0 {
        return FaultAction::Unhandled; // only quadrant 0 belongs to address spaces
    }
    let pid = pidr();
    let Some(handler) = FAULT_HANDLERS.get(pid as usize).map(|slot| slot.load(Ordering::Acquire)).filter(|&h| h != 0)
    else {
        return FaultAction::Unhandled;
    };
    // SAFETY: slots only ever hold 0 or a FaultHandler stored by set_fault_handler.
    let handler: FaultHandler = unsafe { core::mem::transmute::<usize, FaultHandler>(handler) };
    handler(&Fault { pid, address, store, instruction, missing })
}

// --- Flushes ----------------------------------------------------------------

/// `tlbie`/`tlbiel` operands (Power ISA Book III, 6.11.3.2 "TLB Management
/// Instructions"): RB = EPN | IS << 10 | AP << 5, RS = PID << 32 (LPID is the
/// hypervisor's business), PRS = 1 (process-scoped), R = 1 (radix).
const IS_VA: u64 = 0;
const IS_PID: u64 = 1;

/// RIC: 0 = TLB, 1 = page-walk cache, 2 = both.
#[derive(Clone, Copy)]
enum Ric {
    Tlb,
    PageWalkCache,
    All,
}

fn rb(address: u64, is: u64, size: PageSize) -> u64 {
    (address & !0xfff) | (is << 10) | (ap(size) << 5)
}

fn rs(pid: SpaceId) -> u64 {
    (pid as u64) << 32
}

/// One invalidation, broadcast (`tlbie`) or local (`tlbiel`), without the
/// surrounding barriers.
fn invalidate(scope: Scope, ric: Ric, rb: u64, rs: u64) {
    // SAFETY: TLB invalidations only drop cached translations; GTSE was
    // negotiated, so the guest may issue them.
    unsafe {
        match (scope, ric) {
            (Scope::Global, Ric::Tlb) => asm!("tlbie {0}, {1}, 0, 1, 1", in(reg) rb, in(reg) rs, options(nostack)),
            (Scope::Global, Ric::PageWalkCache) => asm!("tlbie {0}, {1}, 1, 1, 1", in(reg) rb, in(reg) rs, options(nostack)),
            (Scope::Global, Ric::All) => asm!("tlbie {0}, {1}, 2, 1, 1", in(reg) rb, in(reg) rs, options(nostack)),
            // The assembler takes only the one-operand tlbiel, so these are
            // encoded by hand: 0x7c000224 | RS << 21 | RIC << 18 | PRS << 17 |
            // R << 16 | RB << 11, with RB = r3 and RS = r4.
            (Scope::Local, Ric::Tlb) => asm!(".long 0x7c831a24", in("r3") rb, in("r4") rs, options(nostack)),
            (Scope::Local, Ric::PageWalkCache) => asm!(".long 0x7c871a24", in("r3") rb, in("r4") rs, options(nostack)),
            (Scope::Local, Ric::All) => asm!(".long 0x7c8b1a24", in("r3") rb, in("r4") rs, options(nostack)),
        }
    }
}

/// Runs invalidations with the ordering the ISA asks for: `ptesync` before
/// (page-table stores done), then for broadcasts `eieio; tlbsync; ptesync`
/// (all CPUs done), for local ones `ptesync`.
fn flush(scope: Scope, body: impl FnOnce()) {
    ptesync();
    body();
    // SAFETY: barriers only.
    unsafe {
        match scope {
            Scope::Global => asm!("eieio", "tlbsync", "ptesync", options(nostack, preserves_flags)),
            Scope::Local => asm!("ptesync", options(nostack, preserves_flags)),
        }
    }
}

/// Above this many pages a range flush becomes a PID flush (as Linux's
/// tlb_single_page_flush_ceiling).
const RANGE_CEILING_PAGES: u64 = 32;

pub struct RadixFlush;
pub static RADIX_FLUSH: RadixFlush = RadixFlush;

impl TlbFlush for RadixFlush {
    fn flush_page(&self, space: SpaceId, address: u64, size: PageSize, scope: Scope) {
        flush(scope, || invalidate(scope, Ric::Tlb, rb(address, IS_VA, size), rs(space)));
    }

    fn flush_range(&self, space: SpaceId, start: u64, end: u64, size: PageSize, scope: Scope) {
        let pages = (end - start).div_ceil(size.bytes());
        if pages > RANGE_CEILING_PAGES {
            return self.flush_space(space, scope);
        }
        flush(scope, || {
            let mut address = start & !(size.bytes() - 1);
            while address < end {
                invalidate(scope, Ric::Tlb, rb(address, IS_VA, size), rs(space));
                address += size.bytes();
            }
        });
    }

    fn flush_space(&self, space: SpaceId, scope: Scope) {
        flush(scope, || invalidate(scope, Ric::All, rb(0, IS_PID, PageSize::Base), rs(space)));
    }

    /// As Linux's radix__flush_tlb_collapsed_pmd with 64K pages: the
    /// page-walk cache of the PID, then each base page of the 2 MiB range.
    fn flush_collapsed_pmd(&self, space: SpaceId, address: u64, scope: Scope) {
        let start = address & !(PageSize::Huge2M.bytes() - 1);
        flush(scope, || {
            invalidate(scope, Ric::PageWalkCache, rb(0, IS_PID, PageSize::Base), rs(space));
            let mut page = start;
            while page < start + PageSize::Huge2M.bytes() {
                invalidate(scope, Ric::Tlb, rb(page, IS_VA, PageSize::Base), rs(space));
                page += PageSize::Base.bytes();
            }
        });
    }

    fn flush_page_walk_cache(&self, space: SpaceId, scope: Scope) {
        flush(scope, || invalidate(scope, Ric::PageWalkCache, rb(0, IS_PID, PageSize::Base), rs(space)));
    }
}

/// Describes a DSISR for reports.
pub fn describe_dsisr(value: u64) -> impl core::fmt::Display {
    struct Bits(u64);
    impl core::fmt::Display for Bits {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let names = [
                (dsisr::NO_TRANSLATION, "no translation"),
                (dsisr::PROTECTION, "protection"),
                (dsisr::BAD_CONFIG, "bad radix config"),
                (dsisr::ATOMIC_RC, "R/C update"),
                (dsisr::PROCESS_TABLE, "process-table fault"),
            ];
            for (bit, name) in names {
                if self.0 & bit != 0 {
                    write!(f, "{name}, ")?;
                }
            }
            write!(f, "{}", if self.0 & dsisr::STORE != 0 { "store" } else { "load" })
        }
    }
    Bits(value)
}
