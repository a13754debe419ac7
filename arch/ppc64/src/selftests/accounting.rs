//! Runs last: after every other suite, each frame, page-table page and pin
//! is back. The frame count is compared with the one taken just before the
//! first test (page-table frees waiting for a grace period are let through
//! first), and every page descriptor is audited: no pin left, no anonymous
//! page still referenced once its address space is gone.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::ktest::{ktest, Env, TestResult};
use kernel::mm::page::{flags, PIN_BIAS};
use kernel::mm::{self};
use kernel::{kassert, kassert_eq};

use crate::mmu;

use super::settled_free_frames;

static BASELINE_FREE: AtomicU64 = AtomicU64::new(0);
static BASELINE_DEFERRED: AtomicU64 = AtomicU64::new(0);

/// Records the baseline; called right before the first test.
pub fn record_baseline() {
    BASELINE_FREE.store(mm::free_frames(), Ordering::Release);
    BASELINE_DEFERRED.store(mmu::deferred_kernel_tables() as u64, Ordering::Release);
}

#[ktest]
fn every_frame_table_and_pin_is_back(_: &Env<'_>) -> TestResult {
    let free = settled_free_frames();
    kassert_eq!(mmu::deferred_kernel_tables(), 0);
    let mut pinned = 0;
    let mut anonymous = 0;
    let mut first = None;
    for (index, page) in mm::pages().descriptors().iter().enumerate() {
        let count = page.refcount();
        let leaked_pin = count >= PIN_BIAS;
        let leaked_page = page.flags() & flags::ANONYMOUS != 0 && count > 0;
        pinned += leaked_pin as u64;
        anonymous += leaked_page as u64;
        if (leaked_pin || leaked_page) && first.is_none() {
            first = Some((index, count, page.mapcount(), page.flags()));
        }
    }
    kassert!(
        pinned == 0 && anonymous == 0,
        "{pinned} pinned and {anonymous} anonymous pages left; first (index, refcount, mapcount, flags): {first:?}"
    );
    // Tables deferred at the baseline are free now: count them as free then.
    let baseline = BASELINE_FREE.load(Ordering::Acquire);
    kassert!(
        free >= baseline && free <= baseline + BASELINE_DEFERRED.load(Ordering::Acquire),
        "{} frames free after the tests, {baseline} before ({} lost)",
        free,
        baseline as i64 - free as i64
    );
    Ok(())
}
