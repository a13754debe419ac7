//! Self-tests of the MMU, whichever was chosen at boot (radix or hash):
//! mappings, faults, flushes, huge leaves, address spaces. Skipped with
//! `mmu=off`; the few that only make sense for one MMU say so.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::ktest::{fail, ktest, Env, Failure, TestResult};
use kernel::mm::mmu::{Scope, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{Entry, PageSize, Prot};
use kernel::mm::{self, pagetable, Frame, FRAME_SIZE, LINEAR_MAP_BASE};
use kernel::{kassert, kassert_eq, kskip, println};

use crate::exceptions;
use crate::mmu::radix;
use crate::mmu::{self, AddressSpace, Mode};
use crate::trap::vector;
use crate::trap::{dsisr, FaultAction};
use crate::{cpu, percpu};

/// Kernel-quadrant addresses outside the linear map, for test mappings.
const TEST_AREA: u64 = LINEAR_MAP_BASE | 0x0008_0000_0000_0000;
/// A quadrant-0 address for address-space tests.
const USER_ADDRESS: u64 = 0x1000_0000;

/// The flush interface of the MMU in use; skips the test in real mode.
fn require_translation() -> Result<&'static dyn TlbFlush, Failure> {
    match mmu::flusher() {
        Some(flush) => Ok(flush),
        None => kskip!("translation is off (mmu=off)"),
    }
}

/// A frame filled with `value` in every doubleword.
#[allow(unsafe_code)]
fn filled_frame(value: u64) -> Result<Frame, Failure> {
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let words = mm::phys_to_virt(frame.address()) as *mut u64;
    for i in 0..(FRAME_SIZE / 8) as usize {
        // SAFETY: a frame just allocated, through the linear map.
        unsafe { words.add(i).write_volatile(value) };
    }
    Ok(frame)
}

use exceptions::try_load as load;

fn kernel_map(address: u64, physical: u64, size: PageSize, prot: Prot) -> TestResult {
    mmu::with_kernel_tree(|tree| tree.map(address, physical, size, prot))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("map {address:#x}: {e:?}")))
}

/// Unmaps a kernel test page, flushes what it left, frees emptied tables.
fn kernel_unmap(address: u64) -> Result<Entry, Failure> {
    let flush = require_translation()?;
    let gone = mmu::with_kernel_tree(|tree| tree.unmap(address))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("unmap {address:#x}: {e:?}")))?;
    flush.flush_page(KERNEL_SPACE, address, gone.size, gone.entry, Scope::Global);
    if !gone.tables.is_empty() {
        flush.flush_page_walk_cache(KERNEL_SPACE, Scope::Global);
    }
    mmu::release_kernel_tables(&gone.tables);
    Ok(gone.entry)
}

/// The leaf the kernel tree has for `address` now.
fn kernel_leaf(address: u64) -> Option<pagetable::Translation> {
    mmu::with_kernel_tree(|tree| tree.translate(address)).flatten()
}

#[ktest]
fn translation_is_on(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let msr = cpu::msr();
    kassert!(msr & cpu::msr::IR != 0 && msr & cpu::msr::DR != 0, "MSR {msr:#x}");
    kassert_eq!(mmu::active_space(), None);
    if mmu::mode() == Mode::Radix {
        kassert_eq!(radix::pidr(), radix::GUARD_PID);
    }
    Ok(())
}

#[ktest]
#[allow(unsafe_code)]
fn map_read_write(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let frame = filled_frame(0x1111_2222_3333_4444)?;
    let address = TEST_AREA;
    kernel_map(address, frame.address(), PageSize::Base, Prot::READ | Prot::WRITE)?;
    let result = (|| {
        kassert_eq!(load(address + 0x808), Ok(0x1111_2222_3333_4444));
        // A store through the new address lands in the frame.
        // SAFETY: mapped read-write just above.
        unsafe { ((address + 0x10) as *mut u64).write_volatile(0xfeed) };
        // SAFETY: the frame, through the linear map.
        let direct = unsafe { ((mm::phys_to_virt(frame.address()) as u64 + 0x10) as *const u64).read_volatile() };
        kassert_eq!(direct, 0xfeed);
        Ok(())
    })();
    kernel_unmap(address)?;
    mm::free_frame(frame);
    result
}

