//! Making other CPUs run something, two ways:
//! - `post`/`run_on`: a per-CPU mailbox the idle CPU polls, for long-running
//!   work (a test body);
//! - `call_on_cpus`: an IPI through the platform's interrupt controller,
//!   whose handler runs the function in
//!   interrupt context, as Linux's smp_call_function_many. A target with
//!   interrupts off does not take it until it turns them back on, and a
//!   caller that waits waits for that: the property the old THP-collapse fix
//!   (serialize_against_pte_lookup) relies on.
//!
//! Bringing secondaries up, and their idle loop, is secondary.rs. An idle
//! CPU sleeps until an interrupt (`Machine::idle_wait`); whoever gives it
//! work wakes it with an IPI (`wake`).

use core::sync::atomic::{fence, AtomicU64, Ordering};

use kernel::cpuset::CpuSet;
use kernel::{time, warn};

use crate::percpu::{self, PerCpu, MAX_CPUS, PERCPU};
use crate::platform::machine;

/// How long `run_on` waits for a CPU to finish its work.
const WORK_TIMEOUT_US: u64 = 5_000_000;

/// Hands `function(argument)` to idle CPU `index` without waiting; false if
/// that CPU is not online, is this CPU, or has work already.
pub fn post(index: usize, function: fn(u64) -> u64, argument: u64) -> bool {
    let Some(area) = PERCPU.get(index) else { return false };
    if index as u64 == percpu::index() || !percpu::is_online(index) {
        return false;
    }
    let posted = area.work.with(|slot| slot.is_none() && slot.replace((function, argument)).is_none());
    if posted {
        wake(index);
    }
    posted
}

/// Makes CPU `index` look for work now if its idle loop sleeps: called
/// after the work (a thread on its run queue, a posted function, a grace
/// period waiting for it) is published. The full fence between publishing
/// and reading `idle` pairs with the idle loop's between setting `idle` and
/// looking for work (store buffering): either that loop sees the work and
/// does not sleep, or this sees `idle` and sends the IPI, whose pending
/// interrupt ends the sleep (or keeps it from starting). Clearing `idle`
/// here sends one IPI per sleep, however many wake it.
pub fn wake(index: usize) {
    let Some(area) = PERCPU.get(index) else { return };
    if index as u64 == percpu::index() {
        return;
    }
    fence(Ordering::SeqCst);
    if area.idle.load(Ordering::Relaxed) && area.idle.swap(false, Ordering::Relaxed) {
        machine().irq().send_ipi(area.server.load(Ordering::Relaxed));
    }
}

/// While `rcu::synchronize` waits: wakes the sleeping CPUs the grace period
/// waits for (each then reports a quiescent state from its idle loop).
fn rcu_relax() {
    fence(Ordering::SeqCst);
    for cpu in percpu::online().iter(Ordering::Acquire) {
        if kernel::rcu::waits_for(cpu) {
            wake(cpu);
        }
    }
    core::hint::spin_loop();
}

/// Waits until CPU `index` finished posted work; its result, or `None` on timeout.
pub fn wait_for(index: usize) -> Option<u64> {
    let area = PERCPU.get(index)?;
    let deadline = time::deadline_us(WORK_TIMEOUT_US);
    while area.work.peek().is_some() {
        if time::now() > deadline {
            return None;
        }
        core::hint::spin_loop();
    }
    Some(area.work_result.load(Ordering::Acquire))
}

/// Runs the work posted to this CPU's mailbox, if any (its idle loop
/// calls this). The slot stays full until the result is in, so `post`
/// cannot overwrite work in progress and `wait_for` sees it finished only
/// with its result.
pub fn run_posted_work(area: &PerCpu) {
    if let Some((function, argument)) = area.work.peek() {
        let result = function(argument);
        area.work.with(|slot| {
            area.work_result.store(result, Ordering::Release);
            *slot = None;
        });
    }
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
    let ago = match since {
        0 => alloc::string::String::new(), // a section that records no time
        _ => {
            let ago_us = time::ticks_to_us(time::now().saturating_sub(since));
            alloc::format!(" {}.{:03} s ago", ago_us / 1_000_000, ago_us / 1000 % 1000)
        }
    };
    let place = crate::ksyms::lookup(at);
    warn!(
        "smp: CPU {} has waited {}.{:03} s for CPU {target} to {what}, still waiting; CPU {target} last turned interrupts off{ago} at {:#x} <{}>",
        percpu::index(),
        waited_us / 1_000_000,
        waited_us / 1000 % 1000,
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
    let irq = machine().irq();
    for target in targets.iter(Ordering::Acquire).filter(|&t| t != me) {
        let area = PERCPU.get(target).filter(|_| percpu::is_online(target)).ok_or(CallError::Offline(target))?;
        // One call in flight per target: fill its empty slot, noting how
        // many calls it had finished (it cannot finish one while the slot is
        // locked, and empties the slot only with the count raised).
        wait_for_answer(target, "take its previous cross-call", || {
            area.call.with(|slot| {
                let empty = slot.is_none();
                if empty {
                    *slot = Some((function, argument));
                    done_before[target] = area.calls_done.load(Ordering::Acquire);
                }
                empty
            })
        });
        irq.send_ipi(area.server.load(Ordering::Relaxed));
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
    let other = machine().irq().handle_external(area.server.load(Ordering::Relaxed), &|| {
        if let Some((function, argument)) = area.call.peek() {
            function(argument);
            area.call.with(|slot| {
                area.calls_done.fetch_add(1, Ordering::AcqRel);
                *slot = None;
            });
        }
    });
    if other > 0 {
        warn!("irq: {other} interrupts from sources nothing asked for");
    }
}

fn rcu_this_cpu() -> usize {
    percpu::index() as usize
}

static RCU_PLATFORM: kernel::rcu::Platform =
    kernel::rcu::Platform { this_cpu: rcu_this_cpu, online: percpu::online, relax: rcu_relax };

/// Tells RCU about this platform's CPUs (before any secondary starts).
pub fn init_rcu() {
    kernel::rcu::set_platform(&RCU_PLATFORM);
}
