//! The MMU backend: one object, chosen once at boot (`mmu=` and what the
//! platform granted), for everything radix and hash do differently. The
//! rest of the kernel calls it and never asks which one it is; real mode
//! (`mmu=off`) is a backend too, whose flushes have nothing to drop.

use kernel::mm::mmu::{Scope, SpaceId, TlbFlush};
use kernel::mm::pagetable::{Entry, PageSize, Slot, Walked};

use crate::trap::{FaultAction, TrapFrame};

/// Which MMU translates, for reports and for tests that only make sense
/// with one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Translation off (real mode).
    Off,
    Radix,
    Hash,
}

/// What `detach_space` left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detached {
    /// Nothing: the id may be handed out again at once.
    Clean,
    /// Translations that no page-table entry records may remain (hash: an
    /// HPTE that a fault inserted after collapse's flush, which only the
    /// race lab's unprotected configurations leave, or one a raw address
    /// space dropped without unmapping). Nothing can use them (no CPU has
    /// the id in its MMU state any more), but a new space with the same id
    /// could: the id waits for `scrub`.
    NeedsScrub,
}

/// What radix and hash do differently. The flushes (`TlbFlush`) are the
/// invalidations the mm code asks for after changing the tree.
pub trait MmuBackend: TlbFlush {
    fn mode(&self) -> Mode;
    fn name(&self) -> &'static str;
    /// Turns translation on for a secondary CPU as the boot CPU has it
    /// (the partition-wide settings are made).
    fn enable_on_secondary(&self);
    /// Address space `id`, rooted at `root`, is born: the MMU may
    /// translate through it from now.
    fn attach_space(&self, id: SpaceId, root: u64);
    /// Address space `id` dies (its pages unmapped and flushed, no CPU
    /// using it): no translation of it may be used again, now or after the
    /// id's next `scrub` (what the result says).
    fn detach_space(&self, id: SpaceId) -> Detached;
    /// Removes every translation of the dead ids for which `dead` holds,
    /// all at once (ids that `detach_space` left `NeedsScrub`).
    fn scrub(&self, _dead: &dyn Fn(SpaceId) -> bool) {}
    /// Makes space `id` translate low (quadrant-0) addresses on this CPU.
    fn activate(&self, id: SpaceId);
    /// Leaves no space active on this CPU: low addresses (NULL included) fault.
    fn deactivate(&self);
    /// The space translating low addresses on this CPU.
    fn active_space(&self) -> Option<SpaceId>;
    /// The backend's own share of a storage or segment interrupt (hash
    /// fills its SLB and HPT from the tree here); `Unhandled` leaves the
    /// fault to the address space's handler.
    fn handle_fault(&self, frame: &TrapFrame) -> FaultAction;
    /// After the tree changed the rights of the leaf in `slot` at `address`
    /// from `old` to `new`: makes the MMU use the new rights.
    fn reprotect(&self, space: SpaceId, address: u64, size: PageSize, slot: &Slot, old: Entry, new: Entry);
    /// Whether the MMU's own fault path walks the tree without locks (hash
    /// does): then a THP collapse must wait for it with the IPI however
    /// GUP-fast is protected.
    fn faults_walk_locklessly(&self) -> bool;
    /// After a fault at `address` in `space` set `leaf` (update_mmu_cache,
    /// under the page-table lock): load its translation now if this MMU
    /// has a cache software fills (hash: the HPTE, Linux's hash_preload);
    /// radix walks the tree itself.
    fn preload(&self, _space: SpaceId, _address: u64, _leaf: Walked<'_>) {}

    /// The processor errata fix-ups the flushes apply, for the banner.
    fn tlbie_fixups(&self) -> &'static str;
}

/// Real mode: nothing is translated, so nothing is cached or flushed.
pub struct RealMode;
pub static REAL_MODE: RealMode = RealMode;

impl TlbFlush for RealMode {
    fn flush_page(&self, _: SpaceId, _: u64, _: PageSize, _: Entry, _: Scope) {}
    fn flush_range(&self, _: SpaceId, _: u64, _: PageSize, _: &[Entry], _: Scope) {}
    fn flush_space(&self, _: SpaceId, _: Scope) {}
    fn flush_collapsed_pmd(&self, _: SpaceId, _: u64, _: &[Entry], _: Scope) {}
    fn flush_page_walk_cache(&self, _: SpaceId, _: Scope) {}
}

impl MmuBackend for RealMode {
    fn mode(&self) -> Mode {
        Mode::Off
    }
    fn name(&self) -> &'static str {
        "off"
    }
    fn enable_on_secondary(&self) {}
    fn attach_space(&self, _: SpaceId, _: u64) {}
    fn detach_space(&self, _: SpaceId) -> Detached {
        Detached::Clean
    }
    fn activate(&self, _: SpaceId) {}
    fn deactivate(&self) {}
    fn active_space(&self) -> Option<SpaceId> {
        None
    }
    fn handle_fault(&self, _: &TrapFrame) -> FaultAction {
        FaultAction::Unhandled
    }
    fn reprotect(&self, _: SpaceId, _: u64, _: PageSize, _: &Slot, _: Entry, _: Entry) {}
    fn faults_walk_locklessly(&self) -> bool {
        false
    }
    fn tlbie_fixups(&self) -> &'static str {
        "none"
    }
}

static BACKEND: kernel::sync::BootOnce<&'static dyn MmuBackend> = kernel::sync::BootOnce::new();

/// Records the backend whose translation is now on (once, at boot, on the
/// boot CPU before it starts the others).
pub fn install(backend: &'static dyn MmuBackend) {
    // SAFETY: called once by mmu::init, on the boot CPU before
    // start_secondaries; every other CPU starts after it.
    unsafe { BACKEND.set(backend) };
}

/// The backend in use; real mode until one is installed.
#[inline]
pub fn backend() -> &'static dyn MmuBackend {
    match BACKEND.get() {
        Some(backend) => *backend,
        None => &REAL_MODE,
    }
}