#[ktest]
fn unmap_then_access_faults(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let frame = filled_frame(7)?;
    let address = TEST_AREA + 0x10_0000;
    kernel_map(address, frame.address(), PageSize::Base, Prot::READ)?;
    kassert_eq!(load(address), Ok(7));
    kernel_unmap(address)?;
    mm::free_frame(frame);
    // Hash: the HPTE went with the flush, and the tree has no page to refill it from.
    kassert_eq!(load(address + 8), Err(vector::DATA_STORAGE));
    let fault = percpu::this().last_fault();
    kassert_eq!(fault.dar, address + 8);
    kassert!(fault.dsisr & dsisr::NO_TRANSLATION != 0 && fault.dsisr & dsisr::STORE == 0, "DSISR {:#x}", fault.dsisr);
    Ok(())
}

/// Re-points a mapping at another frame: the new frame is seen after the
/// flush. Before it, the CPU may still use the old translation (QEMU's TLB
/// keeps it), which the diagnostic line reports.
fn remap_with_flush(flush: &dyn TlbFlush, scope: Scope) -> TestResult {
    let old = filled_frame(0xaaaa)?;
    let new = filled_frame(0xbbbb)?;
    let address = TEST_AREA + 0x20_0000;
    kernel_map(address, old.address(), PageSize::Base, Prot::READ)?;
    let result = (|| {
        kassert_eq!(load(address), Ok(0xaaaa)); // the translation is now cached
        let old = mmu::with_kernel_tree(|tree| tree.remap(address, new.address()))
            .ok_or_else(|| fail("no kernel tree"))?
            .map_err(|e| fail(alloc::format!("remap: {e:?}")))?;
        let before = load(address);
        flush.flush_page(KERNEL_SPACE, address, PageSize::Base, old, scope);
        let after = load(address);
        println!(
            "# {scope:?} flush: before it the load saw {}, after it {:#x}",
            match before {
                Ok(0xaaaa) => "the old frame (stale translation)",
                Ok(0xbbbb) => "the new frame",
                _ => "something else",
            },
            after.unwrap_or(0)
        );
        kassert_eq!(after, Ok(0xbbbb));
        Ok(())
    })();
    kernel_unmap(address)?;
    mm::free_frame(old);
    mm::free_frame(new);
    result
}

#[ktest]
fn flush_makes_new_pte_visible(_: &Env<'_>) -> TestResult {
    let flush = require_translation()?;
    remap_with_flush(flush, Scope::Global)
}

/// A flush for this CPU only: `tlbiel` under radix, and under hash in a
/// table the kernel owns (bare metal); a hypervisor's table chooses its own
/// reach.
#[ktest]
fn local_flush_makes_new_pte_visible(_: &Env<'_>) -> TestResult {
    let flush = require_translation()?;
    remap_with_flush(flush, Scope::Local)
}

#[ktest]
#[allow(unsafe_code)]
fn read_only_mapping_refuses_stores(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let frame = filled_frame(3)?;
    let address = TEST_AREA + 0x30_0000;
    kernel_map(address, frame.address(), PageSize::Base, Prot::READ)?;
    let result = (|| {
        // SAFETY: probe_store_u64 has an exception-table entry for its store.
        let raised = unsafe { exceptions::probe_store_u64(address as *mut u64, 9) };
        kassert_eq!(raised, vector::DATA_STORAGE);
        let fault = percpu::this().last_fault();
        kassert!(fault.dsisr & dsisr::PROTECTION != 0 && fault.dsisr & dsisr::STORE != 0, "DSISR {:#x}", fault.dsisr);
        kassert_eq!(load(address), Ok(3));
        Ok(())
    })();
    kernel_unmap(address)?;
    mm::free_frame(frame);
    result
}

