//! Self-tests of address spaces on the MMU in use: anonymous faults (small
//! and huge), mprotect, unmap returning every frame, GUP-fast against
//! GUP-slow, split and collapse seen through the MMU, and khugepaged.
//! Memory is touched through its user addresses, so every change to the
//! tree is checked together with its TLB/HPT flush.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use kernel::ktest::{fail, ktest, Env, TestResult};
use kernel::mm::collapse::Outcome;
use kernel::mm::gup::GupError;
use kernel::mm::page::PIN_BIAS;
use kernel::mm::pagetable::{PageSize, Prot};
use kernel::mm::vm::{RaceSettings, Region};
use kernel::mm::{self, Frame, FRAME_SIZE};
use kernel::{kassert, kassert_eq, time};

use crate::exceptions;
use crate::khugepaged;
use crate::trap::vector;
use crate::vm::UserMm;

use super::{inside, new_mm, ok, online_secondaries, physical_at, require_translation, settled_free_frames};

const MIB: u64 = 1 << 20;
const RW: Prot = Prot::READ.union(Prot::WRITE);
/// 2 MiB-aligned low addresses of the test spaces.
pub const SMALL: u64 = 0x1000_0000;
pub const HUGE: u64 = 0x2000_0000;
pub const READ_ONLY: u64 = 0x3000_0000;
const NOWHERE: u64 = 0x3800_0000;

fn size_at(mm: &UserMm, address: u64) -> Option<PageSize> {
    mm.with_arch(|arch| {
        use kernel::mm::vm::MmArch;
        arch.tree().translate(address).map(|t| t.size)
    })
}

#[ktest]
fn anonymous_faults_map_zeroed_pages(_: &Env<'_>) -> TestResult {
    let before = settled_free_frames();
    {
        let mm = new_mm()?;
        ok(mm.map(SMALL, 8 * FRAME_SIZE, RW, false))?;
        ok(mm.map(HUGE, 4 * MIB, RW, true))?;
        ok(mm.map(READ_ONLY, FRAME_SIZE, Prot::READ, false))?;
        inside(&mm, || -> TestResult {
            kassert_eq!(exceptions::try_load(SMALL + 0x10), Ok(0));
            kassert_eq!(exceptions::try_store(SMALL + FRAME_SIZE + 8, 0xfeed), Ok(()));
            kassert_eq!(exceptions::try_load(SMALL + FRAME_SIZE + 8), Ok(0xfeed));
            kassert_eq!(exceptions::try_load(HUGE + 3 * FRAME_SIZE), Ok(0));
            kassert_eq!(exceptions::try_store(HUGE + MIB, 7), Ok(()));
            kassert_eq!(exceptions::try_load(READ_ONLY), Ok(0));
            kassert_eq!(exceptions::try_store(READ_ONLY, 1), Err(vector::DATA_STORAGE));
            kassert_eq!(exceptions::try_load(NOWHERE), Err(vector::DATA_STORAGE));
            Ok(())
        })?;
        kassert_eq!(size_at(&mm, SMALL), Some(PageSize::Base));
        kassert_eq!(size_at(&mm, SMALL + 2 * FRAME_SIZE), None);
        kassert_eq!(size_at(&mm, HUGE + 5 * FRAME_SIZE), Some(PageSize::Huge2M));
        kassert_eq!(mm.stats.faults.load(Ordering::Relaxed), 3);
        kassert_eq!(mm.stats.huge_faults.load(Ordering::Relaxed), 1);
        // The huge page is one compound page, mapped once.
        let head = Frame::from_address(physical_at(&mm, HUGE).ok_or_else(|| fail("huge page gone"))?).expect("aligned");
        let page = mm::pages().frame(head).ok_or_else(|| fail("no descriptor"))?;
        kassert_eq!((page.refcount(), page.mapcount()), (1, 1));
    }
    kassert_eq!(settled_free_frames(), before);
    Ok(())
}

/// More address spaces alive at once than the 64 fault-handler slots there
/// used to be: each one's faults still reach its own handler and map its
/// own page.
#[ktest]
fn many_address_spaces_each_fault(_: &Env<'_>) -> TestResult {
    require_translation()?;
    const SPACES: u64 = 80;
    let before = settled_free_frames();
    {
        let mut spaces = Vec::new();
        for i in 0..SPACES {
            let mm = new_mm()?;
            ok(mm.map(SMALL, FRAME_SIZE, RW, false))?;
            kassert_eq!(inside(&mm, || exceptions::try_store(SMALL + 8, 0x5ace_0000 + i)), Ok(()));
            spaces.push(mm);
        }
        for (i, mm) in spaces.iter().enumerate() {
            kassert_eq!(inside(mm, || exceptions::try_load(SMALL + 8)), Ok(0x5ace_0000 + i as u64));
        }
    }
    kassert_eq!(settled_free_frames(), before);
    Ok(())
}

