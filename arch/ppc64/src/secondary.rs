//! Secondary CPUs: started by the platform (`Machine::start_cpu`),
//! each on its own stack with its own PerCpu, with translation as the boot
//! CPU chose; then each runs its idle loop, with interrupts on (IPIs,
//! ticks), running threads and the work posted to its mailbox.

use core::sync::atomic::Ordering;

use boot::BootInfo;
use kernel::mm::{self, FRAME_SIZE};
use kernel::{info, time, warn};

use crate::percpu::{self, PerCpu, MAX_CPUS, PERCPU};
use crate::platform::{machine, StartError};
use crate::{cpu, mmu, sched, smp, timer};

extern "C" {
    /// asm/entry.s: where a CPU started with r3 = its PerCpu index begins.
    pub fn secondary_start();
    /// asm/entry.s: where a CPU started with r3 = its PIR begins.
    pub fn secondary_start_pir();
}

/// Frames of stack per secondary CPU (256 KiB, as the boot stack).
const STACK_FRAMES: u64 = 4;
/// How long a started CPU may take to report online.
const ONLINE_TIMEOUT_US: u64 = 2_000_000;

/// Starts every CPU of the device tree but this one; returns how many CPUs
/// are online. A CPU that does not come up is reported and skipped.
pub fn start_secondaries(info: &BootInfo) -> usize {
    let boot_server = cpu::pir();
    if info.cpus_beyond_limit > 0 {
        warn!("smp: {} CPUs beyond this kernel's {MAX_CPUS} CPUs, left stopped", info.cpus_beyond_limit);
    }
    let mut index = 1;
    for target in info.cpus.iter().filter(|c| c.server != boot_server) {
        if index >= MAX_CPUS {
            warn!("smp: CPU {} beyond this kernel's {MAX_CPUS} CPUs, left stopped", target.server);
            continue;
        }
        let Some(stack) = mm::alloc_contiguous(STACK_FRAMES, 1) else {
            warn!("smp: no memory for CPU {}'s stack; skipped", target.server);
            continue;
        };
        let stack_top = mm::phys_to_virt(stack.address()) as u64 + STACK_FRAMES * FRAME_SIZE;
        PERCPU[index].prepare(index, target.server, stack_top, secondary_cpu_entry as *const () as u64);
        match machine().start_cpu(info, target.server, index) {
            Ok(()) => {}
            Err(StartError::Unsupported) => {
                PERCPU[index].abandon();
                mm::free_contiguous(stack, STACK_FRAMES);
                warn!("smp: {} cannot start CPUs; running on the boot CPU only", machine().name());
                break;
            }
            Err(error) => {
                warn!("smp: CPU {} not started ({error:?}); skipped", target.server);
                PERCPU[index].abandon();
                mm::free_contiguous(stack, STACK_FRAMES);
                continue;
            }
        }
        let deadline = time::deadline_us(ONLINE_TIMEOUT_US);
        while !percpu::is_online(index) && time::now() < deadline {
            core::hint::spin_loop();
        }
        if !percpu::is_online(index) {
            // It may still arrive: the area and its stack stay its own, and
            // the next CPU gets the next area.
            warn!("smp: CPU {} did not come online; its per-CPU area stays reserved", target.server);
            index += 1;
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
    machine().init_secondary();
    percpu::init_secondary(area);
    cpu::disable_fp_and_vector();
    mmu::enable_on_secondary();
    if let Err(why) = machine().irq().init_cpu() {
        warn!("smp: CPU {}: {why}; no IPIs", area.server.load(Ordering::Relaxed));
    }
    sched::init_cpu();
    crate::process::note_scv(cpu::enable_scv());
    timer::arm();
    percpu::set_online(area.index.load(Ordering::Relaxed) as usize);
    idle(area)
}

/// The idle loop of a secondary: interrupts on (IPIs, ticks), running
/// ready threads and posted work, and between them asleep until an
/// interrupt (`Machine::idle_wait`): spinning vCPUs would take host cores
/// from the ones doing work. `idle` is set, then (after a full fence,
/// which pairs with `smp::wake`'s) the CPU looks for work once more with
/// interrupts off: work published after that look finds `idle` set and
/// sends an IPI, which is pending when the sleep begins, so none is missed.
/// The decrementer's tick wakes it too (RCU's callbacks move on at ticks).
fn idle(area: &'static PerCpu) -> ! {
    cpu::enable_interrupts();
    let me = area.index.load(Ordering::Relaxed) as usize;
    loop {
        area.idle_loops.fetch_add(1, Ordering::Relaxed);
        kernel::rcu::note_quiescent();
        sched::run_ready();
        smp::run_posted_work(area);
        crate::percpu::disable_interrupts();
        area.idle.store(true, Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::SeqCst);
        let work = sched::has_ready() || area.work.peek().is_some() || kernel::rcu::waits_for(me);
        if !work {
            machine().idle_wait();
        }
        area.idle.store(false, Ordering::Relaxed);
        cpu::enable_interrupts();
    }
}