/// Code runs from an executable mapping; fetching from a mapping without
/// execute permission, or from no mapping, is an instruction storage
/// interrupt (SRR1 says which).
#[ktest]
#[allow(unsafe_code)]
fn execute_permission_is_enforced(env: &Env<'_>) -> TestResult {
    require_translation()?;
    const LI_R3_0: u32 = 0x3860_0000;
    const BLR: u32 = 0x4e80_0020;
    let frame = filled_frame(0)?;
    let code = mm::phys_to_virt(frame.address()) as *mut u32;
    // SAFETY: the frame was just allocated; two instructions at its start.
    unsafe {
        code.write_volatile(LI_R3_0);
        code.add(1).write_volatile(BLR);
    }
    cpu::sync_icache(code as usize, 8, env.boot.dcache_block_size as usize, env.boot.icache_block_size as usize);
    let executable = TEST_AREA + 0x50_0000;
    let data_only = TEST_AREA + 0x60_0000;
    kernel_map(executable, frame.address(), PageSize::Base, Prot::READ | Prot::EXECUTE)?;
    kernel_map(data_only, frame.address(), PageSize::Base, Prot::READ)?;
    // SAFETY: probe_execute resumes an ISI at its return point.
    let results = unsafe { [exceptions::probe_execute(executable), exceptions::probe_execute(data_only)] };
    let no_execute_srr1 = percpu::this().last_fault().srr1;
    kernel_unmap(executable)?;
    kernel_unmap(data_only)?;
    // SAFETY: as above; nothing is mapped there now.
    let unmapped = unsafe { exceptions::probe_execute(executable) };
    let unmapped_fault = percpu::this().last_fault();
    mm::free_frame(frame);
    kassert_eq!(results, [0, vector::INSTRUCTION_STORAGE]);
    kassert!(no_execute_srr1 & crate::trap::isi_srr1::NO_EXECUTE != 0, "SRR1 {no_execute_srr1:#x}");
    kassert_eq!(unmapped, vector::INSTRUCTION_STORAGE);
    kassert_eq!(unmapped_fault.srr0, executable);
    kassert!(unmapped_fault.srr1 & crate::trap::isi_srr1::NO_TRANSLATION != 0, "SRR1 {:#x}", unmapped_fault.srr1);
    Ok(())
}

/// A read-write mapping in use becomes read-only: stores fault, loads still
/// work, and the data is what was stored before.
#[ktest]
#[allow(unsafe_code)]
fn protect_downgrades_a_live_mapping(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let frame = filled_frame(0)?;
    let address = TEST_AREA + 0x90_0000;
    kernel_map(address, frame.address(), PageSize::Base, Prot::READ | Prot::WRITE)?;
    let result = (|| {
        // SAFETY: probe_store_u64 has an exception-table entry for its store.
        kassert_eq!(unsafe { exceptions::probe_store_u64(address as *mut u64, 0x5107e) }, 0);
        mmu::protect_kernel(address, Prot::READ).map_err(|e| fail(alloc::format!("protect: {e:?}")))?;
        // SAFETY: as above.
        let raised = unsafe { exceptions::probe_store_u64(address as *mut u64, 1) };
        kassert_eq!(raised, vector::DATA_STORAGE);
        let fault = percpu::this().last_fault();
        kassert!(fault.dsisr & dsisr::PROTECTION != 0, "DSISR {:#x}", fault.dsisr);
        kassert_eq!(load(address), Ok(0x5107e));
        Ok(())
    })();
    kernel_unmap(address)?;
    mm::free_frame(frame);
    result
}

/// Re-points eight pages, then one range flush makes all of them visible.
#[ktest]
fn range_flush(_: &Env<'_>) -> TestResult {
    let flush = require_translation()?;
    const PAGES: u64 = 8;
    let (old, new) = (filled_frame(0x01d)?, filled_frame(0x2e3)?);
    let start = TEST_AREA + 0x70_0000;
    let result = (|| {
        for i in 0..PAGES {
            kernel_map(start + i * FRAME_SIZE, old.address(), PageSize::Base, Prot::READ)?;
            kassert_eq!(load(start + i * FRAME_SIZE), Ok(0x01d));
        }
        let mut old = alloc::vec::Vec::new();
        for i in 0..PAGES {
            let entry = mmu::with_kernel_tree(|tree| tree.remap(start + i * FRAME_SIZE, new.address()))
                .ok_or_else(|| fail("no kernel tree"))?
                .map_err(|e| fail(alloc::format!("remap: {e:?}")))?;
            old.push(entry);
        }
        flush.flush_range(KERNEL_SPACE, start, PageSize::Base, &old, Scope::Global);
        for i in 0..PAGES {
            kassert_eq!(load(start + i * FRAME_SIZE + 0x40), Ok(0x2e3));
        }
        Ok(())
    })();
    for i in 0..PAGES {
        kernel_unmap(start + i * FRAME_SIZE)?;
    }
    mm::free_frame(old);
    mm::free_frame(new);
    result
}