#[ktest]
fn mprotect_changes_what_the_mmu_allows(_: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(HUGE, 2 * MIB, RW, true))?;
    inside(&mm, || -> TestResult {
        kassert_eq!(exceptions::try_store(HUGE + 8, 1), Ok(()));
        kassert_eq!(exceptions::try_store(HUGE + MIB + 8, 2), Ok(()));
        Ok(())
    })?;
    // Half the huge page read-only: split, and the MMU must see it at once.
    ok(mm.protect(HUGE, MIB, Prot::READ))?;
    kassert_eq!(mm.stats.splits.load(Ordering::Relaxed), 1);
    inside(&mm, || -> TestResult {
        kassert_eq!(exceptions::try_store(HUGE + 8, 3), Err(vector::DATA_STORAGE));
        kassert_eq!(exceptions::try_load(HUGE + 8), Ok(1));
        kassert_eq!(exceptions::try_store(HUGE + MIB + 8, 4), Ok(()));
        Ok(())
    })?;
    ok(mm.protect(HUGE, MIB, RW))?;
    kassert_eq!(mm.region(HUGE), Some(Region { start: HUGE, end: HUGE + 2 * MIB, prot: RW, huge: true }));
    inside(&mm, || -> TestResult {
        kassert_eq!(exceptions::try_store(HUGE + 8, 5), Ok(()));
        kassert_eq!(exceptions::try_load(HUGE + 8), Ok(5));
        Ok(())
    })
}

/// Done-when 5 of [5/7] on the real MMU: GUP-fast and GUP-slow pin the same
/// pages over huge and small mappings; read-only memory takes read pins
/// only; a hole stops both at the same page.
#[ktest]
fn gup_fast_and_slow_return_the_same_pages(_: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(HUGE, 2 * MIB, RW, true))?;
    ok(mm.map(HUGE + 2 * MIB, 4 * FRAME_SIZE, RW, false))?;
    let span = 32 + 4;
    let mut fast = Vec::new();
    kassert_eq!(mm.pin_pages_fast_only_as(HUGE, span, true, RaceSettings::recheck(true), &mut fast), 0);
    let mut slow = Vec::new();
    mm.pin_pages(HUGE, span, true, &mut slow).map_err(|e| fail(alloc::format!("GUP-slow: {e:?}")))?;
    kassert_eq!(size_at(&mm, HUGE), Some(PageSize::Huge2M));
    kassert_eq!(size_at(&mm, HUGE + 2 * MIB), Some(PageSize::Base));
    kassert_eq!(mm.pin_pages_fast_only_as(HUGE, span, true, RaceSettings::recheck(true), &mut fast), span);
    kassert!(fast == slow, "fast {:x?} slow {:x?}", &fast[..4], &slow[..4]);
    let head = mm::pages().head(slow[0]).ok_or_else(|| fail("no descriptor"))?;
    kassert_eq!(head.refcount(), 1 + 2 * 32 * PIN_BIAS);
    for frame in fast.drain(..).chain(slow.drain(..)) {
        mm.unpin(frame);
    }
    kassert_eq!(head.refcount(), 1);

    // The fallback: fast for what is mapped, slow for the rest.
    ok(mm.map(SMALL, 8 * FRAME_SIZE, RW, false))?;
    ok(mm.fault(SMALL, true))?;
    ok(mm.fault(SMALL + FRAME_SIZE, true))?;
    let mut both = Vec::new();
    kassert_eq!(mm.pin_pages_fast_as(SMALL, 8, true, RaceSettings::recheck(true), &mut both), Ok(2));
    let mut again = Vec::new();
    mm.pin_pages(SMALL, 8, true, &mut again).map_err(|e| fail(alloc::format!("{e:?}")))?;
    kassert!(both == again);
    both.drain(..).chain(again.drain(..)).for_each(|f| mm.unpin(f));

    // Read-only memory.
    ok(mm.map(READ_ONLY, FRAME_SIZE, Prot::READ, false))?;
    let mut pins = Vec::new();
    kassert_eq!(mm.pin_pages(READ_ONLY, 1, true, &mut pins), Err((0, GupError::ReadOnly)));
    mm.pin_pages(READ_ONLY, 1, false, &mut pins).map_err(|e| fail(alloc::format!("{e:?}")))?;
    kassert_eq!(mm.pin_pages_fast_only_as(READ_ONLY, 1, true, RaceSettings::recheck(true), &mut pins), 0);
    kassert_eq!(
        mm.pin_pages_fast_as(READ_ONLY, 1, true, RaceSettings::recheck(true), &mut pins),
        Err((0, GupError::ReadOnly))
    );
    kassert_eq!(mm.pin_pages_fast_only_as(READ_ONLY, 1, false, RaceSettings::recheck(true), &mut pins), 1);
    kassert!(pins.len() == 2 && pins[0] == pins[1]);
    pins.drain(..).for_each(|f| mm.unpin(f));

    // A hole stops both at the same page.
    let mut held = Vec::new();
    kassert_eq!(mm.pin_pages(SMALL + 6 * FRAME_SIZE, 4, false, &mut held), Err((2, GupError::NotMapped)));
    kassert_eq!(
        mm.pin_pages_fast_as(SMALL + 6 * FRAME_SIZE, 4, false, RaceSettings::recheck(true), &mut held),
        Err((2, GupError::NotMapped))
    );
    kassert!(held.len() == 4 && held[..2] == held[2..]);
    held.drain(..).for_each(|f| mm.unpin(f));
    Ok(())
}

