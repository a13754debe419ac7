//! Sched-RCU, the flavour Linux's GUP-fast relies on: a CPU with interrupts
//! off is inside a read-side critical section, so a grace period is over
//! once every online CPU has passed a quiescent state: a timer tick (which a
//! CPU only takes with interrupts on), an idle-loop iteration, or an
//! explicit `quiescent_state()` outside any read-side section.
//!
//! `synchronize` waits for one full grace period; `call` queues a callback
//! that runs, in queue order, once a grace period that started after it was
//! queued has ended. Grace periods advance from `quiescent_state`, so they
//! make progress as long as CPUs tick or idle; the CPU that waits counts as
//! quiescent (it must not be inside a read-side section itself).
//!
//! The platform says which CPUs are online and which one is running
//! (`set_platform`); the state here is per CPU index.

use alloc::collections::VecDeque;
use core::sync::atomic::AtomicPtr;

use crate::cpuset::{CpuSet, MAX_CPUS};
use crate::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use crate::sync::Mutex;

/// What RCU needs to know about CPUs.
pub struct Platform {
    /// Index of the running CPU.
    pub this_cpu: fn() -> usize,
    /// The online CPUs (offline CPUs hold no read-side sections). Grace
    /// periods look at these only, so their cost grows with the CPUs
    /// online, not with MAX_CPUS.
    pub online: fn() -> &'static CpuSet,
    /// Called while `synchronize` waits for a grace period: a spin-wait
    /// hint, and where CPUs sleep when idle, the place to wake those the
    /// grace period waits for (`waits_for`).
    pub relax: fn(),
}

fn cpu_zero() -> usize {
    0
}
fn only_cpu_zero() -> &'static CpuSet {
    #[cfg(not(loom))]
    {
        static CPU_ZERO: CpuSet = CpuSet::single(0);
        &CPU_ZERO
    }
    #[cfg(loom)]
    {
        loom::lazy_static! {
            static ref CPU_ZERO: CpuSet = CpuSet::single(0);
        }
        &CPU_ZERO
    }
}
fn no_relax() {}

static UNIPROCESSOR: Platform = Platform { this_cpu: cpu_zero, online: only_cpu_zero, relax: no_relax };
static PLATFORM: AtomicPtr<Platform> = AtomicPtr::new(&UNIPROCESSOR as *const Platform as *mut Platform);

pub fn set_platform(platform: &'static Platform) {
    PLATFORM.store(platform as *const Platform as *mut Platform, Ordering::Release);
}

fn platform() -> &'static Platform {
    // SAFETY: PLATFORM only ever holds a pointer to a `'static Platform`.
    unsafe { &*PLATFORM.load(Ordering::Acquire) }
}

/// The grace-period machinery, in one place so that a loom model can have
/// a fresh one per execution.
struct State {
    /// Quiescent states each CPU has passed.
    quiescent: [AtomicU64; MAX_CPUS],
    /// Grace periods: `completed` have ended; while one is in progress,
    /// `snapshot` holds the counts it waits to see advance.
    completed: AtomicU64,
    in_progress: AtomicBool,
    snapshot: [AtomicU64; MAX_CPUS],
    /// Set when a `Deferred` waits for a grace period, so one starts even
    /// with no callbacks queued.
    wanted: AtomicBool,
    /// Serialises grace-period bookkeeping (taken with try_lock from ticks).
    advance: Mutex<()>,
    callbacks: Mutex<VecDeque<Pending>>,
    callbacks_run: AtomicU64,
}