/// What THP collapse does to the MMU: a 2 MiB range mapped by base pages
/// (their translations cached) becomes one huge leaf; the PTE table is
/// unhooked; after flush_collapsed_pmd every access sees the huge page.
#[ktest]
#[allow(unsafe_code)]
fn collapsed_pmd_flush(_: &Env<'_>) -> TestResult {
    let flush = require_translation()?;
    const FRAMES: u64 = (2 << 20) / FRAME_SIZE;
    let small = filled_frame(0x5a)?;
    let huge = mm::alloc_contiguous(FRAMES, FRAMES).ok_or_else(|| fail("no 2 MiB run"))?;
    let huge_base = mm::phys_to_virt(huge.address()) as u64;
    for i in 0..FRAMES {
        // SAFETY: inside the run just allocated, through the linear map.
        unsafe { ((huge_base + i * FRAME_SIZE) as *mut u64).write_volatile(0x1000 + i) };
    }
    let start = TEST_AREA + 0x8000_0000;
    let result = (|| {
        for i in 0..FRAMES {
            kernel_map(start + i * FRAME_SIZE, small.address(), PageSize::Base, Prot::READ)?;
            kassert_eq!(load(start + i * FRAME_SIZE), Ok(0x5a));
        }
        let mut unhooked = alloc::vec::Vec::new();
        let mut old_ptes = alloc::vec::Vec::new();
        for i in 0..FRAMES {
            let gone = mmu::with_kernel_tree(|tree| tree.unmap(start + i * FRAME_SIZE))
                .ok_or_else(|| fail("no kernel tree"))?
                .map_err(|e| fail(alloc::format!("{e:?}")))?;
            unhooked.extend_from_slice(&gone.tables);
            old_ptes.push(gone.entry);
        }
        kassert!(!unhooked.is_empty(), "the PTE table was not unhooked");
        kernel_map(start, huge.address(), PageSize::Huge2M, Prot::READ)?;
        flush.flush_collapsed_pmd(KERNEL_SPACE, start, &old_ptes, Scope::Global);
        mmu::release_kernel_tables(&unhooked);
        for i in 0..FRAMES {
            kassert_eq!(load(start + i * FRAME_SIZE), Ok(0x1000 + i));
        }
        Ok(())
    })();
    let _ = kernel_unmap(start);
    mm::free_frame(small);
    mm::free_contiguous(huge, FRAMES);
    result
}

#[ktest]
#[allow(unsafe_code)]
fn huge_2m_leaf(_: &Env<'_>) -> TestResult {
    require_translation()?;
    const FRAMES: u64 = (2 << 20) / FRAME_SIZE;
    let run = mm::alloc_contiguous(FRAMES, FRAMES).ok_or_else(|| fail("no 2 MiB run"))?;
    let base = mm::phys_to_virt(run.address()) as u64;
    let offsets = [0u64, 0x1_0008, 0xf_fff0, 0x1f_fff8];
    for &offset in &offsets {
        // SAFETY: inside the run just allocated, through the linear map.
        unsafe { ((base + offset) as *mut u64).write_volatile(offset ^ 0x2222) };
    }
    let address = TEST_AREA + 0x4000_0000;
    kernel_map(address, run.address(), PageSize::Huge2M, Prot::READ)?;
    let result = (|| {
        let found = kernel_leaf(address + 0x1_0008);
        kassert_eq!(found.map(|t| (t.physical, t.size)), Some((run.address() + 0x1_0008, PageSize::Huge2M)));
        for &offset in &offsets {
            kassert_eq!(load(address + offset), Ok(offset ^ 0x2222));
        }
        Ok(())
    })();
    kernel_unmap(address)?;
    mm::free_contiguous(run, FRAMES);
    result
}

