//! Address spaces and the one registry of their ids: radix PIDs
//! (process-table indexes) or hash contexts. Each id has one entry, read
//! locklessly from the interrupt path and from lockless walkers: the CPUs
//! that use the space (`kernel::mm::cpumask`), the root of its tree (the
//! hash fault path walks it) and what resolves its faults.

use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::mm::cpumask::SpaceCpus;
use kernel::mm::mmu::{Scope, SpaceId, KERNEL_SPACE};
use kernel::mm::pagetable::{Entry, MapError, PageTable, TableAllocator};
use kernel::rcu::Deferred;
use spin::{Mutex, RwLock};

use super::backend::{backend, Detached};
use super::tree::{KernelFrames, Tree};
use crate::percpu;
use crate::trap::FaultAction;

/// Ids 0 (the kernel's) and 1 (radix's guard PID, which translates nothing)
/// are never handed out.
pub const SPACE_IDS: u32 = 4096;
const RESERVED_IDS: u32 = 2;

/// A translation fault on an address space's address, as its resolver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub space: SpaceId,
    pub address: u64,
    pub store: bool,
    pub instruction: bool,
    /// No translation (as opposed to a protection violation).
    pub missing: bool,
}

/// What resolves the faults of an address space that the MMU backend and
/// the fix-ups do not cover (an `Mm`'s handle_mm_fault).
pub trait FaultResolver: Send + Sync {
    fn resolve(&self, fault: &Fault) -> FaultAction;
}

/// A plain function as a resolver.
pub struct FaultFn(pub fn(&Fault) -> FaultAction);

impl FaultResolver for FaultFn {
    fn resolve(&self, fault: &Fault) -> FaultAction {
        (self.0)(fault)
    }
}

/// One id's entry.
struct SpaceEntry {
    cpus: SpaceCpus,
    /// The root of the space's tree while it lives (0 otherwise).
    root: AtomicU64,
    /// Held weakly: the resolver usually owns the space.
    resolver: RwLock<Option<Weak<dyn FaultResolver>>>,
}

impl SpaceEntry {
    const fn new() -> SpaceEntry {
        SpaceEntry { cpus: SpaceCpus::new(), root: AtomicU64::new(0), resolver: RwLock::new(None) }
    }
}

static ENTRIES: [SpaceEntry; SPACE_IDS as usize] = [const { SpaceEntry::new() }; SPACE_IDS as usize];

const WORDS: usize = (SPACE_IDS / 64) as usize;

/// Which ids are handed out, and which died with translations the backend
/// left for its `scrub` (hash's unrecorded HPTEs): those are not handed
/// out again until it ran, as an ASID allocator waits for its generation's
/// flush.
pub struct Ids {
    used: [u64; WORDS],
    needs_scrub: [u64; WORDS],
}

impl Ids {
    pub const fn new() -> Ids {
        Ids { used: [0; WORDS], needs_scrub: [0; WORDS] }
    }

    fn has(bits: &[u64; WORDS], id: SpaceId) -> bool {
        id < SPACE_IDS && bits[(id / 64) as usize] & (1 << (id % 64)) != 0
    }

    fn free(&self) -> Option<SpaceId> {
        (RESERVED_IDS..SPACE_IDS).find(|&id| !Ids::has(&self.used, id) && !Ids::has(&self.needs_scrub, id))
    }

    /// The lowest free id; when none is left but some wait for a scrub,
    /// `scrub` runs first, once for all of them (told which they are).
    pub fn allocate(&mut self, scrub: impl FnOnce(&dyn Fn(SpaceId) -> bool)) -> Option<SpaceId> {
        let id = match self.free() {
            Some(id) => id,
            None => {
                self.scrub(scrub);
                self.free()?
            }
        };
        self.used[(id / 64) as usize] |= 1 << (id % 64);
        Some(id)
    }

    pub fn release(&mut self, id: SpaceId, detached: Detached) {
        self.used[(id / 64) as usize] &= !(1 << (id % 64));
        if detached == Detached::NeedsScrub {
            self.needs_scrub[(id / 64) as usize] |= 1 << (id % 64);
        }
    }

    pub fn waits_for_scrub(&self, id: SpaceId) -> bool {
        Ids::has(&self.needs_scrub, id)
    }

    fn scrub(&mut self, scrub: impl FnOnce(&dyn Fn(SpaceId) -> bool)) {
        if self.needs_scrub.iter().any(|&word| word != 0) {
            let waiting = self.needs_scrub;
            scrub(&|id| Ids::has(&waiting, id));
            self.needs_scrub = [0; WORDS];
        }
    }
}

