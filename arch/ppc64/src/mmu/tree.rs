//! The kernel's own page-table tree: the linear map of all RAM at
//! LINEAR_MAP_BASE, and mappings outside it. Both MMU backends translate
//! from it (radix walks it, hash fills its HPT from it); kernel tables
//! unhooked by an unmap are freed after a grace period, since a lockless
//! walker may still be in them.

use core::sync::atomic::{AtomicU64, Ordering};

use boot::BootInfo;
use kernel::mm::pagetable::{FrameSource, PageSize, PageTable, Prot, TableAllocator};
use kernel::mm::{self, Frame, LINEAR_MAP_BASE};
use kernel::rcu::Deferred;
use spin::Mutex;

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

    /// With VSX stores, as pages are: the first fault in a 2 MiB after an
    /// unmap freed its tables zeroes 8.25 KiB of new ones (a PUD, a PMD, a
    /// PTE fragment), on which the compiler's 8-byte store loop spent
    /// 0.05-0.1 us of each of the 32 faults under TCG (measured).
    unsafe fn zero(&self, physical: u64, bytes: usize) {
        // SAFETY: the caller's contract: a table inside a frame of RAM this
        // source handed out, reached through the linear map.
        unsafe { crate::vector::zero(mm::phys_to_virt(physical), bytes) };
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
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

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

/// Runs `f` on the kernel's tree: for mappings outside the linear map.
pub fn with_kernel_tree<R>(f: impl FnOnce(&mut Tree) -> R) -> Option<R> {
    KERNEL_TREE.lock().as_mut().map(f)
}

pub fn ptesync() {
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("ptesync", options(nostack, preserves_flags)) };
}
