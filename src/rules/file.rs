//! Prometheus rule files: the YAML format, and its validation into rule
//! groups the engine can run.
//!
//! Owns the raw (as written, with positions) and validated types, and
//! every check Prometheus makes when it loads rules: PromQL that parses,
//! durations, unique group names, exactly one of `alert`/`record`, valid
//! label and metric names, fields recording rules may not have, and
//! annotation/label templates that parse; and what depends on where the
//! rules run ([`RuleFileOptions`]). Every problem is collected with its
//! `file:line:col` and field path, so a user fixes a file in one pass.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::template::Template;
use crate::diag::{Diagnostic, Diagnostics, Pos, Sp, from_yaml};
use crate::duration::Millis;
use crate::duration::PromDuration;
use crate::labels::Labels;
use crate::matchers::is_valid_label_name;
use crate::promql::{self, Expr};

/// Prometheus's default `evaluation_interval`.
pub const DEFAULT_EVALUATION_INTERVAL_MS: Millis = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<Sp<RawGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<Sp<String>>,
    interval: Option<Sp<String>>,
    limit: Option<Sp<i64>>,
    #[serde(default)]
    labels: BTreeMap<String, Sp<String>>,
    #[serde(default)]
    rules: Vec<Sp<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    alert: Option<Sp<String>>,
    record: Option<Sp<String>>,
    expr: Option<Sp<String>>,
    #[serde(rename = "for")]
    for_: Option<Sp<String>>,
    keep_firing_for: Option<Sp<String>>,
    #[serde(default)]
    labels: BTreeMap<String, Sp<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, Sp<String>>,
}

/// A loaded rule file.
#[derive(Clone, Debug)]
pub struct RuleFile {
    pub file: String,
    pub groups: Vec<RuleGroup>,
}

/// One group: rules evaluated in order, every `interval`.
#[derive(Clone, Debug)]
pub struct RuleGroup {
    pub name: String,
    /// The file the group came from, part of its identity as in Prometheus.
    pub file: String,
    pub interval_ms: Millis,
    /// Maximum alerts (alerting rules) or series (recording rules) a rule
    /// of this group may produce; 0 means no limit.
    pub limit: usize,
    /// Labels added to every rule's output; rule labels win on conflict.
    pub labels: Labels,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(a) => &a.name,
            Rule::Recording(r) => &r.record,
        }
    }

    pub fn expr_text(&self) -> &str {
        match self {
            Rule::Alerting(a) => &a.expr_text,
            Rule::Recording(r) => &r.expr_text,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AlertingRule {
    pub name: String,
    pub expr: Expr,
    pub expr_text: String,
    pub for_ms: Millis,
    pub keep_firing_for_ms: Millis,
    /// Label values are templates, expanded per alert.
    pub labels: Vec<(String, Template)>,
    pub annotations: Vec<(String, Template)>,
}

#[derive(Clone, Debug)]
pub struct RecordingRule {
    pub record: String,
    pub expr: Expr,
    pub expr_text: String,
    pub labels: Labels,
}

/// Whether `s` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Why a template may not call `query` when rules are evaluated through a
/// remote Prometheus API: each evaluation fetches the rules' expressions,
/// and a template's query is only known as it renders, alert by alert.
pub const REMOTE_TEMPLATE_QUERY: &str = "`query` in a template needs the local evaluator: with `sources.prometheus` the rules are evaluated through that API, which is asked for each rule's expression only; put what the template queries into the rule's expression (or a recording rule's), or scrape instead";

/// What a rule file may use, given how its rules will run.
#[derive(Clone, Copy, Debug)]
pub struct RuleFileOptions {
    /// The `evaluation_interval` for groups that do not set `interval`.
    pub default_interval_ms: Millis,
    /// Whether templates may call `query`: not when rules are evaluated
    /// through a remote API (see [`REMOTE_TEMPLATE_QUERY`]).
    pub template_queries: bool,
}

/// Parses and validates a rule file, with Prometheus's default evaluation
/// interval (1m) for groups without `interval`.
pub fn parse_rule_file(file_name: &str, text: &str) -> Result<RuleFile, Diagnostics> {
    parse_rule_file_with(file_name, text, DEFAULT_EVALUATION_INTERVAL_MS)
}

/// Parses and validates a rule file; `default_interval_ms` is the
/// `evaluation_interval` for groups that do not set `interval`.
pub fn parse_rule_file_with(
    file_name: &str,
    text: &str,
    default_interval_ms: Millis,
) -> Result<RuleFile, Diagnostics> {
    parse_rule_file_opts(
        file_name,
        text,
        RuleFileOptions {
            default_interval_ms,
            template_queries: true,
        },
    )
}

/// Parses and validates a rule file for rules that run as `opts` says.
pub fn parse_rule_file_opts(
    file_name: &str,
    text: &str,
    opts: RuleFileOptions,
) -> Result<RuleFile, Diagnostics> {
    let default_interval_ms = opts.default_interval_ms;
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: Vec::new() }
    } else {
        from_yaml(file_name, text)?
    };
    let mut v = Validator {
        file: file_name,
        text,
        diags: Diagnostics::new(),
        template_queries: opts.template_queries,
    };
    let mut groups = Vec::new();
    let mut seen: BTreeMap<String, Option<Pos>> = BTreeMap::new();
    for (gi, g) in raw.groups.iter().enumerate() {
        let path = format!("groups[{gi}]");
        // Checked on the raw name so a duplicate is reported even when
        // either group has other errors.
        if let Some(name) = &g.value.name {
            let name_pos = Pos::of(name);
            if let Some(first) = seen.get(&name.value) {
                let where_ =
                    first.map_or(String::new(), |p| format!(" (first at line {})", p.line));
                v.push(
                    name_pos,
                    format!("{path}.name"),
                    format!(
                        "duplicate group name {:?}{where_}; group names must be unique within a file",
                        name.value
                    ),
                );
            } else {
                seen.insert(name.value.clone(), name_pos);
            }
        }
        if let Some(group) = v.group(&path, g, default_interval_ms) {
            groups.push(group);
        }
    }
    v.diags.sorted().into_result(RuleFile {
        file: file_name.to_owned(),
        groups,
    })
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    diags: Diagnostics,
    template_queries: bool,
}

