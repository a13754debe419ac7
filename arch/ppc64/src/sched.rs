//! Kernel threads: each with its own stack, pinned to the CPU it was
//! spawned on (no migration, so affinity is exact), run round-robin from a
//! per-CPU run queue and preempted by the tick. A thread may run inside an
//! address space: switching to it activates that space (PIDR on radix, the
//! SLB on hash), as a Linux kernel thread borrowing a user mm.
//!
//! Each CPU's own context (the boot CPU's test runner, a secondary's idle
//! loop) takes part in the rotation as a thread without a stack of its own.
//! Run-queue locks are only taken with interrupts off, since the tick takes
//! them too.

use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use kernel::mm::mmu::SpaceId;
use kernel::mm::{self, Frame, FRAME_SIZE};
use kernel::sched::RunQueue;
use spin::Mutex;

use crate::percpu::{self, MAX_CPUS};
use crate::{cpu, mmu};

extern "C" {
    fn context_switch(from: *mut Context, to: *const Context);
    fn thread_trampoline();
}

core::arch::global_asm!(include_str!("asm/switch.s"));

/// What context_switch saves (asm/switch.s): LR, r1, r2, CR, r14..r31.
#[repr(C)]
#[derive(Default)]
struct Context {
    lr: u64,
    r1: u64,
    r2: u64,
    cr: u64,
    nonvolatile: [u64; 18],
}

const STACK_FRAMES: u64 = 4;
const READY: u8 = 0;
const RUNNING: u8 = 1;
const DEAD: u8 = 2;

pub struct Thread {
    pub id: u64,
    pub name: &'static str,
    /// The address space the thread runs in, if any.
    space: Option<SpaceId>,
    entry: Option<fn(u64)>,
    argument: u64,
    stack: Option<Frame>,
    context: UnsafeCell<Context>,
    state: AtomicU8,
    /// Set once the thread is dead and its CPU has switched away from it for
    /// good: its stack may go.
    off_cpu: AtomicBool,
    /// For a process's thread (process.rs): its kernel stack pointer at its
    /// entry to user mode, where interrupts from problem state put their
    /// frames (user_run sets it; each switch to the thread hands it to
    /// exception_common through PerCpu), and what the thread runs for
    /// (a `*const process::UserThread`); 0 for kernel threads.
    pub user_entry_sp: AtomicU64,
    user: AtomicU64,
}

// SAFETY: `context` is only touched by context_switch on the thread's own
// CPU with interrupts off; everything else is atomic or immutable.
unsafe impl Sync for Thread {}
// SAFETY: as above; a Thread moves between CPUs only as an Arc.
unsafe impl Send for Thread {}

/// Per-CPU run queues, round robin (the policy is kernel::sched's).
static RUN_QUEUES: [RunQueue<Arc<Thread>>; MAX_CPUS] = [const { RunQueue::new() }; MAX_CPUS];
/// The thread a CPU just switched away from, for the new context to finish with.
static PREVIOUS: [Mutex<Option<Arc<Thread>>>; MAX_CPUS] = [const { Mutex::new(None) }; MAX_CPUS];
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// The running thread, per CPU (kept alive by its run queue while it runs).
static CURRENT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Context switches, per CPU.
pub static SWITCHES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Makes the running context of this CPU a schedulable thread.
pub fn init_cpu() {
    let cpu = percpu::index() as usize;
    let own = Arc::new(Thread {
        id: 0,
        name: "cpu",
        space: None,
        entry: None,
        argument: 0,
        stack: None,
        context: UnsafeCell::new(Context::default()),
        state: AtomicU8::new(RUNNING),
        off_cpu: AtomicBool::new(false),
        user_entry_sp: AtomicU64::new(0),
        user: AtomicU64::new(0),
    });
    CURRENT[cpu].store(Arc::as_ptr(&own) as u64, Ordering::Relaxed);
    with_interrupts_off(|| RUN_QUEUES[cpu].set_current(own));
}

fn with_interrupts_off<R>(f: impl FnOnce() -> R) -> R {
    let was_on = crate::percpu::disable_interrupts();
    let result = f();
    if was_on {
        cpu::enable_interrupts();
    }
    result
}

/// Starts `entry(argument)` as a thread on CPU `cpu` (for good: threads do
/// not migrate), inside address space `space` if given.
pub fn spawn(
    cpu: usize,
    name: &'static str,
    entry: fn(u64),
    argument: u64,
    space: Option<SpaceId>,
) -> Option<Arc<Thread>> {
    spawn_for(cpu, name, entry, argument, space, 0)
}

/// `spawn`, for a thread that runs for `user` (a process's thread: see
/// `current_user`), set before the thread can first run.
pub fn spawn_for(
    cpu: usize,
    name: &'static str,
    entry: fn(u64),
    argument: u64,
    space: Option<SpaceId>,
    user: u64,
) -> Option<Arc<Thread>> {
    if !percpu::is_online(cpu) {
        return None;
    }
    let stack = mm::alloc_contiguous(STACK_FRAMES, 1)?;
    let top = mm::phys_to_virt(stack.address()) as u64 + STACK_FRAMES * FRAME_SIZE - 64;
    // SAFETY: the stack was just allocated; a zero back chain ends backtraces.
    unsafe { (top as *mut u64).write(0) };
    let thread = Arc::new(Thread {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        name,
        space,
        entry: Some(entry),
        argument,
        stack: Some(stack),
        context: UnsafeCell::new(Context::default()),
        state: AtomicU8::new(READY),
        off_cpu: AtomicBool::new(false),
        user_entry_sp: AtomicU64::new(0),
        user: AtomicU64::new(user),
    });
    {
        // SAFETY: nobody runs this thread yet; its context is ours to set.
        let context = unsafe { &mut *thread.context.get() };
        context.lr = thread_trampoline as *const () as u64;
        context.r1 = top;
        context.r2 = cpu::toc();
        context.nonvolatile[0] = Arc::into_raw(thread.clone()) as u64; // r14
        context.nonvolatile[1] = thread_main as *const () as u64; // r15
    }
    kernel::debug!("sched: thread {} '{}' on CPU {cpu}", thread.id, thread.name);
    with_interrupts_off(|| RUN_QUEUES[cpu].push(thread.clone()));
    crate::smp::wake(cpu);
    Some(thread)
}

