//! OPAL and the hypervisor state the kernel keeps on bare metal: the calls
//! it relies on exist, the console loop survives partial and busy writes,
//! CPUs are where OPAL says, LPCR/PTCR/the partition table hold what the
//! MMU in use needs on every CPU, and the OPAL trampoline survives
//! doorbells.

use core::sync::atomic::{AtomicBool, Ordering};

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
    let never = || false;
    let written = opal::write_all(text, 100, never, |chunk| {
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
    let written = opal::write_all(b"0123456789", 100, never, |chunk| {
        taken_while_busy += 2.min(chunk.len());
        (opal::BUSY, 2.min(chunk.len()))
    });
    kassert_eq!(written, 10);
    kassert_eq!(taken_while_busy, 10);
    // A console that stays busy: bounded, nothing written.
    let mut attempts = 0;
    let written = opal::write_all(b"stuck", 50, never, |_| {
        attempts += 1;
        (opal::BUSY, 0)
    });
    kassert_eq!((written, attempts), (0, 50));
    // A console that takes nothing and says success is stuck too; the
    // time limit ends it before the attempts run out.
    let clock = core::cell::Cell::new(0);
    let mut attempts = 0;
    let written = opal::write_all(
        b"stuck",
        1000,
        || {
            clock.set(clock.get() + 1);
            clock.get() > 7
        },
        |_| {
            attempts += 1;
            (opal::SUCCESS, 0)
        },
    );
    kassert_eq!((written, attempts), (0, 7));
    // A failing console ends the write where it failed.
    let written = opal::write_all(b"0123456789", 100, never, |chunk| (opal::PARAMETER, 3.min(chunk.len())));
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

/// Tells `ring` to stop.
static RINGING: AtomicBool = AtomicBool::new(false);

/// Runs on another CPU: rings CPU `target`'s doorbell again and again, each
/// time after a different delay (up to ~8 us), until told to stop; returns
/// how many it sent.
fn ring(target: u64) -> u64 {
    let mut sent = 0u64;
    while RINGING.load(Ordering::Acquire) {
        machine().irq().send_ipi(target as u32);
        sent += 1;
        let until = crate::cpu::timebase() + (sent * 7919) % 4096;
        while crate::cpu::timebase() < until {
            core::hint::spin_loop();
        }
    }
    sent
}

/// OPAL calls back to back while another CPU rings this one's doorbell at
/// odd intervals, so that over thousands of doorbells one arrives anywhere
/// in opal_call_be's way in and out. A doorbell saves state in HSRR0/1,
/// which the trampoline loads for its hrfid into OPAL: it must turn
/// interrupts off first (one taken in between would send the hrfid back
/// into the kernel big-endian, a fatal interrupt), and come back with the
/// caller's MSR, interrupts on again.
#[ktest]
fn calls_survive_doorbells_at_any_point(_: &Env<'_>) -> TestResult {
    powernv_only!();
    if !crate::cpu::interrupts_enabled() {
        kskip!("interrupts are off");
    }
    let Some(ringer) = (1..percpu::MAX_CPUS).find(|&i| percpu::is_online(i)) else {
        kskip!("needs a second CPU to ring the doorbell");
    };
    const DOORBELLS: u64 = 3000;
    // A bound for a CPU that stops ringing, not a duration the test needs.
    const GIVE_UP_US: u64 = 60_000_000;
    let me = percpu::this().server.load(Ordering::Relaxed);
    let before = powernv::doorbell::taken();
    RINGING.store(true, Ordering::Release);
    if !smp::post(ringer, ring, me as u64) {
        RINGING.store(false, Ordering::Release);
        kassert!(false, "CPU {ringer} would not take the work");
    }
    let deadline = kernel::time::deadline_us(GIVE_UP_US);
    let mut calls = 0u64;
    while powernv::doorbell::taken() - before < DOORBELLS && kernel::time::now() < deadline {
        let ok = opal::has(opal::CONSOLE_WRITE);
        let on = crate::cpu::interrupts_enabled();
        if !ok || !on {
            RINGING.store(false, Ordering::Release);
        }
        kassert!(ok, "call {calls} failed");
        kassert!(on, "call {calls} came back with interrupts off");
        calls += 1;
    }
    RINGING.store(false, Ordering::Release);
    let sent = smp::wait_for(ringer).ok_or_else(|| fail("the ringing CPU did not finish"))?;
    let taken = powernv::doorbell::taken() - before;
    kassert!(taken >= DOORBELLS, "{taken} doorbells taken of {sent} sent before giving up");
    kernel::println!("# {calls} OPAL calls while CPU {ringer} rang {sent} doorbells ({taken} taken)");
    Ok(())
}
