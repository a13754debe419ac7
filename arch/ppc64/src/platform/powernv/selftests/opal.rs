//! OPAL and the hypervisor state the kernel keeps on bare metal: the calls
//! it relies on exist, the console loop survives partial and busy writes,
//! CPUs are where OPAL says, LPCR/PTCR/the partition table hold what the
//! MMU in use needs on every CPU, and the OPAL trampoline survives ticks.

use core::sync::atomic::Ordering;

use kernel::ktest::{fail, ktest, Env, TestResult};
use kernel::{kassert, kassert_eq, kskip};

use crate::mmu::{self, Mode};
use crate::platform::powernv::{self, lpcr, opal, pate};
use crate::platform::{machine, StartError};
use crate::{percpu, smp};

/// These run only where the kernel is the hypervisor.
fn on_powernv() -> bool {
    machine().name() == "powernv"
}

macro_rules! powernv_only {
    () => {
        if !on_powernv() {
            kskip!("not on powernv ({})", machine().name());
        }
    };
}

/// Every OPAL call the kernel makes is implemented (OPAL_CHECK_TOKEN),
/// and the check tells an unknown token apart.
#[ktest]
fn calls_the_kernel_makes_exist(_: &Env<'_>) -> TestResult {
    powernv_only!();
    for token in [
        opal::CONSOLE_WRITE,
        opal::CEC_POWER_DOWN,
        opal::POLL_EVENTS,
        opal::START_CPU,
        opal::QUERY_CPU_STATUS,
        opal::REINIT_CPUS,
    ] {
        kassert!(opal::has(token), "OPAL lacks call {token}");
    }
    // Past OPAL_LAST (opal-api.h): no such call.
    kassert!(!opal::has(4000), "OPAL_CHECK_TOKEN claims token 4000");
    Ok(())
}

/// The console loop resumes after part of a chunk was taken and after busy
/// answers, and gives up (without hanging) on a console that stays busy
/// or fails.
#[ktest]
fn console_write_resumes_partial_and_busy_writes(_: &Env<'_>) -> TestResult {
    powernv_only!();
    let text = b"a line that needs several partial writes\r\n";
    let mut out: heapless::Vec<u8, 64> = heapless::Vec::new();
    let mut calls = 0;
    let written = opal::write_all(text, 100, |chunk| {
        calls += 1;
        // Every other call is busy; the others take at most 5 bytes.
        if calls % 2 == 0 {
            return (opal::BUSY_EVENT, 0);
        }
        let take = chunk.len().min(5);
        let _ = out.extend_from_slice(&chunk[..take]);
        (opal::SUCCESS, take)
    });
    kassert_eq!(written, text.len());
    kassert!(out.as_slice() == text, "console got {:?}", core::str::from_utf8(&out));
    // A busy answer may still have taken bytes.
    let mut taken_while_busy = 0;
    let written = opal::write_all(b"0123456789", 100, |chunk| {
        taken_while_busy += 2.min(chunk.len());
        (opal::BUSY, 2.min(chunk.len()))
    });
    kassert_eq!(written, 10);
    kassert_eq!(taken_while_busy, 10);
    // A console that stays busy: bounded, nothing written.
    let mut attempts = 0;
    let written = opal::write_all(b"stuck", 50, |_| {
        attempts += 1;
        (opal::BUSY, 0)
    });
    kassert_eq!((written, attempts), (0, 50));
    // A failing console ends the write where it failed.
    let written = opal::write_all(b"0123456789", 100, |chunk| (opal::PARAMETER, 3.min(chunk.len())));
    kassert_eq!(written, 3);
    Ok(())
}

/// OPAL says every online CPU was started (it left OPAL), and starting
/// one again is refused without disturbing it.
#[ktest]
fn online_cpus_are_started_and_not_restarted(env: &Env<'_>) -> TestResult {
    powernv_only!();
    for index in 0..percpu::MAX_CPUS {
        if !percpu::is_online(index) {
            continue;
        }
        let server = percpu::PERCPU[index].server.load(Ordering::Relaxed);
        let status = opal::cpu_status(server);
        kassert!(status == Ok(opal::THREAD_STARTED), "CPU {index} (PIR {server}): OPAL status {status:?}");
        kassert_eq!(machine().start_cpu(env.boot, server, index), Err(StartError::NotStopped));
    }
    Ok(())
}

/// The boot CPU is whichever thread skiboot ran on, not necessarily PIR 0:
/// the device tree's header names it, and it is the CPU these tests run on
/// (PerCpu area 0).
#[ktest]
fn device_tree_names_the_boot_cpu(env: &Env<'_>) -> TestResult {
    powernv_only!();
    let boot_pir = percpu::PERCPU[0].server.load(Ordering::Relaxed);
    kassert_eq!(percpu::index(), 0);
    kassert_eq!(crate::cpu::pir(), boot_pir);
    kassert_eq!(env.boot.boot_cpu, Some(boot_pir));
    kassert!(env.boot.cpus.iter().any(|cpu| cpu.server == boot_pir), "PIR {boot_pir} is not in /cpus");
    Ok(())
}

