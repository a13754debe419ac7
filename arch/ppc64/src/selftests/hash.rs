//! Self-tests of the hash MMU: HPTEs appear on first touch and are found
//! read back from the table where the tree records them, flushes remove them, full
//! groups evict without losing mappings, and huge leaves are hashed by the
//! 64 KiB subpages that are touched. Skipped unless `mmu=hash`.

use core::sync::atomic::Ordering;

use kernel::ktest::{fail, ktest, Env, Failure, TestResult};
use kernel::mm::hash as hpt;
use kernel::mm::mmu::{Scope, TlbFlush, KERNEL_SPACE};
use kernel::mm::pagetable::{Entry, PageSize, Prot};
use kernel::mm::vm::MmArch;
use kernel::mm::{self, Frame, FRAME_SIZE, LINEAR_MAP_BASE};
use kernel::{kassert, kassert_eq, kskip};

use crate::exceptions;
use crate::mmu::hash::{self, HASH_MMU};
use crate::mmu::{self, Mode};

/// Kernel addresses outside the linear map, in their own 1T segment.
const TEST_AREA: u64 = LINEAR_MAP_BASE | 0x0009_0000_0000_0000;

fn require_hash() -> TestResult {
    if mmu::mode() != Mode::Hash {
        kskip!("hash only (mmu={})", mmu::backend().name());
    }
    Ok(())
}

use exceptions::try_load as touch;

fn leaf(address: u64) -> Result<(Entry, PageSize), Failure> {
    let found = mmu::with_kernel_tree(|tree| tree.translate(address)).flatten().ok_or_else(|| fail("not mapped"))?;
    Ok((found.entry, found.size))
}

fn map(address: u64, frame: Frame, size: PageSize) -> TestResult {
    mmu::with_kernel_tree(|tree| tree.map(address, frame.address(), size, Prot::READ | Prot::WRITE))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("map {address:#x}: {e:?}")))
}

/// Unmaps without flushing; returns the old entry.
fn unmap_quietly(address: u64) -> Result<(Entry, alloc::vec::Vec<(u64, usize)>), Failure> {
    let gone = mmu::with_kernel_tree(|tree| tree.unmap(address))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("unmap {address:#x}: {e:?}")))?;
    Ok((gone.entry, gone.tables.to_vec()))
}

fn release(tables: &[(u64, usize)]) {
    mmu::release_kernel_tables(tables);
}

#[ktest]
fn hpte_inserted_on_first_touch(_: &Env<'_>) -> TestResult {
    require_hash()?;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let address = TEST_AREA;
    map(address, frame, PageSize::Base)?;
    let result = (|| {
        let (before, _) = leaf(address)?;
        kassert!(!hash::is_hashed(before), "hashed before any access: {before:?}");
        kassert!(touch(address + 0x20).is_ok());
        let (after, size) = leaf(address)?;
        kassert!(hash::is_hashed(after), "no slot recorded after the access: {after:?}");
        let (ptex, hpte) = hash::recorded_hpte(KERNEL_SPACE, address, size, after)
            .ok_or_else(|| fail("no HPTE at the recorded slot"))?;
        let vpn = hash::page_vpn(KERNEL_SPACE, address).ok_or_else(|| fail("no segment"))?;
        kassert!(
            hpt::v_matches(hpte.v, vpn, hpt::SegmentSize::T1),
            "HPTE {ptex:#x} v {:#x} is not this page's",
            hpte.v
        );
        kassert_eq!(hpte.r & hpt::r::RPN_MASK & !0xffff, frame.address());
        kassert!(hpte.v & hpt::v::BOLTED == 0);
        Ok(())
    })();
    mmu::with_kernel_tree(|tree| tree.unmap(address)).map(|r| {
        r.map(|gone| {
            HASH_MMU.flush_page(KERNEL_SPACE, address, gone.size, gone.entry, Scope::Global);
            release(&gone.tables);
        })
    });
    mm::free_frame(frame);
    result
}