impl Validator<'_> {
    fn push(&mut self, pos: Option<Pos>, field: impl Into<String>, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, pos, field, message));
    }

    fn duration(&mut self, path: &str, d: &Option<Sp<String>>) -> Option<Millis> {
        let d = d.as_ref()?;
        match PromDuration::parse(d.value.trim()) {
            Ok(v) => Some(v.as_millis() as Millis),
            Err(e) => {
                self.push(Pos::of(d), path, e.to_string());
                None
            }
        }
    }

    fn group(
        &mut self,
        path: &str,
        g: &Sp<RawGroup>,
        default_interval: Millis,
    ) -> Option<RuleGroup> {
        let gpos = Pos::of(g);
        let g = &g.value;
        let before = self.diags.len();
        let name = match &g.name {
            Some(n) if !n.value.trim().is_empty() => n.value.clone(),
            Some(n) => {
                self.push(
                    Pos::of(n),
                    format!("{path}.name"),
                    "group name must not be empty",
                );
                String::new()
            }
            None => {
                self.push(gpos, format!("{path}.name"), "missing group name");
                String::new()
            }
        };
        let interval = self
            .duration(&format!("{path}.interval"), &g.interval)
            .filter(|i| *i > 0)
            .unwrap_or(default_interval);
        let limit = match &g.limit {
            Some(l) if l.value < 0 => {
                self.push(
                    Pos::of(l),
                    format!("{path}.limit"),
                    "limit must be 0 (no limit) or a positive number",
                );
                0
            }
            Some(l) => usize::try_from(l.value).unwrap_or(0),
            None => 0,
        };
        let labels = self.plain_labels(&format!("{path}.labels"), &g.labels);
        if g.rules.is_empty() {
            // Prometheus accepts empty groups; nothing to check.
        }
        let mut rules = Vec::new();
        for (ri, r) in g.rules.iter().enumerate() {
            if let Some(rule) = self.rule(&format!("{path}.rules[{ri}]"), r) {
                rules.push(rule);
            }
        }
        (self.diags.len() == before).then(|| RuleGroup {
            name,
            file: self.file.to_owned(),
            interval_ms: interval,
            limit,
            labels,
            rules,
        })
    }

    fn plain_labels(&mut self, path: &str, raw: &BTreeMap<String, Sp<String>>) -> Labels {
        let mut out = Labels::new();
        for (k, v) in raw {
            if !is_valid_label_name(k) {
                self.push(
                    Pos::of(v),
                    format!("{path}.{k}"),
                    format!("invalid label name {k:?}; label names match [a-zA-Z_][a-zA-Z0-9_]*"),
                );
                continue;
            }
            out.set(k.clone(), v.value.clone());
        }
        out
    }

    fn templates(
        &mut self,
        path: &str,
        raw: &BTreeMap<String, Sp<String>>,
        what: &str,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (k, v) in raw {
            let field = format!("{path}.{k}");
            if !is_valid_label_name(k) {
                self.push(
                    Pos::of(v),
                    field.clone(),
                    format!("invalid {what} name {k:?}; names match [a-zA-Z_][a-zA-Z0-9_]*"),
                );
                continue;
            }
            match Template::parse(&v.value) {
                Ok(t) => match t.calls("query").filter(|_| !self.template_queries) {
                    Some((line, col)) => {
                        let pos = self.inside_scalar(v, line, col);
                        self.push(pos, field, REMOTE_TEMPLATE_QUERY);
                    }
                    None => out.push((k.clone(), t)),
                },
                Err(e) => {
                    let pos = self.inside_scalar(v, e.line, e.col);
                    self.push(pos, field, format!("invalid template: {}", e.message));
                }
            }
        }
        out
    }

    fn rule(&mut self, path: &str, r: &Sp<RawRule>) -> Option<Rule> {
        let rpos = Pos::of(r);
        let raw = &r.value;
        let before = self.diags.len();
        let expr = match &raw.expr {
            None => {
                self.push(
                    rpos,
                    format!("{path}.expr"),
                    "missing expr; every rule needs a PromQL expression",
                );
                None
            }
            Some(e) => match promql::parse(&e.value) {
                Ok(x) => Some((x, e.value.clone())),
                Err(err) => {
                    let pos = match err.line_col(&e.value) {
                        Some((l, c)) => self.inside_scalar(e, l, c),
                        None => Pos::of(e),
                    };
                    self.push(
                        pos,
                        format!("{path}.expr"),
                        format!("invalid PromQL: {}", err.message),
                    );
                    None
                }
            },
        };
        let for_ms = self
            .duration(&format!("{path}.for"), &raw.for_)
            .unwrap_or(0);
        let keep_ms = self
            .duration(&format!("{path}.keep_firing_for"), &raw.keep_firing_for)
            .unwrap_or(0);
        match (&raw.alert, &raw.record) {
            (Some(a), Some(rec)) => {
                let _ = a;
                self.push(
                    Pos::of(rec),
                    format!("{path}.record"),
                    "a rule has either alert (an alerting rule) or record (a recording rule), not both",
                );
                None
            }
            (None, None) => {
                self.push(
                    rpos,
                    path.to_owned(),
                    "a rule needs one of alert (an alerting rule) or record (a recording rule)",
                );
                None
            }
            (Some(a), None) => {
                if a.value.trim().is_empty() {
                    self.push(
                        Pos::of(a),
                        format!("{path}.alert"),
                        "alert name must not be empty",
                    );
                }
                let labels = self.templates(&format!("{path}.labels"), &raw.labels, "label");
                let annotations = self.templates(
                    &format!("{path}.annotations"),
                    &raw.annotations,
                    "annotation",
                );
                let (expr, expr_text) = expr?;
                (self.diags.len() == before).then(|| {
                    Rule::Alerting(AlertingRule {
                        name: a.value.clone(),
                        expr,
                        expr_text,
                        for_ms,
                        keep_firing_for_ms: keep_ms,
                        labels,
                        annotations,
                    })
                })
            }
            (None, Some(rec)) => {
                if !is_valid_metric_name(&rec.value) {
                    self.push(
                        Pos::of(rec),
                        format!("{path}.record"),
                        format!("invalid recording rule name {:?}; metric names match [a-zA-Z_:][a-zA-Z0-9_:]*", rec.value),
                    );
                }
                for (field, present) in [
                    ("for", raw.for_.as_ref()),
                    ("keep_firing_for", raw.keep_firing_for.as_ref()),
                ] {
                    if let Some(p) = present {
                        self.push(
                            Pos::of(p),
                            format!("{path}.{field}"),
                            format!("{field} is only valid in alerting rules, not in recording rule {:?}", rec.value),
                        );
                    }
                }
                if let Some(first) = raw.annotations.values().next() {
                    self.push(
                        Pos::of(first),
                        format!("{path}.annotations"),
                        format!("annotations are only valid in alerting rules, not in recording rule {:?}", rec.value),
                    );
                }
                let labels = self.plain_labels(&format!("{path}.labels"), &raw.labels);
                let (expr, expr_text) = expr?;
                (self.diags.len() == before).then(|| {
                    Rule::Recording(RecordingRule {
                        record: rec.value.clone(),
                        expr,
                        expr_text,
                        labels,
                    })
                })
            }
        }
    }

    /// Where (line, col), 1-based inside a scalar's value, is in the file.
    /// The reader places a value at its first character (the opening quote
    /// of a quoted scalar; the first content line of a `|` block), so this
    /// is exact for single-line values and for block scalars, whose lines
    /// all start at that column; folded multi-line quoted values get the
    /// right line and an approximate column.
    fn inside_scalar<T>(&self, sp: &Sp<T>, line: usize, col: usize) -> Option<Pos> {
        let start = Pos::of(sp)?;
        let src_line = self.text.lines().nth(start.line as usize - 1).unwrap_or("");
        let quoted = matches!(
            src_line.chars().nth(start.col as usize - 1),
            Some('"' | '\'')
        );
        if line <= 1 {
            let shift = u32::from(quoted);
            return Some(start.offset_within(col as u32 + shift));
        }
        Some(Pos::new(
            start.line + line as u32 - 1,
            start.col - 1 + col as u32,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"groups:
- name: live-event
  interval: 15s
  rules:
  - alert: TargetDown
    expr: up == 0
    for: 1m
    labels: {severity: critical}
    annotations:
      summary: 'Target {{ $labels.instance }} is down'
  - record: job:up:sum
    expr: sum by (job) (up)
    labels:
      team: sre
- name: other
  rules:
  - alert: Always
    expr: vector(1)
"#;

    #[test]
    fn parses_valid_file() {
        let f = parse_rule_file("r.yml", GOOD).unwrap();
        assert_eq!(f.groups.len(), 2);
        let g = &f.groups[0];
        assert_eq!((g.name.as_str(), g.interval_ms), ("live-event", 15_000));
        assert_eq!(f.groups[1].interval_ms, 60_000);
        match &g.rules[0] {
            Rule::Alerting(a) => {
                assert_eq!(a.name, "TargetDown");
                assert_eq!(a.for_ms, 60_000);
                assert_eq!(a.labels[0].0, "severity");
                assert_eq!(
                    a.annotations[0].1.source(),
                    "Target {{ $labels.instance }} is down"
                );
            }
            other => panic!("{other:?}"),
        }
        match &g.rules[1] {
            Rule::Recording(r) => {
                assert_eq!(r.record, "job:up:sum");
                assert_eq!(r.labels.get("team"), Some("sre"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn default_interval_is_the_callers() {
        let f = parse_rule_file_with("r.yml", GOOD, 30_000).unwrap();
        assert_eq!(f.groups[1].interval_ms, 30_000);
    }

    #[test]
    fn empty_file_has_no_groups() {
        assert!(parse_rule_file("r.yml", "").unwrap().groups.is_empty());
        assert!(
            parse_rule_file("r.yml", "groups: []\n")
                .unwrap()
                .groups
                .is_empty()
        );
    }

    #[test]
    fn unknown_field_is_located() {
        let e = parse_rule_file(
            "r.yml",
            "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: up\n    fro: 1m\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        let d = &e.0[0];
        assert_eq!(d.pos.map(|p| p.line), Some(6), "{e}");
        assert!(d.message.contains("fro"), "{e}");
    }

    #[test]
    fn promql_error_points_into_the_expression() {
        let text = "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: rate(foo[5m]\n";
        let e = parse_rule_file("r.yml", text).unwrap_err();
        // `rate(` starts at column 11; the unclosed paren is its 5th char.
        assert_eq!(e.0[0].pos, Some(Pos::new(5, 15)), "{e}");
        assert_eq!(e.0[0].field, "groups[0].rules[0].expr");
        let text = "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: 'foo > > 1'\n";
        let e = parse_rule_file("r.yml", text).unwrap_err();
        assert_eq!(e.0[0].pos, Some(Pos::new(5, 18)), "{e}");
        let text = "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: |\n      sum(x)\n        > > 1\n";
        let e = parse_rule_file("r.yml", text).unwrap_err();
        assert_eq!(e.0[0].pos, Some(Pos::new(7, 11)), "{e}");
        let text =
            "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: |\n      sum(x\n        > 1\n";
        let e = parse_rule_file("r.yml", text).unwrap_err();
        assert_eq!(e.0[0].pos, Some(Pos::new(6, 10)), "{e}");
    }
}
