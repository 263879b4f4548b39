//! No module imports another in a circle (see docs/architecture.md, "Crates and modules"):
//! every crate's sources are read, each `crate::`, `super::` and `self::` path (grouped
//! `use a::{b, c::d}` ones too) is resolved to the module it names, and the strongly connected
//! components of that graph are the cycles. Comments, everything after a file's first
//! `#[cfg(test)]`, `*tests.rs` files and a module's references to its own ancestors (a child
//! using its parent's items, as `impl Parent` in a child file does) are left out.
//!
//! The cycles not yet taken apart are listed in [`KNOWN`]; a new one fails the test, and so
//! does a listed one that is gone, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles still to take apart: crate, then the modules of one strongly connected component.
const KNOWN: &[(&str, &[&str])] = &[];

type Module = Vec<String>;

/// One crate's modules: path → source text kept for the scan.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
                let text =
                    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                out.insert(module_of(src, &path), scanned(&text));
            }
        }
    }
    out
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` are the crate root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("a file under src").with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The text before the first `#[cfg(test)]`, without comment lines.
fn scanned(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts with `crate`, `super` or `self` followed by `::`, groups expanded:
/// `use super::{a::X, b}` gives `super::a::X` and `super::b`.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]);
        if starts_word && is_ident(chars[i]) {
            let word: String = chars[i..].iter().take_while(|c| is_ident(**c)).collect();
            let after = i + word.len();
            if matches!(word.as_str(), "crate" | "super" | "self") && chars[after..].starts_with(&[':', ':']) {
                let mut end = after;
                tree(&chars, &mut end, vec![word.clone()], &mut out);
                i = end.max(after);
                continue;
            }
            i = after;
        } else {
            i += 1;
        }
    }
    out
}

/// Parses `::seg::seg::{...}` at `*at` after `prefix`, pushing every full path.
fn tree(chars: &[char], at: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    while chars[*at..].starts_with(&[':', ':']) {
        *at += 2;
        skip_space(chars, at);
        if chars.get(*at) == Some(&'{') {
            *at += 1;
            loop {
                skip_space(chars, at);
                match chars.get(*at) {
                    None => return,
                    Some('}') => {
                        *at += 1;
                        return;
                    }
                    Some(',') => *at += 1,
                    Some(_) => {
                        let seg: String = chars[*at..].iter().take_while(|c| is_ident(**c)).collect();
                        if seg.is_empty() {
                            // `*` or anything else: the prefix itself.
                            out.push(prefix.clone());
                            *at += 1;
                            continue;
                        }
                        *at += seg.len();
                        let mut sub = prefix.clone();
                        if seg != "self" {
                            sub.push(seg);
                        }
                        if chars[*at..].starts_with(&[':', ':']) {
                            tree(chars, at, sub, out);
                        } else {
                            out.push(sub);
                        }
                    }
                }
            }
        }
        let seg: String = chars[*at..].iter().take_while(|c| is_ident(**c)).collect();
        if seg.is_empty() {
            break;
        }
        *at += seg.len();
        prefix.push(seg);
    }
    out.push(prefix);
}

fn skip_space(chars: &[char], at: &mut usize) {
    while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
        *at += 1;
    }
}

/// The module a path names from `from`: the longest prefix that is a module.
fn resolve(names: &BTreeSet<Module>, from: &Module, path: &[String]) -> Option<Module> {
    let (mut base, mut rest) = (Vec::new(), path);
    match rest.first().map(String::as_str) {
        Some("crate") => rest = &rest[1..],
        Some("self") => {
            base = from.clone();
            rest = &rest[1..];
        }
        Some("super") => {
            base = from.clone();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    (0..=rest.len())
        .rev()
        .map(|n| base.iter().chain(&rest[..n]).cloned().collect::<Module>())
        .find(|m| names.contains(m))
}

/// Edges `from → to` with the paths that make them.
type Graph = BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>>;

fn graph(mods: &BTreeMap<Module, String>) -> Graph {
    let names: BTreeSet<Module> = mods.keys().cloned().collect();
    let mut g: Graph = names.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for (from, text) in mods {
        for path in paths(text) {
            let Some(to) = resolve(&names, from, &path) else { continue };
            let ancestor = to.len() < from.len() && from[..to.len()] == to[..];
            if to != *from && !ancestor {
                g.get_mut(from).expect("a module").entry(to).or_default().insert(path.join("::"));
            }
        }
    }
    g
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<BTreeSet<Module>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<BTreeSet<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let g = s.g;
        for w in g[v].keys() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates/").to_path_buf()
}

#[test]
fn no_module_imports_another_in_a_circle() {
    let mut found: BTreeMap<(String, Vec<String>), String> = BTreeMap::new();
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(crates_dir()).expect("the crates directory").map(|e| e.expect("an entry").path()).collect();
    crates.sort();
    for dir in crates.iter().filter(|d| d.join("src").is_dir()) {
        let name = dir.file_name().expect("a crate directory").to_string_lossy().into_owned();
        let g = graph(&modules(&dir.join("src")));
        for comp in cycles(&g) {
            let mut edges = String::new();
            for v in &comp {
                for (w, why) in g[v].iter().filter(|(w, _)| comp.contains(*w)) {
                    let why: Vec<&str> = why.iter().map(String::as_str).collect();
                    edges += &format!("    {} -> {}: {}\n", v.join("::"), w.join("::"), why.join(", "));
                }
            }
            found.insert((name.clone(), comp.iter().map(|m| m.join("::")).collect()), edges);
        }
    }
    let known: BTreeSet<(String, Vec<String>)> =
        KNOWN.iter().map(|(c, ms)| (c.to_string(), ms.iter().map(|m| m.to_string()).collect())).collect();
    let mut problems = String::new();
    for ((krate, comp), edges) in found.iter().filter(|(k, _)| !known.contains(*k)) {
        problems += &format!(
            "modules of crate {krate} import each other in a circle: {{{}}}\n{edges}  \
             give the shared piece its own module that depends on neither (see docs/architecture.md)\n",
            comp.join(", ")
        );
    }
    for (krate, comp) in known.iter().filter(|k| !found.contains_key(*k)) {
        problems += &format!(
            "the known cycle {krate}: {{{}}} is gone (or changed): take it out of KNOWN in {}\n",
            comp.join(", "),
            file!()
        );
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn the_scan_reads_grouped_and_relative_paths() {
    let text = "use crate::{a::X, b::{self, c::Y}};\nlet v = super::super::d::f(self::e::G);\n// crate::z\n";
    let got: Vec<String> = paths(&scanned(text)).iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["crate::a::X", "crate::b", "crate::b::c::Y", "super::super::d::f", "self::e::G"]);
    let names: BTreeSet<Module> = [vec!["a".to_string()], vec!["d".into()], vec!["m".into(), "n".into()]].into();
    let from: Module = vec!["m".into(), "n".into()];
    let p = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(resolve(&names, &from, &p("crate::a::X")), Some(vec!["a".into()]));
    assert_eq!(resolve(&names, &from, &p("super::super::d::f")), Some(vec!["d".into()]));
    assert_eq!(resolve(&names, &from, &p("self::e::G")), Some(from.clone()));
}
