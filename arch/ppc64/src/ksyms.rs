//! The kernel's own symbol table (filled in after linking by tools/ksyms) and
//! address-to-name lookups for reports.

use core::fmt;

use kernel::mm::LINEAR_MAP_BASE;
use kernel::symbols::{Symbol, SymbolTable};

use crate::trap;

/// Room for the table: tools/ksyms fails the build if it does not fit.
const KSYMS_SPACE: usize = 1 << 20;

#[used]
#[link_section = ".ksyms"]
static KSYMS_RESERVED: [u8; KSYMS_SPACE] = [0; KSYMS_SPACE];

extern "C" {
    static __ksyms_start: u8;
    static __ksyms_end: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Run-time address of the image's first byte (it is linked at 0).
pub fn load_base() -> u64 {
    // SAFETY: linker symbol; only its address is taken.
    unsafe { &__kernel_start as *const u8 as u64 }
}

pub fn image_end() -> u64 {
    // SAFETY: linker symbol; only its address is taken.
    unsafe { &__kernel_end as *const u8 as u64 }
}

/// The table, or `None` when the image was not patched by tools/ksyms.
pub fn table() -> Option<SymbolTable<'static>> {
    // SAFETY: the linker brackets .ksyms with these symbols; the bytes are
    // read through the symbols' addresses, never through KSYMS_RESERVED, so the
    // compiler cannot assume they are still the zeros it emitted.
    let bytes = unsafe {
        let start = &__ksyms_start as *const u8;
        let len = &__ksyms_end as *const u8 as usize - start as usize;
        core::slice::from_raw_parts(core::hint::black_box(start), len)
    };
    SymbolTable::parse(bytes)
}

/// The run-time address of a symbol, by exact (demangled) name.
pub fn address_of(name: &str) -> Option<u64> {
    table()?.find(name).map(|link| link + load_base())
}

/// The symbol at a run-time address of the image, under either alias: code
/// reached from a real-mode interrupt runs at the physical address of its
/// code (entry.s too, before it jumps to KERNEL_BASE).
pub fn lookup(address: u64) -> Option<Symbol<'static>> {
    let base = load_base() & !LINEAR_MAP_BASE;
    let size = image_end() - load_base();
    let link = (address & !LINEAR_MAP_BASE).checked_sub(base).filter(|&a| a < size)?;
    table()?.lookup(link)
}

/// Shows `<symbol+0xoffset>` for a run-time address, `<name vector
/// 0xNNN+0xoffset>` for an interrupt vector's stub, or `<?>`.
pub struct Sym(pub u64);

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(symbol) = lookup(self.0) {
            return write!(f, "<{symbol}>");
        }
        match trap::stub_at(self.0 & !LINEAR_MAP_BASE) {
            Some((vector, offset)) => write!(f, "<{} vector {vector:#x}+{offset:#x}>", trap::vector_name(vector)),
            None => write!(f, "<?>"),
        }
    }
}
