//! Text from outside (alert labels and annotations, platform answers,
//! people's display names) made safe for where the bot shows it.
//!
//! Slack reads `<...>` as a control sequence: `<!channel>` pings everyone,
//! `<@U…>` mentions a person, `<https://evil|Open the runbook>` is a link
//! that reads as something else. Slack's rule is to escape `&`, `<` and
//! `>` as entities; the bot's own formatting (`*bold*`, `` `code` ``,
//! dates it writes itself) is left alone because it never passes through
//! here. A terminal reads control characters: an escape sequence in a
//! label could rewrite what an operator sees, so the console shows them
//! as visible escapes instead.

/// `s` with `&`, `<` and `>` as Slack's entities.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// [`escape`]d and then cut to at most `max` characters, the last an
/// ellipsis when cut, never in the middle of an entity (half an entity
/// would show as text, and a cut `&lt` could join what follows).
pub fn escape_clipped(s: &str, max: usize) -> String {
    let full = escape(s);
    if full.chars().count() <= max {
        return full;
    }
    let room = max.saturating_sub(1);
    let (mut out, mut used) = (String::new(), 0);
    let mut one = String::with_capacity(5);
    for c in s.chars() {
        one.clear();
        push_escaped(&mut one, c);
        let n = one.chars().count();
        if used + n > room {
            break;
        }
        out.push_str(&one);
        used += n;
    }
    out.push('…');
    out
}

/// `s` for a terminal: control characters other than newline and tab are
/// shown as `\u{1b}` and the like instead of being acted on.
pub fn for_terminal(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_become_entities() {
        for (raw, want) in [
            ("<!channel>", "&lt;!channel&gt;"),
            ("<!here> now", "&lt;!here&gt; now"),
            ("<@U024BE7LH>", "&lt;@U024BE7LH&gt;"),
            (
                "<https://evil.example|Open the runbook>",
                "&lt;https://evil.example|Open the runbook&gt;",
            ),
            ("a & b", "a &amp; b"),
            ("&lt;", "&amp;lt;"),
            ("*bold* `code` _it_", "*bold* `code` _it_"),
        ] {
            assert_eq!(escape(raw), want, "{raw}");
        }
    }

    #[test]
    fn clipping_never_splits_an_entity() {
        assert_eq!(escape_clipped("<<<<", 9), "&lt;&lt;…");
        assert_eq!(escape_clipped("<<", 8), "&lt;&lt;");
        assert_eq!(escape_clipped("abc", 3), "abc");
        assert_eq!(escape_clipped("abcd", 3), "ab…");
        for max in 1..30 {
            let s = escape_clipped("x<y&z>w".repeat(3).as_str(), max);
            assert!(s.chars().count() <= max, "{max}: {s}");
            let body = s.trim_end_matches('…');
            // Every `&` starts a whole entity.
            for (i, _) in body.match_indices('&') {
                let rest = &body[i..];
                assert!(
                    rest.starts_with("&lt;")
                        || rest.starts_with("&gt;")
                        || rest.starts_with("&amp;"),
                    "{max}: {s}"
                );
            }
        }
    }

    #[test]
    fn terminals_see_control_characters_spelled_out() {
        assert_eq!(for_terminal("room\x1b[2Jmain"), "room\\u{1b}[2Jmain");
        assert_eq!(for_terminal("a\nb\tc"), "a\nb\tc");
        assert!(matches!(
            for_terminal("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
