//! A roll call: every CPU that takes one system reset (the harness's NMI at
//! a boot's deadline) reports, one CPU at a time, in CPU-index order, and
//! one of them then finishes the boot.
//!
//! It cannot use a lock: the CPU that should speak first may be the one
//! that hung, may never take the interrupt, or may stop half way through
//! its report. So every wait here is bounded by a stall: a span of clock
//! ticks in which nobody made progress (arrived, printed a line, finished).
//! A CPU that waits longer passes over the CPU whose turn it is, which then
//! never speaks in order; one that arrives after its turn was passed over
//! reports after everyone in order did ("late"), one late CPU at a time.
//!
//! The CPUs expected are a `CpuSet` (the online CPUs); a CPU outside it
//! that reports anyway is late.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::cpuset::{CpuSet, MAX_CPUS};
use crate::sync::spin_loop;

/// The turn after the last member's: everyone in order has spoken or been
/// passed over.
pub const DONE: usize = MAX_CPUS;

/// How long a CPU waits without progress before it goes on without the
/// CPU it waits for.
#[derive(Clone, Copy)]
pub struct Patience {
    /// The clock, in ticks.
    pub now: fn() -> u64,
    /// Ticks without progress that count as a stall.
    pub stall: u64,
}

/// When a CPU may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// In index order.
    InOrder,
    /// After everyone in order, its own turn having been passed over (or it
    /// was not expected); holds the late speakers' slot until `done`.
    Late,
}

pub struct RollCall {
    /// The index of the member whose turn it is, or `DONE`.
    turn: AtomicUsize,
    /// 1 + the clock at the last progress; 0 until the first CPU arrives.
    progress: AtomicU64,
    arrived: AtomicUsize,
    reported: AtomicUsize,
    /// A late CPU is speaking.
    late: AtomicBool,
    /// Someone has claimed the finish.
    finishing: AtomicBool,
}

impl RollCall {
    pub const fn new() -> RollCall {
        RollCall {
            turn: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            arrived: AtomicUsize::new(0),
            reported: AtomicUsize::new(0),
            late: AtomicBool::new(false),
            finishing: AtomicBool::new(false),
        }
    }

    /// Says this CPU is making progress (a line of its report), so that
    /// nobody passes over it while it speaks.
    pub fn beat(&self, patience: &Patience) {
        self.progress.store((patience.now)().saturating_add(1), Ordering::Release);
    }

    /// Whether nothing progressed for longer than the stall.
    fn stalled(&self, patience: &Patience) -> bool {
        let last = self.progress.load(Ordering::Acquire).saturating_sub(1);
        (patience.now)().saturating_sub(last) > patience.stall
    }

    /// The member after `cpu` in index order, or `DONE`.
    fn next(members: &CpuSet, cpu: usize) -> usize {
        members.iter(Ordering::Acquire).find(|&member| member > cpu).unwrap_or(DONE)
    }

    /// Passes over the CPU whose turn it is (`turn`) if it is not a member
    /// (at once) or if nothing progressed for a stall; `passed_over` hears
    /// of each member passed over, from the one CPU that did it.
    fn pass_over_if_stalled(
        &self,
        turn: usize,
        members: &CpuSet,
        patience: &Patience,
        passed_over: &mut dyn FnMut(usize),
    ) {
        let member = members.contains(turn, Ordering::Acquire);
        if member && !self.stalled(patience) {
            return;
        }
        // Progress before the turn moves: a CPU that sees the new turn sees the new
        // progress too, and does not take the next CPU for stalled as well.
        self.beat(patience);
        let next = Self::next(members, turn);
        if self.turn.compare_exchange(turn, next, Ordering::AcqRel, Ordering::Acquire).is_ok() && member {
            passed_over(turn);
        }
    }

    /// Waits until everyone in order has spoken or been passed over.
    fn wait_until_done(&self, members: &CpuSet, patience: &Patience, passed_over: &mut dyn FnMut(usize)) {
        loop {
            let turn = self.turn.load(Ordering::Acquire);
            if turn >= DONE {
                return;
            }
            self.pass_over_if_stalled(turn, members, patience, passed_over);
            spin_loop();
        }
    }

