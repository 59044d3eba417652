//! The layering of `src/`, measured from its `use` paths, so that what
//! `src/lib.rs`'s map says of the code stays true:
//!
//! 1. The top-level modules import each other without a cycle: data and
//!    imports flow one way, and a cycle may only live inside one module's
//!    own files.
//! 2. A module the map marks `(model)` does no I/O: it names no I/O crate
//!    (tokio, sqlx, reqwest, axum, ...) nor `std::fs`, `std::process` or
//!    a socket, and imports only other model modules. The few known
//!    exceptions are listed in [`KNOWN`]; the list may only shrink.
//!
//! Run `cargo test --test it layering -- --nocapture` to print the graph's
//! edges that leave the model. `FB_LAYERING_SRC=DIR` measures another
//! checkout's `src/` (to compare with an earlier commit: `git worktree add
//! /tmp/old REV`).
//!
//! What is counted: a file belongs to the top-level module it is under
//! (`src/chat/card.rs` is `chat`). Test code may reach anywhere, so code
//! after a file's first `#[cfg(test)]`, files declared as `#[cfg(test)]`
//! modules, and comments are left out. `super::` stays inside a module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Model code that still does what model code must not, as `(file under
/// src/, what it names)`. Fix one and remove it here; never add one.
const KNOWN: &[(&str, &str)] = &[];

/// Names of I/O a model file may not use.
const IO: &[&str] = &[
    "tokio",
    "tokio_util",
    "tokio_tungstenite",
    "sqlx",
    "reqwest",
    "axum",
    "hyper",
    "tower",
    "std::fs",
    "std::process",
    "std::net::TcpListener",
    "std::net::TcpStream",
    "std::net::UdpSocket",
];