#[ktest]
#[allow(unsafe_code)]
fn unmap_returns_every_frame_and_a_pin_outlives_it(_: &Env<'_>) -> TestResult {
    let before = settled_free_frames();
    {
        let mm = new_mm()?;
        ok(mm.map(HUGE, 4 * MIB, RW, true))?;
        ok(mm.map(SMALL, 16 * FRAME_SIZE, RW, false))?;
        inside(&mm, || -> TestResult {
            for i in 0..16 {
                kassert_eq!(exceptions::try_store(SMALL + i * FRAME_SIZE, i), Ok(()));
            }
            kassert_eq!(exceptions::try_store(HUGE, 1), Ok(()));
            kassert_eq!(exceptions::try_store(HUGE + 2 * MIB, 2), Ok(()));
            Ok(())
        })?;
        let mut pin = Vec::new();
        mm.pin_pages(SMALL + 3 * FRAME_SIZE, 1, true, &mut pin).map_err(|e| fail(alloc::format!("{e:?}")))?;
        // Part of a huge page: it is split, the rest stays mapped.
        ok(mm.unmap(HUGE + MIB, MIB + FRAME_SIZE))?;
        ok(mm.unmap(SMALL, 16 * FRAME_SIZE))?;
        inside(&mm, || -> TestResult {
            kassert_eq!(exceptions::try_load(HUGE + MIB - FRAME_SIZE), Ok(0));
            kassert_eq!(exceptions::try_load(HUGE), Ok(1));
            kassert_eq!(exceptions::try_load(HUGE + MIB), Err(vector::DATA_STORAGE));
            kassert_eq!(exceptions::try_load(HUGE + 2 * MIB + FRAME_SIZE), Ok(0));
            kassert_eq!(exceptions::try_load(SMALL + 3 * FRAME_SIZE), Err(vector::DATA_STORAGE));
            Ok(())
        })?;
        // The pinned page lives on, unmapped, with its data, until unpinned.
        let page = mm::pages().frame(pin[0]).ok_or_else(|| fail("no descriptor"))?;
        kassert_eq!((page.refcount(), page.mapcount()), (PIN_BIAS, 0));
        // SAFETY: the pinned frame, through the linear map.
        kassert_eq!(unsafe { (mm::phys_to_virt(pin[0].address()) as *const u64).read_volatile() }, 3);
        mm.unpin(pin[0]);
        kassert_eq!(page.refcount(), 0);
        ok(mm.unmap(HUGE, 4 * MIB))?;
        kassert_eq!(mm.mapped_pages(), 0);
    }
    kassert_eq!(settled_free_frames(), before);
    Ok(())
}

/// Writes `tag + i` at offset 64 of each page of the 2 MiB at HUGE,
/// through the MMU.
fn fill(tag: u64) -> TestResult {
    for i in 0..32 {
        kassert_eq!(exceptions::try_store(HUGE + i * FRAME_SIZE + 64, tag + i), Ok(()));
    }
    Ok(())
}