    /// Called once by each CPU that arrives (`me`, its index); returns when
    /// it may speak. Never waits more than a stall without progress for any
    /// one CPU ahead of it.
    pub fn wait_turn(
        &self,
        me: usize,
        members: &CpuSet,
        patience: &Patience,
        passed_over: &mut dyn FnMut(usize),
    ) -> Turn {
        self.arrived.fetch_add(1, Ordering::AcqRel);
        self.beat(patience);
        loop {
            let turn = self.turn.load(Ordering::Acquire);
            if turn == me && members.contains(me, Ordering::Acquire) {
                return Turn::InOrder;
            }
            if turn > me || turn >= DONE {
                break;
            }
            self.pass_over_if_stalled(turn, members, patience, passed_over);
            spin_loop();
        }
        // Late: after everyone in order, one late CPU at a time (a late
        // speaker that stalls is talked over).
        self.wait_until_done(members, patience, passed_over);
        while self.late.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            if self.stalled(patience) {
                self.beat(patience);
                break;
            }
            spin_loop();
        }
        Turn::Late
    }

    /// This CPU has said everything: the turn (or the late slot) goes on.
    pub fn done(&self, me: usize, turn: Turn, members: &CpuSet, patience: &Patience) {
        self.reported.fetch_add(1, Ordering::AcqRel);
        // As in pass_over_if_stalled: progress first, then the turn.
        self.beat(patience);
        match turn {
            Turn::InOrder => {
                // Not if it was passed over meanwhile: the turn is past it.
                let _ = self.turn.compare_exchange(me, Self::next(members, me), Ordering::AcqRel, Ordering::Acquire);
            }
            Turn::Late => self.late.store(false, Ordering::Release),
        }
    }

    /// Waits until everyone in order has spoken (or was passed over), and
    /// then until every member has arrived and every CPU that arrived has
    /// reported, or nothing progressed for a stall (a member passed over
    /// may still come, late); then returns true for exactly one caller,
    /// the one to finish.
    pub fn finish(&self, members: &CpuSet, patience: &Patience, passed_over: &mut dyn FnMut(usize)) -> bool {
        self.wait_until_done(members, patience, passed_over);
        let expected = members.len(Ordering::Acquire);
        loop {
            let arrived = self.arrived.load(Ordering::Acquire);
            let everyone = arrived >= expected && self.reported.load(Ordering::Acquire) >= arrived;
            if everyone || self.stalled(patience) {
                break;
            }
            spin_loop();
        }
        !self.finishing.swap(true, Ordering::AcqRel)
    }

    /// How many CPUs have reported.
    pub fn reported(&self) -> usize {
        self.reported.load(Ordering::Acquire)
    }

    /// How many CPUs have arrived.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::Acquire)
    }
}

impl Default for RollCall {
    fn default() -> Self {
        RollCall::new()
    }
}

#[cfg(test)]
mod tests {
    //! The clocks here stand still unless a test moves them, so what happens never
    //! depends on how fast the host runs the threads: a CPU is passed over only when the
    //! test has made a stall pass, and only after what it waits for has happened.

    use super::*;
    use std::string::String;
    use std::sync::Mutex;
    use std::thread;
    use std::time::Duration;
    use std::vec::Vec;

    const STALL: u64 = 100;

    fn frozen() -> u64 {
        0
    }

    /// A clock of its own for one test, moved by `$advance`.
    macro_rules! test_clock {
        ($now:ident, $advance:ident) => {
            static CLOCK: AtomicU64 = AtomicU64::new(0);
            fn $now() -> u64 {
                CLOCK.load(Ordering::SeqCst)
            }
            fn $advance() {
                CLOCK.fetch_add(STALL + 1, Ordering::SeqCst);
            }
        };
    }

    fn members(cpus: &[usize]) -> CpuSet {
        cpus.iter().copied().collect()
    }

    /// Spins until `condition` holds (the threads it waits for are running).
    fn until(condition: impl Fn() -> bool) {
        while !condition() {
            thread::yield_now();
        }
    }