fn read_lpcr(_: u64) -> u64 {
    powernv::mfspr_lpcr()
}

fn read_pidr(_: u64) -> u64 {
    mmu::radix::pidr() as u64
}

/// Every CPU runs with the boot CPU's LPCR (AIL 3, and HR/UPRT as the MMU
/// needs), and under radix PIDR is never 0, which would alias the kernel's
/// own entry for quadrant-0 addresses.
#[ktest]
fn every_cpu_runs_the_boot_cpus_mmu_state(_: &Env<'_>) -> TestResult {
    powernv_only!();
    let boot_lpcr = powernv::mfspr_lpcr();
    let want = match mmu::mode() {
        Mode::Radix => lpcr::HR | lpcr::UPRT,
        Mode::Hash | Mode::Off => 0,
    };
    kassert_eq!(boot_lpcr & (lpcr::HR | lpcr::UPRT), want);
    if mmu::translation_on() {
        kassert_eq!(boot_lpcr & lpcr::AIL_MASK, lpcr::AIL_3);
    }
    for index in 0..percpu::MAX_CPUS {
        if !percpu::is_online(index) {
            continue;
        }
        let lpcr = smp::run_on(index, read_lpcr, 0);
        kassert!(lpcr == Some(boot_lpcr), "CPU {index}: LPCR {lpcr:x?}, boot CPU {boot_lpcr:#x}");
        if mmu::mode() == Mode::Radix {
            let pidr = smp::run_on(index, read_pidr, 0);
            kassert!(matches!(pidr, Some(p) if p != 0), "CPU {index}: PIDR {pidr:?}");
        }
    }
    Ok(())
}

/// PTCR points at the partition table, whose LPID 0 entry holds the MMU in
/// use: radix (HR, the kernel's tree, the process table) or hash (the HPT
/// the kernel allocated, HTABSIZE from 2^18).
#[ktest]
fn partition_table_holds_the_mmu_in_use(_: &Env<'_>) -> TestResult {
    powernv_only!();
    let Some([dw0, dw1]) = powernv::partition_entry() else {
        kassert!(!mmu::translation_on(), "translation on without a partition table");
        kskip!("real mode: no partition table");
    };
    kassert_eq!(powernv::ptcr() & 0x1f, 4);
    match mmu::mode() {
        Mode::Radix => {
            kassert!(dw0 & pate::HOST_RADIX != 0, "PATE dw0 {dw0:#x} lacks HR");
            kassert_eq!(dw0 & 0x0fff_ffff_ffff_f000, mmu::kernel_root());
            kassert!(dw1 & pate::GUEST_RADIX != 0, "PATE dw1 {dw1:#x} lacks GR");
            kassert_eq!(dw1 & 0x0fff_ffff_ffff_f000, mmu::radix::process_table());
        }
        Mode::Hash => {
            let (base, size_log2) = powernv::hpt::NATIVE_HPT.location().ok_or_else(|| fail("no hashed page table"))?;
            kassert!(dw0 & pate::HOST_RADIX == 0, "PATE dw0 {dw0:#x} has HR under hash");
            kassert_eq!(dw0 & !0x1f, base);
            kassert_eq!(dw0 & 0x1f, (size_log2 - pate::HTABSIZE_BASE) as u64);
            kassert_eq!(dw1, 0);
        }
        Mode::Off => kassert!(false, "a partition table in real mode"),
    }
    Ok(())
}

/// OPAL calls back to back while the decrementer fires after different
/// delays, so that over the ticks one lands anywhere in opal_call_be's way
/// in and out: it must turn interrupts off before loading HSRR0/1 (an
/// interrupt in between would overwrite them) and come back with the
/// caller's MSR.
#[ktest]
#[allow(unsafe_code)]
fn calls_survive_ticks_at_any_point(_: &Env<'_>) -> TestResult {
    powernv_only!();
    if !crate::cpu::interrupts_enabled() {
        kskip!("interrupts are off");
    }
    const TICKS: u64 = 3000;
    const SPR_DEC: u32 = 22;
    let ticks = &percpu::this().ticks;
    let mut calls = 0u64;
    for i in 0..TICKS {
        let before = ticks.load(Ordering::Acquire);
        let delay = (i * 7919) % 20_000;
        // SAFETY: schedules the next decrementer interrupt; its handler
        // re-arms the tick as usual.
        unsafe { core::arch::asm!("mtspr {spr}, {0}", in(reg) delay, spr = const SPR_DEC, options(nomem, nostack)) };
        while ticks.load(Ordering::Acquire) == before {
            kassert!(opal::has(opal::CONSOLE_WRITE), "call {calls} failed");
            kassert!(crate::cpu::interrupts_enabled(), "call {calls} came back with interrupts off");
            calls += 1;
        }
    }
    kernel::println!("# {calls} OPAL calls across {TICKS} ticks");
    Ok(())
}
