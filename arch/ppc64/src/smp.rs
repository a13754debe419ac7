//! Secondary CPUs: started with RTAS `start-cpu` (after checking
//! `query-cpu-stopped-state`), each on its own stack with its own PerCpu,
//! with translation as the boot CPU chose; then they wait for work.
//!
//! Work is handed over through a per-CPU mailbox that the target polls
//! (`run_on`): enough to run a test body on a chosen CPU. Interrupt-driven
//! cross-calls (IPIs through XICS), threads and RCU are issue [4/7]'s next
//! steps.

use core::sync::atomic::Ordering;

use boot::BootInfo;
use kernel::mm::{self, FRAME_SIZE};
use kernel::{info, warn};

use crate::percpu::{self, PerCpu, MAX_CPUS, PERCPU};
use crate::{cpu, mmu, rtas};

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
    let entry = mm::virt_to_phys(secondary_start as *const () as u64);
    let frequency = info.timebase_frequency.max(1);
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
        let deadline = cpu::timebase() + ONLINE_TIMEOUT_US * frequency / 1_000_000;
        while !PERCPU[index].online.load(Ordering::Acquire) && cpu::timebase() < deadline {
            core::hint::spin_loop();
        }
        if !PERCPU[index].online.load(Ordering::Acquire) {
            warn!("smp: CPU {} did not come online", target.server);
            continue;
        }
        index += 1;
    }
    let online = percpu::online_count();
    info!("smp: {online} of {} CPUs online", info.cpus.len());
    online
}

/// A secondary CPU's first Rust code, on its own stack, in real mode.
extern "C" fn secondary_cpu_entry(area: &'static PerCpu) -> ! {
    percpu::init_secondary(area);
    cpu::disable_fp_and_vector();
    mmu::enable_on_secondary();
    area.online.store(true, Ordering::Release);
    wait_for_work(area)
}

fn wait_for_work(area: &'static PerCpu) -> ! {
    loop {
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

/// Runs `function(argument)` on CPU `index` and returns its result; `None`
/// if that CPU is not online or did not finish in time. On the calling CPU
/// itself it just calls the function.
pub fn run_on(index: usize, function: fn(u64) -> u64, argument: u64) -> Option<u64> {
    let area = PERCPU.get(index)?;
    if index as u64 == percpu::index() {
        return Some(function(argument));
    }
    if !area.online.load(Ordering::Acquire) {
        return None;
    }
    area.work_argument.store(argument, Ordering::Relaxed);
    if area.work.compare_exchange(0, function as usize, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return None; // busy with someone else's work
    }
    let frequency = crate::boot_info().timebase_frequency.max(1);
    let deadline = cpu::timebase() + WORK_TIMEOUT_US * frequency / 1_000_000;
    while area.work.load(Ordering::Acquire) != 0 {
        if cpu::timebase() > deadline {
            return None;
        }
        core::hint::spin_loop();
    }
    Some(area.work_result.load(Ordering::Relaxed))
}
