//! Processes: an address space (`UserMm`) and one thread that runs a user
//! program in problem state (MSR[PR] = 1), entered with `rfid` and back in
//! the kernel on every interrupt and system call. The program's pages are
//! the address space's anonymous memory, marked for user access (radix:
//! no privileged bit; hash: user segments with Ks = Kp = 1 and PP 010/011),
//! so the same tree, faults and THP code serve user accesses.
//!
//! The thread's kernel side (`user_main`) enters user mode through
//! `user_run` (asm/switch.s), which saves its kernel context; the process
//! ends through `user_exit`, from the system call `exit` or from a fault
//! that kills it, which returns from `user_run` on that thread's kernel
//! stack and lets `user_main` return, so the thread ends as kernel threads
//! do and its stack, its address space and every frame go back.
//!
//! System calls follow Linux's conventions on ppc64 and Linux's numbers:
//! r0 the number, r3..r8 the arguments, r3 the result; an error as a
//! positive errno in r3 with CR0[SO] set after `sc`, as -errno after
//! `scv 0` (ISA 3.0 and later). Other `scv` levels kill the process.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::mm::collapse::Outcome;
use kernel::mm::jitter::Jitter;
use kernel::mm::pagetable::Prot;
use kernel::mm::vm::{MmArch, RaceSettings, VmError};
use kernel::mm::{self, Frame, FRAME_SIZE};
use spin::Mutex;

use crate::sched::{self, Thread};
use crate::trap::{dsisr, vector, FaultAction, TrapFrame};
use crate::vm::{self, UserMm};
use crate::{cpu, mmu};

core::arch::global_asm!(include_str!("asm/user.s"));

extern "C" {
    fn user_run(kernel: *mut KernelContext, user: *const TrapFrame, entry_sp: *const AtomicU64) -> u64;
    fn user_exit(kernel: *const KernelContext, value: u64) -> !;
    fn copy_user_bytes(to: *mut u8, from: *const u8, len: u64) -> u64;
}

/// What `user_run` saves (the layout of sched.rs's Context: LR, r1, r2, CR,
/// r14..r31).
#[repr(C)]
struct KernelContext([u64; 22]);

/// Where a program's code goes, and its stack.
pub const USER_TEXT: u64 = 0x1000_0000;
pub const USER_STACK_TOP: u64 = 0x7fff_0000_0000;
const USER_STACK_BYTES: u64 = 4 * FRAME_SIZE;
/// Where `mmap` without MAP_FIXED places regions: upwards from here, each
/// 2 MiB-aligned (so that THP can back them).
const MMAP_BASE: u64 = 0x2000_0000_0000;
/// The first address beyond user space: the 52 bits both MMUs translate
/// below the kernel's quadrant.
pub const USER_END: u64 = 1 << 52;
/// The first region `mmap` places without MAP_FIXED.
pub const FIRST_MMAP: u64 = MMAP_BASE;
const HUGE_BYTES: u64 = 2 << 20;

/// Linux's ppc64 system call numbers (arch/powerpc/kernel/syscalls/syscall.tbl).
pub mod nr {
    pub const EXIT: u64 = 1;
    pub const WRITE: u64 = 4;
    pub const GETPID: u64 = 20;
    pub const MMAP: u64 = 90;
    pub const MUNMAP: u64 = 91;
    pub const MPROTECT: u64 = 125;
    pub const SCHED_YIELD: u64 = 158;
    pub const MADVISE: u64 = 205;
    pub const EXIT_GROUP: u64 = 234;
    /// This kernel's own calls, above Linux's range. pin(addr, pages,
    /// write): pins a user range as vmsplice or O_DIRECT would (GUP-fast,
    /// falling back to GUP-slow) and holds it; returns a handle.
    pub const PIN: u64 = 0x1001;
    /// unpin(handle): drops a held pin.
    pub const UNPIN: u64 = 0x1002;
    /// pin_read(handle, page, offset): the doubleword at `offset` of the
    /// `page`th pinned page, read through the kernel's own mapping (what a
    /// device doing DMA to the pinned page would see).
    pub const PIN_READ: u64 = 0x1003;
}

/// Linux's errno values (include/uapi/asm-generic/errno-base.h, errno.h).
pub mod errno {
    pub const EBADF: u64 = 9;
    pub const ENOMEM: u64 = 12;
    pub const EFAULT: u64 = 14;
    pub const EEXIST: u64 = 17;
    pub const EINVAL: u64 = 22;
    pub const ENOSYS: u64 = 38;
}

