//! The MMU the kernel runs with, chosen at boot (`mmu=`), behind one
//! interface: the kernel's page-table tree and linear map, the flush
//! interface of the active backend, address spaces, and fault dispatch.
//! Radix (radix.rs) and hash (hash.rs) are the two backends; both read the
//! same software tree.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use boot::BootInfo;
use kernel::cpuset::CpuSet;
use kernel::mm::mmu::{Scope, SpaceId, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{self, Entry, FrameSource, MapError, PageSize, PageTable, Prot, TableAllocator};
use kernel::mm::{self, Frame, LINEAR_MAP_BASE};
use kernel::rcu::Deferred;
use spin::Mutex;

use crate::exceptions::{self, TrapFrame};
use crate::{hash, radix};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Translation off (real mode).
    Off,
    Radix,
    Hash,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Radix => "radix",
            Mode::Hash => "hash",
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Off as u8);

pub fn mode() -> Mode {
    match MODE.load(Ordering::Acquire) {
        1 => Mode::Radix,
        2 => Mode::Hash,
        _ => Mode::Off,
    }
}

/// Records that `mode`'s translation is on (called by the backend).
pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Release);
}

pub fn translation_on() -> bool {
    mode() != Mode::Off
}

/// The flush interface of the active backend; `None` in real mode, where
/// nothing is translated and so nothing is cached.
pub fn flusher() -> Option<&'static dyn TlbFlush> {
    match mode() {
        Mode::Radix => Some(&radix::RADIX_FLUSH),
        Mode::Hash => Some(&hash::HASH_FLUSH),
        Mode::Off => None,
    }
}

/// Turns translation on for a secondary CPU, as the boot CPU has it (the
/// partition-wide settings, process table and AIL, are already made).
pub fn enable_on_secondary() {
    match mode() {
        Mode::Radix => {
            radix::set_pidr(radix::GUARD_PID);
            crate::cpu::enable_translation();
        }
        Mode::Hash => {
            hash::init_secondary();
            crate::cpu::enable_translation();
        }
        Mode::Off => {}
    }
}

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

    /// `ptesync` orders page-table stores before the accesses the MMU makes
    /// with them (Power ISA Book III, 6.10.2); the hash fault path reads the
    /// tree too, and is ordered the same way.
    fn sync(&self) {
        ptesync();
    }
}

pub type Tree = PageTable<TableAllocator<KernelFrames>>;

static KERNEL_TREE: Mutex<Option<Tree>> = Mutex::new(None);
/// Kernel tables unhooked from the tree, freed after a grace period: a
/// lockless walker (the hash fault path, GUP-fast) may still be in them.
static KERNEL_DEFERRED: Mutex<Deferred<(u64, usize)>> = Mutex::new(Deferred::new());

/// Frees `tables` (unhooked by an unmap whose flush is done) once no
/// lockless walker can be in them, and whatever earlier releases are due.
pub fn release_kernel_tables(tables: &[(u64, usize)]) {
    let mut deferred = KERNEL_DEFERRED.lock();
    for &table in tables {
        deferred.push(table);
    }
    deferred.drain_due(|table| {
        with_kernel_tree(|tree| tree.release(&[table]));
    });
}

/// Kernel tables still waiting for their grace period.
pub fn deferred_kernel_tables() -> usize {
    KERNEL_DEFERRED.lock().len()
}
/// The kernel tree's root, for lockless walkers (the hash fault path).
static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Builds the kernel's tree with the linear map: all RAM at LINEAR_MAP_BASE
/// with the largest leaves that fit (1 GiB, 2 MiB, 64 KiB). Returns its root.
pub fn build_kernel_tree(info: &BootInfo) -> Result<u64, &'static str> {
    let mut tree = PageTable::new(TableAllocator::new(KernelFrames)).map_err(|_| "no memory for the kernel PGD")?;
    for range in &info.memory {
        let mut physical = range.start;
        while physical < range.end() {
            let size = [PageSize::Huge1G, PageSize::Huge2M, PageSize::Base]
                .into_iter()
                .find(|size| physical % size.bytes() == 0 && physical + size.bytes() <= range.end())
                .ok_or("RAM range not 64 KiB-aligned")?;
            tree.map(LINEAR_MAP_BASE | physical, physical, size, Prot::READ | Prot::WRITE | Prot::EXECUTE)
                .map_err(|_| "cannot build the linear map")?;
            physical += size.bytes();
        }
    }
    let root = tree.root();
    KERNEL_ROOT.store(root, Ordering::Release);
    *KERNEL_TREE.lock() = Some(tree);
    Ok(root)
}

pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(Ordering::Acquire)
}

/// Changes the rights of the kernel mapping at `address` and makes the MMU
/// use them: radix flushes the old translation; hash updates its HPTE in
/// place (H_PROTECT) where it can.
pub fn protect_kernel(address: u64, prot: Prot) -> Result<(), MapError> {
    let mut guard = KERNEL_TREE.lock();
    let tree = guard.as_mut().ok_or(MapError::NotMapped)?;
    let (old, size) = tree.protect(address, prot)?;
    let found = pagetable::walk(tree.root(), address, mm::phys_to_virt).ok_or(MapError::NotMapped)?;
    match mode() {
        Mode::Hash => hash::reprotect(KERNEL_SPACE, address, size, found.slot, old, found.entry),
        Mode::Radix => radix::RADIX_FLUSH.flush_page(KERNEL_SPACE, address, size, old, Scope::Global),
        Mode::Off => {}
    }
    Ok(())
}

/// What `pmdp_collapse_flush` took out of the tree.
pub struct CollapsedPmd {
    /// The PTE table the PMD pointed at: restored if collapse gives up,
    /// freed after a grace period if it goes ahead.
    pub table: u64,
    /// Its entries when the PMD was cleared.
    pub ptes: [Entry; 32],
}

/// Whether collapse under `policy` sends the IPI with the MMU in use.
pub fn collapse_ipi_enabled(policy: kernel::cmdline::CollapseIpi) -> bool {
    policy.enabled(mode() == Mode::Hash)
}

/// The flush of a collapsed PMD with the MMU in use: radix `tlbie` of the
/// range and the page-walk cache; hash removes the HPTEs the old PTEs
/// record (flush_hash_table_pmd_range).
pub fn flush_collapsed_pmd(space: SpaceId, address: u64, old_ptes: &[Entry]) {
    match mode() {
        Mode::Radix => radix::RADIX_FLUSH.flush_collapsed_pmd(space, address, old_ptes, flush_scope(space)),
        Mode::Hash => hash::HASH_FLUSH.flush_hash_table_pmd_range(space, address, old_ptes),
        Mode::Off => {}
    }
}

/// The MMU side of collapse on one tree of address space `space`.
struct TreeFlush<'a> {
    space: SpaceId,
    tree: &'a mut Tree,
}

impl kernel::mm::collapse::CollapseFlush for TreeFlush<'_> {
    fn clear_pmd_table(&mut self, address: u64) -> Result<u64, MapError> {
        self.tree.clear_pmd_table(address).map(|(table, _)| table)
    }

    fn read_pte_table(&mut self, table: u64) -> [Entry; 32] {
        self.tree.read_pte_table(table)
    }

    fn serialize_against_pte_lookup(&mut self) {
        serialize_against_pte_lookup(self.space);
    }

    fn flush_collapsed_pmd(&mut self, address: u64, old_ptes: &[Entry]) {
        flush_collapsed_pmd(self.space, address, old_ptes);
    }
}

/// `kernel::mm::collapse::pmdp_collapse_flush` on `tree` (address space
/// `space`) with this MMU's flush and the IPI as `policy` says.
pub fn pmdp_collapse_flush(
    space: SpaceId,
    tree: &mut Tree,
    address: u64,
    policy: kernel::cmdline::CollapseIpi,
) -> Result<CollapsedPmd, MapError> {
    kernel::mm::collapse::pmdp_collapse_flush(&mut TreeFlush { space, tree }, address, collapse_ipi_enabled(policy))
        .map(|(table, ptes)| CollapsedPmd { table, ptes })
}

fn nothing(_: u64) {}

