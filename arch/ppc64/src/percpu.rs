//! Per-CPU data, reached through r13 as Linux's PACA (the ELFv2 ABI reserves
//! r13, so compiled code never touches it), and through SPRG0 in the first
//! instructions of an interrupt, which cannot trust r13. One `PerCpu` per
//! CPU of the device tree, in a static array; index 0 is the boot CPU.

use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use kernel::cpuset::CpuSet;
/// CPUs the kernel can run on (the rest of a bigger device tree is reported
/// and left stopped): the portable core's limit.
pub use kernel::cpuset::MAX_CPUS;

use crate::cpu;
use crate::trap::CaughtFault;

/// Work posted to an idle CPU: a function and its argument.
pub type Work = (fn(u64) -> u64, u64);
/// A cross-call: a function run in interrupt context and its argument.
pub type Call = (fn(u64), u64);

/// A slot one CPU fills and another empties, also from interrupt context:
/// its lock is only ever held with interrupts off, for a copy in or out,
/// so an interrupt handler never spins on a holder that was preempted.
///
/// Idle loops and waiters poll it: `full` lets a poll of an empty slot be
/// one load, without the lock or turning interrupts off and on (an idle
/// CPU doing that on every turn doubled the cost of faults on a busy CPU
/// under TCG at -smp 4).
pub struct Mailbox<T: Copy> {
    /// Whether the slot holds something: written under the lock after each
    /// change (Release), read without it (Acquire).
    full: AtomicBool,
    slot: spin::Mutex<Option<T>>,
}

impl<T: Copy> Mailbox<T> {
    pub const fn new() -> Mailbox<T> {
        Mailbox { full: AtomicBool::new(false), slot: spin::Mutex::new(None) }
    }

    /// Runs `f` on the slot with interrupts off and the lock held.
    pub fn with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        let were_on = cpu::disable_interrupts();
        let mut slot = self.slot.lock();
        let result = f(&mut slot);
        self.full.store(slot.is_some(), Ordering::Release);
        drop(slot);
        if were_on {
            cpu::enable_interrupts();
        }
        result
    }

    /// What the slot holds now. An empty slot may be seen empty a little
    /// after it was filled (pollers look again); a full one is read under
    /// the lock, after the store that filled it.
    pub fn peek(&self) -> Option<T> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        self.with(|slot| *slot)
    }
}

/// Each area is 256 bytes, so secondary_start finds area `i` at `i << 8`.
#[repr(C, align(256))]
pub struct PerCpu {
    /// Scratch for exception_common while registers are saved: the vector,
    /// r11 and the interrupted CR.
    scratch: [u64; 4],
    /// The kernel TOC, reloaded into r2 on interrupt entry and by
    /// secondary_start.
    toc: AtomicU64,
    /// Top of this CPU's boot stack (secondary_start loads it into r1).
    stack_top: AtomicU64,
    /// Where secondary_start jumps (the Rust entry, at its KERNEL_BASE address).
    entry: AtomicU64,
    /// Index into the PerCpu array.
    pub index: AtomicU64,
    /// Interrupt-server number (PIR on QEMU) from the device tree.
    pub server: AtomicU32,
    /// Work another CPU asked this one to run (see smp::run_on): the
    /// function and its argument until it finished, and its result.
    pub work: Mailbox<Work>,
    pub work_result: AtomicU64,
    /// A cross-call (smp::call_on_cpus) until it finished, and how many
    /// calls this CPU finished.
    pub call: Mailbox<Call>,
    pub calls_done: AtomicU64,
    /// Decrementer interrupts taken.
    pub ticks: AtomicU64,
    /// Where and when this CPU last turned interrupts off through
    /// `cpu::disable_interrupts` (the caller's return address, the
    /// timebase, or 0 where the section records no time): what the
    /// cross-call watchdog reports about a CPU that does not answer.
    pub irq_off_at: AtomicU64,
    pub irq_off_since: AtomicU64,
    /// Callers spinning in `smp::call_on_cpus` until this CPU answers.
    pub callers_waiting: AtomicU64,
    /// Last fault a probe caught; written only by this CPU's interrupt path.
    last_fault: UnsafeCell<CaughtFault>,
    /// Where exception_common puts the frame of an interrupt from problem
    /// state: the kernel stack pointer of the running user thread at its
    /// entry to user mode (sched.rs sets it on every switch; 0 while a
    /// thread that never entered user mode runs).
    pub user_entry_sp: AtomicU64,
    /// Set by the idle loop before it checks for work and sleeps; a CPU
    /// that gives it work clears it and, if it was set, interrupts it
    /// (`smp::wake`).
    pub idle: AtomicBool,
    /// Rounds of the idle loop (a sleeping CPU makes one per wake-up).
    pub idle_loops: AtomicU64,
}

