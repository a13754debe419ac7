//! Fatal errors: panics and unexpected interrupts. Each prints what happened
//! (a `FATAL:` line, registers, a symbolised backtrace), a failing summary
//! line, and powers the machine off: the platform's power-off exits QEMU with 0,
//! so the console is the status.

use core::arch::asm;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::console;
use kernel::ktest::SUMMARY;

use crate::ksyms::Sym;
use crate::trap::{self, vector_name, TrapFrame};
use crate::{cpu, percpu, platform};

/// Set when a fatal report starts; a second fatal error (inside the report)
/// goes straight to power-off.
static IN_FATAL: AtomicBool = AtomicBool::new(false);

/// Highest physical address the backtrace may read (the real-mode limit
/// while translation is off).
static READABLE_LIMIT: AtomicU64 = AtomicU64::new(0);

pub fn set_readable_limit(limit: u64) {
    READABLE_LIMIT.store(limit, Ordering::Relaxed);
}

macro_rules! report {
    ($($arg:tt)*) => { console::write_fmt_unlocked(format_args!($($arg)*)) };
}

fn enter_fatal() {
    if IN_FATAL.swap(true, Ordering::SeqCst) {
        report!("\nFATAL: second fatal error while reporting the first\n");
        finish_failed();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    enter_fatal();
    match info.location() {
        Some(location) => report!(
            "\nFATAL: panic at {}:{}:{}: {}\n",
            location.file(),
            location.line(),
            location.column(),
            info.message()
        ),
        None => report!("\nFATAL: panic: {}\n", info.message()),
    }
    report!("  on CPU {} (PIR {})\n", percpu::index(), cpu::pir());
    backtrace(stack_pointer(), None);
    finish_failed()
}

pub fn unexpected_exception(frame: &TrapFrame) -> ! {
    enter_fatal();
    report!(
        "\nFATAL: exception {:#x} ({}) at {:#018x} {}\n",
        frame.vector,
        vector_name(frame.vector),
        frame.srr0,
        Sym(frame.srr0)
    );
    if frame.vector == trap::vector::DATA_STORAGE {
        report!(
            "  faulting data address {:#018x} {} ({})\n",
            frame.dar,
            Sym(frame.dar),
            trap::describe_dsisr(frame.dsisr)
        );
    }
    report!("  on CPU {} (PIR {})\n", percpu::index(), cpu::pir());
    report!("{}", frame);
    report!("  LR {}\n", Sym(frame.lr));
    backtrace(frame.gpr[1], Some(frame.srr0));
    finish_failed()
}

/// Walks the ELFv2 back chain from `sp`, calling `visit` with each return
/// address: each frame's first doubleword points at the caller's frame, whose
/// doubleword at +16 holds the return address the callee saved there. Stops at
/// a null or non-increasing back chain, an unreadable frame, or 32 frames.
pub fn walk_stack(sp: u64, mut visit: impl FnMut(u64)) {
    let limit = READABLE_LIMIT.load(Ordering::Relaxed);
    let readable = |address: u64| {
        let physical = address & !kernel::mm::LINEAR_MAP_BASE;
        address.is_multiple_of(8) && physical >= trap::VECTOR_AREA_END && physical + 24 <= limit
    };
    let mut frame = sp;
    for _ in 0..32 {
        if !readable(frame) {
            break;
        }
        // SAFETY: `frame` is aligned and inside readable RAM (checked above).
        let caller = unsafe { (frame as *const u64).read_volatile() };
        if caller <= frame || !readable(caller) {
            break;
        }
        // SAFETY: as above, for the caller's frame.
        let return_address = unsafe { ((caller + 16) as *const u64).read_volatile() };
        if return_address == 0 {
            break;
        }
        visit(return_address);
        frame = caller;
    }
}

fn backtrace(sp: u64, faulting_pc: Option<u64>) {
    write_backtrace(&mut Unlocked, sp, faulting_pc);
}

/// Writes `Call trace:` and one symbolised line per frame to `out`: the
/// interrupted instruction first, if there is one, then the return
/// addresses of the back chain from `sp`.
pub fn write_backtrace(out: &mut dyn Write, sp: u64, faulting_pc: Option<u64>) {
    let _ = writeln!(out, "Call trace:");
    let mut depth = 0;
    let mut line = |address: u64| {
        let _ = writeln!(out, " [{depth}] {address:#018x} {}", Sym(address));
        depth += 1;
    };
    if let Some(pc) = faulting_pc {
        line(pc);
    }
    walk_stack(sp, line);
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: copies r1.
    unsafe { asm!("mr {0}, 1", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Prints the failing summary line and powers off.
pub fn finish_failed() -> ! {
    SUMMARY.record_failure();
    let _ = SUMMARY.write(&mut Unlocked);
    power_off()
}

pub fn power_off() -> ! {
    report!("Powering off.\n");
    match platform::try_machine() {
        Some(machine) => report!("cannot power off: {}; halting\n", machine.power_off()),
        None => report!("cannot power off: no platform yet; halting\n"),
    }
    cpu::halt()
}

/// The console without its lock, as a `fmt::Write`.
struct Unlocked;

impl Write for Unlocked {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        console::write_fmt_unlocked(format_args!("{text}"));
        Ok(())
    }
}
