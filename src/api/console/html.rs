//! HTML for the console: escaping, and the page every view sits in.
//! Everything that came from outside (labels, annotations, run errors,
//! chat text, names) goes through [`esc`]; the views build markup from
//! literals and escaped values only, so an alert cannot add an element.

use std::fmt::Write as _;

/// `s` safe as element text and as a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one URL path segment inside an `href` (then escaped as an
/// attribute): an incident or run id cannot reach another path.
pub fn seg(s: &str) -> String {
    // `.` and `..` alone would still climb, so their dots are encoded.
    let dots_only = s == "." || s == "..";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~');
        if unreserved || (b == b'.' && !dots_only) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A moment with its day, for lists that span days.
pub fn day_and_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The chrome of every page: title, navigation, the banners that must be
/// on every page (blindness, chat not delivering, automation paused) and
/// when it was drawn.
pub struct Frame<'a> {
    pub title: &'a str,
    pub banners: &'a [Banner],
    /// When the page was drawn; empty on pages that show nothing live.
    pub drawn: &'a str,
    pub corner: Corner<'a>,
    /// What the page shows, as [`super::views::moment`] sums it up: a
    /// page with one is live (its script asks `/events` for changes).
    pub moment: Option<u64>,
}

/// Who the page is for, in its header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Corner<'a> {
    /// Sign-in is off: nobody to name.
    Nothing,
    /// Sign-in is on and nobody is signed in.
    SignIn,
    /// Signed in: who, and the sign-out form's CSRF token (none where
    /// signing out is not ours: behind a proxy).
    Person {
        label: &'a str,
        csrf: Option<&'a str>,
    },
}

/// A line at the top of every page, for what people must not miss.
#[derive(Clone, Debug, PartialEq)]
pub struct Banner {
    pub level: Level,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Level {
    Warn,
    Bad,
}

const STYLE: &str = "\
:root{color-scheme:light dark;--bad:#b3261e;--warn:#8a5a00;--ok:#1e6b34;--line:#8884}\
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:0 1rem 2rem}\
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;border-bottom:1px solid var(--line);padding:.75rem 0}\
header a{font-weight:600}nav a{margin-right:1rem}\
a{color:inherit}a:focus-visible{outline:3px solid #4a8cff;outline-offset:2px}\
.banner{padding:.5rem .75rem;margin:.75rem 0;border-radius:4px;border:2px solid}\
.bad{border-color:var(--bad);color:var(--bad)}.warn{border-color:var(--warn);color:var(--warn)}.ok{color:var(--ok)}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}\
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid var(--line)}\
td.when{white-space:nowrap}.wrap{overflow-x:auto}\
code{font-family:ui-monospace,monospace;font-size:.92em;overflow-wrap:anywhere}\
.muted{opacity:.75}footer{margin-top:2rem;font-size:.9em;opacity:.75}\
.who{margin-left:auto}form.act{display:inline}form.act button,.who button,form.cmd button{margin:0 .25rem .25rem 0;padding:.3rem .7rem;font:inherit;cursor:pointer}\
button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #4a8cff;outline-offset:2px}\
form.filters{display:flex;flex-wrap:wrap;gap:.35rem .6rem;align-items:center;margin:1rem 0}form.filters select,form.filters input,form.filters button{font:inherit;padding:.25rem .4rem}\
section.card{border:1px solid var(--line);border-left:4px solid var(--line);padding:.25rem 1rem;margin:.5rem 0 1rem}section.card h3{margin:.5rem 0}\
figure{margin:.5rem 0 1rem}figure img{max-width:100%;height:auto;border:1px solid var(--line)}figcaption{font-size:.9em;opacity:.8}\
form.cmd{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}form.cmd input{flex:1 1 16rem;font:inherit;padding:.3rem}\
pre.reply{white-space:pre-wrap;overflow-wrap:anywhere;border-left:4px solid var(--line);padding:.5rem .75rem}\
body.live .still,body:not(.live) .moving{display:none}\
caption{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}\
@media (max-width:40rem){body{font-size:14px;padding:0 .5rem 1.5rem}td.when{white-space:normal}th,td{padding:.3rem .3rem}}";

impl Frame<'_> {
    /// The whole page around `main` (already markup).
    pub fn page(&self, main: &str) -> String {
        let mut out = String::with_capacity(main.len() + 2048);
        let _ = write!(
            out,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} · firebreak</title><style>{STYLE}</style>{}</head><body{}>\
<header><a href=\"/\">firebreak</a><nav aria-label=\"sections\"><a href=\"/\">Now</a>\
<a href=\"/alerts\">Alerts</a><a href=\"/incidents\">Incidents</a><a href=\"/runs\">Runs</a>\
<a href=\"/checklists\">Checklists</a><a href=\"/silences\">Silences</a></nav>",
            esc(self.title),
            if self.moment.is_some() {
                "<script src=\"/console.js\" defer></script>"
            } else {
                ""
            },
            self.moment
                .map(|m| format!(" data-moment=\"{m}\""))
                .unwrap_or_default()
        );
        match self.corner {
            Corner::Nothing => {}
            Corner::SignIn => out.push_str("<a class=\"who\" href=\"/signin\">Sign in</a>"),
            Corner::Person {
                label,
                csrf: Some(csrf),
            } => {
                let _ = write!(
                    out,
                    "<form class=\"who\" method=\"post\" action=\"/signout\"><span>{}</span> \
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Sign out</button></form>",
                    esc(label),
                    esc(csrf)
                );
            }
            Corner::Person { label, csrf: None } => {
                let _ = write!(out, "<span class=\"who\">{}</span>", esc(label));
            }
        }
        out.push_str("</header><div id=\"banners\">");
        for b in self.banners {
            let class = match b.level {
                Level::Warn => "warn",
                Level::Bad => "bad",
            };
            let _ = write!(
                out,
                "<p class=\"banner {class}\" role=\"alert\">{}</p>",
                esc(&b.text)
            );
        }
        out.push_str("</div>");
        let _ = write!(out, "<main><h1>{}</h1>{main}</main>", esc(self.title));
        if !self.drawn.is_empty() {
            let _ = write!(
                out,
                "<footer>Drawn {}; <span class=\"still\">reload for what changed since.</span><span class=\"moving\">it changes as things happen.</span></footer>",
                esc(self.drawn)
            );
        }
        out.push_str("</body></html>");
        out
    }
}