// The offsets asm/exceptions.s and asm/entry.s use.
const _: () = {
    assert!(offset_of!(PerCpu, scratch) == 0);
    assert!(offset_of!(PerCpu, toc) == 32);
    assert!(offset_of!(PerCpu, stack_top) == 40);
    assert!(offset_of!(PerCpu, entry) == 48);
    // secondary_start_pir matches the PIR against `server` over PERCPU_COUNT areas.
    assert!(offset_of!(PerCpu, server) == 64);
    assert!(offset_of!(PerCpu, user_entry_sp) == 224);
    assert!(MAX_CPUS == 256);
    assert!(core::mem::size_of::<PerCpu>() == 256);
};

// SAFETY: the atomics are shared deliberately; `last_fault` is only touched
// by the CPU it belongs to (its interrupt path included).
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> PerCpu {
        PerCpu {
            scratch: [0; 4],
            toc: AtomicU64::new(0),
            stack_top: AtomicU64::new(0),
            entry: AtomicU64::new(0),
            index: AtomicU64::new(0),
            server: AtomicU32::new(0),
            work: Mailbox::new(),
            work_result: AtomicU64::new(0),
            call: Mailbox::new(),
            calls_done: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            irq_off_at: AtomicU64::new(0),
            irq_off_since: AtomicU64::new(0),
            callers_waiting: AtomicU64::new(0),
            last_fault: UnsafeCell::new(CaughtFault { vector: 0, srr0: 0, srr1: 0, dar: 0, dsisr: 0 }),
            user_entry_sp: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            idle_loops: AtomicU64::new(0),
        }
    }

    pub fn record_fault(&self, fault: CaughtFault) {
        // SAFETY: only this CPU's interrupt path writes it, and the interrupted
        // code reads it only through `last_fault` (a copy), never across the write.
        unsafe { self.last_fault.get().write_volatile(fault) }
    }

    pub fn last_fault(&self) -> CaughtFault {
        // SAFETY: see record_fault.
        unsafe { self.last_fault.get().read_volatile() }
    }

    /// Takes back an area prepared for a CPU that was not started: neither
    /// entry finds it any more (secondary_start_pir skips an area without
    /// an entry point), so its stack can be freed.
    pub fn abandon(&self) {
        self.entry.store(0, Ordering::Release);
        self.server.store(u32::MAX, Ordering::Release);
    }

    /// Prepares the area of a CPU that secondary_start will bring up.
    pub fn prepare(&self, index: usize, server: u32, stack_top: u64, entry: u64) {
        self.index.store(index as u64, Ordering::Relaxed);
        self.server.store(server, Ordering::Relaxed);
        self.stack_top.store(stack_top, Ordering::Relaxed);
        self.entry.store(entry, Ordering::Relaxed);
        self.toc.store(cpu::toc(), Ordering::Release);
    }
}

/// Every CPU's area. secondary_start finds its own by the index the platform
/// start-cpu passes in r3.
#[no_mangle]
pub static PERCPU: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// The CPUs running kernel code: each one adds itself (`set_online`) once
/// it runs with translation as the boot CPU chose. CPUs never leave it.
static ONLINE: CpuSet = CpuSet::new();

/// Reports this CPU (index `index`) online. Release: everything it set up
/// before is visible to whoever sees it online (Acquire).
pub fn set_online(index: usize) {
    ONLINE.insert(index, Ordering::Release);
}

pub fn is_online(index: usize) -> bool {
    ONLINE.contains(index, Ordering::Acquire)
}

/// The online CPUs (read them with Acquire, as `is_online` does).
pub fn online() -> &'static CpuSet {
    &ONLINE
}

/// Whether SPRG0 points at a PerCpu yet (the firmware's value before that).
static READY: AtomicBool = AtomicBool::new(false);

/// Points SPRG0 at the boot CPU's area and records the TOC for interrupts.
pub fn init_boot_cpu() {
    let area = &PERCPU[0];
    area.server.store(cpu::pir(), Ordering::Relaxed);
    area.toc.store(cpu::toc(), Ordering::Release);
    set_online(0);
    point_at(area);
    READY.store(true, Ordering::Release);
}