/// IPIs every other CPU that uses address space `space` (has had it active
/// or walked it locklessly: `note_space_user`) and waits for each to run
/// it: a CPU inside a lockless walk (interrupts off) answers only after the
/// walk. As Linux with the mm's cpumask; the kernel's own space is used by
/// every CPU. The caller has just cleared a PMD: the full barrier before
/// reading the mask pairs with the one a walker makes after setting its bit,
/// so either the walker's CPU is seen here or the walker sees the cleared PMD.
pub fn serialize_against_pte_lookup(space: SpaceId) {
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = crate::percpu::index() as usize;
    let online = crate::percpu::online();
    let users = SPACE_CPUS.get(space as usize).filter(|_| space != KERNEL_SPACE);
    // The targets as a set (MAX_CPUS / 8 bytes of stack, not a list of
    // indexes), built in as many steps as the mask has words and CPUs.
    let others: CpuSet = match users {
        Some(users) => {
            users.iter(Ordering::Acquire).filter(|&i| i != me && online.contains(i, Ordering::Acquire)).collect()
        }
        None => online.iter(Ordering::Acquire).filter(|&i| i != me).collect(),
    };
    // Waits however long a CPU keeps interrupts off (warning every few
    // seconds): collapse must never go on while a walker may hold the old
    // PMD. Only an offline CPU can fail the call, and it walks nothing.
    if let Err(error) = crate::smp::call_on_cpus(&others, nothing, 0, true) {
        kernel::warn!("collapse: serialize_against_pte_lookup: {error:?}");
    }
}

/// Runs `f` on the kernel's tree: for mappings outside the linear map.
pub fn with_kernel_tree<R>(f: impl FnOnce(&mut Tree) -> R) -> Option<R> {
    KERNEL_TREE.lock().as_mut().map(f)
}

pub fn ptesync() {
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("ptesync", options(nostack, preserves_flags)) };
}

// --- Address spaces ---------------------------------------------------------