fn check(tag: u64) -> TestResult {
    for i in 0..32 {
        kassert_eq!(exceptions::try_load(HUGE + i * FRAME_SIZE + 64), Ok(tag + i));
    }
    Ok(())
}

#[ktest]
#[allow(unsafe_code)]
fn split_and_collapse_keep_the_data(_: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(HUGE, 2 * MIB, RW, true))?;
    inside(&mm, || fill(0x1000))?;
    let first = physical_at(&mm, HUGE).ok_or_else(|| fail("not mapped"))?;
    kassert_eq!(ok(mm.split(HUGE))?, true);
    kassert_eq!(size_at(&mm, HUGE + 7 * FRAME_SIZE), Some(PageSize::Base));
    inside(&mm, || -> TestResult {
        check(0x1000)?;
        fill(0x2000)
    })?;
    kassert_eq!(mm.collapse_candidates(), [HUGE]);
    kassert_eq!(mm.collapse_range(HUGE, 2 * MIB), [(HUGE, Outcome::Collapsed)]);
    let second = physical_at(&mm, HUGE).ok_or_else(|| fail("not mapped after collapse"))?;
    kassert!(second != first, "collapse kept the old page");
    kassert_eq!(size_at(&mm, HUGE), Some(PageSize::Huge2M));
    inside(&mm, || -> TestResult {
        check(0x2000)?;
        fill(0x3000)
    })?;
    // Stores through the MMU land in the new page.
    // SAFETY: the huge page, mapped and owned by `mm`, through the linear map.
    let seen = unsafe { (mm::phys_to_virt(second + 5 * FRAME_SIZE + 64) as *const u64).read_volatile() };
    kassert_eq!(seen, 0x3005);
    // The old compound page was freed.
    kassert_eq!(mm::pages().frame(Frame::from_address(first).expect("aligned")).map(|p| p.refcount()), Some(0));

    // Small pages faulted one by one in a region that then grew to 2 MiB.
    ok(mm.map(SMALL, MIB, RW, true))?;
    inside(&mm, || exceptions::try_store(SMALL + FRAME_SIZE, 42)).map_err(|v| fail(alloc::format!("vector {v:#x}")))?;
    ok(mm.map(SMALL + MIB, MIB, RW, true))?;
    kassert_eq!(size_at(&mm, SMALL + FRAME_SIZE), Some(PageSize::Base));
    kassert_eq!(mm.collapse(SMALL), Outcome::Collapsed);
    inside(&mm, || -> TestResult {
        kassert_eq!(exceptions::try_load(SMALL + FRAME_SIZE), Ok(42));
        kassert_eq!(exceptions::try_load(SMALL + MIB + FRAME_SIZE), Ok(0));
        Ok(())
    })?;
    kassert_eq!(mm.stats.collapse.collapsed.load(Ordering::Relaxed), 2);
    Ok(())
}

#[ktest]
fn khugepaged_collapses_registered_spaces(_: &Env<'_>) -> TestResult {
    let mm = new_mm()?;
    ok(mm.map(HUGE, 4 * MIB, RW, true))?;
    inside(&mm, || -> TestResult {
        fill(0x4000)?;
        kassert_eq!(exceptions::try_store(HUGE + 2 * MIB, 9), Ok(()));
        Ok(())
    })?;
    ok(mm.split(HUGE))?;
    ok(mm.split(HUGE + 2 * MIB))?;
    kassert_eq!(mm.collapse_candidates(), [HUGE, HUGE + 2 * MIB]);
    let cpu = online_secondaries().next().unwrap_or(0);
    let collapsed_before = khugepaged::collapsed();
    khugepaged::register(&mm);
    kassert!(khugepaged::start(cpu, 1_000), "khugepaged did not start on CPU {cpu}");
    let deadline = time::deadline_us(5_000_000);
    while !mm.collapse_candidates().is_empty() && time::now() < deadline {
        crate::sched::run_ready();
        core::hint::spin_loop();
    }
    kassert!(khugepaged::stop(1_000_000), "khugepaged did not stop");
    khugepaged::unregister(&mm);
    kassert!(mm.collapse_candidates().is_empty(), "khugepaged left {:x?}", mm.collapse_candidates());
    kassert_eq!(mm.stats.collapse.collapsed.load(Ordering::Relaxed), 2);
    kassert!(khugepaged::collapsed() >= collapsed_before + 2);
    inside(&mm, || -> TestResult {
        check(0x4000)?;
        kassert_eq!(exceptions::try_load(HUGE + 2 * MIB), Ok(9));
        Ok(())
    })
}
