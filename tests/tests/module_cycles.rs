//! No import cycles among the modules of any crate. The kernel image's crate still has two
//! left from before this check existed; they may shrink, never grow, and no other cycle may
//! appear (splitting platforms from MMU backends is what removes them).

use harness::{image, modules};

/// Crates (their `src/`) that must have no cycle at all.
const ACYCLIC: &[&str] = &["kernel/src", "boot/src", "tests/src", "tools/ksyms/src"];

/// The cycles of `arch/ppc64/src` this check found: what may remain of them.
const ARCH: &str = "arch/ppc64/src";
const ARCH_KNOWN_CYCLES: &[&[&str]] =
    &[&["exceptions", "fatal", "hash", "mmu", "percpu", "radix", "sched", "smp"], &["firmware", "rtas"]];

fn cycles_of(src: &str) -> Vec<Vec<String>> {
    let root = image::workspace_root();
    let graph = modules::graph(&root.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
    assert!(graph.len() > 1, "{src}: no modules found");
    modules::cycles(&graph)
}

#[test]
fn crates_have_no_import_cycles() {
    let mut failures = Vec::new();
    for src in ACYCLIC {
        for cycle in cycles_of(src) {
            failures.push(format!("{src}: modules import each other in a cycle: {}", cycle.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_kernel_images_cycles_only_shrink() {
    let cycles = cycles_of(ARCH);
    for cycle in &cycles {
        let inside_a_known_one =
            ARCH_KNOWN_CYCLES.iter().any(|known| cycle.iter().all(|m| known.contains(&m.as_str())));
        assert!(
            inside_a_known_one,
            "{ARCH}: a new import cycle, or a module drawn into an old one: {} (known: {:?})",
            cycle.join(", "),
            ARCH_KNOWN_CYCLES
        );
    }
    for cycle in &cycles {
        eprintln!("{ARCH}: a cycle left to break: {}", cycle.join(", "));
    }
}