#[ktest]
fn unmap_flush_removes_hpte(_: &Env<'_>) -> TestResult {
    require_hash()?;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let address = TEST_AREA + 0x100_0000;
    map(address, frame, PageSize::Base)?;
    kassert!(touch(address).is_ok());
    let (entry, size) = leaf(address)?;
    let (ptex, _) = hash::recorded_hpte(KERNEL_SPACE, address, size, entry).ok_or_else(|| fail("not hashed"))?;
    let (old, tables) = unmap_quietly(address)?;
    HASH_MMU.flush_page(KERNEL_SPACE, address, PageSize::Base, old, Scope::Global);
    release(&tables);
    mm::free_frame(frame);
    let after = hash::table().read(ptex).map_err(|e| fail(alloc::format!("reading HPTE {ptex:#x}: {e:?}")))?;
    let vpn = hash::page_vpn(KERNEL_SPACE, address).ok_or_else(|| fail("no segment"))?;
    kassert!(
        after.v & hpt::v::VALID == 0 || !hpt::v_matches(after.v, vpn, hpt::SegmentSize::T1),
        "HPTE {ptex:#x} still there: {after:?}"
    );
    kassert_eq!(touch(address), Err(crate::trap::vector::DATA_STORAGE));
    Ok(())
}

/// Making a touched page read-only keeps its HPTE (same slot) with the PP
/// bits of a read-only kernel page: updated in place, not removed and refaulted.
#[ktest]
fn h_protect_updates_in_place(_: &Env<'_>) -> TestResult {
    require_hash()?;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let address = TEST_AREA + 0x300_0000;
    map(address, frame, PageSize::Base)?;
    let result = (|| {
        kassert!(touch(address).is_ok());
        let (entry, size) = leaf(address)?;
        let (ptex, before) =
            hash::recorded_hpte(KERNEL_SPACE, address, size, entry).ok_or_else(|| fail("not hashed"))?;
        kassert_eq!(before.r & (hpt::r::PP0 | hpt::r::PP_MASK), hpt::pp_bits(true, false));
        mmu::protect_kernel(address, Prot::READ).map_err(|e| fail(alloc::format!("{e:?}")))?;
        let (entry, size) = leaf(address)?;
        let (same, after) = hash::recorded_hpte(KERNEL_SPACE, address, size, entry).ok_or_else(|| fail("slot lost"))?;
        kassert_eq!(same, ptex);
        kassert_eq!(after.r & (hpt::r::PP0 | hpt::r::PP_MASK), hpt::pp_bits(false, false));
        kassert_eq!(after.v & !0x7f, before.v & !0x7f);
        Ok(())
    })();
    let (old, tables) = unmap_quietly(address)?;
    HASH_MMU.flush_page(KERNEL_SPACE, address, PageSize::Base, old, Scope::Global);
    release(&tables);
    mm::free_frame(frame);
    result
}

/// Pages 4 GiB apart in one 1T segment hash to the same primary (and so
/// secondary) group: 20 of them overflow the 16 slots; evicted pages fault
/// back in, so every page stays readable.
#[ktest]
#[allow(unsafe_code)]
fn full_groups_evict_without_loss(_: &Env<'_>) -> TestResult {
    require_hash()?;
    const PAGES: u64 = 20;
    let stride = (hash::geometry().hash_mask() + 1) << hpt::PAGE_SHIFT;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    // SAFETY: the frame was just allocated; a marker at its start.
    unsafe { (mm::phys_to_virt(frame.address()) as *mut u64).write_volatile(0x6ec7) };
    let base = TEST_AREA + 0x2000_0000;
    let group = hash::page_hash(KERNEL_SPACE, base).map(|h| h & hash::geometry().hash_mask());
    let evictions_before = hash::EVICTIONS.load(Ordering::Relaxed);
    let mut result = Ok(());
    for i in 0..PAGES {
        let address = base + i * stride;
        kassert_eq!(hash::page_hash(KERNEL_SPACE, address).map(|h| h & hash::geometry().hash_mask()), group);
        map(address, frame, PageSize::Base)?;
    }
    for round in 0..2 {
        for i in 0..PAGES {
            if touch(base + i * stride) != Ok(0x6ec7) {
                result = Err(fail(alloc::format!("page {i} unreadable in round {round}")));
            }
        }
    }
    let evictions = hash::EVICTIONS.load(Ordering::Relaxed) - evictions_before;
    for i in 0..PAGES {
        let address = base + i * stride;
        let (old, tables) = unmap_quietly(address)?;
        HASH_MMU.flush_page(KERNEL_SPACE, address, PageSize::Base, old, Scope::Global);
        release(&tables);
    }
    mm::free_frame(frame);
    result?;
    kassert!(
        evictions >= PAGES - 2 * hpt::HPTES_PER_GROUP,
        "only {evictions} evictions for {PAGES} pages in one group pair"
    );
    Ok(())
}