/// Called by a secondary CPU on itself: r13 and SPRG0 → its area.
pub fn init_secondary(area: &'static PerCpu) {
    point_at(area);
}

fn point_at(area: &'static PerCpu) {
    let address = area as *const PerCpu as u64;
    cpu::set_sprg0(address);
    // SAFETY: r13 is reserved by the ABI (no compiled code uses it); from
    // here on it always holds this CPU's area, which lives forever.
    unsafe { core::arch::asm!("mr 13, {0}", in(reg) address, options(nomem, nostack, preserves_flags)) };
}

/// Turns interrupts off on this CPU (returns whether they were on) and
/// records where it was called from and when, for the cross-call
/// watchdog's report of a CPU that does not answer: two stores to this
/// CPU's own area.
#[inline(never)]
pub fn disable_interrupts() -> bool {
    // First, while LR still holds this function's return address.
    let caller = cpu::link_register();
    disable_and_record(caller, cpu::timebase)
}

/// Turns interrupts off and records `caller` and `since()` for the watchdog.
#[inline(always)]
fn disable_and_record(caller: u64, since: fn() -> u64) -> bool {
    let was = cpu::disable_interrupts();
    record_interrupts_off(caller, since);
    was
}

/// The watchdog's record of an interrupts-off section on this CPU: where
/// (`caller`) and when (`since()`, 0 for unknown), once the area is set up.
#[inline(always)]
fn record_interrupts_off(caller: u64, since: fn() -> u64) {
    if ready() {
        let area = this();
        area.irq_off_at.store(caller, Ordering::Relaxed);
        area.irq_off_since.store(since(), Ordering::Relaxed);
    }
}

/// `disable_interrupts` for the hottest sections, GUP-fast's: the place is
/// recorded, the time is not (reading the timebase costs about as much as
/// the rest of a one-page GUP-fast under TCG); `irq_off_since` = 0 tells
/// the watchdog's report it is unknown.
#[inline(never)]
fn disable_interrupts_untimed() -> bool {
    let caller = cpu::link_register();
    disable_and_record(caller, || 0)
}

/// Records the caller's place (not its time) for the watchdog, as the
/// sections that turn interrupts off in their own MSR write do just before
/// it (vector.rs, whose one mtmsrd also turns the vector facilities on).
#[inline(never)]
pub fn note_interrupts_off() {
    let caller = cpu::link_register();
    record_interrupts_off(caller, || 0);
}

/// The lockless read side's interrupts-off section on this CPU
/// (`kernel::mm::pagetable::ReadSide::enter::<IrqsOff>()`), recorded for the
/// cross-call watchdog like every other (its place, not its time).
pub struct IrqsOff;

impl kernel::mm::pagetable::InterruptsOff for IrqsOff {
    fn disable() -> bool {
        disable_interrupts_untimed()
    }

    fn restore(were_on: bool) {
        if were_on {
            cpu::enable_interrupts();
        }
    }
}

/// Whether this CPU's area is set up (r13 and SPRG0 point at it).
///
/// Relaxed: the boot CPU stores READY after setting up its own area, in
/// its program order, and every other CPU starts (through the firmware,
/// which orders everything before it) after that, with its area set up
/// before its first Rust code; so a CPU that reads true has its area ready.
/// (An acquire would be ld; cmpd; bne; isync on every interrupts-off
/// section and index lookup, and under TCG the isync ends the block.)
pub fn ready() -> bool {
    READY.load(Ordering::Relaxed)
}

/// This CPU's index, or 0 before per-CPU data exists (for fatal reports).
pub fn index() -> u64 {
    if ready() {
        this().index.load(Ordering::Relaxed)
    } else {
        0
    }
}

pub fn this() -> &'static PerCpu {
    let value: u64;
    // SAFETY: r13 was pointed at this CPU's static PerCpu by init_boot_cpu or
    // init_secondary before anything calls this, and nothing changes it:
    // interrupt entry and the firmware trampoline restore it on the way out.
    unsafe {
        core::arch::asm!("mr {0}, 13", out(reg) value, options(nomem, nostack, preserves_flags));
        &*(value as *const PerCpu)
    }
}

/// CPUs running kernel code.
pub fn online_count() -> usize {
    ONLINE.len(Ordering::Acquire)
}
