//! The seams between the portable kernel, the MMU backends and the platforms hold:
//! - pseries's calls (hypervisor calls, RTAS, XICS) are named only under
//!   `arch/ppc64/src/platform/pseries/`: everything else goes through `platform::Machine`,
//!   `IrqController` and `HpteOps`;
//! - no production code matches on the MMU mode but the one place that picks the backend
//!   (`mmu::init`) and the platform's negotiation of what to ask the firmware for: the
//!   rest calls the `MmuBackend` object. Self-tests and benchmarks may ask which MMU runs,
//!   since some exercise one MMU's behaviour.
//!
//! Comments count too: a comment that names a pseries call outside pseries is a sign the
//! code beside it knows too much.

use std::path::{Path, PathBuf};

use harness::image;
use regex::Regex;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn lines_matching(dirs: &[&str], pattern: &Regex, skip: impl Fn(&str) -> bool) -> Vec<String> {
    let root = image::workspace_root();
    let mut found = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        sources(&root.join(dir), &mut files);
        files.sort();
        for file in files {
            let relative = file.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            if skip(&relative) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if pattern.is_match(line) {
                    found.push(format!("{relative}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    found
}

const PSERIES: &str = "arch/ppc64/src/platform/pseries/";

#[test]
fn pseries_calls_are_named_only_under_the_pseries_platform() {
    let pattern = Regex::new(r"(?i:\bhcall|\brtas\b|\bxics\b|\bpapr\b)|\bH_[A-Z]").unwrap();
    let found = lines_matching(&["arch/ppc64/src", "kernel/src"], &pattern, |file| file.starts_with(PSERIES));
    assert!(found.is_empty(), "pseries named outside {PSERIES}:\n{}", found.join("\n"));
}

fn is_test_code(file: &str) -> bool {
    file.contains("selftests") || file.contains("/bench") || file.ends_with("inject.rs")
}

#[test]
fn only_mmu_init_matches_on_the_mmu_mode() {
    // An arm that does something (not one naming the mode: `MmuMode::Hash => "hash"`).
    let arm = Regex::new(r#"\b(Mode|MmuMode)::(Radix|Hash|Off)\b[^,;]*=>\s*[^"\s]"#).unwrap();
    let found = lines_matching(&["arch/ppc64/src", "kernel/src"], &arm, |file| {
        is_test_code(file)
            || file == "arch/ppc64/src/mmu/mod.rs"
            || file == "arch/ppc64/src/platform/pseries/firmware.rs"
            || file == "arch/ppc64/src/platform/powernv/firmware.rs"
    });
    assert!(found.is_empty(), "a match on the MMU mode outside mmu::init:\n{}", found.join("\n"));
    let compare = Regex::new(r"mode\(\)\s*(==|!=)").unwrap();
    let found =
        lines_matching(&["arch/ppc64/src"], &compare, |file| is_test_code(file) || file == "arch/ppc64/src/mmu/mod.rs");
    assert!(found.is_empty(), "production code asking which MMU runs:\n{}", found.join("\n"));
}
