//! Finding the kernel image: `KERNEL_IMAGE` if set, else `build/kernel.elf` built by
//! `make kernel`, at most once per process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where `make kernel` leaves the image, relative to the workspace root.
pub const IMAGE_PATH: &str = "build/kernel.elf";

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
