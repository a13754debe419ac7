//! Self-tests of the secondary CPUs: all of them online, each running a
//! test body on itself, and a mapping changed and flushed on one CPU seen
//! changed on another (radix `tlbie` broadcast; hash HPTE invalidation).

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::cpuset::CpuSet;
use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::mm::mmu::{Scope, KERNEL_SPACE};
use kernel::mm::pagetable::{PageSize, Prot};
use kernel::mm::{self, LINEAR_MAP_BASE};
use kernel::{kassert, kassert_eq, kskip, time};

use crate::percpu::{self, MAX_CPUS, PERCPU};
use crate::{cpu, exceptions, mmu, smp, timer};

use super::{interrupts_off_elsewhere, online_secondaries, SPIN_END};

#[ktest]
fn all_cpus_online(env: &Env<'_>) -> TestResult {
    let expected = env.boot.cpus_in_tree().min(MAX_CPUS);
    kassert_eq!(percpu::online_count(), expected);
    kassert_eq!(env.online_cpus, expected);
    if let Some(cpus) = env.options.expect_cpus {
        kassert_eq!(env.online_cpus, cpus as usize);
    }
    Ok(())
}

/// Which CPU ran this (its PerCpu index, from its own SPRG0) and its PIR.
fn identify(_: u64) -> u64 {
    (percpu::index() << 32) | cpu::pir() as u64
}

fn read_msr(_: u64) -> u64 {
    cpu::msr()
}

#[ktest]
fn each_cpu_runs_work_and_reports_pir(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    // PIR is reported, not compared with the device tree's server number:
    // QEMU 7.2 gives every pseries vCPU PIR 0 (10.x gives the server number).
    for index in percpu::online().iter(Ordering::Acquire) {
        let area = &PERCPU[index];
        let who =
            smp::run_on(index, identify, 0).ok_or_else(|| fail(alloc::format!("CPU {index} did not run the work")))?;
        let (ran_on, pir) = (who >> 32, who & 0xffff_ffff);
        kernel::println!("# CPU {index} (server {}): PIR {pir}", area.server.load(Ordering::Relaxed));
        kassert_eq!(ran_on, index as u64);
    }
    Ok(())
}

#[ktest]
fn secondaries_translate_like_the_boot_cpu(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let translation = cpu::msr::IR | cpu::msr::DR;
    let mine = cpu::msr() & translation;
    for index in online_secondaries() {
        let msr = smp::run_on(index, read_msr, 0).ok_or_else(|| fail("no answer"))?;
        kassert!(msr & translation == mine, "CPU {index}: MSR {msr:#x}, boot CPU IR|DR {mine:#x}");
        kassert!(msr & cpu::msr::FP == 0, "CPU {index}: FP on");
    }
    Ok(())
}

/// Kernel test address outside the linear map.
const SHARED: u64 = LINEAR_MAP_BASE | 0x000a_0000_0000_0000;

fn load_shared(_: u64) -> u64 {
    exceptions::try_load(SHARED).unwrap_or(u64::MAX)
}

