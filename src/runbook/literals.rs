//! Literals that only the embedded simulator scenario defines.
//!
//! A runbook that calls or compares with `cohost`, `main` or `launch` works
//! on the 2023 replay and on no other event: the accounts, rooms, speakers
//! and event of a real night have other names, which the platform (its
//! admin API, its metrics, the alert's labels) knows. Validation warns
//! about such a literal. The ids are handed in as a [`Fixture`], which the
//! loader reads from the embedded scenario itself, so the list follows the
//! scenario when it changes.
//!
//! Only whole values count: a string that *is* `main`, or a quoted `'main'`
//! inside a template expression, not the word inside a sentence or a path.

use serde_json::Value as Json;

/// The ids of the scenario runbooks must not be written against, each with
/// what it names there ("an account").
#[derive(Clone, Debug, Default)]
pub struct Fixture {
    ids: Vec<(String, &'static str)>,
}

impl Fixture {
    pub fn new(ids: Vec<(String, &'static str)>) -> Self {
        Fixture { ids }
    }

    /// What `value`, taken whole, names in the scenario ("an account and a
    /// speaker"), or `None` when it names nothing there.
    pub fn names(&self, value: &str) -> Option<String> {
        let kinds: Vec<&str> = self
            .ids
            .iter()
            .filter(|(id, _)| id == value)
            .map(|(_, kind)| *kind)
            .collect();
        if kinds.is_empty() {
            None
        } else {
            Some(kinds.join(" and "))
        }
    }

    /// The warning for `value`, if it names an id of the scenario.
    pub fn warning(&self, value: &str) -> Option<String> {
        self.names(value).map(|kind| {
            format!(
                "{value:?} is {kind} of the built-in simulator scenario; read it from the platform \
                 (an `http` step on its admin API, or the alert's labels) so the runbook works on other events"
            )
        })
    }

    /// Every `(field, warning)` for the strings under a step's `with:`: whole
    /// values, and literals inside their template tags. Object keys are field
    /// names, not values, and are left alone.
    pub fn in_with(&self, v: &Json, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            Json::String(s) => {
                let whole = self.warning(s.trim());
                let inside = quoted_in_template(s)
                    .into_iter()
                    .filter_map(|lit| self.warning(&lit));
                out.extend(
                    whole
                        .into_iter()
                        .chain(inside)
                        .map(|w| (path.to_owned(), w)),
                );
            }
            Json::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, x)| self.in_with(x, &format!("{path}[{i}]"), out)),
            Json::Object(map) => map
                .iter()
                .for_each(|(k, x)| self.in_with(x, &format!("{path}.{k}"), out)),
            _ => {}
        }
    }
}

/// The string literals quoted inside an expression, such as a `when:`
/// condition (`inputs.room == 'main'`).
pub fn quoted(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut lit = String::new();
        let mut closed = false;
        while let Some(d) = chars.next() {
            match d {
                '\\' => {
                    if let Some(e) = chars.next() {
                        lit.push(e);
                    }
                }
                d if d == c => {
                    closed = true;
                    break;
                }
                d => lit.push(d),
            }
        }
        if closed {
            out.push(lit);
        }
    }
    out
}

/// The literals quoted inside the `{{ }}` and `{% %}` tags of a template;
/// the text around the tags is prose, not a comparison.
pub fn quoted_in_template(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    // One scan for whichever tag comes first: searching for each kind from
    // the start again on every tag was quadratic in a template of
    // thousands of tags (found by tests/hostile_props.rs).
    let next_tag = |s: &str| {
        s.match_indices('{')
            .map(|(i, _)| i)
            .find(|&i| matches!(s.as_bytes().get(i + 1), Some(b'{' | b'%')))
    };
    while let Some(open) = next_tag(rest) {
        let close_tag = if rest[open..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let inner = &rest[open + 2..];
        let Some(close) = inner.find(close_tag) else {
            break;
        };
        out.extend(quoted(&inner[..close]));
        rest = &inner[close + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> Fixture {
        Fixture::new(vec![
            ("cohost".into(), "an account"),
            ("owner".into(), "an account"),
            ("owner".into(), "a speaker"),
            ("main".into(), "a room"),
            ("launch".into(), "the event"),
        ])
    }

    #[test]
    fn a_value_names_every_kind_it_is() {
        let f = fixture();
        assert_eq!(
            f.names("owner").as_deref(),
            Some("an account and a speaker")
        );
        assert_eq!(f.names("launch").as_deref(), Some("the event"));
        assert_eq!(f.names("harbour-radio"), None);
        assert_eq!(Fixture::default().names("main"), None);
    }

    #[test]
    fn only_whole_values_and_quoted_literals_count() {
        let mut out = Vec::new();
        fixture().in_with(
            &json!({
                "account": "cohost",
                "path": "/api/v1/rooms/main",
                "text": "the main room is on the host's account",
                "room": "{{ steps.before.room }}",
                "title": "{{ 'launch' if x else inputs.event }}",
                "main": 1
            }),
            "steps[0].with",
            &mut out,
        );
        let fields: Vec<&str> = out.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["steps[0].with.account", "steps[0].with.title"]);
        assert!(
            out[0]
                .1
                .starts_with("\"cohost\" is an account of the built-in")
        );
        assert!(out[1].1.starts_with("\"launch\" is the event of"));
    }

    #[test]
    fn quoted_literals_in_expressions() {
        assert_eq!(
            quoted(r#"inputs.room == 'main' and x != "it\"s""#),
            ["main", "it\"s"]
        );
        assert_eq!(quoted("steps.room.cap is none"), Vec::<String>::new());
        assert_eq!(
            quoted_in_template("'host' {% if a == 'host' %}{{ b }}{% endif %}"),
            ["host"]
        );
    }
}
