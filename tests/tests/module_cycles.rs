//! No import cycles among the modules of any crate, at every level of nesting (a parent
//! module and its children included): see `harness::modules`.

use harness::{image, modules};

/// Every crate's `src/`.
const CRATES: &[&str] = &["kernel/src", "boot/src", "tests/src", "tools/ksyms/src", "arch/ppc64/src"];

#[test]
fn crates_have_no_import_cycles() {
    let root = image::workspace_root();
    let mut failures = Vec::new();
    for src in CRATES {
        let graph = modules::graph(&root.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(graph.len() > 1, "{src}: no modules found");
        for cycle in modules::cycles(&graph) {
            let edges: Vec<String> = cycle
                .iter()
                .flat_map(|from| {
                    graph[from].iter().filter(|to| cycle.contains(to)).map(move |to| format!("{from} -> {to}"))
                })
                .collect();
            failures.push(format!("{src}: modules import each other in a cycle: {}", edges.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
