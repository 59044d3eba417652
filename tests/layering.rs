//! The module import graph, measured: which of `src/`'s top-level modules
//! refer to which (`crate::x` and `super::` paths that leave a module),
//! and the cycles among them. Issue 20 is to break the big circle; this
//! test is the ratchet that keeps it from growing back while that work
//! goes on. Run it with `cargo test --test layering -- --nocapture` to
//! see the cycles.
//!
//! What it counts: a file belongs to the top-level module it is under
//! (`src/chat/card.rs` is `chat`), and an edge is any `crate::x` path (or
//! `use crate::{x, ..}` group) in code outside `#[cfg(test)]` and comments.
//! `super::` stays inside a module, so it adds no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most modules one cycle may hold. Lower it as the circle is broken;
/// never raise it.
const LARGEST_CYCLE: usize = 23;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level modules named in `lib.rs`.
fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(src.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect()
}

/// The module a file belongs to: `src/chat/card.rs` is `chat`.
fn owner(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Which module refers to which, outside `#[cfg(test)]` code and comments.
/// `FB_LAYERING_SRC` measures another checkout's `src/` (to compare with an
/// earlier commit: `git worktree add /tmp/old REV`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::env::var_os("FB_LAYERING_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mods = modules(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> =
        mods.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in files {
        let Some(from) = owner(&src, &f).filter(|m| mods.contains(m)) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        // Test code may reach anywhere; the layering is about what ships.
        let shipped = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in shipped.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != from && mods.contains(&name) {
                    g.get_mut(&from).unwrap().insert(name);
                }
            }
            // `use crate::{a, b::c}` groups.
            if let Some(i) = code.find("crate::{") {
                for part in code[i + "crate::{".len()..].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != from && mods.contains(&name) {
                        g.get_mut(&from).unwrap().insert(name);
                    }
                }
            }
        }
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[v].min(t.low[w]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.low[v].min(t.index[w]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_import_circle_does_not_grow() {
    let g = graph();
    let found = cycles(&g);
    for c in &found {
        eprintln!(
            "cycle of {}: {}",
            c.len(),
            c.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let largest = found.iter().map(BTreeSet::len).max().unwrap_or(0);
    assert!(
        largest <= LARGEST_CYCLE,
        "a cycle of {largest} modules; at most {LARGEST_CYCLE} may be in one (issue 20 is to break it, not grow it): {found:?}"
    );
}

/// The measurement itself must see a cycle where there is one.
#[test]
fn a_cycle_is_found() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    let c = cycles(&g);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].len(), 3);
}
