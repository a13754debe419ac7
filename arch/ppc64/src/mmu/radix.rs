//! The radix MMU backend: process table, kernel linear map, address spaces
//! (PIDs), translation on, and the flush interface with `tlbie`.
//!
//! Order (as Linux's radix_init_pseries): the platform granted radix with
//! GTSE in the firmware phase; here the kernel builds its tree, has the
//! platform register the process table (which switches the partition to radix),
//! parks PIDR on a guard PID with no tree (so quadrant-0 accesses, NULL
//! included, fault), asks for relocation-on interrupts (AIL 3) and turns
//! MSR[IR,DR] on. The kernel already runs at 0xc000... addresses, which the
//! linear map (PID 0, quadrant 3) now translates to the same RAM.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use boot::processor::TlbieErrata;
use boot::BootInfo;
use kernel::mm::mmu::{Scope, SpaceId, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{Entry, PageSize, Slot, PGD};
use kernel::mm::tlbie::{Planner, Ric, Sequence};
use kernel::mm::{self, FRAME_SIZE};

use super::backend::{Detached, MmuBackend, Mode};
use super::tree::{build_kernel_tree, ptesync};
use crate::cpu;
use crate::platform::{machine, ProcessTable};
use crate::trap::{FaultAction, TrapFrame};

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

/// SPR 48: the PID register (quadrant-0 translations use its process-table entry).
const SPR_PIDR: u32 = 48;

static PROCESS_TABLE: AtomicU64 = AtomicU64::new(0);

/// Builds the kernel's tree and process table and turns translation on.
pub fn init(info: &BootInfo) -> Result<(), &'static str> {
    machine().check_mmu(info, true)?;
    // Before the first flush: POWER9 needs its tlbie errata fixed up.
    set_errata(crate::cpu::processor().tlbie_errata());
    let root = build_kernel_tree(info)?;
    let table = mm::alloc_frame().ok_or("no frame for the process table")?;
    // SAFETY: a frame just allocated, reached through the linear-map address.
    unsafe { core::ptr::write_bytes(mm::phys_to_virt(table.address()), 0, FRAME_SIZE as usize) };
    PROCESS_TABLE.store(table.address(), Ordering::Release);
    set_process_table_entry(KERNEL_SPACE, Some(root));

    machine().register_radix(ProcessTable {
        base: table.address(),
        size_field: (PROCESS_TABLE_SHIFT - 12) as u64,
        kernel_entry: prtb0(root),
    })?;
    set_pidr(GUARD_PID);
    RADIX_MMU.flush_space(KERNEL_SPACE, Scope::Global);
    RADIX_MMU.flush_space(GUARD_PID, Scope::Global);
    machine().relocate_interrupts()?;
    cpu::enable_translation();
    Ok(())
}

/// The process table's physical address (0 before radix init).
pub fn process_table() -> u64 {
    PROCESS_TABLE.load(Ordering::Acquire)
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
    let prtb0 = root.map_or(0, prtb0);
    let entry = process_table_entry(pid);
    entry[1].store(0, Ordering::Relaxed);
    entry[0].store(prtb0.to_be(), Ordering::Release);
    ptesync();
}

