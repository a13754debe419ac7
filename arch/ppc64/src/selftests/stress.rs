//! Stress: CPUs run GUP-fast + write-through-the-pin + read-back-through-
//! the-mapping loops over one 2 MiB region while khugepaged collapses it
//! and the test splits it again, for a fixed number of rounds, under each
//! combination of the two fixes. Two things are counted:
//!
//! - a stale pin: GUP-fast returned a page that, by the time its pin is
//!   dropped, is mapped nowhere (collapse discarded it under the pin);
//! - a lost write: a value written through a pin is not what the mapping
//!   shows afterwards.
//!
//! Only collapse can discard a page here (split keeps the same page), so
//! both must be zero whenever the configuration protects this MMU: radix
//! with the PMD recheck or the IPI; hash with the IPI (its fault path walks
//! locklessly too). Otherwise the counts are reported, not required: they
//! depend on timing. The table is printed by the last test.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use kernel::cmdline::CollapseIpi;
use kernel::cpuset::CpuSet;
use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::mm::pagetable::Prot;
use kernel::mm::vm::MmArch;
use kernel::mm::{self, FRAME_SIZE};
use kernel::{kassert, kassert_eq, kskip, time};
use spin::Mutex;

use crate::smp;
use crate::vm::{self, UserMm};
use crate::{khugepaged, mmu};

use super::online_secondaries;

struct Config {
    name: &'static str,
    recheck: bool,
    ipi: CollapseIpi,
}

const CONFIGS: [Config; 5] = [
    Config { name: "defaults (recheck on, ipi auto)", recheck: true, ipi: CollapseIpi::Auto },
    Config { name: "recheck on, ipi off", recheck: true, ipi: CollapseIpi::Off },
    Config { name: "recheck off, ipi on", recheck: false, ipi: CollapseIpi::On },
    Config { name: "recheck on, ipi on", recheck: true, ipi: CollapseIpi::On },
    Config { name: "recheck off, ipi off", recheck: false, ipi: CollapseIpi::Off },
];

/// Collapse/split rounds per configuration, and the time they may take.
const ROUNDS: u64 = 24;
const BUDGET_US: u64 = 3_000_000;
/// How long one round may wait for khugepaged.
const ROUND_WAIT_US: u64 = 500_000;
const BASE: u64 = 0x4000_0000;
const PAGES: u64 = 32;

#[derive(Clone, Copy, Default)]
struct Row {
    ran: bool,
    rounds: u64,
    collapsed: u64,
    aborted_pinned: u64,
    pins: u64,
    failed_pins: u64,
    stale_pins: u64,
    lost_writes: u64,
}

static ROWS: Mutex<[Row; CONFIGS.len()]> = Mutex::new(
    [Row {
        ran: false,
        rounds: 0,
        collapsed: 0,
        aborted_pinned: 0,
        pins: 0,
        failed_pins: 0,
        stale_pins: 0,
        lost_writes: 0,
    }; CONFIGS.len()],
);

/// What the workers share: the address space (a leaked Arc while they
/// run), the recheck setting, and the stop flag.
static MM: AtomicUsize = AtomicUsize::new(0);
static RECHECK: AtomicBool = AtomicBool::new(true);
static STOP: AtomicBool = AtomicBool::new(false);
static PINS: AtomicU64 = AtomicU64::new(0);
static FAILED_PINS: AtomicU64 = AtomicU64::new(0);
static STALE_PINS: AtomicU64 = AtomicU64::new(0);
static LOST_WRITES: AtomicU64 = AtomicU64::new(0);
static UNREADABLE: AtomicU64 = AtomicU64::new(0);
/// Workers that have made their first pin attempt: the rounds start only
/// once all have (an event, so that a worker CPU the host has not run yet
/// cannot make a configuration's row empty).
static STARTED: AtomicU64 = AtomicU64::new(0);
/// How long the workers may take to start: a guard against a hang only.
const START_GUARD_US: u64 = 10_000_000;
static FIRST_LOST: Mutex<[u64; 6]> = Mutex::new([0; 6]);

/// Whether `config` protects the MMU in use against this race.
fn protects(config: &Config) -> bool {
    let hash = mmu::mode() == mmu::Mode::Hash;
    let ipi = config.ipi.enabled(hash);
    if hash {
        ipi
    } else {
        ipi || config.recheck
    }
}

