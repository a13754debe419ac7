//! Which ELF symbols go into the kernel symbol table, independent of ELF parsing.

use std::cmp::Ordering;

/// The symbol types that can name code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolType {
    /// `STT_FUNC` (and `STT_GNU_IFUNC`).
    Function,
    /// `STT_NOTYPE`: assembly labels, linker-script symbols.
    NoType,
    /// Data, sections, files, TLS: never code.
    Other,
}

/// Ordered so that a stronger binding compares greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Binding {
    Local,
    Weak,
    Global,
}

/// The section a symbol is defined in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionSpan {
    pub start: u64,
    pub end: u64,
    pub executable: bool,
}

impl SectionSpan {
    fn contains(&self, address: u64) -> bool {
        (self.start..self.end).contains(&address)
    }
}

/// One `.symtab` entry, as read from the ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSymbol {
    /// Possibly mangled.
    pub name: String,
    pub address: u64,
    pub size: u64,
    pub symbol_type: SymbolType,
    pub binding: Binding,
    /// `None` when undefined, absolute or common.
    pub section: Option<SectionSpan>,
}

/// A symbol chosen for the table, with its demangled name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedSymbol {
    pub address: u64,
    pub size: u64,
    pub name: String,
}

/// Whether `symbol` names code worth showing in a backtrace.
pub fn is_code_symbol(symbol: &RawSymbol) -> bool {
    let Some(section) = symbol.section else {
        return false;
    };
    if symbol.name.is_empty() {
        return false;
    }
    match symbol.symbol_type {
        // The image is linked at 0, so a function at 0 (`_start`) is real when
        // its section is code; elsewhere address 0 means an unresolved weak.
        SymbolType::Function => symbol.address != 0 || section.executable,
        // Labels past the end of their section are linker-script end markers
        // such as `__text_end`, which would shadow the next section's code.
        SymbolType::NoType => section.executable && section.contains(symbol.address) && !is_local_label(&symbol.name),
        SymbolType::Other => false,
    }
}

/// Assembler-local labels, which only leak into `.symtab` by accident.
fn is_local_label(name: &str) -> bool {
    name.starts_with(".L") || name.starts_with("L..")
}

/// Picks the code symbols, keeps one per address and demangles Rust names.
/// The result is sorted by address with no duplicate addresses.
pub fn select(symbols: &[RawSymbol]) -> Vec<SelectedSymbol> {
    let mut chosen: Vec<&RawSymbol> = symbols.iter().filter(|s| is_code_symbol(s)).collect();
    // The preferred symbol of each address sorts first, and dedup keeps firsts.
    chosen.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| preference(b, a)));
    chosen.dedup_by_key(|symbol| symbol.address);
    chosen
        .into_iter()
        .map(|symbol| SelectedSymbol { address: symbol.address, size: symbol.size, name: demangle(&symbol.name) })
        .collect()
}

/// `Greater` when `a` is the better name for an address than `b`: a function
/// over a label, a global over a local, a known size over none, and a name over
/// a linker-script marker (`__kernel_start` at `_start`). Names break ties so
/// the output does not depend on `.symtab` order.
fn preference(a: &RawSymbol, b: &RawSymbol) -> Ordering {
    let is_function = |s: &RawSymbol| s.symbol_type == SymbolType::Function;
    let is_marker = |s: &RawSymbol| s.name.starts_with("__");
    is_function(a)
        .cmp(&is_function(b))
        .then(a.binding.cmp(&b.binding))
        .then((a.size != 0).cmp(&(b.size != 0)))
        .then(is_marker(b).cmp(&is_marker(a)))
        .then(b.name.cmp(&a.name))
}