/// A 1 GiB leaf over physical 0..1 GiB reads what the linear map reads.
#[ktest]
fn huge_1g_leaf(env: &Env<'_>) -> TestResult {
    require_translation()?;
    if !env.boot.memory.iter().any(|r| r.start == 0 && r.size >= 1 << 30) {
        kskip!("needs 1 GiB of RAM at physical 0");
    }
    let address = TEST_AREA + 0x40_0000_0000;
    kernel_map(address, 0, PageSize::Huge1G, Prot::READ)?;
    let result = (|| {
        // The kernel image, the vectors, and the last doubleword of the GiB.
        let image = mm::virt_to_phys(crate::ksyms::load_base());
        for offset in [image, 0x300, image + 0x1000, (1 << 30) - 8] {
            let direct = load(LINEAR_MAP_BASE | offset);
            kassert!(direct.is_ok(), "linear map read at {offset:#x} failed");
            kassert_eq!(load(address + offset), direct);
        }
        Ok(())
    })();
    kernel_unmap(address)?;
    result
}

/// The fault a load from a low address raises with no address space
/// active: radix has no tree for the guard PID (data storage); hash has no
/// segment for it (data segment).
fn no_space_fault() -> u64 {
    match mmu::mode() {
        Mode::Hash => vector::DATA_SEGMENT,
        _ => vector::DATA_STORAGE,
    }
}

#[ktest]
fn null_access_faults(_: &Env<'_>) -> TestResult {
    require_translation()?;
    kassert_eq!(load(0), Err(no_space_fault()));
    kassert_eq!(percpu::this().last_fault().dar, 0);
    Ok(())
}

#[ktest]
fn pid_switch_switches_address_space(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let mut a = AddressSpace::new().map_err(|e| fail(alloc::format!("space A: {e:?}")))?;
    let mut b = AddressSpace::new().map_err(|e| fail(alloc::format!("space B: {e:?}")))?;
    kassert!(a.id() != b.id() && a.id() > radix::GUARD_PID);
    let (frame_a, frame_b) = (filled_frame(0xa)?, filled_frame(0xb)?);
    let result = (|| {
        let prot = Prot::READ | Prot::WRITE | Prot::USER;
        a.tree()
            .map(USER_ADDRESS, frame_a.address(), PageSize::Base, prot)
            .map_err(|e| fail(alloc::format!("{e:?}")))?;
        b.tree()
            .map(USER_ADDRESS, frame_b.address(), PageSize::Base, prot)
            .map_err(|e| fail(alloc::format!("{e:?}")))?;
        a.activate();
        let in_a = load(USER_ADDRESS);
        b.activate();
        let in_b = load(USER_ADDRESS);
        mmu::deactivate();
        let in_guard = load(USER_ADDRESS);
        kassert_eq!(in_a, Ok(0xa));
        kassert_eq!(in_b, Ok(0xb));
        kassert_eq!(in_guard, Err(no_space_fault()));
        a.unmap(USER_ADDRESS).map_err(|e| fail(alloc::format!("{e:?}")))?;
        b.unmap(USER_ADDRESS).map_err(|e| fail(alloc::format!("{e:?}")))?;
        Ok(())
    })();
    mmu::deactivate();
    mm::free_frame(frame_a);
    mm::free_frame(frame_b);
    result
}

static ON_DEMAND_FRAME: AtomicU64 = AtomicU64::new(0);
static ON_DEMAND_FAULTS: AtomicU64 = AtomicU64::new(0);
static ON_DEMAND_SPACE: spin::Mutex<Option<AddressSpace>> = spin::Mutex::new(None);

/// Maps the prepared frame at the faulting page, as an anonymous fault would.
fn map_on_demand(fault: &mmu::Fault) -> FaultAction {
    ON_DEMAND_FAULTS.fetch_add(1, Ordering::Relaxed);
    let Some(mut guard) = ON_DEMAND_SPACE.try_lock() else { return FaultAction::Unhandled };
    let Some(space) = guard.as_mut() else { return FaultAction::Unhandled };
    if space.id() != fault.space || !fault.missing {
        return FaultAction::Unhandled;
    }
    let page = fault.address & !(FRAME_SIZE - 1);
    let frame = ON_DEMAND_FRAME.load(Ordering::Relaxed);
    match space.tree().map(page, frame, PageSize::Base, Prot::READ | Prot::WRITE | Prot::USER) {
        Ok(()) => FaultAction::Retry,
        Err(_) => FaultAction::Unhandled,
    }
}