/// Address-space ids: radix PIDs (process-table indexes) or hash contexts.
/// 0 is the kernel's and 1 the radix guard PID; neither is handed out.
pub const SPACE_IDS: u32 = 4096;
static SPACE_ID_BITS: Mutex<[u64; (SPACE_IDS / 64) as usize]> = Mutex::new({
    let mut bits = [0u64; (SPACE_IDS / 64) as usize];
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

/// A translation fault on an address space's address, as its handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub space: SpaceId,
    pub address: u64,
    pub store: bool,
    pub instruction: bool,
    /// No translation (as opposed to a protection violation).
    pub missing: bool,
}

pub type FaultHandler = fn(&Fault) -> FaultAction;

/// Fault handlers by space id, as function addresses (0 = none): one slot
/// for every id the allocator hands out (32 KiB). Read from the interrupt
/// path, so no lock.
static FAULT_HANDLERS: [AtomicUsize; SPACE_IDS as usize] = [const { AtomicUsize::new(0) }; SPACE_IDS as usize];

/// An address space: its own tree, translating the low (quadrant-0)
/// addresses while it is active on a CPU.
pub struct AddressSpace {
    id: SpaceId,
    /// Always `Some` until drop takes it to destroy it.
    tree: Option<Tree>,
    /// Unhooked tables waiting for a grace period.
    deferred: Deferred<(u64, usize)>,
}

impl AddressSpace {
    pub fn new() -> Result<AddressSpace, MapError> {
        let id = {
            let mut bits = SPACE_ID_BITS.lock();
            let id =
                (0..SPACE_IDS).find(|&i| bits[(i / 64) as usize] & (1 << (i % 64)) == 0).ok_or(MapError::NoMemory)?;
            bits[(id / 64) as usize] |= 1 << (id % 64);
            id
        };
        SPACE_CPUS[id as usize].clear(Ordering::Release);
        let tree = match PageTable::new(TableAllocator::new(KernelFrames)) {
            Ok(tree) => tree,
            Err(error) => {
                release_id(id);
                return Err(error);
            }
        };
        match mode() {
            Mode::Radix => radix::attach_space(id, tree.root()),
            Mode::Hash => hash::attach_space(id, tree.root()),
            Mode::Off => {}
        }
        Ok(AddressSpace { id, tree: Some(tree), deferred: Deferred::new() })
    }

    pub fn id(&self) -> SpaceId {
        self.id
    }

    pub fn tree(&mut self) -> &mut Tree {
        self.tree.as_mut().expect("tree lives until drop")
    }

    /// Makes this space translate low addresses on this CPU.
    pub fn activate(&self) {
        activate(self.id);
    }

    /// Calls `handler` for faults in this space that the MMU backend and the
    /// fix-ups do not cover.
    pub fn set_fault_handler(&self, handler: Option<FaultHandler>) {
        let slot = FAULT_HANDLERS.get(self.id as usize).expect("every space id has a fault-handler slot");
        slot.store(handler.map_or(0, |h| h as usize), Ordering::Release);
    }

    /// Frees `table` (of `bytes`), already unhooked and flushed, after a
    /// grace period: a lockless walker may still be in it.
    pub fn defer_table(&mut self, table: u64, bytes: usize) {
        self.deferred.push((table, bytes));
        self.reclaim();
    }

    /// Frees the unhooked tables whose grace period is over.
    pub fn reclaim(&mut self) {
        let tree = self.tree.as_mut().expect("tree lives until drop");
        self.deferred.drain_due(|table| tree.release(&[table]));
    }

    /// Unmaps one page and flushes it; emptied tables are freed after the
    /// flush and a grace period.
    pub fn unmap(&mut self, address: u64) -> Result<Entry, MapError> {
        let id = self.id;
        let tree = self.tree.as_mut().expect("tree lives until drop");
        let gone = tree.unmap(address)?;
        if let Some(flush) = flusher() {
            let scope = flush_scope(id);
            flush.flush_page(id, address, gone.size, gone.entry, scope);
            if !gone.tables.is_empty() {
                flush.flush_page_walk_cache(id, scope);
            }
        }
        for &table in &gone.tables {
            self.deferred.push(table);
        }
        self.deferred.drain_due(|table| tree.release(&[table]));
        Ok(gone.entry)
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if active_space() == Some(self.id) {
            deactivate();
        }
        if let Some(slot) = FAULT_HANDLERS.get(self.id as usize) {
            slot.store(0, Ordering::Release);
        }
        let mut tree = self.tree.take().expect("tree lives until drop");
        self.deferred.drain_all(|table| tree.release(&[table]));
        match mode() {
            Mode::Radix => radix::detach_space(self.id),
            Mode::Hash => hash::detach_space(self.id),
            Mode::Off => {}
        }
        drop(tree.destroy());
        release_id(self.id);
    }
}

fn release_id(id: SpaceId) {
    SPACE_ID_BITS.lock()[(id / 64) as usize] &= !(1 << (id % 64));
}

/// The CPUs that have had each address space active (Linux's mm_cpumask):
/// only they can hold its translations. Bits stay set until the space is
/// freed, so a CPU that switched away is still flushed. MAX_CPUS / 8 bytes
/// per space (128 KiB at 256 CPUs).
static SPACE_CPUS: [CpuSet; SPACE_IDS as usize] = [const { CpuSet::new() }; SPACE_IDS as usize];

/// How far a flush of address space `id` must reach: this CPU alone if no
/// other CPU has used the space (`tlbiel`), else every CPU (`tlbie`). The
/// kernel's space is everyone's. Called after the page-table change, with a
/// full barrier before the read so that a CPU activating the space
/// concurrently either is seen here or sees the new entry (activate
/// publishes its bit before it can translate).
pub fn flush_scope(id: SpaceId) -> Scope {
    if id == KERNEL_SPACE {
        return Scope::Global;
    }
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = crate::percpu::index() as usize;
    match SPACE_CPUS.get(id as usize) {
        Some(cpus) if !cpus.any_other_than(me, Ordering::Acquire) => Scope::Local,
        _ => Scope::Global,
    }
}

/// Records that this CPU uses address space `id` (before it activates it or
/// walks it locklessly), so that flushes reach it and collapse's IPI waits
/// for it. The full barrier orders the bit before the walker's page-table
/// reads (see serialize_against_pte_lookup).
///
/// GUP-fast calls this on every walk, so a CPU already marked does
/// nothing: bits stay set until the space is freed, and the barrier made
/// when the bit was set orders it against any later collapse (either that
/// collapse sees the bit, or this CPU saw its cleared PMD then, and later
/// reads cannot see an older PMD).
pub fn note_space_user(id: SpaceId) {
    if let Some(cpus) = SPACE_CPUS.get(id as usize) {
        let me = crate::percpu::index() as usize;
        // The accesses the argument above rests on: a relaxed load of the
        // word holding this CPU's bit; if clear, a SeqCst fetch_or on that
        // word, then the full barrier.
        if !cpus.contains(me, Ordering::Relaxed) {
            cpus.insert(me, Ordering::SeqCst);
            core::sync::atomic::fence(Ordering::SeqCst);
        }
    }
}

pub fn activate(id: SpaceId) {
    note_space_user(id);
    match mode() {
        Mode::Radix => radix::set_pidr(id),
        Mode::Hash => hash::activate(id),
        Mode::Off => {}
    }
}

/// Leaves no address space active: low addresses (NULL included) fault.
pub fn deactivate() {
    match mode() {
        Mode::Radix => radix::set_pidr(radix::GUARD_PID),
        Mode::Hash => hash::deactivate(),
        Mode::Off => {}
    }
}

pub fn active_space() -> Option<SpaceId> {
    match mode() {
        Mode::Radix => Some(radix::pidr()).filter(|&pid| pid != radix::GUARD_PID),
        Mode::Hash => hash::active(),
        Mode::Off => None,
    }
}

/// DSISR bits (Power ISA Book III, 7.5.3; the same for radix and hash).
pub mod dsisr {
    /// No translation: no radix PTE, or no HPTE.
    pub const NO_TRANSLATION: u64 = 0x4000_0000;
    pub const PROTECTION: u64 = 0x0800_0000;
    pub const STORE: u64 = 0x0200_0000;
    pub const BAD_CONFIG: u64 = 0x0008_0000;
    pub const ATOMIC_RC: u64 = 0x0004_0000;
    pub const PROCESS_TABLE: u64 = 0x0002_0000;
}

/// SRR1 bits of an instruction storage interrupt (Linux SRR1_ISI_*).
pub mod isi_srr1 {
    pub const NO_TRANSLATION: u64 = 0x4000_0000;
    pub const NO_EXECUTE: u64 = 0x1000_0000;
}

/// Storage and segment interrupts: first the backend (the hash MMU fills
/// its table and SLB from the tree here), then the active address space's
/// handler. Returns `Retry` when the access should be re-executed.
pub fn handle_fault(frame: &TrapFrame) -> FaultAction {
    use exceptions::vector;
    if !translation_on() {
        return FaultAction::Unhandled;
    }
    if mode() == Mode::Hash && hash::handle_fault(frame) == FaultAction::Retry {
        return FaultAction::Retry;
    }
    let (address, store, instruction, missing) = match frame.vector {
        vector::DATA_STORAGE => {
            (frame.dar, frame.dsisr & dsisr::STORE != 0, false, frame.dsisr & dsisr::NO_TRANSLATION != 0)
        }
        vector::INSTRUCTION_STORAGE => (frame.srr0, false, true, frame.srr1 & isi_srr1::NO_TRANSLATION != 0),
        _ => return FaultAction::Unhandled,
    };
    if address >= LINEAR_MAP_BASE {
        return FaultAction::Unhandled; // kernel addresses belong to no address space
    }
    let Some(space) = active_space() else { return FaultAction::Unhandled };
    let Some(handler) = FAULT_HANDLERS.get(space as usize).map(|slot| slot.load(Ordering::Acquire)).filter(|&h| h != 0)
    else {
        return FaultAction::Unhandled;
    };
    // SAFETY: slots only ever hold 0 or a FaultHandler stored by set_fault_handler.
    let handler: FaultHandler = unsafe { core::mem::transmute::<usize, FaultHandler>(handler) };
    // As Linux's do_page_fault: if the faulting code had interrupts on, the
    // handler runs with them on (it may wait for locks whose holder waits
    // for this CPU's answer to an IPI). The frame is saved, so a nested
    // interrupt is safe; they go off again before the return path.
    let reenable = frame.srr1 & crate::cpu::msr::EE != 0;
    if reenable {
        crate::cpu::enable_interrupts();
    }
    let action = handler(&Fault { space, address, store, instruction, missing });
    if reenable {
        crate::percpu::disable_interrupts();
    }
    action
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