impl Default for Ids {
    fn default() -> Ids {
        Ids::new()
    }
}

/// The registry's ids. An allocation that has to scrub holds the lock
/// meanwhile: another allocation waits for it.
static IDS: Mutex<Ids> = Mutex::new(Ids::new());

fn entry(id: SpaceId) -> &'static SpaceEntry {
    ENTRIES.get(id as usize).expect("space ids come from the registry")
}

fn allocate_id() -> Option<SpaceId> {
    IDS.lock().allocate(|dead| backend().scrub(dead))
}

fn release_id(id: SpaceId, detached: Detached) {
    IDS.lock().release(id, detached);
}

/// Whether dead space `id` waits for a scrub before it is handed out again.
pub fn waits_for_scrub(id: SpaceId) -> bool {
    IDS.lock().waits_for_scrub(id)
}

/// Runs the scrub now for every dead id waiting for one (allocation runs
/// it when the ids run out).
pub fn scrub_dead_spaces() {
    IDS.lock().scrub(|dead| backend().scrub(dead));
}

/// The root of space `id`'s tree, for lockless walkers (0: no such space).
pub fn root_of(id: SpaceId) -> u64 {
    ENTRIES.get(id as usize).map_or(0, |entry| entry.root.load(Ordering::Acquire))
}

/// The resolver of space `id`'s faults, if it has a live one.
pub fn resolver_of(id: SpaceId) -> Option<Arc<dyn FaultResolver>> {
    ENTRIES.get(id as usize)?.resolver.read().as_ref()?.upgrade()
}

/// How far a flush of address space `id` must reach: this CPU alone if no
/// other CPU has used the space (`tlbiel`), else every CPU (`tlbie`). The
/// kernel's space is everyone's. Called after the page-table change.
pub fn flush_scope(id: SpaceId) -> Scope {
    if id == KERNEL_SPACE {
        return Scope::Global;
    }
    match ENTRIES.get(id as usize) {
        Some(entry) => entry.cpus.flush_scope(percpu::index() as usize),
        None => Scope::Global,
    }
}

/// Records that this CPU uses address space `id` (before it activates it or
/// walks it locklessly), so that flushes reach it and collapse's IPI waits
/// for it.
pub fn note_space_user(id: SpaceId) {
    if let Some(entry) = ENTRIES.get(id as usize) {
        entry.cpus.note_user(percpu::index() as usize);
    }
}

/// The CPUs but this one that collapse's IPI must reach for space `id`:
/// its users, or every online CPU for the kernel's space.
pub fn ipi_targets(id: SpaceId) -> kernel::cpuset::CpuSet {
    let me = percpu::index() as usize;
    let online = percpu::online();
    match ENTRIES.get(id as usize).filter(|_| id != KERNEL_SPACE) {
        Some(entry) => entry.cpus.others(me, online),
        None => online.iter(Ordering::Acquire).filter(|&i| i != me).collect(),
    }
}

/// Makes space `id` translate low addresses on this CPU.
pub fn activate(id: SpaceId) {
    note_space_user(id);
    backend().activate(id);
}

/// Leaves no address space active: low addresses (NULL included) fault.
pub fn deactivate() {
    backend().deactivate();
}

pub fn active_space() -> Option<SpaceId> {
    backend().active_space()
}

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
        let id = allocate_id().ok_or(MapError::NoMemory)?;
        let entry = entry(id);
        entry.cpus.reset();
        let tree = match PageTable::new(TableAllocator::new(KernelFrames)) {
            Ok(tree) => tree,
            Err(error) => {
                release_id(id, Detached::Clean);
                return Err(error);
            }
        };
        entry.root.store(tree.root(), Ordering::Release);
        backend().attach_space(id, tree.root());
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

    /// Has `resolver` resolve the faults in this space that the MMU backend
    /// and the fix-ups do not cover (held weakly: the caller keeps it alive).
    pub fn set_fault_resolver(&self, resolver: Option<Weak<dyn FaultResolver>>) {
        *entry(self.id).resolver.write() = resolver;
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
        let flush = backend();
        let scope = flush_scope(id);
        flush.flush_page(id, address, gone.size, gone.entry, scope);
        if !gone.tables.is_empty() {
            flush.flush_page_walk_cache(id, scope);
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
        let entry = entry(self.id);
        *entry.resolver.write() = None;
        let mut tree = self.tree.take().expect("tree lives until drop");
        self.deferred.drain_all(|table| tree.release(&[table]));
        let detached = backend().detach_space(self.id);
        entry.root.store(0, Ordering::Release);
        drop(tree.destroy());
        release_id(self.id, detached);
    }
}