#[ktest]
fn fault_handler_maps_on_demand(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let space = AddressSpace::new().map_err(|e| fail(alloc::format!("{e:?}")))?;
    let frame = filled_frame(0x0d0d)?;
    ON_DEMAND_FRAME.store(frame.address(), Ordering::Relaxed);
    ON_DEMAND_FAULTS.store(0, Ordering::Relaxed);
    let resolver: alloc::sync::Arc<dyn mmu::FaultResolver> = alloc::sync::Arc::new(mmu::FaultFn(map_on_demand));
    space.set_fault_resolver(Some(alloc::sync::Arc::downgrade(&resolver)));
    space.activate();
    *ON_DEMAND_SPACE.lock() = Some(space);
    let first = load(USER_ADDRESS + 0x18);
    let second = load(USER_ADDRESS + 0x20);
    mmu::deactivate();
    let mut space = ON_DEMAND_SPACE.lock().take().ok_or_else(|| fail("space vanished"))?;
    let faults = ON_DEMAND_FAULTS.load(Ordering::Relaxed);
    let unmapped = space.unmap(USER_ADDRESS);
    drop(space);
    mm::free_frame(frame);
    kassert_eq!(first, Ok(0x0d0d));
    kassert_eq!(second, Ok(0x0d0d));
    kassert_eq!(faults, 1);
    kassert!(unmapped.is_ok());
    Ok(())
}

/// An address space's tables go back to the frame allocator when its pages
/// are unmapped and it is dropped.
#[ktest]
fn freed_tables_return_to_allocator(_: &Env<'_>) -> TestResult {
    require_translation()?;
    let frame = filled_frame(1)?;
    let before = mm::free_frames();
    {
        let mut space = AddressSpace::new().map_err(|e| fail(alloc::format!("{e:?}")))?;
        let after_pgd = mm::free_frames();
        let pages = [0x1000_0000u64, 0x1001_0000, 0x1020_0000, 0x4000_0000, 0x80_0000_0000];
        for &page in &pages {
            space
                .tree()
                .map(page, frame.address(), PageSize::Base, Prot::READ | Prot::USER)
                .map_err(|e| fail(alloc::format!("{e:?}")))?;
        }
        kassert!(mm::free_frames() < after_pgd, "mapping took no table frames");
        for &page in &pages {
            space.unmap(page).map_err(|e| fail(alloc::format!("{e:?}")))?;
        }
        // The emptied tables wait for a grace period (a lockless walker may
        // still be in them), then go back.
        kernel::rcu::synchronize();
        space.reclaim();
        kassert_eq!(mm::free_frames(), after_pgd);
    }
    kassert_eq!(mm::free_frames(), before);
    mm::free_frame(frame);
    Ok(())
}

/// The id allocator: when the ids run out, a dead id that waits for a
/// scrub is handed out again only after the scrub ran, once, told exactly
/// which ids are dead; a clean one needs none.
#[ktest]
fn ids_run_out_then_one_scrub_frees_the_dead(_: &Env<'_>) -> TestResult {
    use core::cell::Cell;
    let scrubs = Cell::new(0u32);
    let told = Cell::new((false, false));
    let scrub = |dead: &dyn Fn(u32) -> bool| {
        scrubs.set(scrubs.get() + 1);
        told.set((dead(7), dead(9)));
    };
    let mut ids = alloc::boxed::Box::new(mmu::Ids::new());
    let mut handed = 0;
    while ids.allocate(scrub).is_some() {
        handed += 1;
    }
    kassert_eq!(handed, mmu::SPACE_IDS - 2);
    kassert_eq!(scrubs.get(), 0); // nothing was dead
    ids.release(7, mmu::Detached::NeedsScrub);
    ids.release(9, mmu::Detached::Clean);
    kassert!(ids.waits_for_scrub(7) && !ids.waits_for_scrub(9));
    kassert_eq!(ids.allocate(scrub), Some(9));
    kassert_eq!(scrubs.get(), 0); // a clean id was free
    kassert_eq!(ids.allocate(scrub), Some(7));
    kassert_eq!((scrubs.get(), told.get()), (1, (true, false)));
    kassert!(!ids.waits_for_scrub(7));
    kassert_eq!(ids.allocate(scrub), None);
    kassert_eq!(scrubs.get(), 1); // nothing dead since
    Ok(())
}
