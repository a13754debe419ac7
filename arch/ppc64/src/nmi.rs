//! The system reset interrupt (0x100) as "dump every CPU".
//!
//! Nothing in the kernel sends one: it comes from outside, as the harness's
//! NMI (QMP `inject-nmi`) when a boot runs past its deadline, and QEMU
//! delivers it to every CPU of the machine, pseries and powernv alike. It
//! is not maskable, so it reaches a CPU that spins with MSR[EE] off, which
//! is how a lost IPI or a stuck grace period shows itself. It always enters
//! in real mode (AIL does not apply) and saves state in SRR0/1, in
//! hypervisor state too.
//!
//! Each CPU that takes it reports its registers and backtrace, one CPU
//! after another in index order (`kernel::rollcall`: every wait there is
//! bounded, so a CPU that never takes the interrupt, or stops in the middle
//! of its report, holds nobody up for longer than `STALL_SECONDS`). The
//! console lock is not taken: the CPU that hung may hold it. Then one CPU
//! prints the failing summary line and powers the machine off. No CPU
//! resumes: the boot is over, and the interrupted state may not be
//! recoverable anyway (SRR1[RI], which each report names).

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use kernel::console;
use kernel::cpuset::CpuSet;
use kernel::rollcall::{Patience, RollCall, Turn};

use crate::cpu::{self, msr};
use crate::ksyms::Sym;
use crate::trap::{self, TrapFrame};
use crate::{fatal, percpu};

/// How long the CPUs wait, with nothing printed, for the CPU whose turn it
/// is before they go on without it. The harness reads the console for a
/// few seconds after its NMI: a report must fit in that with one CPU
/// missing.
const STALL_SECONDS: u64 = 1;

static ROLL: RollCall = RollCall::new();

/// CPUs in this handler: a second system reset on one of them is not a
/// second report.
static REPORTING: CpuSet = CpuSet::new();

fn patience() -> Patience {
    Patience { now: cpu::timebase, stall: STALL_SECONDS * kernel::time::frequency() }
}

/// The console without its lock, each write a sign of life for the roll
/// call (so that nobody talks over a CPU still printing).
struct Report<'a>(&'a Patience);

impl Write for Report<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        console::write_fmt_unlocked(format_args!("{text}"));
        ROLL.beat(self.0);
        Ok(())
    }
}

/// 0x100. Returns only for a second system reset that arrived while this
/// CPU was already reporting the first and left it recoverable.
pub fn system_reset(frame: &TrapFrame) {
    let me = percpu::index() as usize;
    let patience = patience();
    let mut out = Report(&patience);
    let recoverable = frame.srr1 & msr::RI != 0;
    if !REPORTING.insert(me, Ordering::AcqRel) {
        let _ = writeln!(out, "NMI: CPU {me}: another system reset while reporting the first; ignored");
        if recoverable {
            return;
        }
        cpu::halt()
    }
    let members = percpu::online();
    let mut passed_over = |cpu: usize| {
        console::write_fmt_unlocked(format_args!(
            "\nNMI: CPU {cpu} did not report within {STALL_SECONDS} s; going on without it\n"
        ));
    };
    let turn = ROLL.wait_turn(me, members, &patience, &mut passed_over);
    write_cpu_report(&mut out, me, turn, frame);
    ROLL.done(me, turn, members, &patience);
    if ROLL.finish(members, &patience, &mut passed_over) {
        let online = members.len(Ordering::Acquire);
        console::write_fmt_unlocked(format_args!("NMI: {} of {online} online CPUs reported\n", ROLL.reported()));
        fatal::finish_failed()
    }
    // The finisher powers the machine off; the others wait for it here,
    // interrupts off.
    cpu::halt()
}

fn write_cpu_report(out: &mut dyn Write, me: usize, turn: Turn, frame: &TrapFrame) {
    let late = if turn == Turn::Late { " (late: its turn had passed)" } else { "" };
    let _ = writeln!(out, "\nNMI: CPU {me} (PIR {}) at {:#018x} {}{late}", cpu::pir(), frame.srr0, Sym(frame.srr0));
    let _ = writeln!(out, "  system reset: {}", State(frame.srr1));
    if let Some((vector, _)) = trap::stub_at(frame.srr0 & !kernel::mm::LINEAR_MAP_BASE) {
        // The reset came as this CPU entered another interrupt, whose
        // SRR0/1 it overwrote: LR and the stack are still the code's.
        let _ = writeln!(
            out,
            "  (on entry to the {} interrupt ({vector:#x}): where that one was taken is lost; LR and the stack \
             below are the interrupted code's)",
            trap::vector_name(vector)
        );
    }
    let _ = write!(out, "{frame}");
    let _ = writeln!(out, "  LR {}", Sym(frame.lr));
    fatal::write_backtrace(out, frame.gpr[1], Some(frame.srr0));
}

/// What SRR1 says about the interrupted state: whether it could be resumed
/// (MSR[RI]: SRR0/1 of an interrupt being entered or left are lost),
/// whether it had interrupts on, and the reset's reason code.
struct State(u64);

/// SRR1[42:45]: after a wake from power saving (SRR1[46:47] non-zero) the
/// wake reason; otherwise implementation-specific (Power ISA v3.0B, Book
/// III, 7.5.1), and POWER9's for a reset sent over SCOM (a BMC's NMI, or
/// QEMU's on powernv) is 0b0010. QEMU's pseries NMI leaves it 0.
const REASON_SHIFT: u32 = 63 - 45;
const REASON_MASK: u64 = 0xf;
const WAKE_SHIFT: u32 = 63 - 47;
const WAKE_MASK: u64 = 0x3;
const REASON_SCOM: u64 = 0b0010;

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recoverable =
            if self.0 & msr::RI != 0 { "recoverable (SRR1[RI]=1)" } else { "not recoverable (SRR1[RI]=0)" };
        let interrupts = if self.0 & msr::EE != 0 { "on" } else { "off" };
        write!(f, "{recoverable}, interrupts were {interrupts}")?;
        let reason = (self.0 >> REASON_SHIFT) & REASON_MASK;
        if (self.0 >> WAKE_SHIFT) & WAKE_MASK != 0 {
            write!(f, ", woke it from power saving (SRR1[42:45]={reason:#06b})")?;
        } else if reason == REASON_SCOM {
            write!(f, ", sent over SCOM (SRR1[42:45]={reason:#06b})")?;
        } else if reason != 0 {
            write!(f, ", SRR1[42:45]={reason:#06b}")?;
        }
        write!(f, "; not resumed: the boot is over")
    }
}
