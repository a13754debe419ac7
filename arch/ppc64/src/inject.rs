//! `inject=`: deliberate failures after the self-tests, so that the harness
//! can prove that each kind of failure is reported and judged as one.

use alloc::vec::Vec;
use core::arch::asm;

use kernel::cmdline::Inject;
use kernel::ktest::{Env, Failure, Test, TestResult};

/// The self-test `inject=notok` adds: it fails, on purpose.
pub static NOT_OK_TEST: Test = Test { name: "deliberate_failure", run: deliberate_failure };

fn deliberate_failure(_: &Env<'_>) -> TestResult {
    Err(Failure::Fail(alloc::string::String::from("inject=notok: this test fails on purpose")))
}

pub fn fail(inject: Inject) {
    kernel::println!("# inject={}: failing on purpose", inject.name());
    match inject {
        Inject::Panic => panic!("inject=panic: deliberate panic"),
        Inject::Hang => hang_with_interrupts_off(),
        Inject::Program => raise_program_check(),
        Inject::Illegal => execute_illegal_instruction(),
        Inject::OutOfMemory => exhaust_heap(),
        Inject::Alignment => misaligned_atomic_load(),
        Inject::Unmapped => load_unmapped_kernel_address(),
        Inject::GuestError => plant_guest_error(),
        Inject::YieldIrqsOff => yield_with_interrupts_off(),
        Inject::NotOk => {}
    }
}

#[inline(never)]
fn hang_with_interrupts_off() -> ! {
    crate::cpu::halt()
}

/// A trap with no exception-table entry: an unexpected program interrupt.
#[inline(never)]
fn raise_program_check() {
    // SAFETY: `trap` raises a program interrupt, which the fatal path reports.
    unsafe { asm!("trap", options(nomem, nostack)) };
}

/// Primary opcode 0 is no instruction (Power ISA Book I, appendix
/// "illegal instructions"): in hypervisor state the hypervisor emulation
/// assistance interrupt takes it, with HSRR0/1.
#[inline(never)]
fn execute_illegal_instruction() {
    // SAFETY: raises an interrupt the fatal path reports.
    unsafe { asm!(".long 0", options(nomem, nostack)) };
}

#[inline(never)]
fn exhaust_heap() {
    let size = kernel::mm::heap::HEAP.stats().size * 2;
    let mut too_big: Vec<u8> = Vec::new();
    too_big.reserve_exact(size);
    too_big.push(1);
    core::hint::black_box(&too_big);
}

/// A kernel-quadrant address beyond the linear map: with radix on, a data
/// storage interrupt with no translation.
#[inline(never)]
fn load_unmapped_kernel_address() {
    let address = core::hint::black_box(kernel::mm::LINEAR_MAP_BASE | 0x000f_0000_0000_0000) as *const u64;
    // SAFETY: deliberately invalid; the fault is reported by the fatal path.
    let value = unsafe { address.read_volatile() };
    core::hint::black_box(value);
}

/// `lwarx` needs a word-aligned address (Power ISA Book II, 4.6.2); without
/// a fix-up the alignment interrupt is unexpected.
#[inline(never)]
fn misaligned_atomic_load() {
    let word = [0u64; 2];
    let address = core::hint::black_box(word.as_ptr() as u64 + 2);
    let value: u64;
    // SAFETY: the load raises an alignment interrupt, reported by the fatal path.
    unsafe { asm!("lwarx {0}, 0, {1}", out(reg) value, in(reg) address, options(nostack)) };
    core::hint::black_box(value);
}

/// A thread switch inside a read-side section: must be refused.
#[inline(never)]
fn yield_with_interrupts_off() {
    crate::percpu::disable_interrupts();
    crate::sched::yield_now();
}

/// Does what QEMU reports under `-d guest_errors,unimp` and survives, the
/// boot going on to a passing summary: under radix the very mistake the
/// judge was made for, a process-scoped `tlbie` by address naming a kernel
/// (quadrant 3) address, which QEMU answers by dropping every translation;
/// otherwise a platform call that does not exist.
#[inline(never)]
fn plant_guest_error() {
    if crate::mmu::mode() == crate::mmu::Mode::Radix {
        let address = core::hint::black_box(kernel::mm::LINEAR_MAP_BASE);
        // RB = EPN | IS 0 (by address) | AP 5 (64K), as radix.rs encodes it.
        let rb = address | (5 << 5);
        let rs = 0u64;
        // SAFETY: a TLB invalidation only drops cached translations (QEMU
        // drops all of them); the barriers are the ones every tlbie needs.
        unsafe {
            asm!("ptesync", "tlbie {0}, {1}, 0, 1, 1", "eieio", "tlbsync", "ptesync", in(reg) rb, in(reg) rs, options(nostack))
        };
        kernel::println!("# inject=guest_error: tlbie of kernel address {address:#x} by address (quadrant 3)");
    } else {
        let what = crate::platform::pseries::plant_guest_error();
        kernel::println!("# inject=guest_error: {what}");
    }
}