fn src_dir() -> PathBuf {
    std::env::var_os("FB_LAYERING_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// One file's shipped code: before its first `#[cfg(test)]`, without
/// comments.
fn shipped(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or("");
    before_tests
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a file declares under `#[cfg(test)]` (`mod tests;`).
fn test_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(l) = lines.next() {
        if l == "#[cfg(test)]"
            && let Some(next) = lines.next()
            && let Some(name) = next
                .strip_prefix("mod ")
                .or_else(|| next.strip_prefix("pub mod "))
                .and_then(|r| r.strip_suffix(';'))
        {
            out.push(name.trim().to_owned());
        }
    }
    out
}

/// Every `.rs` file under `dir` that ships: files of `#[cfg(test)]`
/// modules (and everything under them) are left out.
fn shipped_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut skip: BTreeSet<PathBuf> = BTreeSet::new();
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for p in &entries {
        if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(p).unwrap();
            // `x/mod.rs` and `lib.rs` declare modules beside themselves;
            // `x.rs` declares them in `x/`.
            let stem = p.file_stem().unwrap().to_str().unwrap();
            let base = if stem == "mod" || stem == "lib" || stem == "main" {
                dir.to_path_buf()
            } else {
                dir.join(stem)
            };
            for m in test_modules(&text) {
                skip.insert(base.join(format!("{m}.rs")));
                skip.insert(base.join(&m));
            }
        }
    }
    for p in entries {
        if skip.contains(&p) {
            continue;
        }
        if p.is_dir() {
            shipped_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level modules named in `lib.rs`, and those its map marks
/// `(model)`: a line `//! - [`name`] (model...`.
fn modules(src: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let all = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    let model = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split_once("`]"))
        .filter(|(_, rest)| rest.trim_start().starts_with("(model"))
        .map(|(name, _)| name.to_owned())
        .collect();
    (all, model)
}

/// The module a file belongs to: `src/chat/card.rs` is `chat`.
fn owner(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level items a `{ .. }` group names, from just after its `{`:
/// `a, b::c, d::{e, f}` names `a`, `b` and `d`.
fn group(after_brace: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in after_brace.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if c.is_whitespace() => {}
            _ if start => {
                out.push(ident(&after_brace[i..]));
                start = false;
            }
            _ => {}
        }
    }
    out
}

/// The paths under `root::` a text names: `crate::a::b` and `crate::{a,
/// b}` name `a` and `b`; `std::fs` is `fs` under `std`.
fn named_under(code: &str, root: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pat = format!("{root}::");
    let mut at = 0;
    while let Some(i) = code[at..].find(&pat) {
        let start = at + i;
        at = start + pat.len();
        // A whole path segment: `my_crate::` is not `crate::`.
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at..];
        if let Some(g) = rest.strip_prefix('{') {
            out.extend(group(g));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// The I/O a text names, from [`IO`].
fn io_named(code: &str) -> BTreeSet<&'static str> {
    let std_parts = named_under(code, "std");
    IO.iter()
        .copied()
        .filter(|name| match name.strip_prefix("std::") {
            // A type like `std::net::TcpStream` is named in full.
            Some(path) if path.contains("::") => code.contains(name),
            Some(part) => std_parts.contains(part),
            None => {
                named_under(code, name).iter().next().is_some()
                    || code.lines().any(|l| {
                        let l = l.trim();
                        l == format!("use {name};") || l.starts_with(&format!("use {name} as"))
                    })
            }
        })
        .collect()
}

struct Measured {
    /// Module to the modules it imports.
    graph: BTreeMap<String, BTreeSet<String>>,
    /// `(file, what)` for each model file naming I/O or a non-model module.
    violations: BTreeSet<(String, String)>,
    model: BTreeSet<String>,
}

fn measure(src: &Path) -> Measured {
    let (mods, model) = modules(src);
    let mut files = Vec::new();
    shipped_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        mods.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    let mut violations = BTreeSet::new();
    for f in files {
        let Some(from) = owner(src, &f).filter(|m| mods.contains(m)) else {
            continue;
        };
        let code = shipped(&std::fs::read_to_string(&f).unwrap());
        let rel = f.strip_prefix(src).unwrap().display().to_string();
        for to in named_under(&code, "crate") {
            if to != from && mods.contains(&to) {
                if model.contains(&from) && !model.contains(&to) {
                    violations.insert((rel.clone(), format!("crate::{to}")));
                }
                graph.get_mut(&from).unwrap().insert(to);
            }
        }
        if model.contains(&from) {
            for io in io_named(&code) {
                violations.insert((rel.clone(), io.to_owned()));
            }
        }
    }
    Measured {
        graph,
        violations,
        model,
    }
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
fn modules_import_each_other_without_a_cycle() {
    let m = measure(&src_dir());
    for (from, to) in &m.graph {
        let kind = if m.model.contains(from) {
            "model"
        } else {
            "edge"
        };
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        eprintln!("{from} ({kind}) -> {}", to.join(", "));
    }
    let found = cycles(&m.graph);
    assert!(
        found.is_empty(),
        "modules import each other in a cycle; break it at its root (a type or trait in the lower module), not with a re-export: {found:?}"
    );
}

#[test]
fn model_modules_do_no_io_and_import_only_the_model() {
    let m = measure(&src_dir());
    assert!(
        m.model.len() >= 10,
        "lib.rs's map marks too few modules `(model)` to be read right: {:?}",
        m.model
    );
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(f, w)| (f.to_string(), w.to_string()))
        .collect();
    let new: Vec<_> = m.violations.difference(&known).collect();
    let fixed: Vec<_> = known.difference(&m.violations).collect();
    assert!(
        new.is_empty(),
        "model code (a module lib.rs marks `(model)`) names I/O or an edge module: {new:?}. \
         Pass what it needs in (a value, or a trait the edge implements) instead."
    );
    assert!(
        fixed.is_empty(),
        "fixed, so remove from KNOWN in tests/layering.rs: {fixed:?}"
    );
}

/// The measurement must see what it is there to catch, in a tree made for
/// it: a cycle, a model file importing an edge, a model file doing I/O,
/// and nothing in test code.
#[test]
fn the_measurement_catches_a_cycle_an_edge_import_and_io() {
    let dir = std::env::temp_dir().join(format!("fb-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("model")).unwrap();
    let write = |p: &str, text: &str| std::fs::write(dir.join(p), text).unwrap();
    write(
        "lib.rs",
        "//! - [`model`] (model): pure.\n//! - [`edge`] (I/O): talks.\n//! - [`other`] (task): runs.\npub mod edge;\npub mod model;\npub mod other;\n",
    );
    write(
        "model/mod.rs",
        "use crate::edge::Thing;\nuse std::{collections::BTreeMap, fs};\n#[cfg(test)]\nmod tests;\n",
    );
    write("model/tests.rs", "use crate::other::Anything;\n");
    write(
        "edge.rs",
        "use crate::{\n    model::Pure,\n    other,\n};\n// crate::nothing in a comment\n",
    );
    write(
        "other.rs",
        "pub fn f() { let _ = tokio::spawn(async {}); crate::edge::g() }\n#[cfg(test)]\nmod t { use crate::model; }\n",
    );
    let m = measure(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(m.model, BTreeSet::from(["model".to_owned()]));
    assert_eq!(
        m.graph["edge"],
        BTreeSet::from(["model".to_owned(), "other".to_owned()])
    );
    assert_eq!(m.graph["other"], BTreeSet::from(["edge".to_owned()]));
    assert_eq!(m.graph["model"], BTreeSet::from(["edge".to_owned()]));
    let v: Vec<(&str, &str)> = m
        .violations
        .iter()
        .map(|(f, w)| (f.as_str(), w.as_str()))
        .collect();
    assert_eq!(
        v,
        [("model/mod.rs", "crate::edge"), ("model/mod.rs", "std::fs")]
    );
    let c = cycles(&m.graph);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].len(), 3, "{c:?}");
}
