//! The MMU the kernel runs with, chosen once at boot (`mmu=` and what the
//! platform granted) as one backend object: radix (radix.rs) or hash
//! (hash.rs), both translating from the same software tree (tree.rs).
//! Address spaces and their one id registry are in space.rs, fault
//! dispatch in fault.rs; this file picks the backend and holds what the
//! mm code asks of whichever it is (collapse's flush and IPI).

mod backend;
mod fault;
pub mod hash;
pub mod radix;
mod space;
mod tree;

use core::sync::atomic::Ordering;

use boot::BootInfo;
use kernel::cmdline::MmuMode;
use kernel::mm::mmu::{SpaceId, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{Entry, MapError, Prot};

pub use backend::{backend, Detached, MmuBackend, Mode};
pub use fault::handle_fault;
pub use space::{
    activate, active_space, deactivate, flush_scope, note_space_user, scrub_dead_spaces, waits_for_scrub, AddressSpace,
    Fault, FaultFn, FaultResolver, Ids, SPACE_IDS,
};
pub use tree::{deferred_kernel_tables, kernel_root, release_kernel_tables, with_kernel_tree, KernelFrames, Tree};

/// Turns on the MMU the firmware phase negotiated: the one place that
/// chooses between the backends. `Ok(false)`: real mode, nothing to turn on.
pub fn init(info: &BootInfo, mode: MmuMode) -> Result<bool, (&'static str, &'static str)> {
    let chosen: &'static dyn MmuBackend = match mode {
        MmuMode::Radix => {
            radix::init(info).map_err(|why| ("radix", why))?;
            &radix::RADIX_MMU
        }
        MmuMode::Hash => {
            hash::init(info).map_err(|why| ("hash", why))?;
            &hash::HASH_MMU
        }
        MmuMode::Off => return Ok(false),
    };
    backend::install(chosen);
    Ok(true)
}

pub fn mode() -> Mode {
    backend().mode()
}

pub fn translation_on() -> bool {
    mode() != Mode::Off
}

/// The flush interface of the backend in use, or `None` in real mode
/// (whose flushes do nothing): for callers that skip work without
/// translation.
pub fn flusher() -> Option<&'static dyn TlbFlush> {
    translation_on().then(|| backend() as &'static dyn TlbFlush)
}

/// Turns translation on for a secondary CPU, as the boot CPU has it.
pub fn enable_on_secondary() {
    backend().enable_on_secondary();
}

/// Changes the rights of the kernel mapping at `address` and makes the MMU
/// use them: radix flushes the old translation; hash updates its HPTE in
/// place where it can.
pub fn protect_kernel(address: u64, prot: Prot) -> Result<(), MapError> {
    with_kernel_tree(|tree| {
        let (old, size) = tree.protect(address, prot)?;
        let found = tree.lookup(address).ok_or(MapError::NotMapped)?;
        backend().reprotect(KERNEL_SPACE, address, size, found.slot, old, found.entry);
        Ok(())
    })
    .unwrap_or(Err(MapError::NotMapped))
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
    policy.enabled(backend().faults_walk_locklessly())
}

/// The flush of a collapsed PMD with the MMU in use: radix `tlbie` of the
/// range and the page-walk cache; hash removes the HPTEs the old PTEs
/// record (flush_hash_table_pmd_range).
///
/// Never inlined: it is one indirect call through the backend either way,
/// and the barrier check (tests/src/disasm.rs) finds collapse's flush as the
/// call to this function.
#[inline(never)]
pub fn flush_collapsed_pmd(space: SpaceId, address: u64, old_ptes: &[Entry]) {
    backend().flush_collapsed_pmd(space, address, old_ptes, flush_scope(space));
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
#[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
pub fn serialize_against_pte_lookup(space: SpaceId) {
    core::sync::atomic::fence(Ordering::SeqCst);
    // The targets as a set (MAX_CPUS / 8 bytes of stack, not a list of
    // indexes), built in as many steps as the mask has words and CPUs.
    let others = space::ipi_targets(space);
    // Waits however long a CPU keeps interrupts off (warning every few
    // seconds): collapse must never go on while a walker may hold the old
    // PMD. Only an offline CPU can fail the call, and it walks nothing.
    if let Err(error) = crate::smp::call_on_cpus(&others, nothing, 0, true) {
        kernel::warn!("collapse: serialize_against_pte_lookup: {error:?}");
    }
}