/// mmap/mprotect/madvise arguments (Linux's values).
mod flags {
    pub const PROT_READ: u64 = 1;
    pub const PROT_WRITE: u64 = 2;
    pub const PROT_EXEC: u64 = 4;
    pub const MAP_PRIVATE: u64 = 0x02;
    pub const MAP_FIXED: u64 = 0x10;
    pub const MAP_ANONYMOUS: u64 = 0x20;
    pub const MADV_HUGEPAGE: u64 = 14;
    pub const MADV_NOHUGEPAGE: u64 = 15;
    pub const MADV_COLLAPSE: u64 = 25;
}

/// CR0[SO] in the 32-bit CR image: how `sc` reports an error.
const CR0_SO: u64 = 0x1000_0000;

/// Whether every CPU lets problem state use `scv` (FSCR[SCV]; ISA 3.0 on).
static SCV: AtomicBool = AtomicBool::new(true);

/// Each CPU reports whether it enabled `scv` (cpu::enable_scv) at bring-up.
pub fn note_scv(enabled: bool) {
    if !enabled {
        SCV.store(false, Ordering::Relaxed);
    }
}

/// Whether processes may make system calls with `scv`.
pub fn scv_available() -> bool {
    SCV.load(Ordering::Relaxed)
}

/// A user program: position-independent code (asm/user.s) copied to
/// `USER_TEXT` and entered at its first byte.
#[derive(Clone, Copy)]
pub struct Program {
    pub name: &'static str,
    start: *const u8,
    end: *const u8,
}

// SAFETY: the pointers are to immutable bytes of the kernel image.
unsafe impl Sync for Program {}
// SAFETY: as above.
unsafe impl Send for Program {}

impl Program {
    #[allow(unsafe_code)]
    fn code(&self) -> &'static [u8] {
        // SAFETY: start..end delimit one program in the image's read-only data.
        unsafe { core::slice::from_raw_parts(self.start, self.end as usize - self.start as usize) }
    }
}

/// One row of asm/user.s's table of programs.
#[repr(C)]
struct TableEntry {
    name: *const core::ffi::c_char,
    start: *const u8,
    end: *const u8,
}

/// The table asm/user.s builds: every program of the image.
#[allow(unsafe_code)]
fn table() -> &'static [TableEntry] {
    extern "C" {
        static user_programs_table: [TableEntry; 0];
        static user_programs_table_end: [TableEntry; 0];
    }
    // SAFETY: the two symbols delimit an array of TableEntry (three
    // relocated addresses each) in the image's read-only data.
    unsafe {
        let start = user_programs_table.as_ptr();
        let len = (user_programs_table_end.as_ptr() as usize - start as usize) / core::mem::size_of::<TableEntry>();
        core::slice::from_raw_parts(start, len)
    }
}