    /// What one CPU does: waits its turn, says its index (marked when late), reports
    /// done and tries to finish.
    struct Cpus<'a> {
        roll: RollCall,
        members: CpuSet,
        patience: Patience,
        said: Mutex<Vec<String>>,
        passed: Mutex<Vec<usize>>,
        finishers: AtomicUsize,
        _marker: core::marker::PhantomData<&'a ()>,
    }

    impl Cpus<'_> {
        fn new(expected: &[usize], now: fn() -> u64) -> Self {
            Cpus {
                roll: RollCall::new(),
                members: members(expected),
                patience: Patience { now, stall: STALL },
                said: Mutex::new(Vec::new()),
                passed: Mutex::new(Vec::new()),
                finishers: AtomicUsize::new(0),
                _marker: core::marker::PhantomData,
            }
        }

        fn report(&self, cpu: usize) {
            let mut note = |cpu| self.passed.lock().unwrap().push(cpu);
            let turn = self.roll.wait_turn(cpu, &self.members, &self.patience, &mut note);
            let entry = match turn {
                Turn::InOrder => std::format!("{cpu}"),
                Turn::Late => std::format!("{cpu} late"),
            };
            self.said.lock().unwrap().push(entry);
            self.roll.done(cpu, turn, &self.members, &self.patience);
            if self.roll.finish(&self.members, &self.patience, &mut note) {
                self.finishers.fetch_add(1, Ordering::SeqCst);
            }
        }

        fn said(&self) -> Vec<String> {
            self.said.lock().unwrap().clone()
        }

        fn passed(&self) -> Vec<usize> {
            self.passed.lock().unwrap().clone()
        }
    }

    #[test]
    fn cpus_speak_in_index_order_whatever_order_they_arrive_in() {
        let cpus = Cpus::new(&[0, 1, 2, 3], frozen);
        thread::scope(|scope| {
            for (cpu, delay_ms) in [(3, 0), (2, 10), (0, 30), (1, 20)] {
                let cpus = &cpus;
                scope.spawn(move || {
                    thread::sleep(Duration::from_millis(delay_ms));
                    cpus.report(cpu);
                });
            }
        });
        assert_eq!(cpus.said(), ["0", "1", "2", "3"]);
        assert!(cpus.passed().is_empty());
        assert_eq!(cpus.finishers.load(Ordering::SeqCst), 1);
        assert_eq!(cpus.roll.reported(), 4);
    }

    #[test]
    fn holes_in_the_set_and_unexpected_cpus_hold_nobody_up() {
        // The clock never moves: nobody waits out a stall for CPUs 1-4 or 6-8, and CPU
        // 7, not expected, speaks after the members.
        let cpus = Cpus::new(&[0, 5, 9], frozen);
        thread::scope(|scope| {
            for cpu in [9, 7, 5, 0] {
                let cpus = &cpus;
                scope.spawn(move || cpus.report(cpu));
            }
        });
        assert_eq!(cpus.said(), ["0", "5", "9", "7 late"]);
        assert!(cpus.passed().is_empty());
        assert_eq!(cpus.finishers.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_cpu_that_never_arrives_is_passed_over_once() {
        test_clock!(now, advance);
        let cpus = Cpus::new(&[0, 1, 2, 3], now);
        thread::scope(|scope| {
            let workers: Vec<_> = [0, 2, 3]
                .into_iter()
                .map(|cpu| {
                    let cpus = &cpus;
                    scope.spawn(move || cpus.report(cpu))
                })
                .collect();
            // CPU 1 is the one the others wait for once CPU 0 has spoken: one stall, and
            // they go on; then stalls until the finish stops waiting for it too.
            until(|| cpus.roll.arrived() == 3 && cpus.said() == ["0"]);
            advance();
            until(|| cpus.said().len() == 3);
            while !workers.iter().all(|worker| worker.is_finished()) {
                advance();
                thread::sleep(Duration::from_millis(1));
            }
        });
        assert_eq!(cpus.said(), ["0", "2", "3"]);
        assert_eq!(cpus.passed(), [1]);
        assert_eq!(cpus.finishers.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_cpu_arriving_after_its_turn_speaks_late_and_is_waited_for() {
        test_clock!(now, advance);
        let cpus = Cpus::new(&[0, 1, 2, 3], now);
        thread::scope(|scope| {
            for cpu in [1, 2, 3] {
                let cpus = &cpus;
                scope.spawn(move || cpus.report(cpu));
            }
            until(|| cpus.roll.arrived() == 3);
            // One stall: CPU 0 is passed over and the others speak; the clock then stands
            // still, so the finish can only be waiting for CPU 0 when it comes.
            advance();
            until(|| cpus.said().len() == 3);
            assert_eq!(cpus.finishers.load(Ordering::SeqCst), 0, "finished without CPU 0");
            scope.spawn(|| cpus.report(0));
        });
        assert_eq!(cpus.said(), ["1", "2", "3", "0 late"]);
        assert_eq!(cpus.passed(), [0]);
        assert_eq!(cpus.finishers.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_speaker_that_stops_half_way_is_talked_over() {
        test_clock!(now, advance);
        let roll = RollCall::new();
        let members = members(&[0, 1]);
        let patience = Patience { now, stall: STALL };
        let mut never = |cpu| panic!("CPU {cpu} was not expected to be passed over");
        assert_eq!(roll.wait_turn(0, &members, &patience, &mut never), Turn::InOrder);
        // CPU 0 never says `done`: CPU 1 waits for a stall, then goes on.
        let stop = AtomicBool::new(false);
        thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    advance();
                    thread::sleep(Duration::from_millis(1));
                }
            });
            let mut passed = Vec::new();
            assert_eq!(roll.wait_turn(1, &members, &patience, &mut |cpu| passed.push(cpu)), Turn::InOrder);
            assert_eq!(passed, [0]);
            roll.done(1, Turn::InOrder, &members, &patience);
            // Two arrived and one reported: the finish waits out a stall, then goes on.
            assert!(roll.finish(&members, &patience, &mut never));
            assert!(!roll.finish(&members, &patience, &mut never), "a second finisher");
            stop.store(true, Ordering::SeqCst);
        });
        assert_eq!(roll.reported(), 1);
    }
}
