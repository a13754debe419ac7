//! Self-tests of the secondary CPUs: all of them online, each running a
//! test body on itself, and a mapping changed and flushed on one CPU seen
//! changed on another (radix `tlbie` broadcast; hash HPTE invalidation).

use core::sync::atomic::Ordering;

use kernel::ktest::{fail, require_cpus, Env, Suite, Test, TestResult};
use kernel::mm::mmu::{Scope, KERNEL_SPACE};
use kernel::mm::pagetable::{PageSize, Prot};
use kernel::mm::{self, LINEAR_MAP_BASE};
use kernel::{kassert, kassert_eq, kskip};

use crate::percpu::{self, MAX_CPUS, PERCPU};
use crate::{cpu, exceptions, mmu, smp};

pub static SMP: Suite = Suite {
    name: "smp",
    tests: &[
        Test { name: "all_cpus_online", run: all_cpus_online },
        Test { name: "each_cpu_runs_work_and_reports_pir", run: each_cpu_runs_work_and_reports_pir },
        Test { name: "secondaries_translate_like_the_boot_cpu", run: secondaries_translate_like_the_boot_cpu },
        Test { name: "flush_reaches_other_cpus", run: flush_reaches_other_cpus },
    ],
};

fn all_cpus_online(env: &Env<'_>) -> TestResult {
    let expected = env.boot.cpus.len().min(MAX_CPUS);
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

fn each_cpu_runs_work_and_reports_pir(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    // PIR is reported, not compared with the device tree's server number:
    // QEMU 7.2 gives every pseries vCPU PIR 0 (10.x gives the server number).
    for (index, area) in PERCPU.iter().enumerate().filter(|(_, c)| c.online.load(Ordering::Acquire)) {
        let who = smp::run_on(index, identify, 0).ok_or_else(|| fail(alloc::format!("CPU {index} did not run the work")))?;
        let (ran_on, pir) = (who >> 32, who & 0xffff_ffff);
        kernel::println!("# CPU {index} (server {}): PIR {pir}", area.server.load(Ordering::Relaxed));
        kassert_eq!(ran_on, index as u64);
    }
    Ok(())
}

fn secondaries_translate_like_the_boot_cpu(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let translation = cpu::msr::IR | cpu::msr::DR;
    let mine = cpu::msr() & translation;
    for index in (1..MAX_CPUS).filter(|&i| PERCPU[i].online.load(Ordering::Acquire)) {
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

/// CPU 1 reads a mapping (caching its translation), CPU 0 points it at
/// another frame and flushes, CPU 1 reads again: the new frame.
fn flush_reaches_other_cpus(env: &Env<'_>) -> TestResult {
    require_cpus(env, 2)?;
    let Some(flush) = mmu::flusher() else { kskip!("translation is off (mmu=off)") };
    let target = (1..MAX_CPUS).find(|&i| PERCPU[i].online.load(Ordering::Acquire)).ok_or_else(|| fail("no secondary"))?;
    let old = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    let new = mm::alloc_frame().ok_or_else(|| fail("no frame"))?;
    for (frame, value) in [(old, 0x01d_u64), (new, 0x2e3)] {
        // SAFETY: frames just allocated, through the linear map.
        unsafe { (mm::phys_to_virt(frame.address()) as *mut u64).write_volatile(value) };
    }
    mmu::with_kernel_tree(|tree| tree.map(SHARED, old.address(), PageSize::Base, Prot::READ))
        .ok_or_else(|| fail("no kernel tree"))?
        .map_err(|e| fail(alloc::format!("{e:?}")))?;
    let before = smp::run_on(target, load_shared, 0);
    let replaced = mmu::with_kernel_tree(|tree| tree.remap(SHARED, new.address())).and_then(Result::ok);
    if let Some(entry) = replaced {
        flush.flush_page(KERNEL_SPACE, SHARED, PageSize::Base, entry, Scope::Global);
    }
    let after = smp::run_on(target, load_shared, 0);
    if let Some(Ok(gone)) = mmu::with_kernel_tree(|tree| tree.unmap(SHARED)) {
        flush.flush_page(KERNEL_SPACE, SHARED, gone.size, gone.entry, Scope::Global);
        mmu::with_kernel_tree(|tree| tree.release(&gone.tables));
    }
    mm::free_frame(old);
    mm::free_frame(new);
    kassert_eq!(before, Some(0x01d));
    kassert!(replaced.is_some(), "remap failed");
    kassert_eq!(after, Some(0x2e3));
    Ok(())
}
