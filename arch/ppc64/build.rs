// Link the kernel image with the top-level linker script, and relink when it changes.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&manifest).join("../../linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=src/asm");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // The image is linked at 0, where `_start` is, so the linker's default mark for the
    // debug information of code it dropped (address 0) would put that code over `_start`
    // and the functions after it: the harness, gdb and addr2line would then decode those
    // addresses to functions that are not in the image. DWARF's own mark, -1, is
    // unambiguous. Only sections that are not loaded change (`.debug_ranges` and
    // `.debug_loc` keep lld's 1, since -1 means something else there).
    for section in [".debug_info", ".debug_line", ".debug_aranges"] {
        println!("cargo:rustc-link-arg-bins=-zdead-reloc-in-nonalloc={section}=0xffffffffffffffff");
    }
}
