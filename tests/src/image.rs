//! Finding the kernel image: `KERNEL_IMAGE` if set, else `build/kernel.elf` built by
//! `make kernel`, at most once per process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where `make kernel` leaves the image, relative to the workspace root.
pub const IMAGE_PATH: &str = "build/kernel.elf";

/// Where the Makefile's cargo links the kernel, per profile, before `tools/ksyms` copies it
/// to `build/kernel.elf` with its symbol table written in: the same code and DWARF.
const LINKED_DIR: &str = "target/cross/powerpc64le-kernel";

/// The cargo workspace (and Makefile) root: the harness crate's parent directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The image without building it: `KERNEL_IMAGE`, else `build/kernel.elf` (for `kboot`,
/// which `make run` calls after building).
pub fn default_image() -> PathBuf {
    match std::env::var_os("KERNEL_IMAGE").filter(|value| !value.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join(IMAGE_PATH),
    }
}

/// The linked kernels (release, then dev), where an image without debug information may
/// find its DWARF (see [`crate::backtrace::Symbolizer::load`]).
pub fn linked_images() -> Vec<PathBuf> {
    let dir = workspace_root().join(LINKED_DIR);
    ["release", "debug"].iter().map(|profile| dir.join(profile).join("ppc64-kernel")).collect()
}

/// `image`'s debug information for decoding its fatal reports, read when first needed.
pub fn debug_info(image: &Path) -> crate::backtrace::KernelImage {
    crate::backtrace::KernelImage::new(image, linked_images())
}

/// The image to boot: `KERNEL_IMAGE` as is, or the result of `make kernel` (run once per
/// process, whichever thread asks first; the others wait). A build failure is an error
/// holding make's output, so that every boot test fails with it rather than being skipped.
pub fn kernel_image() -> Result<PathBuf, String> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if std::env::var_os("KERNEL_IMAGE").is_some_and(|value| !value.is_empty()) {
                let image = default_image();
                return if image.is_file() {
                    Ok(image)
                } else {
                    Err(format!("KERNEL_IMAGE={} is not a file", image.display()))
                };
            }
            build()
        })
        .clone()
}

fn build() -> Result<PathBuf, String> {
    let root = workspace_root();
    let shown = format!("make -C {} kernel", root.display());
    eprintln!("harness: building the kernel: {shown}");
    let output = Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("kernel")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run `{shown}`: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let image = root.join(IMAGE_PATH);
    if image.is_file() {
        Ok(image)
    } else {
        Err(format!("`{shown}` succeeded but left no {}", image.display()))
    }
}
