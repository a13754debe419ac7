//! The import graph of a crate's modules, at every level (`mmu`, `mmu::radix`,
//! `platform::pseries::rtas`), from the paths in its source: `crate::a::b`, `super::x`,
//! `self::x`, groups (`crate::{a, b::c}`) and a parent's bare paths into its children
//! (`radix::init` in `mmu/mod.rs`); and the cycles in it (strongly connected components of
//! more than one module). A module that imports one that imports it back cannot be
//! understood, tested or replaced alone; a parent whose children import it back is one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module -> the modules of the same crate it names.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module a source file (relative to the crate's `src/`) is: `a/b.rs` and `a/b/mod.rs`
/// are `a::b`; the crate root (`lib.rs`, `main.rs`) is `crate`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.last_mut() {
        *last = last.strip_suffix(".rs").unwrap_or(last).to_string();
    }
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return "crate".to_string();
    }
    parts.join("::")
}

/// Code without comments, string and character literals (a comment or a message may name
/// a path without importing it; a `{` in a string would confuse brace depth).
fn without_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == 'r' && !ident_before && matches!(next, Some('"') | Some('#')) {
            // r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) == Some(&'"') {
                j += 1;
                loop {
                    if j >= chars.len() {
                        break;
                    }
                    if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
                continue;
            }
        }
        if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + 1;
            continue;
        }
        if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                out.push_str("' '");
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads a path from `chars[i..]` (after a leading `a::`): segments and groups, each
/// finished path appended to `out` with `prefix` before it. Returns where it stopped.
fn read_path(chars: &[char], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i) == Some(&'{') {
            i += 1;
            loop {
                while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    i += 1;
                }
                match chars.get(i) {
                    None => return i,
                    Some('}') => return i + 1,
                    _ => {}
                }
                let before = i;
                i = read_path(chars, i, path.clone(), out);
                if i == before {
                    i += 1; // `*` or something unexpected: skip it
                }
            }
        }
        let start = i;
        while chars.get(i).copied().is_some_and(is_ident) {
            i += 1;
        }
        if i == start {
            out.push(path);
            return i;
        }
        path.push(chars[start..i].iter().collect());
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// How many inline `mod name { .. }` blocks enclose each position of `code`.
fn inline_depths(chars: &[char]) -> Vec<usize> {
    let mut depths = vec![0; chars.len() + 1];
    let mut braces: Vec<bool> = Vec::new(); // per open brace: does it open an inline module?
    let mut inline = 0;
    for i in 0..chars.len() {
        depths[i] = inline;
        match chars[i] {
            '{' => {
                let before: String = chars[..i].iter().rev().take(80).collect::<String>().chars().rev().collect();
                let words: Vec<&str> = before.split_whitespace().collect();
                let opens_mod =
                    words.len() >= 2 && words[words.len() - 2] == "mod" && words[words.len() - 1].chars().all(is_ident);
                braces.push(opens_mod);
                if opens_mod {
                    inline += 1;
                }
            }
            '}' if braces.pop() == Some(true) => inline -= 1,
            _ => {}
        }
    }
    depths
}

