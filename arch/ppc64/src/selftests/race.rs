//! The seed thread's race on two real CPUs, driven by the test-only
//! synchronisation points of GUP-fast (kernel/src/mm/gup.rs):
//!
//!   CPU A (collapse)                       CPU B (GUP-fast, interrupts off)
//!                                          read PMD, read PTE
//!   pmdp_collapse_flush  [IPI: waits for B]
//!   isolation check: nothing pinned
//!                                          pin the page
//!                                          recheck PTE: unchanged
//!                                          [recheck PMD: changed -> back off]
//!   copy, clear PTEs, install huge PMD,
//!   release the old pages
//!                                          return the (stale) page
//!
//! Both sides are the kernel's: an `Mm` of 32 small pages in a THP region,
//! `Mm::collapse_with` on A and `Mm::pin_page_fast_with` on B (a thread of
//! the process). Each test fixes `gup_pmd_recheck` and `collapse_ipi` and
//! checks the outcome: with both off GUP returns a page collapse discarded; the
//! recheck makes GUP back off; the IPI makes collapse see the pin and give
//! up. B waits for A at its synchronisation point until A has either passed
//! its isolation check or is held back by the IPI waiting for B (A spins in
//! its cross-call until B answers): events, not timeouts, so a slow host
//! cannot change an outcome.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::cmdline::CollapseIpi;
use kernel::ktest::{fail, ktest, require_cpus, Env, Failure, TestResult};
use kernel::mm::gup::{GupError, Point, RaceHooks};
use kernel::mm::knobs::{self, RaceSettings};
use kernel::mm::pagetable::Prot;
use kernel::mm::{self, Frame, FRAME_SIZE};
use kernel::{kassert, kassert_eq, kskip, time};

use crate::mmu;
use crate::smp;
use crate::vm::{self, UserMm};

use super::{new_mm, ok, online_secondaries, physical_at, settled_free_frames};

const BASE: u64 = 0x4000_0000; // a 2 MiB-aligned low address of the test's space
const PAGES: u64 = 32;
const TARGET: u64 = 5;
static READ_DONE: AtomicU64 = AtomicU64::new(0);
static ISOLATED: AtomicU64 = AtomicU64::new(0);
/// B saw A's IPI waiting for it: A was held back until B's walk ended.
static B_HELD_BACK_A: AtomicU64 = AtomicU64::new(0);

/// B's synchronisation points: after reading, tell A and wait until A has
/// passed its isolation check, or until A waits for B's answer to its IPI
/// (A cannot get past the flush while B has interrupts off, so B goes on).
struct CrossCpu;

impl RaceHooks for CrossCpu {
    fn at(&self, point: Point) {
        if point == Point::GupRead {
            READ_DONE.store(1, Ordering::Release);
            wait_until(|| ISOLATED.load(Ordering::Acquire) != 0 || smp::caller_waiting_here());
            if ISOLATED.load(Ordering::Acquire) == 0 && smp::caller_waiting_here() {
                B_HELD_BACK_A.store(1, Ordering::Release);
            }
        }
    }
}

/// A guard against a hang only: each side waits for an event of the other.
const HANG_GUARD_US: u64 = 10_000_000;

