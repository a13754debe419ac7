//! Self-tests of kernel threads: preemption shares a CPU, affinity holds,
//! a thread in an address space sees that space's mappings.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::ktest::{fail, ktest, require_cpus, Env, TestResult};
use kernel::mm;
use kernel::mm::pagetable::{PageSize, Prot};
use kernel::{kassert, kassert_eq, kskip, time};

use crate::mmu::{self, AddressSpace};
use crate::percpu;
use crate::sched;

const JOIN_TIMEOUT_US: u64 = 5_000_000;

static SPIN_COUNTS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static BOTH_RUNNING: AtomicU64 = AtomicU64::new(0);

/// Spins without ever yielding, counting, until both spinners have counted:
/// only preemption lets the other one run.
fn spinner(which: u64) {
    let deadline = time::deadline_us(3_000_000);
    while time::now() < deadline {
        SPIN_COUNTS[which as usize].fetch_add(1, Ordering::Relaxed);
        if SPIN_COUNTS[1 - which as usize].load(Ordering::Relaxed) > 0
            && SPIN_COUNTS[which as usize].load(Ordering::Relaxed) > 1000
        {
            BOTH_RUNNING.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

#[ktest]
fn threads_share_a_cpu_by_preemption(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let cpu = 1;
    for count in &SPIN_COUNTS {
        count.store(0, Ordering::Relaxed);
    }
    BOTH_RUNNING.store(0, Ordering::Relaxed);
    let switches = sched::SWITCHES[cpu].load(Ordering::Relaxed);
    let a = sched::spawn(cpu, "spinner-a", spinner, 0, None).ok_or_else(|| fail("spawn failed"))?;
    let b = sched::spawn(cpu, "spinner-b", spinner, 1, None).ok_or_else(|| fail("spawn failed"))?;
    kassert!(a.join(JOIN_TIMEOUT_US) && b.join(JOIN_TIMEOUT_US), "spinners did not finish");
    kassert_eq!(BOTH_RUNNING.load(Ordering::Relaxed), 2);
    kassert!(sched::SWITCHES[cpu].load(Ordering::Relaxed) > switches + 2);
    Ok(())
}

static BOOT_THREAD_RAN_ON: AtomicU64 = AtomicU64::new(u64::MAX);

fn note_cpu(_: u64) {
    BOOT_THREAD_RAN_ON.store(percpu::index(), Ordering::Release);
}

/// A thread on the CPU running the tests gets to run while the test waits
/// (the tick preempts the waiting test, or join yields).
#[ktest]
fn boot_cpu_runs_threads(_: &Env<'_>) -> TestResult {
    BOOT_THREAD_RAN_ON.store(u64::MAX, Ordering::Release);
    let me = percpu::index() as usize;
    let thread = sched::spawn(me, "on-boot-cpu", note_cpu, 0, None).ok_or_else(|| fail("spawn failed"))?;
    kassert!(thread.join(JOIN_TIMEOUT_US), "thread did not finish");
    kassert_eq!(BOOT_THREAD_RAN_ON.load(Ordering::Acquire), me as u64);
    Ok(())
}

static STEPS_ELSEWHERE: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);

/// Yields 50 times, checking each time which CPU it runs on.
fn wander(expected_cpu: u64) {
    for _ in 0..50 {
        if percpu::index() != expected_cpu {
            STEPS_ELSEWHERE.fetch_add(1, Ordering::Relaxed);
        }
        STEPS.fetch_add(1, Ordering::Relaxed);
        sched::yield_now();
    }
}

#[ktest]
fn pinned_thread_stays_on_its_cpu(env: &Env<'_>) -> TestResult {
    require_cpus(env, 3)?;
    let cpu = 2;
    if !percpu::is_online(cpu) {
        kskip!("CPU 2 is not online");
    }
    STEPS_ELSEWHERE.store(0, Ordering::Relaxed);
    STEPS.store(0, Ordering::Relaxed);
    // A competitor on the same CPU makes the yields real switches.
    let pinned = sched::spawn(cpu, "pinned", wander, cpu as u64, None).ok_or_else(|| fail("spawn failed"))?;
    let other = sched::spawn(cpu, "other", wander, cpu as u64, None).ok_or_else(|| fail("spawn failed"))?;
    kassert!(pinned.join(JOIN_TIMEOUT_US) && other.join(JOIN_TIMEOUT_US), "threads did not finish");
    kassert_eq!(STEPS.load(Ordering::Relaxed), 100);
    kassert_eq!(STEPS_ELSEWHERE.load(Ordering::Relaxed), 0);
    Ok(())
}

const USER_ADDRESS: u64 = 0x2000_0000;
static SEEN: AtomicU64 = AtomicU64::new(0);

fn read_user_address(_: u64) {
    SEEN.store(crate::exceptions::try_load(USER_ADDRESS).unwrap_or(u64::MAX), Ordering::Release);
}

/// A thread created in address space X reads X's page at a low address; a
/// thread in no address space faults there.
#[ktest]
#[allow(unsafe_code)]
fn thread_sees_its_address_space(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    if mmu::flusher().is_none() {
        kskip!("translation is off (mmu=off)");
    }
    let mut space = AddressSpace::new().map_err(|e| fail(alloc::format!("{e:?}")))?;
    let frame = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    // SAFETY: a frame just allocated, through the linear map.
    unsafe { (mm::phys_to_virt(frame.address()) as *mut u64).write_volatile(0x5bace) };
    let result = (|| {
        space
            .tree()
            .map(USER_ADDRESS, frame.address(), PageSize::Base, Prot::READ | Prot::USER)
            .map_err(|e| fail(alloc::format!("{e:?}")))?;
        SEEN.store(0, Ordering::Release);
        let inside =
            sched::spawn(1, "in-space", read_user_address, 0, Some(space.id())).ok_or_else(|| fail("spawn failed"))?;
        kassert!(inside.join(JOIN_TIMEOUT_US));
        kassert_eq!(SEEN.load(Ordering::Acquire), 0x5bace);
        let outside = sched::spawn(1, "no-space", read_user_address, 0, None).ok_or_else(|| fail("spawn failed"))?;
        kassert!(outside.join(JOIN_TIMEOUT_US));
        kassert_eq!(SEEN.load(Ordering::Acquire), u64::MAX);
        Ok(())
    })();
    let _ = space.unmap(USER_ADDRESS);
    drop(space);
    mm::free_frame(frame);
    result
}