/// A 2 MiB leaf gets an HPTE per touched 64 KiB subpage, exactly those, and
/// the flush of the leaf removes them all.
#[ktest]
fn pmd_leaf_hashes_touched_subpages(_: &Env<'_>) -> TestResult {
    require_hash()?;
    const FRAMES: u64 = (2 << 20) / FRAME_SIZE;
    let run = mm::alloc_contiguous(FRAMES, FRAMES).ok_or_else(|| fail("no 2 MiB run"))?;
    let address = TEST_AREA + 0x4000_0000;
    map(address, run, PageSize::Huge2M)?;
    let touched = [0u64, 5, 31];
    let result = (|| {
        for &i in &touched {
            kassert!(touch(address + i * FRAME_SIZE + 8).is_ok());
        }
        let (entry, size) = leaf(address)?;
        kassert_eq!(size, PageSize::Huge2M);
        let mut present = alloc::vec::Vec::new();
        for i in 0..FRAMES {
            if let Some((ptex, hpte)) = hash::recorded_hpte(KERNEL_SPACE, address + i * FRAME_SIZE, size, entry) {
                kassert!(hpte.v & hpt::v::VALID != 0, "subpage {i}: slot {ptex:#x} invalid");
                kassert_eq!(hpte.r & hpt::r::RPN_MASK & !0xffff, run.address() + i * FRAME_SIZE);
                present.push(i);
            }
        }
        kassert_eq!(present, touched);
        let (old, tables) = unmap_quietly(address)?;
        HASH_MMU.flush_page(KERNEL_SPACE, address, PageSize::Huge2M, old, Scope::Global);
        release(&tables);
        for &i in &touched {
            kassert!(
                hash::recorded_hpte(KERNEL_SPACE, address + i * FRAME_SIZE, size, entry).is_none(),
                "subpage {i} still recorded"
            );
            kassert_eq!(touch(address + i * FRAME_SIZE), Err(crate::trap::vector::DATA_STORAGE));
        }
        Ok(())
    })();
    if leaf(address).is_ok() {
        let (old, tables) = unmap_quietly(address)?;
        HASH_MMU.flush_page(KERNEL_SPACE, address, PageSize::Huge2M, old, Scope::Global);
        release(&tables);
    }
    mm::free_contiguous(run, FRAMES);
    result
}

/// The collapse flush: the HPTEs that the base PTEs of a PTE table recorded
/// are all gone after flush_hash_table_pmd_range.
#[ktest]
fn flush_hash_table_pmd_range_removes_all(_: &Env<'_>) -> TestResult {
    require_hash()?;
    const PAGES: u64 = 32;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let start = TEST_AREA + 0x8000_0000;
    for i in 0..PAGES {
        map(start + i * FRAME_SIZE, frame, PageSize::Base)?;
    }
    let touched = [1u64, 2, 17, 30];
    for &i in &touched {
        kassert!(touch(start + i * FRAME_SIZE).is_ok());
    }
    let mut slots = alloc::vec::Vec::new();
    let mut old_ptes = alloc::vec::Vec::new();
    let mut unhooked = alloc::vec::Vec::new();
    for i in 0..PAGES {
        let (entry, size) = leaf(start + i * FRAME_SIZE)?;
        if let Some((ptex, _)) = hash::recorded_hpte(KERNEL_SPACE, start + i * FRAME_SIZE, size, entry) {
            slots.push((i, ptex));
        }
        let (old, tables) = unmap_quietly(start + i * FRAME_SIZE)?;
        old_ptes.push(old);
        unhooked.extend_from_slice(&tables);
    }
    HASH_MMU.flush_hash_table_pmd_range(KERNEL_SPACE, start, &old_ptes, Scope::Global);
    release(&unhooked);
    mm::free_frame(frame);
    kassert_eq!(slots.iter().map(|&(i, _)| i).collect::<alloc::vec::Vec<_>>(), touched);
    for (i, ptex) in slots {
        let hpte = hash::table().read(ptex).map_err(|e| fail(alloc::format!("reading the HPT: {e:?}")))?;
        let vpn = hash::page_vpn(KERNEL_SPACE, start + i * FRAME_SIZE).ok_or_else(|| fail("no segment"))?;
        kassert!(
            hpte.v & hpt::v::VALID == 0 || !hpt::v_matches(hpte.v, vpn, hpt::SegmentSize::T1),
            "subpage {i}'s HPTE survived"
        );
    }
    Ok(())
}