/// Looks a user program up by name.
#[allow(unsafe_code)]
pub fn program(name: &str) -> Option<Program> {
    table().iter().find_map(|entry| {
        // SAFETY: each name is a NUL-terminated string of the image (.asciz).
        let found = unsafe { core::ffi::CStr::from_ptr(entry.name) }.to_str().ok()?;
        (found == name).then_some(Program { name: found, start: entry.start, end: entry.end })
    })
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(u64),
    /// Killed by the kernel: a fault its regions do not allow, an
    /// instruction it may not execute, or a request (`Process::kill`).
    Killed(Kill),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kill {
    /// The interrupt that killed it (0 for a request).
    pub vector: u64,
    /// The faulting address (DAR, or the instruction's for an ISI).
    pub address: u64,
    pub dsisr: u64,
    /// The user PC (SRR0).
    pub pc: u64,
}

pub struct Process {
    pub pid: u64,
    pub name: &'static str,
    pub mm: Arc<UserMm>,
    exit: spin::Once<Exit>,
    kill_requested: AtomicBool,
    /// What the process wrote to fds 1 and 2 (also echoed to the console).
    output: Mutex<String>,
    /// Where `mmap` places the next region.
    mmap_next: AtomicU64,
    /// System calls made, and interrupts of any kind that returned to user mode.
    pub syscalls: AtomicU64,
    pub user_interrupts: AtomicU64,
    thread: Mutex<Option<Arc<Thread>>>,
    /// Pins the process holds (`nr::PIN`), by handle.
    pins: Mutex<Vec<Option<Vec<Frame>>>>,
    /// Test-only: the knobs and the widening the process's pin calls use.
    pin_race: Option<PinRace>,
}

/// How a process's pin calls run GUP-fast in a race test: with these
/// knobs, and each call's race points widened (`kernel::mm::jitter`).
#[derive(Clone, Copy, Debug)]
pub struct PinRace {
    pub settings: RaceSettings,
    pub seed: u64,
    pub jitter_ticks: u64,
}

/// The most pages one pin call takes (one PMD's worth).
const MAX_PIN_PAGES: u64 = 32;

/// A process's thread as its kernel side sees it: what `current_user`
/// points at while it runs.
struct UserThread {
    process: Arc<Process>,
    kernel: UnsafeCell<KernelContext>,
    /// The arguments the program finds in r3..r5.
    arguments: [u64; 3],
}

// SAFETY: `kernel` is written by user_run and read by user_exit, both on
// the process's own thread; the rest is immutable or Sync.
unsafe impl Sync for UserThread {}
// SAFETY: as above; the thread's creator only builds it and hands it over.
unsafe impl Send for UserThread {}

static NEXT_PID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
// The error inside is for reports, which show it through Debug.
#[allow(dead_code)]
pub enum SpawnError {
    Vm(VmError),
    /// The CPU is not online, or no memory for the thread.
    Thread,
}

/// Starts `program` as a new process whose thread runs on CPU `cpu`, with
/// `arguments` in r3..r5.
pub fn spawn(program: &Program, cpu: usize, arguments: [u64; 3]) -> Result<Arc<Process>, SpawnError> {
    spawn_racing(program, cpu, arguments, None)
}

/// `spawn`, with the process's pin calls set up for a race test.
pub fn spawn_racing(
    program: &Program,
    cpu: usize,
    arguments: [u64; 3],
    pin_race: Option<PinRace>,
) -> Result<Arc<Process>, SpawnError> {
    let mm = vm::new_mm().map_err(|e| SpawnError::Vm(map_error(e)))?;
    load(&mm, program).map_err(SpawnError::Vm)?;
    mm.map(USER_STACK_TOP - USER_STACK_BYTES, USER_STACK_BYTES, Prot::READ | Prot::WRITE, false)
        .map_err(SpawnError::Vm)?;
    let process = Arc::new(Process {
        pid: NEXT_PID.fetch_add(1, Ordering::Relaxed),
        name: program.name,
        mm: mm.clone(),
        exit: spin::Once::new(),
        kill_requested: AtomicBool::new(false),
        output: Mutex::new(String::new()),
        mmap_next: AtomicU64::new(MMAP_BASE),
        syscalls: AtomicU64::new(0),
        user_interrupts: AtomicU64::new(0),
        thread: Mutex::new(None),
        pins: Mutex::new(Vec::new()),
        pin_race,
    });
    let user =
        Arc::new(UserThread { process: process.clone(), kernel: UnsafeCell::new(KernelContext([0; 22])), arguments });
    let raw = Arc::into_raw(user) as u64;
    let space = mm.with_arch(|arch| arch.space().id());
    match sched::spawn_for(cpu, program.name, user_main, raw, Some(space), raw) {
        Some(thread) => {
            *process.thread.lock() = Some(thread);
            Ok(process)
        }
        None => {
            // SAFETY: the thread was not created: the reference is still ours.
            #[allow(unsafe_code)]
            drop(unsafe { Arc::from_raw(raw as *const UserThread) });
            Err(SpawnError::Thread)
        }
    }
}

fn map_error(_: kernel::mm::pagetable::MapError) -> VmError {
    VmError::NoMemory
}

/// Copies the program into a fresh text region: mapped writable, faulted
/// in, filled through the linear map, then made read-only and executable.
#[allow(unsafe_code)]
fn load(mm: &UserMm, program: &Program) -> Result<(), VmError> {
    let code = program.code();
    let len = (code.len() as u64).div_ceil(FRAME_SIZE).max(1) * FRAME_SIZE;
    mm.map(USER_TEXT, len, Prot::READ | Prot::WRITE, false)?;
    for (i, chunk) in code.chunks(FRAME_SIZE as usize).enumerate() {
        let address = USER_TEXT + i as u64 * FRAME_SIZE;
        mm.fault(address, true)?;
        let physical =
            mm.with_arch(|arch| arch.tree().translate(address)).map(|t| t.physical).ok_or(VmError::NoRegion)?;
        let to = mm::phys_to_virt(physical);
        // SAFETY: the frame was just mapped for this region and nothing runs
        // in the address space yet.
        unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), to, chunk.len()) };
        // The smallest block size POWER has: correct for any larger one.
        cpu::sync_icache(to as usize, chunk.len(), 32, 32);
    }
    mm.protect(USER_TEXT, len, Prot::READ | Prot::EXECUTE)
}

