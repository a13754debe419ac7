//! Processes in problem state (process.rs): programs start on another CPU
//! (or, with one CPU, on this one, running whenever the test yields),
//! make system calls, fault their pages in, are killed for accesses their
//! regions or the MMU do not allow, and exit; nothing they do brings the
//! kernel down, and every frame comes back (the accounting suite checks
//! after these).

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use kernel::cmdline::CollapseIpi;
use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::{kassert, kassert_eq};

use kernel::mm::jitter::Jitter;
use kernel::mm::vm::{MmArch, RaceSettings};

use crate::process::{self, Exit, Kill, PinRace, Process};
use crate::trap::vector;

use super::online_secondaries;

/// How long a process may take: a guard against a hang, not a duration
/// any test needs (each waits for the process's exit, an event).
const GUARD_US: u64 = 20_000_000;

/// A kernel address every test may pass to a program to touch: the
/// kernel's first page.
const KERNEL_ADDRESS: u64 = 0xc000_0000_0040_0000;

fn start(name: &str, arguments: [u64; 3]) -> Result<Arc<Process>, kernel::ktest::Failure> {
    super::require_translation()?;
    let program = process::program(name).ok_or_else(|| fail(alloc::format!("no user program '{name}'")))?;
    let cpu = online_secondaries().next().unwrap_or(0);
    process::spawn(&program, cpu, arguments).map_err(|e| fail(alloc::format!("spawn {name}: {e:?}")))
}

fn run(name: &str, arguments: [u64; 3]) -> Result<(Arc<Process>, Exit), kernel::ktest::Failure> {
    let process = start(name, arguments)?;
    let exit = process.wait(GUARD_US).ok_or_else(|| fail(alloc::format!("{name} did not end")))?;
    Ok((process, exit))
}

fn killed(exit: Exit) -> Result<Kill, kernel::ktest::Failure> {
    match exit {
        Exit::Killed(kill) => Ok(kill),
        other => Err(fail(alloc::format!("expected a kill, got {other:?}"))),
    }
}

#[ktest]
fn hello_writes_yields_and_exits(_: &Env<'_>) -> TestResult {
    let (process, exit) = run("hello", [0; 3])?;
    kassert_eq!(exit, Exit::Code(process.pid));
    kassert_eq!(process.output().as_str(), "hello from user mode\n");
    // write, sched_yield, getpid, exit.
    kassert_eq!(process.syscalls.load(Ordering::Relaxed), 4);
    Ok(())
}

/// System calls the scv loop makes: enough for dozens of ticks.
const SCV_LOOP_CALLS: u64 = 300_000;

/// `scv 0` where the CPU has it (POWER9, POWER10): the same calls, errors
/// as -errno; another level kills the process.
#[ktest]
fn system_calls_through_scv(_: &Env<'_>) -> TestResult {
    super::require_translation()?;
    if !process::scv_available() {
        kernel::kskip!("no scv on this CPU (ISA 3.0 and later), or the hypervisor keeps it");
    }
    let (process, exit) = run("scv_calls", [0; 3])?;
    kassert_eq!(exit, Exit::Code(process.pid));
    kassert_eq!(process.output().as_str(), "hello through scv\n");
    // Back-to-back calls through many ticks: some land at a stub's first
    // instructions, before it turns interrupts off.
    let (process, exit) = run("scv_loop", [SCV_LOOP_CALLS, 0, 0])?;
    kassert_eq!(exit, Exit::Code(0));
    kassert!(process.user_interrupts.load(Ordering::Relaxed) > SCV_LOOP_CALLS, "the calls did not all return");
    let kill = killed(run("scv_level1", [0; 3])?.1)?;
    kassert_eq!(kill.vector, vector::SYSTEM_CALL_VECTORED + 0x20);
    Ok(())
}

#[ktest]
fn bad_system_calls_return_errors(_: &Env<'_>) -> TestResult {
    let (_, exit) = run("bad_syscalls", [KERNEL_ADDRESS, 0, 0])?;
    // The program exits with the number of the first call whose error was not the expected one.
    kassert_eq!(exit, Exit::Code(0));
    Ok(())
}

