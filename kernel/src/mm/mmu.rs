//! What the memory-management code asks of an MMU backend. Radix implements
//! it with `tlbie`/`tlbiel`; hash by removing HPTEs from the hashed page
//! table (through the platform, which does the `tlbie`). The mm code
//! changes the software page tables, then calls one of these with the
//! entries it replaced: hash finds the HPTEs to remove from the slots those
//! entries record, radix needs only the addresses.

use super::pagetable::{Entry, PageSize};

/// An address space as the MMU knows it: a radix PID (process-table index)
/// or a hash context.
pub type SpaceId = u32;

/// The address space of the kernel's own mappings (radix PID 0, used for the
/// kernel quadrant; hash context 0).
pub const KERNEL_SPACE: SpaceId = 0;

/// Whether other CPUs may hold translations of the address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only this CPU has used it: a local invalidation suffices.
    Local,
    /// Any CPU may have used it: broadcast.
    Global,
}

pub trait TlbFlush: Sync {
    /// One page of `size` at `address`, whose entry was `old`.
    fn flush_page(&self, space: SpaceId, address: u64, size: PageSize, old: Entry, scope: Scope);
    /// Consecutive pages of `size` from `start`, whose entries were `old`.
    fn flush_range(&self, space: SpaceId, start: u64, size: PageSize, old: &[Entry], scope: Scope);
    /// Every translation of the address space, and its page-walk cache.
    fn flush_space(&self, space: SpaceId, scope: Scope);
    /// A PMD that pointed at a PTE table was cleared (THP collapse): the
    /// translations of its 2 MiB range, whose PTEs were `old_ptes`, and the
    /// page-walk cache entries that may still point at the old table.
    fn flush_collapsed_pmd(&self, space: SpaceId, address: u64, old_ptes: &[Entry], scope: Scope);
    /// Only the page-walk cache (a page table was unhooked).
    fn flush_page_walk_cache(&self, space: SpaceId, scope: Scope);
}
