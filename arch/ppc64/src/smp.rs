//! Secondary CPUs: started with RTAS `start-cpu` (after checking
//! `query-cpu-stopped-state`), each on its own stack with its own PerCpu,
//! with translation as the boot CPU chose; then they wait for work.
//!
//! Two ways to make another CPU run something:
//! - `post`/`run_on`: a per-CPU mailbox the idle CPU polls, for long-running
//!   work (a test body);
//! - `call_on_cpus`: an IPI through XICS, whose handler runs the function in
//!   interrupt context, as Linux's smp_call_function_many. A target with
//!   interrupts off does not take it until it turns them back on, and a
//!   caller that waits waits for that: the property the old THP-collapse fix
//!   (serialize_against_pte_lookup) relies on.
//!
//! Idle secondaries poll with interrupts on; their decrementer ticks.

use core::sync::atomic::{AtomicU64, Ordering};

use boot::BootInfo;
use kernel::cpuset::CpuSet;
use kernel::mm::{self, FRAME_SIZE};
use kernel::{info, time, warn};

use crate::percpu::{self, PerCpu, MAX_CPUS, PERCPU};
use crate::{cpu, mmu, rtas, timer, xics};

extern "C" {
    fn secondary_start();
}

/// Frames of stack per secondary CPU (256 KiB, as the boot stack).
const STACK_FRAMES: u64 = 4;
/// How long a started CPU may take to report online.
const ONLINE_TIMEOUT_US: u64 = 2_000_000;
/// How long `run_on` waits for a CPU to finish its work.
const WORK_TIMEOUT_US: u64 = 5_000_000;
/// `query-cpu-stopped-state` result for a stopped CPU (PAPR).
const CPU_STOPPED: u32 = 0;

/// Starts every CPU of the device tree but this one; returns how many CPUs
/// are online. A CPU that does not come up is reported and skipped.
pub fn start_secondaries(info: &BootInfo) -> usize {
    let boot_server = cpu::pir();
    let Some(start_cpu) = info.rtas.tokens.start_cpu else {
        if info.cpus.len() > 1 {
            warn!("smp: no RTAS start-cpu token; running on the boot CPU only");
        }
        return percpu::online_count();
    };
    if info.cpus_beyond_limit > 0 {
        warn!("smp: {} CPUs beyond this kernel's {MAX_CPUS} CPUs, left stopped", info.cpus_beyond_limit);
    }
    let entry = mm::virt_to_phys(secondary_start as *const () as u64);
    let mut index = 1;
    for target in info.cpus.iter().filter(|c| c.server != boot_server) {
        if index >= MAX_CPUS {
            warn!("smp: CPU {} beyond this kernel's {MAX_CPUS} CPUs, left stopped", target.server);
            continue;
        }
        if let Some(query) = info.rtas.tokens.query_cpu_stopped_state {
            let mut state = [0u32];
            match rtas::call(query, &[target.server], &mut state) {
                Ok(rtas::RTAS_SUCCESS) if state[0] == CPU_STOPPED => {}
                result => {
                    warn!("smp: CPU {} is not stopped ({result:?}, state {}); skipped", target.server, state[0]);
                    continue;
                }
            }
        }
        let Some(stack) = mm::alloc_contiguous(STACK_FRAMES, 1) else {
            warn!("smp: no memory for CPU {}'s stack; skipped", target.server);
            continue;
        };
        let stack_top = mm::phys_to_virt(stack.address()) as u64 + STACK_FRAMES * FRAME_SIZE;
        PERCPU[index].prepare(index, target.server, stack_top, secondary_cpu_entry as *const () as u64);
        match rtas::call(start_cpu, &[target.server, entry as u32, index as u32], &mut []) {
            Ok(rtas::RTAS_SUCCESS) => {}
            result => {
                warn!("smp: start-cpu {} failed: {result:?}", target.server);
                mm::free_contiguous(stack, STACK_FRAMES);
                continue;
            }
        }
        let deadline = time::deadline_us(ONLINE_TIMEOUT_US);
        while !percpu::is_online(index) && time::now() < deadline {
            core::hint::spin_loop();
        }
        if !percpu::is_online(index) {
            warn!("smp: CPU {} did not come online", target.server);
            continue;
        }
        index += 1;
    }
    let online = percpu::online_count();
    info!("smp: {online} of {} CPUs online", info.cpus_in_tree());
    online
}

/// A secondary CPU's first Rust code, on its own stack, in real mode.
extern "C" fn secondary_cpu_entry(area: &'static PerCpu) -> ! {
    percpu::init_secondary(area);
    cpu::disable_fp_and_vector();
    mmu::enable_on_secondary();
    if let Err(status) = xics::init_cpu() {
        warn!("smp: CPU {}: H_CPPR failed ({status}); no IPIs", area.server.load(Ordering::Relaxed));
    }
    crate::sched::init_cpu();
    timer::arm();
    percpu::set_online(area.index.load(Ordering::Relaxed) as usize);
    wait_for_work(area)
}