/// The MSR of user mode: 64-bit, the kernel's endianness and machine
/// checks (and HV on bare metal, Linux's MSR_USER64), problem state with
/// translation and interrupts on. No FP or vector: using them is fatal for
/// the process (the kernel saves no such state).
fn user_msr() -> u64 {
    use cpu::msr;
    (cpu::msr() & (msr::SF | msr::HV | msr::ME | msr::LE)) | msr::PR | msr::EE | msr::IR | msr::DR | msr::RI
}

/// The kernel side of a process's thread.
#[allow(unsafe_code)]
fn user_main(raw: u64) {
    // SAFETY: spawn leaked one reference for this thread.
    let user = unsafe { Arc::from_raw(raw as *const UserThread) };
    let mut gpr = [0; 32];
    // An ELFv2 stack: 16-byte aligned, a null back chain, room for a frame header.
    gpr[1] = USER_STACK_TOP - 64;
    gpr[3..6].copy_from_slice(&user.arguments);
    gpr[12] = USER_TEXT; // the entry address, as ELFv2 global entry points expect
    let frame = TrapFrame { gpr, srr0: USER_TEXT, srr1: user_msr(), ..TrapFrame::default() };
    let entry_sp = sched::with_current(|thread| &thread.user_entry_sp as *const AtomicU64)
        .expect("a process's thread is a thread");
    crate::percpu::disable_interrupts();
    // SAFETY: interrupts are off; the context is this thread's, and user_exit
    // comes back to it only on this thread's stack.
    unsafe { user_run(user.kernel.get(), &frame, entry_sp) };
    cpu::enable_interrupts();
    // Whoever ended the process recorded how (exit or kill).
    let process = &user.process;
    // A process's pins end with it.
    for frames in core::mem::take(&mut *process.pins.lock()).into_iter().flatten() {
        for frame in frames {
            process.mm.unpin(frame);
        }
    }
    if process.exit.get().is_none() {
        process.exit.call_once(|| Exit::Killed(Kill { vector: 0, address: 0, dsisr: 0, pc: 0 }));
    }
    kernel::debug!("process {} ({}) ended: {:?}", process.pid, process.name, process.exit.get());
}

impl Process {
    /// How the process ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        self.exit.get().copied()
    }

    pub fn output(&self) -> String {
        self.output.lock().clone()
    }

    /// Asks the process to end: it is killed the next time it enters the
    /// kernel (at the latest its next tick).
    pub fn kill(&self) {
        self.kill_requested.store(true, Ordering::Release);
    }

    /// Waits for the thread to end (then its stack is freed), at most
    /// `timeout_us`; the exit, or `None` if it is still running.
    pub fn wait(&self, timeout_us: u64) -> Option<Exit> {
        let thread = self.thread.lock().take()?;
        if !thread.clone().join(timeout_us) {
            *self.thread.lock() = Some(thread);
            return None;
        }
        self.exit()
    }
}

// --- From user mode -----------------------------------------------------------

/// The running process's thread, if this CPU runs one.
#[allow(unsafe_code)]
fn current() -> Option<&'static UserThread> {
    let raw = sched::current_user();
    // SAFETY: the pointer is the UserThread user_main holds for as long as the
    // thread runs, and only the thread itself (this code) uses it.
    (raw != 0).then(|| unsafe { &*(raw as *const UserThread) })
}

/// Ends the current process with `exit`: back to `user_run` on its kernel
/// stack. Nothing between here and the interrupt is unwound: the caller
/// holds no lock and owns nothing that must be dropped.
#[allow(unsafe_code)]
fn end(user: &UserThread, exit: Exit) -> ! {
    user.process.exit.call_once(|| exit);
    // SAFETY: the context user_run saved on this thread, which is running.
    unsafe { user_exit(user.kernel.get(), 0) }
}

