//! How the benchmarks print what they measured: `# BENCH {json}` lines
//! (kernel::bench) of min/median/max, in microseconds or pages per second.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kernel::ktest::Env;
use kernel::time;

use crate::mmu;

pub fn ticks_to_us(ticks: f64) -> f64 {
    ticks * 1e6 / time::frequency().max(1) as f64
}

fn context(env: &Env<'_>) -> [(&'static str, String); 2] {
    [("mmu", String::from(mmu::backend().name())), ("cpus", format!("{}", env.online_cpus))]
}

pub fn print(env: &Env<'_>, name: &str, unit: &str, values: (f64, f64, f64), reps: usize) {
    let context = context(env);
    let context: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut line = String::new();
    let _ = kernel::bench::line(&mut line, name, unit, values, reps, &context);
    kernel::print!("{line}");
}

/// Microseconds per item: each sample is the ticks of one repetition that
/// handled `items` items.
pub fn report_us(env: &Env<'_>, name: &str, samples: &mut [u64], items: u64) -> Option<f64> {
    let (min, median, max) = kernel::bench::spread(samples)?;
    let per = |t: u64| ticks_to_us(t as f64) / items as f64;
    print(env, name, "us", (per(min), per(median), per(max)), samples.len());
    Some(per(median))
}

/// Items per second (the slowest repetition gives the minimum).
pub fn report_rate(env: &Env<'_>, name: &str, samples: &mut [u64], items: u64) {
    if let Some((min, median, max)) = kernel::bench::spread(samples) {
        let rate = |t: u64| items as f64 * 1e6 / ticks_to_us(t.max(1) as f64);
        print(env, name, "pages/s", (rate(max), rate(median), rate(min)), samples.len());
    }
}
