//! The console: the PAPR virtual terminal (hvterm) through H_PUT_TERM_CHAR.
//!
//! Until the device tree names the terminal, term number 0 is used, which QEMU
//! maps to its only vty (and which Linux's early udbg console uses too).

use core::sync::atomic::{AtomicU64, Ordering};

use super::hcall::{self, H_PUT_TERM_CHAR, H_SUCCESS};

static TERMNO: AtomicU64 = AtomicU64::new(0);

/// Retries of a busy hypervisor before a chunk is dropped: the console must
/// never hang the kernel.
const BUSY_RETRIES: u32 = 1_000_000;

pub fn set_termno(termno: u32) {
    TERMNO.store(termno as u64, Ordering::Relaxed);
}

/// Writes bytes, turning "\n" into "\r\n" for terminals.
pub fn write(bytes: &[u8]) {
    let mut chunk = [0u8; 16];
    let mut used = 0;
    for &byte in bytes {
        if byte == b'\n' {
            if used + 2 > chunk.len() {
                put_chars(&chunk[..used]);
                used = 0;
            }
            chunk[used] = b'\r';
            used += 1;
        } else if used == chunk.len() {
            put_chars(&chunk[..used]);
            used = 0;
        }
        chunk[used] = byte;
        used += 1;
    }
    put_chars(&chunk[..used]);
}

/// One H_PUT_TERM_CHAR: up to 16 bytes packed big-endian into two registers.
fn put_chars(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut packed = [0u8; 16];
    packed[..bytes.len()].copy_from_slice(bytes);
    let high = u64::from_be_bytes(packed[..8].try_into().unwrap());
    let low = u64::from_be_bytes(packed[8..].try_into().unwrap());
    let termno = TERMNO.load(Ordering::Relaxed);
    for _ in 0..BUSY_RETRIES {
        let status = hcall::hcall4(H_PUT_TERM_CHAR, termno, bytes.len() as u64, high, low);
        if status == H_SUCCESS || !hcall::is_busy(status) {
            return;
        }
    }
}