/// Every other CPU reads a mapping (caching its translation), CPU 0 points
/// it at another frame and flushes once, every other CPU reads again: the
/// new frame.
#[ktest]
#[allow(unsafe_code)]
fn flush_reaches_other_cpus(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let Some(flush) = mmu::flusher() else { kskip!("translation is off (mmu=off)") };
    let targets: alloc::vec::Vec<usize> = online_secondaries().collect();
    let old = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let new = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    for (frame, value) in [(old, 0x01d_u64), (new, 0x2e3)] {
        // SAFETY: frames just allocated, through the linear map.
        unsafe { (mm::phys_to_virt(frame.address()) as *mut u64).write_volatile(value) };
    }
    mmu::with_kernel_tree(|tree| tree.map(SHARED, old.address(), PageSize::Base, Prot::READ))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("{e:?}")))?;
    let before: alloc::vec::Vec<_> = targets.iter().map(|&t| smp::run_on(t, load_shared, 0)).collect();
    let replaced = mmu::with_kernel_tree(|tree| tree.remap(SHARED, new.address())).and_then(Result::ok);
    if let Some(entry) = replaced {
        flush.flush_page(KERNEL_SPACE, SHARED, PageSize::Base, entry, Scope::Global);
    }
    let after: alloc::vec::Vec<_> = targets.iter().map(|&t| smp::run_on(t, load_shared, 0)).collect();
    if let Some(Ok(gone)) = mmu::with_kernel_tree(|tree| tree.unmap(SHARED)) {
        flush.flush_page(KERNEL_SPACE, SHARED, gone.size, gone.entry, Scope::Global);
        mmu::release_kernel_tables(&gone.tables);
    }
    mm::free_frame(old);
    mm::free_frame(new);
    kassert!(!targets.is_empty());
    kassert!(before.iter().all(|&v| v == Some(0x01d)), "before the change: {before:x?}");
    kassert!(replaced.is_some(), "remap failed");
    kassert!(after.iter().all(|&v| v == Some(0x2e3)), "after the flush, CPUs {targets:?} saw {after:x?}");
    Ok(())
}

/// Per-CPU marks the cross-call bodies leave.
static MARKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn mark(value: u64) {
    MARKS[percpu::index() as usize].store(value, Ordering::Release);
}

#[ktest]
fn ipi_round_trip_to_each_cpu(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    for target in online_secondaries() {
        MARKS[target].store(0, Ordering::Release);
        let start = time::now();
        smp::call_on_cpus(&CpuSet::single(target), mark, 0x1000 + target as u64, true)
            .map_err(|e| fail(alloc::format!("{e:?}")))?;
        let round_trip = time::ticks_to_us(time::now() - start);
        kassert_eq!(MARKS[target].load(Ordering::Acquire), 0x1000 + target as u64);
        kernel::println!("# IPI round trip to CPU {target}: {round_trip} us");
    }
    Ok(())
}

/// Each target stays in the call for a while (longer for higher indexes):
/// the caller comes back only when all are done.
fn slow_mark(value: u64) {
    let until = time::deadline_us(2_000 * percpu::index());
    while time::now() < until {
        core::hint::spin_loop();
    }
    mark(value);
}

#[ktest]
fn call_on_all_waits_for_all(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let all: CpuSet = percpu::online().iter(Ordering::Acquire).collect();
    for i in all.iter(Ordering::Relaxed) {
        MARKS[i].store(0, Ordering::Release);
    }
    smp::call_on_cpus(&all, slow_mark, 0x77, true).map_err(|e| fail(alloc::format!("{e:?}")))?;
    for i in all.iter(Ordering::Relaxed) {
        kassert_eq!(MARKS[i].load(Ordering::Acquire), 0x77);
    }
    Ok(())
}

static CALL_RAN_AT: AtomicU64 = AtomicU64::new(0);

fn record_time(_: u64) {
    CALL_RAN_AT.store(time::now(), Ordering::Release);
}

/// A cross-call to a CPU that has interrupts off runs only once it turns
/// them on, and the waiting caller returns only after that.
#[ktest]
fn interrupts_off_target_delays_the_caller(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    const SPIN_US: u64 = 50_000;
    let target = interrupts_off_elsewhere(SPIN_US)?;
    let sent = time::now();
    smp::call_on_cpus(&CpuSet::single(target), record_time, 0, true).map_err(|e| fail(alloc::format!("{e:?}")))?;
    let returned = time::now();
    smp::wait_for(target).ok_or_else(|| fail("spinning CPU did not finish"))?;
    let (ran, spin_end) = (CALL_RAN_AT.load(Ordering::Acquire), SPIN_END.load(Ordering::Acquire));
    kernel::println!(
        "# call sent {} us before the target re-enabled interrupts; it ran {} us after; caller waited {} us",
        time::ticks_to_us(spin_end.saturating_sub(sent)),
        time::ticks_to_us(ran.saturating_sub(spin_end)),
        time::ticks_to_us(returned - sent)
    );
    kassert!(ran >= spin_end, "the call ran while the target had interrupts off");
    kassert!(returned >= ran, "the caller returned before the call ran");
    Ok(())
}

