//! The post-incident report's Markdown as HTML, for the incident page: the
//! same words `firebreak timeline --markdown` prints, drawn as a page.
//!
//! Only what [`crate::incident::Review::markdown_summary`] writes is
//! understood: headings, tables (with `\|` inside cells), paragraphs,
//! `**strong**` and `` `code` ``. Everything is escaped first and only
//! those tags are added after, so text from alerts and people stays text.

use std::fmt::Write as _;

use super::html::esc;

/// `md` as HTML; headings start at `<h2>` (the page has its `<h1>`).
pub fn to_html(md: &str) -> String {
    let mut out = String::new();
    let mut lines = md.lines().peekable();
    let mut paragraph: Vec<&str> = Vec::new();
    let flush = |out: &mut String, p: &mut Vec<&str>| {
        if !p.is_empty() {
            let _ = write!(out, "<p>{}</p>", inline(&p.join(" ")));
            p.clear();
        }
    };
    while let Some(line) = lines.next() {
        let t = line.trim_end();
        if t.is_empty() {
            flush(&mut out, &mut paragraph);
        } else if let Some((level, text)) = heading(t) {
            flush(&mut out, &mut paragraph);
            let _ = write!(out, "<h{level}>{}</h{level}>", inline(text));
        } else if t.starts_with('|') {
            flush(&mut out, &mut paragraph);
            let mut rows = vec![cells(t)];
            while let Some(next) = lines.peek().filter(|l| l.trim_start().starts_with('|')) {
                rows.push(cells(next.trim_end()));
                lines.next();
            }
            table(&mut out, &rows);
        } else {
            paragraph.push(t);
        }
    }
    flush(&mut out, &mut paragraph);
    out
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    let text = line[hashes..].strip_prefix(' ')?;
    (1..=5).contains(&hashes).then_some((hashes + 1, text))
}

/// A table row's cells: split at `|` that are not `\|`.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("never empty").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn is_rule(row: &[String]) -> bool {
    row.iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
}

fn table(out: &mut String, rows: &[Vec<String>]) {
    out.push_str("<div class=\"wrap\"><table>");
    let (head, body) = match rows {
        [head, rule, body @ ..] if is_rule(rule) => (Some(head), body),
        _ => (None, rows),
    };
    if let Some(head) = head {
        out.push_str("<thead><tr>");
        for c in head {
            let _ = write!(out, "<th scope=\"col\">{}</th>", inline(c));
        }
        out.push_str("</tr></thead>");
    }
    out.push_str("<tbody>");
    for r in body {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", inline(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// Escaped text with `**strong**` and `` `code` `` spans. An unpaired
/// marker is left as it was written.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    loop {
        let next = [("`", "code"), ("**", "strong")]
            .into_iter()
            .filter_map(|(m, tag)| rest.find(m).map(|at| (at, m, tag)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, marker, tag)) = next else {
            out.push_str(&esc(rest));
            return out;
        };
        let after = &rest[at + marker.len()..];
        let Some(end) = after.find(marker) else {
            out.push_str(&esc(rest));
            return out;
        };
        out.push_str(&esc(&rest[..at]));
        let _ = write!(out, "<{tag}>{}</{tag}>", esc(&after[..end]));
        rest = &after[end + marker.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reports_markdown_is_drawn_as_its_elements() {
        let md = "# Incident `launch`: post-incident report\n\n**Outcome:** mitigated.\n\n| | When | From the start |\n|---|---|---|\n| Began | 18:00:10 | 0s |\n\nTime to detect **35s**,\nto mitigate **1m**.\n";
        assert_eq!(
            to_html(md),
            "<h2>Incident <code>launch</code>: post-incident report</h2>\
<p><strong>Outcome:</strong> mitigated.</p>\
<div class=\"wrap\"><table><thead><tr><th scope=\"col\"></th><th scope=\"col\">When</th><th scope=\"col\">From the start</th></tr></thead>\
<tbody><tr><td>Began</td><td>18:00:10</td><td>0s</td></tr></tbody></table></div>\
<p>Time to detect <strong>35s</strong>, to mitigate <strong>1m</strong>.</p>"
        );
    }

    #[test]
    fn text_from_outside_stays_text() {
        let md = "| Time | Who | What |\n|---|---|---|\n| 1 | <b>eve</b> | a \\| b `<script>` **<i>x</i>** |\n";
        let html = to_html(md);
        assert!(html.contains("<td>&lt;b&gt;eve&lt;/b&gt;</td>"), "{html}");
        assert!(
            html.contains(
                "<td>a | b <code>&lt;script&gt;</code> <strong>&lt;i&gt;x&lt;/i&gt;</strong></td>"
            ),
            "{html}"
        );
        assert!(!html.contains("<script>") && !html.contains("<i>"));
        assert_eq!(inline("a ** b"), "a ** b");
        assert_eq!(inline("`x"), "`x");
    }
}
