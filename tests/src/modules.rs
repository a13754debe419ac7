//! The import graph of a crate's top-level modules, from the `crate::` paths in its source,
//! and the cycles in it (strongly connected components of more than one module). A module
//! that imports one that imports it back cannot be understood, tested or replaced alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules of the same crate it names.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a source file (relative to the crate's `src/`) belongs to; the
/// crate root (`lib.rs`, `main.rs`) is `crate`.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    if name == "lib" || name == "main" {
        "crate".to_string()
    } else {
        name
    }
}

/// Code without `//` comments (a comment may name a path without importing it).
fn without_comments(text: &str) -> String {
    text.lines().map(|line| line.split_once("//").map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// The modules `crate::` paths in `code` start with: `crate::a::b`, `crate::{a, b::c}`.
pub fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // Not `some_crate::`: the character before must not continue an identifier.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Items at brace depth 0 of the group: `b`, `c::D`, `e::{F, G}`.
            let (mut depth, mut item) = (0usize, String::new());
            let mut take = |item: &mut String| {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    named.insert(name);
                }
                item.clear();
            };
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        take(&mut item);
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            take(&mut item);
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                named.insert(name);
            }
        }
    }
    named
}

/// The graph of the crate whose sources are under `src` (every `.rs` file below it).
pub fn graph(src: &Path) -> std::io::Result<Graph> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(src).unwrap_or(file);
        let text = std::fs::read_to_string(file)?;
        sources.entry(module_of(relative)).or_default().push_str(&without_comments(&text));
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    Ok(sources
        .iter()
        .map(|(module, code)| {
            let named = named_modules(code).into_iter().filter(|n| n != module && modules.contains(n)).collect();
            (module.clone(), named)
        })
        .collect())
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The cycles: strongly connected components of more than one module (Tarjan), each sorted.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found.sort();
    state.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_groups() {
        let code = "use crate::a::X;\nuse crate::{b, c::D, e::{F, G}};\nfn f() { crate::h::g(); other_crate::z(); }";
        let named: Vec<String> = named_modules(code).into_iter().collect();
        assert_eq!(named, ["a", "b", "c", "e", "h"]);
        assert!(named_modules("// crate::x\n").contains("x"), "comments are removed by graph(), not here");
        assert!(without_comments("a // crate::x").trim() == "a");
    }

    fn g(edges: &[(&str, &[&str])]) -> Graph {
        edges.iter().map(|(a, bs)| (a.to_string(), bs.iter().map(|b| b.to_string()).collect())).collect()
    }

    #[test]
    fn finds_cycles_and_only_cycles() {
        let acyclic = g(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])]);
        assert!(cycles(&acyclic).is_empty());
        let cyclic =
            g(&[("a", &["b"]), ("b", &["c"]), ("c", &["a", "d"]), ("d", &["e"]), ("e", &["d"]), ("f", &["a"])]);
        assert_eq!(cycles(&cyclic), [vec!["a", "b", "c"], vec!["d", "e"]]);
    }

    #[test]
    fn module_of_files() {
        assert_eq!(module_of(Path::new("lib.rs")), "crate");
        assert_eq!(module_of(Path::new("mm/gup.rs")), "mm");
        assert_eq!(module_of(Path::new("smp.rs")), "smp");
    }
}
