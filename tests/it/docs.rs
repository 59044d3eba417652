//! The docs cannot rot: every relative link in the repository's Markdown
//! resolves (to a file, and to a heading when it names one) without
//! leaving the repository, and every YAML snippet is an excerpt of a real
//! file that a test validates. Snippet setups under `docs/snippets/` are
//! validated here; the other places a snippet may come from have their
//! own tests (the shipped rules and runbooks, `deploy/`, `examples/`, the
//! files `firebreak init` writes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every Markdown file of the repository, as paths relative to its root.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                    walk(root, &p, out);
                }
            } else if name.ends_with(".md") {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &root(), &mut out);
    out
}

/// The lines of `text` outside fenced code blocks, with inline code
/// blanked, so a link shown as an example is not checked as one.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(f) = &fence {
            if t.starts_with(f.as_str()) {
                fence = None;
            }
            continue;
        }
        if t.starts_with("```") || t.starts_with("~~~") {
            fence = Some(t[..3].to_owned());
            continue;
        }
        let mut clean = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                clean.push(' ');
            } else {
                clean.push(if in_code { ' ' } else { c });
            }
        }
        out.push((i + 1, clean));
    }
    out
}

/// Link destinations on a line: `[text](dest)`, `![alt](dest "title")`,
/// and reference definitions `[id]: dest`.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while let Some(off) = line[i..].find("](") {
        let start = i + off + 2;
        let mut depth = 0;
        let mut end = start;
        while end < b.len() {
            match b[end] {
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                _ => {}
            }
            end += 1;
        }
        let dest = line[start..end].split_whitespace().next().unwrap_or("");
        let dest = dest.trim_start_matches('<').trim_end_matches('>');
        if !dest.is_empty() {
            out.push(dest.to_owned());
        }
        i = end.min(b.len());
        if i >= b.len() {
            break;
        }
    }
    let t = line.trim_start();
    if t.starts_with('[')
        && !t.starts_with("[ ]")
        && !t.starts_with("[x]")
        && let Some(close) = t.find("]:")
        && let Some(dest) = t[close + 2..].split_whitespace().next()
    {
        out.push(dest.to_owned());
    }
    out
}

/// GitHub's anchor for a heading: lowercased, punctuation dropped
/// (but `-` and `_`), spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown file offers: its headings' slugs (a repeated
/// one numbered as GitHub does) and explicit `<a name|id="...">`s.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        if let Some(h) = t.strip_prefix('#') {
            let h = h.trim_start_matches('#');
            if h.starts_with(' ') {
                let s = slug(h);
                let n = seen.entry(s.clone()).or_insert(0);
                out.insert(if *n == 0 {
                    s.clone()
                } else {
                    format!("{s}-{n}")
                });
                *n += 1;
            }
        }
        for attr in ["name=\"", "id=\""] {
            let mut rest = line;
            while let Some(p) = rest.find(attr) {
                let after = &rest[p + attr.len()..];
                if let Some(q) = after.find('"') {
                    out.insert(after[..q].to_owned());
                }
                rest = after;
            }
        }
    }
    out
}

/// `path` with `.` and `..` resolved, or None when it climbs out.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with one link of `file` (relative to the root).
fn check_link(file: &Path, dest: &str) -> Option<String> {
    let lower = dest.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
    {
        return None;
    }
    if lower.contains("://") || lower.starts_with("file:") {
        return Some(format!(
            "{dest}: a link must be http(s) or a path in the repository"
        ));
    }
    let (path, anchor) = match dest.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (dest, None),
    };
    let target = if path.is_empty() {
        file.to_path_buf()
    } else {
        if path.starts_with('/') {
            return Some(format!(
                "{dest}: an absolute path is outside the repository"
            ));
        }
        let joined = file.parent().unwrap_or(Path::new("")).join(path);
        match normalise(&joined) {
            Some(p) => p,
            None => return Some(format!("{dest}: points outside the repository")),
        }
    };
    let full = root().join(&target);
    if !full.exists() {
        return Some(format!("{dest}: {} does not exist", target.display()));
    }
    if let Some(a) = anchor
        && target.extension().is_some_and(|e| e == "md")
        && !anchors(&std::fs::read_to_string(&full).unwrap()).contains(a)
    {
        return Some(format!("{dest}: {} has no heading #{a}", target.display()));
    }
    None
}

