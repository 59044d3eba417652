//! `query`: run a PromQL instant query at the bot's `now`, for later steps
//! to read and, with `expect`, to stop a run whose premise does not hold.
//!
//! ```yaml
//! - id: load
//!   action: query
//!   with:
//!     expr: 'sum by (room) (live_room_listeners{event="{{ inputs.event | promql }}"})'
//!     expect: {empty: false, max: 1400000}
//!     capture: {room: room}
//! ```
//!
//! Output: `value` (the first sample's value, or null when the result is
//! empty), `series` (`[{labels, value}]`), `count`, and one field per
//! `capture` entry: the named label of the first series (null when absent).
//! A scalar result is one series with no labels.
//!
//! `expect` (every part optional; all that are given must hold):
//! - `empty: true|false`: whether the result may have no series;
//! - `min: N`, `max: N`: bounds, inclusive, on every series' value; with
//!   either set, an empty result fails too, since nothing was in bounds.
//!
//! A failed expectation is not retried: the data said no.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::{Action, ActionError, ActionSpec, Done, StepCtx, check_expr, check_shape, is_template};
use crate::chat::BoxFut;
use crate::promql::{Sample, Value};
use crate::runbook::CheckEnv;
use crate::runbook::spec::Reads;
use crate::runbook::template::Lang;

pub struct Query;

/// Output fields a capture may not overwrite.
const RESERVED: [&str; 3] = ["value", "series", "count"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params<N> {
    expr: String,
    expect: Option<Expect<N>>,
    /// Output field name to label name of the first series.
    #[serde(default)]
    capture: BTreeMap<String, String>,
}

/// `N` is `Json` at load (a bound may still be a template) and `f64` once
/// rendered.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect<N> {
    pub empty: Option<bool>,
    pub min: Option<N>,
    pub max: Option<N>,
}

