//! Stress: CPUs run GUP-fast + write-through-the-pin + read-back-through-
//! the-mapping loops over one 2 MiB region while khugepaged collapses it
//! and the test splits it again, for a fixed number of rounds, under each
//! combination of the two fixes. Two things are counted:
//!
//! - a stale pin: GUP-fast returned a page that, by the time its pin is
//!   dropped, is mapped nowhere (collapse discarded it under the pin);
//! - a lost write: a value written through a pin is not what the mapping
//!   shows afterwards, or the mapping shows another value than the page
//!   the tree maps (the MMU translates through a stale HPTE);
//! - under hash, a stale HPTE: searching both of the page's groups (with
//!   the mmap lock held) finds an HPTE for it that translates to another
//!   page than the tree's. The probe above sees one only when the MMU's
//!   search meets it before the right one (in a table the earlier tests
//!   left fuller, often not); the search sees each, then removes it, so
//!   each is counted once.
//!
//! Only collapse can discard a page here (split keeps the same page), so
//! all must be zero whenever the configuration protects this MMU: radix
//! with the PMD recheck or the IPI; hash with the IPI (its fault path walks
//! locklessly too).
//!
//! The race windows are a few instructions wide, so the race points are
//! widened on purpose (`kernel::mm::jitter`): each worker's GUP-fast, and
//! under hash its run of the hash fault path before reading back, and the
//! test's own collapses spin a seeded random time of up to `race_jitter=`
//! microseconds at each point. With that, an unprotected configuration
//! must show the race (stale pins, lost writes or stale HPTEs; it runs up
//! to `UNPROTECTED_EXTENSION` times its rounds until it has) and a
//! protected one must not; `race_jitter=0` turns the widening off, and then an unprotected
//! configuration that did not hit the race skips. `race_seed=` replays a
//! run's delays; `stress_rounds=` sets the rounds (10,000 for the long
//! mode). khugepaged collapses the region too, unwidened, as in production.
//! The table is printed by the last test.

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use kernel::cmdline::CollapseIpi;
use kernel::cpuset::CpuSet;
use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::mm::collapse::Outcome;
use kernel::mm::jitter::{self, Jitter};
use kernel::mm::pagetable::{Prot, ReadSide};
use kernel::mm::vm::{MmArch, RaceSettings};
use kernel::mm::{self, Frame, FRAME_SIZE};
use kernel::{kassert, kassert_eq, kskip, time};
use spin::Mutex;

use crate::percpu::IrqsOff;
use crate::smp;
use crate::vm::{self, UserMm};
use crate::{cpu, khugepaged, mmu};

use super::{online_secondaries, physical_at};

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

/// Collapse/split rounds per configuration unless `stress_rounds=` says,
/// and the time each round may take at most (a guard against a hang, not
/// a duration the test needs).
const DEFAULT_ROUNDS: u64 = 24;
/// How many times its rounds an unprotected configuration may run while
/// it has not shown the race yet: the race is a rare event even widened
/// (a few per 24 rounds under hash), so a row that waits for it (up to a
/// bound) decides instead of skipping by chance.
const UNPROTECTED_EXTENSION: u64 = 8;
const ROUND_GUARD_US: u64 = 2_000_000;
/// The longest delay at a race point unless `race_jitter=` says (us).
const DEFAULT_JITTER_US: u32 = 1000;
/// khugepaged's scan interval during the stress.
const KHUGEPAGED_SLEEP_US: u64 = 1000;
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
    stale_hptes: u64,
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
        stale_hptes: 0,
    }; CONFIGS.len()],
);

