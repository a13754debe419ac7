//! RTAS, instantiated in the firmware phase and called through the
//! real-mode trampoline.

use kernel::ktest::{fail, ktest, Env, TestResult};
use kernel::{kassert, kassert_eq, kskip};

use crate::platform::pseries::rtas;

#[ktest]
fn instantiated(env: &Env<'_>) -> TestResult {
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
    let Some(token) = env.boot.rtas.tokens.get_time_of_day else { kskip!("no get-time-of-day token") };
    let mut date = [0u32; 7];
    let status = rtas::call(token, &[], &mut date).map_err(fail)?;
    kassert_eq!(status, rtas::RTAS_SUCCESS);
    let [year, month, day, hour, minute, second, _] = date;
    kassert!((2000..3000).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day), "date {date:?}");
    kassert!(hour < 24 && minute < 60 && second < 61, "time {date:?}");
    Ok(())
}