#[test]
fn every_relative_link_resolves_inside_the_repository() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for f in markdown_files() {
        let text = std::fs::read_to_string(root().join(&f)).unwrap();
        for (n, line) in prose_lines(&text) {
            for dest in links(&line) {
                checked += 1;
                if let Some(why) = check_link(&f, &dest) {
                    bad.push(format!("{}:{n}: {why}", f.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
    assert!(
        checked > 20,
        "only {checked} links found: is the parser blind?"
    );
}

/// A YAML snippet in the docs: where it is, the file it says it is from,
/// and its lines after that first line.
struct Snippet {
    at: String,
    from: Option<String>,
    lines: Vec<String>,
}

fn yaml_snippets(file: &Path, text: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut open: Option<(usize, bool, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match &mut open {
            None => {
                if let Some(lang) = t.strip_prefix("```") {
                    let lang = lang.trim().to_ascii_lowercase();
                    open = Some((i + 1, lang == "yaml" || lang == "yml", Vec::new()));
                }
            }
            Some((start, is_yaml, body)) => {
                if t.starts_with("```") {
                    if *is_yaml {
                        let from = body
                            .first()
                            .and_then(|l| l.trim().strip_prefix("# file:"))
                            .map(|p| p.trim().to_owned());
                        let lines = if from.is_some() {
                            body[1..].to_vec()
                        } else {
                            body.clone()
                        };
                        out.push(Snippet {
                            at: format!("{}:{start}", file.display()),
                            from,
                            lines,
                        });
                    }
                    open = None;
                } else {
                    body.push(line.to_owned());
                }
            }
        }
    }
    out
}

/// Whether `snippet` is a run of consecutive lines of `file`, allowing the
/// excerpt to be dedented as a whole.
fn is_excerpt(snippet: &[String], file: &str) -> bool {
    let file: Vec<&str> = file.lines().map(str::trim_end).collect();
    let snip: Vec<&str> = snippet.iter().map(|l| l.trim_end()).collect();
    let snip = {
        let mut s = snip.as_slice();
        while s.first().is_some_and(|l| l.is_empty()) {
            s = &s[1..];
        }
        while s.last().is_some_and(|l| l.is_empty()) {
            s = &s[..s.len() - 1];
        }
        s
    };
    if snip.is_empty() {
        return false;
    }
    file.windows(snip.len()).any(|w| {
        let first = w[0];
        let indent = first.len() - first.trim_start().len();
        if first.trim_start() != snip[0].trim_start() {
            return false;
        }
        let dedent = indent - (snip[0].len() - snip[0].trim_start().len()).min(indent);
        w.iter().zip(snip).all(|(f, s)| {
            if f.is_empty() || s.is_empty() {
                return f.is_empty() && s.is_empty();
            }
            f.len() >= dedent && f[..dedent].trim().is_empty() && &f[dedent..] == *s
        })
    })
}

/// Places a snippet may come from: each has a test that validates it.
const VALIDATED: &[&str] = &[
    "alerts/",
    "runbooks/",
    "deploy/",
    "docs/snippets/",
    "examples/",
    "src/cli/init/",
    "src/sim/scenarios/",
    "tests/scenarios/",
];

#[test]
fn every_yaml_snippet_is_an_excerpt_of_a_validated_file() {
    let mut bad = Vec::new();
    let mut count = 0;
    for f in markdown_files() {
        let text = std::fs::read_to_string(root().join(&f)).unwrap();
        for s in yaml_snippets(&f, &text) {
            count += 1;
            let Some(from) = &s.from else {
                bad.push(format!(
                    "{}: a YAML snippet must start with `# file: PATH`, the file it is an excerpt of",
                    s.at
                ));
                continue;
            };
            if !VALIDATED.iter().any(|p| from.starts_with(p)) {
                bad.push(format!(
                    "{}: {from} is not in a validated place ({})",
                    s.at,
                    VALIDATED.join(", ")
                ));
                continue;
            }
            match std::fs::read_to_string(root().join(from)) {
                Err(e) => bad.push(format!("{}: {from}: {e}", s.at)),
                Ok(file) => {
                    if !is_excerpt(&s.lines, &file) {
                        bad.push(format!(
                            "{}: the snippet is not a run of lines of {from}",
                            s.at
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "snippets:\n{}", bad.join("\n"));
    assert!(count > 0, "no YAML snippets found");
}

fn firebreak(args: &[&str], dir: &Path) -> (bool, String) {
    let (code, out) = crate::common::firebreak_in(dir, args);
    (code == 0, out)
}

fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Each `docs/snippets/<topic>/` is a whole setup: its config validates
/// with its rules and runbooks, and their tests pass.
#[test]
fn every_snippet_setup_validates_and_its_tests_pass() {
    let dir = root().join("docs/snippets");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut topics: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    topics.sort();
    for topic in topics {
        // Copied, so a run's store or lock never lands in the repository.
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&topic, tmp.path());
        let t = tmp.path();
        let name = topic.display().to_string();
        if t.join("firebreak.yaml").exists() {
            let (ok, out) = firebreak(&["validate", "-c", "firebreak.yaml", "--offline"], t);
            assert!(ok, "{name}: validate:\n{out}");
            assert!(!out.contains("warning"), "{name}: validate warns:\n{out}");
            if !files_under(t, ".test.yaml").is_empty() {
                let (ok, out) = firebreak(&["test", "runbooks", "-c", "firebreak.yaml"], t);
                assert!(ok, "{name}: test runbooks:\n{out}");
            }
        }
        for test in files_under(t, ".test.yml") {
            let (ok, out) = firebreak(&["test", "rules", &test.display().to_string()], t);
            assert!(ok, "{name}: test rules {}:\n{out}", test.display());
        }
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn the_link_and_snippet_checks_catch_what_they_are_for() {
    let readme = Path::new("README.md");
    assert!(check_link(readme, "../shared/DESIGN.md").is_some());
    assert!(check_link(readme, "/etc/passwd").is_some());
    assert!(check_link(readme, "docs/no-such-page.md").is_some());
    assert!(check_link(readme, "README.md#no-such-heading").is_some());
    assert!(check_link(readme, "file:///etc/passwd").is_some());
    assert!(check_link(readme, "https://prometheus.io/docs/").is_none());
    assert!(check_link(readme, "Cargo.toml").is_none());
    assert_eq!(slug("Alert rules: `alerts/*.yml`"), "alert-rules-alertsyml");
    assert_eq!(
        slug("Safety: rollback, verification"),
        "safety-rollback-verification"
    );
    assert_eq!(
        links("see [a](x.md#y) and ![b](img.png \"t\") and `[c](nope)`"),
        vec!["x.md#y", "img.png", "nope"]
    );
    let file = "a:\n  b:\n    c: 1\n    d: 2\ne: 3\n";
    assert!(is_excerpt(&["c: 1".into(), "d: 2".into()], file));
    assert!(is_excerpt(&["  b:".into(), "    c: 1".into()], file));
    assert!(!is_excerpt(&["c: 1".into(), "e: 3".into()], file));
    assert!(!is_excerpt(&["c: 2".into()], file));
}