/// Every interrupt from problem state, except IPIs, the tick and the NMI
/// (which exception_dispatch handles as from the kernel): system calls,
/// faults for the address space, and anything else, which kills the
/// process with a report.
pub fn interrupt_from_user(frame: &mut TrapFrame) {
    let Some(user) = current() else {
        crate::fatal::unexpected_exception(frame);
    };
    if frame.vector == vector::SYSTEM_CALL || frame.vector == vector::SYSTEM_CALL_VECTORED {
        user.process.syscalls.fetch_add(1, Ordering::Relaxed);
        return syscall(user, frame);
    }
    let action = mmu::handle_fault(frame);
    // Off again before the checks on the way back to problem state (a kill
    // request, the accounting), which must not be interrupted halfway.
    cpu::disable_interrupts();
    if action == FaultAction::Retry {
        return;
    }
    kill_for(user, frame)
}

/// Before an interrupt returns to problem state: a process asked to end
/// ends here.
pub fn returning_to_user(frame: &TrapFrame) {
    if let Some(user) = current() {
        user.process.user_interrupts.fetch_add(1, Ordering::Relaxed);
        if user.process.kill_requested.load(Ordering::Acquire) {
            end(user, Exit::Killed(Kill { vector: 0, address: 0, dsisr: 0, pc: frame.srr0 }));
        }
    }
}

/// Reports why the process dies, then ends it.
fn kill_for(user: &UserThread, frame: &TrapFrame) -> ! {
    let address = frame.fault_address();
    let access = match frame.vector {
        vector::DATA_STORAGE | vector::DATA_SEGMENT => alloc::format!(
            "{} at {address:#x} (DSISR {:#x})",
            if frame.dsisr & dsisr::STORE != 0 { "store" } else { "load" },
            frame.dsisr
        ),
        vector::INSTRUCTION_STORAGE | vector::INSTRUCTION_SEGMENT => {
            alloc::format!("instruction fetch at {address:#x} (SRR1 {:#x})", frame.srr1)
        }
        _ => alloc::format!("(SRR1 {:#x})", frame.srr1),
    };
    kernel::println!(
        "# process {} ({}) killed on CPU {}: {} interrupt ({:#x}), {access}, user PC {:#x}",
        user.process.pid,
        user.process.name,
        crate::percpu::index(),
        crate::trap::vector_name(frame.vector),
        frame.vector,
        frame.srr0
    );
    // end() does not return: what is still owned here must go first.
    drop(access);
    let dsisr = if matches!(frame.vector, vector::DATA_STORAGE | vector::DATA_SEGMENT) { frame.dsisr } else { 0 };
    end(user, Exit::Killed(Kill { vector: frame.vector, address, dsisr, pc: frame.srr0 }))
}

fn syscall(user: &UserThread, frame: &mut TrapFrame) {
    let [a0, a1, a2, a3, _a4, _a5] =
        [frame.gpr[3], frame.gpr[4], frame.gpr[5], frame.gpr[6], frame.gpr[7], frame.gpr[8]];
    let process = &user.process;
    let result = match frame.gpr[0] {
        nr::EXIT | nr::EXIT_GROUP => end(user, Exit::Code(a0)),
        nr::WRITE => write(process, a0, a1, a2),
        nr::GETPID => Ok(process.pid),
        nr::SCHED_YIELD => {
            // In the handler, interrupts are off: switch as the tick does.
            sched::schedule();
            Ok(0)
        }
        nr::MMAP => mmap(process, a0, a1, a2, a3),
        nr::MUNMAP => user_range(a0, a1).and_then(|()| process.mm.unmap(a0, a1).map_err(vm_errno)).map(|()| 0),
        nr::MPROTECT => user_range(a0, a1)
            .and_then(|()| prot_of(a2))
            .and_then(|prot| process.mm.protect(a0, a1, prot).map_err(vm_errno))
            .map(|()| 0),
        nr::MADVISE => madvise(process, a0, a1, a2),
        nr::PIN => pin(process, a0, a1, a2 != 0),
        nr::UNPIN => unpin(process, a0),
        nr::PIN_READ => pin_read(process, a0, a1, a2),
        _ => Err(errno::ENOSYS),
    };
    match result {
        // scv: the value, or -errno (Linux's scv convention: no CR0[SO]).
        Ok(value) if frame.vector == vector::SYSTEM_CALL_VECTORED => frame.gpr[3] = value,
        Err(errno) if frame.vector == vector::SYSTEM_CALL_VECTORED => frame.gpr[3] = errno.wrapping_neg(),
        Ok(value) => {
            frame.gpr[3] = value;
            frame.cr &= !CR0_SO;
        }
        Err(errno) => {
            frame.gpr[3] = errno;
            frame.cr |= CR0_SO;
        }
    }
}