#[ktest]
fn reading_kernel_memory_kills(_: &Env<'_>) -> TestResult {
    let (_, exit) = run("load", [KERNEL_ADDRESS, 0, 0])?;
    let kill = killed(exit)?;
    kassert!(
        kill.vector == vector::DATA_STORAGE || kill.vector == vector::DATA_SEGMENT,
        "killed by {:#x}",
        kill.vector
    );
    kassert_eq!(kill.address, KERNEL_ADDRESS);
    kassert_eq!(kill.pc, process::USER_TEXT);
    Ok(())
}

#[ktest]
fn writing_kernel_memory_kills(_: &Env<'_>) -> TestResult {
    let before = unsafe_read(KERNEL_ADDRESS);
    let (_, exit) = run("store", [KERNEL_ADDRESS, 0x5a5a_5a5a_5a5a_5a5a, 0])?;
    let kill = killed(exit)?;
    kassert_eq!(kill.address, KERNEL_ADDRESS);
    kassert_eq!(unsafe_read(KERNEL_ADDRESS), before);
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_read(address: u64) -> u64 {
    // SAFETY: a kernel address of the image, mapped and readable.
    unsafe { (address as *const u64).read_volatile() }
}

#[ktest]
fn unmapped_and_read_only_user_memory_kills(_: &Env<'_>) -> TestResult {
    // Nothing mapped at 0x100 (no region): a segmentation fault.
    let kill = killed(run("load", [0x100, 0, 0])?.1)?;
    kassert_eq!((kill.vector, kill.address), (vector::DATA_STORAGE, 0x100));
    // The program's own text is read-only and executable.
    let kill = killed(run("store", [process::USER_TEXT, 1, 0])?.1)?;
    kassert_eq!((kill.vector, kill.address), (vector::DATA_STORAGE, process::USER_TEXT));
    kassert!(kill.dsisr & crate::trap::dsisr::STORE != 0, "DSISR {:#x}", kill.dsisr);
    Ok(())
}

#[ktest]
fn kernel_code_privileged_trap_and_fp_instructions_kill(_: &Env<'_>) -> TestResult {
    let kill = killed(run("jump", [KERNEL_ADDRESS, 0, 0])?.1)?;
    kassert!(
        kill.vector == vector::INSTRUCTION_STORAGE || kill.vector == vector::INSTRUCTION_SEGMENT,
        "killed by {:#x}",
        kill.vector
    );
    kassert_eq!(kill.address, KERNEL_ADDRESS);
    let kill = killed(run("privileged", [0; 3])?.1)?;
    kassert_eq!(kill.vector, vector::PROGRAM);
    kassert_eq!(kill.pc, process::USER_TEXT + 4);
    let kill = killed(run("trap", [0; 3])?.1)?;
    kassert_eq!((kill.vector, kill.pc), (vector::PROGRAM, process::USER_TEXT));
    let kill = killed(run("fp", [0; 3])?.1)?;
    kassert_eq!((kill.vector, kill.pc), (vector::FP_UNAVAILABLE, process::USER_TEXT));
    Ok(())
}

/// Registers survive interrupts and system calls: the program fills them,
/// spins through several ticks (sharing its CPU with a kernel thread, so
/// some ticks switch away from it), checks, yields, checks again.
#[ktest]
fn user_registers_survive_interrupts_and_system_calls(_: &Env<'_>) -> TestResult {
    static OTHER_RAN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    fn other(_: u64) {
        OTHER_RAN.store(true, Ordering::Release);
        let deadline = kernel::time::deadline_us(50_000);
        while kernel::time::now() < deadline {
            crate::sched::run_ready();
        }
    }
    OTHER_RAN.store(false, Ordering::Release);
    let ticks = kernel::time::us_to_ticks(100_000);
    let process = start("regs", [ticks, 0, 0])?;
    let cpu = online_secondaries().next().unwrap_or(0);
    let thread = crate::sched::spawn(cpu, "beside", other, 0, None).ok_or_else(|| fail("no thread"))?;
    let exit = process.wait(GUARD_US).ok_or_else(|| fail("regs did not end"))?;
    kassert!(thread.join(GUARD_US), "the kernel thread beside it did not end");
    // 0, or the register that changed (100 + n: across a system call; 200 CR, 201 CTR).
    kassert_eq!(exit, Exit::Code(0));
    kassert!(OTHER_RAN.load(Ordering::Acquire), "the kernel thread never ran beside the process");
    kassert!(process.user_interrupts.load(Ordering::Relaxed) >= 5, "too few interrupts from user mode");
    Ok(())
}

#[ktest]
fn a_spinning_process_is_preempted_and_killed(_: &Env<'_>) -> TestResult {
    let process = start("spin", [0; 3])?;
    // It runs: its CPU keeps taking ticks from user mode.
    let guard = kernel::time::deadline_us(GUARD_US);
    while process.user_interrupts.load(Ordering::Relaxed) < 3 && kernel::time::now() < guard {
        // With one CPU, the process runs when this thread yields.
        crate::sched::run_ready();
        core::hint::spin_loop();
    }
    kassert!(process.user_interrupts.load(Ordering::Relaxed) >= 3, "the process never ran");
    process.kill();
    let exit = process.wait(GUARD_US).ok_or_else(|| fail("the spinning process was not killed"))?;
    // Killed on request: no interrupt of its own.
    kassert_eq!(killed(exit)?.vector, 0);
    Ok(())
}

/// A process that faults forever (maps a page, faults it in, unmaps it,
/// over and over) is killed on request, and gives everything back.
#[ktest]
fn a_process_that_faults_forever_is_killed(_: &Env<'_>) -> TestResult {
    let process = start("refault", [0x5000_0000, 0, 0])?;
    let guard = kernel::time::deadline_us(GUARD_US);
    while process.mm.stats.faults.load(Ordering::Relaxed) < 50 && kernel::time::now() < guard {
        crate::sched::run_ready();
        core::hint::spin_loop();
    }
    kassert!(process.mm.stats.faults.load(Ordering::Relaxed) >= 50, "the process did not keep faulting");
    process.kill();
    let exit = process.wait(GUARD_US).ok_or_else(|| fail("the faulting process was not killed"))?;
    kassert_eq!(killed(exit)?.vector, 0);
    Ok(())
}

#[ktest]
fn processes_do_not_see_each_other(_: &Env<'_>) -> TestResult {
    const SECRET_AT: u64 = 0x3000_0000;
    let holder = start("holder", [SECRET_AT, 0x5ec2e7, 0])?;
    // Once the holder has mapped its page (its mmap is its first call)...
    let guard = kernel::time::deadline_us(GUARD_US);
    while holder.syscalls.load(Ordering::Relaxed) < 2 && kernel::time::now() < guard {
        crate::sched::run_ready();
        core::hint::spin_loop();
    }
    kassert!(holder.mm.region(SECRET_AT).is_some(), "the holder did not map its page");
    // ...another process has nothing there.
    let kill = killed(run("load", [SECRET_AT, 0, 0])?.1)?;
    kassert_eq!(kill.address, SECRET_AT);
    holder.kill();
    kassert!(holder.wait(GUARD_US).is_some(), "the holder was not killed");
    Ok(())
}

#[ktest]
fn anonymous_memory_and_thp_from_user_mode(_: &Env<'_>) -> TestResult {
    let (process, exit) = run("thp", [0; 3])?;
    // Otherwise the exit code is the step that failed.
    kassert_eq!(exit, Exit::Code(0));
    let collapsed = process.mm.stats.collapse.collapsed.load(Ordering::Relaxed);
    kassert_eq!(collapsed, 1);
    // munmap took the region and its pages: only the program's text is left.
    kassert!(process.mm.region(process::FIRST_MMAP).is_none(), "the mapping is still there");
    kassert_eq!(process.mm.mapped_pages(), 1);
    Ok(())
}

// --- The race from user mode ---------------------------------------------------

/// Where the race program maps its 2 MiB, and how many pins it makes.
const RACE_BASE: u64 = 0x4000_0000;
const RACE_ROUNDS: u64 = 400;
/// How many runs an unprotected configuration may take to show the race.
const RACE_RUNS: u32 = 4;

/// One run of the seed thread's race as Linux has it: a process pins one of
/// its pages at a time (GUP-fast in the pin call, its window widened) and
/// writes to it from user mode on a secondary CPU, while this CPU collapses
/// and splits its region over and over (collapse widened too), with the
/// knobs `recheck` and `ipi`. Returns the writes the pinned page did not see.
fn user_race(env: &Env<'_>, recheck: bool, ipi: CollapseIpi) -> Result<u64, kernel::ktest::Failure> {
    let settings = RaceSettings::new(recheck, ipi);
    let jitter_us = env.options.race_jitter_us.unwrap_or(1000) as u64;
    let seed = env.options.race_seed.unwrap_or_else(crate::cpu::timebase);
    let ticks = kernel::time::us_to_ticks(jitter_us);
    let race = PinRace { settings, seed, jitter_ticks: ticks };
    super::require_translation()?;
    let program = process::program("pinwriter").ok_or_else(|| fail("no pinwriter program"))?;
    let cpu = online_secondaries().next().ok_or_else(|| fail("no secondary CPU"))?;
    let process = process::spawn_racing(&program, cpu, [RACE_BASE, RACE_ROUNDS, 0], Some(race))
        .map_err(|e| fail(alloc::format!("spawn: {e:?}")))?;
    // Its mmap and madvise: the region exists and takes huge pages.
    let guard = kernel::time::deadline_us(GUARD_US);
    while process.syscalls.load(Ordering::Relaxed) < 2 && process.exit().is_none() && kernel::time::now() < guard {
        core::hint::spin_loop();
    }
    let collapse_jitter = Jitter::new(seed, u64::MAX, ticks, crate::cpu::timebase);
    while process.exit().is_none() && kernel::time::now() < guard {
        let huge = process.mm.with_arch(|arch| arch.tree().pmd(RACE_BASE).is_leaf());
        if !huge {
            let _ = process.mm.collapse_with(RACE_BASE, settings, &collapse_jitter);
        }
        crate::sched::run_ready();
        let _ = process.mm.split(RACE_BASE);
    }
    let exit = process.wait(GUARD_US).ok_or_else(|| fail("the race program did not end"))?;
    let collapsed = process.mm.stats.collapse.collapsed.load(Ordering::Relaxed);
    let aborted = process.mm.stats.collapse.aborted_pinned.load(Ordering::Relaxed);
    let Exit::Code(lost) = exit else { return Err(fail(alloc::format!("the race program was killed: {exit:?}"))) };
    kassert!(lost < 900, "the race program failed at step {}", lost - 900);
    kernel::println!(
        "# user race ({}, recheck={recheck} ipi={ipi:?}, race_jitter={jitter_us} race_seed={seed:#x}): {RACE_ROUNDS} pins written from user mode, {lost} writes the pinned page did not see; {collapsed} collapses, {aborted} gave up on a pin",
        crate::mmu::backend().name()
    );
    Ok(lost)
}

/// With the kernel's defaults, the pinned page sees every write the process
/// makes (a collapse that would replace it sees the pin and gives up, or
/// GUP-fast sees the collapse and backs off).
#[ktest]
fn race_with_the_defaults_keeps_every_write(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let lost = user_race(env, true, CollapseIpi::Auto)?;
    kassert_eq!(lost, 0);
    Ok(())
}

/// With neither fix, GUP-fast pins a page collapse then replaces: the
/// process's writes go to the huge page, the pinned page never sees them.
#[ktest]
fn race_without_the_fixes_loses_writes(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    for _ in 0..RACE_RUNS {
        if user_race(env, false, CollapseIpi::Off)? > 0 {
            return Ok(());
        }
    }
    if env.options.race_jitter_us == Some(0) {
        kernel::kskip!("race_jitter=0, and no run showed the race");
    }
    Err(fail(alloc::format!("{RACE_RUNS} widened runs without either fix lost no write")))
}
