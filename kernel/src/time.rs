//! A monotonic clock: the platform's cycle counter (the POWER timebase) and
//! its frequency, registered once at boot. Timings in tests and benchmarks
//! use it; conversions round down.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

/// Reads the counter.
pub type Counter = fn() -> u64;

fn zero() -> u64 {
    0
}

/// The counter, registered once; until then the clock reads 0.
static COUNTER: Once<Counter> = Once::new();
static FREQUENCY: AtomicU64 = AtomicU64::new(1);

/// Registers the clock: the counter (once: the platform has one; a later
/// call keeps the first) and its ticks per second, which a later call may
/// correct (boot sets a default before the device tree gives the real one).
pub fn set_clock(counter: Counter, frequency: u64) {
    FREQUENCY.store(frequency.max(1), Ordering::Relaxed);
    COUNTER.call_once(|| counter);
}

/// Ticks since boot (the timebase on POWER).
pub fn now() -> u64 {
    COUNTER.get().copied().unwrap_or(zero)()
}

pub fn frequency() -> u64 {
    FREQUENCY.load(Ordering::Relaxed)
}

pub fn ticks_to_us(ticks: u64) -> u64 {
    (ticks as u128 * 1_000_000 / frequency() as u128) as u64
}

pub fn us_to_ticks(us: u64) -> u64 {
    (us as u128 * frequency() as u128 / 1_000_000) as u64
}

/// The counter value `us` microseconds from now.
pub fn deadline_us(us: u64) -> u64 {
    now().saturating_add(us_to_ticks(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake() -> u64 {
        1_024_000_000
    }

    #[test]
    fn conversions_use_the_registered_frequency() {
        set_clock(fake, 512_000_000);
        assert_eq!(now(), 1_024_000_000);
        assert_eq!(ticks_to_us(512_000_000), 1_000_000);
        assert_eq!(us_to_ticks(1), 512);
        assert_eq!(deadline_us(10), 1_024_000_000 + 5120);
        assert_eq!(ticks_to_us(u64::MAX), (u64::MAX as u128 * 1_000_000 / 512_000_000) as u64);
    }
}