/// Idle secondaries have interrupts on, so their decrementer ticks. It
/// waits for one tick up to 100 tick periods: with many more vCPUs than
/// host CPUs (32 on 2), a vCPU can go unscheduled for tens of ms.
#[ktest]
fn idle_cpus_tick(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    const PERIODS: u64 = 100;
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    let before = PERCPU[target].ticks.load(Ordering::Relaxed);
    let until = time::deadline_us(PERIODS * 1_000_000 / crate::timer::HZ);
    while PERCPU[target].ticks.load(Ordering::Relaxed) == before && time::now() < until {
        core::hint::spin_loop();
    }
    let after = PERCPU[target].ticks.load(Ordering::Relaxed);
    kassert!(after > before, "CPU {target}: {before} ticks before, {after} after {PERIODS} tick periods");
    Ok(())
}

/// An idle secondary sleeps between interrupts (`Machine::idle_wait`):
/// while it takes 3 ticks, with nothing else to do, its idle loop goes
/// round about once per tick, where a spinning one goes round thousands
/// of times. Skipped where the machine has no such wait (POWER8 on bare
/// metal).
#[ktest]
fn idle_cpus_sleep_between_interrupts(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    if !crate::platform::machine().can_idle_wait() {
        kskip!("this machine has no idle wait that resumes in place (POWER8 bare metal); its idle CPUs spin");
    }
    const TICKS: u64 = 3;
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    let area = &PERCPU[target];
    let (ticks, loops) = (area.ticks.load(Ordering::Relaxed), area.idle_loops.load(Ordering::Relaxed));
    let until = time::deadline_us(100 * TICKS * 1_000_000 / crate::timer::HZ);
    while area.ticks.load(Ordering::Relaxed) < ticks + TICKS && time::now() < until {
        core::hint::spin_loop();
    }
    let ticked = area.ticks.load(Ordering::Relaxed) - ticks;
    let rounds = area.idle_loops.load(Ordering::Relaxed) - loops;
    kassert!(ticked >= TICKS, "CPU {target} took {ticked} ticks in 100 tick periods");
    kassert!(rounds <= 4 * ticked + 16, "CPU {target}: {rounds} idle-loop rounds in {ticked} ticks: it does not sleep");
    Ok(())
}

/// The tick count of the CPU running it (posted work).
fn own_ticks(_: u64) -> u64 {
    percpu::this().ticks.load(Ordering::Relaxed)
}

/// Work posted to a sleeping CPU wakes it at once (`smp::wake`'s IPI),
/// not at its next tick: the work sees the tick count the CPU had asleep.
/// A tick may land in between by chance, so up to 5 tries must each have
/// seen one; without the IPI every try waits for a tick.
#[ktest]
fn posted_work_wakes_a_sleeping_cpu(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    let area = &PERCPU[target];
    for _ in 0..5 {
        while !area.idle.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let asleep = area.ticks.load(Ordering::Relaxed);
        let ran = smp::run_on(target, own_ticks, 0).ok_or_else(|| fail(alloc::format!("CPU {target} ran no work")))?;
        if ran == asleep {
            return Ok(());
        }
    }
    Err(fail(alloc::format!("CPU {target} ran posted work only after a tick, 5 times out of 5")))
}

