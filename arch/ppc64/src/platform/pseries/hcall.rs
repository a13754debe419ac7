//! Hypervisor calls (PAPR 2.x, "Hypervisor call functions"; numbers as in
//! Linux's arch/powerpc/include/asm/hvcall.h). `sc 1` with the function in
//! r3 and arguments in r4..r10; status back in r3, results in r4..r12.

use core::arch::asm;

// The one table of the hcalls the kernel makes: every other module names
// them from here.

/// HPT entries (the hash MMU, hash.rs).
pub const H_REMOVE: u64 = 0x04;
pub const H_ENTER: u64 = 0x08;
pub const H_READ: u64 = 0x0c;
pub const H_PROTECT: u64 = 0x18;
pub const H_BULK_REMOVE: u64 = 0x124;
/// The console: write up to 16 bytes to a virtual terminal (hvc.rs).
pub const H_PUT_TERM_CHAR: u64 = 0x58;
/// XICS, the interrupt controller (xics.rs).
pub const H_EOI: u64 = 0x64;
pub const H_CPPR: u64 = 0x68;
pub const H_IPI: u64 = 0x6c;
pub const H_XIRR: u64 = 0x74;
pub const H_CEDE: u64 = 0xe0;
/// Partition modes: interrupt endianness, the alternate interrupt location.
pub const H_SET_MODE: u64 = 0x31c;
/// Registers the process table (radix) or says the HPT is used (hash, ISA 3.0).
pub const H_REGISTER_PROC_TBL: u64 = 0x37c;

/// Status codes (PAPR): 0 is success, positive values ask the caller to retry,
/// negative ones are errors.
pub const H_SUCCESS: i64 = 0;
pub const H_BUSY: i64 = 1;
/// H_LONG_BUSY_ORDER_1_MSEC .. H_LONG_BUSY_ORDER_100_SEC.
pub const H_LONG_BUSY_START: i64 = 9900;
pub const H_LONG_BUSY_END: i64 = 9905;
pub const H_HARDWARE: i64 = -1;
pub const H_FUNCTION: i64 = -2;
pub const H_PARAMETER: i64 = -4;
pub const H_PTEG_FULL: i64 = -6;
pub const H_NOT_FOUND: i64 = -7;
/// H_NO_MEM (-9) .. H_DROPPED (-12): no resources, no authority or permission.
pub const H_NO_MEM: i64 = -9;
pub const H_DROPPED: i64 = -12;

pub fn is_busy(status: i64) -> bool {
    status == H_BUSY || (H_LONG_BUSY_START..=H_LONG_BUSY_END).contains(&status)
}

/// An hcall with up to four arguments and no results beyond the status.
pub fn hcall4(function: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    let status: u64;
    // SAFETY: `sc 1` enters the hypervisor, which follows the PAPR register
    // convention: r0 and r3..r12, CTR, XER and CR0/CR1/CR5-CR7 may change; no
    // memory is touched by the calls made through this wrapper.
    unsafe {
        asm!(
            "sc 1",
            inout("r3") function => status,
            inout("r4") a => _,
            inout("r5") b => _,
            inout("r6") c => _,
            inout("r7") d => _,
            out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
            out("ctr") _, out("xer") _,
            out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
            options(nostack)
        );
    }
    status as i64
}

/// H_SET_MODE's resources. Resource 3: the alternate interrupt location
/// (AIL); resource 4: interrupt endianness (LPCR[ILE]), mflags 1 =
/// little-endian.
pub const H_SET_MODE_RESOURCE_AIL: u64 = 3;
pub const H_SET_MODE_RESOURCE_LE: u64 = 4;
pub const H_SET_MODE_ENDIAN_LITTLE: u64 = 1;

/// Retries an hcall while the hypervisor answers busy.
pub fn hcall4_retry(function: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    loop {
        let status = hcall4(function, a, b, c, d);
        if !is_busy(status) {
            return status;
        }
        core::hint::spin_loop();
    }
}

/// An hcall that returns up to eight values in r4..r11.
pub fn hcall_ret(function: u64, args: [u64; 4]) -> (i64, [u64; 8]) {
    hcall8(function, [args[0], args[1], args[2], args[3], 0, 0, 0, 0])
}

/// An hcall with up to eight arguments in r4..r11 and up to eight results
/// back in them (H_BULK_REMOVE rewrites its request words as responses);
/// registers a call does not use are ignored by the hypervisor.
pub fn hcall8(function: u64, args: [u64; 8]) -> (i64, [u64; 8]) {
    let status: u64;
    let mut out = [0u64; 8];
    // SAFETY: `sc 1` enters the hypervisor with the PAPR convention: arguments
    // in r4.., results in r4..r11; r0, r12, CTR, XER and volatile CR fields
    // may change. The callers pass no guest memory.
    unsafe {
        asm!(
            "sc 1",
            inout("r3") function => status,
            inout("r4") args[0] => out[0], inout("r5") args[1] => out[1],
            inout("r6") args[2] => out[2], inout("r7") args[3] => out[3],
            inout("r8") args[4] => out[4], inout("r9") args[5] => out[5],
            inout("r10") args[6] => out[6], inout("r11") args[7] => out[7],
            out("r0") _, out("r12") _, out("ctr") _, out("xer") _,
            out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
            options(nostack)
        );
    }
    (status as i64, out)
}
