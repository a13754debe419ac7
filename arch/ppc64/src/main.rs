#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

global_asm!(include_str!("asm/entry.s"));

fn put(s: &[u8]) {
    for chunk in s.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        let hi = u64::from_be_bytes(w);
        unsafe {
            asm!("sc 1", inout("r3") 0x58u64 => _, in("r4") 0u64, in("r5") chunk.len() as u64, in("r6") hi, in("r7") 0u64, out("r0") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _, out("ctr") _, out("xer") _, out("cr0") _);
        }
    }
}

#[no_mangle]
extern "C" fn boot_cpu_entry(ci: u64, _a: u64, _b: u64, base: u64, bad: u64) -> ! {
    put(b"hello from rust\n");
    let _ = (ci, base, bad);
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