impl ActionSpec for Query {
    fn name(&self) -> &'static str {
        "query"
    }

    fn langs(&self) -> &'static [(&'static str, Lang)] {
        &[("expr", Lang::Promql)]
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        let p = match check_shape::<Params<Json>>(with) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let mut errs = check_expr("expr", &p.expr);
        if let Some(x) = &p.expect {
            for (name, bound) in [("min", &x.min), ("max", &x.max)] {
                match bound {
                    None | Some(Json::Number(_)) => {}
                    Some(Json::String(s)) if is_template(s) => {}
                    Some(other) => errs.push((
                        format!("expect.{name}"),
                        format!("expected a number (or a template giving one), got {other}"),
                    )),
                }
            }
            if let (Some(Json::Number(lo)), Some(Json::Number(hi))) = (&x.min, &x.max)
                && lo.as_f64() > hi.as_f64()
            {
                errs.push((
                    "expect".into(),
                    format!("min {lo} is above max {hi}; no value can pass"),
                ));
            }
            if x.empty == Some(true) && (x.min.is_some() || x.max.is_some()) {
                errs.push((
                    "expect".into(),
                    "`empty: true` with `min`/`max` can never pass: bounds need a value".into(),
                ));
            }
        }
        for (field, label) in &p.capture {
            if RESERVED.contains(&field.as_str()) {
                errs.push((
                    format!("capture.{field}"),
                    format!(
                        "`{field}` is already an output of query; choose another name (not {})",
                        RESERVED.join(", ")
                    ),
                ));
            }
            if !crate::matchers::is_valid_label_name(label) {
                errs.push((
                    format!("capture.{field}"),
                    format!("{label:?} is not a label name; expected [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
        }
        errs
    }

    fn reads(&self, _with: &Json) -> Reads {
        Reads::Only
    }
}

impl Action for Query {
    /// A query only reads.
    fn repeatable(&self, _with: &Json, _env: &super::ActionEnv) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        with: Json,
    ) -> BoxFut<'a, Result<Done, ActionError>> {
        Box::pin(async move {
            let p: Params<f64> = super::params(with)?;
            let value = super::run_query(ctx, "expr", &p.expr).await?;
            let samples = samples(value).map_err(|e| ActionError::fatal(format!("expr: {e}")))?;
            if let Some(x) = &p.expect {
                expect(x, &samples).map_err(|e| {
                    ActionError::fatal(format!("expectation failed for `{}`: {e}", p.expr))
                })?;
            }
            Ok(Done {
                summary: summary(&p.expr, &samples),
                output: output(&samples, &p.capture),
                answered: None,
            })
        })
    }
}

/// The result as a list of samples; a scalar is one sample without
/// labels. Range vectors and strings are not something a step can compare.
pub fn samples(v: Value) -> Result<Vec<Sample>, String> {
    match v {
        Value::Vector(v) => Ok(v),
        Value::Scalar(x) => Ok(vec![Sample {
            labels: crate::labels::Labels::new(),
            value: x,
        }]),
        other => Err(format!(
            "gave a {}; a step needs an instant vector or a scalar",
            other.type_name()
        )),
    }
}

/// Checks an expectation; the error says what was expected and what came.
pub fn expect(x: &Expect<f64>, samples: &[Sample]) -> Result<(), String> {
    match x.empty {
        Some(false) if samples.is_empty() => {
            return Err("expected at least one series, got none".into());
        }
        Some(true) if !samples.is_empty() => {
            return Err(format!(
                "expected no series, got {}: {}",
                samples.len(),
                describe(&samples[0])
            ));
        }
        _ => {}
    }
    if x.min.is_none() && x.max.is_none() {
        return Ok(());
    }
    let want = match (x.min, x.max) {
        (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => unreachable!("returned above"),
    };
    if samples.is_empty() {
        return Err(format!("expected values {want}, got no series"));
    }
    let out = samples.iter().find(|s| {
        // NaN is in no bounds.
        !(x.min.is_none_or(|lo| s.value >= lo) && x.max.is_none_or(|hi| s.value <= hi))
    });
    match out {
        None => Ok(()),
        Some(s) => Err(format!("expected values {want}, got {}", describe(s))),
    }
}

fn describe(s: &Sample) -> String {
    if s.labels.is_empty() {
        format!("{}", s.value)
    } else {
        format!("{} for {}", s.value, s.labels)
    }
}

fn output(samples: &[Sample], capture: &BTreeMap<String, String>) -> Json {
    let mut out = Map::new();
    out.insert(
        "value".into(),
        samples.first().map_or(Json::Null, |s| json!(s.value)),
    );
    out.insert(
        "series".into(),
        samples
            .iter()
            .map(|s| json!({"labels": s.labels, "value": s.value}))
            .collect(),
    );
    out.insert("count".into(), json!(samples.len()));
    for (field, label) in capture {
        let v = samples
            .first()
            .and_then(|s| s.labels.get(label))
            .map_or(Json::Null, |v| json!(v));
        out.insert(field.clone(), v);
    }
    Json::Object(out)
}

/// `query sum(x) = 0.93 (3 series)`; long expressions are cut so the
/// chat line stays one line.
pub fn summary(expr: &str, samples: &[Sample]) -> String {
    let value = samples
        .first()
        .map_or_else(|| "no data".to_owned(), |s| format!("{}", s.value));
    let n = samples.len();
    format!("query {} = {value} ({n} series)", short_expr(expr))
}

/// One line of at most 80 characters.
pub fn short_expr(expr: &str) -> String {
    let flat: String = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 80 {
        flat
    } else {
        format!("{}…", flat.chars().take(79).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::tsdb::SeriesStore;

    fn check(with: Json) -> Vec<(String, String)> {
        Query.check(&with, &crate::load::check_env([]))
    }

    fn store() -> SeriesStore {
        let mut s = SeriesStore::new(600_000);
        for (room, v) in [("main", 0.95), ("backup", 0.5), ("green", 0.9)] {
            let l = Labels::new()
                .with("__name__", "fill_ratio")
                .with("room", room);
            s.append(l, 1_000, v).unwrap();
        }
        s
    }

    fn at(expr: &str) -> Vec<Sample> {
        samples(crate::promql::query(expr, &store(), 2_000).unwrap()).unwrap()
    }

    fn bounds(min: Option<f64>, max: Option<f64>) -> Expect<f64> {
        Expect {
            empty: None,
            min,
            max,
        }
    }

    #[test]
    fn check_parses_the_expression_unless_templated() {
        assert!(check(json!({"expr": "sum(fill_ratio)"})).is_empty());
        assert!(check(json!({"expr": "fill_ratio{room=\"{{ inputs.room }}\"}"})).is_empty());
        let e = check(json!({"expr": "sum(fill_ratio"}));
        assert_eq!(e[0].0, "expr");
        assert!(e[0].1.contains("invalid PromQL"), "{e:?}");
        let e = check(json!({"expr": "fill_ratio[5m]"}));
        assert_eq!(e[0].0, "expr");
        assert!(e[0].1.contains("instant vector or a scalar"), "{e:?}");
        let e = check(json!({"exp": "x"}));
        assert!(e[0].1.contains("exp"), "{e:?}");
    }

    #[test]
    fn check_validates_expect_and_capture() {
        assert!(check(json!({"expr": "x", "expect": {"empty": false, "min": 0.9, "max": "{{ inputs.hi }}"}})).is_empty());
        let e = check(json!({"expr": "x", "expect": {"min": "high"}}));
        assert_eq!(e[0].0, "expect.min");
        let e = check(json!({"expr": "x", "expect": {"min": 2, "max": 1}}));
        assert!(e[0].1.contains("above max"), "{e:?}");
        let e = check(json!({"expr": "x", "expect": {"empty": true, "min": 1}}));
        assert!(e[0].1.contains("never pass"), "{e:?}");
        let e = check(json!({"expr": "x", "expect": {"equals": 1}}));
        assert!(e[0].1.contains("equals"), "{e:?}");
        let e = check(json!({"expr": "x", "capture": {"count": "room"}}));
        assert_eq!(e[0].0, "capture.count");
        let e = check(json!({"expr": "x", "capture": {"r": "no-such"}}));
        assert!(e[0].1.contains("not a label name"), "{e:?}");
    }

    #[test]
    fn output_has_first_value_series_count_and_captures() {
        let s = at("sort_desc(fill_ratio)");
        let capture = [
            ("room".to_owned(), "room".to_owned()),
            ("team".to_owned(), "team".to_owned()),
        ]
        .into();
        let out = output(&s, &capture);
        assert_eq!(out["value"], json!(0.95));
        assert_eq!(out["count"], json!(3));
        assert_eq!(out["room"], json!("main"));
        assert_eq!(out["team"], Json::Null);
        assert_eq!(
            out["series"][0],
            json!({"labels": {"__name__": "fill_ratio", "room": "main"}, "value": 0.95})
        );
        let none = output(&at("nothing_here"), &BTreeMap::new());
        assert_eq!(none, json!({"value": null, "series": [], "count": 0}));
        let scalar = samples(Value::Scalar(2.5)).unwrap();
        assert_eq!(output(&scalar, &BTreeMap::new())["value"], json!(2.5));
        assert!(samples(Value::String("s".into())).is_err());
    }

    #[test]
    fn expectations_say_what_was_expected_and_what_came() {
        let all = at("fill_ratio");
        assert!(expect(&bounds(Some(0.4), Some(1.0)), &all).is_ok());
        let e = expect(&bounds(Some(0.9), None), &all).unwrap_err();
        assert!(
            e.contains(">= 0.9") && e.contains("0.5 for") && e.contains("backup"),
            "{e}"
        );
        let e = expect(&bounds(None, Some(0.9)), &at("sum(fill_ratio)")).unwrap_err();
        assert_eq!(e, "expected values <= 0.9, got 2.35");
        let e = expect(&bounds(Some(0.0), None), &[]).unwrap_err();
        assert_eq!(e, "expected values >= 0, got no series");
        let nonempty = Expect {
            empty: Some(false),
            min: None,
            max: None,
        };
        assert_eq!(
            expect(&nonempty, &[]).unwrap_err(),
            "expected at least one series, got none"
        );
        let empty = Expect {
            empty: Some(true),
            ..nonempty
        };
        assert!(expect(&empty, &[]).is_ok());
        assert!(
            expect(&empty, &all)
                .unwrap_err()
                .starts_with("expected no series, got 3")
        );
        let nan = [Sample {
            labels: Labels::new(),
            value: f64::NAN,
        }];
        assert!(expect(&bounds(None, Some(1.0)), &nan).is_err());
    }

    #[test]
    fn summary_is_one_short_line() {
        assert_eq!(
            summary("sum(fill_ratio)", &at("sum(fill_ratio)")),
            "query sum(fill_ratio) = 2.35 (1 series)"
        );
        assert_eq!(summary("x", &[]), "query x = no data (0 series)");
        let long = format!("sum(\n  {}\n)", "a + ".repeat(40));
        let s = summary(&long, &[]);
        assert!(!s.contains('\n') && s.chars().count() < 120, "{s}");
    }
}
