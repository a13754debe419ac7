//! Self-tests of `pmdp_collapse_flush` under the MMU in use: the PMD is
//! cleared and nothing translates through the old PTE table any more, and
//! with the IPI it waits for a CPU inside a lockless walk (interrupts off),
//! without it it does not.

use core::sync::atomic::Ordering;

use kernel::cmdline::CollapseIpi;
use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::mm::mmu::KERNEL_SPACE;
use kernel::mm::pagetable::{PageSize, Prot};
use kernel::mm::{self, FRAME_SIZE, LINEAR_MAP_BASE};
use kernel::{kassert, kassert_eq, kskip, time};

use crate::exceptions;
use crate::mmu;
use crate::smp;
use crate::trap::vector;

use super::{walker_until_released_or_called, RELEASE, SAW_CALL};

const AREA: u64 = LINEAR_MAP_BASE | 0x000c_0000_0000_0000;
const PAGES: u64 = 32;

/// Maps 32 base pages of the 2 MiB at AREA to one frame and touches them.
fn map_small_pages(frame: mm::Frame) -> TestResult {
    for i in 0..PAGES {
        mmu::with_kernel_tree(|tree| tree.map(AREA + i * FRAME_SIZE, frame.address(), PageSize::Base, Prot::READ))
            .ok_or_else(|| fail("no kernel tree"))?
            .map_err(|e| fail(alloc::format!("{e:?}")))?;
        kassert!(exceptions::try_load(AREA + i * FRAME_SIZE).is_ok());
    }
    Ok(())
}

/// Collapses with `ipi`, checks the old pages no longer translate, puts the
/// table back and unmaps. Returns the time the collapse flush took.
fn collapse_and_restore(ipi: CollapseIpi) -> Result<u64, kernel::ktest::Failure> {
    let start = time::now();
    let collapsed = mmu::with_kernel_tree(|tree| mmu::pmdp_collapse_flush(KERNEL_SPACE, tree, AREA, ipi))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("{e:?}")))?;
    let took = time::now() - start;
    kassert_eq!(collapsed.ptes.iter().filter(|e| e.is_leaf()).count() as u64, PAGES);
    for i in [0, 7, 31] {
        kassert_eq!(exceptions::try_load(AREA + i * FRAME_SIZE), Err(vector::DATA_STORAGE));
    }
    mmu::with_kernel_tree(|tree| tree.restore_pmd_table(AREA, collapsed.table))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("{e:?}")))?;
    kassert!(exceptions::try_load(AREA).is_ok(), "restored table does not translate");
    Ok(took)
}

fn unmap_small_pages() {
    for i in 0..PAGES {
        if let Some(Ok(gone)) = mmu::with_kernel_tree(|tree| tree.unmap(AREA + i * FRAME_SIZE)) {
            if let Some(flush) = mmu::flusher() {
                flush.flush_page(
                    KERNEL_SPACE,
                    AREA + i * FRAME_SIZE,
                    gone.size,
                    gone.entry,
                    kernel::mm::mmu::Scope::Global,
                );
            }
            mmu::release_kernel_tables(&gone.tables);
        }
    }
}

#[ktest]
fn pmdp_collapse_flush_unhooks_the_pte_table(_: &Env<'_>) -> TestResult {
    if mmu::flusher().is_none() {
        kskip!("translation is off (mmu=off)");
    }
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let result =
        map_small_pages(frame).and_then(|()| collapse_and_restore(kernel::mm::knobs::collapse_ipi()).map(|_| ()));
    unmap_small_pages();
    mm::free_frame(frame);
    result
}

/// Collapses with `ipi` while another CPU sits in a lockless walk; returns
/// whether the collapse flush waited for the walk. Decided by events, not
/// time: the walker stays inside until a cross-call waits for it (the IPI:
/// collapse is held back until it leaves) or until collapse is done and
/// releases it (no IPI).
fn collapse_against_walker(ipi: CollapseIpi) -> Result<bool, kernel::ktest::Failure> {
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let result = (|| {
        map_small_pages(frame)?;
        let walker = walker_until_released_or_called()?;
        let collapsed = collapse_and_restore(ipi);
        RELEASE.store(1, Ordering::Release);
        smp::wait_for(walker).ok_or_else(|| fail("walker did not finish"))?;
        collapsed?;
        Ok(SAW_CALL.load(Ordering::Acquire) != 0)
    })();
    unmap_small_pages();
    mm::free_frame(frame);
    result
}

fn require_translation_and_cpus(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    if mmu::flusher().is_none() {
        kskip!("translation is off (mmu=off)");
    }
    Ok(())
}

/// With the IPI (serialize_against_pte_lookup) the flush returns only after
/// the walker has left.
#[ktest]
fn ipi_waits_for_lockless_walkers(env: &Env<'_>) -> TestResult {
    require_translation_and_cpus(env)?;
    kassert!(
        collapse_against_walker(CollapseIpi::On)?,
        "collapse flush with the IPI returned while the walker was inside"
    );
    Ok(())
}

/// Without it (radix today) the flush does not wait: that is why GUP-fast
/// must recheck the PMD.
#[ktest]
fn no_ipi_does_not_wait(env: &Env<'_>) -> TestResult {
    require_translation_and_cpus(env)?;
    kassert!(!collapse_against_walker(CollapseIpi::Off)?, "collapse flush without the IPI waited for the walker");
    Ok(())
}

/// `collapse_ipi=` decides: auto waits under hash and not under radix.
#[ktest]
fn command_line_policy_decides(env: &Env<'_>) -> TestResult {
    require_translation_and_cpus(env)?;
    let policy = kernel::mm::knobs::collapse_ipi();
    kassert_eq!(policy, env.options.collapse_ipi);
    let expected = policy.enabled(mmu::mode() == mmu::Mode::Hash);
    let waited = collapse_against_walker(policy)?;
    kernel::println!("# collapse_ipi={policy:?} under {}: waited for the walker: {waited}", mmu::backend().name());
    kassert_eq!(waited, expected);
    Ok(())
}