/// `[start, start + len)` is a non-empty, 64 KiB-aligned range of user space.
fn user_range(start: u64, len: u64) -> Result<(), u64> {
    let end = start.checked_add(len).ok_or(errno::EINVAL)?;
    if len == 0 || !start.is_multiple_of(FRAME_SIZE) || !len.is_multiple_of(FRAME_SIZE) || end > USER_END {
        return Err(errno::EINVAL);
    }
    Ok(())
}

fn vm_errno(error: VmError) -> u64 {
    match error {
        VmError::BadRange => errno::EINVAL,
        VmError::Overlaps => errno::EEXIST,
        VmError::NoRegion => errno::ENOMEM,
        VmError::Protection => errno::EFAULT,
        VmError::NoMemory => errno::ENOMEM,
    }
}

fn prot_of(bits: u64) -> Result<Prot, u64> {
    use flags::*;
    if bits & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(errno::EINVAL);
    }
    let mut prot = Prot::empty();
    for (bit, p) in [(PROT_READ, Prot::READ), (PROT_WRITE, Prot::WRITE), (PROT_EXEC, Prot::EXECUTE)] {
        if bits & bit != 0 {
            prot |= p;
        }
    }
    Ok(prot)
}

/// Runs `f`, from a system call's handler (interrupts off), with interrupts
/// on, as the process had them: for work that may wait for the mmap lock,
/// whose holder may be waiting for this CPU to answer an IPI (as the fault
/// handler does, mmu::handle_fault).
fn with_interrupts_on<R>(f: impl FnOnce() -> R) -> R {
    cpu::enable_interrupts();
    let result = f();
    crate::percpu::disable_interrupts();
    result
}

/// write(fd, buf, len) to fd 1 or 2: the console (each line prefixed with
/// the pid, as a KTAP comment) and the process's output.
fn write(process: &Process, fd: u64, buf: u64, len: u64) -> Result<u64, u64> {
    if fd != 1 && fd != 2 {
        return Err(errno::EBADF);
    }
    let mut bytes = Vec::new();
    copy_from_user(&mut bytes, buf, len)?;
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        kernel::println!("# [pid {}] {line}", process.pid);
    }
    process.output.lock().push_str(&text);
    Ok(len)
}

/// The longest write, as Linux caps one at MAX_RW_COUNT (here far smaller:
/// the bytes are copied into the kernel heap).
const MAX_WRITE: u64 = 64 << 10;

/// Copies `len` bytes of user memory at `from` into `to`. `EFAULT` for a
/// range outside user space, or one a fault stops (the pages are faulted
/// in as for the process itself: the copy runs with the process's space
/// active).
#[allow(unsafe_code)]
pub fn copy_from_user(to: &mut Vec<u8>, from: u64, len: u64) -> Result<(), u64> {
    let end = from.checked_add(len).ok_or(errno::EFAULT)?;
    if end > USER_END || len > MAX_WRITE {
        return Err(errno::EFAULT);
    }
    to.resize(len as usize, 0);
    // The fault resolver may sleep on the mmap lock.
    let left = with_interrupts_on(|| {
        // SAFETY: `to` has len bytes; the user range is below USER_END, and a
        // fault on it is fixed up by copy_user_bytes's exception-table entries.
        unsafe { copy_user_bytes(to.as_mut_ptr(), from as *const u8, len) }
    });
    if left != 0 {
        return Err(errno::EFAULT);
    }
    Ok(())
}

/// mmap(addr, len, prot, flags): anonymous private memory only.
fn mmap(process: &Process, addr: u64, len: u64, prot: u64, map_flags: u64) -> Result<u64, u64> {
    use flags::*;
    if map_flags & (MAP_ANONYMOUS | MAP_PRIVATE) != (MAP_ANONYMOUS | MAP_PRIVATE)
        || map_flags & !(MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED) != 0
    {
        return Err(errno::EINVAL);
    }
    let prot = prot_of(prot)?;
    let len = len.checked_next_multiple_of(FRAME_SIZE).filter(|&l| l > 0).ok_or(errno::EINVAL)?;
    let start = if map_flags & MAP_FIXED != 0 {
        user_range(addr, len)?;
        addr
    } else {
        let reserve = len.checked_next_multiple_of(HUGE_BYTES).ok_or(errno::ENOMEM)?;
        // One thread per process: nothing else moves mmap_next meanwhile.
        let start = process.mmap_next.load(Ordering::Relaxed);
        let end = start.checked_add(reserve).filter(|&end| end <= USER_END).ok_or(errno::ENOMEM)?;
        process.mmap_next.store(end, Ordering::Relaxed);
        start
    };
    process.mm.map(start, len, prot, false).map_err(vm_errno)?;
    Ok(start)
}