/// Spins until `event()`; false if the hang guard ran out first.
fn wait_until(event: impl Fn() -> bool) -> bool {
    let deadline = time::deadline_us(HANG_GUARD_US);
    while !event() {
        if time::now() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn wait_for_flag(flag: &AtomicU64) -> bool {
    wait_until(|| flag.load(Ordering::Acquire) != 0)
}

/// What every two-CPU race test starts from: 2+ CPUs, translation on, CPU B
/// (the first secondary), and the free-frame count once earlier tests'
/// deferred table frees are through (so that it moves only with this test).
fn two_cpus(env: &Env<'_>) -> Result<(usize, u64), Failure> {
    require_cpus(env, 2)?;
    if mmu::flusher().is_none() {
        kskip!("translation is off (mmu=off)");
    }
    let b = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    Ok((b, settled_free_frames()))
}

/// Encodes a GUP result for the mailbox: the frame, or 1..=5 for an error.
fn encode(result: Result<Frame, GupError>) -> u64 {
    match result {
        Ok(frame) => frame.address(),
        Err(GupError::NotMapped) => 1,
        Err(GupError::ReadOnly) => 2,
        Err(GupError::Freed) => 3,
        Err(GupError::BackedOff) => 4,
        Err(GupError::NoMemory) => 5,
    }
}

/// The address space of the running race, for CPU B: a leaked Arc while B
/// may use it (`run` takes it back).
static MM: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

#[allow(unsafe_code)]
fn race_mm() -> &'static UserMm {
    // SAFETY: MM holds a leaked Arc<UserMm> from before B is started until
    // after B has finished (see `run`).
    unsafe { &*(MM.load(Ordering::Acquire) as *const UserMm) }
}

/// The GUP-fast settings of the running race, for CPU B (a `RaceSettings`
/// of the recheck only: 0 configured, 1 off, 2 on).
fn encode_recheck(settings: RaceSettings) -> u64 {
    settings.gup_pmd_recheck.map_or(0, |on| 1 + on as u64)
}

fn decode_recheck(argument: u64) -> RaceSettings {
    match argument {
        0 => RaceSettings::CONFIGURED,
        n => RaceSettings::recheck(n == 2),
    }
}

/// CPU B: one GUP-fast pin of the target page, as a thread of the process
/// (interrupts off throughout, its CPU marked as a user of the space).
fn gup_on_b(recheck: u64) -> u64 {
    encode(race_mm().pin_page_fast_with(BASE + TARGET * FRAME_SIZE, true, decode_recheck(recheck), &CrossCpu))
}

struct Outcome {
    gup: u64,
    /// After everything: a write through GUP's pin, read back through the
    /// mapping — None when GUP pinned nothing.
    write_visible: Option<bool>,
    collapsed: bool,
    b_waited_alone: bool,
    old: Frame,
    mapped_now: u64,
    old_refcount: u32,
}

/// Collapse's side of the synchronisation: after its isolation check it
/// lets B go on and waits for B to finish.
struct CollapseSide {
    b: usize,
    b_result: core::cell::Cell<Option<u64>>,
}

impl RaceHooks for CollapseSide {
    fn at(&self, point: Point) {
        if point == Point::CollapseIsolated {
            ISOLATED.store(1, Ordering::Release);
            self.b_result.set(smp::wait_for(self.b));
        }
    }
}

/// Starts `walker(argument)` on CPU `b` and returns once it has read the
/// PMD and PTE and waits at its synchronisation point.
fn start_walker(b: usize, walker: fn(u64) -> u64, argument: u64) -> TestResult {
    READ_DONE.store(0, Ordering::Release);
    ISOLATED.store(0, Ordering::Release);
    B_HELD_BACK_A.store(0, Ordering::Release);
    kassert!(smp::post(b, walker, argument), "CPU {b} busy");
    while READ_DONE.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    Ok(())
}

/// A: the kernel's collapse of BASE (Mm::collapse_with); B goes on after
/// the isolation check. Returns the outcome and B's result if B finished there.
fn collapse_against(b: usize, mm: &UserMm, settings: RaceSettings) -> (kernel::mm::collapse::Outcome, Option<u64>) {
    let side = CollapseSide { b, b_result: core::cell::Cell::new(None) };
    let outcome = mm.collapse_with(BASE, settings, &side);
    (outcome, side.b_result.take())
}

/// A new address space with 32 small anonymous pages faulted in at BASE,
/// each marked with `marker + index`, in a region then advised for THP
/// (MADV_HUGEPAGE) so that collapse may merge them. Returns it, shared with
/// CPU B through MM, and the small pages' frames.
#[allow(unsafe_code)]
fn small_pages_world(marker: u64) -> Result<(Arc<UserMm>, Vec<Frame>), Failure> {
    let mm = new_mm()?;
    ok(mm.map(BASE, PAGES * FRAME_SIZE, Prot::READ | Prot::WRITE, false))?;
    let mut small = Vec::new();
    for i in 0..PAGES {
        ok(mm.fault(BASE + i * FRAME_SIZE, true))?;
        let physical = physical_at(&mm, BASE + i * FRAME_SIZE).ok_or_else(|| fail("fault mapped nothing"))?;
        // SAFETY: the page just faulted in, through the linear map.
        unsafe { (mm::phys_to_virt(physical) as *mut u64).write_volatile(marker + i) };
        small.push(Frame::from_address(physical).ok_or_else(|| fail("unaligned page"))?);
    }
    ok(mm.set_huge(BASE, PAGES * FRAME_SIZE, true))?;
    MM.store(Arc::into_raw(mm.clone()) as usize, Ordering::Release);
    Ok((mm, small))
}

/// Takes back the reference `small_pages_world` lent to CPU B.
#[allow(unsafe_code)]
fn release_world() {
    let lent = MM.swap(0, Ordering::AcqRel);
    if lent != 0 {
        // SAFETY: the Arc leaked by small_pages_world; B has finished.
        drop(unsafe { Arc::from_raw(lent as *const UserMm) });
    }
}

/// One race with the knobs `settings` fixes (the others as configured).
#[allow(unsafe_code)]
fn run(settings: RaceSettings, env: &Env<'_>) -> Result<Outcome, Failure> {
    let (recheck_pmd, ipi) = (settings.gup_pmd_recheck(), settings.collapse_ipi());
    let (b, free_before) = two_cpus(env)?;
    let pages = mm::pages();
    let outcome = {
        let (mm, small) = small_pages_world(0x100)?;
        // B starts its walk and stops after reading PMD and PTE.
        start_walker(b, gup_on_b, encode_recheck(settings))?;
        let (outcome, b_result) = collapse_against(b, &mm, settings);
        let gup_result = match b_result {
            Some(result) => result,
            None => smp::wait_for(b).ok_or_else(|| fail("CPU B did not finish"))?,
        };
        release_world();
        let collapsed = match outcome {
            kernel::mm::collapse::Outcome::Collapsed => true,
            kernel::mm::collapse::Outcome::AbortedPinned(_) => false,
            other => return Err(fail(alloc::format!("collapse failed: {other:?}"))),
        };
        let old = small[TARGET as usize];
        let mapped_now = physical_at(&mm, BASE + TARGET * FRAME_SIZE).unwrap_or(0);
        let old_refcount = pages.frame(old).map_or(0, |p| p.refcount());
        // What a device would do with the pin: write into the pinned page.
        // Does the process see it through its mapping?
        let write_visible = (gup_result > 5).then(|| {
            const MARKER: u64 = 0xd1e7_0000_0000_0005;
            // SAFETY: the pinned frame, through the linear map.
            unsafe { ((mm::phys_to_virt(gup_result) as u64 + 0x40) as *mut u64).write_volatile(MARKER) };
            vm::activate(&mm);
            let seen = crate::exceptions::try_load(BASE + TARGET * FRAME_SIZE + 0x40);
            mmu::deactivate();
            seen == Ok(MARKER)
        });
        kernel::println!(
            "# recheck={recheck_pmd} ipi={ipi:?}: GUP {}, collapse {}, B's wait {}",
            match gup_result {
                1..=5 => ["not mapped", "read-only", "freed", "backed off", "no memory"][gup_result as usize - 1],
                _ => "pinned a page",
            },
            if collapsed { "went ahead" } else { "gave up (page pinned)" },
            if B_HELD_BACK_A.load(Ordering::Acquire) != 0 {
                "ended by A's IPI waiting for B (A held back)"
            } else {
                "ended by A's isolation check"
            }
        );
        // GUP's unpin: the last reference of a page collapse discarded.
        if gup_result > 5 {
            mm.unpin(Frame::from_address(gup_result).ok_or_else(|| fail("bad frame"))?);
        }
        Outcome {
            gup: gup_result,
            write_visible,
            collapsed,
            b_waited_alone: B_HELD_BACK_A.load(Ordering::Acquire) != 0,
            old,
            mapped_now,
            old_refcount,
        }
        // The address space goes here, and everything it mapped with it.
    };
    // Accounting: every frame and table is back once the grace period is over.
    kassert_eq!(settled_free_frames(), free_before);
    Ok(outcome)
}

#[ktest]
fn no_recheck_no_ipi_returns_a_discarded_page(env: &Env<'_>) -> TestResult {
    let o = run(RaceSettings::new(false, CollapseIpi::Off), env)?;
    kassert!(o.collapsed, "collapse gave up");
    kassert_eq!(o.gup, o.old.address());
    kassert!(o.mapped_now != o.old.address(), "the address still maps the pinned page");
    kassert_eq!(o.old_refcount, kernel::mm::page::PIN_BIAS);
    kassert_eq!(o.write_visible, Some(false));
    kernel::println!(
        "# counter-example: GUP pinned {:#x}; the address now maps {:#x}; a write through the pin is lost",
        o.gup,
        o.mapped_now
    );
    Ok(())
}

#[ktest]
fn pmd_recheck_backs_off(env: &Env<'_>) -> TestResult {
    let o = run(RaceSettings::new(true, CollapseIpi::Off), env)?;
    kassert!(o.collapsed, "collapse gave up");
    kassert_eq!(o.gup, 4); // BackedOff
    kassert_eq!(o.old_refcount, 0);
    Ok(())
}

#[ktest]
fn collapse_ipi_makes_collapse_give_up(env: &Env<'_>) -> TestResult {
    let o = run(RaceSettings::new(false, CollapseIpi::On), env)?;
    kassert!(o.b_waited_alone, "collapse got past the IPI while B was inside its walk");
    kassert!(!o.collapsed, "collapse went ahead over a pinned page");
    kassert_eq!(o.gup, o.old.address());
    kassert_eq!(o.mapped_now, o.old.address());
    kassert_eq!(o.write_visible, Some(true));
    Ok(())
}

/// Both: B, let go by the timeout, pins after A cleared the PMD, so its
/// recheck backs off before A's IPI completes; A then finds nothing pinned
/// and collapses. Safe: no one holds the discarded page.
#[ktest]
fn both_fixes(env: &Env<'_>) -> TestResult {
    let o = run(RaceSettings::new(true, CollapseIpi::On), env)?;
    kassert!(o.b_waited_alone, "collapse got past the IPI while B was inside its walk");
    kassert_eq!(o.gup, 4); // BackedOff
    kassert!(o.collapsed);
    kassert_eq!(o.old_refcount, 0);
    Ok(())
}

// --- The other order: collapse releases the old page before B rechecks --------

/// Set by B once it holds its pin, and by A once collapse has returned.
static PINNED: AtomicU64 = AtomicU64::new(0);
static COLLAPSE_DONE: AtomicU64 = AtomicU64::new(0);

/// B: read, let A pass its isolation check, pin, then wait until A's
/// collapse has released the old page before rechecking.
struct RecheckAfterRelease;

impl RaceHooks for RecheckAfterRelease {
    fn at(&self, point: Point) {
        match point {
            Point::GupRead => {
                READ_DONE.store(1, Ordering::Release);
                wait_for_flag(&ISOLATED);
            }
            Point::GupPinned => {
                PINNED.store(1, Ordering::Release);
                wait_for_flag(&COLLAPSE_DONE);
            }
            _ => {}
        }
    }
}

/// A: after the isolation check (nothing pinned yet), wait for B's pin,
/// then copy, install and release the old pages.
struct ReleaseBeforeRecheck;

impl RaceHooks for ReleaseBeforeRecheck {
    fn at(&self, point: Point) {
        if point == Point::CollapseIsolated {
            ISOLATED.store(1, Ordering::Release);
            wait_for_flag(&PINNED);
        }
    }
}

fn gup_recheck_after_release(_: u64) -> u64 {
    encode(race_mm().pin_page_fast_with(
        BASE + TARGET * FRAME_SIZE,
        true,
        RaceSettings::recheck(true),
        &RecheckAfterRelease,
    ))
}

/// The order the other race tests never run: collapse drops the mapping's
/// reference of the old page between B's pin and B's recheck, so B's
/// back-off drops the page's last reference. The page must go back to the
/// allocator then (Linux's gup_put_folio), not stay at refcount 0 owned by
/// nobody: the frame count afterwards shows a leak.
#[ktest]
fn backing_off_frees_a_page_collapse_released(env: &Env<'_>) -> TestResult {
    let (b, free_before) = two_cpus(env)?;
    let pages = mm::pages();
    {
        let (mm, small) = small_pages_world(0x300)?;
        PINNED.store(0, Ordering::Release);
        COLLAPSE_DONE.store(0, Ordering::Release);
        // The IPI would hold A back until B's walk ends: off, under both MMUs.
        start_walker(b, gup_recheck_after_release, 0)?;
        let outcome = mm.collapse_with(BASE, RaceSettings::ipi(CollapseIpi::Off), &ReleaseBeforeRecheck);
        COLLAPSE_DONE.store(1, Ordering::Release);
        let gup = smp::wait_for(b).ok_or_else(|| fail("CPU B did not finish"))?;
        release_world();
        kassert_eq!(outcome, kernel::mm::collapse::Outcome::Collapsed);
        kassert!(PINNED.load(Ordering::Acquire) != 0, "B never pinned");
        kassert_eq!(gup, 4); // BackedOff
        let old = small[TARGET as usize];
        kassert_eq!(pages.frame(old).map_or(0, |p| p.refcount()), 0);
        kassert!(
            pages.frame(old).is_some_and(|p| p.flags() == 0),
            "the released page's descriptor was not cleared (never freed)"
        );
    }
    // The leak shows here: one frame short.
    kassert_eq!(settled_free_frames(), free_before);
    Ok(())
}

// --- The old PTE table outlives the walkers inside it (Jann Horn's bug) --------

/// The PTE table B walked (its physical address), published by A.
static OLD_TABLE: AtomicU64 = AtomicU64::new(0);
/// Set by A once it has collapsed and then allocated new page tables.
static REUSE_DONE: AtomicU64 = AtomicU64::new(0);
/// What B saw of the old table after that, still inside its section:
/// 1 = every slot as collapse left it (empty), 2 = something else (reused).
static TABLE_SEEN: AtomicU64 = AtomicU64::new(0);

/// B: reads PMD and PTE, then, still with interrupts off and the old PMD's
/// table in hand, waits for A to collapse and to allocate page tables, and
/// looks at the old table.
struct HoldTheOldTable;

impl RaceHooks for HoldTheOldTable {
    #[allow(unsafe_code)]
    fn at(&self, point: Point) {
        if point == Point::GupRead {
            READ_DONE.store(1, Ordering::Release);
            if !wait_for_flag(&REUSE_DONE) {
                return;
            }
            let slots = mm::phys_to_virt(OLD_TABLE.load(Ordering::Acquire)) as *const u64;
            // SAFETY: the table B's walk read the PMD for; sched-RCU keeps it
            // allocated while this CPU has interrupts off (what is tested).
            let intact = (0..32).all(|i| unsafe { slots.add(i).read_volatile() } == 0);
            TABLE_SEEN.store(if intact { 1 } else { 2 }, Ordering::Release);
        }
    }
}

fn gup_holding_the_old_table(_: u64) -> u64 {
    encode(race_mm().pin_page_fast_with(
        BASE + TARGET * FRAME_SIZE,
        true,
        RaceSettings::recheck(true),
        &HoldTheOldTable,
    ))
}

/// Linux 2ba99c5e0881 (Jann Horn): collapse must not free the old PTE table
/// while a GUP-fast walker that read the old PMD may still be inside it.
/// B holds the old PMD in its interrupts-off section while A collapses and
/// then allocates new PTE tables in the same space (which would reuse a
/// table freed at once). Until B leaves, the old table stays allocated and
/// untouched; once B has left and a grace period passed, it is freed.
#[ktest]
fn old_table_outlives_a_walker_inside_it(env: &Env<'_>) -> TestResult {
    use kernel::mm::vm::MmArch;
    let (b, free_before) = two_cpus(env)?;
    {
        let (mm, _small) = small_pages_world(0x400)?;
        let table = mm.with_arch(|arch| arch.tree().pmd(BASE)).next_table();
        let held = |mm: &UserMm| {
            mm.with_arch(|arch| arch.tree().memory().holds(table, kernel::mm::pagetable::PTE.table_bytes()))
        };
        OLD_TABLE.store(table, Ordering::Release);
        REUSE_DONE.store(0, Ordering::Release);
        TABLE_SEEN.store(0, Ordering::Release);
        // The IPI would wait for B: off, so that A runs while B is inside.
        start_walker(b, gup_holding_the_old_table, 0)?;
        let outcome = mm.collapse_as(BASE, RaceSettings::ipi(CollapseIpi::Off));
        let held_while_inside = held(&mm);
        // New PTE tables from the same allocator: a freed old table would be
        // the first handed out again, and filled with these PTEs.
        const OTHER: u64 = BASE + 0x20_0000;
        let reused = ok(mm.map(OTHER, 4 * 0x20_0000, Prot::READ | Prot::WRITE, false)).and_then(|()| {
            for chunk in 0..4 {
                ok(mm.fault(OTHER + chunk * 0x20_0000, true))?;
            }
            Ok(())
        });
        REUSE_DONE.store(1, Ordering::Release);
        let gup = smp::wait_for(b).ok_or_else(|| fail("CPU B did not finish"))?;
        release_world();
        reused?;
        kassert_eq!(outcome, kernel::mm::collapse::Outcome::Collapsed);
        kassert!(held_while_inside, "collapse freed the old PTE table {table:#x} while CPU {b} was inside its walk");
        kassert!(
            TABLE_SEEN.load(Ordering::Acquire) == 1,
            "CPU {b} found the old table overwritten (reused) inside its walk (seen: {})",
            TABLE_SEEN.load(Ordering::Acquire)
        );
        // The page B read was released by collapse: B finds it freed (3), or,
        // if A's faults got the frame again, pins that and backs off (4).
        kassert!(gup == 3 || gup == 4, "GUP-fast returned {gup:#x} for a page collapse released");
        // B is out; after a grace period the table goes.
        kernel::rcu::synchronize();
        mm.with_arch(|arch| arch.space_mut().reclaim());
        kassert!(!held(&mm), "the old PTE table was never freed");
    }
    kassert_eq!(settled_free_frames(), free_before);
    Ok(())
}

// --- An IPI that is not answered for long -------------------------------------

/// Watchdog warnings B waits to see before it leaves its walk.
const WARNINGS_TO_SEE: u64 = 2;
static WARNINGS_BEFORE: AtomicU64 = AtomicU64::new(0);

/// B: reads PMD and PTE, then stays inside its interrupts-off section until
/// A's cross-call watchdog has warned twice about it.
struct OutstayTheWatchdog;

impl RaceHooks for OutstayTheWatchdog {
    fn at(&self, point: Point) {
        if point == Point::GupRead {
            READ_DONE.store(1, Ordering::Release);
            wait_until(|| {
                smp::WATCHDOG_WARNINGS.load(Ordering::Acquire)
                    >= WARNINGS_BEFORE.load(Ordering::Acquire) + WARNINGS_TO_SEE
            });
        }
    }
}

fn gup_outstaying_the_watchdog(_: u64) -> u64 {
    encode(race_mm().pin_page_fast_with(
        BASE + TARGET * FRAME_SIZE,
        true,
        RaceSettings::recheck(false),
        &OutstayTheWatchdog,
    ))
}

/// A CPU that keeps interrupts off past the cross-call watchdog (shortened
/// to 100 ms here; 5 s otherwise) must not let collapse go on: the IPI
/// keeps waiting, warning with the CPU that does not answer and where it
/// turned interrupts off, and collapse, once answered, finds B's pin and
/// gives up. Nothing is lost: B's page is still the one mapped.
#[ktest]
#[allow(unsafe_code)]
fn collapse_ipi_waits_past_the_watchdog(env: &Env<'_>) -> TestResult {
    let (b, free_before) = two_cpus(env)?;
    let settings = RaceSettings::new(false, CollapseIpi::On);
    {
        let (mm, small) = small_pages_world(0x500)?;
        WARNINGS_BEFORE.store(smp::WATCHDOG_WARNINGS.load(Ordering::Acquire), Ordering::Release);
        let interval = smp::set_watchdog_interval_us(100_000);
        start_walker(b, gup_outstaying_the_watchdog, 0)?;
        let outcome = mm.collapse_as(BASE, settings);
        smp::set_watchdog_interval_us(interval);
        let warnings = smp::WATCHDOG_WARNINGS.load(Ordering::Acquire) - WARNINGS_BEFORE.load(Ordering::Acquire);
        let gup = smp::wait_for(b).ok_or_else(|| fail("CPU B did not finish"))?;
        release_world();
        let old = small[TARGET as usize];
        kassert!(warnings >= WARNINGS_TO_SEE, "the watchdog warned {warnings} times while CPU {b} kept interrupts off");
        kassert_eq!(outcome, kernel::mm::collapse::Outcome::AbortedPinned(TARGET as usize));
        kassert_eq!(gup, old.address());
        kassert_eq!(physical_at(&mm, BASE + TARGET * FRAME_SIZE), Some(old.address()));
        // A write through the pin is what the process sees.
        const MARKER: u64 = 0xd09_0000_0000_0005;
        // SAFETY: the pinned frame, through the linear map.
        unsafe { ((mm::phys_to_virt(gup) as u64 + 0x48) as *mut u64).write_volatile(MARKER) };
        vm::activate(&mm);
        let seen = crate::exceptions::try_load(BASE + TARGET * FRAME_SIZE + 0x48);
        mmu::deactivate();
        mm.unpin(old);
        kassert_eq!(seen, Ok(MARKER));
    }
    kassert_eq!(settled_free_frames(), free_before);
    Ok(())
}

// --- The knobs as the command line set them -------------------------------------

/// `gup_pmd_recheck=` and `collapse_ipi=` as given at boot decide through
/// the normal API: neither side is told a setting (B's GUP-fast and A's
/// collapse take the knobs), and the outcome is a discarded page exactly
/// when both fixes are off (on radix; hash's auto IPI makes collapse give up).
#[ktest]
fn command_line_settings_decide(env: &Env<'_>) -> TestResult {
    let recheck = knobs::gup_pmd_recheck();
    kassert_eq!(recheck, env.options.gup_pmd_recheck);
    let ipi = knobs::collapse_ipi();
    kassert_eq!(ipi, env.options.collapse_ipi);
    let o = run(RaceSettings::CONFIGURED, env)?;
    let ipi_on = ipi.enabled(mmu::mode() == mmu::Mode::Hash);
    let stale = o.collapsed && o.gup == o.old.address();
    kernel::println!(
        "# gup_pmd_recheck={recheck} collapse_ipi={ipi:?} ({}): stale pin: {stale}",
        mmu::backend().name()
    );
    kassert_eq!(stale, !recheck && !ipi_on);
    Ok(())
}

// --- Hash: the fault path is a lockless walker too ------------------------------

/// The hash fault path's synchronisation point: walked, waiting for A.
struct HashCrossCpu;

impl RaceHooks for HashCrossCpu {
    fn at(&self, point: Point) {
        if point == Point::HashWalked {
            CrossCpu.at(Point::GupRead);
        }
    }
}

/// CPU B: the hash fault for the target page, as its handler runs it
/// (interrupts off), in the test's address space.
fn hash_fault_on_b(_: u64) -> u64 {
    vm::activate(race_mm());
    let section = kernel::mm::pagetable::ReadSide::enter::<crate::percpu::IrqsOff>();
    let result = crate::mmu::hash::hash_page_with(BASE + TARGET * FRAME_SIZE, &HashCrossCpu, section.read_side());
    drop(section);
    mmu::deactivate();
    result.is_ok() as u64
}

/// Collapse while CPU B's hash fault for a small page is between its walk
/// and its HPTE insert; then write through the mapping. Returns whether the
/// write reached the huge page (true) or went to the discarded small page.
#[allow(unsafe_code)]
fn hash_race(ipi: CollapseIpi, env: &Env<'_>) -> Result<bool, Failure> {
    if mmu::mode() != mmu::Mode::Hash {
        kskip!("hash only (mmu={})", mmu::backend().name());
    }
    let (b, free_before) = two_cpus(env)?;
    let reached = {
        let (mm, _small) = small_pages_world(0x200)?;
        start_walker(b, hash_fault_on_b, 0)?;
        // The hash fault path takes no page reference: isolation passes.
        let (outcome, b_result) = collapse_against(b, &mm, RaceSettings::ipi(ipi));
        let b_result = match b_result {
            Some(result) => Some(result),
            None => smp::wait_for(b),
        };
        release_world();
        kassert_eq!(outcome, kernel::mm::collapse::Outcome::Collapsed);
        kassert_eq!(b_result, Some(1));
        let huge = physical_at(&mm, BASE).ok_or_else(|| fail("nothing mapped after collapse"))?;

        // The process writes to its page.
        const MARKER: u64 = 0x4a54_0000_0000_0005;
        vm::activate(&mm);
        let stored = crate::exceptions::try_store(BASE + TARGET * FRAME_SIZE + 0x80, MARKER);
        mmu::deactivate();
        // SAFETY: the huge page's subpage, through the linear map.
        let in_huge =
            unsafe { ((mm::phys_to_virt(huge + TARGET * FRAME_SIZE) as u64 + 0x80) as *const u64).read_volatile() };
        kernel::println!(
            "# hash, collapse_ipi={ipi:?}: B's wait {}; the write {}",
            if B_HELD_BACK_A.load(Ordering::Acquire) != 0 {
                "ended by A's IPI waiting for B (A held back)"
            } else {
                "ended by A's isolation check"
            },
            if in_huge == MARKER { "reached the huge page" } else { "went to the discarded small page (stale HPTE)" }
        );
        kassert_eq!(stored, Ok(()));
        // Dropping the space scans the HPT for its VSIDs: a stale HPTE goes too.
        in_huge == MARKER
    };
    kassert_eq!(settled_free_frames(), free_before);
    Ok(reached)
}

/// Hash still needs its IPI: with only the PMD recheck (GUP's fix), a hash
/// fault that walked the old table inserts an HPTE for the old small page
/// after flush_hash_table_pmd_range ran, and the process's write lands in
/// the discarded page.
#[ktest]
fn hash_fault_without_ipi_loses_a_write(env: &Env<'_>) -> TestResult {
    let reached = hash_race(CollapseIpi::Off, env)?;
    kassert!(!reached, "the write was not lost: no stale HPTE was inserted");
    Ok(())
}

/// With the IPI, collapse waits for the fault, then flushes the HPTE it
/// recorded in the old PTE: the write faults in the huge page.
#[ktest]
fn hash_fault_with_ipi_keeps_the_write(env: &Env<'_>) -> TestResult {
    let reached = hash_race(CollapseIpi::On, env)?;
    kassert!(
        B_HELD_BACK_A.load(Ordering::Acquire) != 0,
        "collapse got past the IPI while the fault was inside its walk"
    );
    kassert!(reached, "the write was lost despite the IPI");
    Ok(())
}
