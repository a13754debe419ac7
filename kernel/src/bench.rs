//! Benchmark results as the kernel prints them: min/median/max over
//! repetitions, one KTAP diagnostic line of JSON per result
//! (`# BENCH {"name":...}`), which `make bench` collects. Timings are never
//! pass/fail.

use core::fmt::{self, Write};

/// Min, median and max of `samples` (sorted in place); `None` if empty.
pub fn spread(samples: &mut [u64]) -> Option<(u64, u64, u64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some((samples[0], samples[samples.len() / 2], samples[samples.len() - 1]))
}

/// One result line: `# BENCH {"name":..,"unit":..,"min":..,"median":..,"max":..,"reps":..,<context>}`.
/// Context values are strings; names and values must not need escaping
/// (they are identifiers and numbers).
pub fn line(
    out: &mut impl Write,
    name: &str,
    unit: &str,
    values: (f64, f64, f64),
    reps: usize,
    context: &[(&str, &str)],
) -> fmt::Result {
    let (min, median, max) = values;
    write!(
        out,
        "# BENCH {{\"name\":\"{name}\",\"unit\":\"{unit}\",\"min\":{},\"median\":{},\"max\":{},\"reps\":{reps}",
        Num(min),
        Num(median),
        Num(max)
    )?;
    for (key, value) in context {
        write!(out, ",\"{key}\":\"{value}\"")?;
    }
    writeln!(out, "}}")
}

/// A number as JSON takes it: finite, at most 4 significant decimals.
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_finite() {
            return write!(f, "null");
        }
        let magnitude = if self.0 == 0.0 { 0 } else { floor_log10(self.0.abs()) };
        let decimals = (3 - magnitude).clamp(0, 6) as usize;
        write!(f, "{:.*}", decimals, self.0)
    }
}

/// floor(log10(x)) for x > 0 (no libm in no_std).
fn floor_log10(mut x: f64) -> i32 {
    let mut exponent = 0;
    while x >= 10.0 {
        x /= 10.0;
        exponent += 1;
    }
    while x < 1.0 {
        x *= 10.0;
        exponent -= 1;
    }
    exponent
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    #[test]
    fn spread_sorts_and_picks() {
        assert_eq!(spread(&mut []), None);
        assert_eq!(spread(&mut [5, 1, 9, 3, 7]), Some((1, 5, 9)));
        assert_eq!(spread(&mut [4, 2]), Some((2, 4, 4)));
    }

    #[test]
    fn lines_are_json() {
        let mut out = String::new();
        line(
            &mut out,
            "gup_fast_small_32",
            "pages/s",
            (1234567.0, 2.5e6, 3.0e6),
            20,
            &[("mmu", "radix"), ("cpus", "4")],
        )
        .unwrap();
        assert_eq!(
            out,
            "# BENCH {\"name\":\"gup_fast_small_32\",\"unit\":\"pages/s\",\"min\":1234567,\"median\":2500000,\"max\":3000000,\"reps\":20,\"mmu\":\"radix\",\"cpus\":\"4\"}\n"
        );
        let mut out = String::new();
        line(&mut out, "tlbiel_page", "us", (0.01234, 0.5, f64::NAN), 3, &[]).unwrap();
        assert_eq!(out, "# BENCH {\"name\":\"tlbiel_page\",\"unit\":\"us\",\"min\":0.01234,\"median\":0.5000,\"max\":null,\"reps\":3}\n");
    }
}
