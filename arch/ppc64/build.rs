// Link the kernel image with the top-level linker script, and relink when it changes.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&manifest).join("../../linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=src/asm");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
}