/// madvise: MADV_HUGEPAGE / MADV_NOHUGEPAGE set whether the range takes
/// huge pages; MADV_COLLAPSE collapses each 2 MiB of it now.
fn madvise(process: &Process, start: u64, len: u64, advice: u64) -> Result<u64, u64> {
    use flags::*;
    user_range(start, len)?;
    match advice {
        MADV_HUGEPAGE | MADV_NOHUGEPAGE => {
            process.mm.set_huge(start, len, advice == MADV_HUGEPAGE).map_err(vm_errno)?;
        }
        MADV_COLLAPSE => {
            // Collapse waits for the mmap lock and may IPI.
            let outcomes = with_interrupts_on(|| process.mm.collapse_range(start, len));
            if outcomes.is_empty() || outcomes.iter().any(|(_, outcome)| !matches!(outcome, Outcome::Collapsed)) {
                return Err(errno::EINVAL);
            }
        }
        _ => return Err(errno::EINVAL),
    }
    Ok(0)
}

/// pin(addr, pages, write): GUP-fast for each page (as pin_user_pages_fast),
/// GUP-slow where it cannot; the pins are held until unpin or the end of
/// the process.
fn pin(process: &Process, start: u64, pages: u64, write: bool) -> Result<u64, u64> {
    if pages == 0 || pages > MAX_PIN_PAGES {
        return Err(errno::EINVAL);
    }
    user_range(start, pages * FRAME_SIZE)?;
    let mut frames = Vec::new();
    // GUP-slow waits for the mmap lock.
    let pinned = with_interrupts_on(|| match process.pin_race {
        Some(race) => {
            let calls = process.syscalls.load(Ordering::Relaxed);
            let jitter = Jitter::new(race.seed, calls, race.jitter_ticks, cpu::timebase);
            (0..pages).try_for_each(|i| {
                let address = start + i * FRAME_SIZE;
                match process.mm.pin_page_fast_with(address, write, race.settings, &jitter) {
                    Ok(frame) => {
                        frames.push(frame);
                        Ok(())
                    }
                    Err(_) => process.mm.pin_pages(address, 1, write, &mut frames).map_err(drop),
                }
            })
        }
        None => process.mm.pin_pages_fast(start, pages as usize, write, &mut frames).map(drop).map_err(drop),
    });
    if pinned.is_err() {
        for frame in frames {
            process.mm.unpin(frame);
        }
        return Err(errno::EFAULT);
    }
    let mut pins = process.pins.lock();
    let handle = match pins.iter().position(Option::is_none) {
        Some(free) => free,
        None => {
            pins.push(None);
            pins.len() - 1
        }
    };
    pins[handle] = Some(frames);
    Ok(handle as u64)
}

fn unpin(process: &Process, handle: u64) -> Result<u64, u64> {
    let frames = process.pins.lock().get_mut(handle as usize).and_then(Option::take).ok_or(errno::EINVAL)?;
    for frame in frames {
        process.mm.unpin(frame);
    }
    Ok(0)
}

/// pin_read(handle, page, offset): what the pinned page holds at `offset`.
#[allow(unsafe_code)]
fn pin_read(process: &Process, handle: u64, page: u64, offset: u64) -> Result<u64, u64> {
    if !offset.is_multiple_of(8) || offset > FRAME_SIZE - 8 {
        return Err(errno::EINVAL);
    }
    let pins = process.pins.lock();
    let frame = pins
        .get(handle as usize)
        .and_then(Option::as_ref)
        .and_then(|frames| frames.get(page as usize))
        .ok_or(errno::EINVAL)?;
    // SAFETY: a frame this process holds pinned, through the linear map.
    Ok(unsafe { (mm::phys_to_virt(frame.address() + offset) as *const u64).read_volatile() })
}
