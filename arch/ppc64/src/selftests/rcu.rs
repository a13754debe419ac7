//! Self-tests of sched-RCU on real CPUs: a grace period waits for a CPU
//! with interrupts off, callbacks run after one and in order, and a page
//! table unhooked while another CPU walks it locklessly stays allocated
//! until that walk ends.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::mm::mmu::{Scope, KERNEL_SPACE};
use kernel::mm::pagetable::{self, PageSize, Prot};
use kernel::mm::{self, LINEAR_MAP_BASE};
use kernel::{kassert, kassert_eq, kskip, rcu, time};

use crate::{mmu, smp};

use super::{interrupts_off_elsewhere, online_secondaries, SPIN_END};

const SECTION_US: u64 = 40_000;

/// Starts a read-side section (interrupts off) on a secondary and waits
/// until it is in it. Returns the CPU.
fn start_section_elsewhere() -> Result<usize, kernel::ktest::Failure> {
    interrupts_off_elsewhere(SECTION_US)
}

#[ktest]
fn synchronize_waits_for_interrupts_off_cpu(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let target = start_section_elsewhere()?;
    rcu::synchronize();
    let returned = time::now();
    smp::wait_for(target).ok_or_else(|| fail("section did not end"))?;
    let ended = SPIN_END.load(Ordering::Acquire);
    kassert!(
        returned >= ended,
        "synchronize returned {} us before the section ended",
        time::ticks_to_us(ended - returned)
    );
    Ok(())
}

static NEXT_EXPECTED: AtomicU64 = AtomicU64::new(0);
static OUT_OF_ORDER: AtomicU64 = AtomicU64::new(0);
static FIRST_RAN_AT: AtomicU64 = AtomicU64::new(0);

fn in_order(sequence: u64) {
    if sequence == 0 {
        FIRST_RAN_AT.store(time::now(), Ordering::Release);
    }
    if NEXT_EXPECTED.swap(sequence + 1, Ordering::AcqRel) != sequence {
        OUT_OF_ORDER.fetch_add(1, Ordering::Relaxed);
    }
}

/// Callbacks queued while another CPU is in a read-side section run only
/// after it ends, all of them, in order (2000 of them, queued in bursts).
#[ktest]
fn callbacks_run_after_grace_period_in_order(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    const CALLBACKS: u64 = 2000;
    NEXT_EXPECTED.store(0, Ordering::Release);
    OUT_OF_ORDER.store(0, Ordering::Release);
    let run_before = rcu::callbacks_run();
    let target = start_section_elsewhere()?;
    for sequence in 0..CALLBACKS {
        rcu::call(in_order, sequence);
        if sequence % 100 == 0 {
            rcu::quiescent_state(); // this CPU moves on; the other is still inside
        }
    }
    let deadline = time::deadline_us(5_000_000);
    while rcu::callbacks_run() - run_before < CALLBACKS && time::now() < deadline {
        rcu::quiescent_state();
        core::hint::spin_loop();
    }
    smp::wait_for(target).ok_or_else(|| fail("section did not end"))?;
    kassert_eq!(rcu::callbacks_run() - run_before, CALLBACKS);
    kassert_eq!(OUT_OF_ORDER.load(Ordering::Relaxed), 0);
    kassert_eq!(NEXT_EXPECTED.load(Ordering::Acquire), CALLBACKS);
    kassert!(
        FIRST_RAN_AT.load(Ordering::Acquire) >= SPIN_END.load(Ordering::Acquire),
        "a callback ran inside the section"
    );
    Ok(())
}

const WALKED: u64 = LINEAR_MAP_BASE | 0x000b_0000_0000_0000;
static WALKING: AtomicU64 = AtomicU64::new(0);
static WALK_ENDED: AtomicU64 = AtomicU64::new(0);
static GO_ON: AtomicU64 = AtomicU64::new(0);

/// A lockless walker on another CPU: interrupts off, walk to the leaf,
/// hold on to its table until told to go on, read it again, leave.
fn lockless_walker(_: u64) -> u64 {
    let section = pagetable::ReadSide::enter::<crate::percpu::IrqsOff>();
    let found = pagetable::walk(mmu::kernel_root(), WALKED, mm::phys_to_virt, section.read_side());
    WALKING.store(if found.is_some() { 1 } else { 2 }, Ordering::Release);
    let deadline = time::deadline_us(2_000_000);
    while GO_ON.load(Ordering::Acquire) == 0 && time::now() < deadline {
        core::hint::spin_loop();
    }
    // Still the walker's table: reading it is what must stay safe.
    let entry = found.map(|f| f.slot.load(Ordering::Acquire).0).unwrap_or(u64::MAX);
    WALK_ENDED.store(time::now(), Ordering::Release);
    drop(section);
    entry
}

#[ktest]
fn unhooked_table_outlives_lockless_walk(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let Some(flush) = mmu::flusher() else { kskip!("translation is off (mmu=off)") };
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    // Start with nothing deferred, so what waits below is this test's.
    rcu::synchronize();
    mmu::release_kernel_tables(&[]);
    kassert_eq!(mmu::deferred_kernel_tables(), 0);
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    mmu::with_kernel_tree(|tree| tree.map(WALKED, frame.address(), PageSize::Base, Prot::READ))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("{e:?}")))?;
    WALKING.store(0, Ordering::Release);
    GO_ON.store(0, Ordering::Release);
    kassert!(smp::post(target, lockless_walker, 0));
    while WALKING.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    kassert_eq!(WALKING.load(Ordering::Acquire), 1);
    // Unhook the walker's tables and release them: they must wait.
    let gone = mmu::with_kernel_tree(|tree| tree.unmap(WALKED))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("{e:?}")))?;
    flush.flush_page(KERNEL_SPACE, WALKED, gone.size, gone.entry, Scope::Global);
    kassert!(!gone.tables.is_empty(), "the walk's tables were not unhooked");
    mmu::release_kernel_tables(&gone.tables);
    // Give grace periods every chance to (wrongly) finish.
    let until = time::deadline_us(20_000);
    while time::now() < until {
        rcu::quiescent_state();
    }
    mmu::release_kernel_tables(&[]);
    let still_deferred = mmu::deferred_kernel_tables();
    GO_ON.store(1, Ordering::Release);
    let entry = smp::wait_for(target).ok_or_else(|| fail("walker did not finish"))?;
    rcu::synchronize();
    mmu::release_kernel_tables(&[]);
    let after = mmu::deferred_kernel_tables();
    mm::free_frame(frame);
    kassert!(
        still_deferred == gone.tables.len(),
        "{} of {} tables freed while the walker was in them",
        gone.tables.len() - still_deferred,
        gone.tables.len()
    );
    kassert!(entry == 0, "the walker read {entry:#x} from its table, not the cleared entry");
    kassert_eq!(after, 0);
    Ok(())
}
