//! OPAL, skiboot's runtime services (skiboot `doc/opal-api`, `include/opal-api.h`;
//! Linux's `arch/powerpc/platforms/powernv/opal-call.c`): the one table of
//! the calls the kernel makes and the one way in (`opal_call_be` in
//! asm/entry.s: hypervisor real mode, big-endian, r2 = OPAL base).
//!
//! OPAL takes real addresses; the kernel's pointers are linear-map
//! addresses, whose top nibble OPAL ignores, but every pointer passed here
//! is turned into its physical address anyway, so nothing depends on that.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::mm;

// The one table of OPAL calls the kernel makes (opal-api.h tokens).
pub const CONSOLE_WRITE: u64 = 1;
pub const CEC_POWER_DOWN: u64 = 5;
pub const POLL_EVENTS: u64 = 10;
pub const START_CPU: u64 = 41;
pub const QUERY_CPU_STATUS: u64 = 42;
pub const REINIT_CPUS: u64 = 70;
pub const CHECK_TOKEN: u64 = 80;

/// Return codes.
pub const SUCCESS: i64 = 0;
pub const PARAMETER: i64 = -1;
pub const BUSY: i64 = -2;
pub const UNSUPPORTED: i64 = -7;
pub const BUSY_EVENT: i64 = -12;
pub const WRONG_STATE: i64 = -14;

/// OPAL_REINIT_CPUS flags: interrupt endianness and the MMU every CPU runs.
pub const REINIT_HILE_LE: u64 = 2;
pub const REINIT_MMU_HASH: u64 = 4;
pub const REINIT_MMU_RADIX: u64 = 8;

/// OPAL_QUERY_CPU_STATUS states (opal-api.h `enum OpalThreadStatus`).
pub const THREAD_INACTIVE: u8 = 0;
pub const THREAD_STARTED: u8 = 1;

/// OPAL_CHECK_TOKEN's answer for an implemented call.
const TOKEN_PRESENT: i64 = 1;

/// The layout opal_call_be reads (asm/entry.s): token, r2, entry, r3..r10.
#[repr(C)]
struct OpalCall {
    token: u64,
    base: u64,
    entry: u64,
    args: [u64; 8],
}

extern "C" {
    fn opal_call_be(call: *const OpalCall) -> i64;
}

static BASE: AtomicU64 = AtomicU64::new(0);
static ENTRY: AtomicU64 = AtomicU64::new(0);

/// Records where OPAL is (skiboot's r8/r9 at entry; the device tree's
/// `/ibm,opal` says the same).
pub fn init(base: u64, entry: u64) {
    BASE.store(base, Ordering::Relaxed);
    ENTRY.store(entry, Ordering::Relaxed);
}

pub fn base() -> u64 {
    BASE.load(Ordering::Relaxed)
}

pub fn entry() -> u64 {
    ENTRY.load(Ordering::Relaxed)
}

/// Calls OPAL with up to eight arguments; returns its status. Before
/// `init` there is no OPAL to call: `UNSUPPORTED`.
pub fn call(token: u64, args: &[u64]) -> i64 {
    let entry = ENTRY.load(Ordering::Relaxed);
    if entry == 0 {
        return UNSUPPORTED;
    }
    let mut call = OpalCall { token, base: BASE.load(Ordering::Relaxed), entry, args: [0; 8] };
    call.args[..args.len()].copy_from_slice(args);
    // SAFETY: opal_call_be implements OPAL's calling convention (it saves
    // what OPAL may clobber and restores the caller's MSR); OPAL was handed
    // to the kernel by skiboot at `entry`, and every pointer argument the
    // callers here pass is a physical address of memory they own.
    unsafe { opal_call_be(&call) }
}

/// The physical address of a kernel object, for OPAL's pointer arguments.
pub fn real_address<T: ?Sized>(object: &T) -> u64 {
    mm::virt_to_phys(object as *const T as *const u8 as u64)
}

/// Whether this OPAL implements `token`.
pub fn has(token: u64) -> bool {
    call(CHECK_TOKEN, &[token]) == TOKEN_PRESENT
}

/// Busy answers ask for a retry after polling events (the console's
/// buffer drains, the BMC answers).
pub fn is_busy(status: i64) -> bool {
    status == BUSY || status == BUSY_EVENT
}

/// OPAL_POLL_EVENTS: lets OPAL run its pollers (console flush, IPMI).
pub fn poll_events() {
    call(POLL_EVENTS, &[0]);
}

/// How long one console chunk may take before it is dropped (and at most
/// this many attempts): the console must never hang the kernel, not even
/// behind a BMC that stopped answering OPAL's pollers.
const CONSOLE_CHUNK_US: u64 = 100_000;
const CONSOLE_RETRIES: u32 = 100_000;

/// Writes bytes to OPAL console 0, turning "\n" into "\r\n" for terminals.
/// OPAL may take part of a chunk (it says how much) or answer busy.
pub fn console_write(bytes: &[u8]) {
    let mut chunk = [0u8; 64];
    let mut used = 0;
    for &byte in bytes {
        if used + 2 > chunk.len() {
            console_write_raw(&chunk[..used]);
            used = 0;
        }
        if byte == b'\n' {
            chunk[used] = b'\r';
            used += 1;
        }
        chunk[used] = byte;
        used += 1;
    }
    console_write_raw(&chunk[..used]);
}

fn console_write_raw(bytes: &[u8]) {
    let deadline = kernel::time::deadline_us(CONSOLE_CHUNK_US);
    let expired = || kernel::time::now() >= deadline;
    let written = write_all(bytes, CONSOLE_RETRIES, expired, |chunk| {
        // In: the bytes offered; out: the bytes taken (big-endian, as OPAL
        // reads and writes memory).
        let length = AtomicU64::new((chunk.len() as u64).to_be());
        let status = call(CONSOLE_WRITE, &[0, real_address(&length), real_address(chunk)]);
        (status, u64::from_be(length.load(Ordering::Relaxed)) as usize)
    });
    // Dropped bytes have nowhere to be reported: the console is the report.
    let _ = written;
}

/// Offers `bytes` to `write` until all are taken, at most `attempts`
/// times and until `expired`: `write` answers (status, bytes taken), which
/// may be part of what it was offered. A busy status, or an attempt that
/// took nothing, lets OPAL's pollers run (they drain the console) before
/// the next one; any other failure ends the write. Returns the bytes
/// written, all of them unless the console failed or stayed busy.
pub fn write_all(
    mut bytes: &[u8],
    attempts: u32,
    expired: impl Fn() -> bool,
    mut write: impl FnMut(&[u8]) -> (i64, usize),
) -> usize {
    let total = bytes.len();
    for _ in 0..attempts {
        if bytes.is_empty() || expired() {
            break;
        }
        let (status, taken) = write(bytes);
        let taken = taken.min(bytes.len());
        bytes = &bytes[taken..];
        match status {
            SUCCESS if taken > 0 => {}
            SUCCESS => poll_events(),
            status if is_busy(status) => poll_events(),
            _ => break,
        }
    }
    total - bytes.len()
}

/// The status of hardware thread `pir`.
pub fn cpu_status(pir: u32) -> Result<u8, i64> {
    let status = AtomicU64::new(0);
    match call(QUERY_CPU_STATUS, &[pir as u64, real_address(&status)]) {
        // OPAL stores one byte at the address.
        SUCCESS => Ok(status.load(Ordering::Relaxed).to_ne_bytes()[0]),
        error => Err(error),
    }
}