/// The absolute paths (segments after `crate`) that the code of module `module` names,
/// `children` being its child modules' names (their bare paths count).
pub fn named_paths(code: &str, module: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let depths = inline_depths(&chars);
    let here: Vec<String> =
        if module == "crate" { Vec::new() } else { module.split("::").map(str::to_string).collect() };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':' || chars[i - 1] == '.');
        if !boundary || !chars[i].is_alphabetic() && chars[i] != '_' {
            i += 1;
            continue;
        }
        let start = i;
        while chars.get(i).copied().is_some_and(is_ident) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if chars.get(i) != Some(&':') || chars.get(i + 1) != Some(&':') {
            continue;
        }
        let base: Option<Vec<String>> = match word.as_str() {
            "crate" => Some(Vec::new()),
            "self" => Some(here.clone()),
            "super" => {
                // `super` first leaves the inline modules around it, then the file's module.
                let mut up: usize = 1;
                let mut j = i + 2;
                while chars[j..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                    up += 1;
                    j += 7;
                }
                let file_levels = up.saturating_sub(depths[start]);
                i = j - 2;
                Some(here[..here.len().saturating_sub(file_levels)].to_vec())
            }
            child if children.contains(child) && depths[start] == 0 => {
                let mut base = here.clone();
                base.push(child.to_string());
                Some(base)
            }
            _ => None,
        };
        if let Some(base) = base {
            i = read_path(&chars, i + 2, base, &mut out);
        }
    }
    out
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
    let children_of = |module: &str| -> BTreeSet<String> {
        let prefix = if module == "crate" { String::new() } else { format!("{module}::") };
        modules
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix).filter(|rest| !rest.contains("::") && *m != "crate"))
            .map(str::to_string)
            .collect()
    };
    Ok(sources
        .iter()
        .map(|(module, code)| {
            let mut named = BTreeSet::new();
            for path in named_paths(code, module, &children_of(module)) {
                // The longest prefix that is a module; none: an item of the crate root.
                let target = (1..=path.len())
                    .rev()
                    .map(|n| path[..n].join("::"))
                    .find(|m| modules.contains(m))
                    .unwrap_or_else(|| "crate".to_string());
                if target != *module {
                    named.insert(target);
                }
            }
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
        let named: Vec<String> =
            named_paths(code, "crate", &BTreeSet::new()).into_iter().map(|p| p.join("::")).collect();
        assert_eq!(named, ["a::X", "b", "c::D", "e::F", "e::G", "h::g"]);
        let in_comment = named_paths("// crate::x\n", "crate", &BTreeSet::new());
        assert!(in_comment.contains(&vec!["x".to_string()]), "comments are removed by graph(), not here");
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
        assert_eq!(module_of(Path::new("mm/gup.rs")), "mm::gup");
        assert_eq!(module_of(Path::new("mm/mod.rs")), "mm");
        assert_eq!(module_of(Path::new("platform/pseries/mod.rs")), "platform::pseries");
        assert_eq!(module_of(Path::new("smp.rs")), "smp");
    }

    fn paths(code: &str, module: &str, children: &[&str]) -> Vec<String> {
        let children = children.iter().map(|c| c.to_string()).collect();
        named_paths(&without_comments(code), module, &children).into_iter().map(|p| p.join("::")).collect()
    }

    #[test]
    fn relative_paths_resolve_from_the_module() {
        assert_eq!(paths("use super::tree::Tree;", "mmu::radix", &[]), ["mmu::tree::Tree"]);
        assert_eq!(paths("use super::super::cpu;", "platform::pseries::lpar", &[]), ["platform::cpu"]);
        assert_eq!(paths("use self::x::Y;", "a", &["x"]), ["a::x::Y"]);
        assert_eq!(
            paths("fn f() { radix::init(); kernel::mm::hash(); }", "mmu", &["radix", "hash"]),
            ["mmu::radix::init"]
        );
        assert_eq!(paths("let a = x.radix::<u8>();", "mmu", &["radix"]), Vec::<String>::new());
        // Inside an inline module, `super` is the file's module first.
        assert_eq!(paths("mod tests { use super::*; fn f() { super::g(); } }", "a::b", &[]), ["a::b", "a::b::g"]);
        // Strings and comments name nothing.
        assert_eq!(paths("let s = \"crate::x {\"; // crate::y\n/* crate::z */ use crate::w;", "a", &[]), ["w"]);
    }

    #[test]
    fn a_parent_and_a_child_that_import_each_other_are_a_cycle() {
        let dir = std::env::temp_dir().join(format!("modules-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("mmu")).unwrap();
        std::fs::write(dir.join("main.rs"), "mod mmu; mod smp;").unwrap();
        std::fs::write(dir.join("mmu/mod.rs"), "mod radix; pub fn init() { radix::go() }").unwrap();
        std::fs::write(dir.join("mmu/radix.rs"), "use super::init; pub fn go() {}").unwrap();
        std::fs::write(dir.join("smp.rs"), "use crate::mmu::init;").unwrap();
        assert_eq!(cycles(&graph(&dir).unwrap()), [vec!["mmu", "mmu::radix"]]);
        std::fs::write(dir.join("mmu/radix.rs"), "use crate::smp; pub fn go() {}").unwrap();
        assert_eq!(cycles(&graph(&dir).unwrap()), [vec!["mmu", "mmu::radix", "smp"]]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