/// Valid HPTEs that translate the 64 KiB page at `address` (kernel space),
/// in its primary and secondary groups.
fn hptes_for(address: u64) -> Result<usize, Failure> {
    let vpn = hash::page_vpn(KERNEL_SPACE, address).ok_or_else(|| fail("no segment"))?;
    let page_hash = hash::page_hash(KERNEL_SPACE, address).ok_or_else(|| fail("no segment"))?;
    let mut found = 0;
    for secondary in [false, true] {
        let group = hash::geometry().group_slot(page_hash, secondary);
        for quad in (0..hpt::HPTES_PER_GROUP).step_by(4) {
            let four = hash::table().read4(group + quad).map_err(|e| fail(alloc::format!("reading the HPT: {e:?}")))?;
            found += four
                .iter()
                .filter(|h| h.v & hpt::v::VALID != 0 && hpt::v_matches(h.v, vpn, hpt::SegmentSize::T1))
                .count();
        }
    }
    Ok(found)
}

/// Two CPUs faulting on one page at once both insert an HPTE, and the
/// second may read the PTE after the first recorded its slot. Played here
/// in sequence (the second hash_page reads the recorded PTE and inserts
/// anyway): one HPTE must remain, the recorded one. Two used to remain, the
/// first recorded nowhere, surviving every flush of the page (found by the
/// stress suite as writes lost after collapse freed the page).
#[ktest]
fn second_fault_on_a_page_leaves_one_hpte(_: &Env<'_>) -> TestResult {
    require_hash()?;
    const FRAMES: u64 = (2 << 20) / FRAME_SIZE;
    let small = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let huge = mm::alloc_contiguous(FRAMES, FRAMES).ok_or_else(|| fail("no 2 MiB run"))?;
    let small_at = TEST_AREA + 0xc000_0000;
    let huge_at = TEST_AREA + 0xc020_0000;
    map(small_at, small, PageSize::Base)?;
    map(huge_at, huge, PageSize::Huge2M)?;
    let result = (|| {
        for address in [small_at, huge_at + 3 * FRAME_SIZE] {
            for round in 1..=3 {
                let section = kernel::mm::pagetable::ReadSide::enter::<crate::percpu::IrqsOff>();
                let hashed = hash::hash_page(address, section.read_side());
                drop(section);
                hashed.map_err(|e| fail(alloc::format!("hash_page: {e:?}")))?;
                kassert_eq!((round, hptes_for(address)?), (round, 1));
            }
            kassert!(touch(address).is_ok());
        }
        // The recorded one is the one left: the flush leaves none.
        for (address, size) in [(small_at, PageSize::Base), (huge_at, PageSize::Huge2M)] {
            let (old, tables) = unmap_quietly(address)?;
            HASH_MMU.flush_page(KERNEL_SPACE, address, size, old, Scope::Global);
            release(&tables);
        }
        kassert_eq!(hptes_for(small_at)?, 0);
        kassert_eq!(hptes_for(huge_at + 3 * FRAME_SIZE)?, 0);
        Ok(())
    })();
    for (address, size) in [(small_at, PageSize::Base), (huge_at, PageSize::Huge2M)] {
        if leaf(address).is_ok() {
            let (old, tables) = unmap_quietly(address)?;
            HASH_MMU.flush_page(KERNEL_SPACE, address, size, old, Scope::Global);
            release(&tables);
        }
    }
    mm::free_frame(small);
    mm::free_contiguous(huge, FRAMES);
    result
}