/// A table with a header row; `rows` are already markup cells (`<td>`s).
pub fn table(caption: &str, head: &[&str], rows: &[String]) -> String {
    let mut out = String::from("<div class=\"wrap\"><table>");
    let _ = write!(out, "<caption>{}</caption><thead><tr>", esc(caption));
    for h in head {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(out, "<tr>{r}</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_attribute_break() {
        let hostile = r#"<script>alert("x")</script>' onmouseover='y' & more"#;
        let e = esc(hostile);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(esc("a&b"), "a&amp;b");
    }

    #[test]
    fn a_path_segment_cannot_climb_or_add_a_query() {
        assert_eq!(seg("launch-night_2"), "launch-night_2");
        assert_eq!(seg("../admin"), "..%2Fadmin");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("a?b#c d"), "a%3Fb%23c%20d");
    }

    #[test]
    fn every_banner_is_on_the_page_escaped() {
        let banners = [Banner {
            level: Level::Bad,
            text: "blind: <b>sim</b>".into(),
        }];
        let f = Frame {
            title: "Now",
            banners: &banners,
            drawn: "18:02:10 UTC",
            corner: Corner::Person {
                label: "<ana> (U1)",
                csrf: Some("c\"sf"),
            },
            moment: Some(7),
        };
        let page = f.page("<p>x</p>");
        assert!(
            page.contains("role=\"alert\">blind: &lt;b&gt;sim&lt;/b&gt;</p>"),
            "{page}"
        );
        assert!(page.starts_with("<!doctype html><html lang=\"en\">"));
        assert!(page.contains("name=\"viewport\""));
        assert!(page.contains("<span>&lt;ana&gt; (U1)</span>"), "{page}");
        assert!(page.contains("value=\"c&quot;sf\""), "{page}");
        assert!(
            page.contains(
                "<script src=\"/console.js\" defer></script></head><body data-moment=\"7\">"
            ),
            "{page}"
        );
    }
}