/// Rust names without the hash suffix; other names unchanged.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: SectionSpan = SectionSpan { start: 0x0, end: 0x1000, executable: true };
    const RODATA: SectionSpan = SectionSpan { start: 0x10000, end: 0x11000, executable: false };

    fn symbol(name: &str, address: u64, size: u64, symbol_type: SymbolType) -> RawSymbol {
        RawSymbol { name: name.to_string(), address, size, symbol_type, binding: Binding::Global, section: Some(TEXT) }
    }

    fn local(mut raw: RawSymbol) -> RawSymbol {
        raw.binding = Binding::Local;
        raw
    }

    fn in_section(mut raw: RawSymbol, section: Option<SectionSpan>) -> RawSymbol {
        raw.section = section;
        raw
    }

    fn names(symbols: &[RawSymbol]) -> Vec<String> {
        select(symbols).into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn demangles_rust_names_without_hash() {
        assert_eq!(demangle("_ZN6kernel4main17h0123456789abcdefE"), "kernel::main");
        assert_eq!(demangle("_RNvCs1234_6kernel4main"), "kernel::main", "v0 mangling");
        assert_eq!(demangle("firmware_call_be32"), "firmware_call_be32");
    }

    #[test]
    fn keeps_functions_and_code_labels() {
        let symbols = [
            symbol("_start", 0x0, 0x114, SymbolType::Function),
            symbol("_ZN6kernel4main17h0123456789abcdefE", 0x200, 0x40, SymbolType::Function),
            local(symbol("exception_stub_300", 0x300, 0, SymbolType::NoType)),
            symbol("firmware_call_be32", 0x400, 0, SymbolType::NoType),
        ];
        assert_eq!(
            select(&symbols),
            [
                SelectedSymbol { address: 0x0, size: 0x114, name: "_start".into() },
                SelectedSymbol { address: 0x200, size: 0x40, name: "kernel::main".into() },
                SelectedSymbol { address: 0x300, size: 0, name: "exception_stub_300".into() },
                SelectedSymbol { address: 0x400, size: 0, name: "firmware_call_be32".into() },
            ]
        );
    }

    #[test]
    fn drops_non_code() {
        let symbols = [
            local(symbol(".Ltmp0", 0x10, 0, SymbolType::NoType)),
            local(symbol("L..text", 0x14, 0, SymbolType::NoType)),
            in_section(symbol("external", 0, 0, SymbolType::Function), None),
            // An unresolved weak function outside code.
            in_section(symbol("weak_hook", 0, 0, SymbolType::Function), Some(RODATA)),
            in_section(symbol("ABS_CONSTANT", 0x120, 0, SymbolType::NoType), None),
            in_section(symbol("__ksyms_start", 0x10000, 0, SymbolType::NoType), Some(RODATA)),
            in_section(symbol("KSYMS", 0x10000, 0x100, SymbolType::Other), Some(RODATA)),
            symbol("__text_end", 0x1000, 0, SymbolType::NoType),
            symbol("", 0x20, 0, SymbolType::NoType),
        ];
        assert_eq!(names(&symbols), Vec::<String>::new());
    }

    #[test]
    fn function_in_data_section_with_address_is_kept() {
        let symbols = [in_section(symbol("in_data", 0x10010, 8, SymbolType::Function), Some(RODATA))];
        assert_eq!(names(&symbols), ["in_data"]);
    }

    #[test]
    fn duplicates_prefer_function_then_global_then_sized() {
        let symbols = [
            symbol("__kernel_start", 0x0, 0, SymbolType::NoType),
            symbol("__text_start", 0x0, 0, SymbolType::NoType),
            local(symbol("_start", 0x0, 0x114, SymbolType::Function)),
            // Label beats marker at the same address.
            symbol("__text_start", 0x120, 0, SymbolType::NoType),
            symbol("entry_label", 0x120, 0, SymbolType::NoType),
            // Global beats local; weak is in between.
            local(symbol("local_alias", 0x200, 0x10, SymbolType::Function)),
            RawSymbol { binding: Binding::Weak, ..symbol("weak_alias", 0x200, 0x10, SymbolType::Function) },
            symbol("global_alias", 0x200, 0x10, SymbolType::Function),
            // Sized beats unsized.
            symbol("unsized", 0x300, 0, SymbolType::Function),
            symbol("sized", 0x300, 4, SymbolType::Function),
        ];
        assert_eq!(names(&symbols), ["_start", "entry_label", "global_alias", "sized"]);
        // Independent of input order.
        let mut reversed = symbols.to_vec();
        reversed.reverse();
        assert_eq!(names(&reversed), ["_start", "entry_label", "global_alias", "sized"]);
    }

    #[test]
    fn output_is_sorted() {
        let symbols = [
            symbol("c", 0x300, 4, SymbolType::Function),
            symbol("a", 0x100, 4, SymbolType::Function),
            symbol("b", 0x200, 0, SymbolType::NoType),
        ];
        let addresses: Vec<u64> = select(&symbols).iter().map(|s| s.address).collect();
        assert_eq!(addresses, [0x100, 0x200, 0x300]);
    }
}