/// One worker CPU: pin, write through the pin, check the page is still
/// mapped, unpin, read back through the mapping. Each CPU writes only its
/// own doubleword of each page, so nothing else changes what it checks.
#[allow(unsafe_code)]
fn worker(cpu: u64) -> u64 {
    // SAFETY: MM holds a leaked Arc<UserMm> until every worker has returned.
    let mm = unsafe { &*(MM.load(Ordering::Acquire) as *const UserMm) };
    let recheck = RECHECK.load(Ordering::Acquire);
    vm::activate(mm);
    let slot = 256 + 8 * cpu;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ cpu;
    let mut sequence = 0u64;
    let mut first = true;
    while !STOP.load(Ordering::Acquire) {
        if core::mem::take(&mut first) {
            STARTED.fetch_add(1, Ordering::AcqRel);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let address = BASE + (seed % PAGES) * FRAME_SIZE;
        let frame = match mm.pin_page_fast_with(
            address,
            true,
            kernel::mm::vm::RaceSettings::recheck(recheck),
            &kernel::mm::gup::NoHooks,
        ) {
            Ok(frame) => frame,
            Err(_) => {
                FAILED_PINS.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        PINS.fetch_add(1, Ordering::Relaxed);
        sequence += 1;
        let value = cpu << 48 | sequence;
        // SAFETY: the pinned frame, through the linear map; this CPU's slot.
        unsafe { (mm::phys_to_virt(frame.address() + slot) as *mut u64).write_volatile(value) };
        let head = mm::pages().head(frame).expect("pinned frames have descriptors");
        if head.mapcount() == 0 {
            STALE_PINS.fetch_add(1, Ordering::Relaxed);
        }
        mm.unpin(frame);
        match crate::exceptions::try_load(address + slot) {
            Ok(seen) if seen == value => {}
            Ok(seen) => {
                if LOST_WRITES.fetch_add(1, Ordering::Relaxed) == 0 {
                    let now = mm.with_arch(|arch| arch.tree().translate(address)).map_or(0, |t| t.physical);
                    *FIRST_LOST.lock() = [
                        address + slot,
                        value,
                        seen,
                        frame.address(),
                        now,
                        crate::exceptions::try_load(address + slot).unwrap_or(1),
                    ];
                }
            }
            Err(_) => {
                UNREADABLE.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    mmu::deactivate();
    0
}

#[allow(unsafe_code)]
fn stress(env: &Env<'_>, index: usize) -> TestResult {
    require_cpus(env, 3)?;
    super::require_translation()?;
    let config = &CONFIGS[index];
    let mut cpus = online_secondaries();
    let daemon_cpu = cpus.next().ok_or_else(|| fail("no secondary CPU"))?;
    let workers: CpuSet = cpus.collect();
    let mm = vm::new_mm().map_err(|e| fail(alloc::format!("{e:?}")))?;
    mm.map(BASE, PAGES * FRAME_SIZE, Prot::READ | Prot::WRITE, true).map_err(|e| fail(alloc::format!("{e:?}")))?;
    mm.fault(BASE, true).map_err(|e| fail(alloc::format!("{e:?}")))?;

    // khugepaged collapses with the configured IPI: this round's.
    let saved_policy = kernel::mm::knobs::collapse_ipi();
    kernel::mm::knobs::set_collapse_ipi(config.ipi);
    for counter in [&PINS, &FAILED_PINS, &STALE_PINS, &LOST_WRITES, &UNREADABLE, &STARTED] {
        counter.store(0, Ordering::Relaxed);
    }
    RECHECK.store(config.recheck, Ordering::Release);
    STOP.store(false, Ordering::Release);
    MM.store(Arc::into_raw(mm.clone()) as usize, Ordering::Release);
    let posted = CpuSet::new();
    for cpu in workers.iter(Ordering::Relaxed) {
        if smp::post(cpu, worker, cpu as u64) {
            posted.insert(cpu, Ordering::Relaxed);
        }
    }
    let guard = time::deadline_us(START_GUARD_US);
    while STARTED.load(Ordering::Acquire) < posted.len(Ordering::Relaxed) as u64 && time::now() < guard {
        core::hint::spin_loop();
    }
    let workers_started = STARTED.load(Ordering::Acquire);
    khugepaged::register(&mm);
    let started = khugepaged::start(daemon_cpu, 0);

    // The rounds: split whatever khugepaged has collapsed.
    let deadline = time::deadline_us(BUDGET_US);
    let mut rounds = 0;
    while started && rounds < ROUNDS && time::now() < deadline {
        let round_end = time::deadline_us(ROUND_WAIT_US);
        while !mm.with_arch(|arch| arch.tree().pmd(BASE).is_leaf()) && time::now() < round_end {
            crate::sched::run_ready();
            core::hint::spin_loop();
        }
        if mm.split(BASE).map_err(|e| fail(alloc::format!("split: {e:?}")))? {
            rounds += 1;
        }
    }

    STOP.store(true, Ordering::Release);
    let mut workers_done = true;
    for cpu in posted.iter(Ordering::Relaxed) {
        workers_done &= smp::wait_for(cpu).is_some();
    }
    let stopped = khugepaged::stop(2_000_000);
    khugepaged::unregister(&mm);
    kernel::mm::knobs::set_collapse_ipi(saved_policy);
    if workers_done {
        // SAFETY: the Arc leaked above; every worker has returned.
        drop(unsafe { Arc::from_raw(MM.swap(0, Ordering::AcqRel) as *const UserMm) });
    }

    let row = Row {
        ran: true,
        rounds,
        collapsed: mm.stats.collapse.collapsed.load(Ordering::Relaxed),
        aborted_pinned: mm.stats.collapse.aborted_pinned.load(Ordering::Relaxed),
        pins: PINS.load(Ordering::Relaxed),
        failed_pins: FAILED_PINS.load(Ordering::Relaxed),
        stale_pins: STALE_PINS.load(Ordering::Relaxed),
        lost_writes: LOST_WRITES.load(Ordering::Relaxed),
    };
    ROWS.lock()[index] = row;
    kernel::println!(
        "# {} ({}): {} rounds, {} collapsed, {} aborted (pinned), {} pins, {} not pinned, {} stale pins, {} lost writes",
        config.name,
        mmu::backend().name(),
        row.rounds,
        row.collapsed,
        row.aborted_pinned,
        row.pins,
        row.failed_pins,
        row.stale_pins,
        row.lost_writes
    );
    if row.lost_writes > 0 {
        let [address, wrote, read, pinned, mapped, again] = *FIRST_LOST.lock();
        kernel::println!(
            "# first lost write: at {address:#x} wrote {wrote:#x} through a pin of {pinned:#x}, read {read:#x} through the MMU \
             (then {again:#x}); the tree maps {mapped:#x}"
        );
    }
    kassert!(started, "khugepaged did not start on CPU {daemon_cpu}");
    kassert!(
        workers_started == posted.len(Ordering::Relaxed) as u64,
        "only {workers_started} of {} worker CPUs started within {} s",
        posted.len(Ordering::Relaxed),
        START_GUARD_US / 1_000_000
    );
    kassert!(workers_done && stopped, "a worker or khugepaged did not stop");
    kassert!(
        posted.len(Ordering::Relaxed) == workers.len(Ordering::Relaxed),
        "could not post work to every worker CPU"
    );
    kassert_eq!(UNREADABLE.load(Ordering::Relaxed), 0);
    kassert!(row.rounds > 0 && row.pins > 0, "no race was run: {} rounds, {} pins", row.rounds, row.pins);
    if protects(config) {
        kassert_eq!((row.stale_pins, row.lost_writes), (0, 0));
    } else if row.stale_pins + row.lost_writes == 0 {
        kskip!("unprotected on {}, and this run happened not to hit the race (timing)", mmu::backend().name());
    }
    Ok(())
}

/// CONFIGS[0]: recheck on, IPI auto (the kernel's defaults).
#[ktest]
fn defaults(env: &Env<'_>) -> TestResult {
    stress(env, 0)
}

/// CONFIGS[1]: the PMD recheck only.
#[ktest]
fn recheck_only(env: &Env<'_>) -> TestResult {
    stress(env, 1)
}

/// CONFIGS[2]: the collapse IPI only.
#[ktest]
fn ipi_only(env: &Env<'_>) -> TestResult {
    stress(env, 2)
}

/// CONFIGS[3]: both fixes.
#[ktest]
fn both_fixes(env: &Env<'_>) -> TestResult {
    stress(env, 3)
}

/// CONFIGS[4]: neither fix.
#[ktest]
fn no_fixes(env: &Env<'_>) -> TestResult {
    stress(env, 4)
}

#[ktest]
fn table(env: &Env<'_>) -> TestResult {
    require_cpus(env, 3)?;
    let rows = *ROWS.lock();
    if !rows.iter().any(|r| r.ran) {
        kskip!("no stress configuration ran");
    }
    kernel::println!(
        "# stress table ({}, {} CPUs, {} rounds each at most):",
        mmu::backend().name(),
        env.online_cpus,
        ROUNDS
    );
    kernel::println!(
        "# | configuration | protects | rounds | collapsed | aborted (pinned) | pins | stale pins | lost writes |"
    );
    kernel::println!("# |---|---|---|---|---|---|---|---|");
    for (config, row) in CONFIGS.iter().zip(rows.iter()).filter(|(_, r)| r.ran) {
        kernel::println!(
            "# | {} | {} | {} | {} | {} | {} | {} | {} |",
            config.name,
            if protects(config) { "yes" } else { "no" },
            row.rounds,
            row.collapsed,
            row.aborted_pinned,
            row.pins,
            row.stale_pins,
            row.lost_writes
        );
    }
    Ok(())
}
