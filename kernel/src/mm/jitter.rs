//! Race windows widened on purpose: a seeded `RaceHooks` implementation for
//! tests that spins a pseudo-random, bounded time at each race point of
//! GUP-fast, the hash fault path and collapse. The windows of the seed
//! thread's race are a few instructions wide, so a stress loop left to
//! chance almost never lands in them; stretched to microseconds at random,
//! the unprotected configurations hit them in every run and the protected
//! ones are tested against real overlaps. Production code never sees this:
//! it passes `NoHooks`.
//!
//! The delays come from a xorshift generator seeded per CPU from the run's
//! seed (`race_seed=`, printed), so a failing run can be replayed with the
//! same sequence of delays (the interleaving itself still depends on the
//! other CPUs' timing).

use core::cell::Cell;

use super::gup::{Point, RaceHooks};

/// Where a delay ends: the clock the kernel uses (the timebase), passed in
/// so that host tests can drive it.
pub type Clock = fn() -> u64;

/// A seeded source of delays of at most `max_ticks` clock ticks, for one
/// CPU (not shared: it keeps its generator in a `Cell`).
pub struct Jitter {
    state: Cell<u64>,
    max_ticks: u64,
    clock: Clock,
}

impl Jitter {
    /// The generator for stream `stream` (a CPU) of run `seed`; `max_ticks`
    /// 0 makes every delay zero.
    pub fn new(seed: u64, stream: u64, max_ticks: u64, clock: Clock) -> Jitter {
        Jitter { state: Cell::new(mix(seed ^ mix(stream.wrapping_add(1))) | 1), max_ticks, clock }
    }

    /// The next delay, uniform enough in `0..=max_ticks`.
    pub fn next_delay(&self) -> u64 {
        if self.max_ticks == 0 {
            return 0;
        }
        let mut x = self.state.get();
        let next = xorshift(&mut x);
        self.state.set(x);
        next % (self.max_ticks + 1)
    }

    /// Spins for the next delay.
    pub fn pause(&self) {
        self.pause_at_most(self.max_ticks);
    }

    /// Spins for the next delay, cut down to `limit` ticks.
    fn pause_at_most(&self, limit: u64) {
        let delay = self.next_delay().min(limit);
        if delay == 0 {
            return;
        }
        let end = (self.clock)().saturating_add(delay);
        while (self.clock)() < end {
            core::hint::spin_loop();
        }
    }
}

impl RaceHooks for Jitter {
    /// The windows the race needs, widened: GUP-fast between reading the
    /// tables and pinning (long enough, at times, for a collapse to clear
    /// the PMD, flush and pass its isolation check meanwhile), the hash
    /// fault path between its walk and its insert, collapse between its
    /// isolation check and the copy. Between the pin and the rechecks the
    /// delay stays short (an eighth): a long one there only lets GUP-fast
    /// see collapse's cleared PTEs and back off, closing the window the
    /// other delays opened.
    fn at(&self, point: Point) {
        match point {
            Point::GupPinned => self.pause_at_most(self.max_ticks / 8),
            Point::GupRead | Point::HashWalked | Point::CollapseIsolated => self.pause(),
        }
    }
}

/// One step of the xorshift64 generator (13, 7, 17) on `state` (never 0):
/// the next pseudo-random value, cheap enough for a race point.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// splitmix64's finaliser: turns nearby seeds (CPU 0, 1, 2...) into
/// unrelated generator states.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::vec::Vec;

    static NOW: AtomicU64 = AtomicU64::new(0);

    /// A clock that advances one tick per reading.
    fn ticking() -> u64 {
        NOW.fetch_add(1, Ordering::Relaxed)
    }

    fn delays(seed: u64, stream: u64, max: u64, n: usize) -> Vec<u64> {
        let j = Jitter::new(seed, stream, max, ticking);
        (0..n).map(|_| j.next_delay()).collect()
    }

    #[test]
    fn a_seed_replays_the_same_delays() {
        assert_eq!(delays(42, 3, 1000, 64), delays(42, 3, 1000, 64));
    }

    #[test]
    fn streams_and_seeds_differ() {
        assert_ne!(delays(42, 0, 1000, 16), delays(42, 1, 1000, 16));
        assert_ne!(delays(42, 0, 1000, 16), delays(43, 0, 1000, 16));
        // Seed 0 is a seed like any other, not a stuck generator.
        let zero = delays(0, 0, 1000, 64);
        assert!(zero.iter().any(|&d| d != zero[0]));
    }

    #[test]
    fn delays_stay_bounded_and_cover_the_range() {
        let d = delays(7, 2, 100, 10_000);
        assert!(d.iter().all(|&x| x <= 100));
        assert!(d.iter().any(|&x| x < 10) && d.iter().any(|&x| x > 90));
        assert!(delays(7, 2, 0, 100).iter().all(|&x| x == 0));
    }

    #[test]
    fn pause_spins_for_the_delay() {
        let j = Jitter::new(5, 0, 50, ticking);
        let expected = Jitter::new(5, 0, 50, ticking).next_delay();
        let before = NOW.load(Ordering::Relaxed);
        j.pause();
        let spun = NOW.load(Ordering::Relaxed) - before;
        // One reading to start, then one per tick until the end.
        assert!(
            expected == 0 && spun == 0 || spun >= expected && spun <= expected + 2,
            "spun {spun}, delay {expected}"
        );
    }
}