impl State {
    #[cfg(not(loom))]
    const fn new() -> State {
        State {
            quiescent: [const { AtomicU64::new(0) }; MAX_CPUS],
            completed: AtomicU64::new(0),
            in_progress: AtomicBool::new(false),
            snapshot: [const { AtomicU64::new(0) }; MAX_CPUS],
            wanted: AtomicBool::new(false),
            advance: Mutex::new(()),
            callbacks: Mutex::new(VecDeque::new()),
            callbacks_run: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    fn new() -> State {
        State {
            quiescent: core::array::from_fn(|_| AtomicU64::new(0)),
            completed: AtomicU64::new(0),
            in_progress: AtomicBool::new(false),
            snapshot: core::array::from_fn(|_| AtomicU64::new(0)),
            wanted: AtomicBool::new(false),
            advance: Mutex::new(()),
            callbacks: Mutex::new(VecDeque::new()),
            callbacks_run: AtomicU64::new(0),
        }
    }
}

#[cfg(not(loom))]
static STATE: State = State::new();
#[cfg(loom)]
loom::lazy_static! {
    static ref STATE: State = State::new();
}

pub type Callback = fn(u64);

struct Pending {
    callback: Callback,
    argument: u64,
    /// Runs once `completed` reaches this.
    after: u64,
}

/// Reports that this CPU is outside any read-side section, and moves grace
/// periods and callbacks along. Called from the tick, the idle loop, and
/// wherever code knows it holds no RCU-protected pointer.
#[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
pub fn quiescent_state() {
    let cpu = (platform().this_cpu)();
    report_quiescent(cpu);
    advance();
}

/// Counts a quiescent state of `cpu`, then a full barrier (`sync`). The
/// count is what a grace period's snapshot compares; this CPU's next
/// read-side section must not read a page-table pointer before the count is
/// visible to that snapshot, or the grace period could end (count seen)
/// with the section still holding a pointer read before it. On POWER the
/// AcqRel read-modify-write is `lwsync; ldarx/stdcx.; lwsync`, and lwsync
/// does not order a store before a later load: without the `sync`, herd7's
/// Power model allows the snapshot to miss the report while the next
/// section reads the old table pointer (store buffering). Linux orders the
/// same report with a full barrier (smp_mb__after_unlock_lock() in
/// rcu_report_qs_rdp). The barrier is here, not in `advance`, so that an
/// advance that fails its try_lock and returns early has it too. loom cannot
/// see this: its model of the lock is sequentially consistent.
fn report_quiescent(cpu: usize) {
    STATE.quiescent[cpu].fetch_add(1, Ordering::AcqRel);
    fence(Ordering::SeqCst);
}

/// Ends the grace period in progress if every online CPU has passed a
/// quiescent state since it began; starts one if callbacks wait; runs the
/// callbacks that are due. Never blocks (ticks call it).
fn advance() {
    let Some(_guard) = STATE.advance.try_lock() else { return };
    let p = platform();
    let online = (p.online)();
    if STATE.in_progress.load(Ordering::Acquire) {
        let all_passed = online
            .iter(Ordering::Acquire)
            .all(|i| STATE.quiescent[i].load(Ordering::Acquire) != STATE.snapshot[i].load(Ordering::Relaxed));
        if all_passed {
            STATE.completed.fetch_add(1, Ordering::AcqRel);
            STATE.in_progress.store(false, Ordering::Release);
        }
    }
    // Only an advance that can start a grace period consumes WANTED: one
    // set while a grace period runs asks for the next one.
    let callbacks_wait = || {
        STATE.callbacks.try_lock().is_some_and(|q| q.iter().any(|c| c.after > STATE.completed.load(Ordering::Acquire)))
    };
    if !STATE.in_progress.load(Ordering::Acquire) && (STATE.wanted.swap(false, Ordering::AcqRel) || callbacks_wait()) {
        // The online CPUs' counts only: a CPU offline now is in no
        // read-side section that began before this grace period. If one
        // comes online during it, the check compares its count with an
        // older snapshot (or 0): equal (counts move only while online, so
        // it must pass a quiescent state, as an online one) or not (it
        // passed one since; it was offline when this began): nothing that
        // began before is missed.
        for i in online.iter(Ordering::Acquire) {
            STATE.snapshot[i].store(STATE.quiescent[i].load(Ordering::Acquire), Ordering::Relaxed);
        }
        // The starter is quiescent right now (it is running this).
        let me = (p.this_cpu)();
        STATE.snapshot[me].store(STATE.quiescent[me].load(Ordering::Acquire).wrapping_sub(1), Ordering::Relaxed);
        STATE.in_progress.store(true, Ordering::Release);
    }
    run_due_callbacks();
}

fn run_due_callbacks() {
    loop {
        let due = {
            let Some(mut queue) = STATE.callbacks.try_lock() else { return };
            match queue.front() {
                Some(front) if front.after <= STATE.completed.load(Ordering::Acquire) => queue.pop_front(),
                _ => None,
            }
        };
        let Some(pending) = due else { return };
        (pending.callback)(pending.argument);
        STATE.callbacks_run.fetch_add(1, Ordering::Relaxed);
    }
}

/// The grace-period count after which everything that is running now has
/// left its read-side sections: a grace period already in progress may have
/// started before now, so it takes the one after it. The caller holds
/// ADVANCE, so no grace period starts in between.
fn target_locked() -> u64 {
    STATE.completed.load(Ordering::Acquire) + if STATE.in_progress.load(Ordering::Acquire) { 2 } else { 1 }
}

/// Queues `callback(argument)` to run after a grace period that starts
/// after this call. Callbacks run in the order they were queued.
pub fn call(callback: Callback, argument: u64) {
    let _guard = STATE.advance.lock();
    let after = target_locked();
    STATE.callbacks.lock().push_back(Pending { callback, argument, after });
}

/// Whether the grace period in progress still waits for `cpu` to pass a
/// quiescent state: an idle CPU about to sleep must not, and a sleeping
/// one must be woken for it (its next tick would do, a tick later).
pub fn waits_for(cpu: usize) -> bool {
    STATE.in_progress.load(Ordering::Acquire)
        && STATE.quiescent[cpu].load(Ordering::Relaxed) == STATE.snapshot[cpu].load(Ordering::Relaxed)
}

/// A cheaper quiescent state for idle loops: counted, but grace periods
/// move on at the next full `quiescent_state`.
#[inline(never)] // kept out of line under LTO: the barrier check (tests/src/disasm.rs) reads its code
pub fn note_quiescent() {
    report_quiescent((platform().this_cpu)());
}

/// Things to free after a grace period, kept by their owner (a page table's
/// emptied tables, which only the tree's allocator can free).
pub struct Deferred<T> {
    items: VecDeque<(T, u64)>,
}

impl<T> Deferred<T> {
    pub const fn new() -> Self {
        Deferred { items: VecDeque::new() }
    }

    /// Defers `item` until every CPU has left the read-side sections it may
    /// be in now (a lockless walker may still hold it).
    pub fn push(&mut self, item: T) {
        let after = {
            let _guard = STATE.advance.lock();
            let after = target_locked();
            // Someone must drive the grace period: make sure one is wanted.
            STATE.wanted.store(true, Ordering::Release);
            after
        };
        self.items.push_back((item, after));
    }

    /// Hands over the items whose grace period is over.
    pub fn drain_due(&mut self, mut free: impl FnMut(T)) {
        while self.items.front().is_some_and(|(_, after)| *after <= STATE.completed.load(Ordering::Acquire)) {
            if let Some((item, _)) = self.items.pop_front() {
                free(item);
            }
        }
    }

    /// Waits for a grace period, then hands over everything.
    pub fn drain_all(&mut self, mut free: impl FnMut(T)) {
        if !self.items.is_empty() {
            synchronize();
        }
        while let Some((item, _)) = self.items.pop_front() {
            free(item);
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> Default for Deferred<T> {
    fn default() -> Self {
        Deferred::new()
    }
}

/// Callbacks queued and not yet run.
pub fn pending_callbacks() -> usize {
    STATE.callbacks.lock().len()
}

pub fn callbacks_run() -> u64 {
    STATE.callbacks_run.load(Ordering::Relaxed)
}

pub fn completed_grace_periods() -> u64 {
    STATE.completed.load(Ordering::Acquire)
}

/// Waits for a full grace period: every read-side section that began before
/// this call has ended. The caller must not be inside one.
pub fn synchronize() {
    synchronize_until(|| false);
}

/// `synchronize`, unless `give_up()` says to stop waiting first: whether
/// the grace period is over (for a test that a grace period ends without
/// something, and must not hang when it does not).
pub fn synchronize_until(give_up: impl Fn() -> bool) -> bool {
    let p = platform();
    let target = {
        let _guard = STATE.advance.lock();
        STATE.wanted.store(true, Ordering::Release);
        target_locked()
    };
    while STATE.completed.load(Ordering::Acquire) < target {
        if give_up() {
            return false;
        }
        // Our own quiescent states move grace periods (and callbacks) along.
        quiescent_state();
        (p.relax)();
    }
    true
}

#[cfg(test)]
mod tests {
    //! One host thread plays every CPU: `CURRENT` says which one is "running".
    use super::*;
    extern crate std;
    use std::sync::atomic::AtomicUsize;
    use std::vec::Vec;

    static CURRENT: AtomicUsize = AtomicUsize::new(0);
    static ONLINE: CpuSet = CpuSet::new();
    fn this_cpu() -> usize {
        CURRENT.load(Ordering::Relaxed)
    }
    fn online() -> &'static CpuSet {
        &ONLINE
    }
    static HOST: Platform = Platform { this_cpu, online, relax: no_relax };

    static ORDER: spin::Mutex<Vec<u64>> = spin::Mutex::new(Vec::new());
    fn record(value: u64) {
        ORDER.lock().push(value);
    }

    fn on(cpu: usize) {
        CURRENT.store(cpu, Ordering::Relaxed);
        quiescent_state();
    }

    /// The whole protocol in one test: the statics are global.
    #[test]
    fn grace_periods_and_callbacks() {
        for cpu in 0..3 {
            ONLINE.insert(cpu, Ordering::Release);
        }
        set_platform(&HOST);
        let start = completed_grace_periods();
        // Callbacks queued on CPU 0 do not run until CPUs 1 and 2 pass a quiescent state.
        CURRENT.store(0, Ordering::Relaxed);
        call(record, 1);
        call(record, 2);
        on(0);
        on(0);
        assert!(ORDER.lock().is_empty(), "ran before CPUs 1 and 2 were quiescent");
        on(1);
        assert!(ORDER.lock().is_empty(), "ran before CPU 2 was quiescent");
        on(2);
        on(0);
        assert_eq!(*ORDER.lock(), [1, 2]);
        assert!(completed_grace_periods() > start);

        // A callback queued while a grace period runs waits for the next one.
        call(record, 3);
        on(1);
        on(2);
        on(0);
        call(record, 4);
        for cpu in [1, 2, 0, 1, 2, 0, 1, 2, 0] {
            on(cpu);
        }
        assert_eq!(*ORDER.lock(), [1, 2, 3, 4], "in order, none lost");
        assert_eq!(pending_callbacks(), 0);

        // An offline CPU does not hold grace periods up.
        ONLINE.remove(2, Ordering::Release);
        call(record, 5);
        for cpu in [0, 1, 0, 1, 0] {
            on(cpu);
        }
        assert_eq!(ORDER.lock().last(), Some(&5));
        ONLINE.insert(2, Ordering::Release);

        // Deferred items come out only after a full grace period.
        let mut deferred = Deferred::new();
        deferred.push(10u64);
        let mut freed = Vec::new();
        on(0);
        deferred.drain_due(|x| freed.push(x));
        assert!(freed.is_empty(), "freed before CPUs 1 and 2 were quiescent");
        for cpu in [1, 2, 0, 1, 2, 0] {
            on(cpu);
        }
        deferred.drain_due(|x| freed.push(x));
        assert_eq!(freed, [10]);
        assert!(deferred.is_empty());

        // Deferred while a grace period is in progress: it needs the next
        // one, which must still start although nothing else asks for it.
        deferred.push(11);
        on(0); // starts a grace period for it
        assert!(STATE.in_progress.load(Ordering::Acquire));
        deferred.push(12);
        on(1); // an advance that cannot start one must not forget the request
        for cpu in [2, 0, 1, 2, 0, 1, 2, 0] {
            on(cpu);
        }
        deferred.drain_due(|x| freed.push(x));
        assert_eq!(freed, [10, 11, 12], "the grace period after the running one never started");
    }
}