/// What the workers share: the address space (a leaked Arc while they
/// run), the recheck setting, and the stop flag.
static MM: AtomicUsize = AtomicUsize::new(0);
static RECHECK: AtomicBool = AtomicBool::new(true);
/// The widening: the longest delay in timebase ticks and the run's seed.
static JITTER_TICKS: AtomicU64 = AtomicU64::new(0);
static SEED: spin::Once<u64> = spin::Once::new();
static STOP: AtomicBool = AtomicBool::new(false);
static PINS: AtomicU64 = AtomicU64::new(0);
static FAILED_PINS: AtomicU64 = AtomicU64::new(0);
static STALE_PINS: AtomicU64 = AtomicU64::new(0);
static LOST_WRITES: AtomicU64 = AtomicU64::new(0);
static STALE_HPTES: AtomicU64 = AtomicU64::new(0);
static UNREADABLE: AtomicU64 = AtomicU64::new(0);
/// Workers that have made their first pin attempt: the rounds start only
/// once all have (an event, so that a worker CPU the host has not run yet
/// cannot make a configuration's row empty).
static STARTED: AtomicU64 = AtomicU64::new(0);
/// Turns the workers have finished: each round waits for two per worker,
/// so that every collapse meets workers in the middle of their turns
/// instead of a burst of rounds passing between two of their delays.
static TURNS: AtomicU64 = AtomicU64::new(0);
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
/// mapped, unpin, read back through the mapping (under hash, after running
/// the hash fault path for it, widened). Each CPU writes only its own
/// doubleword of each page, so nothing else changes what it checks.
#[allow(unsafe_code)]
fn worker(cpu: u64) -> u64 {
    // SAFETY: MM holds a leaked Arc<UserMm> until every worker has returned.
    let mm = unsafe { &*(MM.load(Ordering::Acquire) as *const UserMm) };
    let recheck = RECHECK.load(Ordering::Acquire);
    let jitter = Jitter::new(seed(), cpu, JITTER_TICKS.load(Ordering::Acquire), cpu::timebase);
    let hash = mmu::mode() == mmu::Mode::Hash;
    vm::activate(mm);
    let slot = 256 + 8 * cpu;
    let mut pick = 0x9e37_79b9_7f4a_7c15u64 ^ cpu;
    let mut sequence = 0u64;
    let mut first = true;
    while !STOP.load(Ordering::Acquire) {
        if core::mem::take(&mut first) {
            STARTED.fetch_add(1, Ordering::AcqRel);
        }
        let address = BASE + (jitter::xorshift(&mut pick) % PAGES) * FRAME_SIZE;
        // The value this CPU last wrote through a pin, if this turn pinned.
        let written = match mm.pin_page_fast_with(address, true, RaceSettings::recheck(recheck), &jitter) {
            Ok(frame) => {
                PINS.fetch_add(1, Ordering::Relaxed);
                sequence += 1;
                let value = cpu << 48 | sequence;
                // SAFETY: the pinned frame, through the linear map; this CPU's slot.
                unsafe { (mm::phys_to_virt(frame.address() + slot) as *mut u64).write_volatile(value) };
                // Hold one pin in four a while, as a GUP user doing I/O
                // would: long enough, at times, for a collapse that took the
                // page to finish with it. (Holding every pin would make
                // almost every collapse find one and give up.)
                if jitter.next_delay().is_multiple_of(4) {
                    jitter.pause();
                }
                // Stale: the page is mapped nowhere, or the address maps
                // another page while this pin holds it (with the pin held, a
                // collapse that checked for pins could not have replaced it;
                // a split keeps it).
                let head = mm::pages().head(frame).expect("pinned frames have descriptors");
                let mapped = physical_at(mm, address);
                if head.mapcount() == 0 || mapped.is_some_and(|now| now != frame.address()) {
                    STALE_PINS.fetch_add(1, Ordering::Relaxed);
                }
                mm.unpin(frame);
                Some((value, frame))
            }
            Err(_) => {
                FAILED_PINS.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        // The page just pinned, then (under hash, whose fault path races
        // collapse too) a few more: most turns are spent in the delays, and
        // each fault-path run is a chance at its window.
        let checks = if hash { 8 } else { 1 };
        for check in 0..checks {
            let (address, written) = if check == 0 {
                (address, written)
            } else {
                (BASE + (jitter::xorshift(&mut pick) % PAGES) * FRAME_SIZE, None)
            };
            check_mapping(mm, &jitter, hash, address, slot, written);
        }
        TURNS.fetch_add(1, Ordering::Release);
    }
    mmu::deactivate();
    0
}

/// Checks the mapping of `address + slot` (under hash after running the
/// hash fault path for it, widened) and counts a lost write if:
/// - what this CPU wrote there through a pin (`written`) is not what the
///   mapping shows (the pin was of a page collapse had copied already); or
/// - with the mmap lock held (nothing changes the tree meanwhile), a value
///   written to the page the tree maps does not show through the MMU: the
///   MMU translates to another page, through a stale HPTE the fault path
///   inserted while collapse replaced the table, and every write through
///   the mapping goes there.
#[allow(unsafe_code)]
fn check_mapping(mm: &UserMm, jitter: &Jitter, hash: bool, address: u64, slot: u64, written: Option<(u64, Frame)>) {
    if hash {
        let section = ReadSide::enter::<IrqsOff>();
        let _ = mmu::hash::hash_page_with(address + slot, jitter, section.read_side());
    }
    let mut lost = match (written, crate::exceptions::try_load(address + slot)) {
        (Some((value, _)), Ok(seen)) if seen != value => Some(seen),
        (_, Ok(_)) => None,
        (_, Err(_)) => {
            UNREADABLE.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    if lost.is_none() {
        static PROBES: AtomicU64 = AtomicU64::new(0);
        let probe = 1 << 63 | PROBES.fetch_add(1, Ordering::Relaxed);
        lost = mm.with_mmap_read(|| {
            let page = physical_at(mm, address)?;
            // SAFETY: the page the tree maps, kept by the mmap lock; this
            // CPU's doubleword of it.
            unsafe { (mm::phys_to_virt(page + slot) as *mut u64).write_volatile(probe) };
            // The address is mapped, so the hash fault path (if the MMU
            // misses) inserts without the mmap lock: no self-deadlock.
            let lost = match crate::exceptions::try_load(address + slot) {
                Ok(seen) if seen != probe => Some(seen),
                Ok(_) => None,
                Err(_) => {
                    UNREADABLE.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            if hash {
                count_stale_hptes(mm, address, page);
            }
            lost
        });
    } else if hash {
        mm.with_mmap_read(|| {
            if let Some(page) = physical_at(mm, address) {
                count_stale_hptes(mm, address, page);
            }
        });
    }
    if let Some(seen) = lost {
        if LOST_WRITES.fetch_add(1, Ordering::Relaxed) == 0 {
            let now = physical_at(mm, address).unwrap_or(0);
            let (value, frame) = written.map_or((0, 0), |(value, frame)| (value, frame.address()));
            *FIRST_LOST.lock() =
                [address + slot, value, seen, frame, now, crate::exceptions::try_load(address + slot).unwrap_or(1)];
        }
    }
}

/// Counts (and removes, so that each is counted once) the HPTEs for
/// `address` that translate to another page than `page`, the one the tree
/// maps: each is a stale HPTE, inserted by a fault path that walked the
/// tree before a collapse replaced the table and inserted after its flush.
/// The probe of `check_mapping` sees one only if the MMU's search finds it
/// before the right one; this finds every one. The caller holds the mmap
/// lock, so the tree stays as it is meanwhile.
fn count_stale_hptes(mm: &UserMm, address: u64, page: u64) {
    let space = mm.with_arch(|arch| arch.space().id());
    for (ptex, hpte) in mmu::hash::hptes_of(space, address) {
        if mmu::hash::hpte_page(hpte.r) != page & !(FRAME_SIZE - 1)
            && mmu::hash::table().remove(ptex, hpte.v, kernel::mm::mmu::Scope::Global).is_ok()
        {
            STALE_HPTES.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The run's seed: `race_seed=`, or the timebase when first asked.
fn seed() -> u64 {
    *SEED.get().expect("the seed is set before the workers start")
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
    for counter in [&PINS, &FAILED_PINS, &STALE_PINS, &LOST_WRITES, &STALE_HPTES, &UNREADABLE, &STARTED, &TURNS] {
        counter.store(0, Ordering::Relaxed);
    }
    RECHECK.store(config.recheck, Ordering::Release);
    let rounds_wanted = env.options.stress_rounds.map_or(DEFAULT_ROUNDS, u64::from);
    let jitter_us = env.options.race_jitter_us.unwrap_or(DEFAULT_JITTER_US);
    JITTER_TICKS.store(time::us_to_ticks(jitter_us as u64), Ordering::Release);
    let seed = *SEED.call_once(|| env.options.race_seed.unwrap_or_else(cpu::timebase));
    // The test CPU's own collapses: a stream of its own.
    let collapse_jitter = Jitter::new(seed, u64::MAX, JITTER_TICKS.load(Ordering::Relaxed), cpu::timebase);
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
    // Scanning every millisecond: a busy khugepaged, not one that retries
    // a pinned range back to back (each try is a flush).
    let started = khugepaged::start(daemon_cpu, KHUGEPAGED_SLEEP_US);

    // The rounds: collapse (this CPU, widened, unless khugepaged was
    // first), then split again.
    let settings = RaceSettings::new(config.recheck, config.ipi);
    let protected = protects(config);
    let rounds_limit = if protected || jitter_us == 0 { rounds_wanted } else { rounds_wanted * UNPROTECTED_EXTENSION };
    let deadline = time::deadline_us(rounds_limit * ROUND_GUARD_US);
    let mut rounds = 0;
    let turns_per_round = 2 * posted.len(Ordering::Relaxed) as u64;
    let shown = || {
        STALE_PINS.load(Ordering::Relaxed) + LOST_WRITES.load(Ordering::Relaxed) + STALE_HPTES.load(Ordering::Relaxed)
            > 0
    };
    while started && (rounds < rounds_wanted || (rounds < rounds_limit && !shown())) && time::now() < deadline {
        let turns = TURNS.load(Ordering::Acquire);
        while TURNS.load(Ordering::Acquire) < turns + turns_per_round && time::now() < deadline {
            core::hint::spin_loop();
        }
        // A round is one collapse that met the workers: it collapsed (and
        // is split again), or, with the IPI, gave up on a pin (often: it
        // waits for the walkers, then finds the pins they just took, which
        // is the IPI's protection at work; without it, only collapses count,
        // so that an unprotected configuration gets its chances).
        let gave_up = !mm.with_arch(|arch| arch.tree().pmd(BASE).is_leaf())
            && matches!(mm.collapse_with(BASE, settings, &collapse_jitter), Outcome::AbortedPinned(_))
            && config.ipi.enabled(mmu::mode() == mmu::Mode::Hash);
        crate::sched::run_ready();
        if mm.split(BASE).map_err(|e| fail(alloc::format!("split: {e:?}")))? || gave_up {
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
        stale_hptes: STALE_HPTES.load(Ordering::Relaxed),
    };
    ROWS.lock()[index] = row;
    kernel::println!(
        "# {} ({}, race_jitter={jitter_us} race_seed={seed:#x}): {} rounds, {} collapsed, {} aborted (pinned), {} pins, {} not pinned, {} stale pins, {} lost writes{}",
        config.name,
        mmu::backend().name(),
        row.rounds,
        row.collapsed,
        row.aborted_pinned,
        row.pins,
        row.failed_pins,
        row.stale_pins,
        row.lost_writes,
        // Only the hash MMU has HPTEs to go stale.
        if mmu::mode() == mmu::Mode::Hash { alloc::format!(", {} stale HPTEs", row.stale_hptes) } else { String::new() }
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
    kassert!(rounds >= rounds_wanted, "{rounds} of {rounds_wanted} rounds within the guard");
    if protected {
        kassert_eq!((row.stale_pins, row.lost_writes, row.stale_hptes), (0, 0, 0));
    } else if row.stale_pins + row.lost_writes + row.stale_hptes == 0 {
        // Not widened, the race is left to chance: a miss says nothing.
        if jitter_us == 0 {
            kskip!("unprotected on {} with race_jitter=0, and this run did not show the race", mmu::backend().name());
        }
        // Widened, and given up to UNPROTECTED_EXTENSION times the rounds:
        // the widening (or the detection) no longer works.
        return Err(fail(alloc::format!(
            "unprotected on {}, widened (race_jitter={jitter_us}, race_seed={seed:#x}), yet {rounds} rounds showed no race",
            mmu::backend().name()
        )));
    }
    Ok(())
}

/// The stale HPTEs of a row, as its table shows them: "-" under radix,
/// which has none to count.
fn stale_hptes(row: &Row) -> String {
    if mmu::mode() == mmu::Mode::Hash {
        alloc::format!("{}", row.stale_hptes)
    } else {
        String::from("-")
    }
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
        "# stress table ({}, {} CPUs, {} rounds each, race_jitter={} us, race_seed={:#x}):",
        mmu::backend().name(),
        env.online_cpus,
        env.options.stress_rounds.map_or(DEFAULT_ROUNDS, u64::from),
        env.options.race_jitter_us.unwrap_or(DEFAULT_JITTER_US),
        SEED.get().copied().unwrap_or(0)
    );
    kernel::println!(
        "# | configuration | protects | rounds | collapsed | aborted (pinned) | pins | stale pins | lost writes | stale HPTEs |"
    );
    kernel::println!("# |---|---|---|---|---|---|---|---|---|");
    for (config, row) in CONFIGS.iter().zip(rows.iter()).filter(|(_, r)| r.ran) {
        kernel::println!(
            "# | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            config.name,
            if protects(config) { "yes" } else { "no" },
            row.rounds,
            row.collapsed,
            row.aborted_pinned,
            row.pins,
            row.stale_pins,
            row.lost_writes,
            stale_hptes(row)
        );
    }
    Ok(())
}