/// A grace period does not wait for sleeping CPUs' ticks: synchronize
/// wakes the ones it waits for (rcu_relax). With every secondary's tick
/// held back (timer::hold: their next tick re-arms the decrementer about
/// 4 s out), nothing else wakes them, so the grace period ends only
/// through those wake-ups; the test gives up after 1 s, far more than
/// they take and less than a held tick's reach.
#[ktest]
fn a_grace_period_wakes_sleeping_cpus(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let secondaries: alloc::vec::Vec<usize> = online_secondaries().collect();
    for &cpu in &secondaries {
        timer::hold(cpu, true);
    }
    // Each takes the tick it had armed, which re-arms far out (and says
    // so); then they sleep until woken.
    let deadline = time::deadline_us(1_000_000);
    while !secondaries.iter().all(|&cpu| timer::held(cpu)) && time::now() < deadline {
        core::hint::spin_loop();
    }
    let late: alloc::vec::Vec<usize> = secondaries.iter().copied().filter(|&cpu| !timer::held(cpu)).collect();
    let held = late.is_empty();
    let deadline = time::deadline_us(1_000_000);
    let ended = held && kernel::rcu::synchronize_until(|| time::now() > deadline);
    for &cpu in &secondaries {
        timer::hold(cpu, false);
    }
    let unarmed: alloc::vec::Vec<usize> = secondaries
        .iter()
        .copied()
        .filter(|&cpu| !smp::post(cpu, rearm_tick, 0) || smp::wait_for(cpu).is_none() || timer::held(cpu))
        .collect();
    if !unarmed.is_empty() {
        return Err(fail(alloc::format!("CPUs {unarmed:?} did not re-arm their tick when asked")));
    }
    if !held {
        return Err(fail(alloc::format!("CPUs {late:?} took no tick in 1 s")));
    }
    kassert!(ended, "no grace period in 1 s with the secondaries' ticks held: synchronize does not wake them");
    Ok(())
}

/// Posted work: arms this CPU's tick again (after `timer::hold` let it go).
fn rearm_tick(_: u64) -> u64 {
    timer::arm();
    0
}

/// Ticks `count_with_interrupts_on` waits to have taken.
const COUNTED_TICKS: u64 = 2;

/// Counts odd numbers the slow way with interrupts on for `microseconds`,
/// and on until COUNTED_TICKS ticks have landed (for at most 20 times as
/// long: a vCPU of a host with fewer CPUs than vCPUs can go unscheduled for
/// several tick periods, and then takes one tick for all of them); returns
/// how often the count disagreed with arithmetic. Ticks land at arbitrary
/// instructions here, between a compare and its branch too, so a handler
/// that loses CR (or any register) shows up as a disagreement.
fn count_with_interrupts_on(microseconds: u64) -> u64 {
    let ticks = &percpu::this().ticks;
    let first = ticks.load(Ordering::Relaxed);
    let (until, give_up) = (time::deadline_us(microseconds), time::deadline_us(20 * microseconds));
    let (mut checked, mut odd, mut mismatches) = (0u64, 0u64, 0u64);
    while time::now() < until || (ticks.load(Ordering::Relaxed) - first < COUNTED_TICKS && time::now() < give_up) {
        for _ in 0..1000 {
            if core::hint::black_box(checked) & 1 == 1 {
                odd += 1;
            }
            checked += 1;
        }
        if odd != checked / 2 {
            mismatches += 1;
            odd = checked / 2;
        }
    }
    mismatches
}

#[ktest]
fn state_survives_asynchronous_interrupts(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let target = online_secondaries().next().ok_or_else(|| fail("no secondary"))?;
    let ticks = PERCPU[target].ticks.load(Ordering::Relaxed);
    let mismatches = smp::run_on(target, count_with_interrupts_on, 100_000).ok_or_else(|| fail("no answer"))?;
    let taken = PERCPU[target].ticks.load(Ordering::Relaxed) - ticks;
    kassert!(taken >= COUNTED_TICKS, "only {taken} ticks during 100 ms to 2 s");
    kassert_eq!(mismatches, 0);
    Ok(())
}
