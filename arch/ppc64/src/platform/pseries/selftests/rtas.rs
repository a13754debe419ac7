//! RTAS, instantiated in the firmware phase and called through the
//! real-mode trampoline.

use core::sync::atomic::Ordering;
use kernel::ktest::{fail, ktest, Env, TestResult};

use kernel::{kassert, kassert_eq, kskip};

use crate::platform::pseries::rtas;

/// RTAS exists only where the kernel runs as a pseries partition.
fn on_pseries() -> bool {
    crate::platform::machine().name() == "pseries"
}

#[ktest]
fn instantiated(env: &Env<'_>) -> TestResult {
    if !on_pseries() {
        kskip!("no RTAS on {}", crate::platform::machine().name());
    }
    let rtas = &env.boot.rtas;
    kassert!(rtas.base != 0 && rtas.size != 0, "RTAS base {:#x} size {:#x}", rtas.base, rtas.size);
    kassert!(
        rtas.entry >= rtas.base && rtas.entry < rtas.base + rtas.size as u64,
        "entry {:#x} outside RTAS",
        rtas.entry
    );
    kassert!(rtas::is_ready());
    kassert!(rtas.tokens.power_off != 0);
    Ok(())
}

/// A real RTAS call: get-time-of-day returns year, month, day, hour, minute,
/// second, nanoseconds (PAPR, "get-time-of-day").
#[ktest]
fn time_of_day(env: &Env<'_>) -> TestResult {
    if !on_pseries() {
        kskip!("no RTAS on {}", crate::platform::machine().name());
    }
    let Some(token) = env.boot.rtas.tokens.get_time_of_day else { kskip!("no get-time-of-day token") };
    let mut date = [0u32; 7];
    let status = rtas::call(token, &[], &mut date).map_err(fail)?;
    kassert_eq!(status, rtas::RTAS_SUCCESS);
    let [year, month, day, hour, minute, second, _] = date;
    kassert!((2000..3000).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day), "date {date:?}");
    kassert!(hour < 24 && minute < 60 && second < 61, "time {date:?}");
    Ok(())
}

/// RTAS calls made back to back while the decrementer fires again and
/// again, each time after a different delay, so that over the ticks one
/// lands anywhere in the trampoline's way into RTAS. The trampoline must
/// turn interrupts off before it loads SRR0/SRR1 for the switch to the
/// firmware: an interrupt in between overwrites them, and the switch then
/// resumes the kernel big-endian, a fatal program interrupt.
#[ktest]
#[allow(unsafe_code)]
fn calls_survive_ticks_at_any_point(env: &Env<'_>) -> TestResult {
    if !on_pseries() {
        kskip!("no RTAS on {}", crate::platform::machine().name());
    }
    let Some(token) = env.boot.rtas.tokens.get_time_of_day else { kskip!("no get-time-of-day token") };
    if !crate::cpu::interrupts_enabled() {
        kskip!("interrupts are off");
    }
    const TICKS: u64 = 6000;
    const SPR_DEC: u32 = 22;
    let ticks = &crate::percpu::this().ticks;
    let mut date = [0u32; 7];
    let mut calls = 0u64;
    for i in 0..TICKS {
        let before = ticks.load(Ordering::Acquire);
        // Up to ~40 us at 512 MHz, a few RTAS calls' worth, in odd steps.
        let delay = (i * 7919) % 20_000;
        // SAFETY: schedules the next decrementer interrupt; its handler
        // re-arms the tick as usual.
        unsafe { core::arch::asm!("mtspr {spr}, {0}", in(reg) delay, spr = const SPR_DEC, options(nomem, nostack)) };
        while ticks.load(Ordering::Acquire) == before {
            let status = rtas::call(token, &[], &mut date).map_err(fail)?;
            kassert!(status == rtas::RTAS_SUCCESS, "call {calls}: status {status}");
            calls += 1;
        }
    }
    kernel::println!("# {calls} RTAS calls across {TICKS} ticks");
    Ok(())
}