/// The idle loop of a secondary: interrupts on (IPIs, ticks), polling the
/// mailbox.
fn wait_for_work(area: &'static PerCpu) -> ! {
    cpu::enable_interrupts();
    loop {
        kernel::rcu::note_quiescent();
        crate::sched::run_ready();
        let work = area.work.load(Ordering::Acquire);
        if work != 0 {
            // SAFETY: `work` only ever holds 0 or a `fn(u64) -> u64` stored by run_on.
            let function = unsafe { core::mem::transmute::<usize, fn(u64) -> u64>(work) };
            let result = function(area.work_argument.load(Ordering::Relaxed));
            area.work_result.store(result, Ordering::Relaxed);
            // Release: the result is visible before the mailbox reads empty.
            area.work.store(0, Ordering::Release);
        }
        core::hint::spin_loop();
    }
}

/// Hands `function(argument)` to idle CPU `index` without waiting; false if
/// that CPU is not online, is this CPU, or has work already.
pub fn post(index: usize, function: fn(u64) -> u64, argument: u64) -> bool {
    let Some(area) = PERCPU.get(index) else { return false };
    if index as u64 == percpu::index() || !percpu::is_online(index) {
        return false;
    }
    area.work_argument.store(argument, Ordering::Relaxed);
    // Release: the argument is visible before the work.
    area.work.compare_exchange(0, function as usize, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

/// Waits until CPU `index` finished posted work; its result, or `None` on timeout.
pub fn wait_for(index: usize) -> Option<u64> {
    let area = PERCPU.get(index)?;
    let deadline = time::deadline_us(WORK_TIMEOUT_US);
    while area.work.load(Ordering::Acquire) != 0 {
        if time::now() > deadline {
            return None;
        }
        core::hint::spin_loop();
    }
    Some(area.work_result.load(Ordering::Relaxed))
}

/// Runs `function(argument)` on CPU `index` and returns its result; `None`
/// if that CPU is not online or did not finish in time. On the calling CPU
/// itself it just calls the function.
pub fn run_on(index: usize, function: fn(u64) -> u64, argument: u64) -> Option<u64> {
    if index as u64 == percpu::index() {
        return Some(function(argument));
    }
    if !post(index, function, argument) {
        return None;
    }
    wait_for(index)
}

/// Why a cross-call could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    Offline(usize),
}

/// Marks a call slot claimed while its argument is written.
const CALL_CLAIMED: usize = 1;

/// How long a cross-call waits for a CPU before each warning (Linux's
/// CSD-lock watchdog: csd_lock_timeout, 5 s). It never stops waiting: a
/// caller such as serialize_against_pte_lookup must not go on as if a CPU
/// that has not answered had.
const WATCHDOG_US: u64 = 5_000_000;
static WATCHDOG_INTERVAL_US: AtomicU64 = AtomicU64::new(WATCHDOG_US);
/// Warnings the watchdog has printed (for the tests that provoke them).
pub static WATCHDOG_WARNINGS: AtomicU64 = AtomicU64::new(0);

/// Sets the watchdog's interval (tests shorten it to provoke warnings
/// quickly); returns the previous one.
pub fn set_watchdog_interval_us(us: u64) -> u64 {
    WATCHDOG_INTERVAL_US.swap(us.max(1), Ordering::AcqRel)
}

/// Spins until `answered()`, warning every watchdog interval that `target`
/// has not answered, with what the target last said about itself: where it
/// last turned interrupts off and how long ago.
fn wait_for_answer(target: usize, what: &str, mut answered: impl FnMut() -> bool) {
    if answered() {
        return;
    }
    // Tells the target a caller is held back by it (tests wait for this).
    let waiting = &PERCPU[target].callers_waiting;
    waiting.fetch_add(1, Ordering::AcqRel);
    let started = time::now();
    let mut next_warning = time::deadline_us(WATCHDOG_INTERVAL_US.load(Ordering::Acquire));
    while !answered() {
        let now = time::now();
        if now > next_warning {
            report_unanswered(target, what, time::ticks_to_us(now - started));
            WATCHDOG_WARNINGS.fetch_add(1, Ordering::AcqRel);
            next_warning = time::deadline_us(WATCHDOG_INTERVAL_US.load(Ordering::Acquire));
        }
        core::hint::spin_loop();
    }
    waiting.fetch_sub(1, Ordering::AcqRel);
}

fn report_unanswered(target: usize, what: &str, waited_us: u64) {
    let area = &PERCPU[target];
    let at = area.irq_off_at.load(Ordering::Relaxed);
    let since = area.irq_off_since.load(Ordering::Relaxed);
    let ago_us = time::ticks_to_us(time::now().saturating_sub(since));
    let place = crate::ksyms::lookup(at);
    warn!(
        "smp: CPU {} has waited {}.{:03} s for CPU {target} to {what}, still waiting; CPU {target} last turned interrupts off {}.{:03} s ago at {:#x} <{}>",
        percpu::index(),
        waited_us / 1_000_000,
        waited_us / 1000 % 1000,
        ago_us / 1_000_000,
        ago_us / 1000 % 1000,
        at,
        match &place {
            Some(symbol) => alloc::format!("{symbol}"),
            None => alloc::string::String::from("?"),
        }
    );
}

/// Runs `function(argument)` on every CPU in `targets` (this CPU included
/// if in the set, run directly), through IPIs, in index order. With `wait`,
/// returns only after every target ran it: a target with interrupts off
/// delays the caller until it turns them on (Linux's smp_call_function_many
/// semantics), however long that takes, with a warning naming the target
/// every watchdog interval. Without `wait`, returns once every target has
/// the call queued (which waits the same way for a target whose previous
/// call is still pending).
pub fn call_on_cpus(targets: &CpuSet, function: fn(u64), argument: u64, wait: bool) -> Result<(), CallError> {
    let me = percpu::index() as usize;
    // 2 KiB at 256 CPUs, on kernel stacks of 256 KiB.
    let mut done_before = [0u64; MAX_CPUS];
    // The CPUs the call went to, which `wait` waits for: `targets` is
    // iterated once, so a set that others change (the online CPUs) may be
    // passed.
    let sent = CpuSet::new();
    for target in targets.iter(Ordering::Acquire).filter(|&t| t != me) {
        let area = PERCPU.get(target).filter(|_| percpu::is_online(target)).ok_or(CallError::Offline(target))?;
        // One call in flight per target: claim its slot, then publish.
        wait_for_answer(target, "take its previous cross-call", || {
            area.call_function.compare_exchange(0, CALL_CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok()
        });
        done_before[target] = area.calls_done.load(Ordering::Acquire);
        area.call_argument.store(argument, Ordering::Relaxed);
        area.call_function.store(function as usize, Ordering::Release);
        xics::send_ipi(area.server.load(Ordering::Relaxed));
        sent.insert(target, Ordering::Relaxed);
    }
    if targets.contains(me, Ordering::Acquire) {
        function(argument);
    }
    if wait {
        for target in sent.iter(Ordering::Relaxed) {
            let area = &PERCPU[target];
            wait_for_answer(target, "answer a cross-call", || {
                area.calls_done.load(Ordering::Acquire) != done_before[target]
            });
        }
    }
    Ok(())
}

/// Whether another CPU is spinning in `call_on_cpus` until this one
/// answers: with interrupts off here, that caller is held back by this CPU.
/// Tests use it as the event "the IPI waits for me" (a call that was sent
/// but not waited for does not count: that is the broken fix).
pub fn caller_waiting_here() -> bool {
    percpu::this().callers_waiting.load(Ordering::Acquire) != 0
}

/// 0x500: runs a pending cross-call of this CPU.
pub fn external_interrupt() {
    let area = percpu::this();
    let other = xics::handle_external(area.server.load(Ordering::Relaxed), || {
        let function = area.call_function.load(Ordering::Acquire);
        if function > CALL_CLAIMED {
            // SAFETY: call_function only holds 0, CALL_CLAIMED or a fn(u64)
            // stored by call_on_cpus.
            let function = unsafe { core::mem::transmute::<usize, fn(u64)>(function) };
            function(area.call_argument.load(Ordering::Relaxed));
            area.call_function.store(0, Ordering::Release);
            area.calls_done.fetch_add(1, Ordering::AcqRel);
        }
    });
    if other > 0 {
        warn!("xics: {other} interrupts from sources nothing asked for");
    }
}

/// 0x900: the tick. It is only taken with interrupts on, so it is a
/// sched-RCU quiescent state.
pub fn decrementer_interrupt() {
    timer::arm();
    percpu::this().ticks.fetch_add(1, Ordering::Relaxed);
    kernel::rcu::quiescent_state();
    crate::sched::preempt();
}

fn rcu_this_cpu() -> usize {
    percpu::index() as usize
}

static RCU_PLATFORM: kernel::rcu::Platform =
    kernel::rcu::Platform { this_cpu: rcu_this_cpu, online: percpu::online, relax: core::hint::spin_loop };

/// Tells RCU about this platform's CPUs (before any secondary starts).
pub fn init_rcu() {
    kernel::rcu::set_platform(&RCU_PLATFORM);
}