/// A dead address space's HPTE that no PTE records (as a fault that
/// inserted after an unprotected collapse's flush leaves one) outlives the
/// teardown, which removes only recorded ones; the context is then not
/// handed out again until the scrub has read the table and removed it.
#[ktest]
fn dead_context_waits_for_the_scrub(_: &Env<'_>) -> TestResult {
    require_hash()?;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let result = (|| {
        let space = mmu::AddressSpace::new().map_err(|e| fail(alloc::format!("new space: {e:?}")))?;
        let id = space.id();
        let ea = 0x1000_0000;
        let vpn = hash::page_vpn(id, ea).ok_or_else(|| fail("no segment"))?;
        let group = hash::geometry().group_slot(hpt::hash(vpn, hpt::PAGE_SHIFT, hpt::SegmentSize::T1), false);
        let v = hpt::encode_v(vpn, hpt::SegmentSize::T1);
        hash::table()
            .insert(group, v, hpt::encode_r(frame.address(), true, true, false))
            .map_err(|e| fail(alloc::format!("inserting the HPTE: {e:?}")))?;
        drop(space);
        // The teardown removes what the tree records; this one it cannot see.
        kassert_eq!(hash::hptes_of(id, ea).len(), 1);
        kassert!(mmu::waits_for_scrub(id), "context {id} free again while its HPTE is in the table");
        let next = mmu::AddressSpace::new().map_err(|e| fail(alloc::format!("new space: {e:?}")))?;
        kassert!(next.id() != id, "context {id} handed out again before the scrub");
        drop(next);
        mmu::scrub_dead_spaces();
        let left = hash::hptes_of(id, ea);
        kassert!(left.is_empty(), "the scrub left the dead context's HPTE: {left:?}");
        kassert!(!mmu::waits_for_scrub(id));
        Ok(())
    })();
    // After the scrub nothing translates to the frame any more.
    mm::free_frame(frame);
    result
}

/// A fault inserts the HPTE of the page it mapped itself (the preload,
/// handed the leaf the fault set), for the faulting 64 KiB piece only of a
/// huge leaf, and only in the space active on this CPU. The resolver is
/// called directly, with no access retried after it, so every HPTE found
/// is the preload's.
#[ktest]
fn a_fault_preloads_the_hpte_of_the_leaf_it_set(_: &Env<'_>) -> TestResult {
    require_hash()?;
    const SMALL: u64 = 0x1000_0000;
    const HUGE: u64 = 0x4000_0000;
    const OTHER: u64 = 0x1010_0000;
    let rw = Prot::READ | Prot::WRITE;
    let mm = crate::selftests::new_mm()?;
    crate::selftests::ok(mm.map(SMALL, 2 * FRAME_SIZE, rw, false))?;
    crate::selftests::ok(mm.map(OTHER, FRAME_SIZE, rw, false))?;
    crate::selftests::ok(mm.map(HUGE, 32 * FRAME_SIZE, rw, true))?;
    let id = mm.with_arch(|arch| arch.space().id());
    let piece = HUGE + 3 * FRAME_SIZE;
    crate::selftests::inside(&mm, || {
        crate::selftests::ok(mm.fault(SMALL, true))?;
        crate::selftests::ok(mm.fault(piece, true))
    })?;
    // Not active on this CPU: no preload (the space's first access inserts).
    crate::selftests::ok(mm.fault(OTHER, true))?;
    let entry_at = |address: u64| {
        mm.with_arch(|arch| arch.tree().translate(address))
            .ok_or_else(|| fail(alloc::format!("{address:#x} not mapped")))
    };
    let small = entry_at(SMALL)?;
    kassert!(hash::is_hashed(small.entry), "the fault recorded no HPTE: {:?}", small.entry);
    let (_, hpte) =
        hash::recorded_hpte(id, SMALL, PageSize::Base, small.entry).ok_or_else(|| fail("slot not readable"))?;
    kassert_eq!(hash::hpte_page(hpte.r), small.entry.physical());
    kassert_eq!(hash::hptes_of(id, SMALL).len(), 1);
    let huge = entry_at(piece)?;
    kassert_eq!(huge.size, PageSize::Huge2M);
    let (_, hpte) = hash::recorded_hpte(id, piece, PageSize::Huge2M, huge.entry)
        .ok_or_else(|| fail("no HPTE recorded for the faulting piece"))?;
    kassert_eq!(hash::hpte_page(hpte.r), huge.entry.physical() + 3 * FRAME_SIZE);
    kassert_eq!(hash::hptes_of(id, piece).len(), 1);
    kassert_eq!(hash::hptes_of(id, HUGE).len(), 0);
    let other = entry_at(OTHER)?;
    kassert!(!hash::is_hashed(other.entry), "preloaded for a space not active here: {:?}", other.entry);
    kassert_eq!(hash::hptes_of(id, OTHER).len(), 0);
    Ok(())
}