/// The first Rust code of a new thread (from thread_trampoline).
extern "C" fn thread_main(thread: *const Thread) -> ! {
    // SAFETY: spawn leaked one reference for this call (r14).
    let thread = unsafe { Arc::from_raw(thread) };
    finish_switch();
    cpu::enable_interrupts();
    if let Some(entry) = thread.entry {
        entry(thread.argument);
    }
    crate::percpu::disable_interrupts();
    thread.state.store(DEAD, Ordering::Release);
    drop(thread);
    schedule();
    unreachable!("a dead thread was scheduled again");
}

/// Runs the next ready thread of this CPU, if any. Interrupts must be off.
pub fn schedule() {
    let cpu = percpu::index() as usize;
    let (from, to, space_change) = {
        // Nothing happens before this CPU's init_cpu made its context current.
        let Some((prev, next)) = RUN_QUEUES[cpu].rotate(|prev| {
            let alive = prev.state.load(Ordering::Acquire) != DEAD;
            if alive {
                prev.state.store(READY, Ordering::Release);
            }
            alive
        }) else {
            return;
        };
        next.state.store(RUNNING, Ordering::Release);
        // Where interrupts from the next thread's user mode put their frames.
        percpu::this().user_entry_sp.store(next.user_entry_sp.load(Ordering::Relaxed), Ordering::Relaxed);
        CURRENT[cpu].store(Arc::as_ptr(&next) as u64, Ordering::Relaxed);
        let space_change = (prev.space != next.space).then_some(next.space);
        let from = prev.context.get();
        let to = next.context.get() as *const Context;
        *PREVIOUS[cpu].lock() = Some(prev);
        (from, to, space_change)
    };
    match space_change {
        Some(Some(space)) => mmu::activate(space),
        Some(None) => mmu::deactivate(),
        None => {}
    }
    SWITCHES[cpu].fetch_add(1, Ordering::Relaxed);
    // SAFETY: both contexts belong to threads kept alive by the run queue or
    // PREVIOUS; interrupts are off, so nothing else switches on this CPU.
    unsafe { context_switch(from, to) };
    finish_switch();
}

/// In the context just switched to: a dead predecessor is now off its stack.
fn finish_switch() {
    let cpu = percpu::index() as usize;
    if let Some(prev) = PREVIOUS[cpu].lock().take() {
        if prev.state.load(Ordering::Acquire) == DEAD {
            prev.off_cpu.store(true, Ordering::Release);
        }
    }
}

/// Gives the CPU to the next ready thread, if any. Must be called with
/// interrupts on: a CPU with interrupts off is inside a sched-RCU read-side
/// section (a lockless page-table walk, say), and switching away would let
/// the next thread's quiescent states end a grace period the section still
/// needs. Called with them off, it stops the kernel with a report naming the
/// caller rather than switch.
#[track_caller]
pub fn yield_now() {
    if !crate::cpu::interrupts_enabled() {
        let caller = core::panic::Location::caller();
        panic!("sched: yield_now called with interrupts off (inside a sched-RCU read-side section) from {caller}");
    }
    with_interrupts_off(schedule);
}

/// What the thread running on this CPU runs for (`Thread::set_user`), 0
/// for a kernel thread. Only meaningful with interrupts off, or from the
/// thread itself.
pub fn current_user() -> u64 {
    with_current(|thread| thread.user.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Runs `f` on the thread running on this CPU (the caller is that thread,
/// so it stays alive meanwhile).
#[allow(unsafe_code)]
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> Option<R> {
    let thread = CURRENT[percpu::index() as usize].load(Ordering::Relaxed) as *const Thread;
    // SAFETY: CURRENT is the Arc the run queue holds as current, which it
    // drops only after switching to another thread, and this code runs on
    // the current thread.
    (!thread.is_null()).then(|| f(unsafe { &*thread }))
}

/// The tick: round-robin preemption.
pub fn preempt() {
    if RUN_QUEUES[percpu::index() as usize].has_ready() {
        schedule();
    }
}

/// Whether this CPU has a thread ready to run (the idle loop's check
/// before it sleeps).
pub fn has_ready() -> bool {
    RUN_QUEUES[percpu::index() as usize].has_ready()
}

/// For idle loops: run threads as soon as they are ready.
pub fn run_ready() {
    if RUN_QUEUES[percpu::index() as usize].has_ready() {
        yield_now();
    }
}

impl Thread {
    /// Waits until the thread has finished and left its stack, then frees
    /// the stack. False on timeout.
    pub fn join(self: Arc<Self>, timeout_us: u64) -> bool {
        let deadline = kernel::time::deadline_us(timeout_us);
        while !self.off_cpu.load(Ordering::Acquire) {
            if kernel::time::now() > deadline {
                return false;
            }
            run_ready();
            core::hint::spin_loop();
        }
        if let Some(stack) = self.stack {
            mm::free_contiguous(stack, STACK_FRAMES);
        }
        true
    }
}
