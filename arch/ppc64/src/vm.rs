//! The kernel's address spaces of anonymous memory: `kernel::mm::vm::Mm`
//! over this MMU's address spaces (radix PID or hash context) and the
//! global frame allocator, with the page-fault hook that feeds it.

use alloc::sync::{Arc, Weak};

use crate::mmu::{self, AddressSpace, Fault, FaultResolver, KernelFrames, Tree};
use crate::trap::FaultAction;
use kernel::cmdline::CollapseIpi;
use kernel::mm::mmu::SpaceId;
use kernel::mm::page::PageArray;
use kernel::mm::pagetable::{Entry, InterruptsOff, MapError, PageSize, Prot, ReadSide, TableAllocator};
use kernel::mm::vm::{LocklessWalkers, Mm, MmArch, MmuFlush, PageMemory};
use kernel::mm::{self, Frame};

/// An address space as the mm code sees it: the MMU's side of one `Mm`.
pub struct SpaceArch {
    space: AddressSpace,
}

impl SpaceArch {
    pub fn space(&self) -> &AddressSpace {
        &self.space
    }

    pub fn space_mut(&mut self) -> &mut AddressSpace {
        &mut self.space
    }
}

impl MmArch for SpaceArch {
    type Tables = TableAllocator<KernelFrames>;

    fn tree(&mut self) -> &mut Tree {
        self.space.tree()
    }

    fn defer_tables(&mut self, tables: &[(u64, usize)]) {
        for &(table, bytes) in tables {
            self.space.defer_table(table, bytes);
        }
    }

    fn map_faulted(
        &mut self,
        address: u64,
        leaf: u64,
        physical: u64,
        size: PageSize,
        prot: Prot,
    ) -> Result<(), MapError> {
        let id = self.space.id();
        self.space.tree().map_then(leaf, physical, size, prot, |mapped| mmu::backend().preload(id, address, mapped))
    }
}

impl MmuFlush for SpaceArch {
    fn flush(&mut self, address: u64, size: PageSize, old: Entry) {
        mmu::backend().flush_page(self.space.id(), address, size, old, mmu::flush_scope(self.space.id()));
    }

    fn flush_base_range(&mut self, start: u64, old: &[Entry]) {
        let id = self.space.id();
        mmu::backend().flush_range(id, start, PageSize::Base, old, mmu::flush_scope(id));
    }

    fn flush_page_walk_cache(&mut self) {
        mmu::backend().flush_page_walk_cache(self.space.id(), mmu::flush_scope(self.space.id()));
    }

    fn flush_collapsed_pmd(&mut self, address: u64, old_ptes: &[Entry]) {
        mmu::flush_collapsed_pmd(self.space.id(), address, old_ptes);
    }
}

/// The space's id names it in the registry's CPU mask.
impl LocklessWalkers for SpaceArch {
    type Walker = SpaceId;

    fn walker(&mut self) -> SpaceId {
        self.space.id()
    }

    fn enter(space: &SpaceId, _: &ReadSide) {
        mmu::note_space_user(*space);
    }

    fn serialize_against_pte_lookup(&mut self) {
        mmu::serialize_against_pte_lookup(self.space.id());
    }

    fn collapse_ipi(policy: CollapseIpi) -> bool {
        mmu::collapse_ipi_enabled(policy)
    }
}

/// GUP-fast's interrupts-off section, recorded for the cross-call
/// watchdog's report.
impl InterruptsOff for SpaceArch {
    fn disable() -> bool {
        <crate::percpu::IrqsOff as InterruptsOff>::disable()
    }

    fn restore(were_on: bool) {
        <crate::percpu::IrqsOff as InterruptsOff>::restore(were_on)
    }
}

/// Anonymous pages from the global frame allocator.
pub struct KernelPages;

impl PageMemory for KernelPages {
    fn alloc(&self, order: u32) -> Option<Frame> {
        if order == 0 {
            mm::alloc_frame()
        } else {
            mm::alloc_contiguous(1 << order, 1 << order)
        }
    }

    fn free(&self, head: Frame, order: u32) {
        mm::free_contiguous(head, 1 << order);
    }

    fn virt(physical: u64) -> *mut u8 {
        mm::phys_to_virt(physical)
    }

    fn pages(&self) -> &PageArray<'_> {
        mm::pages()
    }

    fn zero(&self, head: Frame, order: u32) {
        // SAFETY: the trait's contract: whole frames of RAM, the caller's,
        // through the linear map.
        unsafe { crate::vector::zero(mm::phys_to_virt(head.address()), (kernel::mm::FRAME_SIZE << order) as usize) };
    }

    fn copy(&self, from: Frame, to: Frame) {
        // SAFETY: the trait's contract: two distinct whole frames of RAM,
        // the caller's, through the linear map.
        unsafe {
            crate::vector::copy(
                mm::phys_to_virt(to.address()),
                mm::phys_to_virt(from.address()),
                kernel::mm::FRAME_SIZE as usize,
            )
        };
    }
}

pub type UserMm = Mm<SpaceArch, KernelPages>;

/// A new, empty address space whose faults it resolves itself.
pub fn new_mm() -> Result<Arc<UserMm>, MapError> {
    let space = AddressSpace::new()?;
    let mm = Arc::new(Mm::new(SpaceArch { space }, KernelPages));
    let resolver: Weak<dyn FaultResolver> = Arc::downgrade(&mm) as Weak<dyn FaultResolver>;
    mm.with_arch(|arch| arch.space().set_fault_resolver(Some(resolver)));
    Ok(mm)
}

/// Makes `mm` translate the low addresses on this CPU.
pub fn activate(mm: &UserMm) {
    mm.with_arch(|arch| arch.space().activate());
}

/// The page-fault handler of every `UserMm` (do_page_fault's
/// handle_mm_fault): resolves the fault or leaves it to the fix-ups and the
/// fatal report. Runs with interrupts as the faulting code had them
/// (mmu::handle_fault re-enables them), so a CPU waiting here for the mmap
/// lock still answers the IPIs of a collapse that holds it.
impl FaultResolver for UserMm {
    fn resolve(&self, fault: &Fault) -> FaultAction {
        if fault.instruction {
            return FaultAction::Unhandled; // anonymous memory is never executed here
        }
        if !fault.missing {
            // The MMU refused an access to a translation it has. If the tree
            // allows the access, retrying would fault forever: the MMU and the
            // tree disagree (a missed flush, wrong HPTE rights). Report it.
            let needed = if fault.store { Prot::WRITE } else { Prot::READ };
            let allowed = self
                .with_arch(|arch| arch.tree().translate(fault.address))
                .is_some_and(|t| t.entry.prot().contains(needed));
            if allowed {
                kernel::warn!(
                    "vm: protection fault at {:#x} that the page table allows: MMU and tree disagree",
                    fault.address
                );
            }
            return FaultAction::Unhandled;
        }
        match self.fault(fault.address, fault.store) {
            Ok(()) => FaultAction::Retry,
            Err(_) => FaultAction::Unhandled,
        }
    }
}