/// Dword 0 of a process-table entry for the tree at `root`.
fn prtb0(root: u64) -> u64 {
    PRTB0_RTS_52_BITS | root | PGD.index_bits as u64
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

// --- Flushes ----------------------------------------------------------------

/// The processor's `tlbie` errata (`Planner::errata`), set once at boot before any
/// flush: bit 0 store queue, bit 1 ERAT.
static ERRATA: AtomicU8 = AtomicU8::new(0);

fn planner() -> Planner {
    let bits = ERRATA.load(Ordering::Relaxed);
    Planner { errata: TlbieErrata { store_queue: bits & 1 != 0, erat: bits & 2 != 0 } }
}

/// Which POWER9 errata fix-ups radix flushes apply (see kernel::mm::tlbie).
pub fn set_errata(errata: TlbieErrata) {
    ERRATA.store(errata.store_queue as u8 | (errata.erat as u8) << 1, Ordering::Relaxed);
}

pub fn errata() -> TlbieErrata {
    planner().errata
}

/// One invalidation, broadcast (`tlbie`) or local (`tlbiel`), without the
/// surrounding barriers.
fn invalidate(scope: Scope, ric: Ric, rb: u64, rs: u64) {
    // SAFETY: TLB invalidations only drop cached translations; GTSE was
    // negotiated, so the guest may issue them.
    unsafe {
        match (scope, ric) {
            (Scope::Global, Ric::Tlb) => asm!("tlbie {0}, {1}, 0, 1, 1", in(reg) rb, in(reg) rs, options(nostack)),
            (Scope::Global, Ric::PageWalkCache) => {
                asm!("tlbie {0}, {1}, 1, 1, 1", in(reg) rb, in(reg) rs, options(nostack))
            }
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

/// Runs a planned sequence with the ordering the ISA asks for: `ptesync`
/// before (page-table stores done), the fix-ups' own `ptesync`s, then for
/// broadcasts `eieio; tlbsync; ptesync` (all CPUs done), for local ones
/// `ptesync`.
fn execute(scope: Scope, sequence: &Sequence) {
    ptesync();
    for invalidation in sequence {
        if invalidation.ptesync_before {
            ptesync();
        }
        invalidate(scope, invalidation.ric, invalidation.rb, invalidation.rs);
    }
    // SAFETY: barriers only.
    unsafe {
        match scope {
            Scope::Global => asm!("eieio", "tlbsync", "ptesync", options(nostack, preserves_flags)),
            Scope::Local => asm!("ptesync", options(nostack, preserves_flags)),
        }
    }
}

pub struct Radix;
pub static RADIX_MMU: Radix = Radix;

/// The sequences, kernel (quadrant 3) addresses flushed as all of PID 0 among
/// them, are chosen by kernel::mm::tlbie::Planner; this only executes them.
impl TlbFlush for Radix {
    fn flush_page(&self, space: SpaceId, address: u64, size: PageSize, _old: Entry, scope: Scope) {
        execute(scope, &planner().page(space, address, size, scope));
    }

    fn flush_range(&self, space: SpaceId, start: u64, size: PageSize, old: &[Entry], scope: Scope) {
        execute(scope, &planner().range(space, start, size, old.len() as u64, scope));
    }

    fn flush_space(&self, space: SpaceId, scope: Scope) {
        execute(scope, &planner().space(space, scope));
    }

    fn flush_collapsed_pmd(&self, space: SpaceId, address: u64, _old_ptes: &[Entry], scope: Scope) {
        execute(scope, &planner().collapsed_pmd(space, address, scope));
    }

    fn flush_page_walk_cache(&self, space: SpaceId, scope: Scope) {
        execute(scope, &planner().page_walk_cache(space, scope));
    }
}

impl MmuBackend for Radix {
    fn mode(&self) -> Mode {
        Mode::Radix
    }

    fn name(&self) -> &'static str {
        "radix"
    }

    fn enable_on_secondary(&self) {
        set_pidr(GUARD_PID);
        cpu::enable_translation();
    }

    /// Points PID `pid` at the tree rooted at `root`.
    fn attach_space(&self, pid: SpaceId, root: u64) {
        assert!(pid < PID_COUNT, "PID {pid} beyond the process table");
        set_process_table_entry(pid, Some(root));
        // A PID reused from an earlier space may still have translations.
        self.flush_space(pid, Scope::Global);
    }

    /// Empties PID `pid`'s entry and drops its translations.
    fn detach_space(&self, pid: SpaceId) -> Detached {
        set_process_table_entry(pid, None);
        self.flush_space(pid, Scope::Global);
        Detached::Clean
    }

    fn activate(&self, pid: SpaceId) {
        set_pidr(pid);
    }

    fn deactivate(&self) {
        set_pidr(GUARD_PID);
    }

    fn active_space(&self) -> Option<SpaceId> {
        Some(pidr()).filter(|&pid| pid != GUARD_PID)
    }

    /// The MMU walks the tree itself: nothing for the backend to fill.
    fn handle_fault(&self, _frame: &TrapFrame) -> FaultAction {
        FaultAction::Unhandled
    }

    /// The old translation goes; the MMU walks the new rights in.
    fn reprotect(&self, space: SpaceId, address: u64, size: PageSize, _slot: &Slot, old: Entry, _new: Entry) {
        self.flush_page(space, address, size, old, Scope::Global);
    }

    /// Only GUP-fast walks radix tables without locks.
    fn faults_walk_locklessly(&self) -> bool {
        false
    }

    fn tlbie_fixups(&self) -> &'static str {
        errata().name()
    }
}
