//! The self-tests that need the machine: one file per suite, the order the
//! suites run in (`ORDER`), and below, the helpers several suites share.

// Unsafe code only in the items that say so (each block with its SAFETY).
#![deny(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::ktest::{fail, Failure, TestResult};
use kernel::{mm, time};

// `crate::` paths below for the modules that share a name with a suite.
use crate::vm::UserMm;
use crate::{cpu, percpu};

pub mod accounting;
mod boot;
mod cmdline;
mod collapse;
mod exceptions;
mod hash;
mod mmu;
mod race;
mod rcu;
mod sched;
mod smp;
mod stress;
mod symbols;
mod user;
mod vector;
mod vm;

/// The order suites run in, by name. A suite is a module whose functions are
/// marked `#[ktest]`, named by the module's last path segment: the files of
/// this folder and of kernel/src/mm/selftests/, and the benchmarks. A
/// registered suite missing here fails the run (`not ok ...
/// ktest.registration`), as does a name here with no tests.
pub const ORDER: &[&str] = &[
    "boot",
    "cmdline",
    "exceptions",
    "vector",
    "symbols",
    // The platform's own services (suites beside it, under platform/).
    crate::platform::pseries::selftests::SUITE,
    crate::platform::powernv::selftests::SUITE,
    "mmu",
    "hash",
    "smp",
    "rcu",
    "sched",
    "collapse",
    "race",
    "vm",
    "user",
    "stress",
    // kernel::mm::selftests
    "frames",
    "pages",
    "heap",
    // Last: checks that the suites above gave back what they took.
    "accounting",
    // Not self-tests: the benchmarks (arch/ppc64/src/bench/), which main
    // takes out of the plan and runs after the self-tests if bench= asks.
    "bench",
];

// --- Other CPUs: sections with interrupts off on a secondary ----------------

/// The online CPUs but the boot CPU (index 0), in index order.
pub fn online_secondaries() -> impl Iterator<Item = usize> {
    percpu::online().iter(Ordering::Acquire).filter(|&i| i != 0)
}

pub static SPINNING: AtomicU64 = AtomicU64::new(0);
pub static SPIN_END: AtomicU64 = AtomicU64::new(0);

/// Posted work: interrupts off for `microseconds`, then on again.
pub fn spin_with_interrupts_off(microseconds: u64) -> u64 {
    let was_on = crate::percpu::disable_interrupts();
    SPINNING.store(1, Ordering::Release);
    let until = time::deadline_us(microseconds);
    while time::now() < until {
        core::hint::spin_loop();
    }
    SPIN_END.store(time::now(), Ordering::Release);
    if was_on {
        cpu::enable_interrupts(); // the pending IPI is taken here
    }
    0
}

/// Set to end `walk_until_released_or_called`'s section.
pub static RELEASE: AtomicU64 = AtomicU64::new(0);
/// Whether that section ended because a caller was held back waiting for it.
pub static SAW_CALL: AtomicU64 = AtomicU64::new(0);

/// A guard against a hang only: the section ends on an event.
const SECTION_HANG_GUARD_US: u64 = 10_000_000;

/// Posted work: interrupts off (a lockless walk) until either a caller is
/// spinning until this CPU answers its cross-call (an IPI that waits for
/// walkers: the caller is held back) or the test releases it. No timing
/// decides which.
pub fn walk_until_released_or_called(_: u64) -> u64 {
    let was_on = crate::percpu::disable_interrupts();
    SAW_CALL.store(0, Ordering::Release);
    SPINNING.store(1, Ordering::Release);
    let guard = time::deadline_us(SECTION_HANG_GUARD_US);
    loop {
        if crate::smp::caller_waiting_here() {
            SAW_CALL.store(1, Ordering::Release);
            break;
        }
        if RELEASE.load(Ordering::Acquire) != 0 || time::now() > guard {
            break;
        }
        core::hint::spin_loop();
    }
    SPIN_END.store(time::now(), Ordering::Release);
    if was_on {
        cpu::enable_interrupts(); // the pending IPI is taken here
    }
    0
}

/// Has the first secondary enter `walk_until_released_or_called` and
/// returns once it is inside.
pub fn walker_until_released_or_called() -> Result<usize, kernel::ktest::Failure> {
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    SPINNING.store(0, Ordering::Release);
    RELEASE.store(0, Ordering::Release);
    if !crate::smp::post(target, walk_until_released_or_called, 0) {
        return Err(fail("secondary busy"));
    }
    while SPINNING.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    Ok(target)
}

/// Has the first secondary keep interrupts off for `microseconds` (a
/// read-side section, or a lockless walk) and returns once it is inside.
pub fn interrupts_off_elsewhere(microseconds: u64) -> Result<usize, kernel::ktest::Failure> {
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    SPINNING.store(0, Ordering::Release);
    if !crate::smp::post(target, spin_with_interrupts_off, microseconds) {
        return Err(fail("secondary busy"));
    }
    while SPINNING.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    Ok(target)
}

// --- Address spaces ----------------------------------------------------------

/// A new address space; skips the test in real mode (`mmu=off`), where low
/// addresses are physical memory, not an address space.
pub fn new_mm() -> Result<Arc<UserMm>, Failure> {
    require_translation()?;
    crate::vm::new_mm().map_err(|e| fail(alloc::format!("no address space: {e:?}")))
}

pub fn require_translation() -> TestResult {
    if !crate::mmu::translation_on() {
        kernel::kskip!("translation is off (mmu=off)");
    }
    Ok(())
}

/// A failed mm call as a test failure naming the error.
pub fn ok<T, E: core::fmt::Debug>(result: Result<T, E>) -> Result<T, Failure> {
    result.map_err(|e| fail(alloc::format!("{e:?}")))
}

/// Runs `f` with `mm` translating this CPU's low addresses.
pub fn inside<R>(mm: &UserMm, f: impl FnOnce() -> R) -> R {
    crate::vm::activate(mm);
    let result = f();
    crate::mmu::deactivate();
    result
}

pub fn physical_at(mm: &UserMm, address: u64) -> Option<u64> {
    mm.with_arch(|arch| {
        use kernel::mm::vm::MmArch;
        arch.tree().translate(address).map(|t| t.physical)
    })
}

/// Frames free once deferred page-table frees are done.
pub fn settled_free_frames() -> u64 {
    kernel::rcu::synchronize();
    crate::mmu::release_kernel_tables(&[]);
    mm::free_frames()
}
